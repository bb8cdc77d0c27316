# The two commands of the README:
#   make demo   start edmmd on the simulated EPC with a demo fleet of enclaves (Ctrl-C stops it)
#   make test   run the whole test suite
# Both install the Debian packages they need first (scripts/install-deps.sh).
#
# Installing (README.md "Install", docs/systemd.md):
#   make install [PREFIX=/usr/local] [DESTDIR=]   the release binaries (static Swift runtime,
#               stripped), systemd units, sysusers, configuration (kept if present), man pages and
#               shell completions; what it installs is listed in $(DATADIR)/edmmd/install-manifest
#   make uninstall [PREFIX=...] [DESTDIR=...]     removes what that list names
#   make deb    the Debian packages (debian/) in .build/deb
# `make release` stamps the commit and date --version prints (scripts/build-info.sh).

SWIFT ?= swift
VERSION := $(shell cat VERSION)

# Where `make install` puts things; DESTDIR stages the whole tree elsewhere (packaging).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
# Debian's zsh looks in vendor-completions under /usr, in site-functions under /usr/local.
ZSHCOMPDIR ?= $(DATADIR)/zsh/$(if $(filter /usr,$(PREFIX)),vendor-completions,site-functions)
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
STRIP ?= strip
INSTALL_VARS = PREFIX='$(PREFIX)' DESTDIR='$(if $(DESTDIR),$(abspath $(DESTDIR)))' BINDIR='$(BINDIR)' SBINDIR='$(SBINDIR)' \
	LIBDIR='$(LIBDIR)' DATADIR='$(DATADIR)' MANDIR='$(MANDIR)' SYSCONFDIR='$(SYSCONFDIR)' \
	UNITDIR='$(UNITDIR)' SYSUSERSDIR='$(SYSUSERSDIR)' BASHCOMPDIR='$(BASHCOMPDIR)' \
	ZSHCOMPDIR='$(ZSHCOMPDIR)' FISHCOMPDIR='$(FISHCOMPDIR)' STRIP='$(STRIP)'

# The C libraries (c/Makefile) are staged here by their own `make -C c install`, then installed
# and listed in the manifest with everything else.
C_STAGE := .build/c-stage

# Release binaries run where the Swift toolchain is not installed; full RELRO like Debian's own.
RELEASE_FLAGS := -c release --static-swift-stdlib -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now
RELEASE_BIN := .build/release
STAMP := .build/build-info
DIST := .build/dist
DEB_DIR := .build/deb
PROGRAMS := edmmd edmmctl edmm-sim

.PHONY: demo test build release dist install uninstall deb deps deps-test deps-deb stamp clean

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

deps-deb:
	@scripts/install-deps.sh deb

stamp:
	@scripts/build-info.sh stamp $(STAMP)

build: deps stamp
	$(SWIFT) build

# The three programs only: the simulator's C library (product edmm_sim) is linked by c/Makefile
# with its own flags (a static Swift runtime inside a shared library needs -static-stdlib).
release: deps stamp
	@$(foreach p,$(PROGRAMS),echo "$(SWIFT) build $(RELEASE_FLAGS) --product $(p)" && $(SWIFT) build $(RELEASE_FLAGS) --product $(p) &&) true

demo: release
	@scripts/demo.sh

test: deps-test
	@scripts/test-all.sh

# Man pages and completions, made from the release binaries: the programs' pages from what
# swift-argument-parser knows of them (scripts/manpage.py), edmmd.toml(5) from config/edmmd.toml.
MAN_DATE = $$(sed -n 's/^date=\(....-..-..\).*/\1/p' $(STAMP) | grep . || date -u +%F)
MANPAGES := $(DIST)/man/edmmd.8 $(DIST)/man/edmmctl.1 $(DIST)/man/edmm-sim.1 $(DIST)/man/edmmd.toml.5
dist: release
	@$(MAKE) --no-print-directory dist-files

.PHONY: dist-files
dist-files: $(MANPAGES) $(foreach p,$(PROGRAMS),$(DIST)/completions/bash/$(p))
	@:

$(DIST)/man/edmmd.8: SEE_ALSO = edmmd.toml.5 edmmctl.1 edmm-sim.1
$(DIST)/man/edmmctl.1: SEE_ALSO = edmmd.8 edmmd.toml.5 edmm-sim.1
$(DIST)/man/edmm-sim.1: SEE_ALSO = edmmd.8 edmmctl.1
$(DIST)/man/%.8 $(DIST)/man/%.1: $(RELEASE_BIN)/% scripts/manpage.py
	@mkdir -p $(@D)
	scripts/manpage.py $< $(subst .,,$(suffix $@)) $(MAN_DATE) $(VERSION) $(SEE_ALSO) > $@.new && mv $@.new $@

$(DIST)/man/edmmd.toml.5: config/edmmd.toml scripts/config-man.awk VERSION
	@mkdir -p $(@D)
	awk -v version=$(VERSION) -v date=$(MAN_DATE) -f scripts/config-man.awk $< > $@.new && mv $@.new $@

# (A bash completion is sourced, not run: no #! line.)
$(DIST)/completions/bash/%: $(RELEASE_BIN)/%
	@mkdir -p $(DIST)/completions/bash $(DIST)/completions/zsh $(DIST)/completions/fish
	$< --generate-completion-script bash > $@.new && sed '1{/^#!/d}' $@.new > $@ && rm $@.new
	$< --generate-completion-script zsh > $(DIST)/completions/zsh/_$*
	$< --generate-completion-script fish > $(DIST)/completions/fish/$*.fish

install: dist
	@rm -rf $(C_STAGE)
	@$(MAKE) --no-print-directory -C c install PREFIX='$(PREFIX)' LIBDIR='$(LIBDIR)' SWIFT='$(SWIFT)' \
		DESTDIR='$(abspath $(C_STAGE))' > /dev/null
	@$(INSTALL_VARS) C_STAGE='$(abspath $(C_STAGE))' scripts/install.sh install $(RELEASE_BIN) $(DIST)

uninstall:
	@$(INSTALL_VARS) scripts/install.sh uninstall

# dpkg-buildpackage in this tree (debian/rules runs `make dist` and `make install`), with the
# packages, .buildinfo and .changes in $(DEB_DIR) rather than the parent folder, and debian/
# cleaned after; then lintian, which must find no error.
deb: deps-deb
	@rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)
	set -e; upload=$(DEB_DIR)/edmmd_$(VERSION)_$$(dpkg --print-architecture); \
	EDMMD_DEB_DIR=$(CURDIR)/$(DEB_DIR) dpkg-buildpackage -b -us -uc -tc \
		--buildinfo-option=-u$(DEB_DIR) --buildinfo-file=$$upload.buildinfo \
		--changes-option=-u$(DEB_DIR) --changes-file=$$upload.changes; \
	lintian --fail-on error $$upload.changes
	@ls -l $(DEB_DIR)/*.deb

clean:
	rm -rf .build .build-* FuzzTesting/.build Benchmarks/.build c/build
