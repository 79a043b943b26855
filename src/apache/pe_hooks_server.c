/*
 * pe_hooks_server.c: server lifecycle hooks: pre_config (new generation), post_config
 * (start-up checks, keys, banner), child_init (per-process state).
 */
#include "pe_access_ap.h"
#include "pe_completion.h"
#include "pe_config.h"
#include "pe_crypto.h"
#include "pe_identity.h"
#include "pe_global.h"
#include "pe_hooks.h"
#include "pe_log.h"
#include "pe_monitor_ap.h"
#include "pe_principal_ap.h"
#include "pe_research_ap.h"
#include "pe_store_ap.h"
#include "pe_prompts_ap.h"
#include "pe_util.h"
#include "pe_version.h"

#include "http_core.h"
#include "http_main.h"
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

static server_rec *pe_main_server;

/* Core-code log sink: messages go to the main server's error log. */
static void pe_core_log_sink(int level, apr_status_t rv, const char *msg)
{
    ap_log_error(APLOG_MARK, level, rv, pe_main_server, "%s", msg);
}

/* pre_config: start a new configuration generation. */
int pe_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    pe_global_reset(pconf);
    return OK;
}

/* Load one key file into dst, once per generation; logs and fails on a bad file. */
static int pe_load_key(apr_pool_t *ptemp, server_rec *s, const char *directive, const char *path,
                       int *have, unsigned char dst[32])
{
    const char *err;

    if (!path || *have)
        return OK;
    err = pe_key_file_load(ptemp, path, dst);
    if (err) {
        pe_slog(s, APLOG_CRIT, 0, PE_LOGNO(00002) "%s: %s", directive, err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    *have = 1;
    return OK;
}

/*
 * Account state of this generation: the keyring (current key seals, an old one still opens),
 * the common-password list and the server-wide hash gate.
 */
static int pe_accounts_setup(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pe_global_t *g = pe_global();
    pe_srv_conf_t *sc = pe_config_srv(s);
    const char *err;

    g->keyring = pe_keyring_create(pconf);
    if (pe_srv_old_encryption_key_file(sc)) {
        unsigned char old[32];

        if ((err = pe_key_file_load(ptemp, pe_srv_old_encryption_key_file(sc), old)) ||
            (err = pe_keyring_add(g->keyring, pe_srv_old_encryption_key_id(sc), old, 0))) {
            pe_wipe(old, sizeof(old));
            pe_slog(s, APLOG_CRIT, 0, PE_LOGNO(00009) "PEEncryptionKeyFileOld: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        pe_wipe(old, sizeof(old));
    }
    if ((err = pe_keyring_add(g->keyring, pe_srv_encryption_key_id(sc), g->encryption_key, 1))) {
        pe_slog(s, APLOG_CRIT, 0, PE_LOGNO(00004) "PEEncryptionKeyFile: %s", err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (pe_srv_common_password_file(sc)) {
        if ((err = pe_password_list_load(pconf, pe_srv_common_password_file(sc), &g->common_passwords))) {
            pe_slog(s, APLOG_CRIT, 0, PE_LOGNO(00005) "PECommonPasswordFile: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    else {
        pe_slog(s, APLOG_WARNING, 0,
                PE_LOGNO(00006) "PECommonPasswordFile is not set: common passwords are not refused");
    }
    return OK;
}

/*
 * post_config (not the dry run): the cross-process hash gate and a dummy hash made with the
 * current parameters, verified for unknown e-mails so a login takes as long either way.
 */
static int pe_accounts_post_config(apr_pool_t *pconf, server_rec *s)
{
    pe_global_t *g = pe_global();
    pe_srv_conf_t *sc = pe_config_srv(s);
    apr_status_t rv;
    unsigned char junk[16];
    const char *pw;

    if ((rv = pe_gate_create(pconf, (unsigned)pe_srv_hash_max(sc), &g->hash_gate)) != APR_SUCCESS) {
        pe_slog(s, APLOG_CRIT, rv, PE_LOGNO(00007) "cannot create the password-hash gate");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    pe_random_bytes(junk, sizeof(junk));
    pw = pe_hex_encode(pconf, junk, sizeof(junk));
    if ((rv = pe_password_hash(pconf, pw, strlen(pw), (unsigned)pe_srv_argon2_t(sc), (unsigned)pe_srv_argon2_m_kib(sc),
                               (unsigned)pe_srv_argon2_p(sc), &g->dummy_hash)) != APR_SUCCESS) {
        pe_slog(s, APLOG_CRIT, rv, PE_LOGNO(00008) "Argon2id does not work with PEArgon2Cost %d %dK %d",
                pe_srv_argon2_t(sc), pe_srv_argon2_m_kib(sc), pe_srv_argon2_p(sc));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* Checks across the whole configuration; non-OK refuses to start. */
int pe_config_check(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    pe_global_t *g = pe_global();
    pe_srv_conf_t *msc = pe_config_srv(s);
    server_rec *vs;

    if (!pe_srv_secret_key_file(msc) || !pe_srv_encryption_key_file(msc)) {
        pe_slog(s, APLOG_CRIT, 0,
                PE_LOGNO(00003) "PESecretKeyFile and PEEncryptionKeyFile are required: create each with "
                "'(umask 077; openssl rand -hex 32 > FILE)'");
        return HTTP_INTERNAL_SERVER_ERROR;
    }

    for (vs = s; vs; vs = vs->next) {
        pe_srv_conf_t *sc = pe_config_srv(vs);
        int rc;

        if ((rc = pe_load_key(ptemp, vs, "PESecretKeyFile", pe_srv_secret_key_file(sc), &g->have_secret_key,
                              g->secret_key)) != OK)
            return rc;
        if ((rc = pe_load_key(ptemp, vs, "PEEncryptionKeyFile", pe_srv_encryption_key_file(sc),
                              &g->have_encryption_key, g->encryption_key)) != OK)
            return rc;
    }
    return pe_accounts_setup(pconf, ptemp, s);
}

/* test_config (apache2 -t): httpd exits before post_config, so run the checks here too. */
void pe_test_config(apr_pool_t *pconf, server_rec *s)
{
    apr_pool_t *ptemp;

    pe_main_server = s;
    pe_log_set(pe_core_log_sink);
    apr_pool_create(&ptemp, pconf);
    if (pe_config_check(pconf, ptemp, s) != OK) {
        /* NB: the test_config hook cannot fail; exit as httpd does for a syntax error. */
        ap_log_error(APLOG_MARK, APLOG_STARTUP, 0, NULL, "Syntax error in mod_promptenchanter settings");
        exit(1);
    }
    apr_pool_destroy(ptemp);
}

/*
 * post_config: runs twice at start-up (the first is a dry run that only checks the
 * configuration) and once per restart; NB: no threads or connections are made here, only
 * checks and global state that children inherit.
 */
int pe_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    int rc;

    pe_main_server = s;
    pe_log_set(pe_core_log_sink);
    if ((rc = pe_config_check(pconf, ptemp, s)) != OK)
        return rc;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG)
        return OK;
    if ((rc = pe_accounts_post_config(pconf, s)) != OK)
        return rc;
    /* access layer post_config */
    if ((rc = pe_access_post_config(pconf, ptemp, s)) != OK)
        return rc;
    /* completions post_config */
    if ((rc = pe_completion_post_config(pconf, ptemp, s)) != OK)
        return rc;
    /* principal cache post_config */
    if ((rc = pe_principal_post_config(pconf, ptemp, s)) != OK)
        return rc;
    /* research post_config */
    if ((rc = pe_research_post_config(pconf, ptemp, s)) != OK)
        return rc;
    /* monitoring post_config: the metrics block */
    if ((rc = pe_monitor_post_config(pconf, plog, ptemp, s)) != OK)
        return rc;
    pe_slog(s, APLOG_INFO, 0,
            PE_LOGNO(00001) "mod_promptenchanter %s initialised (jansson %s, curl %s, %s)", PE_VERSION,
            JANSSON_VERSION, curl_version_info(CURLVERSION_NOW)->version, OpenSSL_version(OPENSSL_VERSION));
    return OK;
}

/* child_init: per-process state. */
void pe_child_init(apr_pool_t *pchild, server_rec *s)
{
    pe_main_server = s;
    pe_monitor_child_init(pchild, s); /* first: the others use its gauge slot */
    pe_store_child_init(pchild, s);
    /* access layer child_init */
    pe_access_child_init(pchild, s);
    /* completions child_init */
    pe_completion_child_init(pchild, s);
    pe_prompts_child_init(pchild, s);
    pe_principal_child_init(pchild, s);
    /* research child_init */
    pe_research_child_init(pchild, s);
}

/* optional_fn_retrieve: functions of other modules (mod_dbd). */
void pe_optional_fn_retrieve(void)
{
    pe_store_retrieve_fns();
}
