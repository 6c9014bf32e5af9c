# install.mk: systemd units and pipeline recipes. Included by the top-level
# Makefile, which defines PREFIX (default empty: a per-user install, for
# which systemd units make no sense, so install-systemd uses /usr/local).
#
#   sudo make install PREFIX=/usr/local && sudo make install-systemd PREFIX=/usr/local
#
# Units go to $(DESTDIR)/etc/systemd/system with /usr/local replaced by
# PREFIX; the example settings file goes to /etc/kvs-relay/ unless one is
# already there (an edited copy is never overwritten).

SYSTEMD_PREFIX  := $(if $(PREFIX),$(PREFIX),/usr/local)
SYSTEMD_UNITDIR ?= /etc/systemd/system
KVSRELAY_LIBDIR := $(SYSTEMD_PREFIX)/lib/kvsrelay
KVSRELAY_ETCDIR ?= /etc/kvs-relay
PIPELINE_SCRIPTS := $(wildcard pipelines/*.sh)
SYSTEMD_UNITS    := pipelines/systemd/kvs-relay@.service pipelines/systemd/kvscredfile@.service

.PHONY: install-systemd uninstall-systemd

install-systemd:
	install -d $(DESTDIR)$(KVSRELAY_LIBDIR)/pipelines $(DESTDIR)$(SYSTEMD_UNITDIR) $(DESTDIR)$(KVSRELAY_ETCDIR)
	install -m 0755 pipelines/kvs-relay-run $(DESTDIR)$(KVSRELAY_LIBDIR)/kvs-relay-run
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
	@# Reload only on a live systemd and a real install (not into DESTDIR).
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
	  systemctl daemon-reload && echo "systemd reloaded"; \
	else \
	  echo "systemd not running here (or DESTDIR install): skipped daemon-reload"; \
	fi
	@echo "next: cp $(KVSRELAY_ETCDIR)/example-cam.env $(KVSRELAY_ETCDIR)/cam-1.env, edit, systemctl enable --now kvs-relay@cam-1"

uninstall-systemd:
	rm -f $(foreach u,$(SYSTEMD_UNITS),$(DESTDIR)$(SYSTEMD_UNITDIR)/$(notdir $(u)))
	rm -rf $(DESTDIR)$(KVSRELAY_LIBDIR)/pipelines $(DESTDIR)$(KVSRELAY_LIBDIR)/kvs-relay-run
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
