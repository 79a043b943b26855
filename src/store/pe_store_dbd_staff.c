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

/* Count first, then check: the users' reservation (pe_dbd_login_reserve) on the pe_staff row. */
pe_store_status_e pe_dbd_staff_login_reserve(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now,
                                             int max, apr_time_t lock, int *attempt, apr_time_t *locked_until)
{
    const char *key[] = {pe_principal_kind_name(kind), id};

    return pe_dbd_login_reserve(st, Q_STAFF_LOGIN_RESERVE, Q_STAFF_FAIL_READ, 2, key, now, max, lock, attempt,
                                locked_until);
}

pe_store_status_e pe_dbd_staff_login_ok(pe_store_t *st, pe_principal_kind_e kind, const char *id, apr_time_t now)
{
    const char *a[] = {pe_dbd_i64(pe_store_pool(st), now), pe_principal_kind_name(kind), id};

    return pe_dbd_update(st, Q_STAFF_LOGIN_OK, 3, a);
}

/*
 * Deactivate / reactivate (set) or delete (!set) an operator in one transaction: first a lock
 * every such change takes (Q_STAFF_SUPER_LOCK, Q_STAFF_SUPER_LOCK_PG), then the guarded write,
 * then the sessions. Nothing written: no such operator (NOTFOUND) or the last super-administrator (EMPTY).
 */
static pe_store_status_e staff_lifecycle(pe_store_t *st, pe_principal_kind_e kind, const char *id, int set,
                                         int active, apr_time_t now)
{
    apr_pool_t *p = pe_store_pool(st);
    const char *k = pe_principal_kind_name(kind), *admin = pe_principal_kind_name(PE_PRINCIPAL_ADMIN);
    const char *a[] = {active ? "1" : "0", pe_dbd_i64(p, now), k, id, active ? "1" : "0"};
    const char *key[] = {k, id};
    apr_dbd_transaction_t *tx;
    apr_array_header_t *locked;
    pe_store_status_e rs;
    pe_staff_t *s;

    if ((rs = pe_dbd_tx_begin(st, &tx)) != PE_STORE_OK)
        return rs;
    if (kind != PE_PRINCIPAL_ADMIN)
        rs = PE_STORE_OK;
    else if (DBD(st)->pgsql)
        rs = pe_dbd_select_rows(st, Q_STAFF_SUPER_LOCK_PG, 0, NULL, 1, &locked);
    else
        rs = pe_dbd_exec(st, Q_STAFF_SUPER_LOCK, NULL, 1, &admin);
    if (rs == PE_STORE_OK)
        rs = set ? pe_dbd_update(st, Q_STAFF_SET_ACTIVE, 5, a) : pe_dbd_update(st, Q_STAFF_DELETE, 2, key);
    if (rs == PE_STORE_OK && !(set && active))
        rs = pe_dbd_exec(st, Q_SESS_DELETE_ALL, NULL, 2, key);
    if (rs == PE_STORE_NOTFOUND && staff_by(st, Q_STAFF_BY_ID, kind, id, &s) == PE_STORE_OK)
        rs = PE_STORE_EMPTY; /* there, so the guard refused */
    return pe_dbd_tx_end(st, tx, rs);
}

pe_store_status_e pe_dbd_staff_set_active(pe_store_t *st, pe_principal_kind_e kind, const char *id, int active,
                                          apr_time_t now)
{
    return staff_lifecycle(st, kind, id, 1, active, now);
}

pe_store_status_e pe_dbd_staff_delete(pe_store_t *st, pe_principal_kind_e kind, const char *id)
{
    return staff_lifecycle(st, kind, id, 0, 0, 0);
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
