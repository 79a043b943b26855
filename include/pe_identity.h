/*
 * pe_identity.h: rules for what users may choose as credentials and identifiers (httpd-free).
 *
 * - Password policy (DESIGN.md "Passwords", SPEC 6.2): 8 to 128 Unicode code points of valid UTF-8
 *   without NUL; at least one upper-case letter, one lower-case letter and one digit; not one of the
 *   shipped common passwords (conf/common-passwords.txt, compared case-insensitively); at registration
 *   it may not contain the username or the e-mail local part (RELIABILITY R6 context words), nor the
 *   product name. Letters are classified with Unicode tables (glibc's C.UTF-8 LC_CTYPE), so "Ä" is
 *   upper-case and "ß" lower-case; digits are the ASCII digits 0-9.
 * - E-mail (SPEC 6.1): syntax check within RFC 5321 limits, normalised to lower case.
 * - Username (SPEC 6.1): 3 to 50 code points of Unicode letters and digits, '-' and '_'.
 *
 * Messages are user-facing, start with a lower-case word and name the rule, never the input.
 */
#ifndef PE_IDENTITY_H
#define PE_IDENTITY_H

#include <apr_hash.h>
#include <apr_pools.h>
#include <apr_tables.h>

#define PE_PASSWORD_MIN_CHARS 8
#define PE_PASSWORD_MAX_CHARS 128
#define PE_USERNAME_MIN_CHARS 3
#define PE_USERNAME_MAX_CHARS 50
#define PE_EMAIL_MAX 254
#define PE_EMAIL_LOCAL_MAX 64
/** Largest common-password file read (bytes). */
#define PE_PASSWORD_LIST_MAX_BYTES (16 * 1024 * 1024)

/**
 * Number of code points in s[0..len) if it is valid UTF-8 (shortest form, no surrogates,
 * at most U+10FFFF), else -1. NUL bytes are valid UTF-8 here; callers reject them separately.
 */
long pe_utf8_count(const char *s, apr_size_t len);

/**
 * Case-fold valid UTF-8 to lower case (Unicode simple lower-case mapping).
 * @return the folded string in p (NUL-terminated), or NULL when s is not valid UTF-8
 */
char *pe_utf8_lower(apr_pool_t *p, const char *s, apr_size_t len);

/**
 * Load a common-password list: one password per line, UTF-8; blank lines and lines starting with
 * '#' are skipped; trailing CR and spaces are trimmed.
 * @param list a set (key = lower-cased password, value = non-NULL) in p
 * @return NULL, or a message naming the file and the reason (unreadable, too big, invalid UTF-8
 *         on line n, no entries)
 */
const char *pe_password_list_load(apr_pool_t *p, const char *path, apr_hash_t **list);

/**
 * Every rule a password breaks, in a fixed order (validity, length, classes, context, common list).
 * @param list     from pe_password_list_load; NULL skips the common-password rule
 * @param email    the account's e-mail or NULL; its local part (3+ code points) may not occur in the password
 * @param username the account's username or NULL; when 3+ code points it may not occur in the password
 * @return an array of const char * messages in p, empty when the password is acceptable
 */
apr_array_header_t *pe_password_check_all(apr_pool_t *p, apr_hash_t *list, const char *password, apr_size_t len,
                                          const char *email, const char *username);

/**
 * The first rule the password breaks, as a user-facing message, or NULL when it is acceptable.
 * Messages: "password must be valid UTF-8", "password must not contain NUL characters",
 * "password must be at least 8 characters long", "password must be at most 128 characters long",
 * "password must contain at least one upper-case letter", "... one lower-case letter",
 * "... one digit", "password must not contain your username", "password must not contain your
 * e-mail address", "password must not contain the service name", "password is too common".
 */
const char *pe_password_check(apr_pool_t *p, apr_hash_t *list, const char *password, apr_size_t len,
                              const char *email, const char *username);

/**
 * Check an e-mail address and return its normalised (lower-case) form.
 * Rules: at most 254 bytes; exactly one '@'; local part 1..64 bytes of RFC 5322 atext and '.',
 * not starting or ending with '.', no ".."; domain of two or more dot-separated labels, each 1..63
 * bytes of letters, digits and '-', not starting or ending with '-'; the last label is not all
 * digits. Non-ASCII letters (valid UTF-8) are allowed in both parts. No spaces or control characters.
 * @param out the lower-cased address in p (NULL on failure)
 * @return NULL, or a user-facing message
 */
const char *pe_email_normalize(apr_pool_t *p, const char *email, const char **out);

/**
 * Check a username: 3 to 50 code points of valid UTF-8, each a Unicode letter or digit, '-' or '_'.
 * The name is kept as given (uniqueness is case-sensitive, SPEC 6.1).
 * @return NULL, or a user-facing message
 */
const char *pe_username_check(const char *username);

#endif
