/* pe_version.h: the module's version. */
#ifndef PE_VERSION_H
#define PE_VERSION_H
#define PE_SERVICE_NAME "PromptEnchanter"
#define PE_VERSION "0.1.0"
#endif
