/* test_cachekey.c: canonical request form, key sensitivity, scope separation, key alphabet and length. */
#include "pe_cachekey.h"
#include "pe_json.h"
#include "pe_test.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

/* Parse a JSON literal of the test. */
static json_t *J(const char *s)
{
    json_t *j = NULL;
    const char *err = NULL;

    ck_assert_msg(pe_json_parse(pe_tp, s, strlen(s), &j, &err) == 0, "bad test JSON: %s", err);
    return j;
}

/* Every byte of a key is in the allowed alphabet and the shape is right. */
static void assert_key_shape(const char *key, const char *section)
{
    size_t i, n = strlen(key);

    ck_assert_ptr_nonnull(key);
    ck_assert_uint_eq(n, 6 + strlen(section) + 1 + 64);
    ck_assert_uint_le(n, PE_CACHEKEY_MAX);
    ck_assert_uint_le(n, 250);
    ck_assert_int_eq(strncmp(key, "pe:v1:", 6), 0);
    ck_assert_int_eq(strncmp(key + 6, section, strlen(section)), 0);
    ck_assert_int_eq(key[6 + strlen(section)], ':');
    for (i = 0; i < n; i++)
        ck_assert_msg(key[i] > 0x20 && key[i] < 0x7f, "byte %u of %s", (unsigned)i, key);
    for (i = n - 64; i < n; i++)
        ck_assert_msg((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'), "hex at %u", (unsigned)i);
    ck_assert(pe_cachekey_valid(key));
}

#define BASE                                                                                                           \
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"                                  \
    "{\"role\":\"user\",\"content\":\"Q\"}],\"temperature\":0.7,\"max_tokens\":100,\"stop\":[\"x\"],"                  \
    "\"response_format\":{\"type\":\"json_object\",\"a\":1}}"

START_TEST(field_order_does_not_matter)
{
    const char *k1 = pe_cachekey_request(pe_tp, "response", J(BASE), "user:1");
    /* same content, every object (top level and nested) in another order */
    const char *k2 = pe_cachekey_request(
        pe_tp, "response",
        J("{\"response_format\":{\"a\":1,\"type\":\"json_object\"},\"stop\":[\"x\"],\"max_tokens\":100,"
          "\"messages\":[{\"content\":\"S\",\"role\":\"system\"},{\"content\":\"Q\",\"role\":\"user\"}],"
          "\"temperature\":0.7,\"model\":\"gpt-4o\"}"),
        "user:1");

    assert_key_shape(k1, "response");
    ck_assert_str_eq(k1, k2);
    /* stream flags and client labels are not part of the answer */
    ck_assert_str_eq(k1, pe_cachekey_request(pe_tp, "response",
                                             J(apr_pstrcat(pe_tp,
                                                           "{\"stream\":true,\"stream_options\":{\"include_usage\":"
                                                           "true},\"user\":\"abc\",\"metadata\":{\"k\":\"v\"},"
                                                           "\"store\":false,\"service_tier\":\"auto\",",
                                                           BASE + 1, NULL)),
                                             "user:1"));
    /* 100 and 100.0 are the same number */
    ck_assert_str_eq(pe_cachekey_request(pe_tp, "response", J("{\"model\":\"m\",\"max_tokens\":100,\"t\":[1]}"), NULL),
                     pe_cachekey_request(pe_tp, "response", J("{\"model\":\"m\",\"max_tokens\":100.0,\"t\":[1.0]}"),
                                         NULL));
}
END_TEST

/* BASE with one change applied (0..N_VARIANTS-1); every change must change the key. */
#define N_VARIANTS 9

/* BASE changed in way v. */
static json_t *variant(int v)
{
    json_t *b = pe_json_bind(pe_tp, json_deep_copy(J(BASE)));
    json_t *msgs = json_object_get(b, "messages");

    switch (v) {
    case 0:
        json_object_set_new(b, "model", json_string("gpt-4o-mini"));
        break;
    case 1: /* one trailing space in the user's text */
        json_object_set_new(json_array_get(msgs, 1), "content", json_string("Q "));
        break;
    case 2: /* same messages, other order */
        json_array_insert(msgs, 0, json_array_get(msgs, 1));
        json_array_remove(msgs, 2);
        break;
    case 3:
        json_object_set_new(b, "temperature", json_real(0.71));
        break;
    case 4:
        json_object_set_new(b, "max_tokens", json_integer(101));
        break;
    case 5:
        json_object_del(b, "stop");
        break;
    case 6: /* a nested value */
        json_object_set_new(json_object_get(b, "response_format"), "a", json_integer(2));
        break;
    case 7:
        json_object_set_new(b, "seed", json_integer(1));
        break;
    case 8:
        json_object_set_new(b, "stop_x", json_null());
        break;
    }
    return b;
}

START_TEST(changed_field_changes_key)
{
    const char *keys[N_VARIANTS + 1];
    int i, j;

    keys[N_VARIANTS] = pe_cachekey_request(pe_tp, "response", J(BASE), "user:1");
    for (i = 0; i < N_VARIANTS; i++) {
        keys[i] = pe_cachekey_request(pe_tp, "response", variant(i), "user:1");
        assert_key_shape(keys[i], "response");
    }
    ck_assert_str_eq(pe_json_str(json_array_get(json_object_get(variant(2), "messages"), 0), "role"), "user");
    for (i = 0; i <= N_VARIANTS; i++)
        for (j = 0; j < i; j++)
            ck_assert_msg(strcmp(keys[i], keys[j]) != 0, "variants %d and %d collide", i, j);
}
END_TEST

START_TEST(scope_and_section_separate_keys)
{
    json_t *b = J(BASE);
    const char *u1 = pe_cachekey_request(pe_tp, "response", b, "user:1");
    const char *u2 = pe_cachekey_request(pe_tp, "response", b, "user:2");
    const char *none = pe_cachekey_request(pe_tp, "response", b, NULL);
    const char *empty = pe_cachekey_request(pe_tp, "response", b, "");
    const char *other = pe_cachekey_request(pe_tp, "research", b, "user:1");

    ck_assert_str_ne(u1, u2);
    ck_assert_str_ne(u1, none);
    ck_assert_str_ne(none, empty);
    /* the section is part of the key, the hash is not */
    ck_assert_str_ne(u1, other);
    ck_assert_str_eq(u1 + strlen("pe:v1:response:"), other + strlen("pe:v1:research:"));
    /* the same scope and body always give the same key */
    ck_assert_str_eq(u1, pe_cachekey_request(pe_tp, "response", J(BASE), "user:1"));
    /* a scope that is not UTF-8 cannot be canonicalised: no key, so no caching */
    ck_assert_ptr_null(pe_cachekey_request(pe_tp, "response", b, "bad\xff"));
    ck_assert_ptr_null(pe_cachekey_request(pe_tp, "response", J("[1]"), "u"));
}
END_TEST

START_TEST(canonical_form)
{
    json_t *b = J("{\"b\":1.0,\"a\":[{\"y\":1,\"x\":2.5}],\"stream\":true,\"user\":\"u\",\"c\":\"\\u00e9\"}");
    json_t *copy = pe_json_bind(pe_tp, json_deep_copy(b));
    const char *c = pe_cachekey_canonical(pe_tp, b, "u1");

    ck_assert_str_eq(c, "{\"request\":{\"a\":[{\"x\":2.5,\"y\":1}],\"b\":1,\"c\":\"\xc3\xa9\"},\"scope\":\"u1\"}");
    ck_assert_str_eq(pe_cachekey_canonical(pe_tp, J("{}"), NULL), "{\"request\":{},\"scope\":null}");
    /* the caller's body is left alone (numbers, noise fields) */
    ck_assert(json_equal(b, copy));
    ck_assert(json_is_real(json_object_get(b, "b")));
    ck_assert_ptr_nonnull(json_object_get(b, "stream"));
    /* the request key is the generic key of the canonical text */
    ck_assert_str_eq(pe_cachekey_request(pe_tp, "response", b, "u1"),
                     pe_cachekey_make(pe_tp, "response", c, strlen(c)));
}
END_TEST

START_TEST(make_known_answer_and_sections)
{
    char section[40];
    const char *k;

    /* FIPS 180-2 test vector: SHA-256("abc") */
    ck_assert_str_eq(pe_cachekey_make(pe_tp, "research", "abc", 3),
                     "pe:v1:research:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert_str_eq(pe_cachekey_make(pe_tp, "search", "", 0),
                     "pe:v1:search:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* bytes after a NUL count */
    ck_assert_str_ne(pe_cachekey_make(pe_tp, "s", "a\0b", 3), pe_cachekey_make(pe_tp, "s", "a\0c", 3));
    /* invalid sections */
    ck_assert_ptr_null(pe_cachekey_make(pe_tp, "", "a", 1));
    ck_assert_ptr_null(pe_cachekey_make(pe_tp, NULL, "a", 1));
    ck_assert_ptr_null(pe_cachekey_make(pe_tp, "Response", "a", 1));
    ck_assert_ptr_null(pe_cachekey_make(pe_tp, "a b", "a", 1));
    ck_assert_ptr_null(pe_cachekey_make(pe_tp, "a:b", "a", 1));
    ck_assert_ptr_null(pe_cachekey_make(pe_tp, "a\r\nb", "a", 1));
    ck_assert_ptr_null(pe_cachekey_request(pe_tp, "bad section", J("{}"), NULL));
    memset(section, 'a', 33);
    section[33] = '\0';
    ck_assert_ptr_null(pe_cachekey_make(pe_tp, section, "a", 1));
    section[32] = '\0';
    k = pe_cachekey_make(pe_tp, section, "a", 1);
    assert_key_shape(k, section);
    ck_assert_uint_eq(strlen(k), PE_CACHEKEY_MAX);
    assert_key_shape(pe_cachekey_make(pe_tp, "research_v2-x", "a", 1), "research_v2-x");
}
END_TEST

START_TEST(random_inputs_give_valid_keys)
{
    unsigned char buf[2048];
    unsigned int seed = 12345;
    int i;
    size_t j, n;

    for (i = 0; i < 2000; i++) {
        n = (size_t)(rand_r(&seed) % sizeof(buf));
        for (j = 0; j < n; j++)
            buf[j] = (unsigned char)(rand_r(&seed) & 0xff);
        if (n > 2) {
            buf[0] = ' ';
            buf[1] = '\r';
            buf[2] = '\n';
        }
        assert_key_shape(pe_cachekey_make(pe_tp, "fuzz", buf, n), "fuzz");
    }
}
END_TEST

START_TEST(valid_rejects_malformed)
{
    const char *good = pe_cachekey_make(pe_tp, "response", "x", 1);

    ck_assert(pe_cachekey_valid(good));
    ck_assert(!pe_cachekey_valid(NULL));
    ck_assert(!pe_cachekey_valid(""));
    ck_assert(!pe_cachekey_valid("pe:v1:response:"));
    ck_assert(!pe_cachekey_valid(apr_pstrcat(pe_tp, good, "0", NULL)));
    ck_assert(!pe_cachekey_valid(apr_pstrndup(pe_tp, good, strlen(good) - 1)));
    ck_assert(!pe_cachekey_valid(apr_pstrcat(pe_tp, "pe:v2:", good + 6, NULL)));
    ck_assert(!pe_cachekey_valid(apr_pstrcat(pe_tp, "pe:v1::", good + 15, NULL)));
    ck_assert(!pe_cachekey_valid(apr_pstrcat(pe_tp, "pe:v1:Res:", good + 15, NULL)));
    ck_assert(!pe_cachekey_valid("pe:v1:response:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    ck_assert(!pe_cachekey_valid("pe:v1:response:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a "));
}
END_TEST

/* ---- pe_cachekey_completion: the incremental key of a completion ---- */

/* A request of the tests: messages and params from JSON literals. */
static pe_enhance_req_t creq(const char *model, pe_rtype_t rt, const char *messages, const char *params)
{
    pe_enhance_req_t q;

    memset(&q, 0, sizeof(q));
    q.model = model;
    q.rtype = rt;
    q.messages = J(messages);
    q.params = params ? J(params) : NULL;
    return q;
}

#define CMSGS "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Q\"}]"
#define CPARAMS "{\"temperature\":0.7,\"max_tokens\":100,\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\",\"a\":1}}"

static const char *ckey(const pe_enhance_req_t *q, const char *scope, const char *sys)
{
    const char *k = pe_cachekey_completion(pe_tp, "response", scope, q, sys, NULL, 0);

    assert_key_shape(k, "response");
    return k;
}

START_TEST(completion_key_stable_across_field_order)
{
    pe_enhance_req_t a = creq("gpt-4o", PE_RTYPE_BPE, CMSGS, CPARAMS);
    pe_enhance_req_t b = creq("gpt-4o", PE_RTYPE_BPE,
                              "[{\"content\":\"S\",\"role\":\"system\"},{\"content\":\"Q\",\"role\":\"user\"}]",
                              "{\"response_format\":{\"a\":1,\"type\":\"json_object\"},\"stop\":[\"x\"],"
                              "\"max_tokens\":100.0,\"temperature\":0.7}");
    /* fields that never change the answer */
    pe_enhance_req_t c = creq("gpt-4o", PE_RTYPE_BPE, CMSGS,
                              "{\"stream\":true,\"stream_options\":{\"include_usage\":true},\"user\":\"u9\","
                              "\"metadata\":{\"a\":\"b\"},\"store\":true,\"service_tier\":\"auto\",\"temperature\":0.7,"
                              "\"max_tokens\":100,\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\",\"a\":1}}");
    const char *k = ckey(&a, "user:1", "SYS");

    ck_assert_str_eq(k, ckey(&b, "user:1", "SYS"));
    ck_assert_str_eq(k, ckey(&c, "user:1", "SYS"));
    /* the same request twice, and the stream flag of the request itself */
    a.stream = 1;
    ck_assert_str_eq(k, ckey(&a, "user:1", "SYS"));
    /* the system prompt is identified by its text, wherever the text lives */
    ck_assert_str_eq(k, ckey(&a, "user:1", apr_pstrdup(pe_tp, "SYS")));
    /* a built-in prompt (its digest kept once per process) keys as a copy of its text does, every time */
    {
        const char *bi = pe_enhance_builtin_prompt(PE_RTYPE_BPE);
        const char *kb = ckey(&a, "user:1", bi);

        ck_assert_str_eq(kb, ckey(&a, "user:1", apr_pstrdup(pe_tp, bi)));
        ck_assert_str_eq(kb, ckey(&a, "user:1", bi));
        ck_assert_str_ne(kb, ckey(&a, "user:1", pe_enhance_builtin_prompt(PE_RTYPE_TOT)));
    }
}
END_TEST

START_TEST(completion_key_changes_with_every_part)
{
    static const char *const msgs[] = {
        "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"q\"}]",
        "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"assistant\",\"content\":\"Q\"}]",
        "[{\"role\":\"user\",\"content\":\"Q\"},{\"role\":\"system\",\"content\":\"S\"}]",
        "[{\"role\":\"system\",\"content\":\"S\"}]",
        "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Q\",\"name\":\"n\"}]",
        "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Q\"}]}]",
    };
    static const char *const params[] = {
        "{\"temperature\":0.8,\"max_tokens\":100,\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\",\"a\":1}}",
        "{\"temperature\":0.7,\"max_tokens\":101,\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\",\"a\":1}}",
        "{\"temperature\":0.7,\"max_tokens\":100,\"stop\":[\"y\"],\"response_format\":{\"type\":\"json_object\",\"a\":1}}",
        "{\"temperature\":0.7,\"max_tokens\":100,\"stop\":\"x\",\"response_format\":{\"type\":\"json_object\",\"a\":1}}",
        "{\"temperature\":0.7,\"max_tokens\":100,\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\",\"a\":2}}",
        "{\"temperature\":0.7,\"max_tokens\":100,\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\"}}",
        "{\"temperature\":0.7,\"max_tokens\":100,\"stop\":[\"x\"]}",
        "{\"temperature\":0.7,\"max_tokens\":100,\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\",\"a\":1},"
        "\"seed\":1}",
        "{\"temperature\":0.7,\"max_tokens\":100,\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\",\"a\":1},"
        "\"top_p\":null}",
        "{\"temperature\":0.7,\"max_tokens\":\"100\",\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\",\"a\":1}}",
        "{\"temperature\":0.7,\"max_tokens\":100,\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\",\"a\":true}}",
        "{\"temperature\":0.7,\"max_tokens\":100,\"stop\":[\"x\"],\"response_format\":{\"type\":\"json_object\",\"a\":1,"
        "\"user\":\"u\"}}", /* "user" is noise at the top only */
    };
    const char *base, *k;
    apr_hash_t *seen = apr_hash_make(pe_tp);
    pe_enhance_req_t q = creq("gpt-4o", PE_RTYPE_BPE, CMSGS, CPARAMS);
    pe_enhance_research_t res = {"topic", "found text", NULL, 0};
    static const char *const srcs[] = {"https://a.example/"};
    pe_enhance_research_t res2 = {"topic", "found text", srcs, 1};
    size_t i;

#define SEEN(key)                                                                                                      \
    do {                                                                                                               \
        const char *kk_ = (key);                                                                                       \
        ck_assert_msg(!apr_hash_get(seen, kk_, APR_HASH_KEY_STRING), "collision at %s:%d", __FILE__, __LINE__);        \
        apr_hash_set(seen, kk_, APR_HASH_KEY_STRING, "1");                                                             \
    } while (0)

    base = ckey(&q, "user:1", "SYS");
    SEEN(base);
    SEEN(ckey(&q, "user:2", "SYS"));
    SEEN(ckey(&q, NULL, "SYS"));
    SEEN(ckey(&q, "", "SYS"));
    SEEN(ckey(&q, "user:1", "SYS2"));
    SEEN(ckey(&q, "user:1", NULL));
    SEEN(ckey(&q, "user:1", ""));
    q.model = "gpt-4o-mini";
    SEEN(ckey(&q, "user:1", "SYS"));
    q.model = "gpt-4o";
    q.rtype = PE_RTYPE_BCOT;
    SEEN(ckey(&q, "user:1", "SYS"));
    q.rtype = PE_RTYPE_NONE;
    SEEN(ckey(&q, "user:1", "SYS"));
    q.rtype = PE_RTYPE_BPE;
    for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        pe_enhance_req_t v = creq("gpt-4o", PE_RTYPE_BPE, msgs[i], CPARAMS);

        SEEN(ckey(&v, "user:1", "SYS"));
    }
    for (i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        pe_enhance_req_t v = creq("gpt-4o", PE_RTYPE_BPE, CMSGS, params[i]);

        SEEN(ckey(&v, "user:1", "SYS"));
    }
    /* research appended */
    k = pe_cachekey_completion(pe_tp, "response", "user:1", &q, "SYS", &res, 1);
    SEEN(k);
    SEEN(pe_cachekey_completion(pe_tp, "response", "user:1", &q, "SYS", &res2, 1));
    res.content = "other text";
    SEEN(pe_cachekey_completion(pe_tp, "response", "user:1", &q, "SYS", &res, 1));
    /* research given with a count of 0 is no research */
    ck_assert_str_eq(base, pe_cachekey_completion(pe_tp, "response", "user:1", &q, "SYS", &res, 0));
    /* another section, another key; a bad section, none */
    SEEN(pe_cachekey_completion(pe_tp, "research", "user:1", &q, "SYS", NULL, 0));
    ck_assert_ptr_null(pe_cachekey_completion(pe_tp, "Bad section", "user:1", &q, "SYS", NULL, 0));
    /* nothing mixes up across part boundaries: "ab"+"c" vs "a"+"bc" */
    {
        pe_enhance_req_t x = creq("ab", PE_RTYPE_BPE, CMSGS, CPARAMS), y = creq("a", PE_RTYPE_BPE, CMSGS, CPARAMS);

        ck_assert_str_ne(ckey(&x, "s", "SYS"), ckey(&y, "bs", "SYS"));
        ck_assert_str_ne(ckey(&x, "user:1", "c"), ckey(&y, "user:1", "bc"));
    }
#undef SEEN
}
END_TEST

/* A large request (many messages, a long system prompt, wide objects) is hashed, stably. */
START_TEST(completion_key_large_request)
{
    pe_enhance_req_t q;
    json_t *msgs = pe_json_bind(pe_tp, json_array()), *params = pe_json_bind(pe_tp, json_object());
    char *sys = apr_palloc(pe_tp, 5001);
    const char *k1, *k2;
    int i;

    memset(sys, 'x', 5000);
    sys[5000] = '\0';
    for (i = 0; i < 300; i++)
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", i % 2 ? "assistant" : "user", "content",
                                              apr_psprintf(pe_tp, "message %d %0800d", i, i)));
    for (i = 0; i < 100; i++) /* more keys than the walk keeps on its stack */
        json_object_set_new(params, apr_psprintf(pe_tp, "f%03d", 99 - i), json_integer(i));
    memset(&q, 0, sizeof(q));
    q.model = "m";
    q.rtype = PE_RTYPE_BPE;
    q.messages = msgs;
    q.params = params;
    k1 = ckey(&q, "user:1", sys);
    json_object_set_new(params, "f050", json_integer(1234));
    k2 = ckey(&q, "user:1", sys);
    ck_assert_str_ne(k1, k2);
    json_object_set_new(params, "f050", json_integer(49));
    ck_assert_str_eq(k1, ckey(&q, "user:1", sys));
    sys[4999] = 'y';
    ck_assert_str_ne(k1, ckey(&q, "user:1", sys));
}
END_TEST

/* The cachekey suite. */
Suite *pe_suite_cachekey(void)
{
    Suite *s = suite_create("cachekey");
    TCase *tc = pe_tcase("cachekey");

    tcase_add_test(tc, field_order_does_not_matter);
    tcase_add_test(tc, changed_field_changes_key);
    tcase_add_test(tc, scope_and_section_separate_keys);
    tcase_add_test(tc, canonical_form);
    tcase_add_test(tc, make_known_answer_and_sections);
    tcase_add_test(tc, random_inputs_give_valid_keys);
    tcase_add_test(tc, valid_rejects_malformed);
    tcase_add_test(tc, completion_key_stable_across_field_order);
    tcase_add_test(tc, completion_key_changes_with_every_part);
    tcase_add_test(tc, completion_key_large_request);
    suite_add_tcase(s, tc);
    return s;
}
