/*
 * test_staff.c: the permission model of SPEC 10.3 as a table (every role against every action
 * and every user field, written out here from the SPEC's matrix), and the operator account
 * rules.
 */
#include "pe_staff.h"
#include "pe_test.h"

#include <string.h>

/* Roles in column order: new, support, advanced, admin, super-admin. */
static const pe_role_e roles[5] = {PE_ROLE_STAFF_NEW, PE_ROLE_STAFF_SUPPORT, PE_ROLE_STAFF_ADVANCED, PE_ROLE_ADMIN,
                                   PE_ROLE_SUPER};

static const struct {
    pe_action_e a;
    const char *flag;
    const char *allowed; /* one character per role: 1 allowed, 0 refused */
} action_table[] = {
    {PE_ACT_VIEW_USERS, "can_view_users", "11111"},
    {PE_ACT_UPDATE_USERS, "can_update_users", "01111"},
    {PE_ACT_DELETE_USERS, "can_delete_users", "00001"},
    {PE_ACT_VIEW_MESSAGES, "can_view_messages", "00111"},
    {PE_ACT_UPDATE_CREDITS, "can_update_credits", "01111"},
    {PE_ACT_UPDATE_PLANS, "can_update_plans", "01111"},
    {PE_ACT_RESET_PASSWORDS, "can_reset_passwords", "01111"},
    {PE_ACT_UPDATE_EMAILS, "can_update_emails", "01111"},
    {PE_ACT_MANAGE_API_KEYS, "can_manage_api_keys", "00111"},
    {PE_ACT_VIEW_SECURITY_LOGS, "can_view_security_logs", "00011"},
    {PE_ACT_VIEW_STATISTICS, "can_view_statistics", "00011"},
    {PE_ACT_MANAGE_ACCESS, "can_manage_access", "00011"},
    {PE_ACT_CREATE_STAFF, "can_create_staff", "00011"},
    {PE_ACT_CREATE_ADMINS, "can_create_admins", "00001"},
    {PE_ACT_SYSTEM, "can_configure_system", "00011"},
    {PE_ACT_MANAGE_ADMINS, "can_manage_admins", "00001"},
    {PE_ACT_MANAGE_STAFF, "can_manage_staff", "00011"},
};

/* Field: read and write per role, "-" none, "R" read, "W" read and write. */
static const struct {
    const char *field;
    const char *rights;
} field_table[] = {
    {"id", "RRRRR"},          {"username", "RRRRR"},         {"time_created", "RRRRR"},
    {"name", "RRWWW"},        {"email", "RWWWW"},            {"user_type", "RRWWW"},
    {"subscription_plan", "RWWWW"}, {"is_verified", "RRWWW"}, {"is_active", "RRWWW"},
    {"last_login", "RRRRR"},  {"last_activity", "RRRRR"},    {"credits", "-WWWW"},
    {"limits", "-WWWW"},      {"level", "-RWWW"},            {"about_me", "--WWW"},
    {"hobbies", "--WWW"},     {"access_rtype", "--WWW"},     {"additional_notes", "--WWW"},
};

START_TEST(actions_by_role)
{
    size_t i;
    int k;

    ck_assert_int_eq((int)(sizeof(action_table) / sizeof(action_table[0])), PE_ACT_COUNT - 1);
    for (i = 0; i < sizeof(action_table) / sizeof(action_table[0]); i++) {
        ck_assert_str_eq(pe_perm_action_flag(action_table[i].a), action_table[i].flag);
        for (k = 0; k < 5; k++)
            ck_assert_msg(pe_perm_allows(roles[k], action_table[i].a) == (action_table[i].allowed[k] == '1'),
                          "%s for role %d", action_table[i].flag, k);
        ck_assert(!pe_perm_allows(PE_ROLE_NONE, action_table[i].a));
    }
    ck_assert(!pe_perm_allows(PE_ROLE_SUPER, PE_ACT_NONE));
    ck_assert(!pe_perm_allows(PE_ROLE_SUPER, PE_ACT_COUNT));
    ck_assert_ptr_null(pe_perm_action_flag(PE_ACT_NONE));
}
END_TEST

START_TEST(fields_by_role)
{
    size_t i;
    int k, n = 0;

    for (i = 0; i < sizeof(field_table) / sizeof(field_table[0]); i++)
        for (k = 0; k < 5; k++) {
            char c = field_table[i].rights[k];

            ck_assert_msg(pe_perm_field_read(roles[k], field_table[i].field) == (c != '-'), "read %s role %d",
                          field_table[i].field, k);
            ck_assert_msg(pe_perm_field_write(roles[k], field_table[i].field) == (c == 'W'), "write %s role %d",
                          field_table[i].field, k);
        }
    for (n = 0; pe_perm_user_fields[n]; n++)
        ;
    ck_assert_int_eq(n, (int)(sizeof(field_table) / sizeof(field_table[0])));
    /* unknown fields and secrets are nobody's */
    ck_assert(!pe_perm_field_read(PE_ROLE_SUPER, "password_hash"));
    ck_assert(!pe_perm_field_write(PE_ROLE_SUPER, "password_hash"));
    ck_assert(!pe_perm_field_write(PE_ROLE_SUPER, "api_key_digest"));
    ck_assert(!pe_perm_field_read(PE_ROLE_SUPER, NULL));
}
END_TEST

START_TEST(roles_of_accounts)
{
    pe_staff_t s;

    memset(&s, 0, sizeof(s));
    s.kind = PE_PRINCIPAL_ADMIN;
    ck_assert_int_eq(pe_staff_role(&s), PE_ROLE_ADMIN);
    s.is_super = 1;
    ck_assert_int_eq(pe_staff_role(&s), PE_ROLE_SUPER);
    s.kind = PE_PRINCIPAL_SUPPORT; /* is_super means nothing for support staff */
    s.staff_level = "advanced";
    ck_assert_int_eq(pe_staff_role(&s), PE_ROLE_STAFF_ADVANCED);
    s.staff_level = "new";
    ck_assert_int_eq(pe_staff_role(&s), PE_ROLE_STAFF_NEW);
    s.staff_level = "Support";
    ck_assert_int_eq(pe_staff_role(&s), PE_ROLE_NONE);
    s.kind = PE_PRINCIPAL_USER;
    ck_assert_int_eq(pe_staff_role(&s), PE_ROLE_NONE);
    ck_assert_int_eq(pe_staff_role(NULL), PE_ROLE_NONE);
    ck_assert_int_eq(pe_staff_level_role("support"), PE_ROLE_STAFF_SUPPORT);
    ck_assert_int_eq(pe_staff_level_role(NULL), PE_ROLE_NONE);
}
END_TEST

START_TEST(account_rules)
{
    const char *email = NULL;
    apr_array_header_t *e;
    pe_staff_t *s;

    e = pe_staff_check(pe_tp, NULL, "root", "Site Admin", "Root@Example.COM", "Str0ngPassphrase", &email);
    ck_assert_int_eq(e->nelts, 0);
    ck_assert_str_eq(email, "root@example.com");
    e = pe_staff_check(pe_tp, NULL, "r", "X", "not-an-address", "short", &email);
    ck_assert_int_ge(e->nelts, 4); /* username, name, e-mail, and at least one password rule */
    ck_assert_ptr_null(email);
    e = pe_staff_check(pe_tp, NULL, "opsadmin", "Ops", "team@example.com", "Opsadmin2024x", &email);
    ck_assert_int_eq(e->nelts, 1); /* the password contains the username */
    e = pe_staff_check(pe_tp, NULL, NULL, NULL, NULL, NULL, &email);
    ck_assert_int_eq(e->nelts, 3); /* no password: its rules are not applied */
    e = pe_staff_check(pe_tp, NULL, "root", "Site Admin", "root@example.com", NULL, &email);
    ck_assert_int_eq(e->nelts, 0);

    s = pe_staff_new(pe_tp, PE_PRINCIPAL_SUPPORT, "helper", "Help Desk", "h@example.com", "$argon2id$x", 1, "new",
                     "root", 42);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq((int)strlen(s->id), 24);
    ck_assert_int_eq(s->is_super, 0);
    ck_assert_str_eq(s->staff_level, "new");
    ck_assert_int_eq(s->is_active, 1);
    ck_assert_int_eq(s->created_at, 42);
    s = pe_staff_new(pe_tp, PE_PRINCIPAL_ADMIN, "boss", "Boss", "b@example.com", "$argon2id$x", 1, "advanced", NULL, 1);
    ck_assert_int_eq(s->is_super, 1);
    ck_assert_str_eq(s->staff_level, "");
    ck_assert_str_eq(s->created_by, "");
}
END_TEST

Suite *pe_suite_staff(void)
{
    Suite *s = suite_create("staff");
    TCase *tc = pe_tcase("permissions");

    tcase_add_test(tc, actions_by_role);
    tcase_add_test(tc, fields_by_role);
    tcase_add_test(tc, roles_of_accounts);
    tcase_add_test(tc, account_rules);
    suite_add_tcase(s, tc);
    return s;
}
