
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl revoke, disable, enable and expire: the updates of keys by id.
 */


#include "actl.h"


static int actl_update(actl_ctx_t *ctx, int argc, char **argv, actl_op_e op,
    int64_t at);
static int actl_update_one(actl_ctx_t *ctx, MDB_txn *txn, const char *id,
    actl_op_e op, int64_t at);


int
actl_cmd_revoke(actl_ctx_t *ctx, int argc, char **argv)
{
    return actl_update(ctx, argc, argv, ACTL_OP_REVOKE, 0);
}


int
actl_cmd_disable(actl_ctx_t *ctx, int argc, char **argv)
{
    return actl_update(ctx, argc, argv, ACTL_OP_DISABLE, 0);
}


int
actl_cmd_enable(actl_ctx_t *ctx, int argc, char **argv)
{
    return actl_update(ctx, argc, argv, ACTL_OP_ENABLE, 0);
}


int
actl_cmd_expire(actl_ctx_t *ctx, int argc, char **argv)
{
    int           c;
    char          err[ACTL_ERR_LEN];
    int64_t       at;
    const char   *when;

    static struct option  options[] = {
        { "at",         required_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 }
    };

    when = NULL;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'a':
            when = optarg;
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
                       ACTL_OP_EXPIRE, at);
}


static int
actl_update(actl_ctx_t *ctx, int argc, char **argv, actl_op_e op,
    int64_t at)
{
    int       i, c, rc;
    MDB_txn  *txn;
    char      t[AKC_TIME_LEN + 1];

    static struct option  options[] = {
        { NULL, 0, NULL, 0 }
    };

    if (op != ACTL_OP_EXPIRE) {
        while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
            return actl_option_error(ctx, c, argv);
        }

    } else {
        /* expire: the options were parsed, argv[0] is the last of them */
        optind = 1;
    }

    if (optind == argc) {
        return actl_usage_error(ctx, "expected one or more IDs");
    }

    txn = NULL;

    rc = actl_start(ctx, 0, &txn);
    if (rc != ACTL_OK) {
        return rc;
    }

    for (i = optind; i < argc; i++) {
        rc = actl_update_one(ctx, txn, argv[i], op, at);
        if (rc != ACTL_OK) {
            goto abort;
        }
    }

    rc = akc_meta_touch(txn, &ctx->dbs, ctx->now);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_put", rc);
        rc = ACTL_FAIL;
        goto abort;
    }

    rc = actl_commit(ctx, &txn);
    if (rc != ACTL_OK) {
        goto abort;
    }

    for (i = optind; i < argc; i++) {
        switch (op) {

        case ACTL_OP_REVOKE:
            printf("revoked \"%s\"\n", argv[i]);
            break;

        case ACTL_OP_DISABLE:
            printf("disabled \"%s\"\n", argv[i]);
            break;

        case ACTL_OP_ENABLE:
            printf("enabled \"%s\"\n", argv[i]);
            break;

        case ACTL_OP_EXPIRE:
            printf("expires \"%s\" at %s\n", argv[i], actl_time(at, t));
            break;
        }
    }

abort:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    actl_close(ctx);

    return rc;
}


static int
actl_update_one(actl_ctx_t *ctx, MDB_txn *txn, const char *id, actl_op_e op,
    int64_t at)
{
    int            rc;
    MDB_val        k, v;
    akc_record_t   rec;
    unsigned char  hash[AKC_HASH_LEN], buf[AKC_RECORD_MAX_LEN];

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
        rc = mdb_del(txn, ctx->dbs.ids, &k, NULL);

        if (rc == MDB_SUCCESS) {
            k.mv_size = AKC_HASH_LEN;
            k.mv_data = hash;

            rc = mdb_del(txn, ctx->dbs.keys, &k, NULL);
        }

        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_del", rc);
            return ACTL_FAIL;
        }

        return ACTL_OK;
    }

    switch (op) {

    case ACTL_OP_DISABLE:
        rec.flags |= AKC_FLAG_DISABLED;
        break;

    case ACTL_OP_ENABLE:
        rec.flags &= ~AKC_FLAG_DISABLED;
        break;

    default: /* ACTL_OP_EXPIRE */
        rec.expires = at;
        break;
    }

    /* rec points into the map: encode it before anything is written */

    rc = akc_record_encode(&rec, buf, sizeof(buf));
    if (rc < 0) {
        actl_error(ctx, "akc_record_encode() failed");
        return ACTL_FAIL;
    }

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = hash;
    v.mv_size = rc;
    v.mv_data = buf;

    rc = mdb_put(txn, ctx->dbs.keys, &k, &v, 0);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_put", rc);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}
