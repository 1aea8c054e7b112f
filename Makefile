# minik's two commands (see README.md):
#   make up     install what is missing, build, and boot the demo
#   make test   install what is missing, build, and run every test inside the sandbox
# Building (cargo, which needs the network for crates) happens before entering the
# sandbox; everything that creates network objects runs inside it.

CARGO ?= cargo

.PHONY: deps build images test bench up

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --workspace --bins

images: deps
	images/build.sh

test: build images
	$(CARGO) test --workspace --no-run
	scripts/sandbox.sh $(CARGO) test --workspace --offline --no-fail-fast

bench: deps
	$(CARGO) build --release -p cni-bridge -p minik-bench -p minilet -p minik-oci -p miniapi -p minik-dns
	scripts/sandbox.sh target/release/bench-cni
	MINIK_BIN_DIR=$(CURDIR)/target/release scripts/sandbox.sh target/release/bench-minilet
	MINIK_BIN_DIR=$(CURDIR)/target/release scripts/sandbox.sh target/release/bench-dns
	MINIK_BIN_DIR=$(CURDIR)/target/release scripts/sandbox.sh target/release/bench-api
	scripts/sandbox.sh target/release/bench-proxy

up: build images
	scripts/sandbox.sh scripts/demo-cni.sh
	scripts/sandbox.sh scripts/demo-pods.sh
