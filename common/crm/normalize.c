/*
 * The normalisers of relay/crm.h: e-mail, phone and postal address, each
 * to the exact text that is hashed (the field docs of
 * schemas/crm.records.avsc), plus the name-based UUID of event ids. The
 * same input must give the same text on every run and every machine, so
 * nothing here depends on the locale: lowercasing is a fixed table.
 */
#include "relay/crm.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* The lowercase of code point c, for the blocks named in crm.h. */
static uint32_t lower_cp(uint32_t c)
{
        if (c < 0x80)
                return c >= 'A' && c <= 'Z' ? c + 32 : c;
        if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
                return c + 32;
        if (c >= 0x100 && c <= 0x137 && c != 0x130)
                return c | 1;
        if (c >= 0x139 && c <= 0x148)
                return c & 1 ? c + 1 : c;
        if (c >= 0x14A && c <= 0x177)
                return c | 1;
        if (c == 0x178)
                return 0xFF;
        if (c >= 0x179 && c <= 0x17E)
                return c & 1 ? c + 1 : c;
        if (c >= 0x391 && c <= 0x3AB && c != 0x3A2)
                return c + 32;
        if (c >= 0x410 && c <= 0x42F)
                return c + 32;
        if (c >= 0x400 && c <= 0x40F)
                return c + 80;
        return c;
}

static void put_cp(relay_buf_t *out, uint32_t c)
{
        char b[4];
        size_t n;
        if (c < 0x80) {
                b[0] = (char)c;
                n = 1;
        } else if (c < 0x800) {
                b[0] = (char)(0xC0 | (c >> 6));
                b[1] = (char)(0x80 | (c & 0x3F));
                n = 2;
        } else {
                b[0] = (char)(0xE0 | (c >> 12));
                b[1] = (char)(0x80 | ((c >> 6) & 0x3F));
                b[2] = (char)(0x80 | (c & 0x3F));
                n = 3;
        }
        relay_buf_append(out, b, n);
}

void relay_crm_lower(relay_buf_t *out, const char *p, size_t n)
{
        const unsigned char *s = (const unsigned char *)p;
        for (size_t i = 0; i < n;) {
                if (s[i] < 0x80) {
                        char ch = (char)lower_cp(s[i]);
                        relay_buf_append(out, &ch, 1);
                        i++;
                        continue;
                }
                size_t l = relay_utf8_len(s + i, n - i);
                if (l == 2) { /* every code point lower_cp changes */
                        uint32_t c = ((uint32_t)(s[i] & 0x1F) << 6) |
                                     (s[i + 1] & 0x3F);
                        put_cp(out, lower_cp(c));
                } else {
                        l = l ? l : 1; /* not UTF-8: copied as it is */
                        relay_buf_append(out, p + i, l);
                }
                i += l;
        }
}

/* Length of the white space at s (n > 0 bytes): a space, a tab, CR, LF
 * or a no-break space (U+00A0), else 0. */
static size_t space_len(const char *s, size_t n)
{
        if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
                return 1;
        if (n >= 2 && (unsigned char)s[0] == 0xC2 &&
            (unsigned char)s[1] == 0xA0)
                return 2;
        return 0;
}

/* Trim white space off both ends of p[0..*n): the new start. */
static const char *trim(const char *p, size_t *n)
{
        size_t l;
        while (*n && (l = space_len(p, *n))) {
                p += l;
                *n -= l;
        }
        for (;;) {
                if (*n && space_len(p + *n - 1, 1)) {
                        (*n)--;
                } else if (*n >= 2 && space_len(p + *n - 2, 2) == 2) {
                        *n -= 2;
                } else {
                        break;
                }
        }
        return p;
}

/* p[0..n) trimmed, runs of white space as one space (squeeze) or none,
 * lowercased, appended to out. */
static void canonical(relay_buf_t *out, const char *p, size_t n, int squeeze)
{
        p = trim(p, &n);
        relay_buf_t tmp;
        relay_buf_init(&tmp);
        for (size_t i = 0; i < n;) {
                size_t l = space_len(p + i, n - i);
                if (!l) {
                        relay_buf_append(&tmp, p + i, 1);
                        i++;
                        continue;
                }
                while (i < n && (l = space_len(p + i, n - i)))
                        i += l;
                if (squeeze)
                        relay_buf_append(&tmp, " ", 1);
        }
        relay_crm_lower(out, tmp.data, tmp.len);
        relay_buf_free(&tmp);
}

static int label_ok(const char *p, size_t n)
{
        if (n == 0 || n > 63 || p[0] == '-' || p[n - 1] == '-')
                return 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)p[i];
                if (!(ch >= 0x80 || isalnum(ch) || ch == '-'))
                        return 0;
        }
        return 1;
}

enum relay_crm_norm relay_crm_email(const char *p, size_t n, relay_buf_t *out,
                                    const char **why)
{
        p = trim(p, &n);
        if (!n)
                return RELAY_CRM_ABSENT;
        size_t start = out->len;
        relay_crm_lower(out, p, n);
        const char *e = out->data + start;
        size_t len = out->len - start;
        const char *at = memchr(e, '@', len);
        *why = NULL;
        if (!at || memchr(at + 1, '@', len - (size_t)(at - e) - 1))
                *why = "not one '@'";
        else if (at == e || at - e > 64)
                *why = "the part before '@' is empty or longer than 64";
        else if (len - (size_t)(at - e) - 1 > 253)
                *why = "the domain is longer than 253";
        for (const char *q = e; !*why && q < at; q++)
                if ((unsigned char)*q <= ' ' || strchr("(),:;<>[\\]\"", *q))
                        *why = "a space or one of (),:;<>[\\]\" before '@'";
        if (!*why && (e[0] == '.' || at[-1] == '.'))
                *why = "a dot at either end of the part before '@'";
        if (!*why) {
                const char *d = at + 1, *end = e + len;
                int labels = 0;
                while (!*why) {
                        const char *dot = memchr(d, '.', (size_t)(end - d));
                        const char *le = dot ? dot : end;
                        if (!label_ok(d, (size_t)(le - d)))
                                *why = "a bad domain (empty label, a character "
                                       "other than letters, digits and '-')";
                        labels++;
                        if (!dot)
                                break;
                        d = dot + 1;
                }
                if (!*why && labels < 2)
                        *why = "a domain without a dot";
        }
        if (*why) {
                out->len = start;
                out->data[start] = '\0';
                return RELAY_CRM_INVALID;
        }
        return RELAY_CRM_VALID;
}

/* Calling codes and national trunk prefixes. Countries without one keep
 * the leading 0 as part of the number (Italy, San Marino, the Vatican)
 * or have no trunk prefix (Spain, Portugal, Greece, Denmark, Norway,
 * Luxembourg, ...). */
static const struct country {
        const char *iso, *code, *trunk;
} countries[] = {
    {"AD", "376", ""},  {"AE", "971", "0"}, {"AR", "54", "0"},
    {"AT", "43", "0"},  {"AU", "61", "0"},  {"BE", "32", "0"},
    {"BG", "359", "0"}, {"BR", "55", "0"},  {"CA", "1", "1"},
    {"CH", "41", "0"},  {"CL", "56", ""},   {"CN", "86", "0"},
    {"CY", "357", ""},  {"CZ", "420", ""},  {"DE", "49", "0"},
    {"DK", "45", ""},   {"EE", "372", ""},  {"ES", "34", ""},
    {"FI", "358", "0"}, {"FR", "33", "0"},  {"GB", "44", "0"},
    {"GR", "30", ""},   {"HR", "385", "0"}, {"HU", "36", "06"},
    {"IE", "353", "0"}, {"IL", "972", "0"}, {"IN", "91", "0"},
    {"IS", "354", ""},  {"IT", "39", ""},   {"JP", "81", "0"},
    {"KR", "82", "0"},  {"LI", "423", ""},  {"LT", "370", "8"},
    {"LU", "352", ""},  {"LV", "371", ""},  {"MC", "377", ""},
    {"MT", "356", ""},  {"MX", "52", ""},   {"NL", "31", "0"},
    {"NO", "47", ""},   {"NZ", "64", "0"},  {"PL", "48", ""},
    {"PT", "351", ""},  {"RO", "40", "0"},  {"RS", "381", "0"},
    {"SE", "46", "0"},  {"SG", "65", ""},   {"SI", "386", "0"},
    {"SK", "421", "0"}, {"SM", "378", ""},  {"TR", "90", "0"},
    {"UA", "380", "0"}, {"US", "1", "1"},   {"VA", "39", ""},
    {"ZA", "27", "0"},
};

static const struct country *country_of(const char *iso)
{
        if (!iso || strlen(iso) != 2)
                return NULL;
        char up[3] = {(char)toupper((unsigned char)iso[0]),
                      (char)toupper((unsigned char)iso[1]), 0};
        for (size_t i = 0; i < sizeof(countries) / sizeof(*countries); i++)
                if (!strcmp(countries[i].iso, up))
                        return &countries[i];
        return NULL;
}

const char *relay_crm_calling_code(const char *country)
{
        const struct country *c = country_of(country);
        return c ? c->code : NULL;
}

enum relay_crm_norm relay_crm_phone(const char *p, size_t n,
                                    const char *country, relay_buf_t *out,
                                    const char **why)
{
        p = trim(p, &n);
        if (!n)
                return RELAY_CRM_ABSENT;
        char digits[64];
        size_t nd = 0;
        int plus = 0;
        for (size_t i = 0; i < n;) {
                size_t l = space_len(p + i, n - i);
                char ch = p[i];
                if (l) {
                        i += l;
                } else if (ch == '+' && nd == 0 && !plus) {
                        plus = 1;
                        i++;
                } else if ((plus || (nd >= 2 && !memcmp(digits, "00", 2))) &&
                           n - i >= 3 && !memcmp(p + i, "(0)", 3)) {
                        i += 3; /* "+31 (0)6 ...": the 0 is not dialled */
                } else if (ch == '-' || ch == '.' || ch == '/' || ch == '(' ||
                           ch == ')') {
                        i++;
                } else if (ch >= '0' && ch <= '9') {
                        if (nd == sizeof(digits)) {
                                *why = "too many digits";
                                return RELAY_CRM_INVALID;
                        }
                        digits[nd++] = ch;
                        i++;
                } else {
                        *why = "a character other than digits, '+', spaces "
                               "and -./()";
                        return RELAY_CRM_INVALID;
                }
        }
        const char *d = digits;
        size_t start = out->len;
        relay_buf_append(out, "+", 1);
        if (plus) {
                /* the digits are the country code and the number */
        } else if (nd >= 2 && d[0] == '0' && d[1] == '0') {
                d += 2;
                nd -= 2;
        } else {
                const struct country *c = country_of(country);
                if (!c) {
                        out->len = start;
                        out->data[start] = '\0';
                        *why = "a national number, and no calling code for "
                               "the default country";
                        return RELAY_CRM_INVALID;
                }
                size_t tl = strlen(c->trunk);
                if (tl && nd > tl && !memcmp(d, c->trunk, tl)) {
                        d += tl;
                        nd -= tl;
                }
                relay_buf_puts(out, c->code);
        }
        relay_buf_append(out, d, nd);
        size_t total = out->len - start - 1;
        if (total < 8 || total > 15 || out->data[start + 1] == '0') {
                out->len = start;
                out->data[start] = '\0';
                *why = total < 8 || total > 15
                           ? "not 8 to 15 digits with the country code"
                           : "a country code starting with 0";
                return RELAY_CRM_INVALID;
        }
        return RELAY_CRM_VALID;
}

enum relay_crm_norm relay_crm_address(const relay_crm_address_t *a,
                                      const char *default_country,
                                      relay_buf_t *out, const char **why)
{
        size_t sn = a->street_n, pn = a->postcode_n, cn = a->city_n,
               kn = a->country_n;
        const char *s = trim(a->street ? a->street : "", &sn);
        const char *pc = trim(a->postcode ? a->postcode : "", &pn);
        const char *c = trim(a->city ? a->city : "", &cn);
        const char *k = trim(a->country ? a->country : "", &kn);
        if (!sn && !pn && !cn)
                return RELAY_CRM_ABSENT;
        if (!sn || !pn || !cn) {
                *why = !sn   ? "incomplete: no street"
                       : !pn ? "incomplete: no postcode"
                             : "incomplete: no city";
                return RELAY_CRM_INVALID;
        }
        if (!kn && default_country) {
                k = default_country;
                kn = strlen(k);
        }
        if (kn != 2 || !isalpha((unsigned char)k[0]) ||
            !isalpha((unsigned char)k[1])) {
                *why = "the country is not an ISO 3166-1 alpha-2 code";
                return RELAY_CRM_INVALID;
        }
        canonical(out, s, sn, 1);
        relay_buf_append(out, "|", 1);
        canonical(out, pc, pn, 0);
        relay_buf_append(out, "|", 1);
        canonical(out, c, cn, 1);
        relay_buf_append(out, "|", 1);
        relay_crm_lower(out, k, 2);
        return RELAY_CRM_VALID;
}

