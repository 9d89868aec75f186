
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl stats: keys by status, the files, the map, the reader
 * slots and the meta entries, from one read transaction.
 */


#include "actl.h"


#define ACTL_STATS_FP_LEN       4       /* bytes of the fingerprint shown */


typedef struct {
    uint64_t                keys;
    uint64_t                valid;
    uint64_t                expired;
    uint64_t                disabled;
    uint64_t                not_yet_valid;
    uint64_t                damaged;
    uint64_t                data_size;
    uint64_t                percent;    /* of the map used, in 1/100 % */
    int64_t                 now;
    akc_stats_t             db;         /* meta, map and readers */
    char                    fingerprint[2 * ACTL_STATS_FP_LEN + 1];
} actl_stats_t;


static int actl_stats_keys(actl_ctx_t *ctx, MDB_txn *txn,
    actl_stats_t *st);
static int actl_stats_env(actl_ctx_t *ctx, MDB_txn *txn, actl_stats_t *st);
static int actl_stats_meta(actl_ctx_t *ctx, MDB_txn *txn,
    actl_stats_t *st);
static void actl_stats_text(actl_stats_t *st);
static int actl_stats_json(actl_ctx_t *ctx, actl_stats_t *st);


int
actl_cmd_stats(actl_ctx_t *ctx, int argc, char **argv)
{
    int            rc, json;
    MDB_txn       *txn;
    actl_stats_t   st;

    static const char  *formats[] = { "text", "json", NULL };

    json = actl_format_only(ctx, argc, argv, formats);
    if (json == -1) {
        return ACTL_USAGE;
    }

    memset(&st, 0, sizeof(actl_stats_t));

    txn = NULL;

    rc = actl_start(ctx, MDB_RDONLY, &txn);
    if (rc != ACTL_OK) {
        return rc;
    }

    rc = actl_stats_keys(ctx, txn, &st);

    if (rc == ACTL_OK) {
        rc = actl_stats_env(ctx, txn, &st);
    }

    if (rc == ACTL_OK) {
        rc = actl_stats_meta(ctx, txn, &st);
    }

    mdb_txn_abort(txn);

    actl_close(ctx);

    if (rc != ACTL_OK) {
        return rc;
    }

    if (json) {
        return actl_stats_json(ctx, &st);
    }

    actl_stats_text(&st);

    return ACTL_OK;
}


/* a record that does not decode is counted, not fatal: check says why */

static int
actl_stats_keys(actl_ctx_t *ctx, MDB_txn *txn, actl_stats_t *st)
{
    int            rc;
    MDB_val        k, v;
    MDB_cursor    *cur;
    akc_record_t   rec;

    rc = mdb_cursor_open(txn, ctx->dbs.keys, &cur);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_cursor_open", rc);
        return ACTL_FAIL;
    }

    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    {
        st->keys++;

        if (akc_record_decode(&rec, v.mv_data, v.mv_size) != AKC_OK) {
            st->damaged++;
            continue;
        }

        switch (akc_record_status(&rec, ctx->now)) {

        case AKC_STATUS_VALID:
            st->valid++;
            break;

        case AKC_STATUS_EXPIRED:
            st->expired++;
            break;

        case AKC_STATUS_DISABLED:
            st->disabled++;
            break;

        default: /* AKC_STATUS_NOT_YET_VALID */
            st->not_yet_valid++;
            break;
        }
    }

    mdb_cursor_close(cur);

    if (rc != MDB_NOTFOUND) {
        actl_mdb_error(ctx, "mdb_cursor_get", rc);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/* the size of the data file, which never shrinks */

static int
actl_stats_env(actl_ctx_t *ctx, MDB_txn *txn, actl_stats_t *st)
{
    int                rc;
    struct stat        fst;
    mdb_filehandle_t   fd;

    rc = mdb_env_get_fd(ctx->env, &fd);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_env_get_fd", rc);
        return ACTL_FAIL;
    }

    if (fstat(fd, &fst) == -1) {
        actl_error(ctx, "stat \"%s/%s\": %s", ctx->db, AKC_DATA_FILE,
                   strerror(errno));
        return ACTL_FAIL;
    }

    st->data_size = (uint64_t) fst.st_size;

    return ACTL_OK;
}


static int
actl_stats_meta(actl_ctx_t *ctx, MDB_txn *txn, actl_stats_t *st)
{
    int          rc;
    MDB_val      k, v;
    const char  *name;

    /*
     * The slots held by live processes: mdb_reader_check() has cleared
     * those of dead ones when the environment was opened.  The slot of
     * this read transaction is not counted: it is free again as soon as
     * apikeyctl exits.
     */

    rc = akc_stats(ctx->env, txn, &ctx->dbs, (long) getpid(), &st->db,
                   &name);

    if (rc != MDB_SUCCESS && strncmp(name, "mdb_", 4) == 0) {
        actl_mdb_error(ctx, name, rc);
        return ACTL_FAIL;
    }

    st->now = ctx->now;

    /*
     * the map is used up to the last page the meta page claims, freed
     * pages included: LMDB reuses them, but never gives them back
     */

    if (st->db.map_size != 0) {
        st->percent = st->db.map_used * 10000 / st->db.map_size;
    }

    if (rc == MDB_SUCCESS) {
        name = AKC_META_FINGERPRINT;

        k.mv_size = sizeof(AKC_META_FINGERPRINT) - 1;
        k.mv_data = AKC_META_FINGERPRINT;

        rc = mdb_get(txn, ctx->dbs.meta, &k, &v);

        if (rc == MDB_SUCCESS && v.mv_size < ACTL_STATS_FP_LEN) {
            rc = MDB_CORRUPTED;
        }
    }

    if (rc != MDB_SUCCESS) {
        actl_error(ctx, "meta \"%s\": %s (run \"apikeyctl check\")", name,
                   mdb_strerror(rc));
        return ACTL_FAIL;
    }

    /* the first bytes tell two databases' secrets apart */

    sodium_bin2hex(st->fingerprint, sizeof(st->fingerprint), v.mv_data,
                   ACTL_STATS_FP_LEN);

    return ACTL_OK;
}


static void
actl_stats_text(actl_stats_t *st)
{
    char  t[AKC_TIME_LEN + 1];

#define actl_stats_line(name, fmt, ...)                                       \
    printf("%-15s " fmt "\n", name ":", __VA_ARGS__)

    actl_stats_line("keys", "%llu", (unsigned long long) st->keys);
    actl_stats_line("valid", "%llu", (unsigned long long) st->valid);
    actl_stats_line("expired", "%llu", (unsigned long long) st->expired);
    actl_stats_line("disabled", "%llu", (unsigned long long) st->disabled);
    actl_stats_line("not_yet_valid", "%llu",
                    (unsigned long long) st->not_yet_valid);
    actl_stats_line("damaged", "%llu", (unsigned long long) st->damaged);
    actl_stats_line("data_size", "%llu bytes",
                    (unsigned long long) st->data_size);
    actl_stats_line("map_size", "%llu bytes",
                    (unsigned long long) st->db.map_size);
    actl_stats_line("map_used", "%llu bytes (%llu.%02llu%%)",
                    (unsigned long long) st->db.map_used,
                    (unsigned long long) st->percent / 100,
                    (unsigned long long) st->percent % 100);
    actl_stats_line("readers_used", "%llu",
                    (unsigned long long) st->db.readers_used);
    actl_stats_line("readers_free", "%llu of %llu",
                    (unsigned long long) (st->db.readers_max
                                          - st->db.readers_used),
                    (unsigned long long) st->db.readers_max);
    actl_stats_line("format", "%llu", (unsigned long long) st->db.format);
    actl_stats_line("fingerprint", "%s...", st->fingerprint);
    actl_stats_line("generation", "%llu",
                    (unsigned long long) st->db.generation);
    actl_stats_line("changed", "%s",
                    (st->db.changed && st->db.changed <= INT64_MAX
                     && akc_time_format((int64_t) st->db.changed, t))
                    ? t : "-");

    if (st->db.followed) {
        actl_stats_line("follow_version", "%llu",
                        (unsigned long long) st->db.follow_version);
        actl_stats_line("follow_synced", "%s",
                        (st->db.follow_synced
                         && st->db.follow_synced <= INT64_MAX
                         && akc_time_format((int64_t) st->db.follow_synced,
                                            t))
                        ? t : "-");
        actl_stats_line("follow_lag", "%lld s",
                        (long long) (st->now - (int64_t) st->db.follow_synced));
    }

#undef actl_stats_line
}


static int
actl_stats_json(actl_ctx_t *ctx, actl_stats_t *st)
{
    json_t  *obj;

    obj = json_object();
    if (obj == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

#define actl_stats_int(name, n)                                               \
    json_object_set_new(obj, name, json_integer((json_int_t) (n)))

    actl_stats_int("keys", st->keys);
    actl_stats_int("valid", st->valid);
    actl_stats_int("expired", st->expired);
    actl_stats_int("disabled", st->disabled);
    actl_stats_int("not_yet_valid", st->not_yet_valid);
    actl_stats_int("damaged", st->damaged);
    actl_stats_int("data_size", st->data_size);
    actl_stats_int("map_size", st->db.map_size);
    actl_stats_int("map_used", st->db.map_used);
    json_object_set_new(obj, "map_used_percent",
                        json_real((double) st->percent / 100));
    actl_stats_int("readers_used", st->db.readers_used);
    actl_stats_int("readers_free", st->db.readers_max - st->db.readers_used);
    actl_stats_int("readers_max", st->db.readers_max);
    actl_stats_int("format", st->db.format);
    actl_json_str(obj, "fingerprint", st->fingerprint,
                  2 * ACTL_STATS_FP_LEN);
    actl_stats_int("generation", st->db.generation);
    actl_json_time(obj, "changed",
                   st->db.changed <= INT64_MAX ? (int64_t) st->db.changed : 0);

    if (st->db.followed) {
        actl_stats_int("follow_version", st->db.follow_version);
        actl_json_time(obj, "follow_synced",
                       st->db.follow_synced <= INT64_MAX
                       ? (int64_t) st->db.follow_synced : 0);
        actl_stats_int("follow_lag", st->now - (int64_t) st->db.follow_synced);
    }

#undef actl_stats_int

    json_dumpf(obj, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
    fputc('\n', stdout);

    json_decref(obj);

    return ACTL_OK;
}
