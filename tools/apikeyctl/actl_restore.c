
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl restore: a copy (a backup, or another database) is read,
 * checked whole, and its keys replace those of the live database in
 * one write transaction: running workers see the old keys or the new
 * ones, never a mix, and no file of the live database is replaced.
 * Reading a copy (actl_copy.c) is shared with backup, which reads back
 * what it wrote.
 *
 * What changes is said before anything is: keys that come back (a key
 * revoked since the backup is valid again), keys whose record changes
 * (a key disabled since is enabled again) and keys removed, by counts
 * and by ids; --dry-run checks everything, says it, and stops there.
 */


#include "actl.h"


#define ACTL_REPORT_IDS         20      /* named in each list, then "and N
                                           more" */

#define ACTL_CHANGE_ENABLED     0x01
#define ACTL_CHANGE_DISABLED    0x02
#define ACTL_CHANGE_EXPIRES     0x04
#define ACTL_CHANGE_OTHER       0x08
#define ACTL_CHANGES            4

#define ACTL_NAME_LEN           (ACTL_QUOTE_LEN + 64)


/* keys of one kind: how many, and the first ones by name */

typedef struct {
    size_t                  n;
    char                    names[ACTL_REPORT_IDS][ACTL_NAME_LEN];
} actl_restore_list_t;


typedef struct {
    actl_copy_t            *src;
    size_t                  before;
    size_t                  unchanged;
    size_t                  changes[ACTL_CHANGES];
    actl_restore_list_t     back;       /* in the copy, not in the live */
    actl_restore_list_t     changed;    /* in both, another record */
    actl_restore_list_t     removed;    /* in the live, not in the copy */
    unsigned                force:1;
    unsigned                dry_run:1;
} actl_restore_t;


static int actl_restore_live(actl_ctx_t *ctx, MDB_txn **txn);
static int actl_restore_refused(actl_ctx_t *ctx, actl_restore_t *r);
static int actl_restore_write(actl_ctx_t *ctx, MDB_txn *txn, void *data);
static int actl_restore_diff(actl_ctx_t *ctx, MDB_txn *txn,
    actl_restore_t *r);
static void actl_restore_add(actl_restore_list_t *list, MDB_val *k,
    MDB_val *v, unsigned changes);
static unsigned actl_restore_changes(MDB_val *live, MDB_val *copy);
static int actl_restore_same(akc_str_t *a, akc_str_t *b);
static void actl_restore_report(actl_restore_t *r);
static void actl_restore_print(actl_restore_list_t *list, const char *what);


static const char  *actl_change_names[ACTL_CHANGES] = {
    "enabled again",
    "disabled again",
    "another expiry",
    "other fields"
};




int
actl_cmd_restore(actl_ctx_t *ctx, int argc, char **argv)
{
    int              c, rc;
    char            *live, *path;
    MDB_txn         *txn;
    struct stat      lst, st;
    actl_copy_t      src;
    actl_restore_t  *r;
    char             q[ACTL_QUOTE_LEN];

    static struct option  options[] = {
        { "force",      no_argument,       NULL, 'F' },
        { "dry-run",    no_argument,       NULL, 'n' },
        { NULL, 0, NULL, 0 }
    };

    /* the lists of names are some kilobytes: not on the stack */

    r = calloc(1, sizeof(actl_restore_t));
    if (r == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'F':
            r->force = 1;
            break;

        case 'n':
            r->dry_run = 1;
            break;

        default:
            free(r);
            return actl_option_error(ctx, c, argv);
        }
    }

    if (optind == argc) {
        free(r);
        return actl_usage_error(ctx, "expected the backup directory SRC");
    }

    if (argc - optind > 1) {
        free(r);
        return actl_usage_error(ctx, "unexpected argument %s",
                                actl_quote(argv[optind + 1],
                                           strlen(argv[optind + 1]), q));
    }

    if (argv[optind][0] == '\0') {
        free(r);
        return actl_usage_error(ctx, "empty SRC");
    }

    if (strcmp(argv[optind], "-") == 0) {
        free(r);
        return actl_usage_error(ctx, "SRC is a directory; \"-\" (standard "
                                "input) is not one");
    }

    memset(&src, 0, sizeof(actl_copy_t));
    src.path = argv[optind];

    r->src = &src;

    live = NULL;
    path = NULL;
    txn = NULL;

    rc = actl_open(ctx, 0);
    if (rc != ACTL_OK) {
        goto done;
    }

    /*
     * the live database first: a secret file that is not its own is
     * said of it, not of the copy
     */

    rc = actl_restore_live(ctx, &txn);
    if (rc != ACTL_OK) {
        goto done;
    }

    /* the live database's own files, given as the backup */

    live = actl_path(ctx->db, AKC_DATA_FILE);
    path = actl_path(src.path, AKC_DATA_FILE);

    if (live == NULL || path == NULL) {
        actl_error(ctx, "out of memory");
        rc = ACTL_FAIL;
        goto done;
    }

    if (stat(live, &lst) == 0 && stat(path, &st) == 0
        && lst.st_dev == st.st_dev && lst.st_ino == st.st_ino)
    {
        actl_error(ctx, "%s is the live database itself; nothing was "
                   "changed", actl_quote(src.path, strlen(src.path), q));
        rc = ACTL_FAIL;
        goto done;
    }

    actl_copy_sigbus_init(src.path);

    rc = actl_copy_open(ctx, &src);

    if (rc == ACTL_OK) {
        rc = actl_copy_verify(ctx, &src);
    }

    actl_sigbus_init(ctx);

    /* the live database is read from here on: its SIGBUS is its own */

    if (rc == ACTL_OK && r->dry_run) {
        rc = actl_restore_diff(ctx, txn, r);
    }

    if (rc != ACTL_OK) {
        actl_error(ctx, "nothing was changed");
        goto done;
    }

    if (r->dry_run) {
        mdb_txn_abort(txn);
        txn = NULL;

        actl_restore_report(r);

        rc = actl_restore_refused(ctx, r);

        if (rc == ACTL_OK) {
            printf("nothing was changed (--dry-run)\n");
        }

        goto done;
    }

    /* mdb_txn_begin(): one transaction of an environment in a thread */

    mdb_txn_abort(txn);
    txn = NULL;

    if (src.nkeys == 0 && !r->force) {
        rc = actl_restore_refused(ctx, r);
        goto done;
    }

    rc = actl_write(ctx, actl_restore_write, r);
    if (rc != ACTL_OK) {
        goto done;
    }

    actl_restore_report(r);

done:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    actl_copy_close(&src);
    actl_close(ctx);

    free(live);
    free(path);
    free(r);

    return rc;
}


/*
 * A read transaction of the live database, checked as actl_begin()
 * checks it, but a secret that is not the database's names the secret
 * file: the operator gave it, and it is what to look at.
 */

static int
actl_restore_live(actl_ctx_t *ctx, MDB_txn **txn)
{
    int   rc;
    char  q[ACTL_QUOTE_LEN], q2[ACTL_QUOTE_LEN];

    if (actl_begin(ctx, MDB_RDONLY, 0, 0, txn) != ACTL_OK) {
        return ACTL_FAIL;
    }

    rc = akc_meta_check(*txn, &ctx->dbs, &ctx->secret);

    if (rc == AKC_OK) {
        return ACTL_OK;
    }

    if (rc == AKC_ESECRET) {
        actl_error(ctx, "the live database %s was made with another secret "
                   "than the one in the secret file %s (-s); nothing was "
                   "changed",
                   actl_quote(ctx->db, strlen(ctx->db), q),
                   actl_quote(ctx->secret_path, strlen(ctx->secret_path),
                              q2));

    } else {
        actl_error(ctx, "open %s: %s; nothing was changed",
                   actl_quote(ctx->db, strlen(ctx->db), q),
                   akc_meta_strerror(rc));
    }

    mdb_txn_abort(*txn);
    *txn = NULL;

    return ACTL_FAIL;
}


/* what needs --force: an empty copy, more than half of the keys removed */

static int
actl_restore_refused(actl_ctx_t *ctx, actl_restore_t *r)
{
    char  q[ACTL_QUOTE_LEN];

    if (r->force) {
        return ACTL_OK;
    }

    if (r->src->nkeys == 0) {
        actl_error(ctx, "%s holds no keys: restoring it would remove every "
                   "key; nothing was changed (add --force to do it)",
                   actl_quote(r->src->path, strlen(r->src->path), q));
        return ACTL_INVALID;
    }

    if (r->removed.n > r->before / 2) {
        actl_error(ctx, "restoring %s would remove %zu of the %zu key%s, "
                   "more than half; nothing was changed (add --force to do "
                   "it)", actl_quote(r->src->path, strlen(r->src->path), q),
                   r->removed.n, r->before, r->before == 1 ? "" : "s");
        return ACTL_INVALID;
    }

    return ACTL_OK;
}


/*
 * One write transaction: the keys of the live database are dropped and
 * the copy's put in their place, in the copy's order, which is the
 * order of the trees (MDB_APPEND).  The meta of the live database, its
 * format and secret fingerprint, stays; actl_write() bumps generation.
 * What changes is counted in this transaction, from the start again if
 * the map is grown, and said after the commit.
 */

static int
actl_restore_write(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    actl_restore_t *r = data;

    int           rc, i;
    MDB_dbi       from[2], to[2];
    MDB_val       k, v;
    MDB_cursor   *cur;
    actl_copy_t  *src;

    src = r->src;

    rc = actl_restore_diff(ctx, txn, r);
    if (rc != ACTL_OK) {
        return rc;
    }

    rc = actl_restore_refused(ctx, r);
    if (rc != ACTL_OK) {
        return rc;
    }

    from[0] = src->dbs.keys;
    from[1] = src->dbs.ids;
    to[0] = ctx->dbs.keys;
    to[1] = ctx->dbs.ids;

    for (i = 0; i < 2; i++) {

        rc = mdb_drop(txn, to[i], 0);
        if (rc != MDB_SUCCESS) {
            return actl_mdb_write_error(ctx, "mdb_drop", rc);
        }

        rc = mdb_cursor_open(src->txn, from[i], &cur);
        if (rc != MDB_SUCCESS) {
            return actl_mdb_write_error(ctx, "mdb_cursor_open", rc);
        }

        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
             rc == MDB_SUCCESS;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        {
            rc = mdb_put(txn, to[i], &k, &v, MDB_APPEND);
            if (rc != MDB_SUCCESS) {
                mdb_cursor_close(cur);
                return actl_mdb_write_error(ctx, "mdb_put", rc);
            }
        }

        mdb_cursor_close(cur);

        if (rc != MDB_NOTFOUND) {
            return actl_mdb_write_error(ctx, "mdb_cursor_get", rc);
        }
    }

    return ACTL_OK;
}


/*
 * The keys of the live database (txn) and of the copy, side by side in
 * the order of their hashes: a key in the copy only comes back, one in
 * the live database only is removed, one in both with other record
 * bytes changes.
 */

static int
actl_restore_diff(actl_ctx_t *ctx, MDB_txn *txn, actl_restore_t *r)
{
    int          rc, lrc, crc, cmp;
    MDB_val      lk, lv, ck, cv;
    MDB_cursor  *lcur, *ccur;
    unsigned     changes, i;

    r->before = 0;
    r->unchanged = 0;
    r->back.n = 0;
    r->changed.n = 0;
    r->removed.n = 0;
    memset(r->changes, 0, sizeof(r->changes));

    rc = mdb_cursor_open(txn, ctx->dbs.keys, &lcur);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_cursor_open", rc);
    }

    rc = mdb_cursor_open(r->src->txn, r->src->dbs.keys, &ccur);
    if (rc != MDB_SUCCESS) {
        mdb_cursor_close(lcur);
        return actl_mdb_write_error(ctx, "mdb_cursor_open", rc);
    }

    lrc = mdb_cursor_get(lcur, &lk, &lv, MDB_FIRST);
    crc = mdb_cursor_get(ccur, &ck, &cv, MDB_FIRST);

    while (lrc == MDB_SUCCESS || crc == MDB_SUCCESS) {

        if (lrc != MDB_SUCCESS) {
            cmp = 1;

        } else if (crc != MDB_SUCCESS) {
            cmp = -1;

        } else {
            cmp = mdb_cmp(txn, ctx->dbs.keys, &lk, &ck);
        }

        if (cmp < 0) {
            actl_restore_add(&r->removed, &lk, &lv, 0);

        } else if (cmp > 0) {
            actl_restore_add(&r->back, &ck, &cv, 0);

        } else if (lv.mv_size == cv.mv_size
                   && memcmp(lv.mv_data, cv.mv_data, lv.mv_size) == 0)
        {
            r->unchanged++;

        } else {
            changes = actl_restore_changes(&lv, &cv);

            for (i = 0; i < ACTL_CHANGES; i++) {
                if (changes & (1u << i)) {
                    r->changes[i]++;
                }
            }

            actl_restore_add(&r->changed, &ck, &cv, changes);
        }

        if (cmp <= 0) {
            r->before++;
            lrc = mdb_cursor_get(lcur, &lk, &lv, MDB_NEXT);
        }

        if (cmp >= 0) {
            crc = mdb_cursor_get(ccur, &ck, &cv, MDB_NEXT);
        }

        if ((lrc != MDB_SUCCESS && lrc != MDB_NOTFOUND)
            || (crc != MDB_SUCCESS && crc != MDB_NOTFOUND))
        {
            break;
        }
    }

    mdb_cursor_close(lcur);
    mdb_cursor_close(ccur);

    rc = (lrc != MDB_NOTFOUND) ? lrc : crc;

    if (rc != MDB_NOTFOUND) {
        return actl_mdb_write_error(ctx, "mdb_cursor_get", rc);
    }

    return ACTL_OK;
}


/* a key is named by its id, or by its hash when it has none */

static void
actl_restore_add(actl_restore_list_t *list, MDB_val *k, MDB_val *v,
    unsigned changes)
{
    char          *p, *last;
    size_t         i;
    const char    *sep;
    akc_record_t   rec;
    char           q[ACTL_QUOTE_LEN];

    if (list->n++ >= ACTL_REPORT_IDS) {
        return;
    }

    p = list->names[list->n - 1];
    last = p + ACTL_NAME_LEN;

    if (akc_record_decode(&rec, v->mv_data, v->mv_size) == AKC_OK
        && rec.id.len > 0)
    {
        p += snprintf(p, last - p, "%s",
                      actl_quote(rec.id.data, rec.id.len, q));

    } else {
        p += snprintf(p, last - p, "(no id, hash ");

        for (i = 0; i < 4 && i < k->mv_size; i++) {
            p += snprintf(p, last - p, "%02x",
                          ((unsigned char *) k->mv_data)[i]);
        }

        p += snprintf(p, last - p, ")");
    }

    sep = " (";

    for (i = 0; i < ACTL_CHANGES; i++) {
        if (changes & (1u << i)) {
            p += snprintf(p, last - p, "%s%s", sep, actl_change_names[i]);
            sep = ", ";
        }
    }

    if (changes) {
        (void) snprintf(p, last - p, ")");
    }
}


/* how the record of a key differs in the copy from the live one */

static unsigned
actl_restore_changes(MDB_val *live, MDB_val *copy)
{
    unsigned      changes;
    akc_record_t  l, c;

    if (akc_record_decode(&l, live->mv_data, live->mv_size) != AKC_OK
        || akc_record_decode(&c, copy->mv_data, copy->mv_size) != AKC_OK)
    {
        return ACTL_CHANGE_OTHER;
    }

    changes = 0;

    if ((l.flags & AKC_FLAG_DISABLED) && !(c.flags & AKC_FLAG_DISABLED)) {
        changes |= ACTL_CHANGE_ENABLED;
    }

    if (!(l.flags & AKC_FLAG_DISABLED) && (c.flags & AKC_FLAG_DISABLED)) {
        changes |= ACTL_CHANGE_DISABLED;
    }

    if (l.expires != c.expires) {
        changes |= ACTL_CHANGE_EXPIRES;
    }

    if (l.created != c.created
        || l.not_before != c.not_before
        || (l.flags & ~AKC_FLAG_DISABLED) != (c.flags & ~AKC_FLAG_DISABLED)
        || !actl_restore_same(&l.id, &c.id)
        || !actl_restore_same(&l.subject, &c.subject)
        || !actl_restore_same(&l.scopes, &c.scopes)
        || !actl_restore_same(&l.plan, &c.plan)
        || !actl_restore_same(&l.hint, &c.hint)
        || !actl_restore_same(&l.replaces, &c.replaces)
        || !actl_restore_same(&l.replaced_by, &c.replaced_by))
    {
        changes |= ACTL_CHANGE_OTHER;
    }

    /* other bytes for the same fields: another encoding, said as such */

    return changes ? changes : ACTL_CHANGE_OTHER;
}


static int
actl_restore_same(akc_str_t *a, akc_str_t *b)
{
    return a->len == b->len
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}


/*
 * After the commit (or instead of it, --dry-run): the counts, then each
 * kind of change with the keys it concerns.
 */

static void
actl_restore_report(actl_restore_t *r)
{
    int          n;
    size_t       i;
    const char  *sep;
    char         q[ACTL_QUOTE_LEN];
    char         what[256];

    printf("%s %zu key%s from %s (%zu key%s before): %zu unchanged, "
           "%zu back, %zu changed, %zu removed\n",
           r->dry_run ? "would restore" : "restored",
           r->src->nkeys, r->src->nkeys == 1 ? "" : "s",
           actl_quote(r->src->path, strlen(r->src->path), q),
           r->before, r->before == 1 ? "" : "s",
           r->unchanged, r->back.n, r->changed.n, r->removed.n);

    actl_restore_print(&r->back, "back (in the backup, not in the live "
                       "database: revoked since the backup?)");

    n = snprintf(what, sizeof(what), "changed");
    sep = " (";

    for (i = 0; i < ACTL_CHANGES; i++) {
        if (r->changes[i] && n > 0 && (size_t) n < sizeof(what)) {
            n += snprintf(what + n, sizeof(what) - n, "%s%zu %s", sep,
                          r->changes[i], actl_change_names[i]);
            sep = ", ";
        }
    }

    if (sep[0] == ',' && n > 0 && (size_t) n < sizeof(what)) {
        (void) snprintf(what + n, sizeof(what) - n, ")");
    }

    actl_restore_print(&r->changed, what);

    actl_restore_print(&r->removed, "removed (in the live database, not "
                       "in the backup)");
}


static void
actl_restore_print(actl_restore_list_t *list, const char *what)
{
    size_t  i;

    if (list->n == 0) {
        return;
    }

    printf("%zu key%s %s:", list->n, list->n == 1 ? "" : "s", what);

    for (i = 0; i < list->n && i < ACTL_REPORT_IDS; i++) {
        printf("%s %s", i ? "," : "", list->names[i]);
    }

    if (list->n > ACTL_REPORT_IDS) {
        printf(" and %zu more", list->n - ACTL_REPORT_IDS);
    }

    printf("\n");
}
