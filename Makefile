# mod_promptenchanter. `make` builds .libs/mod_promptenchanter.so; see README.md for run and test.
include apxs.mk

OBJDIR := .libs/obj
MODULE := .libs/mod_promptenchanter.so

CORE_SRCS := $(sort $(filter-out src/apache/% src/cli/%,$(wildcard src/*/*.c src/*/*/*.c)))
GLUE_SRCS := mod_promptenchanter.c $(sort $(wildcard src/apache/*.c))
CORE_OBJS := $(CORE_SRCS:%.c=$(OBJDIR)/%.o)
GLUE_OBJS := $(GLUE_SRCS:%.c=$(OBJDIR)/%.o)
HEADERS   := $(wildcard include/*.h src/*/*.h)

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := .libs/pe_unit_tests
ADMIN_TOOL := .libs/pe-admin

.PHONY: all run stop test test-unit test-integration test-guards test-memcheck bench bench-peers bench-scaling bench-rss clean format deps

all: $(MODULE) $(ADMIN_TOOL)

# The schema files, embedded in the module (the store applies them at start-up).
.libs/pe_schema_sql.h: conf/schema/sqlite3.sql conf/schema/pgsql.sql build/embed-sql.sh
	@mkdir -p .libs
	@bash build/embed-sql.sh $(filter %.sql,$^) > $@.tmp && mv $@.tmp $@
$(OBJDIR)/src/store/pe_store_dbd.o: .libs/pe_schema_sql.h

# The OpenAPI document, embedded in the module (GET /openapi.json, group openapi).
.libs/pe_openapi_doc.h: docs/openapi.json build/embed-text.sh
	@mkdir -p .libs
	@bash build/embed-text.sh pe_openapi_doc docs/openapi.json > $@.tmp && mv $@.tmp $@
$(OBJDIR)/src/apache/pe_h_openapi.o: .libs/pe_openapi_doc.h

$(OBJDIR)/src/apache/%.o $(OBJDIR)/mod_promptenchanter.o: CPPFLAGS_FOR = $(GLUE_CPPFLAGS)
$(OBJDIR)/%.o: %.c $(HEADERS) apxs.mk
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(or $(CPPFLAGS_FOR),$(CORE_CPPFLAGS)) $(ALL_CFLAGS) -c $< -o $@

$(MODULE): $(CORE_OBJS) $(GLUE_OBJS)
	@echo "  LD    $@"
	@$(CC) $(SHARED) $(SANITIZE) $(EXTRA_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# pe-admin: the operators' command-line tool (the first super-administrator), made of the core
# and the store backends, without httpd.
$(ADMIN_TOOL): src/cli/pe_admin.c $(CORE_OBJS)
	@echo "  LD    $@"
	@$(CC) $(CORE_CPPFLAGS) $(ALL_CFLAGS) $(SANITIZE) $(EXTRA_LDFLAGS) -o $@ src/cli/pe_admin.c $(CORE_OBJS) $(PKG_LIBS)


# Unit tests: every tests/unit/test_*.c defines `Suite *pe_suite_<name>(void)`; the runner
# registers them all (generated list, so a new test file needs no edit elsewhere).
.libs/pe_suites.h: $(UNIT_SRCS)
	@mkdir -p .libs
	@grep -ho 'Suite \*pe_suite_[a-z0-9_]*(void)' $(UNIT_SRCS) | sed 's/Suite \*\(.*\)(void)/PE_SUITE(\1)/' > $@.tmp && mv $@.tmp $@

$(UNIT_BIN): $(UNIT_SRCS) tests/unit/pe_unit_main.c $(wildcard tests/unit/*.h) .libs/pe_suites.h $(CORE_OBJS)
	$(CC) $(CORE_CPPFLAGS) -Itests/unit -I.libs $(ALL_CFLAGS) -o $@ $(UNIT_SRCS) tests/unit/pe_unit_main.c \
	    $(CORE_OBJS) $(PKG_LIBS) $(CHECK_LIBS) $(EXTRA_LDFLAGS)

deps:
	@bash build/install-deps.sh

# One command to run the product: install what is missing, build, start a private httpd.
run:
	@bash build/install-deps.sh
	@$(MAKE) --no-print-directory all
	@bash build/instance.sh start

stop:
	@bash build/instance.sh stop

# One command to run every test; ends with the check summary and `N passed, N failed`.
test:
	@bash build/install-deps.sh
	@bash build/node-deps.sh
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@bash build/run-tests.sh

test-unit: $(UNIT_BIN)
	@CK_DEFAULT_TIMEOUT=60 python3 tests/unit/with-stores.py $(UNIT_BIN)

test-guards:
	@bash tests/guards/run.sh

test-integration: all
	@python3 tests/integration/run.py

# The integration suite against a module built with ASan+UBSan (PE_MEMCHECK=asan) and the
# unit tests under valgrind; both must report 0 errors.
test-memcheck:
	@bash build/install-deps.sh
	@bash build/memcheck.sh

bench:
	@bash build/install-deps.sh
	@$(MAKE) --no-print-directory all
	@bash bench/run.sh

# Optional benches, not in make bench nor make test (docs/BENCHMARKS.md): the Portkey gateway next
# to PromptEnchanter (installed from the npm registry into bench/node_modules), 1/2/4 event
# children x 64/256 connections, child RSS over 200k completions.
bench-peers:
	@bash build/install-deps.sh
	@bash build/bench-peers-deps.sh
	@$(MAKE) --no-print-directory all
	@python3 bench/peers.py
bench-scaling:
	@bash build/install-deps.sh
	@$(MAKE) --no-print-directory all
	@python3 bench/scaling.py
bench-rss:
	@bash build/install-deps.sh
	@$(MAKE) --no-print-directory all
	@python3 bench/rss.py

# ---- make install / uninstall (the apxs layout) and make deb (the Debian package) ----------------
# install = install-module (the .so in `apxs -q LIBEXECDIR`; pe-admin in `apxs -q SBINDIR` when
# this build has ADMIN_TOOL) + install-conf (promptenchanter.load/.conf in mods-available; an
# edited .conf is kept and the new one written beside it as .conf.dist) + install-data (schema,
# common passwords, docs). Every path honours DESTDIR; see docs/install.md.
AP_SBINDIR    ?= $(shell $(APXS) -q SBINDIR)
PE_CONFDIR    ?= $(shell $(APXS) -q SYSCONFDIR)
PE_MODSDIR    ?= $(PE_CONFDIR)/mods-available
PE_DATADIR    ?= /usr/share/promptenchanter
PE_DOCDIR     ?= /usr/share/doc/libapache2-mod-promptenchanter
PE_LOAD_FILE  := .libs/promptenchanter.load
PE_CONF_REGISTRY = $(DESTDIR)$(PE_DATADIR)/installed-conf.sha256
PE_DOCS       := $(wildcard docs/*.md docs/openapi.json) README.md
PE_DOC_IMAGES := $(wildcard docs/console/*.png)

.PHONY: install install-module install-conf install-data uninstall deb

$(PE_LOAD_FILE): conf/mods-available/promptenchanter.load.in
	@mkdir -p .libs
	@sed 's|@LIBEXECDIR@|$(AP_LIBEXECDIR)|' $< > $@.tmp && mv $@.tmp $@

install: install-module install-conf install-data

install-module: all
	install -d $(DESTDIR)$(AP_LIBEXECDIR)
	install -m 644 $(MODULE) $(DESTDIR)$(AP_LIBEXECDIR)/mod_promptenchanter.so
	$(if $(ADMIN_TOOL),install -d $(DESTDIR)$(AP_SBINDIR))
	$(if $(ADMIN_TOOL),install -m 755 $(ADMIN_TOOL) $(DESTDIR)$(AP_SBINDIR)/pe-admin)

install-conf: $(PE_LOAD_FILE)
	@bash build/install-conf.sh $(PE_LOAD_FILE) $(DESTDIR)$(PE_MODSDIR)/promptenchanter.load $(PE_CONF_REGISTRY)
	@bash build/install-conf.sh conf/mods-available/promptenchanter.conf $(DESTDIR)$(PE_MODSDIR)/promptenchanter.conf $(PE_CONF_REGISTRY)

# The operators' console: static files served by an Alias (conf/console.conf, installed beside
# the folder; docs/console.md).
CONSOLE_DIR ?= $(PE_DATADIR)/console

install-data:
	install -d $(DESTDIR)$(PE_DATADIR)/schema $(DESTDIR)$(PE_DOCDIR) $(DESTDIR)$(CONSOLE_DIR)
	install -m 644 conf/schema/sqlite3.sql conf/schema/pgsql.sql $(DESTDIR)$(PE_DATADIR)/schema/
	install -m 644 conf/common-passwords.txt $(DESTDIR)$(PE_DATADIR)/
	install -m 644 $(PE_DOCS) $(DESTDIR)$(PE_DOCDIR)/
	$(if $(PE_DOC_IMAGES),install -d $(DESTDIR)$(PE_DOCDIR)/console)
	$(if $(PE_DOC_IMAGES),install -m 644 $(PE_DOC_IMAGES) $(DESTDIR)$(PE_DOCDIR)/console/)
	install -m 644 conf/console/index.html conf/console/console.css conf/console/console.js $(DESTDIR)$(CONSOLE_DIR)/
	install -m 644 conf/console.conf $(DESTDIR)$(CONSOLE_DIR)/../console.conf

# Removes what install put there; an edited .conf is kept (and said so), and the module is
# disabled first when it is enabled (a mods-enabled link to a missing file stops httpd).
uninstall: $(PE_LOAD_FILE)
	@bash build/install-conf.sh --remove $(PE_LOAD_FILE) $(DESTDIR)$(PE_MODSDIR)/promptenchanter.load $(PE_CONF_REGISTRY)
	@bash build/install-conf.sh --remove conf/mods-available/promptenchanter.conf $(DESTDIR)$(PE_MODSDIR)/promptenchanter.conf $(PE_CONF_REGISTRY)
	rm -f $(DESTDIR)$(AP_LIBEXECDIR)/mod_promptenchanter.so $(DESTDIR)$(AP_SBINDIR)/pe-admin
	rm -f $(DESTDIR)$(PE_DATADIR)/schema/sqlite3.sql $(DESTDIR)$(PE_DATADIR)/schema/pgsql.sql
	rm -f $(DESTDIR)$(PE_DATADIR)/common-passwords.txt $(addprefix $(DESTDIR)$(PE_DOCDIR)/,$(notdir $(PE_DOCS)))
	rm -f $(DESTDIR)$(CONSOLE_DIR)/index.html $(DESTDIR)$(CONSOLE_DIR)/console.css $(DESTDIR)$(CONSOLE_DIR)/console.js
	rm -f $(DESTDIR)$(CONSOLE_DIR)/../console.conf
	rm -f $(addprefix $(DESTDIR)$(PE_DOCDIR)/console/,$(notdir $(PE_DOC_IMAGES)))
	@rmdir $(DESTDIR)$(CONSOLE_DIR) $(DESTDIR)$(PE_DATADIR)/schema $(DESTDIR)$(PE_DATADIR) $(DESTDIR)$(PE_DOCDIR)/console $(DESTDIR)$(PE_DOCDIR) 2>/dev/null || true

# The Debian package libapache2-mod-promptenchanter (packaging files: build/debian/), built in
# .libs/deb/ from a copy of the sources; the .deb is left in .libs/deb/. DEB_LINTIAN=no skips
# the lintian run that follows the build.
deb:
	@DEB_LINTIAN=$(DEB_LINTIAN) bash build/deb.sh
# ---- end of install / deb ------------------------------------------------------------------------

format:
	clang-format -i $(CORE_SRCS) $(GLUE_SRCS) $(wildcard include/*.h src/*/*.h tests/unit/*.c tests/unit/*.h)

clean:
	rm -rf .libs

# Fuzzing: libFuzzer targets tests/fuzz/fuzz_*.c (build rules in tests/fuzz/fuzz.mk), each run for
# FUZZ_SECONDS (default 10) over its corpus; fails on any crash (docs/development.md "Fuzzing").
include tests/fuzz/fuzz.mk
.PHONY: fuzz
fuzz:
	@bash build/install-deps.sh
	@FUZZ_KEEP=$${FUZZ_KEEP:-1} bash tests/fuzz/run.sh
