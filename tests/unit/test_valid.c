/* test_valid.c: request field validation. */
#include "pe_json.h"
#include "pe_test.h"
#include "pe_valid.h"

#include <string.h>

static const json_t *parse(const char *s)
{
    json_t *j;
    const char *err;

    ck_assert_int_eq(pe_json_parse(pe_tp, s, strlen(s), &j, &err), 0);
    return j;
}

START_TEST(valid_fields)
{
    static const char *const allowed[] = {"name", "age", "kind", "flag", NULL};
    static const char *const kinds[] = {"Personal", "Business", NULL};
    pe_valid_t v;
    long long age = -1;

    pe_valid_init(&v, pe_tp, parse("{\"name\":\"Zoë\",\"age\":30,\"flag\":true}"), allowed);
    ck_assert_str_eq(pe_valid_str(&v, "name", 1, 2, 3), "Zoë"); /* 3 code points, 4 bytes */
    ck_assert_int_eq(pe_valid_int(&v, "age", 1, 0, 200, &age), 1);
    ck_assert_int_eq(age, 30);
    {
        pe_valid_t w;

        pe_valid_init(&w, pe_tp, parse("{\"age\":300}"), allowed);
        ck_assert_int_eq(pe_valid_int(&w, "age", 1, 0, 200, &age), 0);
        ck_assert_str_eq(pe_valid_first(&w), "field 'age' must be between 0 and 200");
    }
    ck_assert_str_eq(pe_valid_enum(&v, "kind", kinds, "Personal"), "Personal");
    ck_assert_int_eq(pe_valid_bool(&v, "flag", 0), 1);
    ck_assert(pe_valid_ok(&v));

    pe_valid_init(&v, pe_tp, parse("{\"name\":\"Z\",\"age\":\"x\",\"kind\":\"personal\",\"evil\":1,\"flag\":1}"),
                  allowed);
    ck_assert_ptr_null(pe_valid_str(&v, "name", 1, 2, 100));
    ck_assert_int_eq(pe_valid_int(&v, "age", 1, 0, 200, &age), 0);
    ck_assert_ptr_null(pe_valid_enum(&v, "kind", kinds, "Personal"));
    pe_valid_bool(&v, "flag", 0);
    ck_assert_ptr_null(pe_valid_str(&v, "missing", 1, 0, 10));
    ck_assert(!pe_valid_ok(&v));
    ck_assert_int_eq(v.errors->nelts, 6);
    ck_assert_str_eq(pe_valid_first(&v), "unknown field 'evil'");
    {
        json_t *a = pe_json_bind(pe_tp, pe_valid_errors_json(&v));
        ck_assert_int_eq(json_array_size(a), 6);
        ck_assert_str_eq(json_string_value(json_array_get(a, 5)), "field 'missing' is required");
    }
}
END_TEST

START_TEST(valid_lengths_and_nul)
{
    static const char *const allowed[] = {"s", NULL};
    pe_valid_t v;

    pe_valid_init(&v, pe_tp, parse("{\"s\":\"abcdef\"}"), allowed);
    ck_assert_ptr_null(pe_valid_str(&v, "s", 1, 0, 5));
    ck_assert_ptr_nonnull(strstr(pe_valid_first(&v), "at most 5"));
    pe_valid_init(&v, pe_tp, parse("{\"s\":null}"), allowed);
    ck_assert_ptr_null(pe_valid_str(&v, "s", 0, 0, 5));
    ck_assert(pe_valid_ok(&v));
    pe_valid_init(&v, pe_tp, parse("{\"s\":[1]}"), allowed);
    ck_assert_ptr_null(pe_valid_str(&v, "s", 0, 0, 5));
    ck_assert(!pe_valid_ok(&v));
    ck_assert_int_eq(pe_valid_utf8_chars("\xe2\x82\xac", 3), 1);
    ck_assert_int_eq(pe_valid_utf8_chars("\xe2\x82", 2), -1);
    ck_assert_int_eq(pe_valid_utf8_chars("\xff", 1), -1);
}
END_TEST

Suite *pe_suite_valid(void)
{
    Suite *s = suite_create("valid");
    TCase *tc = pe_tcase("valid");

    tcase_add_test(tc, valid_fields);
    tcase_add_test(tc, valid_lengths_and_nul);
    suite_add_tcase(s, tc);
    return s;
}
