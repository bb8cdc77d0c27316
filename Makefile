# The two commands of the README:
#   make demo   start edmmd on the simulated EPC with a demo fleet of enclaves (Ctrl-C stops it)
#   make test   run the whole test suite
# Both install the Debian packages they need first (scripts/install-deps.sh).

SWIFT ?= swift
# Where `make install` puts things: $(DESTDIR)$(PREFIX)/$(LIBDIR) ... (Debian: LIBDIR=lib/x86_64-linux-gnu).
PREFIX ?= /usr/local
LIBDIR ?= lib
DESTDIR ?=
INSTALL_VARS = PREFIX="$(PREFIX)" LIBDIR="$(LIBDIR)" DESTDIR="$(if $(DESTDIR),$(abspath $(DESTDIR)))" SWIFT="$(SWIFT)"

.PHONY: demo test build release deps deps-test clean install uninstall

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

demo: release
	@scripts/demo.sh

test: deps-test
	@scripts/test-all.sh

# The C libraries: libedmm, libedmm-enclave, libedmm_sim, their headers and pkg-config files.
install: deps
	$(MAKE) -C c install $(INSTALL_VARS)

uninstall:
	$(MAKE) -C c uninstall $(INSTALL_VARS)

clean:
	rm -rf .build .build-* FuzzTesting/.build Benchmarks/.build c/build
