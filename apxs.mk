# apxs.mk: compile and link rules for mod_promptenchanter, taken from `apxs -q`.
# The top Makefile includes this file. Nothing here hard-codes a distribution path.
#
# Two kinds of objects:
#   core  src/<concern>/*.c (not src/apache): httpd-free, compiled WITHOUT the httpd include
#         directory, so an httpd header there is a compile error. The unit tests link these only.
#   glue  src/apache/*.c and mod_promptenchanter.c: the httpd hooks, handlers and config.

APXS ?= $(shell command -v apxs2 2>/dev/null || command -v apxs 2>/dev/null)

ifneq ($(APXS),)
AP_CC          := $(shell $(APXS) -q CC)
AP_INCLUDEDIR  := $(shell $(APXS) -q INCLUDEDIR)
AP_CPPFLAGS    := $(shell $(APXS) -q EXTRA_CPPFLAGS)
AP_CFLAGS      := $(shell $(APXS) -q CFLAGS)
AP_LIBEXECDIR  := $(shell $(APXS) -q LIBEXECDIR)
AP_SBINDIR     := $(shell $(APXS) -q SBINDIR)
HTTPD          := $(shell $(APXS) -q SBINDIR)/$(shell $(APXS) -q TARGET)
endif

PKGS := apr-1 apr-util-1 jansson libcurl openssl libargon2 libxml-2.0 libmongoc-1.0 libbson-1.0
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

CC ?= $(AP_CC)
# Warnings: unused parameters are allowed because hook signatures are fixed by httpd;
# missing field initialisers because command_rec/route tables end with a {NULL} sentinel.
WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
        -Wformat=2 -Wformat-security -Wimplicit-fallthrough -Wpointer-arith -Wshadow
OPT ?= -O2 -g
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong
# SANITIZE, EXTRA_CFLAGS and EXTRA_LDFLAGS are hooks for `make test-asan` and callers;
# they never replace the flags above.
SANITIZE ?=
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=

CORE_CPPFLAGS := -Iinclude -I.libs -D_GNU_SOURCE $(PKG_CFLAGS)
GLUE_CPPFLAGS := $(CORE_CPPFLAGS) -I$(AP_INCLUDEDIR) $(AP_CPPFLAGS)
ALL_CFLAGS    := $(OPT) $(WARN) $(HARDEN) -fPIC -fvisibility=hidden $(SANITIZE) $(EXTRA_CFLAGS)
SHARED        := -shared -Wl,-z,relro,-z,now
