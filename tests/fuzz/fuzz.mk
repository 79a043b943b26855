# tests/fuzz/fuzz.mk: libFuzzer targets (included by the Makefile; docs/development.md "Fuzzing").
#
# The core sources are compiled a second time with clang, ASan, UBSan and libFuzzer's coverage
# instrumentation into .libs/fuzz/obj (the gcc build in .libs/obj is not touched), archived, and
# each tests/fuzz/fuzz_<name>.c is linked against that archive as .libs/fuzz/fuzz_<name>.

FUZZ_CC     ?= $(or $(shell command -v clang-14 2>/dev/null),clang)
FUZZ_DIR    := .libs/fuzz
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 $(FUZZ_SAN) -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
FUZZ_SRCS   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS   := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_DIR)/%)
FUZZ_OBJS   := $(CORE_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_LIB    := $(FUZZ_DIR)/libpe_core.a

.PHONY: fuzz-build

$(FUZZ_DIR)/obj/%.o: %.c $(HEADERS) tests/fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	@echo "  CC    $< (fuzz)"
	@$(FUZZ_CC) $(CORE_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_DIR)/obj/src/store/pe_store_dbd.o: .libs/pe_schema_sql.h

# An archive, so a target links only the core objects it uses.
$(FUZZ_LIB): $(FUZZ_OBJS)
	@rm -f $@
	@ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/pe_fuzz.h $(FUZZ_LIB)
	@echo "  LD    $@"
	@$(FUZZ_CC) $(CORE_CPPFLAGS) $(FUZZ_CFLAGS) -Werror -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(PKG_LIBS)

fuzz-build: $(FUZZ_BINS)
