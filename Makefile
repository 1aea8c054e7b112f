# minik's two commands (see README.md):
#   make up     install what is missing, build, and boot the three-node cluster with the
#               course's demo (`minik up`; `make down` takes it down)
#   make test   install what is missing, build, and run every test inside the sandbox
# Building (cargo, which needs the network for crates) happens before entering the
# sandbox; everything that creates network objects runs inside it.

CARGO ?= cargo

# CI builds once from a fresh clone: cargo's incremental cache would only take disk space.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

.PHONY: deps build images test bench up down

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --workspace --bins

images: deps
	images/build.sh
	images/vm/build.sh --fetch

test: build images
	$(CARGO) test --workspace --no-run
	scripts/sandbox.sh $(CARGO) test --workspace --offline --no-fail-fast

bench: deps images
	$(CARGO) build --release --workspace --bins
	scripts/sandbox.sh target/release/bench-cni
	MINIK_BIN_DIR=$(CURDIR)/target/release scripts/sandbox.sh target/release/bench-minilet
	MINIK_BIN_DIR=$(CURDIR)/target/release scripts/sandbox.sh target/release/bench-dns
	MINIK_BIN_DIR=$(CURDIR)/target/release scripts/sandbox.sh target/release/bench-api
	scripts/sandbox.sh target/release/bench-proxy
	MINIK_BIN_DIR=$(CURDIR)/target/release scripts/sandbox.sh target/release/bench-services
	MINIK_BIN_DIR=$(CURDIR)/target/release scripts/sandbox.sh target/release/bench-cluster
	MINIK_BIN_DIR=$(CURDIR)/target/release scripts/sandbox.sh target/release/bench-vm

# minik makes its own sandbox (see README.md, "The cluster"); MINIK_UP_FLAGS passes flags,
# e.g. make up MINIK_UP_FLAGS="--nodes 2 --api-port 7443".
up: build images
	target/debug/minik up $(MINIK_UP_FLAGS)

down:
	target/debug/minik down
