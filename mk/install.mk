# Installing, the way nginx administrators install modules
#
#   make install            the module, its load_module snippet enabled
#                           as Debian's libnginx-mod-* packages do,
#                           apikeyctl, its man page and bash completion
#   make uninstall          removes exactly those files
#   make deb                the Debian packages libnginx-mod-http-apikey
#                           and apikeyctl, in the top directory
#   make test-install       (root) builds, lints, installs, uses and
#                           purges the packages: t/install/packages.t
#
# Both honour DESTDIR and PREFIX; the nginx paths are nginx's own, not
# under PREFIX: MODULES_DIR (/usr/lib/nginx/modules), MODULES_AVAILABLE
# (/usr/share/nginx/modules-available) and MODULES_ENABLED
# (/etc/nginx/modules-enabled).  The snippet and its link are named as
# dh_nginx (nginx-dev) names those of a package libnginx-mod-http-apikey:
# mod-http-apikey.conf, linked as 50-mod-http-apikey.conf.
#
# The version of the packages is ACTL_VERSION in tools/apikeyctl/actl.h,
# the one "apikeyctl --version" prints: make deb writes debian/changelog
# from it in its copy of the tree.

MODULES_AVAILABLE ?= /usr/share/nginx/modules-available
MODULES_ENABLED ?=  /etc/nginx/modules-enabled

INSTALL_CONF =      mod-http-apikey.conf
INSTALL_LINK =      50-mod-http-apikey.conf

# Debian's nginx finds modules/ under its prefix, /usr/share/nginx, a link
# to /usr/lib/nginx/modules; any other directory is named in full

ifeq ($(MODULES_DIR),/usr/lib/nginx/modules)
INSTALL_LOAD =      modules/ngx_http_apikey_module.so
else
INSTALL_LOAD =      $(MODULES_DIR)/ngx_http_apikey_module.so
endif

# the unit of apikeyctl follow, where systemd looks for the units of
# local packages (/usr/local/lib/systemd/system), or those of the system
# with PREFIX=/usr; it names the installed apikeyctl

SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
FOLLOW_UNIT =       apikeyctl-follow@.service

# every file make install writes, as README.md lists them

INSTALL_FILES =     $(MODULES_DIR)/ngx_http_apikey_module.so \
                    $(MODULES_AVAILABLE)/$(INSTALL_CONF) \
                    $(MODULES_ENABLED)/$(INSTALL_LINK) \
                    $(PREFIX)/sbin/apikeyctl \
                    $(PREFIX)/share/man/man1/apikeyctl.1 \
                    $(PREFIX)/share/bash-completion/completions/apikeyctl \
                    $(SYSTEMD_UNIT_DIR)/$(FOLLOW_UNIT)

VERSION =           $(shell sed -n \
                        's/^\#define ACTL_VERSION *"\(.*\)"/\1/p' \
                        $(CTL_DIR)/actl.h)

DEB_DIR =           $(B)/deb
DEB_SRC =           $(DEB_DIR)/ngx-http-apikey-$(VERSION)
DEB_FILES =         config LICENSE Makefile README.md mk debian examples \
                    $(CORE_DIR) tools
DEB_NAME ?=         ngx_http_apikey_module developers
DEB_EMAIL ?=        maintainers@users.noreply.r-seed-7510114a.example


.PHONY: install uninstall deps-deb deb test-install


install: all
	install -d $(DESTDIR)$(MODULES_DIR) $(DESTDIR)$(MODULES_AVAILABLE) \
	    $(DESTDIR)$(MODULES_ENABLED) $(DESTDIR)$(PREFIX)/sbin \
	    $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0644 $(MODULE) $(DESTDIR)$(MODULES_DIR)/
	echo 'load_module $(INSTALL_LOAD);' \
	    > $(DESTDIR)$(MODULES_AVAILABLE)/$(INSTALL_CONF)
	chmod 0644 $(DESTDIR)$(MODULES_AVAILABLE)/$(INSTALL_CONF)
	ln -sfn $(MODULES_AVAILABLE)/$(INSTALL_CONF) \
	    $(DESTDIR)$(MODULES_ENABLED)/$(INSTALL_LINK)
	install -m 0755 $(APIKEYCTL) $(DESTDIR)$(PREFIX)/sbin/
	install -m 0644 tools/apikeyctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 tools/apikeyctl.bash-completion \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions/apikeyctl
	install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR)
	sed 's|/usr/sbin/apikeyctl|$(PREFIX)/sbin/apikeyctl|' \
	    tools/$(FOLLOW_UNIT) > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$(FOLLOW_UNIT)
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/$(FOLLOW_UNIT)

# the files only: the directories are nginx's and the system's

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALL_FILES))


deps-deb:
	@tools/deps.sh deb

# dpkg-buildpackage works in a copy of the tree, so that the build leaves
# nothing in it but the two packages

deb: deps-deb
	@test -n "$(VERSION)" \
	    || { echo "deb: no ACTL_VERSION in $(CTL_DIR)/actl.h"; exit 1; }
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_SRC)
	cp -r $(DEB_FILES) $(DEB_SRC)/
	printf '%s (%s) unstable; urgency=medium\n\n  * %s\n\n -- %s  %s\n' \
	    ngx-http-apikey $(VERSION) \
	    'Packaged by make deb from ngx_http_apikey_module $(VERSION).' \
	    '$(DEB_NAME) <$(DEB_EMAIL)>' "$$(date -R)" \
	    > $(DEB_SRC)/debian/changelog
	cd $(DEB_SRC) && dpkg-buildpackage -b -us -uc > ../build.log 2>&1 \
	    || { tail -n 40 ../build.log; exit 1; }
	rm -f libnginx-mod-http-apikey_*.deb apikeyctl_*.deb
	cp $(DEB_DIR)/libnginx-mod-http-apikey_$(VERSION)_*.deb \
	    $(DEB_DIR)/apikeyctl_$(VERSION)_*.deb .
	@ls -1 libnginx-mod-http-apikey_*.deb apikeyctl_*.deb

test-install: deps-deb
	prove -I t/lib t/install/packages.t
