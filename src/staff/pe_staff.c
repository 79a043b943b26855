/*
 * pe_staff.c: operator accounts and the permission model (SPEC 10.3, with the fixes of SPEC
 * 16.2 item 27: permissions are enforced). The model is two tables: what each action needs,
 * and who reads and writes each user field. Nothing else decides.
 */
#include "pe_staff.h"
#include "pe_identity.h"

#include <apr_strings.h>
#include <string.h>

#define NEW PE_ROLE_STAFF_NEW
#define SUP PE_ROLE_STAFF_SUPPORT
#define ADV PE_ROLE_STAFF_ADVANCED
#define ADM PE_ROLE_ADMIN
#define SA PE_ROLE_SUPER

const char *const pe_staff_levels[] = {"new", "support", "advanced", NULL};

/* Action -> the roles that may take it, and its SPEC 10.3 flag name. */
static const struct {
    unsigned roles;
    const char *flag;
} pe_actions[PE_ACT_COUNT] = {
    [PE_ACT_VIEW_USERS] = {NEW | SUP | ADV | ADM | SA, "can_view_users"},
    [PE_ACT_UPDATE_USERS] = {SUP | ADV | ADM | SA, "can_update_users"},
    [PE_ACT_DELETE_USERS] = {SA, "can_delete_users"},
    [PE_ACT_VIEW_MESSAGES] = {ADV | ADM | SA, "can_view_messages"},
    [PE_ACT_UPDATE_CREDITS] = {SUP | ADV | ADM | SA, "can_update_credits"},
    [PE_ACT_UPDATE_PLANS] = {SUP | ADV | ADM | SA, "can_update_plans"},
    [PE_ACT_RESET_PASSWORDS] = {SUP | ADV | ADM | SA, "can_reset_passwords"},
    [PE_ACT_UPDATE_EMAILS] = {SUP | ADV | ADM | SA, "can_update_emails"},
    [PE_ACT_MANAGE_API_KEYS] = {ADV | ADM | SA, "can_manage_api_keys"},
    [PE_ACT_VIEW_SECURITY_LOGS] = {ADM | SA, "can_view_security_logs"},
    [PE_ACT_VIEW_STATISTICS] = {ADM | SA, "can_view_statistics"},
    [PE_ACT_MANAGE_ACCESS] = {ADM | SA, "can_manage_access"},
    [PE_ACT_CREATE_STAFF] = {ADM | SA, "can_create_staff"},
    [PE_ACT_CREATE_ADMINS] = {SA, "can_create_admins"},
    [PE_ACT_SYSTEM] = {ADM | SA, "can_configure_system"},
    [PE_ACT_MANAGE_ADMINS] = {SA, "can_manage_admins"},
    [PE_ACT_MANAGE_STAFF] = {ADM | SA, "can_manage_staff"},
};

/* User field -> who reads it, who writes it (SPEC 10.3's field matrix; support staff write
 * credits as the issue of the operators' API decides, the reference's refusal being a bug). */
static const struct {
    const char *field;
    unsigned read, write;
} pe_fields[] = {
    {"id", NEW | SUP | ADV | ADM | SA, 0},
    {"username", NEW | SUP | ADV | ADM | SA, 0},
    {"time_created", NEW | SUP | ADV | ADM | SA, 0},
    {"name", NEW | SUP | ADV | ADM | SA, ADV | ADM | SA},
    {"email", NEW | SUP | ADV | ADM | SA, SUP | ADV | ADM | SA},
    {"user_type", NEW | SUP | ADV | ADM | SA, ADV | ADM | SA},
    {"subscription_plan", NEW | SUP | ADV | ADM | SA, SUP | ADV | ADM | SA},
    {"is_verified", NEW | SUP | ADV | ADM | SA, ADV | ADM | SA},
    {"is_active", NEW | SUP | ADV | ADM | SA, ADV | ADM | SA},
    {"last_login", NEW | SUP | ADV | ADM | SA, 0},
    {"last_activity", NEW | SUP | ADV | ADM | SA, 0},
    {"credits", SUP | ADV | ADM | SA, SUP | ADV | ADM | SA},
    {"limits", SUP | ADV | ADM | SA, SUP | ADV | ADM | SA},
    {"level", SUP | ADV | ADM | SA, ADV | ADM | SA},
    {"about_me", ADV | ADM | SA, ADV | ADM | SA},
    {"hobbies", ADV | ADM | SA, ADV | ADM | SA},
    {"access_rtype", ADV | ADM | SA, ADV | ADM | SA},
    {"additional_notes", ADV | ADM | SA, ADV | ADM | SA},
};
#define PE_NFIELDS ((int)(sizeof(pe_fields) / sizeof(pe_fields[0])))

const char *const pe_perm_user_fields[] = {
    "id", "username", "time_created", "name", "email", "user_type", "subscription_plan", "is_verified",
    "is_active", "last_login", "last_activity", "credits", "limits", "level", "about_me", "hobbies",
    "access_rtype", "additional_notes", NULL};

pe_role_e pe_staff_level_role(const char *level)
{
    if (!level)
        return PE_ROLE_NONE;
    if (!strcmp(level, "new"))
        return PE_ROLE_STAFF_NEW;
    if (!strcmp(level, "support"))
        return PE_ROLE_STAFF_SUPPORT;
    if (!strcmp(level, "advanced"))
        return PE_ROLE_STAFF_ADVANCED;
    return PE_ROLE_NONE;
}

pe_role_e pe_staff_role(const pe_staff_t *s)
{
    if (!s)
        return PE_ROLE_NONE;
    if (s->kind == PE_PRINCIPAL_ADMIN)
        return s->is_super ? PE_ROLE_SUPER : PE_ROLE_ADMIN;
    if (s->kind == PE_PRINCIPAL_SUPPORT)
        return pe_staff_level_role(s->staff_level);
    return PE_ROLE_NONE;
}

int pe_perm_allows(pe_role_e role, pe_action_e a)
{
    if (a <= PE_ACT_NONE || a >= PE_ACT_COUNT)
        return 0;
    return (pe_actions[a].roles & (unsigned)role) != 0;
}

const char *pe_perm_action_flag(pe_action_e a)
{
    return (a > PE_ACT_NONE && a < PE_ACT_COUNT) ? pe_actions[a].flag : NULL;
}

static int field_index(const char *field)
{
    int i;

    for (i = 0; field && i < PE_NFIELDS; i++)
        if (!strcmp(pe_fields[i].field, field))
            return i;
    return -1;
}

int pe_perm_field_read(pe_role_e role, const char *field)
{
    int i = field_index(field);

    return i >= 0 && (pe_fields[i].read & (unsigned)role) != 0;
}

int pe_perm_field_write(pe_role_e role, const char *field)
{
    int i = field_index(field);

    return i >= 0 && (pe_fields[i].write & (unsigned)role) != 0;
}

apr_array_header_t *pe_staff_check(apr_pool_t *p, apr_hash_t *list, const char *username, const char *name,
                                   const char *email, const char *password, const char **email_out)
{
    apr_array_header_t *errs = apr_array_make(p, 4, sizeof(const char *));
    apr_array_header_t *pw;
    const char *err;
    long n;
    int i;

    *email_out = NULL;
    if ((err = pe_username_check(username ? username : "")))
        APR_ARRAY_PUSH(errs, const char *) = err;
    n = name ? pe_utf8_count(name, strlen(name)) : -1;
    if (n < 2 || n > 100 || strchr(name, '\n') || strchr(name, '\r'))
        APR_ARRAY_PUSH(errs, const char *) = "name must be 2 to 100 characters on one line";
    if ((err = pe_email_normalize(p, email ? email : "", email_out)))
        APR_ARRAY_PUSH(errs, const char *) = err;
    pw = password ? pe_password_check_all(p, list, password, strlen(password), *email_out ? *email_out : email,
                                          username)
                  : NULL;
    for (i = 0; pw && i < pw->nelts; i++)
        APR_ARRAY_PUSH(errs, const char *) = APR_ARRAY_IDX(pw, i, const char *);
    return errs;
}

pe_staff_t *pe_staff_new(apr_pool_t *p, pe_principal_kind_e kind, const char *username, const char *name,
                         const char *email, const char *password_hash, int is_super, const char *level,
                         const char *created_by, apr_time_t now)
{
    pe_staff_t *s = apr_pcalloc(p, sizeof(*s));

    if (!(s->id = pe_store_new_id(p)))
        return NULL;
    s->kind = kind;
    s->username = username;
    s->name = name;
    s->email = email;
    s->password_hash = password_hash;
    s->is_super = kind == PE_PRINCIPAL_ADMIN && is_super;
    s->staff_level = kind == PE_PRINCIPAL_SUPPORT ? level : "";
    s->created_by = created_by ? created_by : "";
    s->is_active = 1;
    s->created_at = s->updated_at = now;
    return s;
}
