/*
 * pe_store_dbd_email.c: the dbd backend's e-mail verification: the daily count of verification
 * mails and the user's one code (columns of pe_users, schema version 4).
 */
#include "pe_store_dbd_int.h"

#include <apr_strings.h>

pe_store_status_e pe_dbd_email_send_take(pe_store_t *st, const char *user_id, apr_int64_t day, int limit, int *sends)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *d = pe_dbd_i64(p, day);
    const char *a[] = {d, d, d, user_id, d, pe_dbd_i64(p, limit)};
    const char *c[2];
    int rows = 0;
    pe_store_status_e rs = pe_dbd_exec(st, Q_EMAIL_SEND_TAKE, &rows, 6, a);

    *sends = 0;
    if (rs != PE_STORE_OK)
        return rs;
    /* The count as it is now: another send may have been counted since, which only shows it. */
    rs = pe_dbd_select(st, Q_EMAIL_SEND_READ, 1, &user_id, 2, c);
    if (rs != PE_STORE_OK)
        return rs;
    *sends = (int)pe_dbd_to64(c[0]);
    return rows == 1 ? PE_STORE_OK : PE_STORE_EMPTY;
}

pe_store_status_e pe_dbd_email_send_release(pe_store_t *st, const char *user_id, apr_int64_t day)
{
    const char *a[] = {user_id, pe_dbd_i64(pe_store_pool(st), day)};

    return pe_dbd_update(st, Q_EMAIL_SEND_RELEASE, 2, a);
}

pe_store_status_e pe_dbd_email_code_set(pe_store_t *st, const char *user_id, const char *digest, apr_time_t expires_at)
{
    const char *a[] = {digest, pe_dbd_i64(pe_store_pool(st), expires_at), user_id};

    return pe_dbd_update(st, Q_EMAIL_CODE_SET, 3, a);
}

pe_store_status_e pe_dbd_email_code_attempt(pe_store_t *st, const char *user_id, apr_time_t now, int max,
                                         const char **digest, int *attempts)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *a[] = {user_id, pe_dbd_i64(p, now), pe_dbd_i64(p, max)};
    const char *c[3];
    pe_store_status_e rs = pe_dbd_select(st, Q_EMAIL_CODE_ATTEMPT, 3, a, 2, c);

    if (rs == PE_STORE_OK) {
        *digest = c[0];
        *attempts = (int)pe_dbd_to64(c[1]);
        return PE_STORE_OK;
    }
    if (rs != PE_STORE_NOTFOUND)
        return rs;
    /* Not counted: no live code, or its attempts are used up. */
    if ((rs = pe_dbd_select(st, Q_EMAIL_CODE_READ, 1, &user_id, 3, c)) != PE_STORE_OK)
        return rs;
    if (!c[0] || !*c[0] || pe_dbd_to64(c[1]) <= now)
        return PE_STORE_NOTFOUND;
    *attempts = (int)pe_dbd_to64(c[2]);
    return PE_STORE_EMPTY;
}

pe_store_status_e pe_dbd_email_code_use(pe_store_t *st, const char *user_id, const char *email, const char *digest,
                                     apr_time_t now)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *t = pe_dbd_i64(p, now);
    const char *a[] = {t, user_id, email, digest, t};

    return pe_dbd_update(st, Q_EMAIL_CODE_USE, 5, a);
}
