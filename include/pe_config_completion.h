/*
 * pe_config_completion.h: the completion concern's configuration, spliced into pe_config.h.
 * PE_SRV_COMPLETION_MEMBERS / PE_DIR_COMPLETION_MEMBERS follow pe_config.h's X(type, name, unset, default);
 * PE_COMPLETION_CMDS are its command_rec entries (each followed by a comma), whose handler functions
 * this header declares and src/apache/pe_config_completion.c defines.
 *
 * Upstream, models, credits, cache and conversation logs are server settings; the cache backend,
 * the conversation-log queue and the upstream handle pool are made once per process from the main
 * server's values.
 */
#ifndef PE_CONFIG_COMPLETION_H
#define PE_CONFIG_COMPLETION_H

#define PE_SRV_COMPLETION_MEMBERS(X)                                                               \
    X(const char *, upstream_url, NULL, NULL)                                                      \
    X(const char *, upstream_key, NULL, NULL)                                                      \
    X(long long, upstream_connect_ms, -1, 5000)                                                    \
    X(long long, upstream_timeout_ms, -1, 120000)                                                  \
    X(long long, upstream_stream_timeout_ms, -1, 600000)                                           \
    X(int, upstream_retries, -1, 2)                                                                \
    X(long long, upstream_backoff_ms, -1, 500)                                                     \
    X(long long, upstream_retry_max_ms, -1, 10000)                                                 \
    X(apr_off_t, upstream_max_response, -1, (apr_off_t)8 * 1024 * 1024)                            \
    X(const char *, model_low, NULL, NULL)                                                         \
    X(const char *, model_medium, NULL, NULL)                                                      \
    X(const char *, model_high, NULL, NULL)                                                        \
    X(const char *, model_ultra, NULL, NULL)                                                       \
    X(const char *, reasoning_models, NULL, NULL)                                                  \
    X(int, credit_reset_hour, -1, 0)                                                               \
    X(int, cache_on, -1, 1)                                                                        \
    X(long long, cache_ttl_ms, -1, 3600000)                                                        \
    X(const char *, cache_servers, NULL, NULL)                                                     \
    X(long long, cache_timeout_ms, -1, 250)                                                        \
    X(int, cache_shm_entries, -1, 1024)                                                            \
    X(apr_off_t, cache_shm_entry_size, -1, (apr_off_t)32 * 1024)                                   \
    X(int, msglog_on, -1, 1)                                                                       \
    X(int, msglog_batch, -1, 100)                                                                  \
    X(long long, msglog_interval_ms, -1, 1000)                                                     \
    X(int, msglog_queue, -1, 10000)                                                                \
    X(apr_off_t, msglog_max_record, -1, (apr_off_t)64 * 1024)                                       \
    X(int, usagelog_on, -1, 1)                                                                     \
    X(int, usagelog_queue, -1, 4096)                                                               \
    X(long long, usagelog_retention_ms, -1, 90LL * 86400000)                                       \
    X(long long, prompt_refresh_ms, -1, 10000)                                                     \
    X(long long, principal_ttl_ms, -1, 10000)

#define PE_DIR_COMPLETION_MEMBERS(X)

/* Directive handlers (src/apache/pe_config_completion.c). */
const char *pe_cmd_cpl_str(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_cmd_cpl_url(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_cmd_cpl_int(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_cmd_cpl_duration(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_cmd_cpl_size(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_cmd_cpl_flag(cmd_parms *cmd, void *dconf, int on);
const char *pe_cmd_cpl_level_model(cmd_parms *cmd, void *dconf, const char *level, const char *model);
const char *pe_cmd_cpl_reasoning(cmd_parms *cmd, void *dconf, const char *line);
const char *pe_cmd_cpl_servers(cmd_parms *cmd, void *dconf, const char *line);

/* Argument descriptors (offset and bounds of each member), defined with the handlers. */
struct pe_cpl_arg;
extern const struct pe_cpl_arg pe_cpl_upstream_key, pe_cpl_connect, pe_cpl_timeout, pe_cpl_stream_timeout,
    pe_cpl_retries, pe_cpl_backoff, pe_cpl_retry_max, pe_cpl_max_response, pe_cpl_reset_hour, pe_cpl_cache,
    pe_cpl_cache_ttl, pe_cpl_prompt_refresh, pe_cpl_cache_timeout, pe_cpl_shm_entries, pe_cpl_shm_entry_size, pe_cpl_msglog,
    pe_cpl_msglog_batch, pe_cpl_msglog_interval, pe_cpl_msglog_queue, pe_cpl_msglog_max_record, pe_cpl_principal_ttl,
    pe_cpl_usagelog, pe_cpl_usagelog_queue, pe_cpl_usagelog_retention;

#define PE_COMPLETION_CMDS                                                                         \
    AP_INIT_TAKE1("PEUpstreamURL", pe_cmd_cpl_url, NULL, RSRC_CONF,                                \
                  "Full URL of the OpenAI-compatible chat.completions endpoint (http or https)"),   \
    AP_INIT_TAKE1("PEUpstreamKey", pe_cmd_cpl_str, (void *)&pe_cpl_upstream_key, RSRC_CONF,        \
                  "Bearer key sent to the upstream (never logged)"),                               \
    AP_INIT_TAKE1("PEUpstreamConnectTimeout", pe_cmd_cpl_duration, (void *)&pe_cpl_connect, RSRC_CONF, \
                  "Longest wait for an upstream connection (default 5s)"),                         \
    AP_INIT_TAKE1("PEUpstreamTimeout", pe_cmd_cpl_duration, (void *)&pe_cpl_timeout, RSRC_CONF,    \
                  "Longest upstream attempt, non-streamed (default 120s)"),                        \
    AP_INIT_TAKE1("PEUpstreamStreamTimeout", pe_cmd_cpl_duration, (void *)&pe_cpl_stream_timeout,  \
                  RSRC_CONF, "Longest streamed upstream answer (default 10m)"),                    \
    AP_INIT_TAKE1("PEUpstreamRetries", pe_cmd_cpl_int, (void *)&pe_cpl_retries, RSRC_CONF,         \
                  "Retries after a network error, 429 or 5xx (default 2)"),                        \
    AP_INIT_TAKE1("PEUpstreamRetryBackoff", pe_cmd_cpl_duration, (void *)&pe_cpl_backoff, RSRC_CONF, \
                  "First retry delay, doubled each time (default 500ms)"),                         \
    AP_INIT_TAKE1("PEUpstreamRetryMaxWait", pe_cmd_cpl_duration, (void *)&pe_cpl_retry_max, RSRC_CONF, \
                  "Longest wait before a retry, Retry-After included (default 10s)"),              \
    AP_INIT_TAKE1("PEUpstreamMaxResponse", pe_cmd_cpl_size, (void *)&pe_cpl_max_response, RSRC_CONF, \
                  "Largest upstream reply kept in memory (default 8M)"),                           \
    AP_INIT_TAKE2("PELevelModel", pe_cmd_cpl_level_model, NULL, RSRC_CONF,                         \
                  "Upstream model of a level: PELevelModel low|medium|high|ultra model"),          \
    AP_INIT_RAW_ARGS("PEReasoningModels", pe_cmd_cpl_reasoning, NULL, RSRC_CONF,                   \
                     "Models that reject sampling fields (default o1 o3-mini o3 o4-mini gpt-5; none)"), \
    AP_INIT_TAKE1("PECreditResetHour", pe_cmd_cpl_int, (void *)&pe_cpl_reset_hour, RSRC_CONF,      \
                  "UTC hour (0-23) at which daily conversation credits reset (default 0)"),        \
    AP_INIT_FLAG("PECache", pe_cmd_cpl_flag, (void *)&pe_cpl_cache, RSRC_CONF,                     \
                 "On: completions are cached per user (default On)"),                              \
    AP_INIT_TAKE1("PECacheTTL", pe_cmd_cpl_duration, (void *)&pe_cpl_cache_ttl, RSRC_CONF,         \
                  "Lifetime of a cached completion (default 1h)"),                                 \
    AP_INIT_TAKE1("PESystemPromptRefresh", pe_cmd_cpl_duration, (void *)&pe_cpl_prompt_refresh,    \
                  RSRC_CONF, "How long a process keeps a stored system prompt before reading it again (default 10s)"), \
    AP_INIT_TAKE1("PEPrincipalCacheTTL", pe_cmd_cpl_duration, (void *)&pe_cpl_principal_ttl,      \
                  RSRC_CONF, "Longest a node uses an API key's cached user; 0 = read it every request (default 10s)"), \
    AP_INIT_RAW_ARGS("PECacheServers", pe_cmd_cpl_servers, NULL, RSRC_CONF,                        \
                     "memcached servers host:port ... (default none: shared memory only)"),        \
    AP_INIT_TAKE1("PECacheTimeout", pe_cmd_cpl_duration, (void *)&pe_cpl_cache_timeout, RSRC_CONF, \
                  "Longest a cache operation may take (default 250ms)"),                           \
    AP_INIT_TAKE1("PECacheShmEntries", pe_cmd_cpl_int, (void *)&pe_cpl_shm_entries, RSRC_CONF,     \
                  "Entries of the shared-memory cache (default 1024; 0 disables it)"),              \
    AP_INIT_TAKE1("PECacheShmEntrySize", pe_cmd_cpl_size, (void *)&pe_cpl_shm_entry_size, RSRC_CONF, \
                  "Largest completion the shared-memory cache holds (default 32K)"),               \
    AP_INIT_FLAG("PEMessageLog", pe_cmd_cpl_flag, (void *)&pe_cpl_msglog, RSRC_CONF,               \
                 "On: every completion is logged to pe_message_logs (default On)"),                \
    AP_INIT_TAKE1("PEMessageLogBatch", pe_cmd_cpl_int, (void *)&pe_cpl_msglog_batch, RSRC_CONF,    \
                  "Records written per batch (default 100)"),                                      \
    AP_INIT_TAKE1("PEMessageLogInterval", pe_cmd_cpl_duration, (void *)&pe_cpl_msglog_interval,    \
                  RSRC_CONF, "Longest a record waits before it is written (default 1s)"),          \
    AP_INIT_TAKE1("PEMessageLogQueue", pe_cmd_cpl_int, (void *)&pe_cpl_msglog_queue, RSRC_CONF,    \
                  "Records a child holds at most before it drops new ones (default 10000)"),       \
    AP_INIT_TAKE1("PEMessageLogMaxRecord", pe_cmd_cpl_size, (void *)&pe_cpl_msglog_max_record,     \
                  RSRC_CONF, "Largest logged conversation; longer text is cut (default 64K)"),             \
    AP_INIT_FLAG("PEUsageLog", pe_cmd_cpl_flag, (void *)&pe_cpl_usagelog, RSRC_CONF,               \
                 "On: every API-key request is recorded in pe_api_usage (default On)"),            \
    AP_INIT_TAKE1("PEUsageLogQueue", pe_cmd_cpl_int, (void *)&pe_cpl_usagelog_queue, RSRC_CONF,    \
                  "API-usage records a child holds at most before it drops new ones (default 4096)"), \
    AP_INIT_TAKE1("PEUsageLogRetention", pe_cmd_cpl_duration, (void *)&pe_cpl_usagelog_retention,  \
                  RSRC_CONF, "Age after which API-usage records are removed; 0 = kept (default 90d)"),

#endif
