/* pe_identity.c: UTF-8 helpers, password policy and common-password list, e-mail and username rules. */
#include "pe_identity.h"
#include "pe_logno.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <locale.h>
#include <pthread.h>
#include <string.h>
#include <wctype.h>

/* ---- Unicode character classes ---------------------------------------------------------------- */

static pthread_once_t identity_once = PTHREAD_ONCE_INIT;
static locale_t identity_loc = (locale_t)0;

/* Open glibc's C.UTF-8 character tables once per process; without them only ASCII is classified. */
static void identity_locale_init(void)
{
    identity_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (identity_loc == (locale_t)0)
        pe_clog(PE_LOG_WARNING, 0,
                PE_LOGNO(20010) "C.UTF-8 locale unavailable: password and username rules classify ASCII letters only");
}

/* The C.UTF-8 locale, or 0 when it cannot be had. */
static locale_t identity_locale(void)
{
    pthread_once(&identity_once, identity_locale_init);
    return identity_loc;
}

/* Upper-case letter. */
static int cp_upper(unsigned cp)
{
    locale_t l = identity_locale();
    if (cp < 0x80 || !l)
        return cp >= 'A' && cp <= 'Z';
    return iswupper_l((wint_t)cp, l) != 0;
}

/* Lower-case letter. */
static int cp_lower(unsigned cp)
{
    locale_t l = identity_locale();
    if (cp < 0x80 || !l)
        return cp >= 'a' && cp <= 'z';
    return iswlower_l((wint_t)cp, l) != 0;
}

/* Letter or digit of any script. */
static int cp_alnum(unsigned cp)
{
    locale_t l = identity_locale();
    if (cp < 0x80 || !l)
        return (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9');
    return iswalnum_l((wint_t)cp, l) != 0;
}

/* Simple lower-case mapping. */
static unsigned cp_fold(unsigned cp)
{
    locale_t l = identity_locale();
    if (cp < 0x80 || !l)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    return (unsigned)towlower_l((wint_t)cp, l);
}

/* ---- UTF-8 ------------------------------------------------------------------------------------ */

/* Decode one code point at s[*i] (strict: shortest form, no surrogates, <= U+10FFFF); -1 if invalid. */
static int utf8_next(const unsigned char *s, apr_size_t len, apr_size_t *i, unsigned *cp)
{
    unsigned c = s[*i], v, min;
    apr_size_t n, k;

    if (c < 0x80) {
        *cp = c;
        (*i)++;
        return 0;
    }
    if (c >= 0xC2 && c <= 0xDF)
        n = 1, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 2, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 3, v = c & 0x07, min = 0x10000;
    else
        return -1;
    if (len - *i <= n)
        return -1;
    for (k = 1; k <= n; k++) {
        unsigned b = s[*i + k];
        if ((b & 0xC0) != 0x80)
            return -1;
        v = (v << 6) | (b & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return -1;
    *cp = v;
    *i += n + 1;
    return 0;
}

/* Append the UTF-8 form of cp at o; returns bytes written. */
static apr_size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Count code points of valid UTF-8. */
long pe_utf8_count(const char *s, apr_size_t len)
{
    apr_size_t i = 0;
    long n = 0;
    unsigned cp;

    if (!s)
        return len ? -1 : 0;
    while (i < len) {
        if (utf8_next((const unsigned char *)s, len, &i, &cp) != 0)
            return -1;
        n++;
    }
    return n;
}

/* Lower-case valid UTF-8 into p. */
char *pe_utf8_lower(apr_pool_t *p, const char *s, apr_size_t len)
{
    apr_size_t i = 0, o = 0;
    unsigned cp;
    char *out;

    if (!s || len > (APR_SIZE_MAX - 1) / 2)
        return NULL;
    /* NB: a mapping can lengthen a character by at most one byte (2 -> 3 bytes), so 2*len is enough */
    out = apr_palloc(p, 2 * len + 1);
    while (i < len) {
        if (utf8_next((const unsigned char *)s, len, &i, &cp) != 0)
            return NULL;
        o += utf8_put(out + o, cp_fold(cp));
    }
    out[o] = '\0';
    return out;
}

/* ---- Password policy -------------------------------------------------------------------------- */

/* The product name may not be part of a password (RELIABILITY R6 context words). */
#define IDENTITY_SERVICE_NAME "promptenchanter"

/* Load the common-password set. */
const char *pe_password_list_load(apr_pool_t *p, const char *path, apr_hash_t **list)
{
    apr_finfo_t fi;
    apr_file_t *f;
    apr_size_t n, got = 0, line = 0;
    char *buf, *s, *end;
    apr_hash_t *h;
    apr_status_t rv;

    *list = NULL;
    if ((rv = apr_stat(&fi, path, APR_FINFO_SIZE | APR_FINFO_TYPE, p)) != APR_SUCCESS || fi.filetype != APR_REG)
        return apr_psprintf(p, "common-password list '%s' is not a readable file", path);
    if (fi.size > PE_PASSWORD_LIST_MAX_BYTES)
        return apr_psprintf(p, "common-password list '%s' is larger than %d bytes", path, PE_PASSWORD_LIST_MAX_BYTES);
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n + 1);
    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS)
        return apr_psprintf(p, "common-password list '%s' cannot be opened", path);
    rv = n ? apr_file_read_full(f, buf, n, &got) : APR_SUCCESS;
    apr_file_close(f);
    if (rv != APR_SUCCESS || got != n)
        return apr_psprintf(p, "common-password list '%s' cannot be read", path);
    buf[n] = '\0';
    h = apr_hash_make(p);
    s = buf;
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    for (end = buf + n; s < end; s++) {
        char *nl = memchr(s, '\n', (apr_size_t)(end - s)), *e = nl ? nl : end, *folded;
        line++;
        while (e > s && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s && *s != '#') {
            if (memchr(s, '\0', (apr_size_t)(e - s)) || !(folded = pe_utf8_lower(p, s, (apr_size_t)(e - s))))
                return apr_psprintf(p, "common-password list '%s': line %" APR_SIZE_T_FMT " is not valid UTF-8 text",
                                    path, line);
            apr_hash_set(h, folded, APR_HASH_KEY_STRING, "");
        }
        if (!nl)
            break;
        s = nl;
    }
    if (apr_hash_count(h) == 0)
        return apr_psprintf(p, "common-password list '%s' has no entries", path);
    *list = h;
    return NULL;
}

/* Lower-cased local part of an e-mail (before the first '@'), or NULL. */
static const char *identity_email_local(apr_pool_t *p, const char *email)
{
    const char *at;

    if (!email || !(at = strchr(email, '@')))
        return NULL;
    return pe_utf8_lower(p, email, (apr_size_t)(at - email));
}

/* Run every rule, collecting messages in order. */
apr_array_header_t *pe_password_check_all(apr_pool_t *p, apr_hash_t *list, const char *password, apr_size_t len,
                                          const char *email, const char *username)
{
    apr_array_header_t *errs = apr_array_make(p, 4, sizeof(const char *));
    int up = 0, lo = 0, dig = 0;
    const char *folded, *ctx;
    apr_size_t i = 0;
    long chars = 0;
    unsigned cp;

    if ((len && !password) || pe_utf8_count(password, len) < 0) {
        APR_ARRAY_PUSH(errs, const char *) = "password must be valid UTF-8";
        return errs;
    }
    if (len && memchr(password, '\0', len)) {
        APR_ARRAY_PUSH(errs, const char *) = "password must not contain NUL characters";
        return errs;
    }
    while (i < len) {
        utf8_next((const unsigned char *)password, len, &i, &cp);
        chars++;
        up |= cp_upper(cp);
        lo |= cp_lower(cp);
        dig |= cp >= '0' && cp <= '9';
    }
    if (chars < PE_PASSWORD_MIN_CHARS)
        APR_ARRAY_PUSH(errs, const char *) = "password must be at least 8 characters long";
    if (chars > PE_PASSWORD_MAX_CHARS)
        APR_ARRAY_PUSH(errs, const char *) = "password must be at most 128 characters long";
    if (!up)
        APR_ARRAY_PUSH(errs, const char *) = "password must contain at least one upper-case letter";
    if (!lo)
        APR_ARRAY_PUSH(errs, const char *) = "password must contain at least one lower-case letter";
    if (!dig)
        APR_ARRAY_PUSH(errs, const char *) = "password must contain at least one digit";
    folded = pe_utf8_lower(p, password ? password : "", len);
    if (username && pe_utf8_count(username, strlen(username)) >= 3 &&
        (ctx = pe_utf8_lower(p, username, strlen(username))) && strstr(folded, ctx))
        APR_ARRAY_PUSH(errs, const char *) = "password must not contain your username";
    if ((ctx = identity_email_local(p, email)) && pe_utf8_count(ctx, strlen(ctx)) >= 3 && strstr(folded, ctx))
        APR_ARRAY_PUSH(errs, const char *) = "password must not contain your e-mail address";
    if (strstr(folded, IDENTITY_SERVICE_NAME))
        APR_ARRAY_PUSH(errs, const char *) = "password must not contain the service name";
    if (list && apr_hash_get(list, folded, APR_HASH_KEY_STRING))
        APR_ARRAY_PUSH(errs, const char *) = "password is too common";
    return errs;
}

/* First broken rule or NULL. */
const char *pe_password_check(apr_pool_t *p, apr_hash_t *list, const char *password, apr_size_t len,
                              const char *email, const char *username)
{
    apr_array_header_t *errs = pe_password_check_all(p, list, password, len, email, username);

    return errs->nelts ? APR_ARRAY_IDX(errs, 0, const char *) : NULL;
}

/* ---- E-mail and username ---------------------------------------------------------------------- */

/* ASCII characters RFC 5322 allows in an unquoted local part besides letters and digits. */
static const char identity_atext[] = "!#$%&'*+/=?^_`{|}~-";

/* Check a domain (already free of control characters and valid UTF-8). */
static const char *identity_domain_check(const char *d, apr_size_t len)
{
    apr_size_t i = 0, label_start = 0, last_start = 0;
    int labels = 0, all_digits = 1;
    unsigned cp;

    if (len == 0)
        return "e-mail address must have a domain after '@'";
    if (!memchr(d, '.', len))
        return "e-mail domain must contain a '.'";
    while (i <= len) {
        if (i == len || d[i] == '.') {
            apr_size_t ll = i - label_start;
            if (ll == 0)
                return "e-mail domain must not have empty labels";
            if (ll > 63)
                return "e-mail domain labels must be at most 63 characters";
            if (d[label_start] == '-' || d[i - 1] == '-')
                return "e-mail domain labels must not start or end with '-'";
            labels++;
            last_start = label_start;
            label_start = i + 1;
            i++;
            continue;
        }
        if (utf8_next((const unsigned char *)d, len, &i, &cp) != 0)
            return "e-mail address must be valid UTF-8";
        if (cp != '-' && !cp_alnum(cp))
            return "e-mail domain may contain only letters, digits, '-' and '.'";
    }
    for (i = last_start; i < len; i++)
        if (d[i] < '0' || d[i] > '9')
            all_digits = 0;
    if (labels < 2 || all_digits)
        return "e-mail domain must end with a name, not a number";
    return NULL;
}

/* Syntax check and lower-case normalisation of an e-mail address. */
const char *pe_email_normalize(apr_pool_t *p, const char *email, const char **out)
{
    apr_size_t len, i, local_len;
    const char *at, *m;

    *out = NULL;
    if (!email || !*email)
        return "e-mail address is required";
    len = strlen(email);
    if (len > PE_EMAIL_MAX)
        return "e-mail address must be at most 254 characters";
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c <= 0x20 || c == 0x7F)
            return "e-mail address must not contain spaces or control characters";
    }
    if (pe_utf8_count(email, len) < 0)
        return "e-mail address must be valid UTF-8";
    if (!(at = strchr(email, '@')) || strchr(at + 1, '@'))
        return "e-mail address must contain exactly one '@'";
    local_len = (apr_size_t)(at - email);
    if (local_len == 0 || local_len > PE_EMAIL_LOCAL_MAX)
        return "the part of the e-mail address before '@' must be 1 to 64 characters";
    if (email[0] == '.' || at[-1] == '.')
        return "the part of the e-mail address before '@' must not start or end with '.'";
    for (i = 0; i < local_len; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c == '.' && email[i + 1] == '.')
            return "the part of the e-mail address before '@' must not contain '..'";
        if (c < 0x80 && c != '.' && !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) &&
            !strchr(identity_atext, c))
            return "the part of the e-mail address before '@' contains a character that is not allowed";
    }
    if ((m = identity_domain_check(at + 1, len - local_len - 1)))
        return m;
    *out = pe_utf8_lower(p, email, len);
    return NULL;
}

/* Username: letters and digits of any script, '-' and '_', 3 to 50 code points. */
const char *pe_username_check(const char *username)
{
    apr_size_t i = 0, len;
    long n;
    unsigned cp;

    if (!username || !*username)
        return "username is required";
    len = strlen(username);
    if ((n = pe_utf8_count(username, len)) < 0)
        return "username must be valid UTF-8";
    if (n < PE_USERNAME_MIN_CHARS || n > PE_USERNAME_MAX_CHARS)
        return "username must be 3 to 50 characters long";
    while (i < len) {
        utf8_next((const unsigned char *)username, len, &i, &cp);
        if (cp != '-' && cp != '_' && !cp_alnum(cp))
            return "username may contain only letters, digits, '-' and '_'";
    }
    return NULL;
}
