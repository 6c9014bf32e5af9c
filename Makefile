# kvsrelay: self-healing live relays into AWS Kinesis Video Streams.
#
#   make deps      install the system packages (GStreamer, plugins, test tools)
#   make build     build/libgstkvsrelay.so and the test build in build/test-plugins/
#   make test      build and run every test (unit and integration)
#   make demo      live recovery demo: a flaky local source relayed through reconnectbin
#   make install   put the plugin where GStreamer finds it (user folder; PREFIX/DESTDIR for a system folder)
#   make install-systemd  relay recipes and the kvs-relay@ / kvscredfile@ units (see pipelines/README.md)
#   make docs      regenerate docs/elements.md from the elements' registration
#   make bench     side-by-side benchmark of recovery, stall detection, overhead and memory

SHELL      := /bin/bash
GO         ?= go
BUILD      := build
PLUGIN     := $(BUILD)/libgstkvsrelay.so
TESTPLUGIN := $(BUILD)/test-plugins/libgstkvsrelay.so
GOFLAGS_SO := -buildmode=c-shared -trimpath -ldflags="-s -w"
SOURCES    := $(shell find plugin internal test/kvssinkstandin -name '*.go' 2>/dev/null) go.mod go.sum

# make install: the user's plugin folder by default; PREFIX=/usr/local (and
# DESTDIR for packaging) installs into the system's GStreamer plugin folder.
PREFIX     ?=
MULTIARCH  := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null)
ifeq ($(PREFIX),)
PLUGINDIR  ?= $(HOME)/.local/share/gstreamer-1.0/plugins
BINDIR     ?= $(HOME)/.local/bin
else
PLUGINDIR  ?= $(PREFIX)/lib/$(MULTIARCH)/gstreamer-1.0
BINDIR     ?= $(PREFIX)/bin
endif

TEST_TIMEOUT ?= 30m

.PHONY: all deps build test test-unit test-kvssink demo install uninstall docs docs-check bench clean

all: build

deps:
	@scripts/install-deps.sh

build: $(PLUGIN) $(TESTPLUGIN)

# Built beside and renamed into place, so a process loading the plugin
# (a running relay, a test) never sees a half-written file.
$(PLUGIN): $(SOURCES)
	@mkdir -p $(dir $@)
	$(GO) build $(GOFLAGS_SO) -o $@.tmp ./plugin
	@mv -f $@.tmp $@ && rm -f $@.h $(basename $@).h

# The test build carries the kvssink stand-in; it is never installed.
$(TESTPLUGIN): $(SOURCES)
	@mkdir -p $(dir $@)
	$(GO) build -tags kvsrelay_testelements $(GOFLAGS_SO) -o $@.tmp ./plugin
	@mv -f $@.tmp $@ && rm -f $@.h $(basename $@).h

# Every test, unit and integration. Integration tests find the fresh test
# build through KVSRELAY_TEST_PLUGIN_DIR; each runs with its own registry.
test: deps build
	KVSRELAY_TEST_PLUGIN_DIR=$(CURDIR)/$(dir $(TESTPLUGIN)) \
	  $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -p 2 ./...

test-unit:
	$(GO) test -race ./internal/...

# Runs the relay and credential-rotation tests against a real kvssink
# uploading to the local KVS endpoint (test/kvsendpoint), with the shipped
# build (no stand-in). Only the TestRealKVSSink* tests: the other relay and
# credential tests read the stand-in's report, which the real element lacks.
test-kvssink: build
	@if [ -z "$$KVSSINK_PLUGIN_DIR" ]; then \
	  echo "test-kvssink: skipped: set KVSSINK_PLUGIN_DIR to the folder holding a real libgstkvssink.so"; \
	else \
	  $(GO) test -count=1 ./test/kvsendpoint/ && \
	  KVSRELAY_TEST_PLUGIN_DIR=$(CURDIR)/$(BUILD) KVSSINK_PLUGIN_DIR=$$KVSSINK_PLUGIN_DIR \
	    $(GO) test -count=1 -v -timeout $(TEST_TIMEOUT) -run 'RealKVSSink' ./test/relay/; \
	fi

demo: deps $(PLUGIN)
	$(GO) run ./cmd/kvsrelay-demo -plugin-dir $(CURDIR)/$(BUILD) $(DEMO_ARGS)

$(BUILD)/kvscredfile: $(SOURCES) $(shell find cmd/kvscredfile -name '*.go')
	$(GO) build -trimpath -o $@ ./cmd/kvscredfile

install: $(PLUGIN) $(BUILD)/kvscredfile
	install -d $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(BINDIR)
	install -m 0644 $(PLUGIN) $(DESTDIR)$(PLUGINDIR)/libgstkvsrelay.so
	install -m 0755 $(BUILD)/kvscredfile $(DESTDIR)$(BINDIR)/kvscredfile
	@echo "installed $(DESTDIR)$(PLUGINDIR)/libgstkvsrelay.so and $(DESTDIR)$(BINDIR)/kvscredfile"

uninstall:
	rm -f $(DESTDIR)$(PLUGINDIR)/libgstkvsrelay.so $(DESTDIR)$(BINDIR)/kvscredfile

docs:
	$(GO) run ./cmd/gst-inspect-helper docs -o docs/elements.md

docs-check:
	$(GO) run ./cmd/gst-inspect-helper docs -o docs/elements.md -check

bench: deps build
	KVSRELAY_TEST_PLUGIN_DIR=$(CURDIR)/$(dir $(TESTPLUGIN)) $(GO) run ./cmd/kvsrelay-bench -o docs/benchmarks.md $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)

include pipelines/install.mk
