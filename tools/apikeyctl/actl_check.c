
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl check: the files against the meta page, the meta entries,
 * every record and its times, the ids that lead to them and the
 * rotation links between them, all in one read transaction.  Each
 * problem is a line on standard output; a key is named by its id, or by
 * the first bytes of its hash, never by the whole hash.
 */


#include "actl.h"


#define ACTL_CHECK_HEX          4       /* bytes of a hash shown */
#define ACTL_CHECK_HEX_LEN      (2 * ACTL_CHECK_HEX + sizeof("..."))

/* 9999-12-31T23:59:59Z: the last time RFC 3339, and so apikeyctl, shows */
#define ACTL_CHECK_TIME_MAX     253402300799LL

/* actl_check_find(): no such id */
#define ACTL_CHECK_NO_ID        -2


typedef struct {
    actl_ctx_t             *ctx;
    MDB_txn                *txn;
    uint64_t                keys;
    uint64_t                ids;
    uint64_t                problems;
} actl_check_t;


typedef int (*actl_check_entry_pt)(actl_check_t *chk, MDB_val *k, MDB_val *v);


static int actl_check_begin(actl_check_t *chk);
static void actl_check_files(actl_check_t *chk);
static int actl_check_meta(actl_check_t *chk);
static int actl_check_fingerprint(actl_check_t *chk);
static int actl_check_u64(actl_check_t *chk, const char *name,
    uint64_t *value);
static int actl_check_walk(actl_check_t *chk, MDB_dbi dbi, uint64_t *count,
    actl_check_entry_pt handler);
static int actl_check_record(actl_check_t *chk, MDB_val *k, MDB_val *v);
static void actl_check_lifetime(actl_check_t *chk, const akc_record_t *rec);
static int actl_check_instant(actl_check_t *chk, const akc_record_t *rec,
    const char *name, int64_t t);
static int actl_check_links(actl_check_t *chk, const akc_record_t *rec);
static int actl_check_link(actl_check_t *chk, const akc_record_t *rec,
    const akc_str_t *link, int forward);
static int actl_check_id(actl_check_t *chk, MDB_val *k, MDB_val *v);
static int actl_check_find(actl_check_t *chk, const akc_str_t *id,
    akc_record_t *rec);
static const char *actl_check_hex(const void *data, size_t len,
    char out[ACTL_CHECK_HEX_LEN]);
static void actl_problem(actl_check_t *chk, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


int
actl_cmd_check(actl_ctx_t *ctx, int argc, char **argv)
{
    int           c, rc;
    actl_check_t  chk;

    static struct option  options[] = {
        { NULL, 0, NULL, 0 }
    };

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        return actl_option_error(ctx, c, argv);
    }

    if (optind != argc) {
        return actl_usage_error(ctx, "unexpected argument \"%s\"",
                                argv[optind]);
    }

    memset(&chk, 0, sizeof(actl_check_t));
    chk.ctx = ctx;

    /* a database that cannot be opened at all is an error, not a problem */

    if (actl_open(ctx, MDB_RDONLY) != ACTL_OK) {
        return ACTL_FAIL;
    }

    rc = actl_check_begin(&chk);

    if (rc == ACTL_OK) {
        rc = actl_check_meta(&chk);
    }

    if (rc == ACTL_OK) {
        rc = actl_check_walk(&chk, ctx->dbs.keys, &chk.keys,
                             actl_check_record);
    }

    if (rc == ACTL_OK) {
        rc = actl_check_walk(&chk, ctx->dbs.ids, &chk.ids, actl_check_id);
    }

    if (rc == ACTL_OK) {
        printf("keys: %llu\n", (unsigned long long) chk.keys);
        printf("ids: %llu\n", (unsigned long long) chk.ids);
    }

    if (chk.txn != NULL) {
        mdb_txn_abort(chk.txn);
    }

    actl_close(ctx);

    if (rc == ACTL_FAIL) {
        return ACTL_FAIL;
    }

    /* ACTL_OK, or ACTL_INVALID: a problem that stopped the check */

    printf("problems: %llu\n", (unsigned long long) chk.problems);

    return chk.problems ? ACTL_FAIL : ACTL_OK;
}


/*
 * The read transaction, as actl_begin() makes it, except that a data
 * file that does not hold its pages, or a lock file that is not the
 * data file's, is a problem to print with the numbers behind it.
 */

static int
actl_check_begin(actl_check_t *chk)
{
    int              rc, retried;
    actl_ctx_t      *ctx;
    struct timespec  ts;

    ctx = chk->ctx;

    /*
     * the numbers first, and out: a data file cut short may end before
     * a page of the free list that akc_env_check() reads, and SIGBUS
     * ends apikeyctl with its message (actl_sigbus_init())
     */

    actl_check_files(chk);

    (void) fflush(stdout);

    for (retried = 0; /* void */; retried = 1) {

        rc = mdb_txn_begin(ctx->env, NULL, MDB_RDONLY, &chk->txn);

        if (rc == MDB_MAP_RESIZED) {
            rc = mdb_env_set_mapsize(ctx->env, 0);
            if (rc == MDB_SUCCESS) {
                rc = mdb_txn_begin(ctx->env, NULL, MDB_RDONLY, &chk->txn);
            }
        }

        if (rc != MDB_SUCCESS) {
            chk->txn = NULL;
            actl_mdb_error(ctx, "mdb_txn_begin", rc);
            return ACTL_FAIL;
        }

        rc = akc_env_check(chk->txn, 0);

        if (rc != AKC_ELAG || retried) {
            break;
        }

        mdb_txn_abort(chk->txn);
        chk->txn = NULL;

        ts.tv_sec = 0;
        ts.tv_nsec = ACTL_LAG_RETRY_MS * 1000000L;
        (void) nanosleep(&ts, NULL);
    }

    if (rc == AKC_ETRUNCATED || rc == AKC_ELOCK || rc == AKC_ELAG) {
        actl_problem(chk, "%s", akc_meta_strerror(rc));
        return ACTL_INVALID;
    }

    if (rc != AKC_OK) {
        actl_error(ctx, "open \"%s\": %s", ctx->db, akc_meta_strerror(rc));
        return ACTL_FAIL;
    }

    rc = akc_dbs_open(chk->txn, &ctx->dbs, 0);

    if (rc != MDB_SUCCESS) {
        actl_problem(chk, "%s",
                     akc_meta_strerror(rc == MDB_NOTFOUND ? AKC_EUNINIT
                                                          : rc));
        return ACTL_INVALID;
    }

    return ACTL_OK;
}


/*
 * The numbers behind akc_env_check(): the meta page may claim more
 * pages than the file holds when the last of them were freed before
 * they were ever written, so the figures alone are not a problem.
 */

static void
actl_check_files(actl_check_t *chk)
{
    MDB_env           *env;
    MDB_stat           ms;
    struct stat        st;
    MDB_envinfo        info;
    mdb_filehandle_t   fd;

    env = chk->ctx->env;

    if (mdb_env_get_fd(env, &fd) == MDB_SUCCESS && fstat(fd, &st) == 0) {
        printf("data file: %llu bytes\n", (unsigned long long) st.st_size);
    }

    if (mdb_env_stat(env, &ms) == MDB_SUCCESS
        && mdb_env_info(env, &info) == MDB_SUCCESS)
    {
        printf("meta page: %llu pages of %u bytes (%llu bytes)\n",
               (unsigned long long) info.me_last_pgno + 1, ms.ms_psize,
               ((unsigned long long) info.me_last_pgno + 1) * ms.ms_psize);
    }
}


static int
actl_check_meta(actl_check_t *chk)
{
    int        rc;
    uint64_t   value;
    char       t[AKC_TIME_LEN + 1];

    rc = actl_check_u64(chk, AKC_META_FORMAT, &value);
    if (rc == ACTL_FAIL) {
        return ACTL_FAIL;
    }

    if (rc == ACTL_OK) {
        printf("format: %llu\n", (unsigned long long) value);

        /* records of another format are not ours to judge */

        if (value == 1) {
            actl_problem(chk, "%s", akc_meta_strerror(AKC_EOLDFORMAT));
            return ACTL_INVALID;
        }

        if (value != AKC_FORMAT_VERSION) {
            actl_problem(chk, "format version %llu is unknown to this "
                         "apikeyctl, which reads %d",
                         (unsigned long long) value, AKC_FORMAT_VERSION);
            return ACTL_INVALID;
        }
    }

    if (actl_check_fingerprint(chk) != ACTL_OK) {
        return ACTL_FAIL;
    }

    rc = actl_check_u64(chk, AKC_META_GENERATION, &value);

    if (rc == ACTL_OK) {
        printf("generation: %llu\n", (unsigned long long) value);
    }

    if (rc != ACTL_FAIL) {
        rc = actl_check_u64(chk, AKC_META_CHANGED, &value);
    }

    if (rc == ACTL_OK) {
        if (value == 0 || value > INT64_MAX
            || akc_time_format((int64_t) value, t) == 0)
        {
            actl_problem(chk, "meta \"%s\" is not a time (%llu)",
                         AKC_META_CHANGED, (unsigned long long) value);

        } else {
            printf("changed: %s\n", t);
        }
    }

    if (rc != ACTL_FAIL) {
        rc = actl_check_u64(chk, AKC_META_MAPSIZE, &value);
    }

    if (rc == ACTL_OK && value == 0) {
        actl_problem(chk, "meta \"%s\" is 0", AKC_META_MAPSIZE);
    }

    return (rc == ACTL_FAIL) ? ACTL_FAIL : ACTL_OK;
}


/* akc_meta_check() of the fingerprint, whatever the format version */

static int
actl_check_fingerprint(actl_check_t *chk)
{
    int            rc;
    MDB_val        k, v;
    unsigned char  fp[AKC_FINGERPRINT_LEN];

    k.mv_size = sizeof(AKC_META_FINGERPRINT) - 1;
    k.mv_data = AKC_META_FINGERPRINT;

    rc = mdb_get(chk->txn, chk->ctx->dbs.meta, &k, &v);

    if (rc == MDB_NOTFOUND) {
        actl_problem(chk, "meta \"%s\" is missing", AKC_META_FINGERPRINT);
        return ACTL_OK;
    }

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(chk->ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }

    if (v.mv_size != AKC_FINGERPRINT_LEN) {
        actl_problem(chk, "meta \"%s\" is %zu bytes, not %d",
                     AKC_META_FINGERPRINT, v.mv_size, AKC_FINGERPRINT_LEN);
        return ACTL_OK;
    }

    akc_secret_fingerprint(&chk->ctx->secret, fp);

    if (sodium_memcmp(v.mv_data, fp, AKC_FINGERPRINT_LEN) != 0) {
        printf("secret: does not match the fingerprint\n");
        actl_problem(chk, "%s", akc_meta_strerror(AKC_ESECRET));
        return ACTL_OK;
    }

    printf("secret: matches the fingerprint\n");

    return ACTL_OK;
}


/* ACTL_OK, ACTL_INVALID for a problem reported, ACTL_FAIL for an error */

static int
actl_check_u64(actl_check_t *chk, const char *name, uint64_t *value)
{
    int  rc;

    rc = akc_meta_get_u64(chk->txn, &chk->ctx->dbs, name, value);

    switch (rc) {

    case MDB_SUCCESS:
        return ACTL_OK;

    case MDB_NOTFOUND:
        actl_problem(chk, "meta \"%s\" is missing", name);
        return ACTL_INVALID;

    case MDB_CORRUPTED:
        actl_problem(chk, "meta \"%s\" is not an 8-byte number", name);
        return ACTL_INVALID;

    default:
        actl_mdb_error(chk->ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }
}


/* every entry of a sub-database, to its handler */

static int
actl_check_walk(actl_check_t *chk, MDB_dbi dbi, uint64_t *count,
    actl_check_entry_pt handler)
{
    int          rc;
    MDB_val      k, v;
    MDB_cursor  *cur;

    rc = mdb_cursor_open(chk->txn, dbi, &cur);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(chk->ctx, "mdb_cursor_open", rc);
        return ACTL_FAIL;
    }

    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    {
        (*count)++;

        if (handler(chk, &k, &v) != ACTL_OK) {
            mdb_cursor_close(cur);
            return ACTL_FAIL;
        }
    }

    mdb_cursor_close(cur);

    if (rc != MDB_NOTFOUND) {
        actl_mdb_error(chk->ctx, "mdb_cursor_get", rc);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/* one entry of keys: its record, the ids entry of its id, its links */

static int
actl_check_record(actl_check_t *chk, MDB_val *k, MDB_val *v)
{
    int            rc;
    MDB_val        id, hash;
    akc_record_t   rec;
    char           q[ACTL_QUOTE_LEN];
    char           hex[ACTL_CHECK_HEX_LEN], hex2[ACTL_CHECK_HEX_LEN];

    actl_check_hex(k->mv_data, k->mv_size, hex);

    if (k->mv_size != AKC_HASH_LEN) {
        actl_problem(chk, "key %s: %zu bytes, where a hash is %d",
                     hex, k->mv_size, AKC_HASH_LEN);
        return ACTL_OK;
    }

    if (akc_record_decode(&rec, v->mv_data, v->mv_size) != AKC_OK) {
        actl_problem(chk, "key %s: its record (%zu bytes) does not decode",
                     hex, v->mv_size);
        return ACTL_OK;
    }

    id.mv_size = rec.id.len;
    id.mv_data = (void *) rec.id.data;

    rc = mdb_get(chk->txn, chk->ctx->dbs.ids, &id, &hash);

    if (rc == MDB_NOTFOUND) {
        actl_problem(chk, "key %s (%s): no ids entry for its id",
                     actl_quote(rec.id.data, rec.id.len, q), hex);

    } else if (rc != MDB_SUCCESS) {
        actl_mdb_error(chk->ctx, "mdb_get", rc);
        return ACTL_FAIL;

    /* an ids entry that is not a hash at all is reported with the ids */

    } else if (hash.mv_size == AKC_HASH_LEN
               && memcmp(hash.mv_data, k->mv_data, AKC_HASH_LEN) != 0)
    {
        actl_problem(chk, "key %s (%s): the ids entry of its id points "
                     "at another key (%s)",
                     actl_quote(rec.id.data, rec.id.len, q), hex,
                     actl_check_hex(hash.mv_data, hash.mv_size, hex2));
    }

    actl_check_lifetime(chk, &rec);

    return actl_check_links(chk, &rec);
}


/*
 * The times a record may carry: 0 is none, a time is between the epoch
 * and 9999-12-31T23:59:59Z, and a key that is valid from one time and
 * expires at another expires after it starts, and a retired key
 * expires; when it was created is not checked.
 */

static void
actl_check_lifetime(actl_check_t *chk, const akc_record_t *rec)
{
    int   ok;
    char  q[ACTL_QUOTE_LEN], t[AKC_TIME_LEN + 1], t2[AKC_TIME_LEN + 1];

    ok = actl_check_instant(chk, rec, "not_before", rec->not_before);
    ok &= actl_check_instant(chk, rec, "expires", rec->expires);

    if (ok && rec->not_before != 0 && rec->expires != 0
        && rec->expires <= rec->not_before)
    {
        actl_problem(chk, "key %s: expires %s is not after not_before %s",
                     actl_quote(rec->id.data, rec->id.len, q),
                     actl_time(rec->expires, t),
                     actl_time(rec->not_before, t2));
    }

    /* a retired key (rotate) ends: nothing lifts its end but "expire" */

    if ((rec->flags & AKC_FLAG_RETIRED) && rec->expires == 0) {
        actl_problem(chk, "key %s is retired but never expires",
                     actl_quote(rec->id.data, rec->id.len, q));
    }
}


/* 1: none, or a time apikeyctl can show; 0: a problem, reported */

static int
actl_check_instant(actl_check_t *chk, const akc_record_t *rec,
    const char *name, int64_t t)
{
    char  q[ACTL_QUOTE_LEN];

    if (t < 0) {
        actl_problem(chk, "key %s: %s is negative (%lld)",
                     actl_quote(rec->id.data, rec->id.len, q), name,
                     (long long) t);
        return 0;
    }

    if (t > ACTL_CHECK_TIME_MAX) {
        actl_problem(chk, "key %s: %s is after 9999-12-31T23:59:59Z (%lld)",
                     actl_quote(rec->id.data, rec->id.len, q), name,
                     (long long) t);
        return 0;
    }

    return 1;
}


/*
 * Rotation links come in pairs: the old key is replaced by the new one,
 * which replaces the old one.  A link names a key in the database:
 * revoke removes the links to the key it revokes, so that an id given
 * again is never taken for the key that had it.
 */

static int
actl_check_links(actl_check_t *chk, const akc_record_t *rec)
{
    if (rec->replaced_by.len
        && actl_check_link(chk, rec, &rec->replaced_by, 1) != ACTL_OK)
    {
        return ACTL_FAIL;
    }

    if (rec->replaces.len
        && actl_check_link(chk, rec, &rec->replaces, 0) != ACTL_OK)
    {
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


static int
actl_check_link(actl_check_t *chk, const akc_record_t *rec,
    const akc_str_t *link, int forward)
{
    int                rc;
    akc_record_t       other;
    const char        *what, *back_what;
    const akc_str_t   *back;
    char               q[ACTL_QUOTE_LEN], q2[ACTL_QUOTE_LEN];
    char               q3[ACTL_QUOTE_LEN];

    what = forward ? "is replaced by" : "replaces";
    back_what = forward ? "replaces" : "is replaced by";

    if (link->len == rec->id.len
        && memcmp(link->data, rec->id.data, link->len) == 0)
    {
        actl_problem(chk, "key %s %s itself",
                     actl_quote(rec->id.data, rec->id.len, q), what);
        return ACTL_OK;
    }

    rc = actl_check_find(chk, link, &other);

    if (rc == ACTL_CHECK_NO_ID) {
        actl_problem(chk, "key %s %s %s, which is not in the database",
                     actl_quote(rec->id.data, rec->id.len, q), what,
                     actl_quote(link->data, link->len, q2));
        return ACTL_OK;
    }

    if (rc != ACTL_OK) {
        /* ACTL_INVALID: the ids entry or the record is reported elsewhere */
        return (rc == ACTL_FAIL) ? ACTL_FAIL : ACTL_OK;
    }

    back = forward ? &other.replaces : &other.replaced_by;

    if (back->len == rec->id.len
        && memcmp(back->data, rec->id.data, back->len) == 0)
    {
        return ACTL_OK;
    }

    actl_problem(chk, "key %s %s %s, which %s %s",
                 actl_quote(rec->id.data, rec->id.len, q), what,
                 actl_quote(link->data, link->len, q2), back_what,
                 back->len ? actl_quote(back->data, back->len, q3)
                           : "no key");

    return ACTL_OK;
}


/* one entry of ids: a hash, of a key whose record has this id */

static int
actl_check_id(actl_check_t *chk, MDB_val *k, MDB_val *v)
{
    int            rc;
    MDB_val        r;
    const char    *id;
    akc_record_t   rec;
    char           q[ACTL_QUOTE_LEN], q2[ACTL_QUOTE_LEN];
    char           hex[ACTL_CHECK_HEX_LEN];

    id = actl_quote(k->mv_data, k->mv_size, q);

    if (!akc_id_valid(k->mv_data, k->mv_size)) {
        actl_problem(chk, "ids entry %s: not a valid id", id);
    }

    if (v->mv_size != AKC_HASH_LEN) {
        actl_problem(chk, "ids entry %s: %zu bytes, where a hash is %d",
                     id, v->mv_size, AKC_HASH_LEN);
        return ACTL_OK;
    }

    actl_check_hex(v->mv_data, v->mv_size, hex);

    rc = mdb_get(chk->txn, chk->ctx->dbs.keys, v, &r);

    if (rc == MDB_NOTFOUND) {
        actl_problem(chk, "ids entry %s points at a key that does not "
                     "exist (%s)", id, hex);
        return ACTL_OK;
    }

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(chk->ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }

    /* a record that does not decode is reported with the keys */

    if (akc_record_decode(&rec, r.mv_data, r.mv_size) != AKC_OK) {
        return ACTL_OK;
    }

    if (rec.id.len != k->mv_size
        || memcmp(rec.id.data, k->mv_data, k->mv_size) != 0)
    {
        actl_problem(chk, "ids entry %s points at the key of id %s (%s)",
                     id, actl_quote(rec.id.data, rec.id.len, q2), hex);
    }

    return ACTL_OK;
}


/*
 * The record of an id, when ids and keys agree on it: ACTL_CHECK_NO_ID
 * when there is no such id, ACTL_INVALID when they do not agree; what is
 * wrong with them is reported by the walks over keys and ids.
 */

static int
actl_check_find(actl_check_t *chk, const akc_str_t *id, akc_record_t *rec)
{
    int      rc;
    MDB_val  k, v;

    k.mv_size = id->len;
    k.mv_data = (void *) id->data;

    rc = mdb_get(chk->txn, chk->ctx->dbs.ids, &k, &v);

    if (rc == MDB_NOTFOUND) {
        return ACTL_CHECK_NO_ID;
    }

    if (rc == MDB_SUCCESS) {
        if (v.mv_size != AKC_HASH_LEN) {
            return ACTL_INVALID;
        }

        rc = mdb_get(chk->txn, chk->ctx->dbs.keys, &v, &v);
    }

    if (rc == MDB_NOTFOUND) {
        return ACTL_INVALID;
    }

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(chk->ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }

    if (akc_record_decode(rec, v.mv_data, v.mv_size) != AKC_OK
        || rec->id.len != id->len
        || memcmp(rec->id.data, id->data, id->len) != 0)
    {
        return ACTL_INVALID;
    }

    return ACTL_OK;
}


/* a hash is named by its first bytes only */

static const char *
actl_check_hex(const void *data, size_t len, char out[ACTL_CHECK_HEX_LEN])
{
    size_t  n;

    n = (len < ACTL_CHECK_HEX) ? len : ACTL_CHECK_HEX;

    sodium_bin2hex(out, 2 * ACTL_CHECK_HEX + 1, data, n);

    if (len > n) {
        memcpy(out + 2 * n, "...", sizeof("..."));
    }

    return out;
}


static void
actl_problem(actl_check_t *chk, const char *fmt, ...)
{
    va_list  args;

    chk->problems++;

    fputs("problem: ", stdout);

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    fputc('\n', stdout);
}
