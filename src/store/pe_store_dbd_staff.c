/*
 * pe_store_dbd_staff.c: the dbd backend's operators (administrators and support staff):
 * the pe_staff table, one row per account, its kind in a column that every statement names.
 */
#include "pe_store_dbd_int.h"

#include <apr_strings.h>

/* A row of STAFF_COLS -> pe_staff_t. */
static pe_staff_t *staff_from_cols(apr_pool_t *p, const char **c)
{
    pe_staff_t *s = apr_pcalloc(p, sizeof(*s));

    s->id = c[0];
    s->kind = pe_principal_kind_parse(c[1]);
    s->username = c[2];
    s->name = c[3];
    s->email = c[4];
    s->password_hash = c[5];
    s->is_super = (int)pe_dbd_to64(c[6]);
    s->staff_level = pe_dbd_s0(c[7]);
    s->created_by = pe_dbd_s0(c[8]);
    s->is_active = (int)pe_dbd_to64(c[9]);
    s->failed_logins = (int)pe_dbd_to64(c[10]);
    s->locked_until = pe_dbd_to64(c[11]);
    s->created_at = pe_dbd_to64(c[12]);
    s->updated_at = pe_dbd_to64(c[13]);
    s->last_login = pe_dbd_to64(c[14]);
    return s;
}

pe_store_status_e pe_dbd_staff_create(pe_store_t *st, const pe_staff_t *s)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *a[STAFF_NCOLS] = {s->id, pe_principal_kind_name(s->kind), s->username, s->name, s->email,
                                  s->password_hash, s->is_super ? "1" : "0", pe_dbd_s0(s->staff_level),
                                  pe_dbd_s0(s->created_by), s->is_active ? "1" : "0", pe_dbd_i64(p, s->failed_logins),
                                  pe_dbd_i64(p, s->locked_until), pe_dbd_i64(p, s->created_at),
                                  pe_dbd_i64(p, s->updated_at), pe_dbd_i64(p, s->last_login)};

    return pe_dbd_exec(st, Q_STAFF_INSERT, NULL, STAFF_NCOLS, a);
}

static pe_store_status_e staff_by(pe_store_t *st, pe_q_e q, pe_principal_kind_e kind, const char *key,
                                  pe_staff_t **out)
{
    const char *c[STAFF_NCOLS];
    const char *a[] = {pe_principal_kind_name(kind), key};
    pe_store_status_e rs = pe_dbd_select(st, q, 2, a, STAFF_NCOLS, c);

    *out = (rs == PE_STORE_OK) ? staff_from_cols(pe_store_pool(st), c) : NULL;
    return rs;
}

pe_store_status_e pe_dbd_staff_by_id(pe_store_t *st, pe_principal_kind_e kind, const char *id, pe_staff_t **out)
{
    return staff_by(st, Q_STAFF_BY_ID, kind, id, out);
}

pe_store_status_e pe_dbd_staff_by_username(pe_store_t *st, pe_principal_kind_e kind, const char *username,
                                        pe_staff_t **out)
{
    return staff_by(st, Q_STAFF_BY_NAME, kind, username, out);
}

pe_store_status_e pe_dbd_staff_list(pe_store_t *st, pe_principal_kind_e kind, apr_array_header_t **out)
{
    const char *k = pe_principal_kind_name(kind);
    apr_array_header_t *rows;
    pe_store_status_e rs = pe_dbd_select_rows(st, Q_STAFF_LIST, 1, &k, STAFF_NCOLS, &rows);
    int i;

    if (rs != PE_STORE_OK)
        return rs;
    for (i = 0; i < rows->nelts; i++)
        APR_ARRAY_PUSH(*out, pe_staff_t *) = staff_from_cols(pe_store_pool(st), APR_ARRAY_IDX(rows, i, const char **));
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_staff_set_password(pe_store_t *st, pe_principal_kind_e kind, const char *id, const char *hash,
                                         apr_time_t now)
{
    const char *a[] = {hash, pe_dbd_i64(pe_store_pool(st), now), pe_principal_kind_name(kind), id};

    return pe_dbd_update(st, Q_STAFF_SET_PASSWORD, 4, a);
}

/* Count first (an atomic increment), then lock once the count is reached: as for users. */
pe_store_status_e pe_dbd_staff_login_failed(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now,
                                         int max, apr_time_t lock, int *failed, apr_time_t *locked_until)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *k = pe_principal_kind_name(kind), *snow = pe_dbd_i64(p, now);
    const char *a1[] = {snow, snow, k, id};
    const char *a2[] = {pe_dbd_i64(p, now + lock), k, id, pe_dbd_i64(p, max)};
    const char *a3[] = {k, id};
    const char *c[2];
    pe_store_status_e rs;

    if ((rs = pe_dbd_update(st, Q_STAFF_FAIL_COUNT, 4, a1)) != PE_STORE_OK)
        return rs;
    if ((rs = pe_dbd_exec(st, Q_STAFF_FAIL_LOCK, NULL, 4, a2)) != PE_STORE_OK)
        return rs;
    if ((rs = pe_dbd_select(st, Q_STAFF_FAIL_READ, 2, a3, 2, c)) != PE_STORE_OK)
        return rs;
    *failed = (int)pe_dbd_to64(c[0]);
    *locked_until = pe_dbd_to64(c[1]);
    return PE_STORE_OK;
}

pe_store_status_e pe_dbd_staff_login_ok(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now)
{
    const char *a[] = {pe_dbd_i64(pe_store_pool(st), now), pe_principal_kind_name(kind), id};

    return pe_dbd_update(st, Q_STAFF_LOGIN_OK, 3, a);
}

/* An operator's change of a user (in this file: it is the operators' write). */
pe_store_status_e pe_dbd_user_update(pe_store_t *st, const char *id, const pe_user_change_t *ch, apr_time_t now)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *a[] = {ch->name, ch->about_me, ch->hobbies, ch->user_type, ch->subscription_plan, ch->access_rtype,
                       ch->level, ch->additional_notes,
                       ch->set_credits ? pe_dbd_i64(p, ch->credits_main) : NULL,
                       ch->set_credits ? pe_dbd_i64(p, ch->credits_reset) : NULL,
                       ch->set_limits ? pe_dbd_i64(p, ch->conv_limit) : NULL,
                       ch->set_limits ? pe_dbd_i64(p, ch->conv_reset) : NULL,
                       ch->set_active ? (ch->is_active ? "1" : "0") : NULL,
                       ch->set_verified ? (ch->is_verified ? "1" : "0") : NULL,
                       pe_dbd_i64(p, now), id};

    return pe_dbd_update(st, Q_USER_UPDATE, 16, a);
}
