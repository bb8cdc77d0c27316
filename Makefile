# The two commands of the README:
#   make demo   start edmmd on the simulated EPC with a demo fleet of enclaves (Ctrl-C stops it)
#   make test   run the whole test suite
# Both install the Debian packages they need first (scripts/install-deps.sh).

SWIFT ?= swift

.PHONY: demo test build release deps deps-test clean

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

clean:
	rm -rf .build .build-* FuzzTesting/.build Benchmarks/.build
