
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * Unit tests of the shared core (apikey_core.c): the key format and its
 * checksum, the keyed hash and the secret fingerprint against fixed
 * vectors, the secret file, the record encoding (round trips, every kind
 * of hostile input, a deterministic fuzz loop), times, field validators,
 * and the LMDB layer on a real temporary environment.
 *
 * The output is TAP (t/core_unit.t runs it under prove).  All tests are
 * in one group: cmocka prints one plan per group, and TAP allows one.
 */


#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <zlib.h>

#include "apikey_core.h"


#define T_NOW                   1700000000
#define T_FUZZ_ROUNDS           20000


typedef struct {
    char                    dir[64];
    MDB_env                *env;
} t_db_t;


const char *__ubsan_default_options(void);

static akc_str_t t_str(const char *s);
static void t_secret_seq(akc_secret_t *secret);
static void t_hex(const unsigned char *bin, size_t len, char *out);
static uint64_t t_rand(void);
static void t_record_sample(akc_record_t *rec);
static void t_record_equal(const akc_record_t *a, const akc_record_t *b);
static int t_decode_copy(const unsigned char *buf, size_t len);
static void t_write_file(const char *path, const char *data, size_t len);
static int t_db_setup(void **state);
static int t_db_teardown(void **state);
static void t_db_init(MDB_env *env, const akc_secret_t *secret,
    akc_dbs_t *dbs);
static void t_db_put_key(MDB_env *env, const akc_dbs_t *dbs,
    const akc_secret_t *secret, const char *key, const akc_record_t *rec);
static void t_fields(int cookie, const char *in, const char *name,
    char *out);
static void t_remove(int cookie, const char *in, const char *name,
    const char *expect);


static uint64_t  t_rand_state = 0x9e3779b97f4a7c15ULL;


/*
 * Sanitizer reports must fail the run: UBSan only prints and goes on
 * unless told to stop.
 */

const char *
__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}


static akc_str_t
t_str(const char *s)
{
    akc_str_t  str;

    str.len = strlen(s);
    str.data = s;

    return str;
}


static void
t_secret_seq(akc_secret_t *secret)
{
    int  i;

    for (i = 0; i < AKC_SECRET_LEN; i++) {
        secret->bytes[i] = (unsigned char) i;
    }

    akc_secret_prepare(secret);
}


static void
t_hex(const unsigned char *bin, size_t len, char *out)
{
    sodium_bin2hex(out, 2 * len + 1, bin, len);
}


/* xorshift64*: a fixed seed, so every run fuzzes the same inputs */

static uint64_t
t_rand(void)
{
    t_rand_state ^= t_rand_state >> 12;
    t_rand_state ^= t_rand_state << 25;
    t_rand_state ^= t_rand_state >> 27;

    return t_rand_state * 0x2545f4914f6cdd1dULL;
}


static void
t_record_sample(akc_record_t *rec)
{
    memset(rec, 0, sizeof(akc_record_t));

    rec->created = 1700000000;
    rec->not_before = 1700000100;
    rec->expires = 1801353600;
    rec->flags = 0;
    rec->id = t_str("key-0001");
    rec->subject = t_str("Acme Corp. <ops@acme.example>");
    rec->scopes = t_str("read,write,admin:*");
    rec->plan = t_str("gold");
    rec->hint = t_str("ak_4Fq2...");
}


static void
t_record_equal(const akc_record_t *a, const akc_record_t *b)
{
    assert_int_equal(a->created, b->created);
    assert_int_equal(a->not_before, b->not_before);
    assert_int_equal(a->expires, b->expires);
    assert_int_equal(a->flags, b->flags);

    assert_int_equal(a->id.len, b->id.len);
    assert_memory_equal(a->id.data, b->id.data, a->id.len);
    assert_int_equal(a->subject.len, b->subject.len);
    assert_memory_equal(a->subject.data, b->subject.data, a->subject.len);
    assert_int_equal(a->scopes.len, b->scopes.len);
    assert_memory_equal(a->scopes.data, b->scopes.data, a->scopes.len);
    assert_int_equal(a->plan.len, b->plan.len);
    assert_memory_equal(a->plan.data, b->plan.data, a->plan.len);
    assert_int_equal(a->hint.len, b->hint.len);
    assert_memory_equal(a->hint.data, b->hint.data, a->hint.len);
    assert_int_equal(a->replaces.len, b->replaces.len);
    assert_memory_equal(a->replaces.data, b->replaces.data, a->replaces.len);
    assert_int_equal(a->replaced_by.len, b->replaced_by.len);
    assert_memory_equal(a->replaced_by.data, b->replaced_by.data,
                        a->replaced_by.len);
}


/*
 * Decodes a copy in a buffer of exactly len bytes, so that ASan sees
 * any read past its end.
 */

static int
t_decode_copy(const unsigned char *buf, size_t len)
{
    int             rc;
    akc_record_t    rec;
    unsigned char  *copy;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);

    if (len) {
        memcpy(copy, buf, len);
    }

    rc = akc_record_decode(&rec, copy, len);

    free(copy);

    return rc;
}


static void
t_write_file(const char *path, const char *data, size_t len)
{
    FILE  *f;

    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}


/* key format */

static void
key_generate_default(void **state)
{
    int     i, n;
    size_t  j;
    char    key[AKC_GEN_KEY_MAX_LEN + 1], prev[AKC_GEN_KEY_MAX_LEN + 1];

    prev[0] = '\0';

    for (i = 0; i < 200; i++) {
        n = akc_key_generate(AKC_DEFAULT_PREFIX, key, sizeof(key));

        assert_int_equal(n, 2 + 1 + 32 + 6);
        assert_int_equal(strlen(key), 41);
        assert_memory_equal(key, "ak_", 3);

        for (j = 3; j < 41; j++) {
            assert_true((key[j] >= '0' && key[j] <= '9')
                        || (key[j] >= 'A' && key[j] <= 'Z')
                        || (key[j] >= 'a' && key[j] <= 'z'));
        }

        assert_int_equal(akc_key_classify((unsigned char *) key, n),
                         AKC_KEY_GENERATED);
        assert_string_not_equal(key, prev);

        memcpy(prev, key, n + 1);
    }
}


static void
key_generate_two_part_prefix(void **state)
{
    int     n;
    size_t  j;
    char    key[AKC_GEN_KEY_MAX_LEN + 1];

    n = akc_key_generate("ak_live", key, sizeof(key));

    assert_int_equal(n, 7 + 1 + 32 + 6);
    assert_int_equal(strlen(key), 46);
    assert_memory_equal(key, "ak_live_", 8);

    for (j = 8; j < 46; j++) {
        assert_true((key[j] >= '0' && key[j] <= '9')
                    || (key[j] >= 'A' && key[j] <= 'Z')
                    || (key[j] >= 'a' && key[j] <= 'z'));
    }

    assert_int_equal(akc_key_classify((unsigned char *) key, n),
                     AKC_KEY_GENERATED);

    /* the longest prefix fills AKC_GEN_KEY_MAX_LEN exactly */

    n = akc_key_generate("0123456789abcdef_0123456789abcdef", key,
                         sizeof(key));
    assert_int_equal(n, AKC_GEN_KEY_MAX_LEN);
    assert_int_equal(n, 33 + 1 + 38);
    assert_int_equal(akc_key_classify((unsigned char *) key, n),
                     AKC_KEY_GENERATED);
}


static void
key_generate_errors(void **state)
{
    char  key[AKC_GEN_KEY_MAX_LEN + 1];

    assert_int_equal(akc_key_generate("AK", key, sizeof(key)), AKC_ERROR);
    assert_int_equal(akc_key_generate("", key, sizeof(key)), AKC_ERROR);
    assert_int_equal(akc_key_generate("ak_", key, sizeof(key)), AKC_ERROR);
    assert_int_equal(akc_key_generate("a_b_c", key, sizeof(key)),
                     AKC_ERROR);

    /* 41 characters and the terminating zero */

    assert_int_equal(akc_key_generate("ak", key, 41), AKC_ERROR);
    assert_int_equal(akc_key_generate("ak", key, 42), 41);
}


static void
key_bad_checksum(void **state)
{
    int    n, i;
    char   key[AKC_GEN_KEY_MAX_LEN + 1], bad[AKC_GEN_KEY_MAX_LEN + 1];

    n = akc_key_generate("ak_live", key, sizeof(key));
    assert_int_equal(n, 46);

    /* any one tail character changed, random part or checksum */

    for (i = 8; i < n; i++) {
        memcpy(bad, key, n + 1);
        bad[i] = (key[i] == 'x') ? 'y' : 'x';

        assert_int_equal(akc_key_classify((unsigned char *) bad, n),
                         AKC_KEY_BAD_CHECKSUM);
    }

    /* a prefix character changed to another valid one */

    memcpy(bad, key, n + 1);
    bad[0] = 'b';
    assert_int_equal(akc_key_classify((unsigned char *) bad, n),
                     AKC_KEY_BAD_CHECKSUM);

    /* an invalid prefix makes it a plain key, not a typo of ours */

    memcpy(bad, key, n + 1);
    bad[0] = 'A';
    assert_int_equal(akc_key_classify((unsigned char *) bad, n),
                     AKC_KEY_PLAIN);
}


static void
key_invalid(void **state)
{
    char  buf[300];

    memset(buf, 'a', sizeof(buf));

    assert_int_equal(akc_key_classify((unsigned char *) buf, 0),
                     AKC_KEY_INVALID);
    assert_int_equal(akc_key_classify((unsigned char *) buf, 7),
                     AKC_KEY_INVALID);
    assert_int_equal(akc_key_classify((unsigned char *) buf, 8),
                     AKC_KEY_PLAIN);
    assert_int_equal(akc_key_classify((unsigned char *) buf, 256),
                     AKC_KEY_PLAIN);
    assert_int_equal(akc_key_classify((unsigned char *) buf, 257),
                     AKC_KEY_INVALID);

    assert_int_equal(akc_key_classify((unsigned char *) "abcd efgh", 9),
                     AKC_KEY_INVALID);
    assert_int_equal(akc_key_classify((unsigned char *) "abcd\tefgh", 9),
                     AKC_KEY_INVALID);
    assert_int_equal(akc_key_classify((unsigned char *) "abcdefgh\n", 9),
                     AKC_KEY_INVALID);
    assert_int_equal(akc_key_classify((unsigned char *) "abcd\001efgh", 9),
                     AKC_KEY_INVALID);
    assert_int_equal(akc_key_classify((unsigned char *) "abcd\177efgh", 9),
                     AKC_KEY_INVALID);
    assert_int_equal(akc_key_classify((unsigned char *) "abcd\0efgh", 9),
                     AKC_KEY_INVALID);
    assert_int_equal(akc_key_classify((unsigned char *) "caf\xc3\xa9key1",
                                      9),
                     AKC_KEY_INVALID);
    assert_int_equal(akc_key_classify((unsigned char *) "abcdefg\xff", 8),
                     AKC_KEY_INVALID);
}


static void
key_plain(void **state)
{
    int            i;
    size_t         len, j;
    unsigned char  buf[AKC_KEY_MAX_LEN];

    /* every printable character */

    for (j = 0; j < 94; j++) {
        buf[j] = (unsigned char) (0x21 + j);
    }

    assert_int_equal(akc_key_classify(buf, 94), AKC_KEY_PLAIN);
    assert_int_equal(akc_key_classify((unsigned char *) "abcdefgh", 8),
                     AKC_KEY_PLAIN);
    assert_int_equal(akc_key_classify((unsigned char *) "!\"#$%&'(", 8),
                     AKC_KEY_PLAIN);

    /* random printable strings without '_' never have our shape */

    for (i = 0; i < 2000; i++) {
        len = AKC_KEY_MIN_LEN
              + t_rand() % (AKC_KEY_MAX_LEN - AKC_KEY_MIN_LEN + 1);

        for (j = 0; j < len; j++) {
            do {
                buf[j] = (unsigned char) (0x21 + t_rand() % 94);
            } while (buf[j] == '_');
        }

        assert_int_equal(akc_key_classify(buf, len), AKC_KEY_PLAIN);
    }

    /* almost our shape: short, non-base62 tail, bad prefix */

    assert_int_equal(akc_key_classify((unsigned char *)
                         "_0123456789ABCDEFGHIJKLMNOPQRSTUV1Wf1r1", 39),
                     AKC_KEY_PLAIN);
    assert_int_equal(akc_key_classify((unsigned char *)
                         "ak_0123456789ABCDEFGHIJKLMNOPQRSTU-1Wf1r1", 41),
                     AKC_KEY_PLAIN);
    assert_int_equal(akc_key_classify((unsigned char *)
                         "Ak_0123456789ABCDEFGHIJKLMNOPQRSTUV1Wf1r1", 41),
                     AKC_KEY_PLAIN);
    assert_int_equal(akc_key_classify((unsigned char *)
                         "a_b_c_0123456789ABCDEFGHIJKLMNOPQRSTUV1Wf1r1",
                         44),
                     AKC_KEY_PLAIN);
}


static void
prefix_valid(void **state)
{
    assert_true(akc_prefix_valid("ak", 2));
    assert_true(akc_prefix_valid("a", 1));
    assert_true(akc_prefix_valid("0", 1));
    assert_true(akc_prefix_valid("ak_live", 7));
    assert_true(akc_prefix_valid("0123456789abcdef", 16));
    assert_true(akc_prefix_valid("0123456789abcdef_0123456789abcdef", 33));

    assert_false(akc_prefix_valid("", 0));
    assert_false(akc_prefix_valid("AK", 2));
    assert_false(akc_prefix_valid("aK", 2));
    assert_false(akc_prefix_valid("ak_Live", 7));
    assert_false(akc_prefix_valid("0123456789abcdefg", 17));
    assert_false(akc_prefix_valid("a_0123456789abcdefg", 19));
    assert_false(akc_prefix_valid("a_b_c", 5));
    assert_false(akc_prefix_valid("a__b", 4));
    assert_false(akc_prefix_valid("_ak", 3));
    assert_false(akc_prefix_valid("ak_", 3));
    assert_false(akc_prefix_valid("_", 1));
    assert_false(akc_prefix_valid("ak-live", 7));
    assert_false(akc_prefix_valid("ak live", 7));
    assert_false(akc_prefix_valid("ak\0", 3));
}


static void
checksum_vector(void **state)
{
    int          i;
    char         sum[AKC_CHECKSUM_LEN], expect[AKC_CHECKSUM_LEN];
    uint32_t     crc;
    const char  *digits;

    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
             "abcdefghijklmnopqrstuvwxyz";

    /* the standard CRC-32 check value */

    crc = (uint32_t) crc32(0L, (const Bytef *) "123456789", 9);
    assert_int_equal(crc, 0xcbf43926);

    for (i = AKC_CHECKSUM_LEN - 1; i >= 0; i--) {
        expect[i] = digits[crc % 62];
        crc /= 62;
    }

    assert_int_equal(crc, 0);
    assert_memory_equal(expect, "3jZRME", 6);

    akc_checksum((const unsigned char *) "123456789", 9, sum);
    assert_memory_equal(sum, "3jZRME", 6);

    /* 0 is six zero digits */

    crc = (uint32_t) crc32(0L, Z_NULL, 0);
    assert_int_equal(crc, 0);
    akc_checksum((const unsigned char *) "", 0, sum);
    assert_memory_equal(sum, "000000", 6);

    /* a fixed key: the checksum must never change */

    akc_checksum((const unsigned char *)
                 "ak_0123456789ABCDEFGHIJKLMNOPQRSTUV", 35, sum);
    assert_memory_equal(sum, "1Wf1r1", 6);

    assert_int_equal(akc_key_classify((unsigned char *)
                         "ak_0123456789ABCDEFGHIJKLMNOPQRSTUV1Wf1r1", 41),
                     AKC_KEY_GENERATED);
    assert_int_equal(akc_key_classify((unsigned char *)
                         "ak_0123456789ABCDEFGHIJKLMNOPQRSTUV1Wf1r2", 41),
                     AKC_KEY_BAD_CHECKSUM);
}


static void
auth_parse(void **state)
{
    size_t     i;
    akc_str_t  key;

    static const struct {
        const char  *value;
        int          rc;
        const char  *key;
    } cases[] = {
        { "Bearer abc", AKC_OK, "abc" },
        { "bearer abc", AKC_OK, "abc" },
        { "BEARER  abc  ", AKC_OK, "abc" },
        { "Bearer\tabc\t", AKC_OK, "abc" },
        { "Bearer\vabc", AKC_OK, "abc" },
        { "Bearer\fabc", AKC_OK, "abc" },
        { " \tBearer abc", AKC_OK, "abc" },
        { "Bearer", AKC_OK, "" },
        { "Bearer \t ", AKC_OK, "" },
        { "Bearer a b", AKC_OK, "a b" },
        { "Bearerabc", AKC_ERROR, NULL },
        { "Bearer-abc", AKC_ERROR, NULL },
        { "Basic abc", AKC_ERROR, NULL },
        { "Beare", AKC_ERROR, NULL },
        { "", AKC_ERROR, NULL },
        { " ", AKC_ERROR, NULL },
    };

    /* "Bearer" and any blank after it, as upstreams that split read it */

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(akc_auth_parse((const unsigned char *)
                                        cases[i].value,
                                        strlen(cases[i].value), "Bearer", 6,
                                        &key),
                         cases[i].rc);

        if (cases[i].rc == AKC_OK) {
            assert_int_equal(key.len, strlen(cases[i].key));
            assert_memory_equal(key.data, cases[i].key, key.len);
        }
    }
}


static void
key_mask(void **state)
{
    int     n;
    char    key[AKC_GEN_KEY_MAX_LEN + 1], key2[AKC_GEN_KEY_MAX_LEN + 1];
    char    line[512], want[512];
    size_t  len;

    n = akc_key_generate("ak", key, sizeof(key));
    assert_int_equal(n, 41);
    n = akc_key_generate("live_ab", key2, sizeof(key2));
    assert_int_equal(n, 46);

    /* two keys in a request line, under any name, masked past the hint */

    len = (size_t) snprintf(line, sizeof(line),
                            "GET /p/%s?x=1&k=%s HTTP/1.1", key, key2);

    assert_int_equal(akc_mask_keys((unsigned char *) line, len), 2);

    snprintf(want, sizeof(want), "GET /p/%.7s%s?x=1&k=%.12s%s HTTP/1.1",
             key, "**********************************", key2,
             "**********************************");
    assert_string_equal(line, want);

    /* a wrong checksum (a typo) is all but the key: masked too */

    snprintf(line, sizeof(line), "%s", key);
    line[20] = line[20] == 'a' ? 'b' : 'a';
    assert_int_equal(akc_mask_keys((unsigned char *) line, 41), 1);
    assert_memory_equal(line + 7, "**********************************", 34);

    /* a short tail: left alone */

    assert_int_equal(akc_mask_keys((unsigned char *) "ak_abc", 6), 0);
    assert_int_equal(akc_mask_keys((unsigned char *) "", 0), 0);

    /*
     * the body of a key without its prefix, or a character short: masked
     * past its first four characters
     */

    snprintf(line, sizeof(line), "?%s", key + 3);
    assert_int_equal(akc_mask_keys((unsigned char *) line, 39), 1);
    assert_memory_equal(line + 1, key + 3, 4);
    assert_memory_equal(line + 5, "**********************************", 34);

    snprintf(line, sizeof(line), "%.10s%s", key, key + 11);
    assert_int_equal(akc_mask_keys((unsigned char *) line, 40), 1);
    assert_memory_equal(line + 7, "*********************************", 33);

    /* one case only (a hex hash, a word) and short runs: left alone */

    snprintf(line, sizeof(line), "%s",
             "0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_int_equal(akc_mask_keys((unsigned char *) line, 48), 0);

    snprintf(line, sizeof(line), "%s",
             "supercalifragilisticexpialidociouslyspeaking");
    assert_int_equal(akc_mask_keys((unsigned char *) line, 44), 0);

    snprintf(line, sizeof(line), "%s", "AbCdEfGhIjKlMnOpQrStUvWxYz01234");
    assert_int_equal(akc_mask_keys((unsigned char *) line, 31), 0);

    /* 32 and more: a token; "-" and "_" are of it */

    snprintf(line, sizeof(line), "%s", "AbCdEfGhIjKlMnOpQrStUvWxYz012345");
    assert_int_equal(akc_mask_keys((unsigned char *) line, 32), 1);
    assert_memory_equal(line, "AbCd****************************", 32);

    snprintf(line, sizeof(line), "s=ak_%s;",
             "1vCkn81T-u120ckUX4NRNngZ-6TcK_Xb");
    assert_int_equal(akc_mask_keys((unsigned char *) line, 38), 1);
    assert_string_equal(line, "s=ak_1*******************************;");
}


/*
 * What is taken for a key in a value (import, gen, follow, the log):
 * random tokens, not the values of a subject, a hash or an id.
 */

static void
key_run(void **state)
{
    size_t       i, pos;
    const char  *s;

    static const char  *tokens[] = {
        "ak_1vCkn81T-u120ckUX4NRNngZ-6TcK_Xb",      /* token_urlsafe(24) */
        "ak_6Rc6lGHRqpbEVkkuNKiEFCIyiHXhLzUH",
        "HnNsHbDzxCItlSzamG_uAvi0R9uBr6vu",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "customer sk_test_51H8kLmN0pQrStUvWxYz9aBcDeF in a subject",
        "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.x",
        "ak_0123456789ABCDEFGHIJKLMNOPQRSTUV1Wf1r1",  /* a generated key */
        "0123456789ABCDEFGHIJKLMNOPQRSTUV1Wf1r",     /* its body */
        NULL
    };

    static const char  *values[] = {
        "550e8400-e29b-41d4-a716-446655440000",     /* a UUID */
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
        "customer 42",
        "customer-42-Main_Account-Production",
        "MyCompany_Production_Service_v2_Backend",
        "Customer_Account_For_Testing_Purposes_2024",
        "HTTPServerConnectionPoolManager2",
        "customerAccountNumber_Production2024",
        "user_12345_Premium-Plan_EU-West-1",
        "supercalifragilisticexpialidociouslyspeaking",
        "read,write,admin:billing,reports:export-monthly",
        "gold-plan-2024",
        "/var/lib/apikey/main/data.mdb",
        "AbCdEfGhIjKlMnOpQrStUvWxYz01234",           /* 31: too short */
        "",
        NULL
    };

    for (i = 0; tokens[i] != NULL; i++) {
        s = tokens[i];
        pos = 0;

        if (akc_key_run((const unsigned char *) s, strlen(s), &pos) == 0) {
            fail_msg("not taken for a key: %s", s);
        }
    }

    for (i = 0; values[i] != NULL; i++) {
        s = values[i];
        pos = 0;

        if (akc_key_run((const unsigned char *) s, strlen(s), &pos) != 0) {
            fail_msg("taken for a key: %s", s);
        }

        assert_int_equal(pos, strlen(s));
    }
}


static void
key_hint(void **state)
{
    char    hint[AKC_HINT_MAX_LEN + 1];
    size_t  n;

    n = akc_key_hint((unsigned char *)
                     "ak_0123456789ABCDEFGHIJKLMNOPQRSTUV1Wf1r1", 41, hint);
    assert_int_equal(n, 10);
    assert_string_equal(hint, "ak_0123...");

    /* an imported key: at most 4 characters, at most an eighth of it */

    n = akc_key_hint((unsigned char *) "abcdefghijklmnop", 16, hint);
    assert_int_equal(n, 5);
    assert_string_equal(hint, "ab...");

    n = akc_key_hint((unsigned char *) "abcdefgh", 8, hint);
    assert_int_equal(n, 4);
    assert_string_equal(hint, "a...");

    assert_true(akc_text_valid(hint, n, AKC_HINT_MAX_LEN));

    n = akc_key_hint((unsigned char *) "abcdefghijklmno", 15, hint);
    assert_string_equal(hint, "a...");

    n = akc_key_hint((unsigned char *) "abcdefghijklmnopqrstuvwxyz01234", 31,
                     hint);
    assert_string_equal(hint, "abc...");

    n = akc_key_hint((unsigned char *) "abcdefghijklmnopqrstuvwxyz012345", 32,
                     hint);
    assert_string_equal(hint, "abcd...");

    n = akc_key_hint((unsigned char *)
                     "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop",
                     52, hint);
    assert_string_equal(hint, "abcd...");

    /* not of the generated shape (a bad checksum): a plain key's hint */

    n = akc_key_hint((unsigned char *)
                     "ak_0123456789ABCDEFGHIJKLMNOPQRSTUV1Wf1r2", 41, hint);
    assert_string_equal(hint, "ak_0...");
}


/* hashing */

static void
hash_vector(void **state)
{
    size_t                i;
    char                  hex[2 * AKC_HASH_LEN + 1];
    unsigned char         out[AKC_HASH_LEN], ref[AKC_HASH_LEN];
    unsigned char         key200[200];
    akc_secret_t          secret;

    /*
     * from Python: hashlib.blake2b(key, key=bytes(range(32)),
     * digest_size=32).hexdigest(); t/apikey_hash.t computes its own
     * with Python at test time
     */

    static const struct {
        const char       *key;
        size_t            len;
        const char       *hex;
    } vectors[] = {
        { "abcdefgh", 8,
          "c191a30a9d3a1dc7d7d76c644be8f41c"
          "bcfba99da3bca25a160a6918dd6bf90d" },
        { "ak_0123456789ABCDEFGHIJKLMNOPQRSTUV1Wf1r1", 41,
          "a97e48b1a0eff645fc11c21e25b0e65a"
          "f4fa6f790c25ba8f94ba1f8241c785b8" },
        { "", 0,
          "4e51e7a913fc80137da52880fecca175"
          "bf81e117d5c68126dc2774033517ea0d" },
    };

    t_secret_seq(&secret);

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        akc_hash(&secret, (const unsigned char *) vectors[i].key,
                 vectors[i].len, out);

        assert_int_equal(crypto_generichash(ref, sizeof(ref),
                             (const unsigned char *) vectors[i].key,
                             vectors[i].len, secret.bytes,
                             AKC_SECRET_LEN), 0);
        assert_memory_equal(out, ref, AKC_HASH_LEN);

        t_hex(out, AKC_HASH_LEN, hex);
        assert_string_equal(hex, vectors[i].hex);
    }

    /* longer than one 128-byte block */

    for (i = 0; i < sizeof(key200); i++) {
        key200[i] = (unsigned char) (0x21 + i % 94);
    }

    akc_hash(&secret, key200, sizeof(key200), out);
    t_hex(out, AKC_HASH_LEN, hex);
    assert_string_equal(hex, "765fb2a66aae71edc032006194c5ebcd"
                             "42e76431b75a5ea39e86a661da24673c");
}


static void
hash_secret_differs(void **state)
{
    unsigned char  a[AKC_HASH_LEN], b[AKC_HASH_LEN];
    akc_secret_t   s1, s2;

    t_secret_seq(&s1);
    akc_hash(&s1, (const unsigned char *) "abcdefgh", 8, a);

    /* a change in the first byte of the secret, then in the last */

    s2 = s1;
    s2.bytes[0] ^= 1;
    akc_secret_prepare(&s2);
    akc_hash(&s2, (const unsigned char *) "abcdefgh", 8, b);
    assert_memory_not_equal(a, b, AKC_HASH_LEN);

    s2 = s1;
    s2.bytes[31] ^= 0x80;
    akc_secret_prepare(&s2);
    akc_hash(&s2, (const unsigned char *) "abcdefgh", 8, b);
    assert_memory_not_equal(a, b, AKC_HASH_LEN);

    /* another key, same secret */

    akc_hash(&s1, (const unsigned char *) "abcdefgi", 8, b);
    assert_memory_not_equal(a, b, AKC_HASH_LEN);

    /* the same again */

    akc_hash(&s1, (const unsigned char *) "abcdefgh", 8, b);
    assert_memory_equal(a, b, AKC_HASH_LEN);
}


static void
fingerprint_vector(void **state)
{
    char           hex[2 * AKC_FINGERPRINT_LEN + 1];
    const char    *label;
    unsigned char  fp[AKC_FINGERPRINT_LEN], ref[AKC_FINGERPRINT_LEN];
    unsigned char  h[AKC_HASH_LEN], ref64[crypto_generichash_BYTES_MAX];
    akc_secret_t   secret;

    label = "ngx_http_apikey_module secret fingerprint v2";

    t_secret_seq(&secret);
    akc_secret_fingerprint(&secret, fp);

    /* Python: hashlib.blake2b(label, key=secret).digest()[:32] */

    assert_int_equal(crypto_generichash(ref64, sizeof(ref64),
                                        (const unsigned char *) label,
                                        strlen(label), secret.bytes,
                                        AKC_SECRET_LEN), 0);
    assert_memory_equal(fp, ref64, AKC_FINGERPRINT_LEN);

    t_hex(fp, AKC_FINGERPRINT_LEN, hex);
    assert_string_equal(hex, "54f4b5ca39c92d095d2cc3c01b473439"
                             "9d09835a9f586be2636500900c3efdc8");

    /* not the hash of the label as a key */

    akc_hash(&secret, (const unsigned char *) label, strlen(label), h);
    assert_memory_not_equal(fp, h, AKC_HASH_LEN);

    secret.bytes[5] ^= 1;

    akc_secret_prepare(&secret);
    akc_secret_fingerprint(&secret, ref);
    assert_memory_not_equal(fp, ref, AKC_FINGERPRINT_LEN);
}


/* the secret */

static void
secret_parse(void **state)
{
    char          text[80];
    akc_secret_t  secret, seq;
    const char   *hex;

    hex = "000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f";

    t_secret_seq(&seq);

    snprintf(text, sizeof(text), "%s\n", hex);
    assert_int_equal(akc_secret_parse(&secret, text, 65), AKC_OK);
    assert_memory_equal(secret.bytes, seq.bytes, AKC_SECRET_LEN);

    assert_int_equal(akc_secret_parse(&secret, hex, 64), AKC_OK);
    assert_memory_equal(secret.bytes, seq.bytes, AKC_SECRET_LEN);

    snprintf(text, sizeof(text), "%s \t\r\n", hex);
    assert_int_equal(akc_secret_parse(&secret, text, 68), AKC_OK);
    assert_memory_equal(secret.bytes, seq.bytes, AKC_SECRET_LEN);

    snprintf(text, sizeof(text), "000102030405060708090A0B0C0D0E0F"
             "101112131415161718191A1B1C1D1E1F");
    assert_int_equal(akc_secret_parse(&secret, text, 64), AKC_OK);
    assert_memory_equal(secret.bytes, seq.bytes, AKC_SECRET_LEN);

    /* 63 and 65 characters, one of them no newline */

    assert_int_equal(akc_secret_parse(&secret, hex, 63), AKC_ERROR);
    snprintf(text, sizeof(text), "%s0\n", hex);
    assert_int_equal(akc_secret_parse(&secret, text, 66), AKC_ERROR);
    assert_int_equal(akc_secret_parse(&secret, text, 65), AKC_ERROR);

    assert_int_equal(akc_secret_parse(&secret, "", 0), AKC_ERROR);
    assert_int_equal(akc_secret_parse(&secret, "\n", 1), AKC_ERROR);

    /* non-hex: the secret is wiped */

    snprintf(text, sizeof(text), "%s\n", hex);
    text[10] = 'g';
    memset(secret.bytes, 0xaa, AKC_SECRET_LEN);
    assert_int_equal(akc_secret_parse(&secret, text, 65), AKC_ERROR);
    memset(seq.bytes, 0, AKC_SECRET_LEN);
    assert_memory_equal(secret.bytes, seq.bytes, AKC_SECRET_LEN);

    snprintf(text, sizeof(text), " %s", hex);
    assert_int_equal(akc_secret_parse(&secret, text, 65), AKC_ERROR);

    snprintf(text, sizeof(text), "%s", hex);
    text[32] = ' ';
    assert_int_equal(akc_secret_parse(&secret, text, 64), AKC_ERROR);
}


static void
secret_load(void **state)
{
    char          dir[64], path[128], err[256], buf[300];
    akc_secret_t  secret, seq;
    const char   *hex;

    hex = "000102030405060708090a0b0c0d0e0f"
          "101112131415161718191a1b1c1d1e1f";

    t_secret_seq(&seq);

    snprintf(dir, sizeof(dir), "/tmp/akc_test.XXXXXX");
    assert_non_null(mkdtemp(dir));

    snprintf(path, sizeof(path), "%s/secret", dir);

    snprintf(buf, sizeof(buf), "%s\n", hex);
    t_write_file(path, buf, 65);
    err[0] = '\0';
    assert_int_equal(akc_secret_load(&secret, path, err, sizeof(err)),
                     AKC_OK);
    assert_memory_equal(secret.bytes, seq.bytes, AKC_SECRET_LEN);
    assert_string_equal(err, "");

    /* 256 bytes is the limit, trailing newlines included */

    memset(buf, '\n', sizeof(buf));
    memcpy(buf, hex, 64);
    t_write_file(path, buf, 256);
    assert_int_equal(akc_secret_load(&secret, path, err, sizeof(err)),
                     AKC_OK);

    t_write_file(path, buf, 257);
    assert_int_equal(akc_secret_load(&secret, path, err, sizeof(err)),
                     AKC_ERROR);
    assert_string_equal(err,
                        "invalid secret: expected 64 hexadecimal characters");

    t_write_file(path, "", 0);
    err[0] = '\0';
    assert_int_equal(akc_secret_load(&secret, path, err, sizeof(err)),
                     AKC_ERROR);
    assert_string_equal(err,
                        "invalid secret: expected 64 hexadecimal characters");

    t_write_file(path, hex, 63);
    err[0] = '\0';
    assert_int_equal(akc_secret_load(&secret, path, err, sizeof(err)),
                     AKC_ERROR);
    assert_string_equal(err,
                        "invalid secret: expected 64 hexadecimal characters");

    assert_int_equal(unlink(path), 0);

    /* missing file */

    err[0] = '\0';
    assert_int_equal(akc_secret_load(&secret, path, err, sizeof(err)),
                     AKC_ERROR);
    snprintf(buf, sizeof(buf), "open() failed (%d: %s)", ENOENT,
             strerror(ENOENT));
    assert_string_equal(err, buf);
    assert_non_null(strstr(err, "No such file or directory"));

    /* a directory */

    err[0] = '\0';
    assert_int_equal(akc_secret_load(&secret, dir, err, sizeof(err)),
                     AKC_ERROR);
    assert_string_equal(err, "not a regular file");

    assert_int_equal(rmdir(dir), 0);
}


static void
secret_format(void **state)
{
    int           i;
    char          hex[2 * AKC_SECRET_LEN + 1];
    akc_secret_t  s1, s2;

    t_secret_seq(&s1);
    akc_secret_format(&s1, hex);
    assert_string_equal(hex, "000102030405060708090a0b0c0d0e0f"
                             "101112131415161718191a1b1c1d1e1f");

    for (i = 0; i < 100; i++) {
        randombytes_buf(s1.bytes, AKC_SECRET_LEN);
        akc_secret_format(&s1, hex);
        assert_int_equal(strlen(hex), 2 * AKC_SECRET_LEN);
        assert_int_equal(akc_secret_parse(&s2, hex, strlen(hex)), AKC_OK);
        assert_memory_equal(s1.bytes, s2.bytes, AKC_SECRET_LEN);
    }
}


/* records */

static void
record_roundtrip(void **state)
{
    int             n;
    akc_record_t    rec, out;
    unsigned char   buf[AKC_RECORD_MAX_LEN];

    t_record_sample(&rec);

    n = akc_record_encode(&rec, buf, sizeof(buf));
    assert_int_equal(n, akc_record_size(&rec));
    assert_int_equal(n, 28 + 10 + 8 + 29 + 18 + 4 + 10);

    /* the layout: version, flags, reserved, three times, then strings */

    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[1], 0);
    assert_int_equal(buf[2], 0);
    assert_int_equal(buf[3], 0);
    assert_memory_equal(buf + 4, "\x00\xf1\x53\x65\x00\x00\x00\x00", 8);
    assert_memory_equal(buf + 28, "\x08\x00key-0001", 10);

    memset(&out, 0, sizeof(out));
    assert_int_equal(akc_record_decode(&out, buf, n), AKC_OK);
    t_record_equal(&rec, &out);

    assert_ptr_equal(out.id.data, buf + 30);
    assert_true((unsigned char *) out.hint.data + out.hint.len == buf + n);

    /* flags and negative times */

    rec.flags = AKC_FLAG_DISABLED;
    rec.created = -1;
    rec.not_before = INT64_MIN;
    rec.expires = INT64_MAX;

    n = akc_record_encode(&rec, buf, sizeof(buf));
    assert_int_equal(n, akc_record_size(&rec));
    assert_int_equal(buf[1], AKC_FLAG_DISABLED);
    assert_int_equal(akc_record_decode(&out, buf, n), AKC_OK);
    t_record_equal(&rec, &out);
}


static void
record_roundtrip_empty(void **state)
{
    int             n;
    akc_record_t    rec, out;
    unsigned char   buf[AKC_RECORD_MAX_LEN];

    memset(&rec, 0, sizeof(rec));
    rec.id = t_str("a");
    rec.subject.data = NULL;
    rec.scopes = t_str("");

    n = akc_record_encode(&rec, buf, sizeof(buf));
    assert_int_equal(n, AKC_RECORD_HEADER_LEN + 10 + 1);
    assert_int_equal(n, akc_record_size(&rec));

    memset(&out, 0xff, sizeof(out));
    assert_int_equal(akc_record_decode(&out, buf, n), AKC_OK);
    t_record_equal(&rec, &out);

    assert_int_equal(out.created, 0);
    assert_int_equal(out.not_before, 0);
    assert_int_equal(out.expires, 0);
    assert_int_equal(out.flags, 0);
    assert_int_equal(out.subject.len, 0);
    assert_int_equal(out.scopes.len, 0);
    assert_int_equal(out.plan.len, 0);
    assert_int_equal(out.hint.len, 0);
}


/* rotation links: absent means the bytes of a record without them */

static void
record_links(void **state)
{
    int             n, m;
    akc_record_t    rec, out;
    unsigned char   buf[AKC_RECORD_MAX_LEN], plain[AKC_RECORD_MAX_LEN];

    t_record_sample(&rec);
    m = akc_record_encode(&rec, plain, sizeof(plain));
    assert_true(m > 0);

    rec.replaced_by = t_str("key-0002");
    n = akc_record_encode(&rec, buf, sizeof(buf));
    assert_int_equal(n, m + 4 + 8);
    assert_int_equal(n, akc_record_size(&rec));
    assert_memory_equal(buf, plain, m);
    assert_int_equal(akc_record_decode(&out, buf, n), AKC_OK);
    t_record_equal(&rec, &out);
    assert_int_equal(out.replaces.len, 0);

    rec.replaces = t_str("key-0000");
    rec.replaced_by = t_str("");
    n = akc_record_encode(&rec, buf, sizeof(buf));
    assert_int_equal(akc_record_decode(&out, buf, n), AKC_OK);
    t_record_equal(&rec, &out);

    /* a links section that links nothing, or is cut short, is corrupt */

    memcpy(buf, plain, m);
    memset(buf + m, 0, 4);
    assert_int_equal(t_decode_copy(buf, m + 4), AKC_ERROR);
    assert_int_equal(t_decode_copy(buf, m + 2), AKC_ERROR);
    assert_int_equal(t_decode_copy(buf, m + 1), AKC_ERROR);

    /* a link that is not an id */

    rec.replaces = t_str("bad id");
    assert_int_equal(akc_record_encode(&rec, buf, sizeof(buf)), AKC_ERROR);

    n = akc_record_encode(&rec, buf, 0);
    assert_int_equal(n, AKC_ERROR);
}


/* a retired key: a flag of the record, whatever its links */

static void
record_retired(void **state)
{
    int             n, n2;
    akc_record_t    rec, out;
    unsigned char   buf[AKC_RECORD_MAX_LEN];

    t_record_sample(&rec);
    rec.flags = AKC_FLAG_RETIRED;
    rec.expires = T_NOW + 3600;

    n = akc_record_encode(&rec, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(buf[1], AKC_FLAG_RETIRED);
    assert_int_equal(akc_record_decode(&out, buf, n), AKC_OK);
    t_record_equal(&rec, &out);
    assert_int_equal(out.flags, AKC_FLAG_RETIRED);
    assert_int_equal(out.replaced_by.len, 0);

    /* retired is no status of its own: the end decides */

    out.flags = 0;
    n2 = akc_record_status(&out, T_NOW);
    out.flags = AKC_FLAG_RETIRED;
    assert_int_equal(akc_record_status(&out, T_NOW), n2);
    assert_int_equal(akc_record_status(&out, T_NOW + 3600),
                     AKC_STATUS_EXPIRED);

    rec.flags = AKC_FLAG_RETIRED | AKC_FLAG_DISABLED;
    rec.replaced_by = t_str("key-0002");
    n = akc_record_encode(&rec, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(akc_record_decode(&out, buf, n), AKC_OK);
    t_record_equal(&rec, &out);
    assert_int_equal(akc_record_status(&out, T_NOW), AKC_STATUS_DISABLED);

    /* an unknown flag beside it is still refused, both ways */

    rec.flags = AKC_FLAG_RETIRED | 0x04;
    assert_int_equal(akc_record_encode(&rec, buf, sizeof(buf)), AKC_ERROR);

    rec.flags = AKC_FLAG_RETIRED;
    n = akc_record_encode(&rec, buf, sizeof(buf));
    buf[1] = AKC_FLAG_RETIRED | 0x04;
    assert_int_equal(t_decode_copy(buf, n), AKC_ERROR);
}


static void
record_roundtrip_max(void **state)
{
    int             n;
    size_t          i;
    char            id[AKC_ID_MAX_LEN], subject[AKC_SUBJECT_MAX_LEN];
    char            scopes[AKC_SCOPES_MAX_LEN], plan[AKC_PLAN_MAX_LEN];
    char            hint[AKC_HINT_MAX_LEN];
    char            old[AKC_ID_MAX_LEN], next[AKC_ID_MAX_LEN];
    akc_record_t    rec, out;
    unsigned char   buf[AKC_RECORD_MAX_LEN + 1];

    memset(id, 'i', sizeof(id));
    memset(old, 'o', sizeof(old));
    memset(next, 'n', sizeof(next));
    memset(plan, 'p', sizeof(plan));
    memset(hint, '.', sizeof(hint));

    for (i = 0; i < sizeof(subject); i++) {
        subject[i] = (char) (0x20 + i % 0x5f);
    }

    subject[0] = (char) 0xc3;
    subject[1] = (char) 0xa9;

    for (i = 0; i < sizeof(scopes); i++) {
        scopes[i] = (i % 4 == 2) ? ',' : 's';
    }

    memset(&rec, 0, sizeof(rec));
    rec.created = INT64_MAX;
    rec.not_before = -1;
    rec.expires = INT64_MIN;
    rec.flags = AKC_FLAG_DISABLED;
    rec.id.data = id;
    rec.id.len = sizeof(id);
    rec.subject.data = subject;
    rec.subject.len = sizeof(subject);
    rec.scopes.data = scopes;
    rec.scopes.len = sizeof(scopes);
    rec.plan.data = plan;
    rec.plan.len = sizeof(plan);
    rec.hint.data = hint;
    rec.hint.len = sizeof(hint);
    rec.replaces.data = old;
    rec.replaces.len = sizeof(old);
    rec.replaced_by.data = next;
    rec.replaced_by.len = sizeof(next);

    assert_int_equal(akc_record_size(&rec), AKC_RECORD_MAX_LEN);

    assert_int_equal(akc_record_encode(&rec, buf, AKC_RECORD_MAX_LEN - 1),
                     AKC_ERROR);

    n = akc_record_encode(&rec, buf, AKC_RECORD_MAX_LEN);
    assert_int_equal(n, AKC_RECORD_MAX_LEN);

    assert_int_equal(akc_record_decode(&out, buf, n), AKC_OK);
    t_record_equal(&rec, &out);

    /* one byte more than any record can be */

    buf[n] = 0;
    assert_int_equal(akc_record_decode(&out, buf, n + 1), AKC_ERROR);
}


static void
record_encode_invalid(void **state)
{
    char            big[AKC_SCOPES_MAX_LEN + 1];
    akc_record_t    rec, bad;
    unsigned char   buf[AKC_RECORD_MAX_LEN + 8];

    memset(big, 'a', sizeof(big));

    t_record_sample(&rec);

    /* exactly big enough, then one byte short */

    assert_int_equal(akc_record_encode(&rec, buf, akc_record_size(&rec)),
                     (int) akc_record_size(&rec));
    assert_int_equal(akc_record_encode(&rec, buf,
                                       akc_record_size(&rec) - 1),
                     AKC_ERROR);

    bad = rec;
    bad.id = t_str("");
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.id = t_str("key 1");
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.id.data = big;
    bad.id.len = AKC_ID_MAX_LEN + 1;
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.subject = t_str("line\nbreak");
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.subject.data = big;
    bad.subject.len = AKC_SUBJECT_MAX_LEN + 1;
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.scopes = t_str("a,,b");
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.scopes.data = big;
    bad.scopes.len = AKC_SCOPES_MAX_LEN + 1;
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.plan = t_str("gold plus");
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.plan.data = big;
    bad.plan.len = AKC_PLAN_MAX_LEN + 1;
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.hint = t_str("ak_\x1b[0m...");
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.hint.data = big;
    bad.hint.len = AKC_HINT_MAX_LEN + 1;
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.flags = 0x04;
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);

    bad = rec;
    bad.flags = 0x100 | AKC_FLAG_DISABLED;
    assert_int_equal(akc_record_encode(&bad, buf, sizeof(buf)), AKC_ERROR);
}


static void
record_decode_truncated(void **state)
{
    int             n, i;
    akc_record_t    rec;
    unsigned char   buf[AKC_RECORD_MAX_LEN];

    t_record_sample(&rec);
    n = akc_record_encode(&rec, buf, sizeof(buf));
    assert_true(n > 0);

    assert_int_equal(t_decode_copy(buf, n), AKC_OK);

    for (i = 0; i < n; i++) {
        assert_int_equal(t_decode_copy(buf, i), AKC_ERROR);
    }

    /* all strings empty: the truncations that end on a length field */

    memset(&rec, 0, sizeof(rec));
    rec.id = t_str("a");
    n = akc_record_encode(&rec, buf, sizeof(buf));

    for (i = 0; i < n; i++) {
        assert_int_equal(t_decode_copy(buf, i), AKC_ERROR);
    }
}


static void
record_decode_header(void **state)
{
    int             n;
    akc_record_t    rec, out;
    unsigned char   buf[AKC_RECORD_MAX_LEN + 1], b[AKC_RECORD_MAX_LEN];

    t_record_sample(&rec);
    n = akc_record_encode(&rec, buf, sizeof(buf));

    /* trailing garbage */

    buf[n] = 0;
    assert_int_equal(t_decode_copy(buf, n + 1), AKC_ERROR);
    buf[n] = 'x';
    assert_int_equal(t_decode_copy(buf, n + 1), AKC_ERROR);

    /* version */

    memcpy(b, buf, n);
    b[0] = 0;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[0] = 2;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[0] = 0xff;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);

    /* flags: the known bit decodes, any other does not */

    memcpy(b, buf, n);
    b[1] = AKC_FLAG_DISABLED;
    assert_int_equal(akc_record_decode(&out, b, n), AKC_OK);
    assert_int_equal(out.flags, AKC_FLAG_DISABLED);
    assert_int_equal(akc_record_status(&out, T_NOW), AKC_STATUS_DISABLED);

    b[1] = 0x04;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[1] = 0x04 | AKC_FLAG_RETIRED;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[1] = 0x80 | AKC_FLAG_DISABLED;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);

    /* reserved */

    memcpy(b, buf, n);
    b[2] = 1;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[2] = 0;
    b[3] = 0x80;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
}


static void
record_decode_fields(void **state)
{
    int             n, off;
    akc_record_t    rec;
    unsigned char   buf[AKC_RECORD_MAX_LEN], b[AKC_RECORD_MAX_LEN];

    t_record_sample(&rec);
    n = akc_record_encode(&rec, buf, sizeof(buf));

    /* the id length past the end, by one and by a lot */

    memcpy(b, buf, n);
    b[28] = 0xff;
    b[29] = 0xff;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);

    memcpy(b, buf, n);
    off = n - (int) rec.hint.len - 2;
    assert_int_equal(b[off], rec.hint.len);
    b[off]++;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);

    /* a shorter hint leaves a trailing byte */

    memcpy(b, buf, n);
    b[off]--;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);

    /* a control character in the subject */

    off = 28 + 2 + (int) rec.id.len + 2;
    assert_memory_equal(buf + off, "Acme", 4);

    memcpy(b, buf, n);
    b[off + 4] = '\n';
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[off + 4] = 0;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[off + 4] = 0x7f;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[off + 4] = 0xc3;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);

    /* UTF-8 in the subject, and bytes that are not UTF-8 */

    b[off + 3] = 0xc3;
    b[off + 4] = 0xa9;
    assert_int_equal(t_decode_copy(b, n), AKC_OK);
    b[off + 4] = 0x29;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[off + 3] = 0xc0;
    b[off + 4] = 0x80;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[off + 3] = 0xff;
    b[off + 4] = 'x';
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);

    /* an invalid id */

    memcpy(b, buf, n);
    b[30 + 3] = ' ';
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[30 + 3] = '/';
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
    b[30 + 3] = 0;
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);

    /* an invalid scope list and plan */

    off = 28 + 2 + (int) rec.id.len + 2 + (int) rec.subject.len + 2;
    assert_memory_equal(buf + off, "read,", 5);

    memcpy(b, buf, n);
    b[off + 5] = ',';
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);

    off += (int) rec.scopes.len + 2;
    assert_memory_equal(buf + off, "gold", 4);

    memcpy(b, buf, n);
    b[off] = ' ';
    assert_int_equal(t_decode_copy(b, n), AKC_ERROR);
}


static void
record_decode_empty_id(void **state)
{
    unsigned char  buf[AKC_RECORD_HEADER_LEN + 10];

    /* a well-formed record whose id is empty */

    memset(buf, 0, sizeof(buf));
    buf[0] = AKC_RECORD_VERSION;

    assert_int_equal(t_decode_copy(buf, sizeof(buf)), AKC_ERROR);
}


static void
record_decode_fuzz(void **state)
{
    int             n, i, k, ok;
    size_t          len, j, pos;
    akc_record_t    rec, out;
    unsigned char   base[AKC_RECORD_MAX_LEN], work[AKC_RECORD_MAX_LEN + 16];
    unsigned char  *copy, *again;
    const akc_str_t *s[5];

    t_record_sample(&rec);
    n = akc_record_encode(&rec, base, sizeof(base));
    assert_true(n > 0);

    ok = 0;

    for (i = 0; i < T_FUZZ_ROUNDS; i++) {
        memcpy(work, base, n);
        len = n;

        switch (t_rand() % 6) {

        case 0:
            /* one to four random bytes */
            for (k = 1 + t_rand() % 4; k > 0; k--) {
                work[t_rand() % len] = (unsigned char) t_rand();
            }
            break;

        case 1:
            /* a single bit */
            work[t_rand() % len] ^= (unsigned char) (1 << (t_rand() % 8));
            break;

        case 2:
            /* truncated, maybe also flipped */
            len = t_rand() % n;
            if (len && (t_rand() & 1)) {
                work[t_rand() % len] = (unsigned char) t_rand();
            }
            break;

        case 3:
            /* extended */
            for (k = 1 + t_rand() % 16; k > 0; k--) {
                work[len++] = (unsigned char) t_rand();
            }
            break;

        case 4:
            /* a small number written somewhere past the header */
            pos = AKC_RECORD_HEADER_LEN
                  + t_rand() % (len - AKC_RECORD_HEADER_LEN - 1);
            work[pos] = (unsigned char) (t_rand() % 64);
            work[pos + 1] = (unsigned char) (t_rand() % 3);
            break;

        default:
            /* a random suffix from a random point */
            for (pos = t_rand() % len; pos < len; pos++) {
                work[pos] = (unsigned char) t_rand();
            }
            break;
        }

        copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, work, len);

        if (akc_record_decode(&out, copy, len) == AKC_OK) {
            ok++;

            s[0] = &out.id;
            s[1] = &out.subject;
            s[2] = &out.scopes;
            s[3] = &out.plan;
            s[4] = &out.hint;

            for (k = 0; k < 5; k++) {
                assert_true((const unsigned char *) s[k]->data >= copy);
                assert_true(s[k]->len <= len);
                assert_true((const unsigned char *) s[k]->data + s[k]->len
                            <= copy + len);
            }

            assert_true(akc_id_valid(out.id.data, out.id.len));
            assert_true(out.subject.len <= AKC_SUBJECT_MAX_LEN);
            assert_true(out.hint.len <= AKC_HINT_MAX_LEN);
            assert_int_equal(out.flags & ~AKC_FLAGS, 0);

            /* whatever decodes encodes back to the same bytes */

            assert_int_equal(akc_record_size(&out), len);

            again = malloc(len);
            assert_non_null(again);
            assert_int_equal(akc_record_encode(&out, again, len), len);
            assert_memory_equal(again, copy, len);
            free(again);

            for (j = 0; j < 5; j++) {
                (void) akc_record_status(&out, (int64_t) t_rand());
            }
        }

        free(copy);
    }

    /* the loop did exercise both outcomes */

    assert_true(ok > 0);
    assert_true(ok < T_FUZZ_ROUNDS);
}


static void
record_status(void **state)
{
    akc_record_t  rec;

    t_record_sample(&rec);

    rec.not_before = 0;
    rec.expires = 0;
    assert_int_equal(akc_record_status(&rec, T_NOW), AKC_STATUS_VALID);
    assert_int_equal(akc_record_status(&rec, 0), AKC_STATUS_VALID);
    assert_int_equal(akc_record_status(&rec, INT64_MAX), AKC_STATUS_VALID);

    /* expires: valid until the second before */

    rec.expires = T_NOW;
    assert_int_equal(akc_record_status(&rec, T_NOW - 1), AKC_STATUS_VALID);
    assert_int_equal(akc_record_status(&rec, T_NOW), AKC_STATUS_EXPIRED);
    assert_int_equal(akc_record_status(&rec, T_NOW + 1),
                     AKC_STATUS_EXPIRED);

    /* not_before: valid from that second on */

    rec.expires = 0;
    rec.not_before = T_NOW;
    assert_int_equal(akc_record_status(&rec, T_NOW - 1),
                     AKC_STATUS_NOT_YET_VALID);
    assert_int_equal(akc_record_status(&rec, T_NOW), AKC_STATUS_VALID);

    /* a window */

    rec.not_before = T_NOW;
    rec.expires = T_NOW + 10;
    assert_int_equal(akc_record_status(&rec, T_NOW - 1),
                     AKC_STATUS_NOT_YET_VALID);
    assert_int_equal(akc_record_status(&rec, T_NOW + 9), AKC_STATUS_VALID);
    assert_int_equal(akc_record_status(&rec, T_NOW + 10),
                     AKC_STATUS_EXPIRED);

    /* disabled beats everything */

    rec.flags = AKC_FLAG_DISABLED;
    assert_int_equal(akc_record_status(&rec, T_NOW - 1),
                     AKC_STATUS_DISABLED);
    assert_int_equal(akc_record_status(&rec, T_NOW + 5),
                     AKC_STATUS_DISABLED);
    assert_int_equal(akc_record_status(&rec, T_NOW + 10),
                     AKC_STATUS_DISABLED);
}


static void
status_name(void **state)
{
    assert_string_equal(akc_status_name(AKC_STATUS_NONE), "");
    assert_string_equal(akc_status_name(AKC_STATUS_VALID), "valid");
    assert_string_equal(akc_status_name(AKC_STATUS_MISSING), "missing");
    assert_string_equal(akc_status_name(AKC_STATUS_MALFORMED), "malformed");
    assert_string_equal(akc_status_name(AKC_STATUS_UNKNOWN), "unknown");
    assert_string_equal(akc_status_name(AKC_STATUS_EXPIRED), "expired");
    assert_string_equal(akc_status_name(AKC_STATUS_NOT_YET_VALID),
                        "not_yet_valid");
    assert_string_equal(akc_status_name(AKC_STATUS_DISABLED), "disabled");
    assert_string_equal(akc_status_name(AKC_STATUS_FORBIDDEN), "forbidden");
    assert_string_equal(akc_status_name(AKC_STATUS_ERROR), "error");
    assert_string_equal(akc_status_name((akc_status_e) 42), "error");
}


/* times */

static void
time_parse_rfc3339(void **state)
{
    size_t   i;
    int64_t  t;

    static const struct {
        const char  *text;
        int64_t      value;
    } good[] = {
        { "1970-01-01T00:00:00Z", 0 },
        { "2027-01-31T00:00:00Z", 1801353600 },
        { "2027-01-31t00:00:00z", 1801353600 },
        { "2027-01-31 00:00:00Z", 1801353600 },
        { "2027-01-31T02:00:00+02:00", 1801353600 },
        { "2027-01-30T18:30:00-05:30", 1801353600 },
        { "2027-01-31T00:00:00+00:00", 1801353600 },
        { "2027-01-31T00:00:00.5Z", 1801353600 },
        { "2027-01-31T00:00:00.123456789Z", 1801353600 },
        { "2027-01-31T02:00:00.999+02:00", 1801353600 },
        { "2028-02-29T12:34:56Z", 1835440496 },
        { "2000-02-29T00:00:00Z", 951782400 },
        { "2027-01-31T00:00:01Z", 1801353601 },
        { "2026-12-31T23:59:59Z", 1798761599 },
        { "9999-12-31T23:59:59Z", 253402300799LL },
        { "9999-12-31T23:59:59+00:01", 253402300739LL },
    };

    static const char  *bad[] = {
        "",
        "2027-01-31",
        "2027-01-31T00:00:00",
        "2027-01-31T00:00Z",
        "2027-02-30T00:00:00Z",
        "2027-02-29T00:00:00Z",
        "2027-04-31T00:00:00Z",
        "2027-13-01T00:00:00Z",
        "2027-00-10T00:00:00Z",
        "2027-01-00T00:00:00Z",
        "2027-01-32T00:00:00Z",
        "2027-01-31T24:00:00Z",
        "2027-01-31T23:60:00Z",
        "2027-01-31T23:59:61Z",
        "1969-12-31T23:59:59Z",
        "2027-01-31X00:00:00Z",
        "2027/01/31T00:00:00Z",
        "2027-1-31T00:00:00ZZ",
        "2027-01-31T00:00:00Zx",
        "2027-01-31T00:00:00 Z",
        "2027-01-31T00:00:00+2:00",
        "2027-01-31T00:00:00+02:0",
        "2027-01-31T00:00:00+0200",
        "2027-01-31T00:00:00+24:00",
        "2027-01-31T00:00:00+02:60",
        "2027-01-31T00:00:00+02:00x",
        "2027-01-31T00:00:00.123",
        "2027-01-31T00:00:00.12a4Z",
        "2027-01-31T00:00:00UTC",
        "+027-01-31T00:00:00Z",
        "2027-01-31T0 :00:00Z",

        /* past 9999: RFC 3339 cannot show it */
        "10000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-00:01",
        "99999-12-31T23:59:59Z",
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        t = -42;
        assert_int_equal(akc_time_parse(good[i].text, strlen(good[i].text),
                                        T_NOW, &t),
                         AKC_OK);
        assert_int_equal(t, good[i].value);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = -42;
        if (akc_time_parse(bad[i], strlen(bad[i]), T_NOW, &t) != AKC_ERROR)
        {
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_int_equal(t, -42);
    }
}


static void
time_parse_duration(void **state)
{
    size_t   i;
    int64_t  t;

    static const struct {
        const char  *text;
        int64_t      value;
    } good[] = {
        { "now", T_NOW },
        { "0s", T_NOW },
        { "90s", T_NOW + 90 },
        { "15m", T_NOW + 15 * 60 },
        { "12h", T_NOW + 12 * 3600 },
        { "30d", T_NOW + 30 * 86400 },
        { "2w", T_NOW + 14 * 86400 },
        { "365d", T_NOW + 365 * 86400 },
        { "0030d", T_NOW + 30 * 86400 },
        { "99999999999s", T_NOW + 99999999999LL },
    };

    static const char  *bad[] = {
        "now ",
        "Now",
        "nowx",
        "d",
        "30",
        "30x",
        "30y",
        "30D",
        "30 d",
        " 30d",
        "-5d",
        "+5d",
        "3.5d",
        "1h30m",
        "abc",
        "999999999999s",

        /* past 9999-12-31T23:59:59Z */
        "3000000d",
        "99999999999w",
        "99999999999d",
        "99999999999h",
        "253402300800s",
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        t = -42;
        assert_int_equal(akc_time_parse(good[i].text, strlen(good[i].text),
                                        T_NOW, &t),
                         AKC_OK);
        assert_int_equal(t, good[i].value);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = -42;
        if (akc_time_parse(bad[i], strlen(bad[i]), T_NOW, &t) != AKC_ERROR)
        {
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_int_equal(t, -42);
    }
}


static void
time_format(void **state)
{
    int      i;
    char     buf[AKC_TIME_LEN + 1];
    int64_t  t, parsed;

    static const int64_t  times[] = {
        0, 1, 951782400, 1700000000, 1801353600, 1835440496,
        4102444799, 253402300799LL
    };

    assert_int_equal(akc_time_format(0, buf), AKC_TIME_LEN);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");

    assert_int_equal(akc_time_format(1801353600, buf), AKC_TIME_LEN);
    assert_string_equal(buf, "2027-01-31T00:00:00Z");

    assert_int_equal(akc_time_format(1835440496, buf), AKC_TIME_LEN);
    assert_string_equal(buf, "2028-02-29T12:34:56Z");

    assert_int_equal(akc_time_format(253402300799LL, buf), AKC_TIME_LEN);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");

    /* a time that does not fit leaves an empty string */

    memset(buf, 'x', sizeof(buf));
    assert_int_equal(akc_time_format(253402300800LL, buf), 0);
    assert_string_equal(buf, "");

    memset(buf, 'x', sizeof(buf));
    assert_int_equal(akc_time_format(INT64_MAX, buf), 0);
    assert_string_equal(buf, "");

    /* a duration cannot reach that far: the last one that can */

    assert_int_equal(akc_time_parse("3000000d", 8, T_NOW, &t), AKC_ERROR);
    assert_int_equal(akc_time_parse("2913221d", 8, T_NOW, &t), AKC_OK);
    assert_int_equal(akc_time_format(t, buf), AKC_TIME_LEN);
    assert_int_equal(akc_time_parse("2913222d", 8, T_NOW, &t), AKC_ERROR);
    assert_int_equal(akc_time_parse("999999d", 7, 253402300799LL, &t),
                     AKC_ERROR);
    assert_int_equal(akc_time_parse("0s", 2, 253402300799LL, &t), AKC_OK);
    assert_int_equal(akc_time_parse("1s", 2, 253402300799LL, &t), AKC_ERROR);
    assert_int_equal(akc_time_parse("1s", 2, INT64_MAX, &t), AKC_ERROR);

    for (i = 0; i < (int) (sizeof(times) / sizeof(times[0])); i++) {
        assert_int_equal(akc_time_format(times[i], buf), AKC_TIME_LEN);
        assert_int_equal(akc_time_parse(buf, AKC_TIME_LEN, T_NOW, &parsed),
                         AKC_OK);
        assert_int_equal(parsed, times[i]);
    }

    for (i = 0; i < 1000; i++) {
        t = (int64_t) (t_rand() % 253402300800ULL);
        assert_int_equal(akc_time_format(t, buf), AKC_TIME_LEN);
        assert_int_equal(akc_time_parse(buf, AKC_TIME_LEN, T_NOW, &parsed),
                         AKC_OK);
        assert_int_equal(parsed, t);
    }
}


/* validators */

static void
id_valid(void **state)
{
    char  buf[AKC_ID_MAX_LEN + 1];

    memset(buf, 'x', sizeof(buf));

    assert_true(akc_id_valid("a", 1));
    assert_true(akc_id_valid("key-0001", 8));
    assert_true(akc_id_valid("user@example.com", 16));
    assert_true(akc_id_valid("A.b_c:d-e@9", 11));
    assert_true(akc_id_valid(buf, AKC_ID_MAX_LEN));

    assert_false(akc_id_valid("", 0));
    assert_false(akc_id_valid(buf, AKC_ID_MAX_LEN + 1));
    assert_false(akc_id_valid("a b", 3));
    assert_false(akc_id_valid("a/b", 3));
    assert_false(akc_id_valid("a,b", 3));
    assert_false(akc_id_valid("a*b", 3));
    assert_false(akc_id_valid("a\0b", 3));
    assert_false(akc_id_valid("a\nb", 3));
    assert_false(akc_id_valid("caf\xc3\xa9", 5));
}


static void
scopes_valid(void **state)
{
    size_t  i;
    char    buf[AKC_SCOPES_MAX_LEN + 1];

    assert_true(akc_scopes_valid("", 0));
    assert_true(akc_scopes_valid("read", 4));
    assert_true(akc_scopes_valid("read,write", 10));
    assert_true(akc_scopes_valid("api:read,files/*,a.b_c-d", 24));
    assert_true(akc_scopes_valid("*", 1));

    assert_false(akc_scopes_valid("a,,b", 4));
    assert_false(akc_scopes_valid("a,", 2));
    assert_false(akc_scopes_valid(",a", 2));
    assert_false(akc_scopes_valid(",", 1));
    assert_false(akc_scopes_valid("a b", 3));
    assert_false(akc_scopes_valid("a;b", 3));
    assert_false(akc_scopes_valid("a@b", 3));
    assert_false(akc_scopes_valid("a\0", 2));
    assert_false(akc_scopes_valid("a\n", 2));

    for (i = 0; i < sizeof(buf); i++) {
        buf[i] = (i % 2) ? ',' : 's';
    }

    /* 1023 is "s,s,...,s" */

    assert_true(akc_scopes_valid(buf, AKC_SCOPES_MAX_LEN - 1));
    buf[AKC_SCOPES_MAX_LEN - 1] = 's';
    assert_true(akc_scopes_valid(buf, AKC_SCOPES_MAX_LEN));
    buf[AKC_SCOPES_MAX_LEN] = 's';
    assert_false(akc_scopes_valid(buf, AKC_SCOPES_MAX_LEN + 1));
}


static void
plan_valid(void **state)
{
    char  buf[AKC_PLAN_MAX_LEN + 1];

    memset(buf, 'p', sizeof(buf));

    assert_true(akc_plan_valid("", 0));
    assert_true(akc_plan_valid("gold", 4));
    assert_true(akc_plan_valid("Tier-1.a_b:c", 12));
    assert_true(akc_plan_valid(buf, AKC_PLAN_MAX_LEN));

    assert_false(akc_plan_valid(buf, AKC_PLAN_MAX_LEN + 1));
    assert_false(akc_plan_valid("gold plus", 9));
    assert_false(akc_plan_valid("a/b", 3));
    assert_false(akc_plan_valid("a,b", 3));
    assert_false(akc_plan_valid("a*", 2));
    assert_false(akc_plan_valid("a@b", 3));
    assert_false(akc_plan_valid("a\0", 2));
}


static void
text_valid(void **state)
{
    char  buf[AKC_SUBJECT_MAX_LEN + 1];

    memset(buf, 'x', sizeof(buf));

    assert_true(akc_text_valid("", 0, 10));
    assert_true(akc_text_valid("Acme Corp. <ops@acme.example>", 29, 256));
    assert_true(akc_text_valid("caf\xc3\xa9 \xe2\x82\xac", 9, 256));
    assert_true(akc_text_valid("~!\"#$%&'()*+,-./", 16, 256));
    assert_true(akc_text_valid(buf, AKC_SUBJECT_MAX_LEN,
                               AKC_SUBJECT_MAX_LEN));

    assert_false(akc_text_valid(buf, AKC_SUBJECT_MAX_LEN + 1,
                                AKC_SUBJECT_MAX_LEN));
    assert_false(akc_text_valid("abc", 3, 2));
    assert_false(akc_text_valid("a\nb", 3, 256));
    assert_false(akc_text_valid("a\rb", 3, 256));
    assert_false(akc_text_valid("a\tb", 3, 256));
    assert_false(akc_text_valid("a\0b", 3, 256));
    assert_false(akc_text_valid("a\x1b" "b", 3, 256));
    assert_false(akc_text_valid("a\x7f" "b", 3, 256));

    /* UTF-8 only: what is not would be lost in JSON */

    assert_true(akc_text_valid("\xc2\xa0", 2, 256));
    assert_true(akc_text_valid("\xdf\xbf", 2, 256));
    assert_true(akc_text_valid("\xe0\xa0\x80", 3, 256));
    assert_true(akc_text_valid("\xed\x9f\xbf", 3, 256));
    assert_true(akc_text_valid("\xee\x80\x80", 3, 256));
    assert_true(akc_text_valid("\xef\xbf\xbd", 3, 256));
    assert_true(akc_text_valid("\xf0\x90\x80\x80", 4, 256));
    assert_true(akc_text_valid("\xf0\x9f\x94\x91 key", 8, 256));
    assert_true(akc_text_valid("\xf4\x8f\xbf\xbf", 4, 256));

    assert_false(akc_text_valid("caf\xe9", 4, 256));
    assert_false(akc_text_valid("\xc3", 1, 256));
    assert_false(akc_text_valid("\xc3x", 2, 256));
    assert_false(akc_text_valid("\xa9", 1, 256));
    assert_false(akc_text_valid("\xc0\x80", 2, 256));
    assert_false(akc_text_valid("\xc1\xbf", 2, 256));
    assert_false(akc_text_valid("\xe0\x80\x80", 3, 256));
    assert_false(akc_text_valid("\xe0\x9f\xbf", 3, 256));
    assert_false(akc_text_valid("\xed\xa0\x80", 3, 256));
    assert_false(akc_text_valid("\xed\xbf\xbf", 3, 256));
    assert_false(akc_text_valid("\xe2\x82", 2, 256));
    assert_false(akc_text_valid("\xf0\x80\x80\x80", 4, 256));
    assert_false(akc_text_valid("\xf0\x8f\xbf\xbf", 4, 256));
    assert_false(akc_text_valid("\xf4\x90\x80\x80", 4, 256));
    assert_false(akc_text_valid("\xf5\x80\x80\x80", 4, 256));
    assert_false(akc_text_valid("\xf8\x88\x80\x80\x80", 5, 256));
    assert_false(akc_text_valid("\xff", 1, 256));
    assert_false(akc_text_valid("\xfe", 1, 256));
    assert_false(akc_text_valid("ab\xf0\x9f\x94", 5, 256));

    /* C1 control characters, U+0080 to U+009F */

    assert_false(akc_text_valid("\xc2\x80", 2, 256));
    assert_false(akc_text_valid("\xc2\x9b[0m", 5, 256));
    assert_false(akc_text_valid("\xc2\x9f", 2, 256));
}


static void
scopes_contain(void **state)
{
    akc_str_t  s;

    s = t_str("reader,write");
    assert_false(akc_scopes_contain(&s, "read", 4));
    assert_true(akc_scopes_contain(&s, "reader", 6));
    assert_true(akc_scopes_contain(&s, "write", 5));
    assert_false(akc_scopes_contain(&s, "writ", 4));
    assert_false(akc_scopes_contain(&s, "ader", 4));
    assert_false(akc_scopes_contain(&s, "reader,write", 12));
    assert_false(akc_scopes_contain(&s, "er,wr", 5));
    assert_false(akc_scopes_contain(&s, "", 0));

    s = t_str("read");
    assert_true(akc_scopes_contain(&s, "read", 4));
    assert_false(akc_scopes_contain(&s, "reads", 5));
    assert_false(akc_scopes_contain(&s, "rea", 3));

    s = t_str("write,read");
    assert_true(akc_scopes_contain(&s, "read", 4));
    assert_true(akc_scopes_contain(&s, "write", 5));

    s = t_str("a,b,c");
    assert_true(akc_scopes_contain(&s, "a", 1));
    assert_true(akc_scopes_contain(&s, "b", 1));
    assert_true(akc_scopes_contain(&s, "c", 1));
    assert_false(akc_scopes_contain(&s, "a,b", 3));

    s = t_str("");
    assert_false(akc_scopes_contain(&s, "read", 4));
    assert_false(akc_scopes_contain(&s, "", 0));

    s.data = NULL;
    s.len = 0;
    assert_false(akc_scopes_contain(&s, "read", 4));
}


/* the database */

static int
t_db_setup(void **state)
{
    t_db_t  *db;

    db = calloc(1, sizeof(t_db_t));
    if (db == NULL) {
        return -1;
    }

    snprintf(db->dir, sizeof(db->dir), "/tmp/akc_db.XXXXXX");

    if (mkdtemp(db->dir) == NULL
        || mdb_env_create(&db->env) != MDB_SUCCESS
        || mdb_env_set_maxdbs(db->env, AKC_MAXDBS) != MDB_SUCCESS
        || mdb_env_set_mapsize(db->env, (size_t) 1 << 22) != MDB_SUCCESS
        || mdb_env_open(db->env, db->dir, MDB_NOSYNC, 0600) != MDB_SUCCESS)
    {
        free(db);
        return -1;
    }

    *state = db;

    return 0;
}


static int
t_db_teardown(void **state)
{
    char     path[128];
    t_db_t  *db;

    db = *state;

    mdb_env_close(db->env);

    snprintf(path, sizeof(path), "%s/" AKC_DATA_FILE, db->dir);
    (void) unlink(path);
    snprintf(path, sizeof(path), "%s/" AKC_LOCK_FILE, db->dir);
    (void) unlink(path);

    if (rmdir(db->dir) == -1) {
        return -1;
    }

    free(db);

    return 0;
}


static void
t_db_init(MDB_env *env, const akc_secret_t *secret, akc_dbs_t *dbs)
{
    MDB_txn  *txn;

    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), MDB_SUCCESS);
    assert_int_equal(akc_dbs_open(txn, dbs, MDB_CREATE), MDB_SUCCESS);
    assert_int_equal(akc_meta_init(txn, dbs, secret, T_NOW), MDB_SUCCESS);
    assert_int_equal(mdb_txn_commit(txn), MDB_SUCCESS);
}


static void
t_db_put_key(MDB_env *env, const akc_dbs_t *dbs, const akc_secret_t *secret,
    const char *key, const akc_record_t *rec)
{
    int             n;
    MDB_val         k, v;
    MDB_txn        *txn;
    unsigned char   hash[AKC_HASH_LEN], buf[AKC_RECORD_MAX_LEN];

    n = akc_record_encode(rec, buf, sizeof(buf));
    assert_true(n > 0);

    akc_hash(secret, (const unsigned char *) key, strlen(key), hash);

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = hash;
    v.mv_size = n;
    v.mv_data = buf;

    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), MDB_SUCCESS);
    assert_int_equal(mdb_put(txn, dbs->keys, &k, &v, 0), MDB_SUCCESS);
    assert_int_equal(mdb_txn_commit(txn), MDB_SUCCESS);
}


static void
db_meta_init(void **state)
{
    t_db_t        *db;
    MDB_txn       *txn;
    uint64_t       value;
    akc_dbs_t      dbs;
    MDB_envinfo    info;
    akc_secret_t   secret, other;

    db = *state;
    t_secret_seq(&secret);

    /* a fresh environment has no sub-databases */

    assert_int_equal(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn),
                     MDB_SUCCESS);
    assert_int_equal(akc_dbs_open(txn, &dbs, 0), MDB_NOTFOUND);
    mdb_txn_abort(txn);

    assert_int_equal(mdb_txn_begin(db->env, NULL, 0, &txn), MDB_SUCCESS);
    assert_int_equal(akc_dbs_open(txn, &dbs, MDB_CREATE), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_EUNINIT);
    assert_int_equal(akc_meta_init(txn, &dbs, &secret, T_NOW), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_OK);
    assert_int_equal(mdb_txn_commit(txn), MDB_SUCCESS);

    /* as a reader sees it */

    assert_int_equal(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn),
                     MDB_SUCCESS);
    assert_int_equal(akc_dbs_open(txn, &dbs, 0), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_OK);

    other = secret;
    other.bytes[0] ^= 1;
    akc_secret_prepare(&other);
    assert_int_equal(akc_meta_check(txn, &dbs, &other), AKC_ESECRET);

    assert_int_equal(akc_meta_get_u64(txn, &dbs, AKC_META_FORMAT, &value),
                     MDB_SUCCESS);
    assert_int_equal(value, AKC_FORMAT_VERSION);
    assert_int_equal(akc_meta_get_u64(txn, &dbs, AKC_META_GENERATION,
                                      &value),
                     MDB_SUCCESS);
    assert_int_equal(value, 1);
    assert_int_equal(akc_meta_get_u64(txn, &dbs, AKC_META_CHANGED, &value),
                     MDB_SUCCESS);
    assert_int_equal(value, T_NOW);

    assert_int_equal(mdb_env_info(db->env, &info), MDB_SUCCESS);
    assert_int_equal(akc_meta_get_u64(txn, &dbs, AKC_META_MAPSIZE, &value),
                     MDB_SUCCESS);
    assert_int_equal(value, info.me_mapsize);
    assert_int_equal(value, (size_t) 1 << 22);

    /* the fingerprint is 32 bytes; an unknown name is not found */

    assert_int_equal(akc_meta_get_u64(txn, &dbs, AKC_META_FINGERPRINT,
                                      &value),
                     MDB_CORRUPTED);
    assert_int_equal(akc_meta_get_u64(txn, &dbs, "nonexistent", &value),
                     MDB_NOTFOUND);

    mdb_txn_abort(txn);
}


static void
db_meta_uninit(void **state)
{
    t_db_t         *db;
    MDB_val         k, v;
    MDB_txn        *txn;
    akc_dbs_t       dbs;
    akc_secret_t    secret;
    unsigned char   current[8] = { AKC_FORMAT_VERSION, 0, 0, 0, 0, 0, 0, 0 };

    db = *state;
    t_secret_seq(&secret);

    assert_int_equal(mdb_txn_begin(db->env, NULL, 0, &txn), MDB_SUCCESS);
    assert_int_equal(akc_dbs_open(txn, &dbs, MDB_CREATE), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_EUNINIT);

    /* a format without a fingerprint is still not initialized */

    k.mv_size = strlen(AKC_META_FORMAT);
    k.mv_data = AKC_META_FORMAT;
    v.mv_size = 8;
    v.mv_data = current;
    assert_int_equal(mdb_put(txn, dbs.meta, &k, &v, 0), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_EUNINIT);

    mdb_txn_abort(txn);
}


static void
db_meta_format(void **state)
{
    t_db_t         *db;
    MDB_val         k, v;
    MDB_txn        *txn;
    akc_dbs_t       dbs;
    akc_secret_t    secret;
    unsigned char   one[8] = { 1, 0, 0, 0, 0, 0, 0, 0 };
    unsigned char   three[8] = { 3, 0, 0, 0, 0, 0, 0, 0 };
    unsigned char   big[8] = { 2, 0, 0, 0, 0, 0, 0, 1 };

    db = *state;
    t_secret_seq(&secret);
    t_db_init(db->env, &secret, &dbs);

    assert_int_equal(mdb_txn_begin(db->env, NULL, 0, &txn), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_OK);

    k.mv_size = strlen(AKC_META_FORMAT);
    k.mv_data = AKC_META_FORMAT;

    v.mv_size = 8;
    v.mv_data = three;
    assert_int_equal(mdb_put(txn, dbs.meta, &k, &v, 0), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_EFORMAT);

    /* format 1 hashed keys another way: told apart, to say what to do */

    v.mv_data = one;
    assert_int_equal(mdb_put(txn, dbs.meta, &k, &v, 0), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_EOLDFORMAT);

    v.mv_data = big;
    assert_int_equal(mdb_put(txn, dbs.meta, &k, &v, 0), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_EFORMAT);

    /* 2, but not as 8 bytes */

    v.mv_size = 4;
    v.mv_data = big;
    assert_int_equal(mdb_put(txn, dbs.meta, &k, &v, 0), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_EFORMAT);

    /* back to 2; then a truncated fingerprint */

    v.mv_size = 8;
    v.mv_data = big;
    big[7] = 0;
    assert_int_equal(mdb_put(txn, dbs.meta, &k, &v, 0), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_OK);

    k.mv_size = strlen(AKC_META_FINGERPRINT);
    k.mv_data = AKC_META_FINGERPRINT;
    v.mv_size = 8;
    assert_int_equal(mdb_put(txn, dbs.meta, &k, &v, 0), MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_ESECRET);

    mdb_txn_abort(txn);
}


static void
db_meta_touch(void **state)
{
    int            i;
    t_db_t        *db;
    MDB_txn       *txn;
    uint64_t       value;
    akc_dbs_t      dbs;
    akc_secret_t   secret;

    db = *state;
    t_secret_seq(&secret);
    t_db_init(db->env, &secret, &dbs);

    for (i = 2; i <= 4; i++) {
        assert_int_equal(mdb_txn_begin(db->env, NULL, 0, &txn), MDB_SUCCESS);
        assert_int_equal(akc_meta_touch(txn, &dbs, T_NOW + i), MDB_SUCCESS);
        assert_int_equal(mdb_txn_commit(txn), MDB_SUCCESS);

        assert_int_equal(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn),
                         MDB_SUCCESS);
        assert_int_equal(akc_meta_get_u64(txn, &dbs, AKC_META_GENERATION,
                                          &value),
                         MDB_SUCCESS);
        assert_int_equal(value, i);
        assert_int_equal(akc_meta_get_u64(txn, &dbs, AKC_META_CHANGED,
                                          &value),
                         MDB_SUCCESS);
        assert_int_equal(value, T_NOW + i);
        assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_OK);
        mdb_txn_abort(txn);
    }

    /* an aborted write does not count */

    assert_int_equal(mdb_txn_begin(db->env, NULL, 0, &txn), MDB_SUCCESS);
    assert_int_equal(akc_meta_touch(txn, &dbs, T_NOW + 100), MDB_SUCCESS);
    mdb_txn_abort(txn);

    assert_int_equal(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn),
                     MDB_SUCCESS);
    assert_int_equal(akc_meta_get_u64(txn, &dbs, AKC_META_GENERATION,
                                      &value),
                     MDB_SUCCESS);
    assert_int_equal(value, 4);
    mdb_txn_abort(txn);
}


static void
meta_strerror(void **state)
{
    assert_string_equal(akc_meta_strerror(AKC_EUNINIT),
                        "database is not initialized "
                        "(run \"apikeyctl init\")");
    assert_string_equal(akc_meta_strerror(AKC_EFORMAT),
                        "database has an unknown format version");
    assert_string_equal(akc_meta_strerror(AKC_ESECRET),
                        "database was made with another secret");
    assert_string_equal(akc_meta_strerror(MDB_NOTFOUND),
                        mdb_strerror(MDB_NOTFOUND));
    assert_string_equal(akc_meta_strerror(MDB_CORRUPTED),
                        mdb_strerror(MDB_CORRUPTED));
}


static void
db_check_key(void **state)
{
    int             rc;
    char            valid[AKC_GEN_KEY_MAX_LEN + 1];
    char            expired[AKC_GEN_KEY_MAX_LEN + 1];
    char            disabled[AKC_GEN_KEY_MAX_LEN + 1];
    char            early[AKC_GEN_KEY_MAX_LEN + 1];
    char            unknown[AKC_GEN_KEY_MAX_LEN + 1];
    char            corrupt[AKC_GEN_KEY_MAX_LEN + 1];
    char            other[AKC_GEN_KEY_MAX_LEN + 1];
    t_db_t         *db;
    MDB_val         k, v;
    MDB_txn        *txn;
    akc_dbs_t       dbs;
    akc_record_t    rec, out;
    akc_secret_t    secret, secret2;
    unsigned char   hash[AKC_HASH_LEN];
    const char     *plain;

    db = *state;
    t_secret_seq(&secret);
    t_db_init(db->env, &secret, &dbs);

    assert_int_equal(akc_key_generate("ak", valid, sizeof(valid)), 41);
    assert_int_equal(akc_key_generate("ak", expired, sizeof(expired)), 41);
    assert_int_equal(akc_key_generate("ak", disabled, sizeof(disabled)), 41);
    assert_int_equal(akc_key_generate("ak", early, sizeof(early)), 41);
    assert_int_equal(akc_key_generate("ak", unknown, sizeof(unknown)), 41);
    assert_int_equal(akc_key_generate("ak", corrupt, sizeof(corrupt)), 41);
    assert_int_equal(akc_key_generate("ak", other, sizeof(other)), 41);
    plain = "imported-legacy-key!";

    t_record_sample(&rec);
    rec.not_before = 0;
    rec.expires = T_NOW + 1;
    rec.id = t_str("valid");
    t_db_put_key(db->env, &dbs, &secret, valid, &rec);

    rec.id = t_str("plain");
    rec.expires = 0;
    t_db_put_key(db->env, &dbs, &secret, plain, &rec);

    rec.id = t_str("expired");
    rec.expires = T_NOW;
    t_db_put_key(db->env, &dbs, &secret, expired, &rec);

    rec.id = t_str("disabled");
    rec.expires = 0;
    rec.flags = AKC_FLAG_DISABLED;
    t_db_put_key(db->env, &dbs, &secret, disabled, &rec);

    rec.id = t_str("early");
    rec.flags = 0;
    rec.not_before = T_NOW + 1;
    t_db_put_key(db->env, &dbs, &secret, early, &rec);

    /* stored under another secret's hash */

    rec.id = t_str("other");
    rec.not_before = 0;
    secret2 = secret;
    secret2.bytes[31] ^= 1;
    akc_secret_prepare(&secret2);
    t_db_put_key(db->env, &dbs, &secret2, other, &rec);

    /* a record that does not decode */

    akc_hash(&secret, (unsigned char *) corrupt, 41, hash);
    k.mv_size = AKC_HASH_LEN;
    k.mv_data = hash;
    v.mv_size = 5;
    v.mv_data = "\x01\x00\x00\x00\x00";

    assert_int_equal(mdb_txn_begin(db->env, NULL, 0, &txn), MDB_SUCCESS);
    assert_int_equal(mdb_put(txn, dbs.keys, &k, &v, 0), MDB_SUCCESS);
    assert_int_equal(mdb_txn_commit(txn), MDB_SUCCESS);

    assert_int_equal(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn),
                     MDB_SUCCESS);
    assert_int_equal(akc_meta_check(txn, &dbs, &secret), AKC_OK);

    rc = -1;
    memset(&out, 0, sizeof(out));
    assert_int_equal(akc_check_key(txn, &dbs, &secret, (unsigned char *) valid,
                                   41, T_NOW, &out, &rc),
                     AKC_STATUS_VALID);
    assert_int_equal(rc, MDB_SUCCESS);
    assert_int_equal(out.id.len, 5);
    assert_memory_equal(out.id.data, "valid", 5);
    assert_int_equal(out.expires, T_NOW + 1);
    assert_int_equal(out.scopes.len, 18);
    assert_memory_equal(out.scopes.data, "read,write,admin:*", 18);

    /* the same key one second later */

    assert_int_equal(akc_check_key(txn, &dbs, &secret, (unsigned char *) valid,
                                   41, T_NOW + 1, &out, &rc),
                     AKC_STATUS_EXPIRED);

    assert_int_equal(akc_check_key(txn, &dbs, &secret, (unsigned char *) plain,
                                   strlen(plain), T_NOW, &out, &rc),
                     AKC_STATUS_VALID);
    assert_memory_equal(out.id.data, "plain", 5);

    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) expired, 41, T_NOW,
                                   &out, &rc),
                     AKC_STATUS_EXPIRED);
    assert_memory_equal(out.id.data, "expired", 7);

    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) disabled, 41, T_NOW,
                                   &out, &rc),
                     AKC_STATUS_DISABLED);

    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) early, 41, T_NOW,
                                   &out, &rc),
                     AKC_STATUS_NOT_YET_VALID);
    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) early, 41, T_NOW + 1,
                                   &out, &rc),
                     AKC_STATUS_VALID);

    rc = -1;
    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) unknown, 41, T_NOW,
                                   &out, &rc),
                     AKC_STATUS_UNKNOWN);
    assert_int_equal(rc, MDB_SUCCESS);

    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) other, 41, T_NOW,
                                   &out, &rc),
                     AKC_STATUS_UNKNOWN);
    assert_int_equal(akc_check_key(txn, &dbs, &secret2,
                                   (unsigned char *) other, 41, T_NOW,
                                   &out, &rc),
                     AKC_STATUS_VALID);
    assert_int_equal(akc_check_key(txn, &dbs, &secret2,
                                   (unsigned char *) valid, 41, T_NOW,
                                   &out, &rc),
                     AKC_STATUS_UNKNOWN);

    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) "ak_live_unknown", 15,
                                   T_NOW, &out, &rc),
                     AKC_STATUS_UNKNOWN);

    /* malformed: a typo, too short, a space */

    valid[20] = (valid[20] == 'x') ? 'y' : 'x';
    rc = -1;
    assert_int_equal(akc_check_key(txn, &dbs, &secret, (unsigned char *) valid,
                                   41, T_NOW, &out, &rc),
                     AKC_STATUS_MALFORMED);
    assert_int_equal(rc, MDB_SUCCESS);

    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) "short", 5, T_NOW,
                                   &out, &rc),
                     AKC_STATUS_MALFORMED);
    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) "has a space", 11,
                                   T_NOW, &out, &rc),
                     AKC_STATUS_MALFORMED);
    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) "", 0, T_NOW,
                                   &out, &rc),
                     AKC_STATUS_MALFORMED);

    /* the corrupt record */

    rc = -1;
    assert_int_equal(akc_check_key(txn, &dbs, &secret,
                                   (unsigned char *) corrupt, 41, T_NOW,
                                   &out, &rc),
                     AKC_STATUS_ERROR);
    assert_int_equal(rc, MDB_CORRUPTED);

    mdb_txn_abort(txn);
}


/*
 * every field "name" of in, from the start, as "start,end=value;" in out:
 * the cookie parser when cookie is set, the query one otherwise
 */

static void
t_fields(int cookie, const char *in, const char *name, char *out)
{
    int          rc;
    size_t       pos, n, last;
    akc_field_t  f;

    pos = 0;
    n = 0;
    out[0] = '\0';

    for ( ;; ) {
        last = pos;

        if (cookie) {
            rc = akc_cookie_next((const unsigned char *) in, strlen(in), &pos,
                                 name, strlen(name), &f);
        } else {
            rc = akc_query_next((const unsigned char *) in, strlen(in), &pos,
                                name, strlen(name), &f);
        }

        if (rc == 0) {
            assert_int_equal(pos, strlen(in));
            break;
        }

        assert_int_equal(rc, 1);

        /* the field and its value lie inside the input, after *pos */

        assert_true(f.start >= last);
        assert_true(f.start <= f.end && f.end <= strlen(in));
        assert_true(f.value.data >= in + f.start);
        assert_true(f.value.data + f.value.len <= in + f.end);
        assert_true(pos > f.start);

        n += snprintf(out + n, 256 - n, "%zu,%zu=%.*s;", f.start, f.end,
                      (int) f.value.len, f.value.data);
        assert_true(n < 256);
    }
}


static void
query_next(void **state)
{
    char         out[256];
    size_t       i, pos;
    akc_field_t  f;

    static const char  *cases[][3] = {
        { "", "k", "" },
        { "k=1", "k", "0,3=1;" },
        { "k", "k", "0,1=;" },
        { "k=", "k", "0,2=;" },
        { "k&a=1", "k", "0,1=;" },
        { "a=1&k", "k", "4,5=;" },
        { "a=1&k=", "k", "4,6=;" },
        { "k=1&", "k", "0,3=1;" },
        { "&k=1", "k", "1,4=1;" },
        { "a=1&&k=2&&", "k", "5,8=2;" },
        { "&&&", "k", "" },
        { "&", "k", "" },
        { "=", "k", "" },
        { "=k", "k", "" },

        /* names that are prefixes of each other */
        { "key=1&k=2", "k", "6,9=2;" },
        { "k=1&key=2", "key", "4,9=2;" },
        { "kk=1&k1=2&ke=3&_k=4", "k", "" },
        { "key", "k", "" },
        { "k", "key", "" },

        /* the value is raw, up to the next "&" */
        { "k=a=b", "k", "0,5=a=b;" },
        { "k=%2B+x", "k", "0,7=%2B+x;" },
        { "a=k&b=k=1", "k", "" },
        { "k=;k", "k", "0,4=;k;" },

        /* names without regard to case, each copy reported */
        { "K=1", "k", "0,3=1;" },
        { "api_key=A&API_KEY=B", "api_key", "0,9=A;10,19=B;" },
        { "Api_Key=A", "API_KEY", "0,9=A;" },
        { "k=1&k=2&k", "k", "0,3=1;4,7=2;8,9=;" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        t_fields(0, cases[i][0], cases[i][1], out);
        assert_string_equal(out, cases[i][2]);
    }

    /* from the middle, and past the end */

    pos = 4;
    assert_int_equal(akc_query_next((const unsigned char *) "k=1&k=2", 7,
                                    &pos, "k", 1, &f), 1);
    assert_int_equal(f.start, 4);

    pos = 7;
    assert_int_equal(akc_query_next((const unsigned char *) "k=1&k=2", 7,
                                    &pos, "k", 1, &f), 0);
    assert_int_equal(pos, 7);

    /* the length bounds the search: no read past it */

    pos = 0;
    assert_int_equal(akc_query_next((const unsigned char *) "a=1&k=2", 3,
                                    &pos, "k", 1, &f), 0);
}


static void
cookie_next(void **state)
{
    char    out[256];
    size_t  i;

    static const char  *cases[][3] = {
        { "", "k", "" },
        { "k=1", "k", "0,3=1;" },
        { "k=", "k", "0,2=;" },
        { "a=1; k=2", "k", "5,8=2;" },
        { "a=1;k=2", "k", "4,7=2;" },
        { "a=1;\tk=2", "k", "5,8=2;" },
        { "a=1;;k=2", "k", "5,8=2;" },
        { "  k=1", "k", "2,5=1;" },
        { "k=1;", "k", "0,3=1;" },
        { "k=1 ; a=2", "k", "0,3=1;" },
        { "k=1\t", "k", "0,3=1;" },

        /* names compared exactly */
        { "key=1; k=2", "k", "7,10=2;" },
        { "k=1; key=2", "key", "5,10=2;" },
        { "K=1; k=2", "k", "5,8=2;" },
        { "K=1", "k", "" },

        /* a pair without "=" is not "k"; spaces around "=" are ignored */
        { "k", "k", "" },
        { "k; a=1", "k", "" },
        { "k = v", "k", "0,5=v;" },
        { "k =v", "k", "0,4=v;" },
        { "k\t=\tv ", "k", "0,5=v;" },
        { "a=k", "k", "" },

        /* names percent-decoded, as applications do */
        { "%6b=1", "k", "0,5=1;" },
        { "ap%69key=1; k=2", "apikey", "0,10=1;" },
        { "%6B=1", "k", "0,5=1;" },
        { "%4b=1", "k", "" },
        { "%6=1", "k", "" },

        /* quoted values */
        { "k=\"abc\"", "k", "0,7=abc;" },
        { "k=\"\"", "k", "0,4=;" },
        { "k=\"", "k", "0,3=\";" },
        { "k=\"a", "k", "0,4=\"a;" },
        { "k=a\"", "k", "0,4=a\";" },
        { "a=1; k=\"x y\"; b=2", "k", "5,12=x y;" },

        /* the value runs to the next ";", "=" included */
        { "k=a=b", "k", "0,5=a=b;" },

        /* each copy reported */
        { "k=1; k=2;k=3", "k", "0,3=1;5,8=2;9,12=3;" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        t_fields(1, cases[i][0], cases[i][1], out);
        assert_string_equal(out, cases[i][2]);
    }
}


static void
pct_decode(void **state)
{
    size_t          i, n;
    unsigned char   out[64], buf[64];

    static const struct {
        const char  *in;
        const char  *out;
        size_t       len;
    } ok[] = {
        { "", "", 0 },
        { "abc", "abc", 3 },
        { "%2B", "+", 1 },
        { "%2b", "+", 1 },
        { "+", "+", 1 },
        { "a+b%20c", "a+b c", 5 },
        { "%41%42c", "ABc", 3 },
        { "%00", "\0", 1 },
        { "%0d%0A", "\r\n", 2 },
        { "%ff%FE", "\xff\xfe", 2 },
        { "%25", "%", 1 },
        { "%2541", "%41", 3 },
        { "\xc3\xa9", "\xc3\xa9", 2 },
    };

    static const char  *bad[] = {
        "%", "%4", "%zz", "a%", "ab%2", "%4g", "%g4", "%%41", "% 41",
        "%-1", "%+1", "%2B%", "x%0",
    };

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        n = 999;
        assert_int_equal(akc_pct_decode((const unsigned char *) ok[i].in,
                                        strlen(ok[i].in), out, &n),
                         AKC_OK);
        assert_int_equal(n, ok[i].len);
        assert_memory_equal(out, ok[i].out, n);

        /* in place */

        memcpy(buf, ok[i].in, strlen(ok[i].in));
        assert_int_equal(akc_pct_decode(buf, strlen(ok[i].in), buf, &n),
                         AKC_OK);
        assert_int_equal(n, ok[i].len);
        assert_memory_equal(buf, ok[i].out, n);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 999;
        assert_int_equal(akc_pct_decode((const unsigned char *) bad[i],
                                        strlen(bad[i]), out, &n),
                         AKC_ERROR);
    }

    /* a NUL in the escape itself: "%\0" "0" is three bytes */

    assert_int_equal(akc_pct_decode((const unsigned char *) "%\0" "0", 3,
                                    out, &n),
                     AKC_ERROR);

    /* the length bounds it: "%2" of "%2B" is an invalid escape */

    assert_int_equal(akc_pct_decode((const unsigned char *) "%2B", 2, out,
                                    &n),
                     AKC_ERROR);
}


/* every field "name" removed from in, one by one from the last */

static void
t_remove(int cookie, const char *in, const char *name, const char *expect)
{
    int            rc;
    char           sep;
    size_t         pos, len, n, i;
    akc_field_t    f[16];
    unsigned char  buf[256], out[256];

    sep = cookie ? ';' : '&';
    len = strlen(in);
    memcpy(buf, in, len);

    pos = 0;
    n = 0;

    for ( ;; ) {
        if (cookie) {
            rc = akc_cookie_next(buf, len, &pos, name, strlen(name), &f[n]);
        } else {
            rc = akc_query_next(buf, len, &pos, name, strlen(name), &f[n]);
        }

        if (rc == 0) {
            break;
        }

        n++;
        assert_true(n < 16);
    }

    assert_true(n > 0);

    /* from the last, so that the places of the others still hold */

    for (i = n; i > 0; i--) {
        len = akc_field_remove(buf, len, &f[i - 1], sep, out);
        memcpy(buf, out, len);
    }

    assert_int_equal(len, strlen(expect));
    assert_memory_equal(buf, expect, len);
}


static void
field_remove(void **state)
{
    size_t         len, pos;
    akc_field_t    f;
    unsigned char  buf[32];

    /* query arguments: the only one, first, middle, last */

    t_remove(0, "k=1", "k", "");
    t_remove(0, "k", "k", "");
    t_remove(0, "k=1&a=2", "k", "a=2");
    t_remove(0, "a=1&k=2&b=3", "k", "a=1&b=3");
    t_remove(0, "a=1&k=2", "k", "a=1");
    t_remove(0, "a=1&k", "k", "a=1");
    t_remove(0, "a=1&k=", "k", "a=1");
    t_remove(0, "k=1&", "k", "");
    t_remove(0, "&k=1", "k", "");
    t_remove(0, "a=1&&k=2&b", "k", "a=1&&b");
    t_remove(0, "key=1&k=2&kk=3", "k", "key=1&kk=3");
    t_remove(0, "k=1&a=%2B+x&k=2&b=&k&c", "k", "a=%2B+x&b=&c");
    t_remove(0, "api_key=A&x=1&API_KEY=B", "api_key", "x=1");
    t_remove(0, "k=1&k=2", "k", "");

    /* cookies: the spaces after ";" go with the separator */

    t_remove(1, "k=1", "k", "");
    t_remove(1, "k=1; a=2", "k", "a=2");
    t_remove(1, "k=1;a=2", "k", "a=2");
    t_remove(1, "a=1; k=2; b=3", "k", "a=1; b=3");
    t_remove(1, "a=1;k=2;b=3", "k", "a=1;b=3");
    t_remove(1, "a=1; k=2", "k", "a=1");
    t_remove(1, "a=1;k=2", "k", "a=1");
    t_remove(1, "a=1;  \tk=2", "k", "a=1");
    t_remove(1, "k=\"x\"; a=\"y\"", "k", "a=\"y\"");
    t_remove(1, "k=1; key=2; K=3; k", "k", "key=2; K=3; k");
    t_remove(1, "k=1; a=2; k=3", "k", "a=2");

    /* spaces before the ";" go with the field too */

    t_remove(1, "k=1 ; a=2", "k", "a=2");
    t_remove(1, "a=1; k=2 ; b=3", "k", "a=1; b=3");
    t_remove(1, "a=1; k=2  ", "k", "a=1");

    /* in place, as the output may be the input */

    memcpy(buf, "a=1&k=2&b=3", 11);
    pos = 0;
    assert_int_equal(akc_query_next(buf, 11, &pos, "k", 1, &f), 1);
    len = akc_field_remove(buf, 11, &f, '&', buf);
    assert_int_equal(len, 7);
    assert_memory_equal(buf, "a=1&b=3", 7);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(key_generate_default),
        cmocka_unit_test(key_generate_two_part_prefix),
        cmocka_unit_test(key_generate_errors),
        cmocka_unit_test(key_bad_checksum),
        cmocka_unit_test(key_invalid),
        cmocka_unit_test(key_plain),
        cmocka_unit_test(prefix_valid),
        cmocka_unit_test(checksum_vector),
        cmocka_unit_test(key_hint),
        cmocka_unit_test(key_mask),
        cmocka_unit_test(key_run),
        cmocka_unit_test(auth_parse),

        cmocka_unit_test(hash_vector),
        cmocka_unit_test(hash_secret_differs),
        cmocka_unit_test(fingerprint_vector),

        cmocka_unit_test(secret_parse),
        cmocka_unit_test(secret_load),
        cmocka_unit_test(secret_format),

        cmocka_unit_test(record_roundtrip),
        cmocka_unit_test(record_roundtrip_empty),
        cmocka_unit_test(record_links),
        cmocka_unit_test(record_retired),
        cmocka_unit_test(record_roundtrip_max),
        cmocka_unit_test(record_encode_invalid),
        cmocka_unit_test(record_decode_truncated),
        cmocka_unit_test(record_decode_header),
        cmocka_unit_test(record_decode_fields),
        cmocka_unit_test(record_decode_empty_id),
        cmocka_unit_test(record_decode_fuzz),
        cmocka_unit_test(record_status),
        cmocka_unit_test(status_name),

        cmocka_unit_test(time_parse_rfc3339),
        cmocka_unit_test(time_parse_duration),
        cmocka_unit_test(time_format),

        cmocka_unit_test(id_valid),
        cmocka_unit_test(scopes_valid),
        cmocka_unit_test(plan_valid),
        cmocka_unit_test(text_valid),
        cmocka_unit_test(scopes_contain),

        cmocka_unit_test(query_next),
        cmocka_unit_test(cookie_next),
        cmocka_unit_test(pct_decode),
        cmocka_unit_test(field_remove),

        cmocka_unit_test_setup_teardown(db_meta_init, t_db_setup,
                                        t_db_teardown),
        cmocka_unit_test_setup_teardown(db_meta_uninit, t_db_setup,
                                        t_db_teardown),
        cmocka_unit_test_setup_teardown(db_meta_format, t_db_setup,
                                        t_db_teardown),
        cmocka_unit_test_setup_teardown(db_meta_touch, t_db_setup,
                                        t_db_teardown),
        cmocka_unit_test(meta_strerror),
        cmocka_unit_test_setup_teardown(db_check_key, t_db_setup,
                                        t_db_teardown),
    };

    if (akc_init() != AKC_OK) {
        fprintf(stderr, "akc_init() failed\n");
        return 1;
    }

    cmocka_set_message_output(CM_OUTPUT_TAP);

    return cmocka_run_group_tests_name("apikey_core", tests, NULL, NULL);
}
