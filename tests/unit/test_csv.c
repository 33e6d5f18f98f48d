/*
 * Unit tests of common/crm/csv.c: RFC 4180 quoting (delimiters, doubled
 * quotes and line ends inside quotes), CRLF, LF and lone CR, a UTF-8 byte
 * order mark (and a UTF-16 one refused), blank lines, ragged rows, an
 * empty file and a header alone, the mistakes a record carries (and the
 * field they are in), the ones that stop the reader, and line numbers.
 * Every input is read twice, whole and one byte at a time, and must give
 * the same records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "relay/common.h"
#include "relay/csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The records as text: "L<line>-<end>:[f1][f2]..." each, with "q" before
 * a quoted field and "!<field>:<err>" after a mistake, joined by " | ". */
static int collect(const relay_csv_record_t *rec, void *arg)
{
        relay_buf_t *b = arg;
        if (b->len)
                relay_buf_puts(b, " | ");
        relay_buf_printf(b, "L%llu-%llu:", (unsigned long long)rec->line,
                         (unsigned long long)rec->end_line);
        for (size_t i = 0; i < rec->nfields; i++) {
                relay_buf_puts(b, rec->fields[i].quoted ? "q[" : "[");
                for (size_t k = 0; k < rec->fields[i].n; k++)
                        if (rec->fields[i].p[k])
                                relay_buf_append(b, rec->fields[i].p + k, 1);
                        else
                                relay_buf_puts(b, "\\0"); /* readable */
                relay_buf_puts(b, "]");
        }
        if (rec->err)
                relay_buf_printf(b, "!%zu:%s", rec->err_field, rec->err);
        return 0;
}

/* Read n bytes of text in chunks of step (0: all at once); the records as
 * collect() writes them, or "ERR <reason>" when the reader stopped. */
static char *parse_n(const char *text, size_t n, size_t step)
{
        relay_buf_t b;
        relay_buf_init(&b);
        relay_buf_puts(&b, "");
        char errstr[256];
        relay_csv_t *c = relay_csv_new(',', collect, &b);
        int rc = 0;
        if (!step)
                step = n ? n : 1;
        for (size_t off = 0; rc == 0 && off < n; off += step)
                rc = relay_csv_feed(c, text + off,
                                    off + step > n ? n - off : step, errstr,
                                    sizeof(errstr));
        if (rc == 0)
                rc = relay_csv_finish(c, errstr, sizeof(errstr));
        if (rc) {
                relay_buf_reset(&b);
                relay_buf_printf(&b, "ERR %s", errstr);
        }
        relay_csv_destroy(c);
        return b.data;
}

/* text must read as want, whole and byte by byte. */
static void check_n(const char *text, size_t n, const char *want)
{
        char *whole = parse_n(text, n, 0);
        char *bytes = parse_n(text, n, 1);
        assert_string_equal(whole, want);
        assert_string_equal(bytes, want);
        free(whole);
        free(bytes);
}

static void check(const char *text, const char *want)
{
        check_n(text, strlen(text), want);
}

static void test_plain(void **state)
{
        check("a,b,c\n1,2,3\n", "L1-1:[a][b][c] | L2-2:[1][2][3]");
        check("a,b\n1,2", "L1-1:[a][b] | L2-2:[1][2]"); /* no last line end */
        check("a,,\n", "L1-1:[a][][]");
        check(",\n", "L1-1:[][]");
        /* Spaces are data: nothing is trimmed. */
        check(" a , b \n", "L1-1:[ a ][ b ]");
}

static void test_quotes(void **state)
{
        check("\"a,b\",c\n", "L1-1:q[a,b][c]");
        check("\"say \"\"hi\"\"\",x\n", "L1-1:q[say \"hi\"][x]");
        check("\"\",x\n", "L1-1:q[][x]");
        check("\"\"\"\"\n", "L1-1:q[\"]");
        /* A quoted empty line is a record, not a blank line. */
        check("\"\"\n", "L1-1:q[]");
}

static void test_line_ends_in_quotes(void **state)
{
        check("id,note\n1,\"two\nlines\"\n2,x\n",
              "L1-1:[id][note] | L2-3:[1]q[two\nlines] | L4-4:[2][x]");
        /* CRLF inside quotes stays CRLF and counts as one line. */
        check("1,\"a\r\nb\"\r\n2,y\r\n", "L1-2:[1]q[a\r\nb] | L3-3:[2][y]");
        check("\"a\n\nb\",c\n", "L1-3:q[a\n\nb][c]");
}

static void test_line_ends(void **state)
{
        check("a,b\r\n1,2\r\n", "L1-1:[a][b] | L2-2:[1][2]");
        check("a,b\r1,2\r", "L1-1:[a][b] | L2-2:[1][2]");
        check("a\r\nb\nc\rd", "L1-1:[a] | L2-2:[b] | L3-3:[c] | L4-4:[d]");
}

static void test_bom(void **state)
{
        check("\xEF\xBB\xBF"
              "email,x\n",
              "L1-1:[email][x]");
        /* The BOM alone, and a BOM-like sequence later, which is data. */
        check("\xEF\xBB\xBF", "");
        check("a\n\xEF\xBB\xBF\n", "L1-1:[a] | L2-2:[\xEF\xBB\xBF]");
        char *got = parse_n("\xFF\xFE"
                            "a\0,\0",
                            6, 0);
        assert_non_null(strstr(got, "ERR line 1: a UTF-16 or UTF-32"));
        free(got);
        got = parse_n("\xFE\xFF", 2, 1);
        assert_non_null(strstr(got, "UTF-16"));
        free(got);
}

static void test_blank_and_empty(void **state)
{
        check("", "");
        check("\n\n\r\n", "");
        check("a\n\n\nb\n", "L1-1:[a] | L4-4:[b]");
        /* A header alone. */
        check("email,phone\r\n", "L1-1:[email][phone]");
}

static void test_ragged(void **state)
{
        /* The reader hands rows over as they are; the caller compares
         * their field counts with the header's. */
        check("a,b,c\n1\n1,2,3,4\n", "L1-1:[a][b][c] | L2-2:[1] | L3-3:[1][2][3][4]");
}

static void test_mistakes(void **state)
{
        check("a,b\"c,d\ne,f\n",
              "L1-1:[a][b\"c][d]!2:a quote inside a field that does not "
              "start with one | L2-2:[e][f]");
        check("\"ab\"c,d\n",
              "L1-1:q[abc][d]!1:text after the closing quote of a field");
        check_n("a,b\0c\n", 6, "L1-1:[a][b\\0c]!2:a NUL byte");
        check("x,\xC3\x28\n",
              "L1-1:[x][\xC3\x28]!2:bytes that are not UTF-8");
        /* Valid UTF-8 of two to four bytes is fine. */
        check("\xC3\xA9,\xE2\x82\xAC,\xF0\x9F\x98\x80\n",
              "L1-1:[\xC3\xA9][\xE2\x82\xAC][\xF0\x9F\x98\x80]");
        /* A mistake belongs to its record only. */
        check("\"a\"x\nb\n", "L1-1:q[ax]!1:text after the closing quote of a "
                             "field | L2-2:[b]");
}

static void test_unclosed_quote(void **state)
{
        char *got = parse_n("a,b\n1,\"open\n2,3\n", 16, 0);
        assert_string_equal(got, "ERR line 4: a quoted field opened on line "
                                 "2 is never closed (the file ends inside "
                                 "it)");
        free(got);
}

static void test_too_long(void **state)
{
        size_t n = RELAY_CSV_RECORD_MAX + 10;
        char *big = malloc(n);
        memset(big, 'x', n);
        big[0] = '"';
        char *got = parse_n(big, n, 4096);
        assert_non_null(strstr(got, "ERR line 1: a record longer than"));
        assert_non_null(strstr(got, "quote opened on line 1"));
        free(got);
        free(big);
}

static int stop_second(const relay_csv_record_t *rec, void *arg)
{
        int *n = arg;
        return ++*n == 2 ? 7 : 0;
}

static void test_stop_and_delim(void **state)
{
        int n = 0;
        char errstr[64];
        relay_csv_t *c = relay_csv_new(',', stop_second, &n);
        assert_int_equal(relay_csv_feed(c, "a\nb\nc\n", 6, errstr, 64), 7);
        assert_int_equal(relay_csv_feed(c, "d\n", 2, errstr, 64), 7);
        assert_int_equal(relay_csv_finish(c, errstr, 64), 7);
        assert_int_equal(n, 2);
        assert_int_equal(relay_csv_records(c), 2);
        relay_csv_destroy(c);
        assert_null(relay_csv_new('"', stop_second, &n));
        assert_null(relay_csv_new('\n', stop_second, &n));

        relay_buf_t b;
        relay_buf_init(&b);
        c = relay_csv_new(';', collect, &b);
        const char *t = "a;\"b;c\";d,e\n";
        assert_int_equal(relay_csv_feed(c, t, strlen(t), errstr, 64), 0);
        assert_int_equal(relay_csv_finish(c, errstr, 64), 0);
        assert_string_equal(b.data, "L1-1:[a]q[b;c][d,e]");
        assert_int_equal(relay_csv_bytes(c), strlen(t));
        relay_csv_destroy(c);
        relay_buf_free(&b);
        relay_csv_destroy(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_plain),
            cmocka_unit_test(test_quotes),
            cmocka_unit_test(test_line_ends_in_quotes),
            cmocka_unit_test(test_line_ends),
            cmocka_unit_test(test_bom),
            cmocka_unit_test(test_blank_and_empty),
            cmocka_unit_test(test_ragged),
            cmocka_unit_test(test_mistakes),
            cmocka_unit_test(test_unclosed_quote),
            cmocka_unit_test(test_too_long),
            cmocka_unit_test(test_stop_and_delim),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
