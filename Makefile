# minik's two commands (see README.md):
#   make up     install what is missing, build, and boot the three-node cluster with the
#               course's demo (`minik up`; `make down` takes it down)
#   make test   install what is missing, build, and run every test inside the sandbox
#               (the cluster tests twice: on netns nodes, then on VM nodes)
#   make up-vm  the same cluster as `make up`, every node a QEMU VM
# Building (cargo, which needs the network for crates) happens before entering the
# sandbox; everything that creates network objects runs inside it.

CARGO ?= cargo

# CI builds once from a fresh clone: cargo's incremental cache would only take disk space.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

.PHONY: deps build images test test-vm bench up up-vm down

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --workspace --bins

images: deps
	images/build.sh
	images/vm/build.sh --fetch

# The whole suite on netns nodes, then the cluster tests again on VM nodes (the one
# switch: MINIK_NODE_BACKEND=vm makes every `minik up` of the tests `--backend vm`).
VM_SUITE = --test cluster_launcher --test cluster_lab

test: build images
	$(CARGO) test --workspace --no-run
	images/vm/build.sh
	@rc=0; \
	scripts/sandbox.sh $(CARGO) test --workspace --offline --no-fail-fast || rc=1; \
	echo "==> the cluster tests on VM nodes (MINIK_NODE_BACKEND=vm)"; \
	MINIK_NODE_BACKEND=vm scripts/sandbox.sh $(CARGO) test --offline --no-fail-fast -p minik-tests $(VM_SUITE) || rc=1; \
	exit $$rc

# Only the cluster tests, on VM nodes.
test-vm: build images
	images/vm/build.sh
	MINIK_NODE_BACKEND=vm scripts/sandbox.sh $(CARGO) test --offline --no-fail-fast -p minik-tests $(VM_SUITE)

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

# The same cluster with every node a QEMU VM booted from the node image.
up-vm: build images
	images/vm/build.sh
	target/debug/minik up --backend vm $(MINIK_UP_FLAGS)

down:
	target/debug/minik down
