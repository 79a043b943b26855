/*
 * pe_store_mongo_ap.h: the MongoDB store's httpd side: PEMongoURI, the per-child client pool
 * (made in child_init), and a client per request given back with r->pool.
 */
#ifndef PE_STORE_MONGO_AP_H
#define PE_STORE_MONGO_AP_H

#include "httpd.h"
#include "http_config.h"
#include "pe_store_ap.h"

/** The mongodb provider (PEStore mongodb). */
extern const pe_store_provider_t pe_store_mongo_provider;

/** "PEMongoURI mongodb://..." (server config only: one client pool per process). */
const char *pe_store_mongo_cmd_uri(cmd_parms *cmd, void *dconf, const char *arg);

#define PE_STORE_MONGO_CMDS                                                                        \
    AP_INIT_TAKE1("PEMongoURI", pe_store_mongo_cmd_uri, NULL, RSRC_CONF,                           \
                  "MongoDB connection string of the mongodb store (PEStore mongodb), e.g. "         \
                  "mongodb://127.0.0.1:27017/promptenchanter?replicaSet=rs0"),

#endif
