/*
 * fuzz_json.c: the JSON reader of request bodies (pe_json_parse) and field validation (pe_valid_*,
 * with the account rules of the registration route) on arbitrary bytes.
 *
 * Properties: a parse either gives a value no deeper than PE_JSON_MAX_DEPTH or a message; a parsed
 * value dumps to text that parses back to an equal value; the error envelope made from any parse
 * message is valid JSON; the validator's error list agrees with its ok/first answers.
 */
#include "pe_fuzz.h"

#include "pe_identity.h"
#include "pe_json.h"
#include "pe_valid.h"

/* The registration route's fields (src/apache/pe_h_users.c) plus one of each other kind. */
static const char *const fuzz_fields[] = {"username", "name",    "email",  "password", "user_type",
                                          "about_me", "hobbies", "amount", "active",   NULL};
static const char *const fuzz_types[] = {"Personal", "Business", "Education", NULL};

/* Validate a body the way the user routes do; check the validator's own bookkeeping. */
static void fuzz_validate(apr_pool_t *p, const json_t *body)
{
    const char *username, *email, *password, *lower = NULL;
    long long amount = 0;
    json_t *errs;
    pe_valid_t v;

    pe_valid_init(&v, p, body, fuzz_fields);
    username = pe_valid_str(&v, "username", 1, 1, 200);
    (void)pe_valid_str(&v, "name", 1, 2, 100);
    email = pe_valid_str(&v, "email", 1, 3, 254);
    password = pe_valid_str(&v, "password", 1, 1, 1024);
    (void)pe_valid_enum(&v, "user_type", fuzz_types, "Personal");
    (void)pe_valid_str(&v, "about_me", 0, 0, 1000);
    (void)pe_valid_str(&v, "hobbies", 0, 0, 500);
    if (pe_valid_int(&v, "amount", 0, 1, 1000000, &amount))
        PE_FUZZ_CHECK(amount >= 1 && amount <= 1000000);
    (void)pe_valid_bool(&v, "active", 1);

    /* the strings handed on are valid UTF-8 without NUL */
    if (username) {
        long chars = pe_valid_utf8_chars(username, strlen(username));

        PE_FUZZ_CHECK(pe_fuzz_utf8_ok((const unsigned char *)username, strlen(username)));
        PE_FUZZ_CHECK(chars >= 1 && chars <= 200);
        (void)pe_username_check(username);
    }
    if (email && pe_email_normalize(p, email, &lower) == NULL) {
        const char *c;

        PE_FUZZ_CHECK(lower && strlen(lower) <= 254 && strchr(lower, '@')
                      && strchr(lower, '@') == strrchr(lower, '@'));
        for (c = lower; *c; c++)
            PE_FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z') && (unsigned char)*c > ' ');
    }
    if (password)
        PE_FUZZ_CHECK(pe_password_check_all(p, NULL, password, strlen(password), lower ? lower : email, username)
                      != NULL);

    errs = pe_json_bind(p, pe_valid_errors_json(&v));
    PE_FUZZ_CHECK(json_is_array(errs) && (int)json_array_size(errs) == v.errors->nelts);
    PE_FUZZ_CHECK(pe_valid_ok(&v) == (pe_valid_first(&v) == NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = pe_fuzz_pool();
    const char *err = NULL, *text;
    json_t *j, *back, *env;
    size_t n;

    if (pe_json_parse(p, (const char *)data, size, &j, &err) != 0) {
        PE_FUZZ_CHECK(j == NULL && err && *err);
        /* the 400 answer quotes the parser's message; it must still be a JSON document */
        env = pe_json_error(p, err, "INVALID_JSON", "fuzz-request", NULL);
        text = pe_json_dump(p, env, &n);
        PE_FUZZ_CHECK(pe_json_parse(p, text, n, &back, &err) == 0 && json_is_object(back));
        pe_fuzz_done(p);
        return 0;
    }
    PE_FUZZ_CHECK(j && (json_is_object(j) || json_is_array(j)));
    PE_FUZZ_CHECK(pe_json_depth(j) <= PE_JSON_MAX_DEPTH);

    text = pe_json_dump(p, j, &n);
    PE_FUZZ_CHECK(text && strlen(text) == n);
    PE_FUZZ_CHECK(pe_json_parse(p, text, n, &back, &err) == 0);
    PE_FUZZ_CHECK(json_equal(j, back));

    if (json_is_object(j))
        fuzz_validate(p, j);
    pe_fuzz_done(p);
    return 0;
}
