/*
 * CRM onboarding (relayctl onboard): a row of a client's CSV export
 * becomes one crm.records value (schemas/crm.records.avsc), with the
 * e-mail, phone and postal address normalised and SHA-256-hashed and their
 * clear text dropped. Three parts:
 *
 * - normalisers (common/crm/normalize.c): e-mail, phone (E.164 from a
 *   default country), postal address, each to the text that is hashed, as
 *   the schema's field docs define it;
 * - the column spec (common/crm/spec.c): which CSV column is which field,
 *   loaded from a small libconfig file (deploy/onboard/crm-example.cfg
 *   documents it) or the default (columns named as the fields), bound to a
 *   file's header, and a row turned into the record as natural JSON with
 *   its content hash, record id and event id;
 * - the delta state (common/crm/state.c): record id -> content hash of
 *   what an earlier run sent, kept in a file written atomically.
 *
 * The identity of a row: its record id is the customer id when the spec
 * maps a customer id column, else "<kind>:<hash>" of the first identity it
 * has (email_sha256, mobile_sha256, address_sha256). Its content hash is
 * the SHA-256 of the record's content (identities, attributes, consent,
 * customer_since, lifetime value and currency; not the run's time, file
 * name or line) as compact JSON with sorted keys. Its event_id is the
 * name-based UUID (version 5, RFC 9562) in relay's CRM namespace of
 * "<tenant>\n<source>\n<record id>\n<content hash>": the same row sent
 * again gets the same event_id; a changed row gets a new one.
 */
#ifndef RELAY_CRM_H
#define RELAY_CRM_H

#include "relay/common.h"
#include "relay/csv.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* relay's namespace for CRM event ids (a version 4 UUID made once,
 * 4d3a5c1e-9b7f-4e2a-8c61-0f5b2d7e9a13), as its 16 bytes. */
#define RELAY_CRM_UUID_NAMESPACE                                               \
        ((const unsigned char[16]){0x4d, 0x3a, 0x5c, 0x1e, 0x9b, 0x7f, 0x4e, 0x2a, 0x8c, 0x61, 0x0f, 0x5b, 0x2d, 0x7e, 0x9a, 0x13})

/* --- normalisers ---------------------------------------------------- */

/* What a normaliser made of a cell. */
enum relay_crm_norm {
        RELAY_CRM_ABSENT = 0, /* empty (whitespace only) */
        RELAY_CRM_VALID,      /* out holds the normalised text */
        RELAY_CRM_INVALID     /* *why says what is wrong */
};

/* Append p[0..n) lowercased to out: ASCII and the capitals of Latin-1,
 * Latin Extended-A (but U+0130), Greek and Cyrillic; other characters as
 * they are. p must be UTF-8. */
void relay_crm_lower(relay_buf_t *out, const char *p, size_t n);

/* The e-mail address of a cell: trimmed (spaces, tabs, no-break spaces),
 * lowercased (relay_crm_lower) and checked: one '@', a local part of 1 to
 * 64 bytes without spaces or "(),:;<>[\]", a domain of at most 253 bytes
 * of two or more dot-separated labels (letters, digits, '-' not at either
 * end, and any non-ASCII UTF-8 for internationalised names). Quoted local
 * parts and IP-literal domains are refused. */
enum relay_crm_norm relay_crm_email(const char *p, size_t n, relay_buf_t *out,
                                    const char **why);

/* The calling code of an ISO 3166-1 alpha-2 country (any case) from the
 * table in normalize.c, or NULL when the table does not have it. */
const char *relay_crm_calling_code(const char *country);

/* The phone number of a cell in E.164 ('+' and 8 to 15 digits), by this
 * rule:
 * 1. spaces, no-break spaces, '-', '.', '/', '(' and ')' are dropped, and
 *    a "(0)" after an international prefix ("+31 (0)6 ...") with them;
 *    anything else but digits and one leading '+' is refused;
 * 2. "+<digits>" and "00<digits>" are international: the digits are the
 *    country code and the number;
 * 3. any other number is national, of country (the onboard's default
 *    country): its trunk prefix ("0" for most of Europe, "1" for the
 *    NANP, none for Italy and a few others) is dropped when it starts
 *    with it, and the country's calling code put before it;
 * 4. the result must have 8 to 15 digits and not start with 0.
 * It does not check numbering plans (a number of the wrong length for its
 * country passes), tell mobiles from landlines, keep extensions, or know
 * a national number that already starts with the country code without a
 * '+' or "00" (that one gets the code twice). -1-free: an unknown country
 * makes national numbers invalid ("no calling code for country XX"). */
enum relay_crm_norm relay_crm_phone(const char *p, size_t n,
                                    const char *country, relay_buf_t *out,
                                    const char **why);

/* A postal address's cells, each n bytes at p (p may be NULL when n is 0). */
typedef struct relay_crm_address {
        const char *street, *postcode, *city, *country;
        size_t street_n, postcode_n, city_n, country_n;
} relay_crm_address_t;

/* The address in the schema's canonical form: each part trimmed, runs of
 * white space as one space, lowercased (relay_crm_lower), the postcode
 * without any space, the country an ISO 3166-1 alpha-2 code (two ASCII
 * letters; an empty one is default_country), joined with '|':
 * "street and number|postcode|city|country". ABSENT when street, postcode
 * and city are all empty; INVALID when one of them is (incomplete) or the
 * country is not two letters. */
enum relay_crm_norm relay_crm_address(const relay_crm_address_t *a,
                                      const char *default_country,
                                      relay_buf_t *out, const char **why);

/* --- the column spec ------------------------------------------------- */

typedef struct relay_crm_spec relay_crm_spec_t;

/* The spec of a libconfig file (see deploy/onboard/crm-example.cfg), or
 * NULL with "file:line: ..." in errstr. path NULL: the default spec, where
 * each field's column is named as the field (customer_id, email, phone,
 * street, postcode, city, country, customer_since, lifetime_value,
 * currency), a column consent_<purpose> is that purpose's consent, and
 * every other column is a string attribute. Owned by the caller. */
relay_crm_spec_t *relay_crm_spec_load(const char *path, char *errstr,
                                      size_t errstr_size);
void relay_crm_spec_destroy(relay_crm_spec_t *s);

/* The CSV delimiter the spec names (',' by default). */
char relay_crm_spec_delimiter(const relay_crm_spec_t *s);

/* Whether the spec maps a customer id column: then the record id is the
 * customer id. */
int relay_crm_spec_has_customer_id(const relay_crm_spec_t *s);

typedef struct relay_crm_cols relay_crm_cols_t;

/* The spec bound to a file's header record: every column the spec names
 * must be there (compared trimmed and case-insensitively, as are the
 * default spec's names after spaces became '_'), no column twice, no two
 * attributes of one name. NULL with the reason in errstr (naming the
 * column; the caller adds the file and line 1). spec must outlive it. */
relay_crm_cols_t *relay_crm_cols_new(const relay_crm_spec_t *spec,
                                     const relay_csv_record_t *header,
                                     char *errstr, size_t errstr_size);
void relay_crm_cols_destroy(relay_crm_cols_t *c);

/* Columns of the header. */
size_t relay_crm_cols_count(const relay_crm_cols_t *c);

/* What a row is for the run. */
typedef struct relay_crm_row {
        /* With reason NULL: the record's content (a new reference: the
         * natural JSON of crm.records less event_id, occurred_at, tenant,
         * source, source_file and source_row), its content hash and its
         * record id; else NULL. */
        json_t *content;
        char content_hash[65];
        relay_buf_t record_id;
        /* Why the row is rejected (a short class, counted in the summary)
         * and the detail for the rejects file ("column 3 (Email): ...");
         * NULL when it is not. */
        const char *reason;
        char detail[256];
        /* Identities that were there but invalid, so left out of a row
         * that is sent (bits: 1 e-mail, 2 phone, 4 address), with the
         * detail of each in dropped_detail. */
        unsigned dropped;
        char dropped_detail[256];
} relay_crm_row_t;

#define RELAY_CRM_DROPPED_EMAIL   1u
#define RELAY_CRM_DROPPED_PHONE   2u
#define RELAY_CRM_DROPPED_ADDRESS 4u

void relay_crm_row_init(relay_crm_row_t *r);
void relay_crm_row_clear(relay_crm_row_t *r); /* frees, then as init */

/* Turn one data record (its fields as many as the header's: the caller
 * rejects ragged rows) into r, normalising with default_country (for
 * phones and addresses without a country). r is cleared first. Returns 0
 * when r->content is set, 1 when the row is rejected (r->reason). The
 * record id of a rejected row is still set when its customer id cell is
 * not empty. */
int relay_crm_row_map(const relay_crm_cols_t *c, const relay_csv_record_t *rec,
                      const char *default_country, relay_crm_row_t *r);

/* The event id of a row (see the top of this file) into out. 0 or -1. */
int relay_crm_event_id(const char *tenant, const char *source,
                       const char *record_id, size_t record_id_len,
                       const char *content_hash, char out[37]);

/* --- the delta state ------------------------------------------------- */

typedef struct relay_crm_state relay_crm_state_t;

/* An empty state. Owned by the caller. */
relay_crm_state_t *relay_crm_state_new(void);
void relay_crm_state_destroy(relay_crm_state_t *s);

/* Load the state file at path into s: 1 when there is no such file (s
 * stays empty), 0 when loaded, -1 with "path:line: ..." when it cannot be
 * read or is not a state file. */
int relay_crm_state_load(relay_crm_state_t *s, const char *path, char *errstr,
                         size_t errstr_size);

/* Write s to path atomically: a temporary file beside it, synced, renamed
 * over path, the directory synced. So path always holds either the old
 * state or the new one in full. 0, or -1 with errstr (path untouched). */
int relay_crm_state_save(const relay_crm_state_t *s, const char *path,
                         char *errstr, size_t errstr_size);

/* The content hash kept for a record id (64 hex characters), or NULL. */
const char *relay_crm_state_get(const relay_crm_state_t *s, const char *id,
                                size_t n);

/* Set a record id's content hash (replacing any) and the line it was on
 * in this run (kept in memory only). */
void relay_crm_state_put(relay_crm_state_t *s, const char *id, size_t n,
                         const char *content_hash, uint64_t line);

/* The line put with a record id, 0 when it has none. */
uint64_t relay_crm_state_line(const relay_crm_state_t *s, const char *id,
                              size_t n);

/* Record ids held. */
size_t relay_crm_state_count(const relay_crm_state_t *s);

/* How many record ids of s neither a nor b (b may be NULL) holds. */
size_t relay_crm_state_missing(const relay_crm_state_t *s,
                               const relay_crm_state_t *a,
                               const relay_crm_state_t *b);

#endif
