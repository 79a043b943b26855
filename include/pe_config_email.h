/*
 * pe_config_email.h: e-mail verification's configuration, spliced into pe_config.h.
 * PE_SRV_EMAIL_MEMBERS follows pe_config.h's X(type, name, unset, default); PE_EMAIL_CMDS are its
 * command_rec entries (each followed by a comma), whose handlers src/apache/pe_email_config.c
 * defines. docs/configuration.md ("E-mail verification") documents every directive.
 */
#ifndef PE_CONFIG_EMAIL_H
#define PE_CONFIG_EMAIL_H

/* Per virtual host. Times in milliseconds. */
#define PE_SRV_EMAIL_MEMBERS(X)                                                                    \
    X(int, email_verification, -1, 0)                                                              \
    X(long long, email_code_lifetime_ms, -1, 86400000LL)                                           \
    X(int, email_send_limit, -1, 3)                                                                \
    X(const char *, smtp_url, NULL, NULL)                                                          \
    X(int, smtp_starttls, -1, 0)                                                                   \
    X(const char *, smtp_user, NULL, NULL)                                                         \
    X(const char *, smtp_password, NULL, NULL)                                                     \
    X(const char *, smtp_ca_file, NULL, NULL)                                                      \
    X(const char *, mail_from, NULL, NULL)                                                         \
    X(long long, smtp_timeout_ms, -1, 10000)                                                       \
    X(int, smtp_max_concurrent, -1, 8)

/* Directive handlers (src/apache/pe_email_config.c). */
const char *pe_email_cmd_flag(cmd_parms *cmd, void *dconf, int on);
const char *pe_email_cmd_num(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_email_cmd_url(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_email_cmd_starttls(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_email_cmd_user(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_email_cmd_password_file(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_email_cmd_ca_file(cmd_parms *cmd, void *dconf, const char *arg);
const char *pe_email_cmd_from(cmd_parms *cmd, void *dconf, const char *arg);

/* Bounds of the numeric directives. */
struct pe_email_range;
extern const struct pe_email_range pe_er_lifetime, pe_er_send_limit, pe_er_timeout, pe_er_max_concurrent;

#define PE_EMAIL_CMDS                                                                                               \
    AP_INIT_FLAG("PEEmailVerification", pe_email_cmd_flag, NULL, RSRC_CONF,                                         \
                 "On: new accounts verify their e-mail address with a code before they may use the API "          \
                 "(default Off: accounts are verified when they register)"),                                        \
    AP_INIT_TAKE1("PEEmailCodeLifetime", pe_email_cmd_num, (void *)&pe_er_lifetime, RSRC_CONF,                      \
                  "How long a verification code works (default 24h)"),                                              \
    AP_INIT_TAKE1("PEEmailSendLimit", pe_email_cmd_num, (void *)&pe_er_send_limit, RSRC_CONF,                       \
                  "Verification mails a user may ask for per day, UTC (default 3)"),                                \
    AP_INIT_TAKE1("PESMTPURL", pe_email_cmd_url, NULL, RSRC_CONF,                                                   \
                  "The mail server: smtp://host:port (STARTTLS) or smtps://host:port (TLS at once)"),               \
    AP_INIT_TAKE1("PESMTPStartTLS", pe_email_cmd_starttls, NULL, RSRC_CONF,                                         \
                  "With smtp://: Required (default) refuses a server without STARTTLS; Optional uses it when "      \
                  "offered"),                                                                                       \
    AP_INIT_TAKE1("PESMTPUser", pe_email_cmd_user, NULL, RSRC_CONF,                                                 \
                  "User name for SMTP AUTH (default: no AUTH)"),                                                    \
    AP_INIT_TAKE1("PESMTPPasswordFile", pe_email_cmd_password_file, NULL, RSRC_CONF,                                \
                  "File holding the SMTP AUTH password (mode 0600), read when the configuration is read"),         \
    AP_INIT_TAKE1("PESMTPCAFile", pe_email_cmd_ca_file, NULL, RSRC_CONF,                                            \
                  "CA certificates (PEM) that the mail server's certificate is checked against (default: "         \
                  "the system's)"),                                                                                 \
    AP_INIT_TAKE1("PEMailFrom", pe_email_cmd_from, NULL, RSRC_CONF,                                                 \
                  "Sender of verification mail: \"Name <address>\" or an address (default "                        \
                  "PromptEnchanter <noreply@ServerName>)"),                                                         \
    AP_INIT_TAKE1("PESMTPTimeout", pe_email_cmd_num, (void *)&pe_er_timeout, RSRC_CONF,                             \
                  "Time limit of one mail, connection included (default 10s, at most 60s)"),                       \
    AP_INIT_TAKE1("PESMTPMaxConcurrent", pe_email_cmd_num, (void *)&pe_er_max_concurrent, RSRC_CONF,                \
                  "Mails being sent at once by the whole server; a send beyond gets 503 MAIL_BUSY (default 8)"),

#endif
