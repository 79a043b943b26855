/*
 * pe_store_dbd.h: the store backend on apr_dbd (mod_dbd's connections): SQLite and PostgreSQL.
 * The only header that includes apr_dbd.h; for the glue that makes dbd handles and for tests.
 */
#ifndef PE_STORE_DBD_H
#define PE_STORE_DBD_H

#include "pe_store_backend.h"

#include <apr_dbd.h>
#include <apr_hash.h>

/**
 * A dbd store handle on an open connection (driver NULL: none yet; every op answers EIO until
 * pe_store_dbd_attach()).
 * @param prepared the connection's statement hash (statements are prepared lazily, by label;
 *        mod_dbd's ap_dbd_t.prepared, which lives as long as the connection)
 * @param conn_pool a pool that lives as long as the connection (statements are prepared there)
 */
pe_store_t *pe_store_dbd_make(apr_pool_t *p, const apr_dbd_driver_t *driver, apr_dbd_t *handle, apr_hash_t *prepared,
                              apr_pool_t *conn_pool);

/** Point a dbd handle at another connection (a reconnect hook's new one). */
void pe_store_dbd_attach(pe_store_t *st, const apr_dbd_driver_t *driver, apr_dbd_t *handle, apr_hash_t *prepared,
                         apr_pool_t *conn_pool);

#endif
