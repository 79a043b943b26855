# mod_promptenchanter. `make` builds .libs/mod_promptenchanter.so; see README.md for run and test.
include apxs.mk

OBJDIR := .libs/obj
MODULE := .libs/mod_promptenchanter.so

CORE_SRCS := $(sort $(filter-out src/apache/%,$(wildcard src/*/*.c src/*/*/*.c)))
GLUE_SRCS := mod_promptenchanter.c $(sort $(wildcard src/apache/*.c))
CORE_OBJS := $(CORE_SRCS:%.c=$(OBJDIR)/%.o)
GLUE_OBJS := $(GLUE_SRCS:%.c=$(OBJDIR)/%.o)
HEADERS   := $(wildcard include/*.h src/*/*.h)

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := .libs/pe_unit_tests
ADMIN_TOOL := .libs/pe-admin

.PHONY: all install run stop test test-unit test-integration test-guards test-memcheck bench clean format deps

all: $(MODULE) $(ADMIN_TOOL)

# The schema files, embedded in the module (the store applies them at start-up).
.libs/pe_schema_sql.h: conf/schema/sqlite3.sql conf/schema/pgsql.sql build/embed-sql.sh
	@mkdir -p .libs
	@bash build/embed-sql.sh $(filter %.sql,$^) > $@.tmp && mv $@.tmp $@
$(OBJDIR)/src/store/pe_store_dbd.o: .libs/pe_schema_sql.h

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
$(ADMIN_TOOL): tools/pe_admin.c $(CORE_OBJS)
	@echo "  LD    $@"
	@$(CC) $(CORE_CPPFLAGS) $(ALL_CFLAGS) $(SANITIZE) $(EXTRA_LDFLAGS) -o $@ tools/pe_admin.c $(CORE_OBJS) $(PKG_LIBS)

# Installs the module into httpd's module folder and pe-admin beside httpd's own tools
# (htpasswd, htdbm): $(DESTDIR)$(AP_SBINDIR).
# The operators' console: its static files go to $(CONSOLE_DIR), the folder that the Apache
# snippet conf/console.conf (installed beside it) names (docs/console.md).
CONSOLE_DIR ?= /usr/share/promptenchanter/console
install: all
	install -d $(DESTDIR)$(AP_LIBEXECDIR) $(DESTDIR)$(AP_SBINDIR) $(DESTDIR)$(CONSOLE_DIR)
	install -m 644 conf/console.conf $(DESTDIR)$(CONSOLE_DIR)/../console.conf
	install -m 644 $(MODULE) $(DESTDIR)$(AP_LIBEXECDIR)/mod_promptenchanter.so
	install -m 755 $(ADMIN_TOOL) $(DESTDIR)$(AP_SBINDIR)/pe-admin
	install -m 644 conf/console/index.html conf/console/console.css conf/console/console.js $(DESTDIR)$(CONSOLE_DIR)/

# Unit tests: every tests/unit/test_*.c defines `Suite *pe_suite_<name>(void)`; the runner
# registers them all (generated list, so a new test file needs no edit elsewhere).
.libs/pe_suites.h: $(UNIT_SRCS)
	@mkdir -p .libs
	@grep -ho 'Suite \*pe_suite_[a-z0-9_]*(void)' $(UNIT_SRCS) | sed 's/Suite \*\(.*\)(void)/PE_SUITE(\1)/' > $@.tmp && mv $@.tmp $@

$(UNIT_BIN): $(UNIT_SRCS) tests/unit/pe_unit_main.c tests/unit/pe_test.h tests/unit/pe_test_mongo.h .libs/pe_suites.h $(CORE_OBJS)
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
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@bash build/run-tests.sh

test-unit: $(UNIT_BIN)
	@CK_DEFAULT_TIMEOUT=60 python3 tests/unit/with-pg.py python3 tests/unit/with-mongo.py $(UNIT_BIN)

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

format:
	clang-format -i $(CORE_SRCS) $(GLUE_SRCS) $(wildcard include/*.h src/*/*.h tests/unit/*.c tests/unit/*.h)

clean:
	rm -rf .libs
