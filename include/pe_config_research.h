/*
 * pe_config_research.h: the research concern's configuration, spliced into pe_config.h.
 * PE_SRV_RESEARCH_MEMBERS / PE_DIR_RESEARCH_MEMBERS follow pe_config.h's X(type, name, unset, default);
 * PE_RESEARCH_CMDS are its command_rec entries (each followed by a comma), whose handler functions
 * this header declares and src/apache/ defines.
 */
#ifndef PE_CONFIG_RESEARCH_H
#define PE_CONFIG_RESEARCH_H

#define PE_SRV_RESEARCH_MEMBERS(X)
#define PE_DIR_RESEARCH_MEMBERS(X)
#define PE_RESEARCH_CMDS

#endif
