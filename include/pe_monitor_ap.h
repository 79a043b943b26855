/*
 * pe_monitor_ap.h: the monitoring concern's process state and hooks (src/apache/pe_monitor_ap.c):
 * the metrics block (shared memory, made once per httpd parent and kept across graceful
 * restarts), this child's gauge slot, the request counters (log_transaction), requests in flight
 * (a handler hook that runs first and declines), and the mod_status section.
 */
#ifndef PE_MONITOR_AP_H
#define PE_MONITOR_AP_H

#include "httpd.h"
#include "http_config.h"

#include "pe_metrics.h"
#include <jansson.h>

int pe_monitor_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
void pe_monitor_child_init(apr_pool_t *pchild, server_rec *s);
int pe_monitor_handler_first(request_rec *r);
int pe_monitor_log_transaction(request_rec *r);
/** Register the mod_status hook (when mod_status is loaded). */
void pe_monitor_register_hooks(apr_pool_t *p);

/** Count a completion answered by the AI service and the tokens of its usage object (may be NULL). */
void pe_monitor_usage(const char *model, const char *r_type, const json_t *usage);

/** The metrics block (also when PEMetrics is Off: it carries the flush generation and gauges). */
pe_metrics_t *pe_monitor_block(void);
/** This child's gauge slot, or NULL. */
pe_met_proc_t *pe_monitor_slot(void);

#endif
