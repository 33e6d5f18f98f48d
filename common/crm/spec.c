/*
 * The column spec of relay/crm.h: which CSV column is which crm.records
 * field, loaded from a libconfig file (every mistake "file:line: ..."),
 * bound to a file's header, and a row turned into the record's content.
 *
 *   delimiter = ";";                 # one character, default ","
 *   columns = { customer_id = "Klantnummer"; email = "E-mail";
 *               phone = "Mobiel"; street = "Adres"; postcode = "Postcode";
 *               city = "Plaats"; country = "Land";
 *               customer_since = "Klant sinds";   # YYYY-MM-DD
 *               lifetime_value = "CLV";           # 1234.50: major units
 *               currency = "Valuta"; };
 *   consent = { email_marketing = "Nieuwsbrief"; sms_marketing = "SMS"; };
 *   attributes = ( { column = "Interesses"; type = "list"; separator = ",";
 *                    name = "interests"; },
 *                  { column = "Voornaam"; type = "drop"; } );
 *   other_columns = "string";        # or "drop"
 *
 * Column names are compared normalised: trimmed, lowercase, runs of white
 * space as one '_' (so "E-mail " is "e-mail" and "Klant sinds" is
 * "klant_sinds"); attributes are named so unless they have a name.
 */
#include "relay/crm.h"
#include "relay/sign.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum field {
        F_CUSTOMER_ID,
        F_EMAIL,
        F_PHONE,
        F_STREET,
        F_POSTCODE,
        F_CITY,
        F_COUNTRY,
        F_SINCE,
        F_LTV,
        F_CURRENCY,
        F_N
};

static const char *const field_names[F_N] = {
    "customer_id", "email",          "phone",          "street",
    "postcode",    "city",           "country",        "customer_since",
    "lifetime_value", "currency"};

enum atype { A_STRING, A_BOOLEAN, A_LONG, A_DOUBLE, A_LIST, A_DROP };

static const char *const atype_names[] = {"string", "boolean", "long",
                                          "double", "list",    "drop"};

struct attr_spec {
        char *column; /* normalised */
        char *name;   /* the attribute's name; NULL: the column's */
        enum atype type;
        char sep;
};

struct consent_spec {
        char *purpose;
        char *column; /* normalised */
};

struct relay_crm_spec {
        int is_default;
        char delim;
        char *field_col[F_N]; /* normalised column names, NULL: unmapped */
        struct consent_spec *consent;
        size_t nconsent;
        struct attr_spec *attrs;
        size_t nattrs;
        enum atype others; /* A_STRING or A_DROP */
};

/* The normalised form of a column name: trimmed, lowercased, runs of
 * white space as one '_'. */
static char *norm_name(const char *p, size_t n)
{
        relay_buf_t tmp, out;
        relay_buf_init(&tmp);
        relay_buf_init(&out);
        while (n && isspace((unsigned char)*p))
                p++, n--;
        while (n && isspace((unsigned char)p[n - 1]))
                n--;
        for (size_t i = 0; i < n; i++) {
                if (isspace((unsigned char)p[i])) {
                        while (i + 1 < n && isspace((unsigned char)p[i + 1]))
                                i++;
                        relay_buf_append(&tmp, "_", 1);
                } else {
                        relay_buf_append(&tmp, p + i, 1);
                }
        }
        relay_crm_lower(&out, tmp.data ? tmp.data : "", tmp.len);
        relay_buf_free(&tmp);
        if (!out.data)
                return relay_strdup("");
        return out.data;
}

void relay_crm_spec_destroy(relay_crm_spec_t *s)
{
        if (!s)
                return;
        for (int f = 0; f < F_N; f++)
                free(s->field_col[f]);
        for (size_t i = 0; i < s->nconsent; i++) {
                free(s->consent[i].purpose);
                free(s->consent[i].column);
        }
        for (size_t i = 0; i < s->nattrs; i++) {
                free(s->attrs[i].column);
                free(s->attrs[i].name);
        }
        free(s->consent);
        free(s->attrs);
        free(s);
}

char relay_crm_spec_delimiter(const relay_crm_spec_t *s)
{
        return s->delim;
}

int relay_crm_spec_has_customer_id(const relay_crm_spec_t *s)
{
        return s->is_default || s->field_col[F_CUSTOMER_ID] != NULL;
}

static int fail_at(const char *file, const config_setting_t *at, char *errstr,
                   size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail_at(const char *file, const config_setting_t *at, char *errstr,
                   size_t errstr_size, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        relay_seterr(errstr, errstr_size, "%s:%d: %s", file,
                     at ? config_setting_source_line(at) : 0, msg);
        return -1;
}

/* A string setting's text, or NULL after the error. */
static const char *string_of(const char *file, const config_setting_t *s,
                             char *errstr, size_t errstr_size)
{
        const char *v = config_setting_get_string(s);
        if (!v || !*v)
                fail_at(file, s, errstr, errstr_size,
                        "%s: expected a non-empty string",
                        config_setting_name(s) ? config_setting_name(s)
                                               : "value");
        return v && *v ? v : NULL;
}

static int load_columns(relay_crm_spec_t *sp, const char *file,
                        const config_setting_t *g, char *errstr,
                        size_t errstr_size)
{
        for (int i = 0; i < config_setting_length(g); i++) {
                const config_setting_t *e = config_setting_get_elem(g, i);
                const char *name = config_setting_name(e);
                int f = 0;
                while (f < F_N && strcmp(field_names[f], name))
                        f++;
                if (f == F_N)
                        return fail_at(file, e, errstr, errstr_size,
                                       "columns.%s: not a field (customer_id, "
                                       "email, phone, street, postcode, city, "
                                       "country, customer_since, "
                                       "lifetime_value, currency)",
                                       name);
                const char *v = string_of(file, e, errstr, errstr_size);
                if (!v)
                        return -1;
                sp->field_col[f] = norm_name(v, strlen(v));
        }
        return 0;
}

static int load_consent(relay_crm_spec_t *sp, const char *file,
                        const config_setting_t *g, char *errstr,
                        size_t errstr_size)
{
        int n = config_setting_length(g);
        sp->consent = relay_calloc((size_t)n + 1, sizeof(*sp->consent));
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(g, i);
                const char *v = string_of(file, e, errstr, errstr_size);
                if (!v)
                        return -1;
                sp->consent[i].purpose = relay_strdup(config_setting_name(e));
                sp->consent[i].column = norm_name(v, strlen(v));
                sp->nconsent++;
        }
        return 0;
}

static int load_attrs(relay_crm_spec_t *sp, const char *file,
                      const config_setting_t *l, char *errstr,
                      size_t errstr_size)
{
        if (!config_setting_is_list(l))
                return fail_at(file, l, errstr, errstr_size,
                               "attributes: expected a list ( {...}, ... )");
        int n = config_setting_length(l);
        sp->attrs = relay_calloc((size_t)n + 1, sizeof(*sp->attrs));
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(l, i);
                struct attr_spec *a = &sp->attrs[sp->nattrs++];
                a->type = A_STRING;
                if (!config_setting_is_group(e))
                        return fail_at(file, e, errstr, errstr_size,
                                       "attributes: each entry is a group "
                                       "{ column = ...; type = ...; }");
                for (int k = 0; k < config_setting_length(e); k++) {
                        const config_setting_t *m =
                            config_setting_get_elem(e, k);
                        const char *key = config_setting_name(m);
                        const char *v = string_of(file, m, errstr, errstr_size);
                        if (!v)
                                return -1;
                        if (!strcmp(key, "column")) {
                                a->column = norm_name(v, strlen(v));
                        } else if (!strcmp(key, "name")) {
                                a->name = relay_strdup(v);
                        } else if (!strcmp(key, "separator")) {
                                if (strlen(v) != 1)
                                        return fail_at(
                                            file, m, errstr, errstr_size,
                                            "separator: one character");
                                a->sep = v[0];
                        } else if (!strcmp(key, "type")) {
                                size_t t = 0;
                                while (t <= A_DROP && strcmp(atype_names[t], v))
                                        t++;
                                if (t > A_DROP)
                                        return fail_at(
                                            file, m, errstr, errstr_size,
                                            "type '%s': expected string, "
                                            "boolean, long, double, list or "
                                            "drop",
                                            v);
                                a->type = (enum atype)t;
                        } else {
                                return fail_at(file, m, errstr, errstr_size,
                                               "attributes: unknown key '%s' "
                                               "(column, name, type, "
                                               "separator)",
                                               key);
                        }
                }
                if (!a->column)
                        return fail_at(file, e, errstr, errstr_size,
                                       "attributes: an entry without column");
                if (a->type == A_LIST && !a->sep)
                        return fail_at(file, e, errstr, errstr_size,
                                       "attributes: a list needs its "
                                       "separator");
        }
        return 0;
}

relay_crm_spec_t *relay_crm_spec_load(const char *path, char *errstr,
                                      size_t errstr_size)
{
        relay_crm_spec_t *sp = relay_calloc(1, sizeof(*sp));
        sp->delim = ',';
        sp->others = A_STRING;
        if (!path) {
                sp->is_default = 1;
                for (int f = 0; f < F_N; f++)
                        sp->field_col[f] = relay_strdup(field_names[f]);
                return sp;
        }
        config_t cfg;
        config_init(&cfg);
        if (!config_read_file(&cfg, path)) {
                if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
                        relay_seterr(errstr, errstr_size, "%s: cannot read it",
                                     path);
                else
                        relay_seterr(errstr, errstr_size, "%s:%d: %s", path,
                                     config_error_line(&cfg),
                                     config_error_text(&cfg));
                goto fail;
        }
        const config_setting_t *root = config_root_setting(&cfg);
        for (int i = 0; i < config_setting_length(root); i++) {
                const config_setting_t *s = config_setting_get_elem(root, i);
                const char *key = config_setting_name(s);
                int rc = 0;
                if (!strcmp(key, "delimiter")) {
                        const char *v = config_setting_get_string(s);
                        if (!v || strlen(v) != 1 || *v == '"' || *v == '\n' ||
                            *v == '\r')
                                rc = fail_at(path, s, errstr, errstr_size,
                                             "delimiter: one character such "
                                             "as \",\", \";\" or \"\\t\"");
                        else
                                sp->delim = *v;
                } else if (!strcmp(key, "columns") &&
                           config_setting_is_group(s)) {
                        rc = load_columns(sp, path, s, errstr, errstr_size);
                } else if (!strcmp(key, "consent") &&
                           config_setting_is_group(s)) {
                        rc = load_consent(sp, path, s, errstr, errstr_size);
                } else if (!strcmp(key, "attributes")) {
                        rc = load_attrs(sp, path, s, errstr, errstr_size);
                } else if (!strcmp(key, "other_columns")) {
                        const char *v = config_setting_get_string(s);
                        if (v && !strcmp(v, "string"))
                                sp->others = A_STRING;
                        else if (v && !strcmp(v, "drop"))
                                sp->others = A_DROP;
                        else
                                rc = fail_at(path, s, errstr, errstr_size,
                                             "other_columns: \"string\" or "
                                             "\"drop\"");
                } else {
                        rc = fail_at(path, s, errstr, errstr_size,
                                     "unknown key '%s' (delimiter, columns "
                                     "{}, consent {}, attributes (), "
                                     "other_columns)",
                                     key);
                }
                if (rc)
                        goto fail;
        }
        config_destroy(&cfg);
        return sp;
fail:
        config_destroy(&cfg);
        relay_crm_spec_destroy(sp);
        return NULL;
}

/* --- bound to a header ----------------------------------------------- */

struct col_attr {
        size_t col;
        const char *name; /* borrowed from the spec or from names[] */
        enum atype type;
        char sep;
};

struct col_consent {
        size_t col;
        const char *purpose;
};

struct relay_crm_cols {
        const relay_crm_spec_t *spec;
        size_t ncols;
        char **names;  /* normalised, one per column */
        char **header; /* as in the file */
        long field[F_N]; /* column of each field, -1 */
        struct col_consent *consent;
        size_t nconsent;
        struct col_attr *attrs;
        size_t nattrs;
};

void relay_crm_cols_destroy(relay_crm_cols_t *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->ncols; i++) {
                free(c->names[i]);
                free(c->header[i]);
        }
        free(c->names);
        free(c->header);
        free(c->consent);
        free(c->attrs);
        free(c);
}

size_t relay_crm_cols_count(const relay_crm_cols_t *c)
{
        return c->ncols;
}

static long find_col(const relay_crm_cols_t *c, const char *name)
{
        for (size_t i = 0; i < c->ncols; i++)
                if (!strcmp(c->names[i], name))
                        return (long)i;
        return -1;
}

relay_crm_cols_t *relay_crm_cols_new(const relay_crm_spec_t *sp,
                                     const relay_csv_record_t *h, char *errstr,
                                     size_t errstr_size)
{
        relay_crm_cols_t *c = relay_calloc(1, sizeof(*c));
        c->spec = sp;
        c->ncols = h->nfields;
        c->names = relay_calloc(h->nfields, sizeof(*c->names));
        c->header = relay_calloc(h->nfields, sizeof(*c->header));
        c->consent = relay_calloc(h->nfields, sizeof(*c->consent));
        c->attrs = relay_calloc(h->nfields, sizeof(*c->attrs));
        char *used = relay_calloc(h->nfields + 1, 1);
        if (h->err) {
                relay_seterr(errstr, errstr_size, "column %zu: %s",
                             h->err_field, h->err);
                goto fail;
        }
        for (size_t i = 0; i < h->nfields; i++) {
                c->header[i] = relay_strndup(h->fields[i].p, h->fields[i].n);
                c->names[i] = norm_name(h->fields[i].p, h->fields[i].n);
                if (!*c->names[i]) {
                        relay_seterr(errstr, errstr_size,
                                     "column %zu has no name", i + 1);
                        goto fail;
                }
                long prev = find_col(c, c->names[i]);
                if (prev >= 0 && (size_t)prev < i) {
                        relay_seterr(errstr, errstr_size,
                                     "columns %ld and %zu are both '%s'",
                                     prev + 1, i + 1, c->header[i]);
                        goto fail;
                }
        }
        for (int f = 0; f < F_N; f++) {
                c->field[f] = sp->field_col[f] ? find_col(c, sp->field_col[f])
                                               : -1;
                if (c->field[f] < 0 && sp->field_col[f] && !sp->is_default) {
                        relay_seterr(errstr, errstr_size,
                                     "no column '%s' (columns.%s of the spec)",
                                     sp->field_col[f], field_names[f]);
                        goto fail;
                }
                if (c->field[f] >= 0)
                        used[c->field[f]] = 1;
        }
        for (size_t i = 0; i < sp->nconsent; i++) {
                long k = find_col(c, sp->consent[i].column);
                if (k < 0) {
                        relay_seterr(errstr, errstr_size,
                                     "no column '%s' (consent.%s of the spec)",
                                     sp->consent[i].column,
                                     sp->consent[i].purpose);
                        goto fail;
                }
                used[k] = 1;
                c->consent[c->nconsent++] =
                    (struct col_consent){(size_t)k, sp->consent[i].purpose};
        }
        if (sp->is_default)
                for (size_t i = 0; i < c->ncols; i++)
                        if (!used[i] && !strncmp(c->names[i], "consent_", 8) &&
                            c->names[i][8]) {
                                used[i] = 1;
                                c->consent[c->nconsent++] =
                                    (struct col_consent){i, c->names[i] + 8};
                        }
        for (size_t i = 0; i < sp->nattrs; i++) {
                const struct attr_spec *a = &sp->attrs[i];
                long k = find_col(c, a->column);
                if (k < 0 || used[k]) {
                        relay_seterr(errstr, errstr_size,
                                     k < 0 ? "no column '%s' (attributes of "
                                             "the spec)"
                                           : "column '%s' is in the spec "
                                             "twice",
                                     a->column);
                        goto fail;
                }
                used[k] = 1;
                if (a->type != A_DROP)
                        c->attrs[c->nattrs++] = (struct col_attr){
                            (size_t)k, a->name ? a->name : c->names[k],
                            a->type, a->sep};
        }
        if (sp->others == A_STRING)
                for (size_t i = 0; i < c->ncols; i++)
                        if (!used[i])
                                c->attrs[c->nattrs++] = (struct col_attr){
                                    i, c->names[i], A_STRING, 0};
        for (size_t i = 0; i < c->nattrs; i++)
                for (size_t k = 0; k < i; k++)
                        if (!strcmp(c->attrs[i].name, c->attrs[k].name)) {
                                relay_seterr(errstr, errstr_size,
                                             "two attributes named '%s' "
                                             "(columns %zu and %zu)",
                                             c->attrs[i].name,
                                             c->attrs[k].col + 1,
                                             c->attrs[i].col + 1);
                                goto fail;
                        }
        free(used);
        return c;
fail:
        free(used);
        relay_crm_cols_destroy(c);
        return NULL;
}

/* --- a row ----------------------------------------------------------- */

void relay_crm_row_init(relay_crm_row_t *r)
{
        memset(r, 0, sizeof(*r));
        relay_buf_init(&r->record_id);
}

void relay_crm_row_clear(relay_crm_row_t *r)
{
        json_decref(r->content);
        relay_buf_free(&r->record_id);
        relay_crm_row_init(r);
}

/* A cell trimmed of spaces and tabs: its start, and its length in *n. */
static const char *cell(const relay_csv_record_t *rec, long col, size_t *n)
{
        if (col < 0) {
                *n = 0;
                return "";
        }
        const char *p = rec->fields[col].p;
        *n = rec->fields[col].n;
        while (*n && (*p == ' ' || *p == '\t'))
                p++, (*n)--;
        while (*n && (p[*n - 1] == ' ' || p[*n - 1] == '\t'))
                (*n)--;
        return p;
}

static int reject(relay_crm_row_t *r, const relay_crm_cols_t *c, long col,
                  const char *reason, const char *what)
{
        r->reason = reason;
        if (col >= 0)
                snprintf(r->detail, sizeof(r->detail), "column %ld (%s): %s",
                         col + 1, c->header[col], what);
        else
                snprintf(r->detail, sizeof(r->detail), "%s", what);
        return 1;
}

static void dropped(relay_crm_row_t *r, const relay_crm_cols_t *c, long col,
                    unsigned bit, const char *what, const char *why)
{
        size_t len = strlen(r->dropped_detail);
        r->dropped |= bit;
        snprintf(r->dropped_detail + len, sizeof(r->dropped_detail) - len,
                 "%s%s left out: column %ld (%s): %s", len ? "; " : "", what,
                 col + 1, c->header[col], why);
}

static int parse_bool(const char *p, size_t n, int *v)
{
        static const char *const yes[] = {"true", "yes", "y", "1"};
        static const char *const no[] = {"false", "no", "n", "0"};
        for (size_t i = 0; i < 4; i++) {
                if (strlen(yes[i]) == n && !strncasecmp(p, yes[i], n))
                        return *v = 1, 0;
                if (strlen(no[i]) == n && !strncasecmp(p, no[i], n))
                        return *v = 0, 0;
        }
        return -1;
}

static int parse_long(const char *p, size_t n, long long *v)
{
        char buf[32];
        if (!n || n >= sizeof(buf))
                return -1;
        memcpy(buf, p, n);
        buf[n] = '\0';
        if (strspn(buf + (buf[0] == '-' || buf[0] == '+'), "0123456789") !=
                n - (buf[0] == '-' || buf[0] == '+') ||
            n == (size_t)(buf[0] == '-' || buf[0] == '+'))
                return -1;
        char *end;
        errno = 0;
        *v = strtoll(buf, &end, 10);
        return errno || *end ? -1 : 0;
}

static int parse_double(const char *p, size_t n, double *v)
{
        char buf[64];
        if (!n || n >= sizeof(buf))
                return -1;
        memcpy(buf, p, n);
        buf[n] = '\0';
        if (strspn(buf, "0123456789+-.eE") != n || !strpbrk(buf, "0123456789"))
                return -1;
        char *end;
        errno = 0;
        *v = strtod(buf, &end);
        return errno || *end || !isfinite(*v) ? -1 : 0;
}

/* Days since 1970-01-01 of "YYYY-MM-DD". */
static int parse_date(const char *p, size_t n, long long *days)
{
        int y, m, d;
        if (n != 10 || p[4] != '-' || p[7] != '-')
                return -1;
        for (size_t i = 0; i < 10; i++)
                if (i != 4 && i != 7 && !isdigit((unsigned char)p[i]))
                        return -1;
        y = atoi(p);
        m = (p[5] - '0') * 10 + (p[6] - '0');
        d = (p[8] - '0') * 10 + (p[9] - '0');
        static const int mdays[] = {31, 28, 31, 30, 31, 30,
                                    31, 31, 30, 31, 30, 31};
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap))
                return -1;
        /* Howard Hinnant's days_from_civil. */
        y -= m <= 2;
        long long era = (y >= 0 ? y : y - 399) / 400;
        long long yoe = y - era * 400;
        long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        *days = era * 146097 + doe - 719468;
        return 0;
}

/* Minor-unit digits of an ISO 4217 currency (2 unless listed). */
static int minor_digits(const char *cur)
{
        static const char *const zero[] = {"JPY", "KRW", "ISK", "CLP", "VND",
                                           "XOF", "XAF", "UGX", "PYG", NULL};
        static const char *const three[] = {"BHD", "KWD", "OMR", "JOD",
                                            "TND", "LYD", "IQD", NULL};
        for (int i = 0; cur && zero[i]; i++)
                if (!strcmp(cur, zero[i]))
                        return 0;
        for (int i = 0; cur && three[i]; i++)
                if (!strcmp(cur, three[i]))
                        return 3;
        return 2;
}

/* "1234.5" in major units as minor units with digits decimals, exact. */
static int parse_money(const char *p, size_t n, int digits, long long *v)
{
        int neg = n && (*p == '-' || *p == '+') ? (*p == '-') : 0;
        if (n && (*p == '-' || *p == '+'))
                p++, n--;
        long long x = 0;
        int frac = -1, any = 0;
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '.' && frac < 0) {
                        frac = 0;
                        continue;
                }
                if (!isdigit((unsigned char)p[i]))
                        return -1;
                if (frac >= 0 && ++frac > digits)
                        return -1;
                if (x > (INT64_MAX - 9) / 10)
                        return -1;
                x = x * 10 + (p[i] - '0');
                any = 1;
        }
        if (!any)
                return -1;
        for (int f = frac < 0 ? 0 : frac; f < digits; f++) {
                if (x > INT64_MAX / 10)
                        return -1;
                x *= 10;
        }
        *v = neg ? -x : x;
        return 0;
}

/* The typed value of an attribute cell: a new reference, or NULL when it
 * is not of the type. */
static json_t *attr_value(const struct col_attr *a, const char *p, size_t n)
{
        long long l;
        double d;
        int b;
        if (!n)
                return json_null();
        switch (a->type) {
        case A_BOOLEAN:
                return parse_bool(p, n, &b) ? NULL : json_boolean(b);
        case A_LONG:
                return parse_long(p, n, &l) ? NULL : json_integer(l);
        case A_DOUBLE:
                return parse_double(p, n, &d) ? NULL : json_real(d);
        case A_LIST: {
                json_t *arr = json_array();
                size_t i = 0;
                while (i <= n) {
                        const char *s = p + i;
                        const char *e = memchr(s, a->sep, n - i);
                        size_t len = e ? (size_t)(e - s) : n - i;
                        size_t k = len;
                        while (k && (*s == ' ' || *s == '\t'))
                                s++, k--;
                        while (k && (s[k - 1] == ' ' || s[k - 1] == '\t'))
                                k--;
                        if (k)
                                json_array_append_new(arr,
                                                      json_stringn(s, k));
                        i += len + 1;
                }
                return arr;
        }
        default:
                return json_stringn(p, n);
        }
}

/* Normalise cell(s) with a normaliser and hash the result: the hex in
 * hash, or "" when absent or invalid (then *why). */
static enum relay_crm_norm hashed(enum relay_crm_norm k, relay_buf_t *text,
                                  char hash[65])
{
        hash[0] = '\0';
        if (k == RELAY_CRM_VALID) {
                relay_sign_part_t part = {text->data, text->len};
                relay_sign_sha256_hex(&part, 1, hash);
        }
        return k;
}

int relay_crm_row_map(const relay_crm_cols_t *c, const relay_csv_record_t *rec,
                      const char *country, relay_crm_row_t *r)
{
        relay_crm_row_clear(r);
        size_t n;
        const char *p, *why = NULL;
        long col;
        if ((col = c->field[F_CUSTOMER_ID]) >= 0) {
                p = cell(rec, col, &n);
                if (!n)
                        return reject(r, c, col, "no customer id",
                                      "empty customer id");
                relay_buf_append(&r->record_id, p, n);
        }
        relay_buf_t text;
        relay_buf_init(&text);
        char email[65], phone[65], addr[65];
        p = cell(rec, c->field[F_EMAIL], &n);
        if (hashed(relay_crm_email(p, n, &text, &why), &text, email) ==
            RELAY_CRM_INVALID)
                dropped(r, c, c->field[F_EMAIL], RELAY_CRM_DROPPED_EMAIL,
                        "e-mail", why);
        relay_buf_reset(&text);
        p = cell(rec, c->field[F_PHONE], &n);
        if (hashed(relay_crm_phone(p, n, country, &text, &why), &text,
                   phone) == RELAY_CRM_INVALID)
                dropped(r, c, c->field[F_PHONE], RELAY_CRM_DROPPED_PHONE,
                        "phone", why);
        relay_buf_reset(&text);
        relay_crm_address_t a;
        a.street = cell(rec, c->field[F_STREET], &a.street_n);
        a.postcode = cell(rec, c->field[F_POSTCODE], &a.postcode_n);
        a.city = cell(rec, c->field[F_CITY], &a.city_n);
        a.country = cell(rec, c->field[F_COUNTRY], &a.country_n);
        if (hashed(relay_crm_address(&a, country, &text, &why), &text, addr) ==
            RELAY_CRM_INVALID) {
                col = c->field[F_STREET];
                if (col < 0)
                        col = c->field[F_POSTCODE] >= 0 ? c->field[F_POSTCODE]
                                                        : c->field[F_CITY];
                dropped(r, c, col, RELAY_CRM_DROPPED_ADDRESS, "address", why);
        }
        relay_buf_free(&text);
        if (!*email && !*phone && !*addr)
                return reject(r, c, -1, "no identity",
                              r->dropped ? r->dropped_detail
                                         : "no e-mail, phone or address");
        if (!r->record_id.len) {
                const char *kind = *email   ? "email_sha256:"
                                   : *phone ? "mobile_sha256:"
                                            : "address_sha256:";
                relay_buf_puts(&r->record_id, kind);
                relay_buf_puts(&r->record_id,
                               *email ? email : *phone ? phone : addr);
        }

        json_t *o = json_object();
        json_t *ids = json_object();
        json_object_set_new(ids, "customer_id",
                            c->field[F_CUSTOMER_ID] >= 0
                                ? json_stringn(r->record_id.data,
                                               r->record_id.len)
                                : json_null());
        json_object_set_new(ids, "email_sha256",
                            *email ? json_string(email) : json_null());
        json_object_set_new(ids, "mobile_sha256",
                            *phone ? json_string(phone) : json_null());
        json_object_set_new(ids, "address_sha256",
                            *addr ? json_string(addr) : json_null());
        json_object_set_new(o, "identities", ids);

        long long v;
        p = cell(rec, col = c->field[F_SINCE], &n);
        if (n && parse_date(p, n, &v)) {
                json_decref(o);
                return reject(r, c, col, "bad customer_since",
                              "not a date YYYY-MM-DD");
        }
        json_object_set_new(o, "customer_since",
                            n ? json_integer(v) : json_null());

        char cur[4] = "";
        p = cell(rec, col = c->field[F_CURRENCY], &n);
        if (n) {
                if (n != 3 || !isalpha((unsigned char)p[0]) ||
                    !isalpha((unsigned char)p[1]) ||
                    !isalpha((unsigned char)p[2])) {
                        json_decref(o);
                        return reject(r, c, col, "bad currency",
                                      "not an ISO 4217 code such as EUR");
                }
                for (int i = 0; i < 3; i++)
                        cur[i] = (char)toupper((unsigned char)p[i]);
        }
        p = cell(rec, col = c->field[F_LTV], &n);
        if (n && parse_money(p, n, minor_digits(*cur ? cur : NULL), &v)) {
                json_decref(o);
                return reject(r, c, col, "bad lifetime_value",
                              "not an amount such as 1234.50 (no more "
                              "decimals than the currency has)");
        }
        json_object_set_new(o, "lifetime_value_minor",
                            n ? json_integer(v) : json_null());
        json_object_set_new(o, "currency",
                            n && *cur ? json_string(cur) : json_null());

        json_t *consent = c->nconsent ? json_object() : json_null();
        json_object_set_new(o, "consent", consent);
        for (size_t i = 0; i < c->nconsent; i++) {
                int b;
                p = cell(rec, (long)c->consent[i].col, &n);
                if (!n)
                        continue;
                if (parse_bool(p, n, &b)) {
                        json_decref(o);
                        return reject(r, c, (long)c->consent[i].col,
                                      "bad consent",
                                      "not true/false, yes/no, y/n or 1/0");
                }
                json_object_set_new(consent, c->consent[i].purpose,
                                    json_boolean(b));
        }

        json_t *attrs = json_object();
        json_object_set_new(o, "attributes", attrs);
        for (size_t i = 0; i < c->nattrs; i++) {
                const struct col_attr *at = &c->attrs[i];
                p = cell(rec, (long)at->col, &n);
                json_t *val = attr_value(at, p, n);
                if (!val) {
                        char what[64];
                        snprintf(what, sizeof(what), "not a %s",
                                 atype_names[at->type]);
                        json_decref(o);
                        return reject(r, c, (long)at->col, "bad attribute",
                                      what);
                }
                json_object_set_new(attrs, at->name, val);
        }
        char *text_json = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        relay_sign_part_t part = {text_json, strlen(text_json)};
        int rc = relay_sign_sha256_hex(&part, 1, r->content_hash);
        free(text_json);
        if (rc) {
                json_decref(o);
                return reject(r, c, -1, "internal", "SHA-256 failed");
        }
        r->content = o;
        return 0;
}

int relay_crm_event_id(const char *tenant, const char *source,
                       const char *record_id, size_t record_id_len,
                       const char *content_hash, char out[37])
{
        relay_buf_t name;
        relay_buf_init(&name);
        relay_buf_printf(&name, "%s\n%s\n", tenant, source);
        relay_buf_append(&name, record_id, record_id_len);
        relay_buf_printf(&name, "\n%s", content_hash);
        int rc = relay_sign_uuid5(RELAY_CRM_UUID_NAMESPACE, name.data, name.len,
                                 out);
        relay_buf_free(&name);
        return rc;
}
