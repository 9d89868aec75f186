# ngx_http_apikey_module
#
#   make              build the module (.so) and apikeyctl
#   make test         build, then run every test in t/ with prove
#   make demo         serve a key-protected location on 127.0.0.1:8080
#   make bench        benchmarks against the alternatives (bench/)
#   make lint         style checks and cppcheck
#   make install      install the module, enabled as Debian's module
#                     packages are, apikeyctl, its man page and completion
#   make deb          the Debian packages libnginx-mod-http-apikey and
#                     apikeyctl (mk/install.mk)
#
# NGINX_SRC=/path/to/nginx make   builds against that nginx source tree
# (configured --with-compat) instead of Debian's nginx-dev.

SHELL =         /bin/bash

CC ?=           cc
CFLAGS ?=       -O2 -g
WARN =          -Wall -Wextra -Werror -Wpointer-arith -Wno-unused-parameter
NGINX_BIN ?=    /usr/sbin/nginx
NGINX_SRC ?=
NGINX_DEV =     /usr/share/nginx/src
PREFIX ?=       /usr/local
MODULES_DIR ?=  /usr/lib/nginx/modules

B =             build
CORE_DIR =      ngx_http_apikey_module
CORE_SRC =      $(CORE_DIR)/apikey_core.c
CORE_DEPS =     $(CORE_SRC) $(CORE_DIR)/apikey_core.h
MODULE_SRCS =   $(CORE_DEPS) $(CORE_DIR)/ngx_http_apikey_module.c \
                $(CORE_DIR)/ngx_http_apikey_metrics.c \
                $(CORE_DIR)/ngx_http_apikey_metrics.h config
CTL_DIR =       tools/apikeyctl
CTL_SRCS =      $(CTL_DIR)/apikeyctl.c $(CTL_DIR)/actl_error.c \
                $(CTL_DIR)/actl_mem.c $(CTL_DIR)/actl_db.c \
                $(CTL_DIR)/actl_fields.c $(CTL_DIR)/actl_output.c \
                $(CTL_DIR)/actl_init.c $(CTL_DIR)/actl_gen.c \
                $(CTL_DIR)/actl_import.c $(CTL_DIR)/actl_import_read.c \
                $(CTL_DIR)/actl_import_write.c \
                $(CTL_DIR)/actl_import_resolve.c \
                $(CTL_DIR)/actl_import_thread.c \
                $(CTL_DIR)/actl_update.c $(CTL_DIR)/actl_list.c \
                $(CTL_DIR)/actl_verify.c $(CTL_DIR)/actl_rotate.c \
                $(CTL_DIR)/actl_stats.c $(CTL_DIR)/actl_check.c \
                $(CTL_DIR)/actl_backup.c $(CTL_DIR)/actl_restore.c \
                $(CTL_DIR)/actl_copy.c \
                $(CTL_DIR)/actl_follow.c $(CTL_DIR)/actl_follow_pg.c \
                $(CTL_DIR)/actl_follow_write.c \
                $(CTL_DIR)/actl_follow_schema.c
CTL_DEPS =      $(CTL_SRCS) $(CTL_DIR)/actl.h $(CTL_DIR)/actl_follow.h \
                $(CORE_DEPS)
CTL_LIBS =      -llmdb -lsodium -ljansson -lcsv -lz -pthread \
                $(shell pkg-config --cflags --libs libpq 2>/dev/null \
                        || echo -I/usr/include/postgresql -lpq)

MODULE =        $(B)/ngx_http_apikey_module.so
APIKEYCTL =     $(B)/apikeyctl
CORE_TEST =     $(B)/core_test


.PHONY: all deps deps-test deps-bench module test demo bench bench-quick \
        bench-cg bench-import bench-follow \
        lint install clean

all: deps $(MODULE) $(APIKEYCTL)

deps:
	@tools/deps.sh build

deps-test:
	@tools/deps.sh test

deps-bench:
	@tools/deps.sh bench


ifeq ($(NGINX_SRC),)

# Debian's nginx-dev ships the configured headers of the installed nginx;
# copy the tree (it is read-only) and configure it with the same flags.

$(B)/nginx/objs/Makefile: config | deps
	rm -rf $(B)/nginx
	mkdir -p $(B)
	cp -r $(NGINX_DEV) $(B)/nginx
	cd $(B)/nginx && source ./conf_flags \
	    && ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --add-dynamic-module=$(CURDIR) > configure.log \
	    || { cat configure.log; exit 1; }

$(MODULE): $(B)/nginx/objs/Makefile $(MODULE_SRCS)
	$(MAKE) -C $(B)/nginx -f objs/Makefile modules
	cp --remove-destination $(B)/nginx/objs/ngx_http_apikey_module.so $@

else

$(MODULE): $(MODULE_SRCS) | deps
	cd $(NGINX_SRC) && ./configure --with-compat \
	    --add-dynamic-module=$(CURDIR)
	$(MAKE) -C $(NGINX_SRC) -f objs/Makefile modules
	mkdir -p $(B)
	cp --remove-destination $(NGINX_SRC)/objs/ngx_http_apikey_module.so $@

endif

module: $(MODULE)


$(APIKEYCTL): $(CTL_DEPS) | deps
	mkdir -p $(B)
	$(CC) $(CFLAGS) $(WARN) -I$(CORE_DIR) -o $@ $(CTL_SRCS) \
	    $(CORE_SRC) $(CTL_LIBS)

# the unit tests run under AddressSanitizer and UBSan: the record
# decoder is fed hostile bytes

$(CORE_TEST): t/unit/core_test.c $(CORE_DEPS) | deps-test
	mkdir -p $(B)
	$(CC) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	    $(WARN) -I$(CORE_DIR) -o $@ t/unit/core_test.c $(CORE_SRC) \
	    -llmdb -lsodium -lz -lcmocka


# Debian's nginx, then mainline built from ../shared/nginx (mk/matrix.mk)

# two test files at a time: most of a test's time is waiting (for nginx
# workers, for PostgreSQL, for a load to run), and the only timed
# assertion is the follower's 1 s, met with room (TEST_JOBS=1 runs them
# one by one)

TEST_JOBS ?=    2

test: deps-test all $(CORE_TEST)
	APIKEY_BUILD=$(CURDIR)/$(B) TEST_NGINX_BINARY=$(NGINX_BIN) \
	    prove -j$(TEST_JOBS) -r -I t/lib t/
	$(MAKE) --no-print-directory test-1.29.8

demo: all
	tools/demo.sh

bench: deps-bench all
	bench/run.sh

bench-quick: deps-bench all
	bench/run.sh --quick

bench-cg: deps-bench all
	bench/run.sh --cg

# BENCH_IMPORT_FLAGS=--no-10m skips the 10M-key case (a few minutes)
bench-import: deps-bench all
	bench/import.pl --build $(B) $(BENCH_IMPORT_FLAGS)

# 1M rows synchronised from a PostgreSQL started for it (apikeyctl follow)
bench-follow: deps-bench all
	bench/follow.pl --build $(B)

lint:
	tools/lint.sh

clean:
	rm -rf $(B)


# further targets, one file per area: mk/matrix.mk (make test-matrix),
# mk/check.mk (make fuzz, make test-asan, make test-valgrind),
# mk/install.mk (make install, make uninstall, make deb, make test-install)

include $(wildcard mk/*.mk)
