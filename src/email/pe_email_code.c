/*
 * pe_email_code.c: one-time codes of e-mail verification: generation, keyed digest, comparison,
 * and the day count of the send limit (include/pe_email.h).
 */
#include "pe_crypto.h"
#include "pe_email.h"
#include "pe_util.h"

#include <apr_strings.h>
#include <string.h>

/* The purpose of the derived key: a digest made for another purpose never matches. */
#define PE_EMAIL_KEY_LABEL "mod_promptenchanter e-mail verification code v1"

const char *pe_email_code_new(apr_pool_t *p)
{
    const char *code = NULL;

    if (pe_random_string(p, "0123456789", PE_EMAIL_CODE_LEN, &code) != APR_SUCCESS)
        return NULL;
    return code;
}

const char *pe_email_code_digest(apr_pool_t *p, const unsigned char secret[32], const char *user_id,
                                 const char *email, const char *code)
{
    unsigned char key[32], mac[32];
    const char *msg, *hex = NULL;

    if (!secret || !user_id || !email || !code)
        return NULL;
    /* NB: "\n" cannot occur in an id, an address or a code, so the parts cannot be shifted. */
    msg = apr_pstrcat(p, user_id, "\n", email, "\n", code, NULL);
    if (pe_hmac_sha256(secret, 32, PE_EMAIL_KEY_LABEL, strlen(PE_EMAIL_KEY_LABEL), key) == APR_SUCCESS &&
        pe_hmac_sha256(key, sizeof(key), msg, strlen(msg), mac) == APR_SUCCESS)
        hex = pe_hex_encode(p, mac, sizeof(mac));
    pe_wipe(key, sizeof(key));
    return hex;
}

int pe_email_digest_equal(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    return pe_ct_equal(a, strlen(a), b, strlen(b));
}

apr_int64_t pe_email_day(apr_time_t t)
{
    return (apr_int64_t)(apr_time_sec(t) / 86400);
}

apr_time_t pe_email_day_end(apr_int64_t day)
{
    return apr_time_from_sec((day + 1) * 86400);
}
