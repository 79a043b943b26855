/*
 * pe_config_completion.h: the completion concern's configuration, spliced into pe_config.h.
 * PE_SRV_COMPLETION_MEMBERS / PE_DIR_COMPLETION_MEMBERS follow pe_config.h's X(type, name, unset, default);
 * PE_COMPLETION_CMDS are its command_rec entries (each followed by a comma), whose handler functions
 * this header declares and src/apache/ defines.
 */
#ifndef PE_CONFIG_COMPLETION_H
#define PE_CONFIG_COMPLETION_H

#define PE_SRV_COMPLETION_MEMBERS(X)
#define PE_DIR_COMPLETION_MEMBERS(X)
#define PE_COMPLETION_CMDS

#endif
