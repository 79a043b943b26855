/*
 * pe_config_research.h: the research concern's configuration, spliced into pe_config.h.
 * PE_SRV_RESEARCH_MEMBERS / PE_DIR_RESEARCH_MEMBERS follow pe_config.h's X(type, name, unset, default);
 * PE_RESEARCH_CMDS are its command_rec entries (each followed by a comma), whose handler functions
 * this header declares and src/apache/pe_research_config.c defines. docs/configuration.md
 * ("Research and batch") documents every directive.
 */
#ifndef PE_CONFIG_RESEARCH_H
#define PE_CONFIG_RESEARCH_H

#include "pe_ssrf.h"

/* Per virtual host. Times in milliseconds. */
#define PE_SRV_RESEARCH_MEMBERS(X)                                                                 \
    X(const char *, search_url, NULL, NULL)                                                        \
    X(const char *, search_provider, NULL, "searxng")                                              \
    X(const char *, search_key, NULL, NULL)                                                        \
    X(const char *, search_language, NULL, NULL)                                                   \
    X(const pe_ssrf_allow_list_t *, research_allow, NULL, NULL)                                    \
    X(int, research_parallel, -1, 24)                                                              \
    X(long long, research_page_bytes, -1, 1024 * 1024)                                             \
    X(long long, research_page_timeout_ms, -1, 10000)                                              \
    X(long long, search_timeout_ms, -1, 8000)                                                      \
    X(long long, research_timeout_ms, -1, 20000)                                                   \
    X(long long, research_ttl_ms, -1, 86400000LL)                                                  \
    X(long long, research_page_ttl_ms, -1, 3600000LL)                                              \
    X(int, research_cache_slots, -1, 256)                                                          \
    X(const char *, research_topics_model, NULL, NULL)                                             \
    X(const char *, research_synthesis_model, NULL, NULL)                                          \
    X(int, batch_parallel, -1, 10)                                                                 \
    X(int, batch_max_tasks, -1, 50)

#define PE_DIR_RESEARCH_MEMBERS(X)

/** "PESearchURL url". */
const char *pe_research_cmd_search_url(cmd_parms *cmd, void *dconf, const char *arg);
/** "PESearchProvider name". */
const char *pe_research_cmd_search_provider(cmd_parms *cmd, void *dconf, const char *arg);
/** "PESearchKey key". */
const char *pe_research_cmd_search_key(cmd_parms *cmd, void *dconf, const char *arg);
/** "PESearchLanguage code". */
const char *pe_research_cmd_search_language(cmd_parms *cmd, void *dconf, const char *arg);
/** "PEResearchAllowNetworks net[:ports]... | none". */
const char *pe_research_cmd_allow(cmd_parms *cmd, void *dconf, const char *line);
/** Numeric and duration directives; cmd->info names the member and its bounds. */
const char *pe_research_cmd_int(cmd_parms *cmd, void *dconf, const char *arg);
/** "PEResearchModels topics-model synthesis-model". */
const char *pe_research_cmd_models(cmd_parms *cmd, void *dconf, const char *topics, const char *synthesis);

/* Bounds of the numeric directives (src/apache/pe_research_config.c). */
extern const struct pe_research_range pe_rr_parallel, pe_rr_page_bytes, pe_rr_page_timeout, pe_rr_search_timeout,
    pe_rr_timeout, pe_rr_ttl, pe_rr_page_ttl, pe_rr_cache_slots, pe_rr_batch_parallel, pe_rr_batch_tasks;

#define PE_RESEARCH_CMDS                                                                                             \
    AP_INIT_TAKE1("PESearchURL", pe_research_cmd_search_url, NULL, RSRC_CONF,                                        \
                  "The search provider's endpoint, e.g. http://127.0.0.1:8888/search (default: none, no research)"), \
    AP_INIT_TAKE1("PESearchProvider", pe_research_cmd_search_provider, NULL, RSRC_CONF,                              \
                  "The search API: searxng or brave (default searxng)"),                                             \
    AP_INIT_TAKE1("PESearchKey", pe_research_cmd_search_key, NULL, RSRC_CONF,                                        \
                  "API key of the search provider, for providers that need one"),                                   \
    AP_INIT_TAKE1("PESearchLanguage", pe_research_cmd_search_language, NULL, RSRC_CONF,                              \
                  "Language hint sent to the search provider, e.g. en (default: none)"),                            \
    AP_INIT_RAW_ARGS("PEResearchAllowNetworks", pe_research_cmd_allow, NULL, RSRC_CONF,                              \
                     "Networks and ports research may fetch from although they are not public, e.g. "               \
                     "127.0.0.2:8080 10.0.0.0/8:80,443 [::1]:8443 (no ports: 80,443; default: none)"),             \
    AP_INIT_TAKE1("PEResearchMaxParallel", pe_research_cmd_int, (void *)&pe_rr_parallel, RSRC_CONF,                  \
                  "Page fetches of one research call at once (default 24)"),                                        \
    AP_INIT_TAKE1("PEResearchPageSize", pe_research_cmd_int, (void *)&pe_rr_page_bytes, RSRC_CONF,                   \
                  "Bytes read of one page, decoded (default 1M, at most 2M)"),                                      \
    AP_INIT_TAKE1("PEResearchPageTimeout", pe_research_cmd_int, (void *)&pe_rr_page_timeout, RSRC_CONF,              \
                  "Time limit of one page with its redirects (default 10s)"),                                       \
    AP_INIT_TAKE1("PESearchTimeout", pe_research_cmd_int, (void *)&pe_rr_search_timeout, RSRC_CONF,                  \
                  "Time limit of one search (default 8s)"),                                                         \
    AP_INIT_TAKE1("PEResearchTimeout", pe_research_cmd_int, (void *)&pe_rr_timeout, RSRC_CONF,                       \
                  "Time limit of the searches and page fetches of one research call (default 20s)"),                \
    AP_INIT_TAKE1("PEResearchCacheTTL", pe_research_cmd_int, (void *)&pe_rr_ttl, RSRC_CONF,                          \
                  "How long a research result is reused, 0 for never (default 24h)"),                               \
    AP_INIT_TAKE1("PEResearchPageCacheTTL", pe_research_cmd_int, (void *)&pe_rr_page_ttl, RSRC_CONF,                 \
                  "How long a fetched page and a search answer are reused, 0 for never (default 1h)"),              \
    AP_INIT_TAKE1("PEResearchCacheSize", pe_research_cmd_int, (void *)&pe_rr_cache_slots, RSRC_CONF,                 \
                  "Entries of 32K in the shared research cache, 0 for none (default 256)"),                         \
    AP_INIT_TAKE2("PEResearchModels", pe_research_cmd_models, NULL, RSRC_CONF,                                       \
                  "Models of the topic analysis and of the synthesis (default: the low and medium level models)"),  \
    AP_INIT_TAKE1("PEBatchMaxParallel", pe_research_cmd_int, (void *)&pe_rr_batch_parallel, RSRC_CONF,               \
                  "Tasks of one parallel batch run at once (default 10)"),                                          \
    AP_INIT_TAKE1("PEBatchMaxTasks", pe_research_cmd_int, (void *)&pe_rr_batch_tasks, RSRC_CONF,                     \
                  "Most tasks in one batch (default 50)"),

#endif
