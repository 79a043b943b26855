/*
 * pe_completion.h: httpd glue of the completion concern: lifecycle hooks (curl, the response
 * cache's shared segment, the upstream handle pool and the conversation-log writer per child),
 * log_transaction (conversation logs), and what the completion handlers share.
 */
#ifndef PE_COMPLETION_H
#define PE_COMPLETION_H

#include "httpd.h"
#include "pe_cache.h"
#include "pe_enhance.h"
#include "pe_msglog.h"
#include "pe_store.h"
#include "pe_upstream.h"

/** pre_config: register the "pe-cache" mutex (admins may tune it with the Mutex directive). */
int pe_completion_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);

/**
 * post_config (not the dry run): curl_global_init once per process, the cache's shared segment
 * and its global mutex on pconf.
 * @return OK, or HTTP_INTERNAL_SERVER_ERROR (logged) so httpd refuses to start
 */
int pe_completion_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

/**
 * child_init: the cache mutex in this child, the memcached client, the curl handle pool and the
 * conversation-log writer thread; its final flush is a pre-cleanup of pchild (before mod_dbd's
 * connection pool goes).
 */
void pe_completion_child_init(apr_pool_t *pchild, server_rec *s);

/** child_stopping: ask the conversation-log writer to write what it holds now. */
void pe_completion_child_stopping(apr_pool_t *pchild, int graceful);

/** log_transaction: queue the conversation log of a completion (copied out of r->pool). */
int pe_completion_log_transaction(request_rec *r);

/**
 * Research for a completion, provided by the research concern (pe_completion_set_research).
 * @param query the last user message's text
 * @param res,n results in r->pool (n 0 when research found nothing)
 * @return APR_SUCCESS, or an error (the completion then goes on without research)
 */
typedef apr_status_t pe_completion_research_fn(request_rec *r, const char *query, pe_depth_t depth,
                                               pe_enhance_research_t **res, int *n);

/** Install the research function (NULL: ai_research is accepted and ignored). */
void pe_completion_set_research(pe_completion_research_fn *fn);

/* Shared with the handlers (src/apache/pe_h_completion.c). */

/** The process's upstream handle pool (NULL before child_init). */
pe_upstream_pool_t *pe_completion_handles(void);

/** The process's response cache (NULL when PECache is Off or it could not be made). */
pe_cache_t *pe_completion_cache(void);

/** This child's memcached client of the cache (readiness checks), or NULL. */
struct pe_memcache_t *pe_completion_memcache(void);

/** This child's conversation-log queue, or NULL. */
pe_msglog_t *pe_completion_msglog(void);

/** The research function, or NULL. */
pe_completion_research_fn *pe_completion_research(void);

/** The upstream settings of server s (strings point into its configuration). */
void pe_completion_upstream_conf(server_rec *s, int stream, pe_upstream_conf_t *out);

/** The enhancement settings of server s, made in p. */
const pe_enhance_conf_t *pe_completion_enhance_conf(apr_pool_t *p, server_rec *s);

/** What a completion leaves for log_transaction (pool userdata of the main request). */
typedef struct pe_completion_note_t {
    const char *user_id, *username, *model, *r_type;
    int research;
    const char *messages; /* JSON text of the client's messages */
    const char *response; /* the answer's text */
    apr_int64_t tokens;
} pe_completion_note_t;

/**
 * Whether user u may use req's r_type (access_rtype) and level (at most the account's).
 * @param code,msg out on refusal: RTYPE_NOT_ALLOWED or LEVEL_NOT_ALLOWED and a message in p
 * @return OK or HTTP_FORBIDDEN
 */
int pe_completion_check_rights(apr_pool_t *p, const pe_user_t *u, const pe_enhance_req_t *req, const char **code,
                               const char **msg);

/** Attach a note to r (the log_transaction hook reads it). */
void pe_completion_note_set(request_rec *r, pe_completion_note_t *note);

#endif
