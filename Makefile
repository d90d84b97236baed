# hlsedge: `make run` starts the demo origin and the edge; `make run-fleet` the same with two edges sharing bans,
# kicks and limits through a redis-server it starts; `make run-tiers` two edges behind one shield; `make test`
# installs what the tests need and runs them.
GO      ?= go
BIN     := bin/hlsedge
# Debian packages the tests drive for real: ffmpeg/ffprobe as the HLS client, chromium for the player test,
# systemd-analyze to verify the shipped unit, redis-server for the fleet (each test starts its own on a free
# loopback port).
TEST_DEBS := ffmpeg chromium chromium-driver systemd redis-server
# Commands the build and the tests run, each with the Debian package that provides it: npm installs hls.js and the
# test's JavaScript, node runs the browser test and resolves URIs with the WHATWG URL parser in the playlist tests.
# They are checked by command rather than by package, so that a node installed otherwise (which bundles npm) counts.
NODE_CMDS := node:nodejs npm:npm
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get
# APT_INSTALL installs the Debian packages listed in the shell variable missing, if any, when we are root.
APT_INSTALL = if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run as root or install them)"; exit 1; fi; \
	fi
NPM     ?= npm
# hls.js is pinned in package-lock.json and embedded in the binary by proxy/web; the copy is not committed.
HLSJS   := proxy/web/assets/hls.min.js

.PHONY: build run run-fleet run-tiers test deps node-deps bench fuzz vet clean

build: $(HLSJS)
	$(GO) build -o $(BIN) ./cmd/hlsedge

# npm ci installs exactly the lock file (hls.js, and playwright-core for the browser test; it never downloads a
# browser: the test drives Debian's chromium). It reruns when package.json or the lock file change.
node_modules/.package-lock.json: package.json package-lock.json | node-deps
	$(NPM) ci --no-audit --no-fund
	@touch $@

$(HLSJS): node_modules/.package-lock.json
	cp node_modules/hls.js/dist/hls.min.js $@

run: build
	./$(BIN) demo

# run-fleet is the demo as a fleet: redis-server (Debian's, installed when missing and we are root) on a free
# loopback port with its data in a temporary directory, the origin, and two edges (8080/8090 and 8180/8190).
run-fleet: build
	@missing=""; command -v redis-server >/dev/null 2>&1 || missing=" redis-server"; \
	$(APT_INSTALL)
	./$(BIN) demo --nodes 2

# run-tiers is the demo in tiers: the origin as the headend, a shield in front of it (8280/8290) and two edges
# whose origin is the shield (8080/8090 and 8180/8190); it prints the headend's stats URL to count its fetches.
run-tiers: build
	./$(BIN) demo --tiers

# deps installs the Debian packages the tests need when they are missing and we are root (CI, fresh machines).
deps: node-deps
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(APT_INSTALL)

# node-deps does the same for node and npm, which the build needs too.
node-deps:
	@missing=""; for c in $(NODE_CMDS); do command -v $${c%%:*} >/dev/null 2>&1 || missing="$$missing $${c#*:}"; done; \
	$(APT_INSTALL)

test: deps $(HLSJS)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# bench runs the standard scenario: the demo origin and the edge, JWT viewers at real cadence, then the summary.
bench: build
	BIN=$(BIN) ./bench/scenario.sh

# fuzz runs every fuzz target for FUZZTIME each; new crashers land in the package's testdata/fuzz.
FUZZTIME ?= 30s
fuzz:
	for p in ./playlist ./authz ./proxy ./signaling ./bench ./bench/synthorigin; do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p || exit 1; done; \
	done

vet: $(HLSJS)
	$(GO) vet ./...

clean:
	rm -rf bin $(HLSJS)
