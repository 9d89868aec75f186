
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl revoke, disable, enable and expire: the updates of keys by id.
 */


#include "actl.h"


/* the state of each id given */

#define ACTL_UPD_APPLY          0
#define ACTL_UPD_MISSING        1
#define ACTL_UPD_REPEATED       2       /* given again, applied once */
#define ACTL_UPD_REPEATED_NOTE  3       /* the first repeat, noted */


typedef struct {
    char                   *id;
    size_t                  i;
} actl_update_id_t;


/* what the write transaction of an update needs, kept outside it */

typedef struct {
    char                  **ids;
    size_t                  n;
    unsigned char          *state;
    actl_update_id_t       *sorted;
    char                  **missing;
    size_t                 *missing_i;
    unsigned char          *found;
    actl_op_e               op;
    int64_t                 at;
    unsigned                ignore_missing:1;
} actl_update_t;


static int actl_update(actl_ctx_t *ctx, int argc, char **argv, actl_op_e op,
    int64_t at, int ignore_missing);
static int actl_update_alloc(actl_ctx_t *ctx, actl_update_t *upd);
static void actl_update_free(actl_update_t *upd);
static int actl_update_id_cmp(const void *one, const void *two);
static int actl_update_write(actl_ctx_t *ctx, MDB_txn *txn, void *data);
static int actl_update_missing(actl_ctx_t *ctx, MDB_txn *txn,
    actl_update_t *upd, size_t nmissing);
static int actl_id_missing(actl_ctx_t *ctx, MDB_txn *txn, const char *id);
static int actl_update_one(actl_ctx_t *ctx, MDB_txn *txn, const char *id,
    actl_op_e op, int64_t at, int *changed);
static int actl_revoke_one(actl_ctx_t *ctx, MDB_txn *txn, MDB_val *id,
    const akc_record_t *rec);
static int actl_unlink(actl_ctx_t *ctx, MDB_txn *txn, const akc_str_t *link,
    MDB_val *id, int forward);


int
actl_cmd_revoke(actl_ctx_t *ctx, int argc, char **argv)
{
    return actl_update(ctx, argc, argv, ACTL_OP_REVOKE, 0, 0);
}


int
actl_cmd_disable(actl_ctx_t *ctx, int argc, char **argv)
{
    return actl_update(ctx, argc, argv, ACTL_OP_DISABLE, 0, 0);
}


int
actl_cmd_enable(actl_ctx_t *ctx, int argc, char **argv)
{
    return actl_update(ctx, argc, argv, ACTL_OP_ENABLE, 0, 0);
}


int
actl_cmd_expire(actl_ctx_t *ctx, int argc, char **argv)
{
    int           c, ignore;
    char          err[ACTL_ERR_LEN];
    int64_t       at;
    const char   *when;

    static struct option  options[] = {
        { "at",             required_argument, NULL, 'a' },
        { "ignore-missing", no_argument,       NULL, 'i' },
        { NULL, 0, NULL, 0 }
    };

    when = NULL;
    ignore = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'a':
            when = optarg;
            break;

        case 'i':
            ignore = 1;
            break;

        default:
            return actl_option_error(ctx, c, argv);
        }
    }

    if (when == NULL) {
        return actl_usage_error(ctx, "--at WHEN is required");
    }

    if (when[0] == '\0'
        || actl_check_time(ACTL_COL_EXPIRES, when, strlen(when), ctx->now,
                           &at, err, sizeof(err))
           != ACTL_OK)
    {
        return actl_usage_error(ctx, "invalid time \"%s\" (now, an RFC 3339 "
                                "time such as 2027-01-31T00:00:00Z, or a "
                                "duration such as 30d; at most "
                                "9999-12-31T23:59:59Z)", when);
    }

    return actl_update(ctx, argc - optind + 1, argv + optind - 1,
                       ACTL_OP_EXPIRE, at, ignore);
}


static int
actl_update(actl_ctx_t *ctx, int argc, char **argv, actl_op_e op,
    int64_t at, int ignore_missing)
{
    int             c, rc;
    char           *buf, **ids;
    size_t          i, n;
    actl_update_t   upd;
    char            t[AKC_TIME_LEN + 1], q[ACTL_QUOTE_LEN];

    static struct option  options[] = {
        { "ignore-missing", no_argument,       NULL, 'i' },
        { NULL, 0, NULL, 0 }
    };

    if (op != ACTL_OP_EXPIRE) {
        while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
            switch (c) {

            case 'i':
                ignore_missing = 1;
                break;

            default:
                return actl_option_error(ctx, c, argv);
            }
        }

    } else {
        /* expire: the options were parsed, argv[0] is the last of them */
        optind = 1;
    }

    if (optind == argc) {
        return actl_usage_error(ctx, "expected one or more IDs, or \"-\" "
                                "for standard input");
    }

    for (c = optind; c < argc; c++) {
        if (strcmp(argv[c], "-") == 0 && argc - optind > 1) {
            return actl_usage_error(ctx, "\"-\" (standard input) must be "
                                    "the only ID");
        }
    }

    buf = NULL;
    memset(&upd, 0, sizeof(actl_update_t));

    if (strcmp(argv[optind], "-") == 0) {
        rc = actl_read_ids(ctx, &buf, &ids, &n);
        if (rc != ACTL_OK) {
            return rc;
        }

    } else {
        ids = argv + optind;
        n = argc - optind;
    }

    upd.ids = ids;
    upd.n = n;
    upd.op = op;
    upd.at = at;
    upd.ignore_missing = ignore_missing;

    rc = actl_update_alloc(ctx, &upd);
    if (rc != ACTL_OK) {
        goto free;
    }

    rc = actl_open(ctx, 0);
    if (rc != ACTL_OK) {
        goto free;
    }

    rc = actl_write(ctx, actl_update_write, &upd);

    actl_close(ctx);

    if (rc != ACTL_OK) {
        goto free;
    }

    for (i = 0; i < n; i++) {
        if (upd.state[i] == ACTL_UPD_MISSING) {
            actl_error(ctx, "no key with id %s, ignored",
                       actl_quote(ids[i], strlen(ids[i]), q));

        } else if (upd.state[i] == ACTL_UPD_REPEATED_NOTE) {
            actl_error(ctx, "id %s given more than once, applied once",
                       actl_quote(ids[i], strlen(ids[i]), q));
        }
    }

    for (i = 0; i < n; i++) {
        if (upd.state[i] != ACTL_UPD_APPLY) {
            continue;
        }

        switch (op) {

        case ACTL_OP_REVOKE:
            printf("revoked \"%s\"\n", ids[i]);
            break;

        case ACTL_OP_DISABLE:
            printf("disabled \"%s\"\n", ids[i]);
            break;

        case ACTL_OP_ENABLE:
            printf("enabled \"%s\"\n", ids[i]);
            break;

        case ACTL_OP_EXPIRE:
            printf("expires \"%s\" at %s\n", ids[i], actl_time(at, t));
            break;
        }
    }

free:

    actl_update_free(&upd);

    if (buf != NULL) {
        free(ids);
        actl_secure_free(buf);
    }

    return rc;
}


/*
 * The arrays of an update, made before its transaction: an id given
 * more than once is found in the ids sorted, and applied once.
 */

static int
actl_update_alloc(actl_ctx_t *ctx, actl_update_t *upd)
{
    size_t             i, n;
    actl_update_id_t  *sorted;

    n = upd->n;

    upd->state = calloc(n, 1);
    upd->found = calloc(n, 1);
    upd->sorted = malloc(n * sizeof(actl_update_id_t));
    upd->missing = malloc(n * sizeof(char *));
    upd->missing_i = malloc(n * sizeof(size_t));

    if (upd->state == NULL || upd->found == NULL || upd->sorted == NULL
        || upd->missing == NULL || upd->missing_i == NULL)
    {
        actl_error(ctx, "malloc() failed: %s", strerror(errno));
        return ACTL_FAIL;
    }

    sorted = upd->sorted;

    for (i = 0; i < n; i++) {
        sorted[i].id = upd->ids[i];
        sorted[i].i = i;
    }

    qsort(sorted, n, sizeof(actl_update_id_t), actl_update_id_cmp);

    /* the first given of equal ids sorts first */

    for (i = 1; i < n; i++) {
        if (strcmp(sorted[i].id, sorted[i - 1].id) != 0) {
            continue;
        }

        upd->state[sorted[i].i] =
            (upd->state[sorted[i - 1].i] == ACTL_UPD_APPLY)
            ? ACTL_UPD_REPEATED_NOTE : ACTL_UPD_REPEATED;
    }

    return ACTL_OK;
}


static void
actl_update_free(actl_update_t *upd)
{
    free(upd->state);
    free(upd->found);
    free(upd->sorted);
    free(upd->missing);
    free(upd->missing_i);
}


static int
actl_update_id_cmp(const void *one, const void *two)
{
    const actl_update_id_t  *a = one;
    const actl_update_id_t  *b = two;

    int  rc;

    rc = strcmp(a->id, b->id);

    if (rc != 0) {
        return rc;
    }

    return (a->i > b->i) - (a->i < b->i);
}


/*
 * Run again from the start after the map is grown: the unknown ids that
 * --ignore-missing passes over are noted, and reported after the commit.
 * An update that changes nothing writes nothing: the generation stays.
 */

static int
actl_update_write(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    actl_update_t  *upd = data;

    int     rc, changed;
    size_t  i, nmissing;

    nmissing = 0;

    for (i = 0; i < upd->n; i++) {

        if (upd->state[i] == ACTL_UPD_MISSING) {
            upd->state[i] = ACTL_UPD_APPLY;
        }

        if (upd->state[i] != ACTL_UPD_APPLY) {
            continue;
        }

        rc = actl_id_missing(ctx, txn, upd->ids[i]);

        if (rc == -1) {
            return ACTL_FAIL;
        }

        if (rc == 1) {
            upd->state[i] = ACTL_UPD_MISSING;
            nmissing++;
        }
    }

    if (nmissing) {
        rc = actl_update_missing(ctx, txn, upd, nmissing);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    changed = 0;

    for (i = 0; i < upd->n; i++) {
        if (upd->state[i] != ACTL_UPD_APPLY) {
            continue;
        }

        rc = actl_update_one(ctx, txn, upd->ids[i], upd->op, upd->at,
                             &changed);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    return changed ? ACTL_OK : ACTL_UNCHANGED;
}


/*
 * The ids not in ids: one that a record in keys still holds is a damaged
 * database, never an unknown id, even with --ignore-missing; without it,
 * the first unknown id fails the command.
 */

static int
actl_update_missing(actl_ctx_t *ctx, MDB_txn *txn, actl_update_t *upd,
    size_t nmissing)
{
    int     rc;
    char    q[ACTL_QUOTE_LEN];
    size_t  i, j, m, first;

    m = 0;

    for (j = 0; j < upd->n; j++) {
        i = upd->sorted[j].i;

        if (upd->state[i] == ACTL_UPD_MISSING) {
            upd->missing[m] = upd->ids[i];
            upd->missing_i[m] = i;
            m++;
        }
    }

    rc = actl_keys_find(ctx, txn, upd->missing, m, upd->found);
    if (rc != ACTL_OK) {
        return rc;
    }

    first = upd->n;

    for (j = 0; j < m; j++) {
        if (upd->found[j] && upd->missing_i[j] < first) {
            first = upd->missing_i[j];
        }
    }

    if (first != upd->n) {
        return actl_damaged(ctx, upd->ids[first]);
    }

    if (upd->ignore_missing) {
        return ACTL_OK;
    }

    for (i = 0; i < upd->n; i++) {
        if (upd->state[i] == ACTL_UPD_MISSING) {
            actl_error(ctx, "no key with id %s",
                       actl_quote(upd->ids[i], strlen(upd->ids[i]), q));
            break;
        }
    }

    return ACTL_INVALID;
}


/* 1: no such id, 0: it is there, -1: an error, already reported */

static int
actl_id_missing(actl_ctx_t *ctx, MDB_txn *txn, const char *id)
{
    int      rc;
    size_t   len;
    MDB_val  k, v;

    len = strlen(id);

    if (!akc_id_valid(id, len)) {
        return 1;
    }

    k.mv_size = len;
    k.mv_data = (void *) id;

    rc = mdb_get(txn, ctx->dbs.ids, &k, &v);

    if (rc == MDB_NOTFOUND) {
        return 1;
    }

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_get", rc);
        return -1;
    }

    return 0;
}


static int
actl_update_one(actl_ctx_t *ctx, MDB_txn *txn, const char *id, actl_op_e op,
    int64_t at, int *changed)
{
    int            rc;
    char           t[AKC_TIME_LEN + 1];
    MDB_val        k, v;
    akc_record_t   rec;
    unsigned char  hash[AKC_HASH_LEN];

    rc = actl_lookup(ctx, txn, id, &rec);
    if (rc != ACTL_OK) {
        return rc;
    }

    k.mv_size = strlen(id);
    k.mv_data = (void *) id;

    rc = mdb_get(txn, ctx->dbs.ids, &k, &v);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }

    memcpy(hash, v.mv_data, AKC_HASH_LEN);

    if (op == ACTL_OP_REVOKE) {
        *changed = 1;
        return actl_revoke_one(ctx, txn, &k, &rec);
    }

    /* a key already as asked is left as it is */

    switch (op) {

    case ACTL_OP_DISABLE:
        if (rec.flags & AKC_FLAG_DISABLED) {
            return ACTL_OK;
        }

        rec.flags |= AKC_FLAG_DISABLED;
        break;

    case ACTL_OP_ENABLE:
        if (!(rec.flags & AKC_FLAG_DISABLED)) {
            return ACTL_OK;
        }

        rec.flags &= ~AKC_FLAG_DISABLED;
        break;

    default: /* ACTL_OP_EXPIRE */

        /* as for gen and import: a key expires after it becomes valid */

        if (rec.not_before != 0 && at <= rec.not_before) {
            actl_error(ctx, "key \"%s\" is not valid before %s: it cannot "
                       "expire at or before that; \"apikeyctl revoke %s\" "
                       "ends it now", id, actl_time(rec.not_before, t), id);
            return ACTL_INVALID;
        }

        if (rec.expires == at) {
            return ACTL_OK;
        }

        rec.expires = at;
        break;
    }

    *changed = 1;

    return actl_put_record(ctx, txn, hash, &rec);
}


/*
 * A revoked key takes its rotation links with it: the key it replaces is
 * no longer replaced by it, and the key that replaced it no longer
 * replaces it.  A link then always names a key in the database, and an
 * id given again to another key is never taken for the one revoked.
 */

static int
actl_revoke_one(actl_ctx_t *ctx, MDB_txn *txn, MDB_val *id,
    const akc_record_t *rec)
{
    int        rc;
    char       buf[2 * AKC_ID_MAX_LEN];
    akc_str_t  replaces, replaced_by;

    /* rec points into the map: its links are copied before the deletes */

    if (rec->replaces.len > AKC_ID_MAX_LEN
        || rec->replaced_by.len > AKC_ID_MAX_LEN)
    {
        actl_mdb_error(ctx, "mdb_get", MDB_CORRUPTED);
        return ACTL_FAIL;
    }

    /* an absent link may have no data at all */

    replaces.len = rec->replaces.len;
    replaces.data = buf;

    if (replaces.len) {
        memcpy(buf, rec->replaces.data, replaces.len);
    }

    replaced_by.len = rec->replaced_by.len;
    replaced_by.data = buf + AKC_ID_MAX_LEN;

    if (replaced_by.len) {
        memcpy(buf + AKC_ID_MAX_LEN, rec->replaced_by.data, replaced_by.len);
    }

    rc = actl_del_id(ctx, txn, id);
    if (rc != ACTL_OK) {
        return rc;
    }

    rc = actl_unlink(ctx, txn, &replaces, id, 1);

    if (rc == ACTL_OK) {
        rc = actl_unlink(ctx, txn, &replaced_by, id, 0);
    }

    return rc;
}


/*
 * A key removed, ids and keys kept in step (revoke, and the changes of
 * apikeyctl follow).  By id: the id, and the key it names.  By hash:
 * the key, and its id when that id names it.  Neither there: ACTL_OK.
 * For write handlers: ACTL_MAP_FULL is handed on.  The id given must
 * not point into the map, which a delete may change; what is read
 * there is copied before the deletes.
 */

int
actl_del_id(actl_ctx_t *ctx, MDB_txn *txn, MDB_val *id)
{
    int            rc, has_hash;
    MDB_val        v;
    unsigned char  hash[AKC_HASH_LEN];

    rc = mdb_get(txn, ctx->dbs.ids, id, &v);

    if (rc == MDB_NOTFOUND) {
        return ACTL_OK;
    }

    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_get", rc);
    }

    /* an entry that is not a hash names no key: it goes alone */

    has_hash = (v.mv_size == AKC_HASH_LEN);

    if (has_hash) {
        memcpy(hash, v.mv_data, AKC_HASH_LEN);
    }

    rc = mdb_del(txn, ctx->dbs.ids, id, NULL);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_del", rc);
    }

    return has_hash ? actl_del_hash(ctx, txn, hash) : ACTL_OK;
}


int
actl_del_hash(actl_ctx_t *ctx, MDB_txn *txn, const unsigned char *hash)
{
    int            rc;
    char           id[AKC_ID_MAX_LEN];
    MDB_val        k, v;
    akc_record_t   rec;

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = (void *) hash;

    rc = mdb_get(txn, ctx->dbs.keys, &k, &v);

    if (rc == MDB_NOTFOUND) {
        return ACTL_OK;
    }

    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_get", rc);
    }

    /* a record that does not decode still goes; its id cannot be told */

    if (akc_record_decode(&rec, v.mv_data, v.mv_size) != AKC_OK
        || rec.id.len > AKC_ID_MAX_LEN)
    {
        rec.id.len = 0;
    }

    if (rec.id.len) {
        memcpy(id, rec.id.data, rec.id.len);
    }

    rc = mdb_del(txn, ctx->dbs.keys, &k, NULL);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_del", rc);
    }

    if (rec.id.len == 0) {
        return ACTL_OK;
    }

    k.mv_size = rec.id.len;
    k.mv_data = id;

    rc = mdb_get(txn, ctx->dbs.ids, &k, &v);

    if (rc == MDB_NOTFOUND
        || (rc == MDB_SUCCESS
            && (v.mv_size != AKC_HASH_LEN
                || memcmp(v.mv_data, hash, AKC_HASH_LEN) != 0)))
    {
        /* the id names another key, or none: it stays */
        return ACTL_OK;
    }

    if (rc == MDB_SUCCESS) {
        rc = mdb_del(txn, ctx->dbs.ids, &k, NULL);
    }

    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_del", rc);
    }

    return ACTL_OK;
}


/*
 * The link back to the revoked id in the record of the key a link of it
 * names: replaced_by (forward) or replaces.  A key that is not there, or
 * does not link back, is left as it is: "apikeyctl check" reports it.
 */

static int
actl_unlink(actl_ctx_t *ctx, MDB_txn *txn, const akc_str_t *link,
    MDB_val *id, int forward)
{
    int            rc;
    MDB_val        k, v;
    akc_str_t     *back;
    akc_record_t   rec;
    unsigned char  hash[AKC_HASH_LEN];

    if (link->len == 0) {
        return ACTL_OK;
    }

    k.mv_size = link->len;
    k.mv_data = (void *) link->data;

    rc = mdb_get(txn, ctx->dbs.ids, &k, &v);

    if (rc == MDB_NOTFOUND) {
        return ACTL_OK;
    }

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }

    if (v.mv_size != AKC_HASH_LEN) {
        return ACTL_OK;
    }

    memcpy(hash, v.mv_data, AKC_HASH_LEN);

    rc = mdb_get(txn, ctx->dbs.keys, &v, &v);

    if (rc == MDB_NOTFOUND) {
        return ACTL_OK;
    }

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }

    if (akc_record_decode(&rec, v.mv_data, v.mv_size) != AKC_OK) {
        return ACTL_OK;
    }

    back = forward ? &rec.replaced_by : &rec.replaces;

    if (back->len != id->mv_size
        || memcmp(back->data, id->mv_data, id->mv_size) != 0)
    {
        return ACTL_OK;
    }

    back->len = 0;
    back->data = "";

    return actl_put_record(ctx, txn, hash, &rec);
}
