# Kaiwa's front door. `make help` lists the targets.

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
WASM    := public/web/app.wasm
# The browser build depends on everything the wasm main compiles.
WASM_SRC := $(shell find app shared wasm -name '*.go' 2>/dev/null) go.mod go.sum

.PHONY: help run build wasm test vet test-go bench fuzz clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: build ## build everything and serve on http://localhost:8080 with data/kaiwa.db
	./bin/kaiwa serve

build: bin/kaiwa ## bin/kaiwa: the server with the web app embedded, nothing else to deploy

bin/kaiwa: $(WASM) $(shell find server shared app public -type f 2>/dev/null)
	$(GO) build -trimpath -ldflags '-s -w -X main.version=$(VERSION)' -o $@ ./server/cmd/kaiwa

wasm: $(WASM) ## public/web/app.wasm with its brotli and gzip copies

$(WASM): $(WASM_SRC)
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags '-s -w' -o $@ ./wasm
	$(GO) run ./server/cmd/precompress $@

test: vet $(WASM) test-go ## everything: go vet (native and wasm), go test -race, the browser tests

vet: ## go vet, native and for the browser build
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./app/... ./shared/... ./wasm/...

# The browser tests run inside go test: they need the wasm built first, and Chromium.
# Most packages spend their time waiting (on the browser, on token lifetimes, on timers), not
# computing: three test binaries at once keep two cores busy (four starve the load tests'
# readers). Within a package, parallel tests run two at a time (go test's default on two
# cores): more Chromiums at once only fight for CPU.
test-go:
	$(GO) test -race -count=1 -p 3 -timeout 25m ./...

# PEER: a Centrifugo binary to run the fan-out beside (BENCHMARKS.md says how one was built).
bench: build ## the benchmark suite: prints a table and records it in BENCHMARKS.md (PEER=centrifugo adds the side-by-side)
	./bin/kaiwa bench -o BENCHMARKS.md $(if $(PEER),-peer $(PEER))

fuzz: ## run each fuzz target for a while (FUZZTIME, default 30s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-30s} $$pkg || exit 1; \
	  done; \
	done

clean: ## remove build outputs (never data/)
	rm -rf bin $(WASM) $(WASM).br $(WASM).gz
