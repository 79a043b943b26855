/*
 * pe_fuzz.h: what every libFuzzer target in tests/fuzz shares (include it from exactly one file).
 *
 * APR is initialised once; each input gets its own pool (pe_fuzz_pool / pe_fuzz_done), so nothing
 * leaks from one input to the next and LeakSanitizer sees real leaks only. Core log messages go
 * to a quiet sink that still formats them. PE_FUZZ_CHECK states a property of the API under test:
 * a violation aborts, which libFuzzer reports, minimises and keeps like any other crash.
 */
#ifndef PE_FUZZ_H
#define PE_FUZZ_H

#include "pe_logno.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** Abort with the failed property (file, line, text) when cond is false. */
#define PE_FUZZ_CHECK(cond)                                                                                          \
    do {                                                                                                             \
        if (!(cond)) {                                                                                               \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);                             \
            abort();                                                                                                 \
        }                                                                                                            \
    } while (0)

/* Helpers a target may leave unused. */
#define PE_FUZZ_HELPER static __attribute__((unused))

static apr_pool_t *pe_fuzz_root;

/* The core's log sink: messages are dropped, but each must be a proper string. */
static void pe_fuzz_sink(int level, apr_status_t rv, const char *msg)
{
    (void)rv;
    PE_FUZZ_CHECK(level >= PE_LOG_CRIT && level <= PE_LOG_DEBUG);
    PE_FUZZ_CHECK(msg && strlen(msg) < 1024);
}

/* Optional per-target start-up, run once after APR (define PE_FUZZ_SETUP before including). */
#ifdef PE_FUZZ_SETUP
static void PE_FUZZ_SETUP(void);
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&pe_fuzz_root, NULL) != APR_SUCCESS)
        abort();
    pe_log_set(pe_fuzz_sink);
#ifdef PE_FUZZ_SETUP
    PE_FUZZ_SETUP();
#endif
    return 0;
}

/** A fresh pool for one input. */
PE_FUZZ_HELPER apr_pool_t *pe_fuzz_pool(void)
{
    apr_pool_t *p;

    if (apr_pool_create(&p, pe_fuzz_root) != APR_SUCCESS)
        abort();
    return p;
}

/** Release everything one input used. */
PE_FUZZ_HELPER void pe_fuzz_done(apr_pool_t *p)
{
    apr_pool_destroy(p);
}

/** The input as a NUL-terminated string in p (an embedded NUL ends it early, as in C callers). */
PE_FUZZ_HELPER char *pe_fuzz_cstr(apr_pool_t *p, const uint8_t *data, size_t size)
{
    return apr_pstrmemdup(p, (const char *)data, size);
}

/**
 * Split the input at the first byte sep: *head gets the part before it (NUL-terminated in p),
 * and the return value the rest (NULL when sep does not occur; *rest_len its length).
 */
PE_FUZZ_HELPER const char *pe_fuzz_split(apr_pool_t *p, const uint8_t *data, size_t size, int sep, char **head,
                                         size_t *rest_len)
{
    const uint8_t *at = memchr(data, sep, size);

    if (!at) {
        *head = pe_fuzz_cstr(p, data, size);
        *rest_len = 0;
        return NULL;
    }
    *head = pe_fuzz_cstr(p, data, (size_t)(at - data));
    *rest_len = size - (size_t)(at - data) - 1;
    return (const char *)at + 1;
}

/** Whether s[0..n) is valid UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). */
PE_FUZZ_HELPER int pe_fuzz_utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned int c = s[i], lo = 0x80, hi = 0xbf;
        size_t k, j;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            k = 2;
        else if (c >= 0xe0 && c <= 0xef)
            k = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else
            return 0;
        if (i + k > n || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (j = 2; j < k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xbf)
                return 0;
        i += k;
    }
    return 1;
}

#endif
