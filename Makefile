# flexblock: build, test, demo. `make help` lists the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN := bin/flexblock
GO_LDFLAGS := -s -w -X main.version=$(VERSION)
# urfave_cli_no_docs drops urfave/cli's man/markdown generator (and its
# package init) from the binary: every kubelet call pays for what is linked.
GO_TAGS := urfave_cli_no_docs
FUZZTIME ?= 20s
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help deps build build-provisioner build-test conformance conformance-bin test unit fuzz lint selftest e2e demo bench bench-smoke clean image k8s cluster-up cluster-down cluster-test cluster-test-ci cluster-test-provisioner cluster-bench demo-calls

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

deps: ## install host tools and Go (idempotent)
	@scripts/deps.sh

build-test: ## build the test binary (adds the loop backend and crash hooks) into bin/flexblock-test
	CGO_ENABLED=0 go build -tags $(GO_TAGS),flexblocktest -o bin/flexblock-test .

build: ## build the static driver binary into bin/flexblock (it must link no k8s.io module)
	CGO_ENABLED=0 go build -trimpath -tags $(GO_TAGS) -ldflags '$(GO_LDFLAGS)' -o $(BIN) .
	@! go version -m $(BIN) | grep 'k8s.io/' || { echo "bin/flexblock links k8s.io modules: they belong in provisioner/"; exit 1; }

build-provisioner: ## the dynamic provisioner (own module: client-go) into bin/flexblock-provisioner
	cd provisioner && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -X main.version=$(VERSION)' -o ../bin/flexblock-provisioner .

# The cluster scenarios CI runs: all but node_reboot (a second node boot,
# ~3-6 min; the driver's side of a reboot is e2e's reboot test) and
# rbd_inline (inline RBD volumes are used by shared_readonly,
# kubelet_restart and failures), to keep a cold CI run inside its budget.
CI_CLUSTER_SCENARIOS := install rbd_pv_pvc shared_readonly iscsi_two_luns iscsi_chap kubelet_restart failures uninstall

test: deps lint unit fuzz bench-smoke conformance selftest e2e cluster-test-ci ## everything CI runs: lint, unit + host tests, fuzz, kubelet conformance, test-bed self-test, real-kernel e2e, the real cluster's scenarios

unit: ## unit, contract, loop-device, installer and examples tests (root needed for the loop ones)
	go test -count=1 ./...
	cd bench && go test -count=1 ./...
	cd test/examples && go test -count=1 -mod=mod ./...
	cd provisioner && CGO_ENABLED=0 go test -trimpath -count=1 ./...

fuzz: ## run the fuzz targets for a bounded time each
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./driver/options
	go test -run '^$$' -fuzz '^FuzzParseMkfs$$' -fuzztime $(FUZZTIME) ./driver/filesystem

lint: ## gofmt, go vet, staticcheck, shellcheck
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: files above need formatting"; exit 1; }
	go vet ./... && go vet -tags flexblocktest ./...
	go run $(STATICCHECK) ./...
	cd bench && go vet ./... && go run $(STATICCHECK) ./...
	cd test/examples && go vet -mod=mod ./...
	cd provisioner && go vet ./... && go run $(STATICCHECK) ./...
	shellcheck -x -S warning scripts/*.sh scripts/vm/*.sh scripts/vm/initramfs-init scripts/e2e/*.sh scripts/cluster/*.sh bench/baseline/*.sh
	shellcheck -x -S warning -s bash -e SC2034 scripts/e2e/scenarios/*.sh scripts/e2e/selftest/*.sh bench/vm/scenarios/*.sh

# The k8s.io packages are compiled once for conformance-bin, the cluster's
# Kubernetes (scripts/cluster/build-k8s.sh) and the provisioner when all
# use the same compile flags (CGO_ENABLED=0 -trimpath) and versions: Go's
# build cache then serves the later builds (minutes of a cold CI run).
conformance-bin: ## build the kubelet conformance test binary (k8s.io/kubernetes, separate module)
	CGO_ENABLED=0 go -C test/kubelet test -trimpath -c -o $(CURDIR)/bin/kubelet-conformance.test .

conformance: build build-test conformance-bin ## the driver through kubelet's own FlexVolume code, on the host (loop devices); the VM part runs in make e2e
	cd test/kubelet && FLEXBLOCK_CONFORMANCE_DRIVER=$(CURDIR)/bin/flexblock-test $(CURDIR)/bin/kubelet-conformance.test -test.count=1

selftest: ## the VM test bed checks itself: failing and hanging scenarios are reported, no qemu survives
	scripts/e2e/selftest.sh

e2e: build build-test conformance-bin ## all scenarios in one real-kernel VM boot
	scripts/e2e/e2e.sh

image: build build-provisioner ## the installer image (examples/Dockerfile, buildah, offline) and the test images, as docker archives in bin/
	scripts/cluster/deps.sh
	scripts/cluster/images.sh bin $(VERSION)

k8s: ## build the pinned Kubernetes (one multi-call binary, cached per version in ~/.cache/flexblock)
	scripts/cluster/build-k8s.sh

cluster-up: deps build image ## start the test cluster: control plane on the host, the node in the real-kernel VM
	scripts/cluster/up.sh

cluster-down: ## stop the test cluster; no process left
	scripts/cluster/down.sh

cluster-test: deps build image ## install flexblock and apply the examples with kubectl on the test cluster (starts and stops it unless one is up)
	scripts/cluster/test.sh

demo: deps build image ## the user's flow on a real cluster: up, install with kubectl, the examples applied and read back, uninstall, down
	scripts/cluster/demo.sh

demo-calls: ## RBD and iSCSI volume lifecycles in the real-kernel VM, call by call as kubelet makes them
	scripts/demo.sh

bench: deps build image ## all benchmarks, VM and test cluster included (root; quiet machine): rewrites BENCHMARKS.md
	cd bench && go run ./report -vm -cluster

cluster-test-ci: deps build image ## the cluster scenarios make test runs (CI_CLUSTER_SCENARIOS)
	CLUSTER_SCENARIOS="$(CI_CLUSTER_SCENARIOS)" scripts/cluster/test.sh

cluster-test-provisioner: deps build image ## the dynamic provisioner on the test cluster (install, then scenario provisioner: ~16 min; not in make test)
	CLUSTER_SCENARIOS="install provisioner uninstall" scripts/cluster/test.sh

cluster-bench: deps build image ## benchmark 6 alone: pods through the test cluster; replaces its section of BENCHMARKS.md
	cd bench && go run ./report -cluster-only

bench-smoke: ## every benchmark, a few iterations at small sizes (the report's -quick run): proves they and the generator run, asserts no figure
	cd bench && go run ./report -quick -o /dev/null

clean:
	rm -rf bin
