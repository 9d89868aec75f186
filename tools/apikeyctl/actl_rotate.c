
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl rotate: a new key for the holder of an old one, which keeps
 * working for a grace period; the two records are linked both ways.
 */


#include "actl.h"


#define ACTL_ROTATE_GRACE       86400   /* seconds: 24h */


/* what the write transaction of rotate needs and leaves, kept outside it */

typedef struct {
    const char             *id;         /* the old key's */
    const char             *new_id;     /* NULL: the new key's default id */
    const char             *prefix;     /* NULL: the old key's, or gen's */
    int64_t                 grace_end;
    actl_genkey_t          *key;        /* in secure memory */
    akc_record_t            rec;        /* the new key's */
    int64_t                 old_expires;    /* the old key's, now */
    size_t                  len;
    unsigned char           old[AKC_RECORD_MAX_LEN];
    char                    old_prefix[AKC_PREFIX_MAX_LEN + 1];
} actl_rotate_t;


static int actl_rotate_grace(actl_ctx_t *ctx, const char *s, int64_t *end);
static int actl_rotate_write(actl_ctx_t *ctx, MDB_txn *txn, void *data);
static int actl_rotate_check(actl_ctx_t *ctx, MDB_txn *txn, const char *id,
    const akc_record_t *old);
static int actl_rotate_linked(actl_ctx_t *ctx, MDB_txn *txn,
    const akc_record_t *old);
static const char *actl_rotate_prefix(const akc_record_t *rec,
    char buf[AKC_PREFIX_MAX_LEN + 1]);


int
actl_cmd_rotate(actl_ctx_t *ctx, int argc, char **argv)
{
    int             c, rc, json;
    char           *grace;
    char            err[ACTL_ERR_LEN], t[AKC_TIME_LEN + 1];
    actl_rotate_t  *r;

    static const char  *formats[] = { "text", "json", NULL };

    static struct option  options[] = {
        { "grace",      required_argument, NULL, 'g' },
        { "new-id",     required_argument, NULL, 'i' },
        { "prefix",     required_argument, NULL, 'P' },
        { "format",     required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    r = actl_secure_malloc(sizeof(actl_rotate_t) + sizeof(actl_genkey_t));
    if (r == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    memset(r, 0, sizeof(actl_rotate_t) + sizeof(actl_genkey_t));
    r->key = (actl_genkey_t *) (r + 1);

    grace = NULL;
    json = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'g':
            grace = optarg;
            break;

        case 'i':
            r->new_id = optarg;
            break;

        case 'P':
            r->prefix = optarg;
            break;

        case 'f':
            json = actl_parse_format(ctx, optarg, formats);
            if (json == -1) {
                rc = ACTL_USAGE;
                goto free;
            }
            break;

        default:
            rc = actl_option_error(ctx, c, argv);
            goto free;
        }
    }

    if (argc - optind != 1) {
        rc = actl_usage_error(ctx, "expected one ID");
        goto free;
    }

    r->id = argv[optind];

    if (grace == NULL) {
        r->grace_end = ctx->now + ACTL_ROTATE_GRACE;

    } else if (actl_rotate_grace(ctx, grace, &r->grace_end) != ACTL_OK) {
        rc = actl_usage_error(ctx, "invalid grace \"%s\" (0, or a duration "
                              "such as 24h, 30m, 90s, 7d or 2w)", grace);
        goto free;
    }

    if (r->new_id != NULL
        && actl_check_field(ACTL_COL_ID, r->new_id, strlen(r->new_id), err,
                            sizeof(err))
           != ACTL_OK)
    {
        rc = actl_usage_error(ctx, "--new-id: %s", err);
        goto free;
    }

    if (r->prefix != NULL && !akc_prefix_valid(r->prefix, strlen(r->prefix)))
    {
        rc = actl_usage_error(ctx, "invalid prefix \"%s\" (1 to %d "
                              "lowercase letters or digits, optionally "
                              "followed by \"_\" and 1 to %d more)",
                              r->prefix, AKC_PREFIX_PART_MAX,
                              AKC_PREFIX_PART_MAX);
        goto free;
    }

    /* a closed pipe is an error to report, not a silent death */

    (void) signal(SIGPIPE, SIG_IGN);

    rc = actl_open(ctx, 0);
    if (rc != ACTL_OK) {
        goto free;
    }

    rc = actl_write(ctx, actl_rotate_write, r);

    /* the key is printed after the commit, and after the writer lock */

    actl_close(ctx);

    if (rc != ACTL_OK) {
        goto free;
    }

    actl_gen_print(ctx, &r->rec, r->rec.id.data, r->key, json);

    if (fflush(stdout) == EOF || ferror(stdout)) {
        actl_error(ctx, "write to standard output failed (%s) after the new "
                   "key was stored: nobody may have seen it; revoke it with "
                   "\"apikeyctl revoke %s\" (the old key \"%s\" still %s "
                   "at %s)", strerror(errno), r->rec.id.data, r->id,
                   r->old_expires > ctx->now ? "expires" : "expired",
                   actl_time(r->old_expires, t));
        rc = ACTL_FAIL;
    }

free:

    actl_secure_free(r);

    return rc;
}


/* 0, or a duration from now (24h, 30m, 90s, 7d, 2w): no time, no "now" */

static int
actl_rotate_grace(actl_ctx_t *ctx, const char *s, int64_t *end)
{
    if (strcmp(s, "0") == 0) {
        *end = ctx->now;
        return ACTL_OK;
    }

    return actl_parse_duration(ctx, s, end);
}


/*
 * One write transaction, run again from the start after the map is
 * grown: the old record is copied out of the map before anything is
 * written, the new key is made and stored with a link to the old one,
 * and the old record gets the link back and its shorter expiry.
 */

static int
actl_rotate_write(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    actl_rotate_t  *r = data;

    int             rc;
    size_t          len;
    MDB_val         k, v;
    const char     *prefix;
    akc_record_t    old, *rec;
    unsigned char   hash[AKC_HASH_LEN];

    rc = actl_lookup(ctx, txn, r->id, &old);
    if (rc != ACTL_OK) {
        return rc;
    }

    len = strlen(r->id);

    k.mv_size = len;
    k.mv_data = (void *) r->id;

    rc = mdb_get(txn, ctx->dbs.ids, &k, &v);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }

    memcpy(hash, v.mv_data, AKC_HASH_LEN);

    rc = mdb_get(txn, ctx->dbs.keys, &v, &v);

    if (rc == MDB_SUCCESS && v.mv_size > sizeof(r->old)) {
        rc = MDB_CORRUPTED;
    }

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }

    /* the old record's strings must outlive the writes and the commit */

    memcpy(r->old, v.mv_data, v.mv_size);
    r->len = v.mv_size;

    if (akc_record_decode(&old, r->old, r->len) != AKC_OK) {
        actl_mdb_error(ctx, "mdb_get", MDB_CORRUPTED);
        return ACTL_FAIL;
    }

    rc = actl_rotate_check(ctx, txn, r->id, &old);
    if (rc != ACTL_OK) {
        return rc;
    }

    /*
     * The new key: the old key's subject, scopes and plan, valid now,
     * and never valid for longer than the old key would have been.
     */

    rec = &r->rec;

    memset(rec, 0, sizeof(akc_record_t));

    rec->subject = old.subject;
    rec->scopes = old.scopes;
    rec->plan = old.plan;
    rec->replaces = old.id;
    rec->created = ctx->now;
    rec->hint.data = "";
    rec->replaced_by.data = "";

    rec->expires = old.expires;

    prefix = r->prefix;

    if (prefix == NULL) {
        prefix = actl_rotate_prefix(&old, r->old_prefix);
    }

    rc = actl_gen_store(ctx, txn, rec, prefix, r->new_id, r->key);
    if (rc != ACTL_OK) {
        return rc;
    }

    /*
     * The old key: linked to the new one, and ends with the grace.  It
     * is retired for good: the flag stays when the link goes (revoke of
     * the new key, import --replace), so that no update or import lifts
     * the end of its life; only "expire --at" does.
     */

    old.replaced_by = rec->id;
    old.flags |= AKC_FLAG_RETIRED;

    if (old.expires == 0 || old.expires > r->grace_end) {
        old.expires = r->grace_end;
    }

    /* "--grace 0" in the very second the key became valid */

    if (old.not_before != 0 && old.expires <= old.not_before) {
        old.expires = old.not_before + 1;
    }

    r->old_expires = old.expires;

    return actl_put_record(ctx, txn, hash, &old);
}


/*
 * What refuses a rotation: a disabled key, a key not valid yet or
 * expired, whose holder has nothing to hand over or would get a longer
 * lifetime, and a key already rotated to a key that links back to it.
 */

static int
actl_rotate_check(actl_ctx_t *ctx, MDB_txn *txn, const char *id,
    const akc_record_t *old)
{
    int   rc;
    char  t[AKC_TIME_LEN + 1];

    if (old->flags & AKC_FLAG_DISABLED) {
        actl_error(ctx, "key \"%s\" is disabled: enable it first "
                   "(\"apikeyctl enable %s\") to hand its holder over to a "
                   "new key, or gen a new key", id, id);
        return ACTL_INVALID;
    }

    if (old->not_before != 0 && ctx->now < old->not_before) {
        actl_error(ctx, "key \"%s\" is not valid before %s: nobody can be "
                   "using it yet, so there is nothing to hand over; revoke "
                   "it and gen a new key", id,
                   actl_time(old->not_before, t));
        return ACTL_INVALID;
    }

    rc = actl_rotate_linked(ctx, txn, old);

    if (rc == 1) {
        actl_error(ctx, "key \"%s\" was already rotated to \"%.*s\"; "
                   "rotate \"%.*s\"", id, (int) old->replaced_by.len,
                   old->replaced_by.data, (int) old->replaced_by.len,
                   old->replaced_by.data);
        return ACTL_INVALID;
    }

    if (rc == -1) {
        return ACTL_FAIL;
    }

    if (old->expires != 0 && old->expires <= ctx->now) {
        actl_error(ctx, "key \"%s\" expired at %s: rotation never extends "
                   "a lifetime; \"apikeyctl expire %s --at WHEN\" gives it "
                   "a new expiry first, or gen a new key", id,
                   actl_time(old->expires, t), id);
        return ACTL_INVALID;
    }

    return ACTL_OK;
}


/*
 * 1: the key the old one is replaced by is there and replaces it, 0: no
 * such link, -1: an error, reported.  revoke removes the links to the key
 * it revokes: a link that does not pair (in a database written before
 * that, or damaged) is no rotation, and the new link takes its place.
 */

static int
actl_rotate_linked(actl_ctx_t *ctx, MDB_txn *txn, const akc_record_t *old)
{
    int            rc;
    MDB_val        k, v;
    akc_record_t   next;

    if (old->replaced_by.len == 0) {
        return 0;
    }

    k.mv_size = old->replaced_by.len;
    k.mv_data = (void *) old->replaced_by.data;

    rc = mdb_get(txn, ctx->dbs.ids, &k, &v);

    if (rc == MDB_SUCCESS) {
        if (v.mv_size != AKC_HASH_LEN) {
            return 0;
        }

        rc = mdb_get(txn, ctx->dbs.keys, &v, &v);
    }

    if (rc == MDB_NOTFOUND) {
        return 0;
    }

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_get", rc);
        return -1;
    }

    if (akc_record_decode(&next, v.mv_data, v.mv_size) != AKC_OK
        || next.replaces.len != old->id.len
        || memcmp(next.replaces.data, old->id.data, old->id.len) != 0)
    {
        return 0;
    }

    return 1;
}


/*
 * The prefix of the old key, as its hint shows it when gen or rotate
 * made it: the prefix, "_", four characters and "..."; any other key's
 * replacement gets gen's default prefix.
 */

static const char *
actl_rotate_prefix(const akc_record_t *rec, char buf[AKC_PREFIX_MAX_LEN + 1])
{
    size_t       n;
    const char  *h;

    h = rec->hint.data;

    if (rec->hint.len < sizeof("_xxxx...") || rec->hint.len > AKC_HINT_MAX_LEN
        || memcmp(h + rec->hint.len - 3, "...", 3) != 0)
    {
        return AKC_DEFAULT_PREFIX;
    }

    n = rec->hint.len - (sizeof("_xxxx...") - 1);

    if (n > AKC_PREFIX_MAX_LEN || h[n] != '_' || !akc_prefix_valid(h, n)) {
        return AKC_DEFAULT_PREFIX;
    }

    memcpy(buf, h, n);
    buf[n] = '\0';

    return buf;
}
