
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sodium.h>
#include <zlib.h>

#include "apikey_core.h"


#define AKC_SECRET_FILE_MAX     256

#define AKC_ONES                0x0101010101010101ULL

#if (defined(__GNUC__))
#define AKC_NOINLINE            __attribute__((noinline))
#else
#define AKC_NOINLINE
#endif

/* integers read with one load where the byte order allows */
#if (defined(__GNUC__) && defined(__BYTE_ORDER__)                            \
     && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
#define AKC_LITTLE_ENDIAN       1
#else
#define AKC_LITTLE_ENDIAN       0
#endif

#define AKC_FINGERPRINT_LABEL   "ngx_http_apikey_module secret fingerprint v2"


static int akc_run_is(const char *s, size_t len, unsigned cls);
static int akc_prefix_part_valid(const char *p, size_t len);
static void akc_put_u16(unsigned char *p, unsigned v);
static void akc_put_u64(unsigned char *p, uint64_t v);
static unsigned akc_get_u16(const unsigned char *p);
static inline uint64_t akc_get_u64(const unsigned char *p);
static inline uint64_t akc_get_be64(const unsigned char *p);
static int akc_hash_cmp(const MDB_val *a, const MDB_val *b);
static int akc_memn_cmp(const MDB_val *a, const MDB_val *b) AKC_NOINLINE;
static inline int akc_decode_str(const unsigned char **pp,
    const unsigned char *end, akc_str_t *str, size_t max, unsigned cls);
static int akc_parse_digits(const char *s, size_t n, int *out);
static int akc_utf8_valid(const unsigned char *p, size_t len);
static int akc_hex_digit(unsigned c);
static int akc_free_pages(MDB_txn *txn, uint64_t *count);
static int akc_is_space(unsigned c);
static int akc_name_is(const unsigned char *raw, size_t len,
    const char *name, size_t name_len, int nocase);


static const char  akc_base62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";


/*
 * Character classes, one table lookup per byte on the request path;
 * generated from the rules next to the AKC_C_* definitions.
 */

#define AKC_C_KEY               0x01    /* 0x21-0x7e: a key byte */
#define AKC_C_BASE62            0x02    /* 0-9 A-Z a-z */
#define AKC_C_ID                0x04    /* base62 and ._:@- */
#define AKC_C_SCOPE             0x08    /* base62 and . _ : / * - */
#define AKC_C_PLAN              0x10    /* base62 and ._:- */
#define AKC_C_TEXT              0x20    /* no control characters */
#define AKC_C_PREFIX            0x40    /* a-z 0-9 */
#define AKC_C_SCOPES            0x80    /* a scope byte or a comma */

static const unsigned char  akc_class[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x20, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21,
    0x21, 0x21, 0xa9, 0x21, 0xa1, 0xbd, 0xbd, 0xa9,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xbd, 0x21, 0x21, 0x21, 0x21, 0x21,
    0x25, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf,
    0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf,
    0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf,
    0xbf, 0xbf, 0xbf, 0x21, 0x21, 0x21, 0x21, 0xbd,
    0x21, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0x21, 0x21, 0x21, 0x21, 0x00,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
};


static const char  *akc_status_names[] = {
    "",
    "valid",
    "missing",
    "malformed",
    "unknown",
    "expired",
    "not_yet_valid",
    "disabled",
    "forbidden",
    "error"
};


int
akc_init(void)
{
    return sodium_init() < 0 ? AKC_ERROR : AKC_OK;
}


/* secret */

int
akc_secret_parse(akc_secret_t *secret, const char *text, size_t len)
{
    size_t  bin_len;

    while (len > 0
           && (text[len - 1] == '\n' || text[len - 1] == '\r'
               || text[len - 1] == ' ' || text[len - 1] == '\t'))
    {
        len--;
    }

    if (len != 2 * AKC_SECRET_LEN) {
        return AKC_ERROR;
    }

    if (sodium_hex2bin(secret->bytes, AKC_SECRET_LEN, text, len, NULL,
                       &bin_len, NULL)
        != 0 || bin_len != AKC_SECRET_LEN)
    {
        sodium_memzero(secret, sizeof(akc_secret_t));
        return AKC_ERROR;
    }

    akc_secret_prepare(secret);

    return AKC_OK;
}


void
akc_secret_prepare(akc_secret_t *secret)
{
    crypto_generichash_blake2b_state  state;

    /*
     * the keyed BLAKE2b state, with the secret as the key block, made
     * once: a lookup then copies it instead of initializing a state
     */

    (void) crypto_generichash_blake2b_init(&state, secret->bytes,
                                           AKC_SECRET_LEN, AKC_HASH_LEN);

    memcpy(secret->prepared, &state, sizeof(state));
    sodium_memzero(&state, sizeof(state));
}


int
akc_secret_load(akc_secret_t *secret, const char *path, char *err,
    size_t errlen)
{
    int          fd, rc;
    char         buf[AKC_SECRET_FILE_MAX + 1];
    ssize_t      n;
    struct stat  st;

    /*
     * A FIFO, socket or device is refused before open() could block on
     * it (a FIFO with no writer) or fail obscurely (a socket); opened
     * without blocking all the same, and checked again, in case the path
     * changed in between.
     */

    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        return AKC_ERROR;
    }

    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "open() failed (%d: %s)", errno,
                 strerror(errno));
        return AKC_ERROR;
    }

    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "fstat() failed (%d: %s)", errno,
                 strerror(errno));
        close(fd);
        return AKC_ERROR;
    }

    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "not a regular file");
        close(fd);
        return AKC_ERROR;
    }

    n = read(fd, buf, sizeof(buf));
    close(fd);

    if (n == -1) {
        snprintf(err, errlen, "read() failed (%d: %s)", errno,
                 strerror(errno));
        return AKC_ERROR;
    }

    rc = AKC_OK;

    if (n > AKC_SECRET_FILE_MAX
        || akc_secret_parse(secret, buf, (size_t) n) != AKC_OK)
    {
        snprintf(err, errlen, "invalid secret: expected %d hexadecimal "
                 "characters", 2 * AKC_SECRET_LEN);
        rc = AKC_ERROR;
    }

    sodium_memzero(buf, sizeof(buf));

    return rc;
}


void
akc_secret_format(const akc_secret_t *secret,
    char out[2 * AKC_SECRET_LEN + 1])
{
    sodium_bin2hex(out, 2 * AKC_SECRET_LEN + 1, secret->bytes,
                   AKC_SECRET_LEN);
}


void
akc_secret_fingerprint(const akc_secret_t *secret,
    unsigned char out[AKC_FINGERPRINT_LEN])
{
    unsigned char  full[crypto_generichash_BYTES_MAX];

    /*
     * The first half of the keyed BLAKE2b-512 of a fixed label: the
     * output length is in BLAKE2b's parameter block, so this is another
     * function than akc_hash() (BLAKE2b-256), and the label contains
     * spaces, so it is no key anyway.
     */

    (void) crypto_generichash(full, sizeof(full),
                              (const unsigned char *) AKC_FINGERPRINT_LABEL,
                              sizeof(AKC_FINGERPRINT_LABEL) - 1,
                              secret->bytes, AKC_SECRET_LEN);

    memcpy(out, full, AKC_FINGERPRINT_LEN);
}


void
akc_hash(const akc_secret_t *secret, const unsigned char *key, size_t len,
    unsigned char out[AKC_HASH_LEN])
{
    crypto_generichash_blake2b_state  state;

    /*
     * RFC 7693 keyed BLAKE2b-256, the secret as the key: the same
     * function as crypto_generichash(out, 32, key, len, secret, 32),
     * Python's hashlib.blake2b(key, key=secret, digest_size=32) and Go's
     * blake2b.New256(secret), from a prepared state.
     */

    memcpy(&state, secret->prepared, sizeof(state));

    (void) crypto_generichash_blake2b_update(&state, key, len);
    (void) crypto_generichash_blake2b_final(&state, out, AKC_HASH_LEN);
}


/* keys */

static int
akc_run_is(const char *s, size_t len, unsigned cls)
{
    size_t    i;
    unsigned  c;

    c = cls;

    for (i = 0; i < len; i++) {
        c &= akc_class[(unsigned char) s[i]];
    }

    return (c & cls) != 0;
}


static int
akc_prefix_part_valid(const char *p, size_t len)
{
    return len > 0 && len <= AKC_PREFIX_PART_MAX
           && akc_run_is(p, len, AKC_C_PREFIX);
}


int
akc_prefix_valid(const char *prefix, size_t len)
{
    const char  *u;

    u = memchr(prefix, '_', len);

    if (u == NULL) {
        return akc_prefix_part_valid(prefix, len);
    }

    return akc_prefix_part_valid(prefix, u - prefix)
           && akc_prefix_part_valid(u + 1, len - (u - prefix) - 1);
}


void
akc_checksum(const unsigned char *data, size_t len,
    char out[AKC_CHECKSUM_LEN])
{
    int       i;
    uint32_t  crc;

    crc = (uint32_t) crc32(crc32(0L, Z_NULL, 0), data, (uInt) len);

    /* 62^6 > 2^32: six digits, most significant first */

    for (i = AKC_CHECKSUM_LEN - 1; i >= 0; i--) {
        out[i] = akc_base62[crc % 62];
        crc /= 62;
    }
}


akc_key_kind_e
akc_key_classify(const unsigned char *key, size_t len)
{
    size_t    i, tail;
    uint64_t  w, bad;
    unsigned  c;
    char      sum[AKC_CHECKSUM_LEN];

    if (len < AKC_KEY_MIN_LEN || len > AKC_KEY_MAX_LEN) {
        return AKC_KEY_INVALID;
    }

    /*
     * Every byte in 0x21-0x7e, eight at a time: a byte below 0x21 sets
     * its high bit in (w - 0x21..) & ~w, a byte above 0x7e in
     * (w + 0x01..) | w; with no such byte nothing borrows or carries.
     */

    bad = 0;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, key + i, 8);
        bad |= ((w - AKC_ONES * 0x21) & ~w) | (w + AKC_ONES) | w;
    }

    c = AKC_C_KEY;

    for ( /* void */ ; i < len; i++) {
        c &= akc_class[key[i]];
    }

    if ((bad & (AKC_ONES * 0x80)) || !(c & AKC_C_KEY)) {
        return AKC_KEY_INVALID;
    }

    /* the generated shape: prefix, "_", 32 base62 and 6 base62 */

    if (len <= AKC_GEN_TAIL_LEN + 1) {
        return AKC_KEY_PLAIN;
    }

    tail = len - AKC_GEN_TAIL_LEN;

    if (key[tail - 1] != '_'
        || !akc_prefix_valid((const char *) key, tail - 1))
    {
        return AKC_KEY_PLAIN;
    }

    c = AKC_C_BASE62;

    for (i = tail; i < len; i++) {
        c &= akc_class[key[i]];
    }

    if (!(c & AKC_C_BASE62)) {
        return AKC_KEY_PLAIN;
    }

    akc_checksum(key, len - AKC_CHECKSUM_LEN, sum);

    if (memcmp(sum, key + len - AKC_CHECKSUM_LEN, AKC_CHECKSUM_LEN) != 0) {
        return AKC_KEY_BAD_CHECKSUM;
    }

    return AKC_KEY_GENERATED;
}


int
akc_key_generate(const char *prefix, char *out, size_t size)
{
    size_t  i, plen, len;

    plen = strlen(prefix);

    if (!akc_prefix_valid(prefix, plen)) {
        return AKC_ERROR;
    }

    len = plen + 1 + AKC_GEN_TAIL_LEN;

    if (size < len + 1) {
        return AKC_ERROR;
    }

    memcpy(out, prefix, plen);
    out[plen] = '_';

    /* 32 uniform base62 characters: 32 * log2(62) > 190 bits */

    for (i = 0; i < AKC_RANDOM_LEN; i++) {
        out[plen + 1 + i] = akc_base62[randombytes_uniform(62)];
    }

    akc_checksum((unsigned char *) out, len - AKC_CHECKSUM_LEN,
                 out + len - AKC_CHECKSUM_LEN);
    out[len] = '\0';

    return (int) len;
}


size_t
akc_key_hint(const unsigned char *key, size_t len,
    char out[AKC_HINT_MAX_LEN + 1])
{
    size_t  n;

    if (akc_key_classify(key, len) == AKC_KEY_GENERATED) {
        /* the prefix, its underscore and four random characters */
        n = len - AKC_GEN_TAIL_LEN + 4;

    } else {
        /* at most four characters, and never more than an eighth */
        n = len / 8;
        if (n > 4) {
            n = 4;
        }
    }

    memcpy(out, key, n);
    memcpy(out + n, "...", 4);

    return n + 3;
}


/* record fields */

int
akc_id_valid(const char *s, size_t len)
{
    return len > 0 && len <= AKC_ID_MAX_LEN && akc_run_is(s, len, AKC_C_ID);
}


int
akc_text_valid(const char *s, size_t len, size_t max)
{
    /*
     * no control characters: values end up in headers and logs; and
     * UTF-8, as JSON output needs
     */

    return len <= max
           && (len == 0
               || (akc_run_is(s, len, AKC_C_TEXT)
                   && akc_utf8_valid((const unsigned char *) s, len)));
}


static int
akc_utf8_valid(const unsigned char *p, size_t len)
{
    size_t    i, j, n;
    uint32_t  u, min;

    /*
     * RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF;
     * and no C1 control characters (U+0080-U+009F)
     */

    for (i = 0; i < len; i += n + 1) {
        u = p[i];

        if (u < 0x80) {
            n = 0;
            continue;
        }

        if (u >= 0xc2 && u <= 0xdf) {
            n = 1;
            u &= 0x1f;
            min = 0x80;

        } else if (u >= 0xe0 && u <= 0xef) {
            n = 2;
            u &= 0x0f;
            min = 0x800;

        } else if (u >= 0xf0 && u <= 0xf4) {
            n = 3;
            u &= 0x07;
            min = 0x10000;

        } else {
            return 0;
        }

        if (len - i - 1 < n) {
            return 0;
        }

        for (j = 1; j <= n; j++) {
            if ((p[i + j] & 0xc0) != 0x80) {
                return 0;
            }

            u = (u << 6) | (p[i + j] & 0x3f);
        }

        if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)
            || u <= 0x9f)
        {
            return 0;
        }
    }

    return 1;
}


int
akc_scopes_valid(const char *s, size_t len)
{
    size_t  i;

    if (len == 0) {
        return 1;
    }

    if (len > AKC_SCOPES_MAX_LEN || s[0] == ',' || s[len - 1] == ',') {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (s[i] == ',') {
            if (s[i + 1] == ',') {
                return 0;
            }

            continue;
        }

        if (!(akc_class[(unsigned char) s[i]] & AKC_C_SCOPE)) {
            return 0;
        }
    }

    return 1;
}


int
akc_plan_valid(const char *s, size_t len)
{
    return len <= AKC_PLAN_MAX_LEN
           && (len == 0 || akc_run_is(s, len, AKC_C_PLAN));
}


int
akc_scopes_contain(const akc_str_t *scopes, const char *scope, size_t len)
{
    const char  *p, *end, *comma;

    if (scopes->len == 0) {
        return 0;
    }

    p = scopes->data;
    end = p + scopes->len;

    while (p < end) {
        comma = memchr(p, ',', end - p);
        if (comma == NULL) {
            comma = end;
        }

        if ((size_t) (comma - p) == len && memcmp(p, scope, len) == 0) {
            return 1;
        }

        p = comma + 1;
    }

    return 0;
}


/* records */

static void
akc_put_u16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char) (v & 0xff);
    p[1] = (unsigned char) ((v >> 8) & 0xff);
}


static void
akc_put_u64(unsigned char *p, uint64_t v)
{
    int  i;

    for (i = 0; i < 8; i++) {
        p[i] = (unsigned char) (v >> (8 * i));
    }
}


static unsigned
akc_get_u16(const unsigned char *p)
{
    return p[0] | (p[1] << 8);
}


static inline uint64_t
akc_get_be64(const unsigned char *p)
{
#if (AKC_LITTLE_ENDIAN)

    uint64_t  v;

    /* one load and one bswap: this runs ~20 times per lookup */

    memcpy(&v, p, 8);

    return __builtin_bswap64(v);

#else

    return ((uint64_t) p[0] << 56) | ((uint64_t) p[1] << 48)
           | ((uint64_t) p[2] << 40) | ((uint64_t) p[3] << 32)
           | ((uint64_t) p[4] << 24) | ((uint64_t) p[5] << 16)
           | ((uint64_t) p[6] << 8) | (uint64_t) p[7];

#endif
}


static inline uint64_t
akc_get_u64(const unsigned char *p)
{
#if (AKC_LITTLE_ENDIAN)

    uint64_t  v;

    memcpy(&v, p, 8);

    return v;

#else

    return (uint64_t) p[0] | ((uint64_t) p[1] << 8)
           | ((uint64_t) p[2] << 16) | ((uint64_t) p[3] << 24)
           | ((uint64_t) p[4] << 32) | ((uint64_t) p[5] << 40)
           | ((uint64_t) p[6] << 48) | ((uint64_t) p[7] << 56);

#endif
}


size_t
akc_record_size(const akc_record_t *rec)
{
    size_t  size;

    size = AKC_RECORD_HEADER_LEN + 5 * 2 + rec->id.len + rec->subject.len
           + rec->scopes.len + rec->plan.len + rec->hint.len;

    /*
     * the rotation links follow only when one is set, so that a record
     * without them is encoded as before they existed
     */

    if (rec->replaces.len || rec->replaced_by.len) {
        size += 2 * 2 + rec->replaces.len + rec->replaced_by.len;
    }

    return size;
}


int
akc_record_encode(const akc_record_t *rec, unsigned char *buf, size_t size)
{
    size_t            i;
    unsigned char    *p;
    size_t            n;
    const akc_str_t  *s[7];

    if (!akc_id_valid(rec->id.data, rec->id.len)
        || (rec->replaces.len
            && !akc_id_valid(rec->replaces.data, rec->replaces.len))
        || (rec->replaced_by.len
            && !akc_id_valid(rec->replaced_by.data, rec->replaced_by.len))
        || !akc_text_valid(rec->subject.data, rec->subject.len,
                           AKC_SUBJECT_MAX_LEN)
        || !akc_scopes_valid(rec->scopes.data, rec->scopes.len)
        || !akc_plan_valid(rec->plan.data, rec->plan.len)
        || !akc_text_valid(rec->hint.data, rec->hint.len, AKC_HINT_MAX_LEN)
        || (rec->flags & ~AKC_FLAGS)
        || size < akc_record_size(rec))
    {
        return AKC_ERROR;
    }

    p = buf;

    p[0] = AKC_RECORD_VERSION;
    p[1] = (unsigned char) rec->flags;
    akc_put_u16(p + 2, 0);
    akc_put_u64(p + 4, (uint64_t) rec->created);
    akc_put_u64(p + 12, (uint64_t) rec->not_before);
    akc_put_u64(p + 20, (uint64_t) rec->expires);
    p += AKC_RECORD_HEADER_LEN;

    s[0] = &rec->id;
    s[1] = &rec->subject;
    s[2] = &rec->scopes;
    s[3] = &rec->plan;
    s[4] = &rec->hint;
    s[5] = &rec->replaces;
    s[6] = &rec->replaced_by;

    n = (rec->replaces.len || rec->replaced_by.len) ? 7 : 5;

    for (i = 0; i < n; i++) {
        akc_put_u16(p, (unsigned) s[i]->len);
        if (s[i]->len) {
            memcpy(p + 2, s[i]->data, s[i]->len);
        }
        p += 2 + s[i]->len;
    }

    return (int) (p - buf);
}


static inline int
akc_decode_str(const unsigned char **pp, const unsigned char *end,
    akc_str_t *str, size_t max, unsigned cls)
{
    size_t                len, i;
    unsigned              c;
    const unsigned char  *p;

    p = *pp;

    if (end - p < 2) {
        return AKC_ERROR;
    }

    len = akc_get_u16(p);
    p += 2;

    if ((size_t) (end - p) < len || len > max) {
        return AKC_ERROR;
    }

    /* the characters allowed in the field */

    c = cls;

    for (i = 0; i < len; i++) {
        c &= akc_class[p[i]];
    }

    if (c == 0) {
        return AKC_ERROR;
    }

    /* text is UTF-8, as akc_text_valid() wants it */

    if (cls == AKC_C_TEXT && !akc_utf8_valid(p, len)) {
        return AKC_ERROR;
    }

    str->len = len;
    str->data = (const char *) p;

    *pp = p + len;

    return AKC_OK;
}


int
akc_record_decode(akc_record_t *rec, const unsigned char *buf, size_t size)
{
    const unsigned char  *p, *end;

    /* every byte may be hostile: check each length before using it */

    if (size < AKC_RECORD_HEADER_LEN || size > AKC_RECORD_MAX_LEN
        || buf[0] != AKC_RECORD_VERSION
        || (buf[1] & ~AKC_FLAGS)
        || akc_get_u16(buf + 2) != 0)
    {
        return AKC_ERROR;
    }

    rec->flags = buf[1];
    rec->created = (int64_t) akc_get_u64(buf + 4);
    rec->not_before = (int64_t) akc_get_u64(buf + 12);
    rec->expires = (int64_t) akc_get_u64(buf + 20);

    p = buf + AKC_RECORD_HEADER_LEN;
    end = buf + size;

    rec->strings.data = (const char *) p;
    rec->strings.len = end - p;

    if (akc_decode_str(&p, end, &rec->id, AKC_ID_MAX_LEN, AKC_C_ID)
        || akc_decode_str(&p, end, &rec->subject, AKC_SUBJECT_MAX_LEN,
                          AKC_C_TEXT)
        || akc_decode_str(&p, end, &rec->scopes, AKC_SCOPES_MAX_LEN,
                          AKC_C_SCOPES)
        || akc_decode_str(&p, end, &rec->plan, AKC_PLAN_MAX_LEN, AKC_C_PLAN)
        || akc_decode_str(&p, end, &rec->hint, AKC_HINT_MAX_LEN, AKC_C_TEXT))
    {
        return AKC_ERROR;
    }

    rec->replaces.data = NULL;
    rec->replaces.len = 0;
    rec->replaced_by.data = NULL;
    rec->replaced_by.len = 0;

    if (p != end
        && (akc_decode_str(&p, end, &rec->replaces, AKC_ID_MAX_LEN, AKC_C_ID)
            || akc_decode_str(&p, end, &rec->replaced_by, AKC_ID_MAX_LEN,
                              AKC_C_ID)
            || (rec->replaces.len == 0 && rec->replaced_by.len == 0)))
    {
        return AKC_ERROR;
    }

    if (p != end
        || rec->id.len == 0
        || (rec->scopes.len
            && !akc_scopes_valid(rec->scopes.data, rec->scopes.len)))
    {
        return AKC_ERROR;
    }

    return AKC_OK;
}


akc_status_e
akc_record_status(const akc_record_t *rec, int64_t now)
{
    if (rec->flags & AKC_FLAG_DISABLED) {
        return AKC_STATUS_DISABLED;
    }

    if (rec->not_before != 0 && now < rec->not_before) {
        return AKC_STATUS_NOT_YET_VALID;
    }

    if (rec->expires != 0 && now >= rec->expires) {
        return AKC_STATUS_EXPIRED;
    }

    return AKC_STATUS_VALID;
}


const char *
akc_status_name(akc_status_e status)
{
    if ((unsigned) status > AKC_STATUS_ERROR) {
        return "error";
    }

    return akc_status_names[status];
}


/* times */

static int
akc_parse_digits(const char *s, size_t n, int *out)
{
    size_t  i;
    int     v;

    v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return AKC_ERROR;
        }
        v = v * 10 + (s[i] - '0');
    }

    *out = v;

    return AKC_OK;
}


/* 9999-12-31T23:59:59Z: what RFC 3339, and akc_time_format(), can show */

#define AKC_TIME_MAX            253402300799LL


int
akc_time_parse(const char *s, size_t len, int64_t now, int64_t *out)
{
    int        year, mon, mday, hour, min, sec, oh, om, sign;
    size_t     i;
    int64_t    n, unit, t;
    struct tm  tm;

    if (len == 3 && memcmp(s, "now", 3) == 0) {
        *out = now;
        return AKC_OK;
    }

    /* a duration from now: 30d, 12h, 15m, 90s, 2w */

    if (len >= 2 && len <= 12 && s[len - 1] >= 'a' && s[len - 1] <= 'z') {
        n = 0;

        for (i = 0; i < len - 1; i++) {
            if (s[i] < '0' || s[i] > '9') {
                return AKC_ERROR;
            }
            n = n * 10 + (s[i] - '0');
        }

        switch (s[len - 1]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        default: return AKC_ERROR;
        }

        if (now < 0 || now > AKC_TIME_MAX || n > (AKC_TIME_MAX - now) / unit)
        {
            return AKC_ERROR;
        }

        *out = now + n * unit;
        return AKC_OK;
    }

    /* RFC 3339: 2027-01-31T00:00:00Z, fractions ignored, or +hh:mm */

    if (len < 20 || s[4] != '-' || s[7] != '-'
        || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        || s[13] != ':' || s[16] != ':'
        || akc_parse_digits(s, 4, &year) != AKC_OK
        || akc_parse_digits(s + 5, 2, &mon) != AKC_OK
        || akc_parse_digits(s + 8, 2, &mday) != AKC_OK
        || akc_parse_digits(s + 11, 2, &hour) != AKC_OK
        || akc_parse_digits(s + 14, 2, &min) != AKC_OK
        || akc_parse_digits(s + 17, 2, &sec) != AKC_OK)
    {
        return AKC_ERROR;
    }

    if (year < 1970 || mon < 1 || mon > 12 || mday < 1 || mday > 31
        || hour > 23 || min > 59 || sec > 60)
    {
        return AKC_ERROR;
    }

    i = 19;

    if (s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            /* void */
        }

        if (s[i - 1] == '.') {
            return AKC_ERROR;
        }
    }

    oh = 0;
    om = 0;
    sign = 0;

    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        /* UTC */

    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':'
               && akc_parse_digits(s + i + 1, 2, &oh) == AKC_OK
               && akc_parse_digits(s + i + 4, 2, &om) == AKC_OK
               && oh < 24 && om < 60)
    {
        sign = s[i] == '+' ? 1 : -1;

    } else {
        return AKC_ERROR;
    }

    memset(&tm, 0, sizeof(struct tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = mday;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;

    t = (int64_t) timegm(&tm);

    /* timegm() normalizes 2027-02-31: reject such dates */

    if (tm.tm_mday != mday || tm.tm_mon != mon - 1) {
        return AKC_ERROR;
    }

    t -= sign * (oh * 3600 + om * 60);

    if (t > AKC_TIME_MAX) {
        return AKC_ERROR;
    }

    *out = t;

    return AKC_OK;
}


size_t
akc_time_format(int64_t t, char out[AKC_TIME_LEN + 1])
{
    size_t     n;
    time_t     tt;
    struct tm  tm;

    tt = (time_t) t;

    if (gmtime_r(&tt, &tm) == NULL) {
        out[0] = '\0';
        return 0;
    }

    n = strftime(out, AKC_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm);

    /* past 9999 the result does not fit, and out is left unterminated */

    if (n == 0) {
        out[0] = '\0';
    }

    return n;
}


/* the database */

static int
akc_hash_cmp(const MDB_val *a, const MDB_val *b)
{
    uint64_t  x, y;

    /*
     * The order of memcmp(), which LMDB uses by default and mdb_dump,
     * mdb_load and any other reader keep using, in fewer instructions:
     * hashes are uniform, so the first eight bytes, compared as one
     * big-endian integer, almost always decide.  The rest is another
     * function, so that this path needs no stack frame.
     */

    if (a->mv_size >= 8 && b->mv_size >= 8) {
        x = akc_get_be64(a->mv_data);
        y = akc_get_be64(b->mv_data);

        if (x != y) {
            return x < y ? -1 : 1;
        }
    }

    return akc_memn_cmp(a, b);
}


static int
akc_memn_cmp(const MDB_val *a, const MDB_val *b)
{
    int     rc;
    size_t  len;

    len = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;

    rc = memcmp(a->mv_data, b->mv_data, len);

    if (rc != 0 || a->mv_size == b->mv_size) {
        return rc;
    }

    return a->mv_size < b->mv_size ? -1 : 1;
}


int
akc_dbs_open(MDB_txn *txn, akc_dbs_t *dbs, unsigned flags)
{
    int  rc;

    rc = mdb_dbi_open(txn, AKC_DB_KEYS, flags, &dbs->keys);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    rc = mdb_set_compare(txn, dbs->keys, akc_hash_cmp);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    rc = mdb_dbi_open(txn, AKC_DB_IDS, flags, &dbs->ids);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    return mdb_dbi_open(txn, AKC_DB_META, flags, &dbs->meta);
}


static int
akc_meta_get(MDB_txn *txn, const akc_dbs_t *dbs, const char *name,
    MDB_val *val)
{
    MDB_val  key;

    key.mv_size = strlen(name);
    key.mv_data = (void *) name;

    return mdb_get(txn, dbs->meta, &key, val);
}


static int
akc_meta_put(MDB_txn *txn, const akc_dbs_t *dbs, const char *name,
    const void *data, size_t size)
{
    MDB_val  key, val;

    key.mv_size = strlen(name);
    key.mv_data = (void *) name;
    val.mv_size = size;
    val.mv_data = (void *) data;

    return mdb_put(txn, dbs->meta, &key, &val, 0);
}


int
akc_meta_get_u64(MDB_txn *txn, const akc_dbs_t *dbs, const char *name,
    uint64_t *value)
{
    int      rc;
    MDB_val  val;

    rc = akc_meta_get(txn, dbs, name, &val);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    if (val.mv_size != 8) {
        return MDB_CORRUPTED;
    }

    *value = akc_get_u64(val.mv_data);

    return MDB_SUCCESS;
}


int
akc_meta_put_u64(MDB_txn *txn, const akc_dbs_t *dbs, const char *name,
    uint64_t value)
{
    unsigned char  buf[8];

    akc_put_u64(buf, value);

    return akc_meta_put(txn, dbs, name, buf, 8);
}


/*
 * The numbers of a database, from an open read transaction: its meta
 * entries (the follower's if it has them), its keys, its map and the
 * reader slots held by live processes, but for the slot of the process
 * "self" (0: none).  On an error, "what" names the entry or the call.
 */

static int akc_stats_reader(const char *msg, void *data);

typedef struct {
    akc_stats_t            *st;
    long                    self;
} akc_readers_t;


int
akc_stats(MDB_env *env, MDB_txn *txn, const akc_dbs_t *dbs, long self,
    akc_stats_t *st, const char **what)
{
    int             rc;
    MDB_stat        ms;
    MDB_envinfo     info;
    akc_readers_t   readers;

    *what = AKC_META_FORMAT;
    rc = akc_meta_get_u64(txn, dbs, AKC_META_FORMAT, &st->format);

    if (rc == MDB_SUCCESS) {
        *what = AKC_META_GENERATION;
        rc = akc_meta_get_u64(txn, dbs, AKC_META_GENERATION,
                              &st->generation);
    }

    if (rc == MDB_SUCCESS) {
        *what = AKC_META_CHANGED;
        rc = akc_meta_get_u64(txn, dbs, AKC_META_CHANGED, &st->changed);
    }

    if (rc == MDB_SUCCESS) {
        *what = AKC_META_FOLLOW_VERSION;
        rc = akc_meta_get_u64(txn, dbs, AKC_META_FOLLOW_VERSION,
                              &st->follow_version);

        if (rc == MDB_SUCCESS) {
            *what = AKC_META_FOLLOW_SYNCED;
            rc = akc_meta_get_u64(txn, dbs, AKC_META_FOLLOW_SYNCED,
                                  &st->follow_synced);
            st->followed = (rc == MDB_SUCCESS);

        } else if (rc == MDB_NOTFOUND) {
            rc = MDB_SUCCESS;
        }
    }

    if (rc == MDB_SUCCESS) {
        *what = "mdb_stat";
        rc = mdb_stat(txn, dbs->keys, &ms);
    }

    if (rc == MDB_SUCCESS) {
        *what = "mdb_env_info";
        rc = mdb_env_info(env, &info);
    }

    if (rc != MDB_SUCCESS) {
        return rc;
    }

    st->keys = ms.ms_entries;
    st->map_size = info.me_mapsize;
    st->map_used = ((uint64_t) info.me_last_pgno + 1) * ms.ms_psize;
    st->readers_max = info.me_maxreaders;
    st->readers_used = 0;

    readers.st = st;
    readers.self = self;

    *what = "mdb_reader_list";

    if (mdb_reader_list(env, akc_stats_reader, &readers) < 0) {
        return EINVAL;
    }

    return MDB_SUCCESS;
}


/* one line of mdb_reader_list(): "pid thread txnid", or a header */

static int
akc_stats_reader(const char *msg, void *data)
{
    akc_readers_t  *readers = data;

    char  *end;
    long   pid;

    pid = strtol(msg, &end, 10);

    if (end != msg && pid > 0 && pid != readers->self) {
        readers->st->readers_used++;
    }

    return 0;
}


int
akc_meta_check(MDB_txn *txn, const akc_dbs_t *dbs,
    const akc_secret_t *secret)
{
    int            rc;
    MDB_val        val;
    unsigned char  fp[AKC_FINGERPRINT_LEN];

    rc = akc_meta_get(txn, dbs, AKC_META_FORMAT, &val);
    if (rc == MDB_NOTFOUND) {
        return AKC_EUNINIT;
    }

    if (rc != MDB_SUCCESS) {
        return rc;
    }

    if (val.mv_size == 8 && akc_get_u64(val.mv_data) == 1) {
        return AKC_EOLDFORMAT;
    }

    if (val.mv_size != 8
        || akc_get_u64(val.mv_data) != AKC_FORMAT_VERSION)
    {
        return AKC_EFORMAT;
    }

    rc = akc_meta_get(txn, dbs, AKC_META_FINGERPRINT, &val);
    if (rc == MDB_NOTFOUND) {
        return AKC_EUNINIT;
    }

    if (rc != MDB_SUCCESS) {
        return rc;
    }

    akc_secret_fingerprint(secret, fp);

    if (val.mv_size != AKC_FINGERPRINT_LEN
        || sodium_memcmp(val.mv_data, fp, AKC_FINGERPRINT_LEN) != 0)
    {
        return AKC_ESECRET;
    }

    return AKC_OK;
}


int
akc_meta_init(MDB_txn *txn, const akc_dbs_t *dbs, const akc_secret_t *secret,
    int64_t now)
{
    int            rc;
    unsigned char  buf[8], fp[AKC_FINGERPRINT_LEN];

    akc_put_u64(buf, AKC_FORMAT_VERSION);

    rc = akc_meta_put(txn, dbs, AKC_META_FORMAT, buf, 8);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    akc_secret_fingerprint(secret, fp);

    rc = akc_meta_put(txn, dbs, AKC_META_FINGERPRINT, fp,
                      AKC_FINGERPRINT_LEN);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    return akc_meta_touch(txn, dbs, now);
}


int
akc_meta_touch(MDB_txn *txn, const akc_dbs_t *dbs, int64_t now)
{
    int            rc;
    uint64_t       generation;
    MDB_envinfo    info;
    unsigned char  buf[8];

    rc = akc_meta_get_u64(txn, dbs, AKC_META_GENERATION, &generation);
    if (rc == MDB_NOTFOUND) {
        generation = 0;

    } else if (rc != MDB_SUCCESS) {
        return rc;
    }

    akc_put_u64(buf, generation + 1);

    rc = akc_meta_put(txn, dbs, AKC_META_GENERATION, buf, 8);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    akc_put_u64(buf, (uint64_t) now);

    rc = akc_meta_put(txn, dbs, AKC_META_CHANGED, buf, 8);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    rc = mdb_env_info(mdb_txn_env(txn), &info);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    akc_put_u64(buf, (uint64_t) info.me_mapsize);

    return akc_meta_put(txn, dbs, AKC_META_MAPSIZE, buf, 8);
}


const char *
akc_meta_strerror(int rc)
{
    switch (rc) {
    case AKC_EUNINIT:
        return "database is not initialized (run \"apikeyctl init\")";
    case AKC_EFORMAT:
        return "database has an unknown format version";
    case AKC_EOLDFORMAT:
        return "database has format version 1, whose keys were hashed "
               "another way: make a new database with \"apikeyctl init\" "
               "and import or issue the keys again";
    case AKC_ESECRET:
        return "database was made with another secret";
    case AKC_ETRUNCATED:
        return "data.mdb is shorter than the pages it claims (truncated?): "
               "restore a backup into a new database directory "
               "(\"apikeyctl -d NEW init\", \"apikeyctl -d NEW restore "
               "BACKUP\") and move that directory into place";
    case AKC_ELOCK:
    case AKC_ELAG:
        return "lock.mdb does not belong to data.mdb (one of them was "
               "deleted, replaced or copied on its own while in use)";
    default:
        return mdb_strerror(rc);
    }
}


static int
akc_free_pages(MDB_txn *txn, uint64_t *count)
{
    int          rc;
    size_t       n;
    MDB_val      key, val;
    MDB_cursor  *c;

    /* the pages of LMDB's free list (database 0): each record an IDL */

    *count = 0;

    rc = mdb_cursor_open(txn, 0, &c);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    while ((rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) == MDB_SUCCESS) {
        if (val.mv_size < sizeof(size_t)) {
            continue;
        }

        memcpy(&n, val.mv_data, sizeof(size_t));
        *count += n;
    }

    mdb_cursor_close(c);

    return (rc == MDB_NOTFOUND) ? MDB_SUCCESS : rc;
}


int
akc_env_check(MDB_txn *txn, int write)
{
    int               rc;
    long              os_psize;
    size_t            txnid;
    MDB_env          *env;
    uint64_t          have, need, nfree;
    MDB_stat          ms;
    struct stat       st;
    MDB_envinfo       info;
    mdb_filehandle_t  fd;

    /*
     * An environment is whole when its data file holds every page its
     * newest meta page claims, and when the transaction id that the lock
     * file handed to txn is that of the newest meta page.  A reader picks
     * the meta page by that id, so a lock file made anew, or a data file
     * replaced under a lock file in use, makes it read an old meta page
     * and miss later writes; a writer would build on that old page and
     * lose them for good.  A data file read past its end is SIGBUS.
     *
     * txn is a renewed read transaction, or a write transaction (write),
     * which holds the writer lock, so that no commit is in flight.
     */

    env = mdb_txn_env(txn);

    rc = mdb_env_get_fd(env, &fd);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    if (fstat(fd, &st) == -1) {
        return errno;
    }

    /* the meta pages are read before the page size is known */

    os_psize = sysconf(_SC_PAGESIZE);

    if (os_psize <= 0 || st.st_size < 2 * (off_t) os_psize) {
        return AKC_ETRUNCATED;
    }

    rc = mdb_env_stat(env, &ms);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    rc = mdb_env_info(env, &info);
    if (rc != MDB_SUCCESS) {
        return rc;
    }

    /*
     * A page allocated and freed again within one transaction is never
     * written, so the file may end before the last page the meta page
     * claims; but such pages are free.  Fewer pages than the used ones
     * is a file cut short.
     */

    have = (uint64_t) st.st_size / ms.ms_psize;
    need = (uint64_t) info.me_last_pgno + 1;

    /* LMDB reads the free list in read transactions only */

    if (have < need && !write) {
        rc = akc_free_pages(txn, &nfree);
        if (rc != MDB_SUCCESS) {
            return rc;
        }

        if (have + nfree < need) {
            return AKC_ETRUNCATED;
        }
    }

    txnid = mdb_txn_id(txn);

    if (write) {
        txnid--;
    }

    if (txnid == info.me_last_txnid) {
        return AKC_OK;
    }

    /* a commit between the meta page and the lock file's id */

    if (!write && txnid + 1 == info.me_last_txnid) {
        return AKC_ELAG;
    }

    return AKC_ELOCK;
}


int
akc_auth_parse(const unsigned char *value, size_t len, const char *scheme,
    size_t scheme_len, akc_str_t *key)
{
    const unsigned char  *p, *last;

    /*
     * "Scheme key": the scheme matched without regard to case and
     * followed by whitespace or nothing, then the key, trimmed; "Scheme"
     * alone is an empty key.  Another scheme, or a scheme this one only
     * begins ("Bearerx"), is AKC_ERROR: not ours.  Whitespace is any of
     * space, tab, vertical tab and form feed, as upstreams that split on
     * whitespace see it: "Bearer<TAB>key" is a Bearer key for them too.
     */

    p = value;
    last = value + len;

    while (p < last && akc_is_space(*p)) {
        p++;
    }

    if ((size_t) (last - p) < scheme_len
        || strncasecmp((const char *) p, scheme, scheme_len) != 0
        || ((size_t) (last - p) > scheme_len && !akc_is_space(p[scheme_len])))
    {
        return AKC_ERROR;
    }

    p += scheme_len;

    while (p < last && akc_is_space(*p)) {
        p++;
    }

    while (last > p && akc_is_space(last[-1])) {
        last--;
    }

    key->data = (const char *) p;
    key->len = last - p;

    return AKC_OK;
}


static int
akc_is_space(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}


static int
akc_name_is(const unsigned char *raw, size_t len, const char *name,
    size_t name_len, int nocase)
{
    int       hi, lo;
    size_t    i, n;
    unsigned  c;

    /*
     * raw, percent-decoded, is name (with or without regard to case):
     * applications decode the names of arguments and cookies, so
     * "api%5Fkey" is "api_key" to them, and must be to us
     */

    n = 0;

    for (i = 0; i < len; i++, n++) {
        c = raw[i];

        if (c == '%' && len - i >= 3) {
            hi = akc_hex_digit(raw[i + 1]);
            lo = akc_hex_digit(raw[i + 2]);

            if (hi >= 0 && lo >= 0) {
                c = (unsigned) (hi << 4 | lo);
                i += 2;
            }
        }

        if (n == name_len) {
            return 0;
        }

        if (nocase ? (tolower(c) != tolower((unsigned char) name[n]))
                   : (c != (unsigned char) name[n]))
        {
            return 0;
        }
    }

    return n == name_len;
}


static int
akc_hex_digit(unsigned c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


int
akc_query_next(const unsigned char *args, size_t len, size_t *pos,
    const char *name, size_t name_len, akc_field_t *f)
{
    size_t                i, end;
    const unsigned char  *eq, *amp;

    /*
     * The next argument "name" of a query string ("a=1&b=2") from *pos
     * on: 1 and its place and raw value, or 0.  Names are compared
     * percent-decoded and without regard to case, as nginx's $arg_name
     * does, so that every spelling of the name counts as a copy.  "name"
     * alone is an empty value.
     */

    for (i = *pos; i < len; i = end + 1) {
        amp = memchr(args + i, '&', len - i);
        end = (amp != NULL) ? (size_t) (amp - args) : len;

        eq = memchr(args + i, '=', end - i);

        if (!akc_name_is(args + i, (eq != NULL ? (size_t) (eq - args) : end)
                                   - i, name, name_len, 1))
        {
            continue;
        }

        f->start = i;
        f->end = end;

        if (eq != NULL) {
            f->value.data = (const char *) eq + 1;
            f->value.len = end - (eq - args) - 1;

        } else {
            f->value.data = (const char *) args + end;
            f->value.len = 0;
        }

        *pos = end + 1;

        return 1;
    }

    *pos = len;

    return 0;
}


int
akc_cookie_next(const unsigned char *value, size_t len, size_t *pos,
    const char *name, size_t name_len, akc_field_t *f)
{
    size_t                i, end, last, first;
    const unsigned char  *eq, *semi;

    /*
     * The next cookie "name" of a Cookie header value ("a=1; b=2") from
     * *pos on: 1 and its place and value, or 0.  Names are compared
     * exactly (RFC 6265), but percent-decoded and with the whitespace
     * around them and around the value ignored, as the applications
     * behind do; a value may be quoted.  A pair without "=" is no cookie.
     */

    for (i = *pos; i < len; i = end + 1) {
        semi = memchr(value + i, ';', len - i);
        end = (semi != NULL) ? (size_t) (semi - value) : len;

        while (i < end && akc_is_space(value[i])) {
            i++;
        }

        eq = memchr(value + i, '=', end - i);

        if (eq == NULL) {
            continue;
        }

        last = eq - value;

        while (last > i && akc_is_space(value[last - 1])) {
            last--;
        }

        if (!akc_name_is(value + i, last - i, name, name_len, 0)) {
            continue;
        }

        first = eq - value + 1;

        while (first < end && akc_is_space(value[first])) {
            first++;
        }

        last = end;

        while (last > first && akc_is_space(value[last - 1])) {
            last--;
        }

        f->start = i;
        f->end = last;
        f->value.data = (const char *) value + first;
        f->value.len = last - first;

        if (f->value.len >= 2 && f->value.data[0] == '"'
            && f->value.data[f->value.len - 1] == '"')
        {
            f->value.data++;
            f->value.len -= 2;
        }

        *pos = end + 1;

        return 1;
    }

    *pos = len;

    return 0;
}


int
akc_pct_decode(const unsigned char *in, size_t len, unsigned char *out,
    size_t *out_len)
{
    int     hi, lo;
    size_t  i, n;

    /* %XX is a byte; "+" stays "+"; a "%" without two hex digits fails */

    n = 0;

    for (i = 0; i < len; i++) {

        if (in[i] != '%') {
            out[n++] = in[i];
            continue;
        }

        if (len - i < 3) {
            return AKC_ERROR;
        }

        hi = akc_hex_digit(in[i + 1]);
        lo = akc_hex_digit(in[i + 2]);

        if (hi < 0 || lo < 0) {
            return AKC_ERROR;
        }

        out[n++] = (unsigned char) (hi << 4 | lo);
        i += 2;
    }

    *out_len = n;

    return AKC_OK;
}


size_t
akc_field_remove(const unsigned char *in, size_t len, const akc_field_t *f,
    char sep, unsigned char *out)
{
    size_t  start, end, n;

    /*
     * in without the field and one separator next to it, every other
     * byte kept in order: the following one ("a&k=1&b" is "a&b"), else
     * the one before ("a&k=1" is "a"); for cookies, the blanks after
     * the separator go with it
     */

    start = f->start;
    end = f->end;

    /* a cookie's value ends before the spaces that precede its ";" */

    while (sep == ';' && end < len && akc_is_space(in[end])) {
        end++;
    }

    if (end < len && in[end] == (unsigned char) sep) {
        end++;

        while (sep == ';' && end < len && akc_is_space(in[end])) {
            end++;
        }

    } else {
        while (sep == ';' && start > 0 && akc_is_space(in[start - 1])) {
            start--;
        }

        if (start > 0 && in[start - 1] == (unsigned char) sep) {
            start--;
        }
    }

    n = start;
    memmove(out, in, start);
    memmove(out + n, in + end, len - end);

    return n + len - end;
}


/*
 * The next run, from *pos, of at least AKC_KEY_RUN_MIN characters of
 * urlsafe base64 (base62, "-" and "_") with lowercase and uppercase
 * letters, in which a lowercase letter is followed by an uppercase one,
 * or a digit is next to a letter, at least AKC_KEY_RUN_CHANGES times:
 * a random token (the body of a key whatever was done to its prefix,
 * its separator or its length; "ak_" + token_urlsafe(24); "sk_live_..."),
 * while words joined by "-" or "_" or in camel case change a few times
 * only, and a hex hash, a UUID or a word have one case.  Returns its
 * length, with *pos at its start, or 0 with *pos at the end.
 */

size_t
akc_key_run(const unsigned char *p, size_t len, size_t *pos)
{
    size_t    i, start, changes;
    unsigned  cases, c, prev;

    i = *pos;

    while (i < len) {

        if (!(akc_class[p[i]] & AKC_C_BASE62) && p[i] != '-' && p[i] != '_')
        {
            i++;
            continue;
        }

        start = i;
        cases = 0;
        changes = 0;
        prev = 0;

        while (i < len
               && ((akc_class[p[i]] & AKC_C_BASE62)
                   || p[i] == '-' || p[i] == '_'))
        {
            /* 1: lowercase, 2: uppercase, 4: a digit, 0: "-" or "_" */

            if (p[i] >= 'a' && p[i] <= 'z') {
                c = 1;

            } else if (p[i] >= 'A' && p[i] <= 'Z') {
                c = 2;

            } else if (p[i] >= '0' && p[i] <= '9') {
                c = 4;

            } else {
                c = 0;
            }

            if (prev != 0 && c != 0
                && ((prev == 1 && c == 2) || (prev == 4) != (c == 4)))
            {
                changes++;
            }

            cases |= c;
            prev = c;
            i++;
        }

        if (i - start >= AKC_KEY_RUN_MIN
            && (cases & 3) == 3
            && changes >= AKC_KEY_RUN_CHANGES)
        {
            *pos = start;
            return i - start;
        }
    }

    *pos = len;

    return 0;
}


size_t
akc_mask_keys(unsigned char *p, size_t len)
{
    size_t          i, j, start, n, pos, run;
    akc_key_kind_e  kind;

    /*
     * Every generated key in p (a prefix, "_", 32 base62 and a checksum,
     * matching or not: a key with a typo is all but the key) keeps its
     * prefix and four characters, as its hint does, and the rest becomes
     * "*": for text about to be logged that may hold a key, such as a
     * request line.  Returns how many.
     */

    n = 0;

    for (i = 0; i + 1 + AKC_GEN_TAIL_LEN <= len; i++) {

        if (p[i] != '_') {
            continue;
        }

        for (j = i + 1; j < i + 1 + AKC_GEN_TAIL_LEN; j++) {
            if (!(akc_class[p[j]] & AKC_C_BASE62)) {
                break;
            }
        }

        if (j < i + 1 + AKC_GEN_TAIL_LEN) {
            continue;
        }

        /* the longest prefix first */

        start = i;

        while (start > 0 && i - start < AKC_PREFIX_MAX_LEN
               && (akc_class[p[start - 1]] & AKC_C_PREFIX
                   || p[start - 1] == '_'))
        {
            start--;
        }

        for ( /* void */ ; start < i; start++) {
            kind = akc_key_classify(p + start, j - start);

            if (kind == AKC_KEY_GENERATED || kind == AKC_KEY_BAD_CHECKSUM) {
                memset(p + i + 5, '*', AKC_GEN_TAIL_LEN - 4);
                n++;
                break;
            }
        }

        i = j - 1;
    }

    /* what is left of a key whose prefix or length was changed */

    pos = 0;

    while ((run = akc_key_run(p, len, &pos)) != 0) {
        memset(p + pos + 4, '*', run - 4);
        pos += run;
        n++;
    }

    return n;
}


akc_status_e
akc_check_key(MDB_txn *txn, const akc_dbs_t *dbs, const akc_secret_t *secret,
    const unsigned char *key, size_t len, int64_t now, akc_record_t *rec,
    int *mdb_rc)
{
    akc_key_kind_e  kind;

    *mdb_rc = MDB_SUCCESS;

    kind = akc_key_classify(key, len);

    if (kind == AKC_KEY_INVALID || kind == AKC_KEY_BAD_CHECKSUM) {
        return AKC_STATUS_MALFORMED;
    }

    return akc_lookup_key(txn, dbs, secret, key, len, now, rec, mdb_rc);
}


akc_status_e
akc_lookup_key(MDB_txn *txn, const akc_dbs_t *dbs,
    const akc_secret_t *secret, const unsigned char *key, size_t len,
    int64_t now, akc_record_t *rec, int *mdb_rc)
{
    int            rc;
    MDB_val        k, v;
    unsigned char  hash[AKC_HASH_LEN];

    /* for a key that akc_key_classify() accepted */

    *mdb_rc = MDB_SUCCESS;

    akc_hash(secret, key, len, hash);

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = hash;

    rc = mdb_get(txn, dbs->keys, &k, &v);

    if (rc == MDB_NOTFOUND) {
        return AKC_STATUS_UNKNOWN;
    }

    if (rc != MDB_SUCCESS) {
        *mdb_rc = rc;
        return AKC_STATUS_ERROR;
    }

    if (akc_record_decode(rec, v.mv_data, v.mv_size) != AKC_OK) {
        *mdb_rc = MDB_CORRUPTED;
        return AKC_STATUS_ERROR;
    }

    return akc_record_status(rec, now);
}
