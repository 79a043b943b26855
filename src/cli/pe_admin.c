/*
 * pe-admin: what must happen before any administrator exists, as htpasswd and htdbm do for
 * httpd: create the first super-administrator, list the administrators, set an administrator's
 * password, deactivate, reactivate or delete one (never the last active super-administrator). It reads the store settings of the server (DBDriver/DBDParams or PEStore mongodb
 * with PEMongoURI) from the httpd configuration file given with -f, or takes them as flags,
 * and writes to the same database through the module's own store code. No httpd is needed,
 * and no password is ever a default: it is asked on the terminal, or read from stdin (-i).
 *
 *   pe-admin -f /etc/apache2/apache2.conf create-super root root@example.com "Site Admin"
 *   printf '%s\n' "$PW" | pe-admin -f httpd.conf -i passwd root
 *   pe-admin --driver sqlite3 --params /var/lib/promptenchanter/pe.db list
 */
#include "pe_crypto.h"
#include "pe_identity.h"
#include "pe_logno.h"
#include "pe_staff.h"
#include "pe_store_dbd.h"
#include "pe_store_mongo.h"
#include "pe_version.h"

#include <apr_dbd.h>
#include <apr_file_info.h>
#include <apr_fnmatch.h>
#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Exit codes. */
enum { EX_DONE = 0, EX_BADUSE = 1, EX_INVALID = 2, EX_EXISTS = 3, EX_STORE = 4, EX_NOTFOUND = 5, EX_LAST_SUPER = 6 };

/* The settings the tool needs, from the configuration file and the flags (flags win). */
typedef struct {
    const char *server_root;
    const char *store;       /* PEStore: "dbd" or "mongodb" */
    const char *driver, *params, *mongo_uri;
    const char *common_passwords;
    unsigned argon2_t, argon2_m_kib, argon2_p;
    int depth;
} settings_t;

static void log_sink(int level, apr_status_t rv, const char *msg)
{
    if (level <= PE_LOG_WARNING)
        fprintf(stderr, "pe-admin: %s\n", msg);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: pe-admin [-f httpd.conf] [-d ServerRoot] [--driver sqlite3|pgsql --params PARAMS]\n"
            "                [--mongodb-uri URI] [-i] COMMAND\n"
            "commands:\n"
            "  create-super USERNAME EMAIL [NAME]   create a super-administrator\n"
            "  list                                 list the administrators\n"
            "  passwd USERNAME                      set an administrator's password (and unlock it)\n"
            "  deactivate USERNAME                  deactivate an administrator (its sessions end)\n"
            "  activate USERNAME                    reactivate an administrator\n"
            "  delete USERNAME                      delete an administrator and its sessions\n"
            "The last active super-administrator is never deactivated or deleted (exit status 6).\n"
            "The password is asked twice on the terminal; with -i it is the first line of stdin.\n"
            "The store settings come from the httpd configuration file (-f: DBDriver, DBDParams,\n"
            "PEStore, PEMongoURI, PEArgon2Cost, PECommonPasswordFile, following Include) and from\n"
            "the flags, which win.\n");
}

/* ----------------------------------------------------------------------------------------- */
/* The httpd configuration file: the few directives the tool needs */

/* The next word of a line, httpd style: quotes group, backslash escapes inside them. */
static char *next_word(apr_pool_t *p, const char **line)
{
    const char *s = *line;
    char *w, *o;

    while (*s && apr_isspace(*s))
        s++;
    if (!*s) {
        *line = s;
        return NULL;
    }
    w = o = apr_palloc(p, strlen(s) + 1);
    if (*s == '"' || *s == '\'') {
        char q = *s++;

        while (*s && *s != q) {
            if (*s == '\\' && s[1])
                s++;
            *o++ = *s++;
        }
        if (*s)
            s++;
    }
    else
        while (*s && !apr_isspace(*s))
            *o++ = *s++;
    *o = '\0';
    *line = s;
    return w;
}

/* ${NAME} replaced by the environment's value (left as it is when unset, as httpd warns). */
static const char *expand_env(apr_pool_t *p, const char *s)
{
    const char *start;

    while ((start = strstr(s, "${"))) {
        const char *end = strchr(start, '}'), *v;

        if (!end)
            break;
        v = getenv(apr_pstrndup(p, start + 2, (apr_size_t)(end - start - 2)));
        if (!v)
            break;
        s = apr_pstrcat(p, apr_pstrndup(p, s, (apr_size_t)(start - s)), v, end + 1, NULL);
    }
    return s;
}

static const char *rooted(apr_pool_t *p, const settings_t *cf, const char *path)
{
    if (path[0] == '/' || !cf->server_root)
        return path;
    return apr_pstrcat(p, cf->server_root, "/", path, NULL);
}

static int read_conf(apr_pool_t *p, settings_t *cf, const char *path, int optional);

/* Include / IncludeOptional: a file, a directory (its files in order) or a wildcard. */
static int read_include(apr_pool_t *p, settings_t *cf, const char *pattern, int optional)
{
    apr_array_header_t *files = NULL;
    apr_finfo_t fi;
    int i;

    pattern = rooted(p, cf, pattern);
    if (!apr_fnmatch_test(pattern)) {
        if (apr_stat(&fi, pattern, APR_FINFO_TYPE, p) == APR_SUCCESS && fi.filetype == APR_DIR)
            pattern = apr_pstrcat(p, pattern, "/*", NULL);
        else
            return read_conf(p, cf, pattern, optional);
    }
    if (apr_match_glob(pattern, &files, p) != APR_SUCCESS || !files)
        return optional ? 0 : -1;
    qsort(files->elts, (size_t)files->nelts, sizeof(char *), (int (*)(const void *, const void *))strcmp);
    for (i = 0; i < files->nelts; i++) {
        const char *f = apr_pstrcat(p, apr_pstrndup(p, pattern, (apr_size_t)(strrchr(pattern, '/') - pattern)), "/",
                                    APR_ARRAY_IDX(files, i, const char *), NULL);

        if (apr_stat(&fi, f, APR_FINFO_TYPE, p) == APR_SUCCESS && fi.filetype == APR_REG &&
            read_conf(p, cf, f, optional) < 0)
            return -1;
    }
    return 0;
}

/* One directive line. The first setting of a directive counts (the main server's). */
static int conf_line(apr_pool_t *p, settings_t *cf, const char *line)
{
    const char *name = next_word(p, &line), *a1, *a2, *a3;

    if (!name || name[0] == '#' || name[0] == '<')
        return 0;
    a1 = next_word(p, &line);
    a2 = a1 ? next_word(p, &line) : NULL;
    a3 = a2 ? next_word(p, &line) : NULL;
    if (!a1)
        return 0;
    a1 = expand_env(p, a1);
    if (!strcasecmp(name, "ServerRoot"))
        cf->server_root = a1;
    else if (!strcasecmp(name, "Include") || !strcasecmp(name, "IncludeOptional"))
        return read_include(p, cf, a1, !strcasecmp(name, "IncludeOptional"));
    else if (!strcasecmp(name, "DBDriver") && !cf->driver)
        cf->driver = a1;
    else if (!strcasecmp(name, "DBDParams") && !cf->params)
        cf->params = a1;
    else if (!strcasecmp(name, "PEStore") && !cf->store)
        cf->store = a1;
    else if (!strcasecmp(name, "PEMongoURI") && !cf->mongo_uri)
        cf->mongo_uri = a1;
    else if (!strcasecmp(name, "PECommonPasswordFile") && !cf->common_passwords)
        cf->common_passwords = rooted(p, cf, a1);
    else if (!strcasecmp(name, "PEArgon2Cost") && a3) {
        char *end;
        unsigned long m = strtoul(a2, &end, 10);

        if (*end == 'M' || *end == 'm')
            m *= 1024;
        else if (*end == 'G' || *end == 'g')
            m *= 1024 * 1024;
        else
            m /= 1024; /* bytes */
        cf->argon2_t = (unsigned)strtoul(a1, NULL, 10);
        cf->argon2_m_kib = (unsigned)m;
        cf->argon2_p = (unsigned)strtoul(a3, NULL, 10);
    }
    return 0;
}

static int read_conf(apr_pool_t *p, settings_t *cf, const char *path, int optional)
{
    FILE *f;
    char buf[8192];
    char *acc = NULL;

    if (++cf->depth > 16) {
        fprintf(stderr, "pe-admin: %s: Include nested too deeply\n", path);
        return -1;
    }
    if (!(f = fopen(path, "r"))) {
        cf->depth--;
        if (optional)
            return 0;
        fprintf(stderr, "pe-admin: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(buf, sizeof(buf), f)) {
        size_t n = strlen(buf);

        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        /* a backslash at the end continues the line */
        if (n && buf[n - 1] == '\\') {
            buf[n - 1] = ' ';
            acc = acc ? apr_pstrcat(p, acc, buf, NULL) : apr_pstrdup(p, buf);
            continue;
        }
        if (conf_line(p, cf, acc ? apr_pstrcat(p, acc, buf, NULL) : buf) < 0) {
            fclose(f);
            return -1;
        }
        acc = NULL;
    }
    fclose(f);
    cf->depth--;
    return 0;
}

/* ----------------------------------------------------------------------------------------- */
/* The store */

typedef struct {
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
} dbd_conn_t;

static apr_status_t dbd_close(void *data)
{
    dbd_conn_t *c = data;

    apr_dbd_close(c->drv, c->h);
    return APR_SUCCESS;
}

/*
 * A new SQLite file belongs to whoever made it: when this tool (as root) makes the database
 * before the server ever ran, it gives the file to the owner of its folder, the server's user,
 * which must write it.
 */
static void sqlite_give_to_folder_owner(apr_pool_t *p, const char *path, int existed)
{
    struct stat dir;
    char *copy = apr_pstrdup(p, path);
    static const char *const ext[] = {"", "-wal", "-shm"};
    int i;

    if (existed || geteuid() != 0 || stat(dirname(copy), &dir) != 0)
        return;
    for (i = 0; i < 3; i++)
        if (chown(apr_pstrcat(p, path, ext[i], NULL), dir.st_uid, dir.st_gid) != 0 && i == 0)
            fprintf(stderr, "pe-admin: warning: cannot give %s to the owner of its folder: %s\n", path,
                    strerror(errno));
}

static pe_store_t *open_store(apr_pool_t *p, const settings_t *cf)
{
    pe_store_t *st;
    int applied = 0, existed = 0;

    if (cf->store && !strcasecmp(cf->store, "mongodb")) {
        const char *err = NULL;
        pe_mongo_t *m;

        if (!cf->mongo_uri) {
            fprintf(stderr, "pe-admin: PEStore mongodb needs PEMongoURI (or --mongodb-uri)\n");
            return NULL;
        }
        pe_mongo_global_init(p);
        if (!(m = pe_mongo_create(p, cf->mongo_uri, 1, &err))) {
            fprintf(stderr, "pe-admin: PEMongoURI: %s\n", err ? err : "unusable");
            return NULL;
        }
        st = pe_store_mongo_make(p, m);
    }
    else {
        dbd_conn_t *c = apr_pcalloc(p, sizeof(*c));
        const char *err = NULL, *driver = cf->driver ? cf->driver : "sqlite3";

        if (!cf->params) {
            fprintf(stderr, "pe-admin: no store settings: give -f with the server's configuration file, or --driver "
                            "and --params\n");
            return NULL;
        }
        if (apr_dbd_init(p) != APR_SUCCESS || apr_dbd_get_driver(p, driver, &c->drv) != APR_SUCCESS) {
            fprintf(stderr, "pe-admin: no apr_dbd driver '%s' (install libaprutil1-dbd-%s)\n", driver, driver);
            return NULL;
        }
        if (!strcmp(driver, "sqlite3"))
            existed = access(cf->params, F_OK) == 0;
        if (apr_dbd_open_ex(c->drv, p, cf->params, &c->h, &err) != APR_SUCCESS) {
            fprintf(stderr, "pe-admin: cannot open the %s store: %s\n", driver, err ? err : "unknown error");
            return NULL;
        }
        apr_pool_cleanup_register(p, c, dbd_close, apr_pool_cleanup_null);
        st = pe_store_dbd_make(p, c->drv, c->h, apr_hash_make(p), p);
        if (!strcmp(driver, "sqlite3")) {
            /* the schema makes the file's journal too; then it is given away */
            if (pe_store_schema_apply(st, &applied) == PE_STORE_OK)
                sqlite_give_to_folder_owner(p, cf->params, existed);
        }
    }
    /* NB: the same schema the server applies at start: a fresh database gets every version. */
    if (pe_store_schema_apply(st, &applied) != PE_STORE_OK) {
        fprintf(stderr, "pe-admin: the store's schema cannot be applied: %s\n", pe_store_error(st));
        return NULL;
    }
    return st;
}

/* ----------------------------------------------------------------------------------------- */
/* Passwords */

static const char *read_password(apr_pool_t *p, int from_stdin)
{
    char buf[1100];
    apr_size_t n = sizeof(buf);

    if (from_stdin) {
        size_t len;

        if (!fgets(buf, sizeof(buf), stdin)) {
            fprintf(stderr, "pe-admin: no password on stdin\n");
            return NULL;
        }
        len = strlen(buf);
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        return apr_pstrdup(p, buf);
    }
    else {
        char again[1100];
        apr_size_t n2 = sizeof(again);
        const char *pw;

        if (apr_password_get("New password: ", buf, &n) != APR_SUCCESS) {
            fprintf(stderr, "pe-admin: cannot read a password from the terminal (use -i to read stdin)\n");
            return NULL;
        }
        pw = apr_pstrdup(p, buf);
        if (apr_password_get("Re-type new password: ", again, &n2) != APR_SUCCESS || strcmp(pw, again)) {
            fprintf(stderr, "pe-admin: the passwords differ\n");
            return NULL;
        }
        memset(again, 0, sizeof(again));
        memset(buf, 0, sizeof(buf));
        return pw;
    }
}

static int print_problems(apr_array_header_t *errs)
{
    int i;

    for (i = 0; i < errs->nelts; i++)
        fprintf(stderr, "pe-admin: %s\n", APR_ARRAY_IDX(errs, i, const char *));
    return errs->nelts ? EX_INVALID : EX_DONE;
}

static apr_hash_t *common_list(apr_pool_t *p, const settings_t *cf)
{
    apr_hash_t *list = NULL;
    const char *err;

    if (!cf->common_passwords)
        return NULL;
    if ((err = pe_password_list_load(p, cf->common_passwords, &list))) {
        fprintf(stderr, "pe-admin: warning: PECommonPasswordFile: %s\n", err);
        return NULL;
    }
    return list;
}

static int hash_password(apr_pool_t *p, const settings_t *cf, const char *pw, const char **hash)
{
    if (pe_password_hash(p, pw, strlen(pw), cf->argon2_t, cf->argon2_m_kib, cf->argon2_p, hash) != APR_SUCCESS) {
        fprintf(stderr, "pe-admin: Argon2id failed (PEArgon2Cost %u %uK %u)\n", cf->argon2_t, cf->argon2_m_kib,
                cf->argon2_p);
        return EX_STORE;
    }
    return EX_DONE;
}

/* A security event of the tool's actions; a failure to store it is said, not fatal. */
static void tool_event(pe_store_t *st, const char *type, const pe_staff_t *s, json_t *details)
{
    const char *who = getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");

    json_object_set_new(details, "actor", json_string("pe-admin"));
    if (who)
        json_object_set_new(details, "system_user", json_string(who));
    json_object_set_new(details, "target_admin_id", json_string(s->id));
    if (pe_store_event(st, type, PE_PRINCIPAL_ADMIN, s->id, s->username, "", details, "warning", apr_time_now()) !=
        PE_STORE_OK)
        fprintf(stderr, "pe-admin: warning: the security event %s was not stored\n", type);
    json_decref(details);
}

/* ----------------------------------------------------------------------------------------- */
/* Commands */

static int cmd_create_super(apr_pool_t *p, const settings_t *cf, pe_store_t *st, int argc, const char *const *argv,
                            int from_stdin)
{
    const char *username, *email, *name, *email_n = NULL, *pw, *hash;
    pe_staff_t *s;
    pe_store_status_e rs;
    int rc;

    if (argc < 2 || argc > 3) {
        usage();
        return EX_BADUSE;
    }
    username = argv[0];
    email = argv[1];
    name = argc > 2 ? argv[2] : username;
    /* the account's fields are checked before any password is asked */
    if ((rc = print_problems(pe_staff_check(p, NULL, username, name, email, NULL, &email_n))) != EX_DONE)
        return rc;
    if (!(pw = read_password(p, from_stdin)))
        return EX_INVALID;
    if ((rc = print_problems(pe_staff_check(p, common_list(p, cf), username, name, email, pw, &email_n))) != EX_DONE)
        return rc;
    if ((rc = hash_password(p, cf, pw, &hash)) != EX_DONE)
        return rc;
    if (!(s = pe_staff_new(p, PE_PRINCIPAL_ADMIN, username, name, email_n, hash, 1, "", "", apr_time_now())))
        return EX_STORE;
    rs = pe_store_staff_create(st, s);
    if (rs == PE_STORE_CONFLICT) {
        fprintf(stderr, "pe-admin: an administrator with this %s exists already\n", pe_store_conflict(st));
        return EX_EXISTS;
    }
    if (rs != PE_STORE_OK) {
        fprintf(stderr, "pe-admin: the store failed: %s\n", pe_store_error(st));
        return EX_STORE;
    }
    tool_event(st, "admin_created", s, json_pack("{s:b,s:s}", "is_super_admin", 1, "created_by", "pe-admin"));
    printf("created super-administrator %s (id %s) in the %s store\n", s->username, s->id,
           pe_store_backend_name(st));
    return EX_DONE;
}

static int cmd_list(pe_store_t *st)
{
    apr_array_header_t *list;
    int i;

    if (pe_store_staff_list(st, PE_PRINCIPAL_ADMIN, &list) != PE_STORE_OK) {
        fprintf(stderr, "pe-admin: the store failed: %s\n", pe_store_error(st));
        return EX_STORE;
    }
    printf("%-24s  %-20s  %-30s  %-11s  %-6s  %s\n", "id", "username", "email", "role", "active", "locked until");
    for (i = 0; i < list->nelts; i++) {
        const pe_staff_t *s = APR_ARRAY_IDX(list, i, const pe_staff_t *);
        char when[APR_RFC822_DATE_LEN] = "-";

        if (s->locked_until > apr_time_now())
            apr_rfc822_date(when, s->locked_until);
        printf("%-24s  %-20s  %-30s  %-11s  %-6s  %s\n", s->id, s->username, s->email,
               s->is_super ? "super-admin" : "admin", s->is_active ? "yes" : "no", when);
    }
    return EX_DONE;
}

static int cmd_passwd(apr_pool_t *p, const settings_t *cf, pe_store_t *st, int argc, const char *const *argv,
                      int from_stdin)
{
    const char *pw, *hash;
    pe_staff_t *s;
    apr_array_header_t *errs;
    pe_store_status_e rs;
    int rc;

    if (argc != 1) {
        usage();
        return EX_BADUSE;
    }
    rs = pe_store_staff_by_username(st, PE_PRINCIPAL_ADMIN, argv[0], &s);
    if (rs == PE_STORE_NOTFOUND) {
        fprintf(stderr, "pe-admin: no administrator %s\n", argv[0]);
        return EX_NOTFOUND;
    }
    if (rs != PE_STORE_OK) {
        fprintf(stderr, "pe-admin: the store failed: %s\n", pe_store_error(st));
        return EX_STORE;
    }
    if (!(pw = read_password(p, from_stdin)))
        return EX_INVALID;
    errs = pe_password_check_all(p, common_list(p, cf), pw, strlen(pw), s->email, s->username);
    if ((rc = print_problems(errs)) != EX_DONE)
        return rc;
    if ((rc = hash_password(p, cf, pw, &hash)) != EX_DONE)
        return rc;
    if (pe_store_staff_set_password(st, PE_PRINCIPAL_ADMIN, s->id, hash, apr_time_now()) != PE_STORE_OK ||
        pe_store_session_delete_all(st, PE_PRINCIPAL_ADMIN, s->id, NULL) != PE_STORE_OK) {
        fprintf(stderr, "pe-admin: the store failed: %s\n", pe_store_error(st));
        return EX_STORE;
    }
    tool_event(st, "admin_password_reset", s, json_pack("{s:[s]}", "fields_changed", "password"));
    printf("password of administrator %s set; its sessions are ended and any lock is lifted\n", s->username);
    return EX_DONE;
}

/* deactivate / activate / delete USERNAME: the store's guard keeps the last active super-administrator. */
static int cmd_lifecycle(pe_store_t *st, const char *cmd, int argc, const char *const *argv)
{
    int del = !strcmp(cmd, "delete"), on = !strcmp(cmd, "activate");
    pe_staff_t *s;
    pe_store_status_e rs;

    if (argc != 1) {
        usage();
        return EX_BADUSE;
    }
    rs = pe_store_staff_by_username(st, PE_PRINCIPAL_ADMIN, argv[0], &s);
    if (rs == PE_STORE_OK)
        rs = del ? pe_store_staff_delete(st, PE_PRINCIPAL_ADMIN, s->id)
                 : pe_store_staff_set_active(st, PE_PRINCIPAL_ADMIN, s->id, on, apr_time_now());
    if (rs == PE_STORE_NOTFOUND) {
        fprintf(stderr, "pe-admin: no administrator %s\n", argv[0]);
        return EX_NOTFOUND;
    }
    if (rs == PE_STORE_EMPTY) {
        fprintf(stderr, "pe-admin: %s is the last active super-administrator: not changed\n", argv[0]);
        return EX_LAST_SUPER;
    }
    if (rs != PE_STORE_OK) {
        fprintf(stderr, "pe-admin: the store failed: %s\n", pe_store_error(st));
        return EX_STORE;
    }
    tool_event(st, del ? "admin_deleted" : on ? "admin_activated" : "admin_deactivated", s,
               json_pack("{s:s,s:s,s:s}", "target_id", s->id, "target_username", s->username, "target_kind",
                         pe_principal_kind_name(PE_PRINCIPAL_ADMIN)));
    printf("administrator %s %s%s\n", s->username, del ? "deleted" : on ? "activated" : "deactivated",
           on ? "" : "; its sessions are ended");
    return EX_DONE;
}

int main(int argc, const char *const *argv)
{
    static const apr_getopt_option_t opts[] = {
        {"file", 'f', 1, "httpd configuration file"},
        {"server-root", 'd', 1, "ServerRoot for relative paths"},
        {"driver", 'D', 1, "apr_dbd driver"},
        {"params", 'P', 1, "apr_dbd parameters"},
        {"mongodb-uri", 'M', 1, "MongoDB URI"},
        {"stdin", 'i', 0, "read the password from stdin"},
        {"help", 'h', 0, "help"},
        {"version", 'v', 0, "version"},
        {NULL, 0, 0, NULL}};
    apr_pool_t *p;
    apr_getopt_t *g;
    settings_t cf;
    const char *conf = NULL, *arg, *cmd, *driver = NULL, *params = NULL, *uri = NULL;
    pe_store_t *st;
    int opt, from_stdin = 0, rc;
    apr_status_t rv;

    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&p, NULL);
    pe_log_set(log_sink);
    memset(&cf, 0, sizeof(cf));
    apr_getopt_init(&g, p, argc, argv);
    while ((rv = apr_getopt_long(g, opts, &opt, &arg)) == APR_SUCCESS) {
        switch (opt) {
        case 'f': conf = arg; break;
        case 'd': cf.server_root = arg; break;
        case 'D': driver = arg; break;
        case 'P': params = arg; break;
        case 'M': uri = arg; break;
        case 'i': from_stdin = 1; break;
        case 'v': printf("pe-admin (mod_promptenchanter %s)\n", PE_VERSION); return EX_DONE;
        default: usage(); return EX_BADUSE;
        }
    }
    if (rv != APR_EOF || g->ind >= argc) {
        usage();
        return EX_BADUSE;
    }
    cmd = argv[g->ind];
    if (conf && read_conf(p, &cf, conf, 0) < 0)
        return EX_BADUSE;
    if (driver)
        cf.driver = driver;
    if (params)
        cf.params = params;
    if (uri) {
        cf.mongo_uri = uri;
        cf.store = "mongodb";
    }
    else if (driver || params)
        cf.store = "dbd";
    if (!cf.argon2_t) {
        cf.argon2_t = 3;
        cf.argon2_m_kib = 65536;
        cf.argon2_p = 1;
    }
    if (strcmp(cmd, "create-super") && strcmp(cmd, "list") && strcmp(cmd, "passwd") && strcmp(cmd, "deactivate") &&
        strcmp(cmd, "activate") && strcmp(cmd, "delete")) {
        usage();
        return EX_BADUSE;
    }
    if (!(st = open_store(p, &cf)))
        return EX_STORE;
    if (!strcmp(cmd, "create-super"))
        rc = cmd_create_super(p, &cf, st, argc - g->ind - 1, argv + g->ind + 1, from_stdin);
    else if (!strcmp(cmd, "list"))
        rc = cmd_list(st);
    else if (!strcmp(cmd, "passwd"))
        rc = cmd_passwd(p, &cf, st, argc - g->ind - 1, argv + g->ind + 1, from_stdin);
    else
        rc = cmd_lifecycle(st, cmd, argc - g->ind - 1, argv + g->ind + 1);
    apr_pool_destroy(p);
    return rc;
}
