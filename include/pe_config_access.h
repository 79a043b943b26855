/*
 * pe_config_access.h: the access concern's configuration, spliced into pe_config.h.
 * PE_SRV_ACCESS_MEMBERS / PE_DIR_ACCESS_MEMBERS follow pe_config.h's X(type, name, unset, default);
 * PE_ACCESS_CMDS are its command_rec entries (each followed by a comma), whose handler functions
 * this header declares and src/apache/ defines.
 */
#ifndef PE_CONFIG_ACCESS_H
#define PE_CONFIG_ACCESS_H

#define PE_SRV_ACCESS_MEMBERS(X)
#define PE_DIR_ACCESS_MEMBERS(X)
#define PE_ACCESS_CMDS

#endif
