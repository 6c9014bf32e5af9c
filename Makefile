# kvsrelay: self-healing live relays into AWS Kinesis Video Streams.
#
#   make deps      install the system packages (GStreamer, plugins, test tools) and Go when none >= 1.21 is found
#   make build     build/libgstkvsrelay.so, kvscredfile, gst-inspect-helper, and the test build in build-test/
#   make test      make deps, build and run every test (unit and integration), then the real-kvssink
#                  tests when kvssink's sources are in ../shared/third_party (KVSSINK_SOURCES) or make kvssink
#                  built it; test-run skips deps and the real kvssink
#   make kvssink   build AWS's kvssink (no distribution packages it) into ~/.cache/kvsrelay and print the
#                  GST_PLUGIN_PATH line that uses it; a second run reuses the cache
#   make test-kvssink  the relay tests against that real kvssink (or KVSSINK_PLUGIN_DIR's) and a local KVS endpoint
#   make demo      live recovery demo: a flaky local source relayed through reconnectbin
#   make install   put the plugin where GStreamer finds it (user folder; PREFIX/DESTDIR for a system folder)
#   make install-systemd  relay recipes and the kvs-relay@ / kvscredfile@ units (see pipelines/README.md)
#   make docs      regenerate docs/elements.md from the elements' registration
#   make bench     side-by-side benchmark of recovery, stall detection, overhead, memory and relay density
#   make soak      every protocol's relay under CPU hogs and a seeded random fault schedule (~10 min;
#                  SOAK_FAULTS=1000 for the long form, SOAK_SEED=n to replay); table into docs/benchmarks.md

SHELL      := /bin/bash

# Go: the go on PATH when it is >= 1.21, else $(KVSRELAY_GO_DIR)/bin/go
# (/usr/local/go, where make deps installs it), so a PATH without
# /usr/local/go/bin works too; its folder goes first on the recipes' PATH
# (tests run go). Every recipe running Go starts with $(CHECK_GO): a missing
# or too old Go is one sentence saying what to do, not "go: not found".
GO         ?= $(shell scripts/find-go.sh)
GO         := $(GO)
CHECK_GO    = @scripts/find-go.sh --check '$(GO)'
export PATH := $(if $(findstring /,$(GO)),$(dir $(GO)):)$(PATH)
# Go >= 1.21 fetches the Go version go.mod asks for, unless a distribution's
# go.env says GOTOOLCHAIN=local; an explicit GOTOOLCHAIN is kept.
export GOTOOLCHAIN ?= auto

BUILD      := build
PLUGIN     := $(BUILD)/libgstkvsrelay.so
# The test build (with the kvssink stand-in) lives outside build/: GStreamer
# scans plugin folders recursively, so GST_PLUGIN_PATH=$PWD/build would
# otherwise load the stand-in as "kvssink".
TESTBUILD  := build-test
TESTPLUGIN := $(TESTBUILD)/libgstkvsrelay.so
CREDFILE   := $(BUILD)/kvscredfile
HELPER     := $(BUILD)/gst-inspect-helper
CAMERAS    := $(BUILD)/kvsrelay-cameras
GOFLAGS_SO := -buildmode=c-shared -trimpath -ldflags="-s -w"
SOURCES    := $(shell find plugin internal test/kvssinkstandin \( -name '*.go' -o -name '*.c' -o -name '*.h' \) 2>/dev/null) go.mod go.sum

# make install: by default the user's plugin folder, which GStreamer scans
# ($XDG_DATA_HOME/gstreamer-1.0/plugins, ~/.local/share/gstreamer-1.0/plugins
# when XDG_DATA_HOME is unset), programs into ~/.local/bin. PREFIX=/usr installs into GStreamer's own system folder,
# /usr/lib/<triplet>/gstreamer-1.0. Any other prefix works but is not scanned
# by default: PREFIX=/usr/local gives /usr/local/lib/<triplet>/gstreamer-1.0,
# which a relay must put on GST_PLUGIN_PATH (the kvs-relay@ units do).
# DESTDIR stages an install for packaging and means PREFIX=/usr unless PREFIX
# is given: a package never installs into the packager's home.
PREFIX     ?= $(if $(DESTDIR),/usr)
MULTIARCH  := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null)
ifeq ($(PREFIX),)
PLUGINDIR  ?= $(or $(XDG_DATA_HOME),$(HOME)/.local/share)/gstreamer-1.0/plugins
BINDIR     ?= $(HOME)/.local/bin
else
PLUGINDIR  ?= $(PREFIX)/lib/$(MULTIARCH)/gstreamer-1.0
BINDIR     ?= $(PREFIX)/bin
endif
INSTALL_FILES := $(PLUGIN) $(CREDFILE) $(HELPER) $(CAMERAS)

TEST_TIMEOUT ?= 30m

.PHONY: all deps build kvssink test test-run test-unit test-kvssink test-kvssink-if-sources demo demo-run install install-check-built uninstall docs docs-check bench bench-run soak soak-run clean

all: build

deps:
	@scripts/install-deps.sh

build: $(PLUGIN) $(TESTPLUGIN) $(CREDFILE) $(HELPER) $(CAMERAS)

# Built beside and renamed into place, so a process loading the plugin
# (a running relay, a test) never sees a half-written file.
$(PLUGIN): $(SOURCES)
	$(CHECK_GO)
	@mkdir -p $(dir $@)
	$(GO) build $(GOFLAGS_SO) -o $@.tmp ./plugin
	@mv -f $@.tmp $@ && rm -f $@.h $(basename $@).h

# The test build carries the kvssink stand-in; it is never installed.
$(TESTPLUGIN): $(SOURCES)
	$(CHECK_GO)
	@mkdir -p $(dir $@)
	$(GO) build -tags kvsrelay_testelements $(GOFLAGS_SO) -o $@.tmp ./plugin
	@mv -f $@.tmp $@ && rm -f $@.h $(basename $@).h

$(CREDFILE): $(SOURCES) $(shell find cmd/kvscredfile -name '*.go')
	$(CHECK_GO)
	$(GO) build -trimpath -o $@ ./cmd/kvscredfile

# One settings file listing a host's cameras -> kvs-relay@ instances, or a
# camera group's ConfigMap. Pure Go.
$(CAMERAS): $(shell find internal/cameras cmd/kvsrelay-cameras -name '*.go') go.mod go.sum
	$(CHECK_GO)
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/kvsrelay-cameras

# Without cgo: the doctor then runs, and says what is missing, on a host
# without GStreamer's libraries (its docs subcommand needs a cgo build).
$(HELPER): $(SOURCES) $(shell find cmd/gst-inspect-helper -name '*.go')
	$(CHECK_GO)
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/gst-inspect-helper

# AWS's kvssink, built for this machine from pinned sources (see the script).
kvssink:
	@scripts/build-kvssink.sh

# test, demo and bench install what they need first (make deps), then build
# and run: one after the other, also under make -j. make test ends with the
# real-kvssink tests when kvssink's sources are at hand (as in CI).
test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory test-run
	@$(MAKE) --no-print-directory test-kvssink-if-sources

demo bench soak:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory $@-run

# Every test, unit and integration, against the kvssink stand-in. Integration
# tests find the fresh test build through KVSRELAY_TEST_PLUGIN_DIR and the
# shipped one through KVSRELAY_PLUGIN_DIR; each runs with its own registry.
# KVSSINK_PLUGIN_DIR is cleared: the real-kvssink tests need the shipped
# build (test-kvssink), and with the test build they would fail.
test-run: build
	$(CHECK_GO)
	KVSRELAY_TEST_PLUGIN_DIR=$(abspath $(dir $(TESTPLUGIN))) KVSRELAY_PLUGIN_DIR=$(abspath $(dir $(PLUGIN))) KVSSINK_PLUGIN_DIR= \
	  $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -p 2 ./...

test-unit:
	$(CHECK_GO)
	$(GO) test -race ./internal/...

# Runs the relay and credential-rotation tests against a real kvssink
# uploading to the local KVS endpoint (test/kvsendpoint), with the shipped
# build (no stand-in). Only the TestRealKVSSink* tests: the other relay and
# credential tests read the stand-in's report, which the real element lacks.
# The kvssink is KVSSINK_PLUGIN_DIR's, else make kvssink's (built first
# when not cached). The calibrated ones run the test build instead, its
# stand-in renamed, and feed the real kvssink and the stand-in the same stream.
test-kvssink: build
	$(CHECK_GO)
	@dir=$$KVSSINK_PLUGIN_DIR; \
	if [ -z "$$dir" ]; then dir=$$(scripts/build-kvssink.sh --plugin-dir) || exit 1; fi; \
	echo "test-kvssink: the real kvssink in $$dir"; \
	$(GO) test -count=1 ./test/kvsendpoint/ && \
	KVSRELAY_TEST_PLUGIN_DIR=$(abspath $(BUILD)) KVSRELAY_STANDIN_PLUGIN_DIR=$(abspath $(TESTBUILD)) KVSSINK_PLUGIN_DIR=$$dir \
	  $(GO) test -count=1 -v -timeout $(TEST_TIMEOUT) -run 'RealKVSSink' ./test/relay/

# make test's last step: test-kvssink when KVSSINK_PLUGIN_DIR is set, the
# sources are at hand or make kvssink has built it; else one line saying why
# not (from the script).
test-kvssink-if-sources:
	@if [ -z "$$KVSSINK_PLUGIN_DIR" ]; then \
	  dir=$$(scripts/build-kvssink.sh --if-sources); rc=$$?; \
	  if [ $$rc -eq 3 ]; then exit 0; elif [ $$rc -ne 0 ]; then exit $$rc; fi; \
	  export KVSSINK_PLUGIN_DIR=$$dir; \
	fi; \
	$(MAKE) --no-print-directory test-kvssink

demo-run: $(PLUGIN)
	$(CHECK_GO)
	$(GO) run ./cmd/kvsrelay-demo -plugin-dir $(abspath $(BUILD)) $(DEMO_ARGS)

# Under sudo, install what the user built and never build: root's PATH (sudo
# resets it) may have no Go, and a root build leaves root-owned files in
# build/ and root's caches. Root itself (CI, a root shell) builds as usual.
install: $(if $(filter-out root,$(SUDO_USER)),install-check-built,$(INSTALL_FILES))
	install -d $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(BINDIR)
	install -m 0644 $(PLUGIN) $(DESTDIR)$(PLUGINDIR)/libgstkvsrelay.so
	install -m 0755 $(CREDFILE) $(DESTDIR)$(BINDIR)/kvscredfile
	install -m 0755 $(HELPER) $(DESTDIR)$(BINDIR)/gst-inspect-helper
	install -m 0755 $(CAMERAS) $(DESTDIR)$(BINDIR)/kvsrelay-cameras
	@echo "installed $(DESTDIR)$(PLUGINDIR)/libgstkvsrelay.so, $(DESTDIR)$(BINDIR)/kvscredfile, gst-inspect-helper and kvsrelay-cameras"

install-check-built:
	@if [ -z "$(PREFIX)" ]; then \
	  echo "install: sudo make install without PREFIX would install into root's home ($(PLUGINDIR)): run make install without sudo for your user, or sudo make install PREFIX=/usr for GStreamer's system folder" >&2; \
	  exit 1; \
	fi
	@if ! $(MAKE) --no-print-directory -q $(INSTALL_FILES) 2>/dev/null; then \
	  echo "install: $(INSTALL_FILES) are missing or older than the sources, and sudo make install does not build as root: run make build as $(SUDO_USER) (without sudo), then sudo make install$(if $(PREFIX), PREFIX=$(PREFIX)) again" >&2; \
	  exit 1; \
	fi

uninstall:
	rm -f $(DESTDIR)$(PLUGINDIR)/libgstkvsrelay.so $(DESTDIR)$(BINDIR)/kvscredfile $(DESTDIR)$(BINDIR)/gst-inspect-helper $(DESTDIR)$(BINDIR)/kvsrelay-cameras

docs:
	$(CHECK_GO)
	$(GO) run ./cmd/gst-inspect-helper docs -o docs/elements.md

docs-check:
	$(CHECK_GO)
	$(GO) run ./cmd/gst-inspect-helper docs -o docs/elements.md -check

bench-run: build
	$(CHECK_GO)
	KVSRELAY_TEST_PLUGIN_DIR=$(abspath $(dir $(TESTPLUGIN))) $(GO) run ./test/bench -o docs/benchmarks.md $(BENCH_ARGS)

# The soak (test/soak): SOAK_DURATION of faults (default 9m, about 10 min in
# all) or SOAK_FAULTS faults in total (1000: over an hour); SOAK_SEED replays
# a run's schedule. It fails on any crash, a relay whose output went
# backwards or that did not come back; the table goes into docs/benchmarks.md
# either way. make test runs its short form (40 s of faults, ~90 s).
SOAK_DURATION ?= 9m
SOAK_TIMEOUT  ?= 6h
soak-run: build
	$(CHECK_GO)
	KVSRELAY_TEST_PLUGIN_DIR=$(abspath $(dir $(TESTPLUGIN))) KVSRELAY_PLUGIN_DIR=$(abspath $(dir $(PLUGIN))) \
	  SOAK_DURATION='$(SOAK_DURATION)' SOAK_FAULTS='$(SOAK_FAULTS)' SOAK_SEED='$(SOAK_SEED)' SOAK_HOG_NICE='$(SOAK_HOG_NICE)' \
	  SOAK_DOCS=$(abspath docs/benchmarks.md) \
	  $(GO) test -count=1 -v -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' ./test/soak/

clean:
	rm -rf $(BUILD) $(TESTBUILD)

include pipelines/install.mk
