
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
    uint64_t                map_size;
    uint64_t                map_used;
    uint64_t                percent;    /* of the map used, in 1/100 % */
    uint64_t                readers_used;
    uint64_t                readers_max;
    uint64_t                format;
    uint64_t                generation;
    uint64_t                changed;
    uint64_t                follow_version;     /* apikeyctl follow */
    uint64_t                follow_synced;
    int64_t                 now;
    unsigned                followed:1;
    char                    fingerprint[2 * ACTL_STATS_FP_LEN + 1];
} actl_stats_t;


static int actl_stats_keys(actl_ctx_t *ctx, MDB_txn *txn,
    actl_stats_t *st);
static int actl_stats_env(actl_ctx_t *ctx, MDB_txn *txn, actl_stats_t *st);
static int actl_stats_reader(const char *msg, void *data);
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


/*
 * The map is used up to the last page the meta page claims, freed
 * pages included: LMDB reuses them, but never gives them back.
 */

static int
actl_stats_env(actl_ctx_t *ctx, MDB_txn *txn, actl_stats_t *st)
{
    int                rc;
    MDB_stat           ms;
    struct stat        fst;
    MDB_envinfo        info;
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

    rc = mdb_env_stat(ctx->env, &ms);

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_info(ctx->env, &info);
    }

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_env_info", rc);
        return ACTL_FAIL;
    }

    st->data_size = (uint64_t) fst.st_size;
    st->map_size = (uint64_t) info.me_mapsize;
    st->map_used = ((uint64_t) info.me_last_pgno + 1) * ms.ms_psize;

    if (st->map_size != 0) {
        st->percent = st->map_used * 10000 / st->map_size;
    }

    st->readers_max = info.me_maxreaders;

    /*
     * The slots held by live processes: mdb_reader_check() has cleared
     * those of dead ones when the environment was opened.  The slot of
     * this read transaction is not counted: it is free again as soon as
     * apikeyctl exits.
     */

    rc = mdb_reader_list(ctx->env, actl_stats_reader, st);
    if (rc < 0) {
        actl_error(ctx, "mdb_reader_list() failed");
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/* one line of mdb_reader_list(): "pid thread txnid", or a header */

static int
actl_stats_reader(const char *msg, void *data)
{
    actl_stats_t  *st = data;

    char  *end;
    long   pid;

    pid = strtol(msg, &end, 10);

    if (end == msg || pid <= 0 || (pid_t) pid == getpid()) {
        return 0;
    }

    st->readers_used++;

    return 0;
}


static int
actl_stats_meta(actl_ctx_t *ctx, MDB_txn *txn, actl_stats_t *st)
{
    int          rc;
    MDB_val      k, v;
    const char  *name;

    name = AKC_META_FORMAT;
    rc = akc_meta_get_u64(txn, &ctx->dbs, name, &st->format);

    if (rc == MDB_SUCCESS) {
        name = AKC_META_GENERATION;
        rc = akc_meta_get_u64(txn, &ctx->dbs, name, &st->generation);
    }

    if (rc == MDB_SUCCESS) {
        name = AKC_META_CHANGED;
        rc = akc_meta_get_u64(txn, &ctx->dbs, name, &st->changed);
    }

    if (rc == MDB_SUCCESS) {
        name = AKC_META_FOLLOW_VERSION;
        rc = akc_meta_get_u64(txn, &ctx->dbs, name, &st->follow_version);

        if (rc == MDB_SUCCESS) {
            name = AKC_META_FOLLOW_SYNCED;
            rc = akc_meta_get_u64(txn, &ctx->dbs, name, &st->follow_synced);
        }

        if (rc == MDB_SUCCESS) {
            st->followed = 1;
            st->now = ctx->now;

        } else if (rc == MDB_NOTFOUND) {
            rc = MDB_SUCCESS;
        }
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
                    (unsigned long long) st->map_size);
    actl_stats_line("map_used", "%llu bytes (%llu.%02llu%%)",
                    (unsigned long long) st->map_used,
                    (unsigned long long) st->percent / 100,
                    (unsigned long long) st->percent % 100);
    actl_stats_line("readers_used", "%llu",
                    (unsigned long long) st->readers_used);
    actl_stats_line("readers_free", "%llu of %llu",
                    (unsigned long long) (st->readers_max - st->readers_used),
                    (unsigned long long) st->readers_max);
    actl_stats_line("format", "%llu", (unsigned long long) st->format);
    actl_stats_line("fingerprint", "%s...", st->fingerprint);
    actl_stats_line("generation", "%llu",
                    (unsigned long long) st->generation);
    actl_stats_line("changed", "%s",
                    (st->changed && st->changed <= INT64_MAX
                     && akc_time_format((int64_t) st->changed, t))
                    ? t : "-");

    if (st->followed) {
        actl_stats_line("follow_version", "%llu",
                        (unsigned long long) st->follow_version);
        actl_stats_line("follow_synced", "%s",
                        (st->follow_synced && st->follow_synced <= INT64_MAX
                         && akc_time_format((int64_t) st->follow_synced, t))
                        ? t : "-");
        actl_stats_line("follow_lag", "%lld s",
                        (long long) (st->now - (int64_t) st->follow_synced));
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
    actl_stats_int("map_size", st->map_size);
    actl_stats_int("map_used", st->map_used);
    json_object_set_new(obj, "map_used_percent",
                        json_real((double) st->percent / 100));
    actl_stats_int("readers_used", st->readers_used);
    actl_stats_int("readers_free", st->readers_max - st->readers_used);
    actl_stats_int("readers_max", st->readers_max);
    actl_stats_int("format", st->format);
    actl_json_str(obj, "fingerprint", st->fingerprint,
                  2 * ACTL_STATS_FP_LEN);
    actl_stats_int("generation", st->generation);
    actl_json_time(obj, "changed",
                   st->changed <= INT64_MAX ? (int64_t) st->changed : 0);

    if (st->followed) {
        actl_stats_int("follow_version", st->follow_version);
        actl_json_time(obj, "follow_synced",
                       st->follow_synced <= INT64_MAX
                       ? (int64_t) st->follow_synced : 0);
        actl_stats_int("follow_lag", st->now - (int64_t) st->follow_synced);
    }

#undef actl_stats_int

    json_dumpf(obj, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
    fputc('\n', stdout);

    json_decref(obj);

    return ACTL_OK;
}
