/* test_credits.c: credit days and the limits object (the store's atomic take / refund / lazy
 * daily reset are in the store's conformance suite, test_store.c). */
#include "pe_credits.h"
#include "pe_test.h"

#include <apr_strings.h>
#include <stdio.h>

START_TEST(test_day)
{
    /* 2023-11-14T22:13:20Z = 1700000000 */
    apr_time_t t = apr_time_from_sec(1700000000);

    ck_assert_int_eq(pe_credits_day(t, 0), 19675);
    ck_assert_int_eq(pe_credits_day(apr_time_from_sec(19675LL * 86400), 0), 19675);
    ck_assert_int_eq(pe_credits_day(apr_time_from_sec(19675LL * 86400 - 1), 0), 19674);
    /* with a 23:00 reset, 22:13 is still the previous day */
    ck_assert_int_eq(pe_credits_day(t, 23), 19674);
    ck_assert_int_eq(pe_credits_day(apr_time_from_sec(19675LL * 86400 + 23 * 3600), 23), 19675);
    ck_assert_int_eq(pe_credits_day(t, 99), 19675);
    ck_assert_int_eq(pe_credits_day(apr_time_from_sec(-1), 0), -1);
    ck_assert_int_eq(pe_credits_next_reset(t, 0), apr_time_from_sec(19676LL * 86400));
    ck_assert_int_eq(pe_credits_next_reset(t, 23), apr_time_from_sec(19674LL * 86400 + 86400 + 23 * 3600));
}
END_TEST

START_TEST(test_limits_json)
{
    json_t *j = pe_credits_limits_json(0, 31, apr_time_from_sec(19676LL * 86400 + 3600));

    ck_assert_int_eq(json_integer_value(json_object_get(j, "conversation_limit")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "reset")), 31);
    ck_assert_str_eq(json_string_value(json_object_get(j, "resets_at")), "2023-11-15T01:00:00Z");
    json_decref(j);
}
END_TEST


Suite *pe_suite_credits(void)
{
    Suite *s = suite_create("credits");
    TCase *tc = pe_tcase("day");

    tcase_add_test(tc, test_day);
    tcase_add_test(tc, test_limits_json);
    suite_add_tcase(s, tc);
    return s;
}
