# install.mk: systemd units and pipeline recipes. Included by the top-level
# Makefile.
#
#   sudo make install install-systemd        # everything under /usr/local
#   sudo make install-systemd PREFIX=/usr    # or under /usr
#
# A unit runs as a dynamic user with ProtectHome=yes, so it can only use a
# system-wide install. install-systemd therefore installs, under
# PREFIX (default /usr/local, also when PREFIX is empty):
#   - the plugin into PREFIX/lib/<multiarch>/gstreamer-1.0, where the run
#     script looks for it (a per-user "make install" into ~/.local is
#     invisible to the unit), kvscredfile into PREFIX/bin (the sidecar
#     unit runs it from there) and kvsrelay-cameras beside it;
#   - the run script, the liveness probe (kvs-relay-liveness) and recipes
#     into PREFIX/lib/kvsrelay;
#   - the units into $(DESTDIR)/etc/systemd/system, with /usr/local replaced
#     by PREFIX;
#   - the example settings file into /etc/kvs-relay/ unless one is already
#     there (an edited copy is never overwritten).
# It refuses a PREFIX under /home, /root or a temporary folder, which the
# units cannot see (ProtectHome=yes, PrivateTmp=yes).
#
# Uses PLUGIN, BUILD and MULTIARCH of the top-level Makefile; KVSRELAY_PLUGIN_SO
# and KVSCREDFILE_BIN name other builds to install.

SYSTEMD_PREFIX  := $(if $(PREFIX),$(PREFIX),/usr/local)
SYSTEMD_UNITDIR ?= /etc/systemd/system
SYSTEMD_PLUGINDIR := $(SYSTEMD_PREFIX)/lib/$(if $(MULTIARCH),$(MULTIARCH)/)gstreamer-1.0
SYSTEMD_BINDIR  := $(SYSTEMD_PREFIX)/bin
KVSRELAY_LIBDIR := $(SYSTEMD_PREFIX)/lib/kvsrelay
KVSRELAY_ETCDIR ?= /etc/kvs-relay
KVSRELAY_PLUGIN_SO ?= $(PLUGIN)
KVSCREDFILE_BIN    ?= $(BUILD)/kvscredfile
KVSRELAY_CAMERAS_BIN ?= $(BUILD)/kvsrelay-cameras
PIPELINE_SCRIPTS := $(wildcard pipelines/*.sh)
SYSTEMD_UNITS    := pipelines/systemd/kvs-relay@.service pipelines/systemd/kvscredfile@.service

.PHONY: install-systemd uninstall-systemd

install-systemd: $(KVSRELAY_PLUGIN_SO) $(KVSCREDFILE_BIN) $(KVSRELAY_CAMERAS_BIN)
	@case "$(SYSTEMD_PREFIX)" in \
	  /*) ;; \
	  *) echo "install-systemd: PREFIX=$(PREFIX) is not an absolute path: use sudo make install-systemd PREFIX=/usr/local (or PREFIX=/usr)" >&2; exit 1;; \
	esac; \
	case "$(SYSTEMD_PREFIX)/" in \
	  /home/*|/root/*|/run/user/*|/tmp/*|/var/tmp/*) \
	    echo "install-systemd: the units cannot read PREFIX=$(SYSTEMD_PREFIX) (ProtectHome=yes, PrivateTmp=yes): use sudo make install-systemd PREFIX=/usr/local (or PREFIX=/usr)" >&2; exit 1;; \
	esac; \
	if [ -z "$(DESTDIR)" ] && ! { [ -w "$(SYSTEMD_UNITDIR)" ] || { [ ! -e "$(SYSTEMD_UNITDIR)" ] && [ "$$(id -u)" = 0 ]; }; }; then \
	  echo "install-systemd: installs system-wide ($(SYSTEMD_UNITDIR), $(SYSTEMD_PREFIX)): run it as root: sudo make install-systemd$(if $(PREFIX), PREFIX=$(PREFIX))" >&2; exit 1; \
	fi
	install -d $(DESTDIR)$(SYSTEMD_PLUGINDIR) $(DESTDIR)$(SYSTEMD_BINDIR) \
	  $(DESTDIR)$(KVSRELAY_LIBDIR)/pipelines $(DESTDIR)$(SYSTEMD_UNITDIR) $(DESTDIR)$(KVSRELAY_ETCDIR)
	@# The plugin is replaced by rename, so a running relay keeps its mapped copy.
	install -m 0644 $(KVSRELAY_PLUGIN_SO) $(DESTDIR)$(SYSTEMD_PLUGINDIR)/.libgstkvsrelay.so.tmp
	mv -f $(DESTDIR)$(SYSTEMD_PLUGINDIR)/.libgstkvsrelay.so.tmp $(DESTDIR)$(SYSTEMD_PLUGINDIR)/libgstkvsrelay.so
	install -m 0755 $(KVSCREDFILE_BIN) $(DESTDIR)$(SYSTEMD_BINDIR)/.kvscredfile.tmp
	mv -f $(DESTDIR)$(SYSTEMD_BINDIR)/.kvscredfile.tmp $(DESTDIR)$(SYSTEMD_BINDIR)/kvscredfile
	install -m 0755 $(KVSRELAY_CAMERAS_BIN) $(DESTDIR)$(SYSTEMD_BINDIR)/kvsrelay-cameras
	install -m 0755 pipelines/kvs-relay-run $(DESTDIR)$(KVSRELAY_LIBDIR)/kvs-relay-run
	install -m 0755 pipelines/kvs-relay-liveness $(DESTDIR)$(KVSRELAY_LIBDIR)/kvs-relay-liveness
	for f in $(PIPELINE_SCRIPTS); do \
	  case $$f in *common.sh) mode=0644;; *) mode=0755;; esac; \
	  install -m $$mode $$f $(DESTDIR)$(KVSRELAY_LIBDIR)/pipelines/; \
	done
	install -m 0644 pipelines/README.md $(DESTDIR)$(KVSRELAY_LIBDIR)/pipelines/README.md
	for u in $(SYSTEMD_UNITS); do \
	  sed 's#/usr/local/#$(SYSTEMD_PREFIX)/#g' $$u > $(DESTDIR)$(SYSTEMD_UNITDIR)/$$(basename $$u).tmp && \
	  chmod 0644 $(DESTDIR)$(SYSTEMD_UNITDIR)/$$(basename $$u).tmp && \
	  mv $(DESTDIR)$(SYSTEMD_UNITDIR)/$$(basename $$u).tmp $(DESTDIR)$(SYSTEMD_UNITDIR)/$$(basename $$u); \
	done
	@if [ ! -e $(DESTDIR)$(KVSRELAY_ETCDIR)/example-cam.env ]; then \
	  install -m 0644 pipelines/env/example-cam.env $(DESTDIR)$(KVSRELAY_ETCDIR)/example-cam.env; \
	fi
	@if [ ! -e $(DESTDIR)$(KVSRELAY_ETCDIR)/cameras.example.yaml ]; then \
	  install -m 0644 pipelines/env/cameras.example.yaml $(DESTDIR)$(KVSRELAY_ETCDIR)/cameras.example.yaml; \
	fi
	@# Reload only on a live systemd and a real install (not into DESTDIR).
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
	  systemctl daemon-reload && echo "systemd reloaded"; \
	else \
	  echo "systemd not running here (or DESTDIR install): skipped daemon-reload"; \
	fi
	@echo "installed the plugin into $(SYSTEMD_PLUGINDIR), kvscredfile into $(SYSTEMD_BINDIR), the recipes into $(KVSRELAY_LIBDIR), the units into $(SYSTEMD_UNITDIR)"
	@echo "next: cp $(KVSRELAY_ETCDIR)/example-cam.env $(KVSRELAY_ETCDIR)/cam1.env, edit, systemctl enable --now kvs-relay@cam1"
	@echo "  or, for many cameras: cp $(KVSRELAY_ETCDIR)/cameras.example.yaml $(KVSRELAY_ETCDIR)/cameras.yaml, edit, kvsrelay-cameras apply $(KVSRELAY_ETCDIR)/cameras.yaml"

uninstall-systemd:
	rm -f $(foreach u,$(SYSTEMD_UNITS),$(DESTDIR)$(SYSTEMD_UNITDIR)/$(notdir $(u)))
	rm -rf $(DESTDIR)$(KVSRELAY_LIBDIR)/pipelines $(DESTDIR)$(KVSRELAY_LIBDIR)/kvs-relay-run $(DESTDIR)$(KVSRELAY_LIBDIR)/kvs-relay-liveness
	rm -f $(DESTDIR)$(SYSTEMD_PLUGINDIR)/libgstkvsrelay.so $(DESTDIR)$(SYSTEMD_BINDIR)/kvscredfile $(DESTDIR)$(SYSTEMD_BINDIR)/kvsrelay-cameras
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
