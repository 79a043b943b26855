/*
 * pe_staff.h: operators (administrators and support staff) in the core, httpd-free:
 *  - the rules of an operator account (username, name, e-mail, password) shared by the
 *    command-line tool and the routes that create operators;
 *  - the permission model of SPEC 10.3 as data: roles, the actions each role may take, and the
 *    user fields each role may read and write. The route table names the action a route needs
 *    and the glue checks it in one place; handlers filter fields with pe_perm_field_*.
 */
#ifndef PE_STAFF_H
#define PE_STAFF_H

#include "pe_store.h"

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>

/* Roles, one bit each (a set of roles is a mask). */
typedef enum {
    PE_ROLE_NONE = 0,
    PE_ROLE_STAFF_NEW = 0x01,      /* support staff, level "new": read-only */
    PE_ROLE_STAFF_SUPPORT = 0x02,  /* support staff, level "support" */
    PE_ROLE_STAFF_ADVANCED = 0x04, /* support staff, level "advanced" */
    PE_ROLE_ADMIN = 0x08,          /* an administrator */
    PE_ROLE_SUPER = 0x10           /* a super-administrator */
} pe_role_e;

#define PE_ROLES_STAFF (PE_ROLE_STAFF_NEW | PE_ROLE_STAFF_SUPPORT | PE_ROLE_STAFF_ADVANCED)
#define PE_ROLES_ADMINS (PE_ROLE_ADMIN | PE_ROLE_SUPER)

/* Actions a route may need (a route names one; 0: none beyond its credential). */
typedef enum {
    PE_ACT_NONE = 0,
    PE_ACT_VIEW_USERS,          /* list and read users */
    PE_ACT_UPDATE_USERS,        /* change user fields (which ones: the field table) */
    PE_ACT_DELETE_USERS,        /* delete a user (archived) */
    PE_ACT_VIEW_MESSAGES,       /* a user's conversation logs */
    PE_ACT_UPDATE_CREDITS,      /* credits and limits */
    PE_ACT_UPDATE_PLANS,        /* subscription plan */
    PE_ACT_RESET_PASSWORDS,     /* set a user's password */
    PE_ACT_UPDATE_EMAILS,       /* change a user's e-mail */
    PE_ACT_MANAGE_API_KEYS,     /* regenerate a user's API key */
    PE_ACT_VIEW_SECURITY_LOGS,  /* security events */
    PE_ACT_VIEW_STATISTICS,     /* statistics, health */
    PE_ACT_MANAGE_ACCESS,       /* IP whitelist, blocks */
    PE_ACT_CREATE_STAFF,        /* create support staff */
    PE_ACT_CREATE_ADMINS,       /* create administrators */
    PE_ACT_SYSTEM,              /* system prompts, caches */
    PE_ACT_MANAGE_ADMINS,       /* deactivate, reactivate, delete administrators */
    PE_ACT_MANAGE_STAFF,        /* deactivate, reactivate, delete support staff */
    PE_ACT_COUNT
} pe_action_e;

/** The role of an operator account (PE_ROLE_NONE for an unknown staff level or another kind). */
pe_role_e pe_staff_role(const pe_staff_t *s);
/** Staff level word -> role ("new", "support", "advanced"); PE_ROLE_NONE otherwise. */
pe_role_e pe_staff_level_role(const char *level);
/** The staff levels, NULL-terminated: "new", "support", "advanced". */
extern const char *const pe_staff_levels[];

/** May a principal of role take action a? */
int pe_perm_allows(pe_role_e role, pe_action_e a);
/** The action's name as SPEC 10.3's flag ("can_view_users"...), NULL for none. */
const char *pe_perm_action_flag(pe_action_e a);

/** User fields of the field table (the names of the JSON view and of the update body). */
/** May role read field (unknown fields: no)? */
int pe_perm_field_read(pe_role_e role, const char *field);
/** May role write field (unknown fields: no)? */
int pe_perm_field_write(pe_role_e role, const char *field);
/** The fields of the table, NULL-terminated, in display order. */
extern const char *const pe_perm_user_fields[];

/**
 * Check a new operator account: username (3-50 letters, digits, '-', '_'), name (2-100
 * characters), e-mail (normalised to lower case in *email_out) and password (the password
 * policy; list as pe_password_check_all; NULL: the password is not checked).
 * @return the problems as user-facing messages (const char *), empty when the account is valid
 */
apr_array_header_t *pe_staff_check(apr_pool_t *p, apr_hash_t *list, const char *username, const char *name,
                                   const char *email, const char *password, const char **email_out);

/**
 * A new operator record (id from the CSPRNG; NULL when it fails). Active, unlocked.
 * @param level support staff's level ("" for administrators)
 */
pe_staff_t *pe_staff_new(apr_pool_t *p, pe_principal_kind_e kind, const char *username, const char *name,
                         const char *email, const char *password_hash, int is_super, const char *level,
                         const char *created_by, apr_time_t now);

#endif
