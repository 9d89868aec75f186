# make test-matrix: the integration suite against Debian's nginx and
# against nginx built from each release tree in ../shared/nginx
#
#   make test-matrix        every version; a summary at the end
#   make test-1.29.8        one version (make test runs this one too)
#   make matrix-1.29.8      build that nginx and the module only
#
# Each tree is unpacked into $(B)/matrix/<version>/ and configured
# --with-compat, with the modules the tests use, and the module added;
# $(B)/matrix/<version>/apikey/ holds that version's module next to the
# apikeyctl and core_test of the normal build: the tests find them
# through APIKEY_BUILD and the nginx binary through TEST_NGINX_BINARY.
# A tree is rebuilt only when its tarball, the addon script, this file
# or the module's sources change.  A tarball that is absent is reported
# as skipped, by name.

MATRIX_SRC ?=       $(abspath $(CURDIR)/../shared/nginx)
MATRIX_DIR =        $(B)/matrix
MATRIX_JOBS ?=      2

# the versions expected in ../shared/nginx, and any other tarball there

MATRIX_VERSIONS ?=  $(sort 1.24.0 1.26.3 1.28.3 1.29.8 \
                        $(patsubst nginx-%.tar.gz,%,$(notdir \
                            $(wildcard $(MATRIX_SRC)/nginx-*.tar.gz))))

# Debian's static modules that the tests may use (HTTP/2, auth_request,
# SSI and the rest are built in or named here); the paths keep a build
# that is run without -p away from /usr/local/nginx

MATRIX_CONF =       --with-compat --with-threads --with-pcre-jit \
                    --with-http_ssl_module --with-http_v2_module \
                    --with-http_auth_request_module \
                    --with-http_realip_module --with-http_sub_module \
                    --with-http_addition_module \
                    --with-http_secure_link_module \
                    --with-http_stub_status_module \
                    --with-http_gunzip_module --with-http_slice_module \
                    --with-http_dav_module

# glibc fills what malloc() returns with a pattern, so that memory read
# before it is written (a pool field left unset) gives the same wrong
# result on every run, not whatever the heap held

MATRIX_PROVE =      MALLOC_PERTURB_=165 prove -r -I t/lib t/

# the other versions run only the test files that start nginx: the rest
# (apikeyctl's, the follower's, the unit tests, the corpus, the
# packages) run the same binaries whatever the nginx, and test-debian
# (make test's first run) has run them

MATRIX_MARKS =      -e '->start(' -e 'Apikey::Fault' -e '{nginx}'
MATRIX_NGINX_TESTS = $(shell grep -l -F $(MATRIX_MARKS) t/*.t t/install/*.t)
MATRIX_OTHER_TESTS = $(filter-out $(MATRIX_NGINX_TESTS), \
                        $(wildcard t/*.t t/install/*.t))


.PHONY: test-matrix test-debian \
        $(addprefix test-,$(MATRIX_VERSIONS)) \
        $(addprefix matrix-,$(MATRIX_VERSIONS))


test-matrix: deps-test all $(CORE_TEST)
	@failed=; skipped=; tested=1.22.1; \
	echo "test-matrix: nginx 1.22.1 (Debian, $(NGINX_BIN))"; \
	$(MAKE) --no-print-directory test-debian || failed="$$failed 1.22.1"; \
	for v in $(MATRIX_VERSIONS); do \
	    if [ ! -f $(MATRIX_SRC)/nginx-$$v.tar.gz ]; then \
	        skipped="$$skipped $$v"; continue; \
	    fi; \
	    tested="$$tested $$v"; \
	    $(MAKE) --no-print-directory test-$$v || failed="$$failed $$v"; \
	done; \
	echo; \
	echo "test-matrix: tested nginx $$tested"; \
	for v in $$skipped; do \
	    echo "test-matrix: SKIPPED nginx $$v:" \
	         "no $(MATRIX_SRC)/nginx-$$v.tar.gz"; \
	done; \
	if [ -n "$$failed" ]; then \
	    echo "test-matrix: FAILED nginx$$failed"; exit 1; \
	fi; \
	echo "test-matrix: PASS on every nginx tested"

test-debian: deps-test all $(CORE_TEST)
	APIKEY_BUILD=$(CURDIR)/$(B) TEST_NGINX_BINARY=$(NGINX_BIN) \
	    $(MATRIX_PROVE)


define MATRIX_VERSION

# unpack and configure; nginx's own Makefile then knows what to rebuild

$(MATRIX_DIR)/$(1)/objs/Makefile: $(MATRIX_SRC)/nginx-$(1).tar.gz config \
                                  mk/matrix.mk | deps-test
	rm -rf $(MATRIX_DIR)/$(1)
	mkdir -p $(MATRIX_DIR)/$(1)
	tar -C $(MATRIX_DIR)/$(1) --strip-components=1 \
	    -xzf $(MATRIX_SRC)/nginx-$(1).tar.gz
	cd $(MATRIX_DIR)/$(1) && ./configure $(MATRIX_CONF) \
	    --prefix=$(CURDIR)/$(MATRIX_DIR)/$(1)/prefix \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { cat configure.log; exit 1; }

# the binary and the module; the caller's make variables (CFLAGS, CC,
# B...) must not reach nginx's Makefile

$(MATRIX_DIR)/$(1)/apikey/ngx_http_apikey_module.so: \
        $(MATRIX_DIR)/$(1)/objs/Makefile $(MODULE_SRCS)
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	    $(MAKE) -s -C $(MATRIX_DIR)/$(1) -f objs/Makefile -j$(MATRIX_JOBS) \
	    build
	mkdir -p $(MATRIX_DIR)/$(1)/apikey
	cp --remove-destination $(MATRIX_DIR)/$(1)/objs/ngx_http_apikey_module.so $$@

matrix-$(1): $(MATRIX_DIR)/$(1)/apikey/ngx_http_apikey_module.so

ifneq ($(wildcard $(MATRIX_SRC)/nginx-$(1).tar.gz),)

test-$(1): deps-test all $(CORE_TEST) matrix-$(1)
	ln -sf $(CURDIR)/$(APIKEYCTL) $(CURDIR)/$(CORE_TEST) \
	    $(MATRIX_DIR)/$(1)/apikey/
	@echo "test-$(1): nginx $(1), $(MATRIX_DIR)/$(1)/objs/nginx"
	@echo "test-$(1): not run again, they start no nginx:" \
	    $(MATRIX_OTHER_TESTS)
	APIKEY_BUILD=$(CURDIR)/$(MATRIX_DIR)/$(1)/apikey \
	    TEST_NGINX_BINARY=$(CURDIR)/$(MATRIX_DIR)/$(1)/objs/nginx \
	    MALLOC_PERTURB_=165 prove -j$(TEST_JOBS) -I t/lib \
	        $(MATRIX_NGINX_TESTS)

else

test-$(1):
	@echo "test-$(1): SKIPPED nginx $(1): no $(MATRIX_SRC)/nginx-$(1).tar.gz"

endif

endef

$(foreach v,$(MATRIX_VERSIONS),$(eval $(call MATRIX_VERSION,$(v))))
