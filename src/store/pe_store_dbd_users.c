/*
 * pe_store_dbd_users.c: the dbd backend's accounts: users, sessions and security events.
 */
#include "pe_store_dbd_int.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

/* Users */

/* A row of USER_COLS -> pe_user_t. */
pe_user_t *pe_dbd_user_from_cols(apr_pool_t *p, const char **c)
{
    pe_user_t *u = apr_pcalloc(p, sizeof(*u));

    u->id = c[0];
    u->username = c[1];
    u->name = c[2];
    u->email = c[3];
    u->password_hash = c[4];
    u->about_me = c[5] ? c[5] : "";
    u->hobbies = c[6] ? c[6] : "";
    u->user_type = c[7];
    u->subscription_plan = c[8];
    u->credits_main = pe_dbd_to64(c[9]);
    u->credits_reset = pe_dbd_to64(c[10]);
    u->conv_limit = pe_dbd_to64(c[11]);
    u->conv_reset = pe_dbd_to64(c[12]);
    u->reset_day = pe_dbd_to64(c[13]);
    u->access_rtype = c[14] ? c[14] : "";
    u->level = c[15];
    u->additional_notes = c[16] ? c[16] : "";
    u->api_key_digest = c[17];
    u->api_key_prefix = c[18];
    u->api_key_enc = c[19];
    u->is_active = (int)pe_dbd_to64(c[20]);
    u->is_verified = (int)pe_dbd_to64(c[21]);
    u->failed_logins = (int)pe_dbd_to64(c[22]);
    u->locked_until = pe_dbd_to64(c[23]);
    u->created_at = pe_dbd_to64(c[24]);
    u->updated_at = pe_dbd_to64(c[25]);
    u->last_login = pe_dbd_to64(c[26]);
    u->last_activity = pe_dbd_to64(c[27]);
    return u;
}

pe_store_status_e pe_dbd_user_create(pe_store_t *st, const pe_user_t *u)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *a[USER_NCOLS] = {u->id,
                                 u->username,
                                 u->name,
                                 u->email,
                                 u->password_hash,
                                 u->about_me ? u->about_me : "",
                                 u->hobbies ? u->hobbies : "",
                                 u->user_type,
                                 u->subscription_plan,
                                 pe_dbd_i64(p, u->credits_main),
                                 pe_dbd_i64(p, u->credits_reset),
                                 pe_dbd_i64(p, u->conv_limit),
                                 pe_dbd_i64(p, u->conv_reset),
                                 pe_dbd_i64(p, u->reset_day),
                                 u->access_rtype ? u->access_rtype : "",
                                 u->level,
                                 u->additional_notes ? u->additional_notes : "",
                                 u->api_key_digest,
                                 u->api_key_prefix,
                                 u->api_key_enc,
                                 pe_dbd_i64(p, u->is_active),
                                 pe_dbd_i64(p, u->is_verified),
                                 pe_dbd_i64(p, u->failed_logins),
                                 pe_dbd_i64(p, u->locked_until),
                                 pe_dbd_i64(p, u->created_at),
                                 pe_dbd_i64(p, u->updated_at),
                                 pe_dbd_i64(p, u->last_login),
                                 pe_dbd_i64(p, u->last_activity)};

    return pe_dbd_exec(st, Q_USER_INSERT, NULL, USER_NCOLS, a);
}

static pe_store_status_e user_by(pe_store_t *st, pe_q_e q, const char *key, pe_user_t **out)
{
    const char *c[USER_NCOLS];
    pe_store_status_e rs = pe_dbd_select(st, q, 1, &key, USER_NCOLS, c);

    *out = (rs == PE_STORE_OK) ? pe_dbd_user_from_cols(pe_store_pool(st), c) : NULL;
    return rs;
}

pe_store_status_e pe_dbd_user_by_id(pe_store_t *st, const char *id, pe_user_t **out)
{
    return user_by(st, Q_USER_BY_ID, id, out);
}

pe_store_status_e pe_dbd_user_by_email(pe_store_t *st, const char *email, pe_user_t **out)
{
    return user_by(st, Q_USER_BY_EMAIL, email, out);
}

pe_store_status_e pe_dbd_user_by_key_digest(pe_store_t *st, const char *digest, pe_user_t **out)
{
    return user_by(st, Q_USER_BY_KEY, digest, out);
}

pe_store_status_e pe_dbd_user_update_profile(pe_store_t *st, const char *id, const char *name, const char *about_me,
                                             const char *hobbies, apr_time_t now)
{
    const char *a[] = {name, about_me, hobbies, pe_dbd_i64(pe_store_pool(st), now), id};
    return pe_dbd_update(st, Q_USER_PROFILE, 5, a);
}

pe_store_status_e pe_dbd_user_set_api_key(pe_store_t *st, const char *id, const char *digest, const char *prefix,
                                          const char *enc, apr_time_t now)
{
    const char *a[] = {digest, prefix, enc, pe_dbd_i64(pe_store_pool(st), now), id};
    return pe_dbd_update(st, Q_USER_SET_KEY, 5, a);
}

pe_store_status_e pe_dbd_user_set_email(pe_store_t *st, const char *id, const char *email, int is_verified,
                                        apr_time_t now)
{
    const char *a[] = {email, is_verified ? "1" : "0", pe_dbd_i64(pe_store_pool(st), now), id};
    return pe_dbd_update(st, Q_USER_SET_EMAIL, 4, a);
}

pe_store_status_e pe_dbd_user_set_password(pe_store_t *st, const char *id, const char *hash, apr_time_t now)
{
    const char *a[] = {hash, pe_dbd_i64(pe_store_pool(st), now), id};
    return pe_dbd_update(st, Q_USER_SET_PASSWORD, 3, a);
}

pe_store_status_e pe_dbd_login_reserve(pe_store_t *st, pe_q_e q_reserve, pe_q_e q_read, int nkey, const char **key,
                                       apr_time_t now, int max, apr_time_t lock, int *attempt,
                                       apr_time_t *locked_until)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *a[5], *c[2];
    pe_store_status_e rs;
    int i;

    a[0] = pe_dbd_i64(p, max);
    a[1] = pe_dbd_i64(p, now + lock);
    for (i = 0; i < nkey; i++)
        a[2 + i] = key[i];
    a[2 + nkey] = pe_dbd_i64(p, now);
    rs = pe_dbd_select(st, q_reserve, 3 + nkey, a, 2, c);
    if (rs == PE_STORE_NOTFOUND) {
        /* no row taken: locked, or no such account */
        if ((rs = pe_dbd_select(st, q_read, nkey, key, 2, c)) != PE_STORE_OK)
            return rs;
        *locked_until = pe_dbd_to64(c[1]);
        return PE_STORE_EMPTY;
    }
    if (rs != PE_STORE_OK)
        return rs;
    *attempt = (int)pe_dbd_to64(c[0]);
    *locked_until = pe_dbd_to64(c[1]);
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_user_login_reserve(pe_store_t *st, const char *id, apr_time_t now, int max, apr_time_t lock,
                                            int *attempt, apr_time_t *locked_until)
{
    return pe_dbd_login_reserve(st, Q_USER_LOGIN_RESERVE, Q_USER_FAIL_READ, 1, &id, now, max, lock, attempt,
                                locked_until);
}

pe_store_status_e pe_dbd_user_login_ok(pe_store_t *st, const char *id, apr_time_t now)
{
    const char *snow = pe_dbd_i64(pe_store_pool(st), now);
    const char *a[] = {snow, snow, id};
    return pe_dbd_update(st, Q_USER_LOGIN_OK, 3, a);
}

pe_store_status_e pe_dbd_user_delete(pe_store_t *st, const pe_user_t *u, const char *reason, const char *deleted_by,
                                     apr_time_t now)
{
    apr_dbd_transaction_t *tx;
    pe_store_status_e rs;
    const char *arch[] = {apr_pstrcat(pe_store_pool(st), "deleted_", u->id, NULL),
                          u->id,
                          u->username,
                          u->name,
                          u->email,
                          u->user_type,
                          pe_dbd_i64(pe_store_pool(st), u->created_at),
                          u->subscription_plan,
                          reason ? reason : "",
                          pe_dbd_i64(pe_store_pool(st), now),
                          deleted_by};
    const char *kind = pe_principal_kind_name(PE_PRINCIPAL_USER);
    const char *sess[] = {kind, u->id};
    const char *uid = u->id;

    if ((rs = pe_dbd_tx_begin(st, &tx)) != PE_STORE_OK)
        return rs;
    /* NB: the user row goes first, then its logs: a conversation-log insert in flight holds the
     * row FOR SHARE (PostgreSQL), so this waits for it and the next statement sees its rows. */
    rs = pe_dbd_update(st, Q_USER_DELETE, 1, &uid);
    if (rs == PE_STORE_OK)
        rs = pe_dbd_exec(st, Q_USER_ARCHIVE, NULL, 11, arch);
    if (rs == PE_STORE_OK)
        rs = pe_dbd_exec(st, Q_SESS_DELETE_ALL, NULL, 2, sess);
    if (rs == PE_STORE_OK)
        rs = pe_dbd_exec(st, Q_MSGLOG_DELETE_USER, NULL, 1, &uid);
    return pe_dbd_tx_end(st, tx, rs);
}

/* ----------------------------------------------------------------------------------------- */
/* Sessions */

static pe_session_t *sess_from_cols(apr_pool_t *p, const char **c)
{
    pe_session_t *s = apr_pcalloc(p, sizeof(*s));

    s->id = c[0];
    s->kind = pe_principal_kind_parse(c[1]);
    s->principal_id = c[2];
    s->token_digest = c[3];
    s->refresh_digest = c[4];
    s->expires_at = pe_dbd_to64(c[5]);
    s->refresh_expires_at = pe_dbd_to64(c[6]);
    s->ip_address = c[7];
    s->user_agent = c[8];
    s->created_at = pe_dbd_to64(c[9]);
    s->last_used = pe_dbd_to64(c[10]);
    return s;
}

pe_store_status_e pe_dbd_session_create(pe_store_t *st, const pe_session_t *s)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *a[SESS_NCOLS] = {s->id,
                                 pe_principal_kind_name(s->kind),
                                 s->principal_id,
                                 s->token_digest,
                                 s->refresh_digest,
                                 pe_dbd_i64(p, s->expires_at),
                                 pe_dbd_i64(p, s->refresh_expires_at),
                                 s->ip_address ? s->ip_address : "",
                                 s->user_agent ? s->user_agent : "",
                                 pe_dbd_i64(p, s->created_at),
                                 pe_dbd_i64(p, s->last_used)};

    return pe_dbd_exec(st, Q_SESS_INSERT, NULL, SESS_NCOLS, a);
}

pe_store_status_e pe_dbd_session_by_token(pe_store_t *st, const char *digest, apr_time_t now, pe_session_t **out)
{
    const char *c[SESS_NCOLS];
    const char *a[] = {digest, pe_dbd_i64(pe_store_pool(st), now)};
    pe_store_status_e rs = pe_dbd_select(st, Q_SESS_BY_TOKEN, 2, a, SESS_NCOLS, c);

    *out = NULL;
    if (rs != PE_STORE_OK)
        return rs;
    *out = sess_from_cols(pe_store_pool(st), c);
    (*out)->last_used = now;
    {
        const char *t[] = {pe_dbd_i64(pe_store_pool(st), now), (*out)->id};
        return pe_dbd_exec(st, Q_SESS_TOUCH, NULL, 2, t);
    }
}

pe_store_status_e pe_dbd_session_rotate(pe_store_t *st, const char *refresh_digest, const char *ntd, const char *nrd,
                                        apr_time_t exp, apr_time_t rexp, apr_time_t now, pe_session_t **out)
{
    const char *snow = pe_dbd_i64(pe_store_pool(st), now);
    const char *a[] = {
        ntd, nrd, pe_dbd_i64(pe_store_pool(st), exp), pe_dbd_i64(pe_store_pool(st), rexp), snow, refresh_digest, snow};
    const char *c[SESS_NCOLS];
    pe_store_status_e rs;

    *out = NULL;
    /* NB: the guarded UPDATE is the arbiter: of concurrent rotations only one matches. */
    if ((rs = pe_dbd_update(st, Q_SESS_ROTATE, 7, a)) != PE_STORE_OK)
        return rs;
    if ((rs = pe_dbd_select(st, Q_SESS_BY_REFRESHED, 1, &nrd, SESS_NCOLS, c)) != PE_STORE_OK)
        return rs;
    *out = sess_from_cols(pe_store_pool(st), c);
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_session_delete(pe_store_t *st, const char *token_digest)
{
    return pe_dbd_update(st, Q_SESS_DELETE, 1, &token_digest);
}

pe_store_status_e pe_dbd_session_delete_all(pe_store_t *st, pe_principal_kind_e kind, const char *principal_id,
                                            const char *keep_id)
{
    const char *a[] = {pe_principal_kind_name(kind), principal_id, keep_id};

    if (keep_id)
        return pe_dbd_exec(st, Q_SESS_DELETE_ALL_BUT, NULL, 3, a);
    return pe_dbd_exec(st, Q_SESS_DELETE_ALL, NULL, 2, a);
}

/* ----------------------------------------------------------------------------------------- */
/* Security events */

static pe_store_status_e event_insert(pe_store_t *st, const char **a)
{
    return pe_dbd_exec(st, Q_EVENT_INSERT, NULL, 8, a);
}

pe_store_status_e pe_dbd_event(pe_store_t *st, const char *event_type, pe_principal_kind_e kind,
                               const char *principal_id, const char *username, const char *ip, const json_t *details,
                               const char *severity, apr_time_t now)
{
    char *d = details ? json_dumps(details, JSON_COMPACT) : NULL;
    const char *a[] = {event_type,
                       pe_principal_kind_name(kind),
                       principal_id ? principal_id : "",
                       username ? username : "",
                       ip ? ip : "",
                       d ? apr_pstrdup(pe_store_pool(st), d) : "{}",
                       severity ? severity : "info",
                       pe_dbd_i64(pe_store_pool(st), now)};

    free(d);
    return event_insert(st, a);
}

pe_store_status_e pe_dbd_event_count(pe_store_t *st, const char *type, const char *pid, long *count)
{
    const char *a[] = {type, pid};
    const char *c[1];
    pe_store_status_e rs = pe_dbd_select(st, pid ? Q_EVENT_COUNT_PRINCIPAL : Q_EVENT_COUNT, pid ? 2 : 1, a, 1, c);

    *count = (rs == PE_STORE_OK) ? (long)pe_dbd_to64(c[0]) : 0;
    return rs;
}

/* ----------------------------------------------------------------------------------------- */
