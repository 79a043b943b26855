/* pe_global.c: one configuration generation's process-global state. */
#include "pe_global.h"

static pe_global_t *pe_g;

/* This generation's globals. */
pe_global_t *pe_global(void)
{
    return pe_g;
}

/* NB: called from pre_config, which runs for every generation (start, graceful restart). */
void pe_global_reset(apr_pool_t *pconf)
{
    pe_g = apr_pcalloc(pconf, sizeof(*pe_g));
    pe_g->pconf = pconf;
}
