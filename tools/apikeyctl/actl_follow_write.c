
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl follow: the local database.  The rows of PostgreSQL are
 * checked as import checks its rows (actl_import_row()); the whole
 * table is written as import --replace writes a file, and the changes
 * after a version one after the other, in version order; either way in
 * one write transaction, with the version it reaches in meta.
 */


#include "actl_follow.h"


static int actl_follow_all(actl_ctx_t *ctx, MDB_txn *txn, void *data);
static int actl_follow_changes(actl_ctx_t *ctx, MDB_txn *txn, void *data);
static int actl_follow_synced(actl_ctx_t *ctx, MDB_txn *txn, void *data);
static int actl_follow_synced_grow(actl_ctx_t *ctx, MDB_txn *txn,
    void *data);
static int actl_follow_meta(actl_follow_t *fl, MDB_txn *txn);
static int actl_follow_generation(actl_follow_t *fl, MDB_txn *txn,
    int check, uint64_t *generation);
static void actl_follow_foreign(actl_follow_t *fl, uint64_t generation);
static int actl_follow_put(actl_follow_t *fl, MDB_txn *txn,
    actl_change_t *ch);
static int actl_follow_del(actl_follow_t *fl, MDB_txn *txn,
    actl_change_t *ch);
static int actl_follow_keep_id(actl_follow_t *fl, actl_change_t *ch,
    const char *id, size_t len);
static time_t actl_follow_now(void);
static int actl_follow_stat(actl_follow_t *fl, const char *name,
    struct stat *st);


/*
 * One follower a database: two, of two PostgreSQL databases or of one,
 * would each take the other's commits for another writer's and
 * synchronise in full every round.  The lock is flock() on the data
 * file LMDB opened (LMDB locks lock.mdb, with fcntl(), which flock()
 * does not meet); no file of its own where nginx reads; the kernel
 * drops it when the follower ends, however it ends.  Another
 * follower found: exit 1, which systemd restarts, as the other (a
 * follow --once from cron) ends soon.
 */

int
actl_follow_lock(actl_follow_t *fl)
{
    int  fd, rc;

    rc = mdb_env_get_fd(fl->ctx->env, &fd);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(fl->ctx, "mdb_env_get_fd", rc);
        return ACTL_FAIL;
    }

    if (flock(fd, LOCK_EX|LOCK_NB) == 0) {
        return actl_follow_stat(fl, AKC_LOCK_FILE, &fl->lock);
    }

    if (errno == EWOULDBLOCK) {
        actl_error(fl->ctx, "another apikeyctl follow is running on \"%s\": "
                   "one follower a database", fl->ctx->db);
        return ACTL_FAIL;
    }

    actl_error(fl->ctx, "flock(\"%s/%s\") failed: %s", fl->ctx->db,
               AKC_DATA_FILE, strerror(errno));

    return ACTL_FAIL;
}


/*
 * The database at the path is still the one opened: one moved into
 * place, or deleted and made again, is for a new follower (systemd
 * starts one), which synchronises it in full.  So is its lock.mdb: one
 * deleted by hand, which nginx needs to open the database, is made
 * again by the new follower (actl_open(), with the group and mode of
 * data.mdb); one replaced is no longer the one LMDB locks.
 */

int
actl_follow_check_env(actl_follow_t *fl)
{
    int           fd, rc;
    char         *path;
    struct stat   st, cur;

    path = actl_path(fl->ctx->db, AKC_DATA_FILE);
    if (path == NULL) {
        actl_error(fl->ctx, "out of memory");
        return ACTL_FAIL;
    }

    rc = ACTL_OK;

    if (mdb_env_get_fd(fl->ctx->env, &fd) == MDB_SUCCESS
        && fstat(fd, &cur) == 0
        && (stat(path, &st) == -1
            || st.st_dev != cur.st_dev || st.st_ino != cur.st_ino))
    {
        actl_error(fl->ctx, "\"%s\" is no longer the database followed "
                   "(moved, replaced or deleted): exiting, to be started "
                   "again on the database there", path);
        rc = ACTL_FAIL;
    }

    free(path);

    if (rc != ACTL_OK) {
        return rc;
    }

    path = actl_path(fl->ctx->db, AKC_LOCK_FILE);
    if (path == NULL) {
        actl_error(fl->ctx, "out of memory");
        return ACTL_FAIL;
    }

    if (stat(path, &st) == -1
        || st.st_dev != fl->lock.st_dev || st.st_ino != fl->lock.st_ino)
    {
        actl_error(fl->ctx, "\"%s\" is no longer the lock file of the "
                   "database followed (deleted or replaced): exiting, to be "
                   "started again, which makes it anew", path);
        rc = ACTL_FAIL;
    }

    free(path);

    return rc;
}


static int
actl_follow_stat(actl_follow_t *fl, const char *name, struct stat *st)
{
    int    rc;
    char  *path;

    path = actl_path(fl->ctx->db, name);
    if (path == NULL) {
        actl_error(fl->ctx, "out of memory");
        return ACTL_FAIL;
    }

    rc = ACTL_OK;

    if (stat(path, st) == -1) {
        actl_error(fl->ctx, "stat(\"%s\") failed: %s", path,
                   strerror(errno));
        rc = ACTL_FAIL;
    }

    free(path);

    return rc;
}


/* the version reached when the database was last written, if any */

int
actl_follow_load(actl_follow_t *fl)
{
    int          rc;
    MDB_val      k, v;
    MDB_txn     *txn;
    const char  *name;

    if (actl_begin(fl->ctx, MDB_RDONLY, 0, 0, &txn) != ACTL_OK) {
        return ACTL_FAIL;
    }

    /*
     * a database made with another secret, or of another format: a
     * restart would not help, and systemd does not restart this exit
     */

    rc = akc_meta_check(txn, &fl->ctx->dbs, &fl->ctx->secret);

    if (rc != MDB_SUCCESS) {
        actl_error(NULL, "open \"%s\": %s", fl->ctx->db,
                   akc_meta_strerror(rc));
        mdb_txn_abort(txn);
        return (rc < 0 && rc != AKC_ERROR) ? ACTL_INVALID : ACTL_FAIL;
    }

    name = AKC_META_FOLLOW_VERSION;

    rc = akc_meta_get_u64(txn, &fl->ctx->dbs, name, &fl->version);

    if (rc == MDB_SUCCESS) {
        name = AKC_META_FOLLOW_GENERATION;

        rc = akc_meta_get_u64(txn, &fl->ctx->dbs, name, &fl->generation);

        if (rc == MDB_NOTFOUND) {
            /* an older follower's: a full synchronisation */
            fl->generation = 0;
            rc = MDB_SUCCESS;
        }
    }

    if (rc == MDB_SUCCESS) {
        name = AKC_META_FOLLOW_SOURCE;

        k.mv_size = sizeof(AKC_META_FOLLOW_SOURCE) - 1;
        k.mv_data = AKC_META_FOLLOW_SOURCE;

        rc = mdb_get(txn, fl->ctx->dbs.meta, &k, &v);

        if (rc == MDB_SUCCESS && v.mv_size <= ACTL_FOLLOW_SOURCE_LEN) {
            memcpy(fl->source_meta, v.mv_data, v.mv_size);
            fl->source_meta[v.mv_size] = '\0';

        } else if (rc == MDB_SUCCESS || rc == MDB_NOTFOUND) {
            /* none, or not one: unknown */
            rc = MDB_SUCCESS;
        }
    }

    mdb_txn_abort(txn);

    if (rc == MDB_NOTFOUND) {
        fl->version = 0;
        fl->synced = 0;
        return ACTL_OK;
    }

    if (rc != MDB_SUCCESS) {
        actl_error(fl->ctx, "meta \"%s\": %s", name,
                   rc == MDB_CORRUPTED ? "not an 8-byte number"
                                       : mdb_strerror(rc));
        return ACTL_FAIL;
    }

    fl->synced = 1;

    return actl_follow_check_writer(fl);
}


/*
 * Before a round: the database was last written by the follower, or a
 * full synchronisation is due.  Another follower (of another
 * PostgreSQL), a restore, a gen or an import left the keys in a state
 * that the version in meta does not describe.
 */

int
actl_follow_check_writer(actl_follow_t *fl)
{
    int       rc;
    MDB_txn  *txn;

    if (!fl->synced || fl->foreign) {
        return ACTL_OK;
    }

    if (actl_begin(fl->ctx, MDB_RDONLY, 0, 1, &txn) != ACTL_OK) {
        return ACTL_FAIL;
    }

    rc = actl_follow_generation(fl, txn, 1, NULL);

    mdb_txn_abort(txn);

    if (rc == ACTL_FOLLOW_FOREIGN) {
        return ACTL_OK;
    }

    return rc;
}


/*
 * The generation in meta, in txn; with check, ACTL_FOLLOW_FOREIGN
 * when it is not the one of the follower's last commit
 */

static int
actl_follow_generation(actl_follow_t *fl, MDB_txn *txn, int check,
    uint64_t *generation)
{
    int       rc;
    uint64_t  g;

    rc = akc_meta_get_u64(txn, &fl->ctx->dbs, AKC_META_GENERATION, &g);

    if (rc == MDB_NOTFOUND) {
        g = 0;

    } else if (rc != MDB_SUCCESS) {
        actl_error(fl->ctx, "meta \"%s\": %s", AKC_META_GENERATION,
                   rc == MDB_CORRUPTED ? "not an 8-byte number"
                                       : mdb_strerror(rc));
        return ACTL_FAIL;
    }

    if (generation != NULL) {
        *generation = g;
    }

    if (check && g != fl->generation) {
        actl_follow_foreign(fl, g);
        return ACTL_FOLLOW_FOREIGN;
    }

    return ACTL_OK;
}


/* logged once: the full synchronisation that follows says it again */

static void
actl_follow_foreign(actl_follow_t *fl, uint64_t generation)
{
    if (fl->foreign) {
        return;
    }

    fl->foreign = 1;

    actl_error(fl->ctx, "the database was written by another process "
               "since the follower's last commit (generation %llu, not "
               "%llu): a full synchronisation is due",
               (unsigned long long) generation,
               (unsigned long long) fl->generation);
}


/*
 * A row or a tombstone, from actl_follow_pg.c: f[] are hash, id,
 * subject, scopes, plan, expires, not_before, disabled, hint, created
 * and version.  A row that import would refuse is logged with its id
 * and its version, and stands for its key's removal: a key PostgreSQL
 * holds in a state no node can serve is not served (fail closed).
 * ACTL_FOLLOW_LOCAL: out of memory, not PostgreSQL's failure.
 */

int
actl_follow_row(actl_follow_t *fl, char **f, size_t *len, int tombstone)
{
    int             rc;
    char            err[ACTL_ERR_LEN], q[ACTL_QUOTE_LEN];
    size_t          size;
    uint64_t        version;
    actl_import_t  *imp;
    actl_fields_t   fields;
    actl_change_t  *ch, *changes;

    static const actl_col_e  cols[] = {
        ACTL_COL_HASH, ACTL_COL_ID, ACTL_COL_SUBJECT, ACTL_COL_SCOPES,
        ACTL_COL_PLAN, ACTL_COL_EXPIRES, ACTL_COL_NOT_BEFORE,
        ACTL_COL_DISABLED, ACTL_COL_HINT, ACTL_COL_CREATED
    };

    imp = fl->imp;

    f[10][len[10]] = '\0';
    version = strtoull(f[10], NULL, 10);

    if (version > fl->target) {
        fl->target = version;
    }

    ch = NULL;

    if (!fl->full) {
        if (fl->nchanges == fl->nchanges_alloc) {
            size = fl->nchanges_alloc ? 2 * fl->nchanges_alloc : 256;

            changes = realloc(fl->changes, size * sizeof(actl_change_t));
            if (changes == NULL) {
                actl_error(fl->ctx, "out of memory");
                return ACTL_FOLLOW_LOCAL;
            }

            fl->changes = changes;
            fl->nchanges_alloc = size;
        }

        ch = &fl->changes[fl->nchanges++];
        memset(ch, 0, sizeof(actl_change_t));
        ch->version = version;
        ch->tombstone = tombstone ? 1 : 0;

        if (actl_check_hash(f[0], len[0], ch->hash, err, sizeof(err))
            == ACTL_OK)
        {
            ch->has_hash = 1;
        }

        if (len[1] > 0 && len[1] <= AKC_ID_MAX_LEN
            && akc_id_valid(f[1], len[1]))
        {
            if (actl_follow_keep_id(fl, ch, f[1], len[1]) != ACTL_OK) {
                return ACTL_FOLLOW_LOCAL;
            }
        }

        if (tombstone) {
            return ACTL_OK;
        }
    }

    memset(&fields, 0, sizeof(actl_fields_t));

    for (size = 0; size < sizeof(cols) / sizeof(cols[0]); size++) {
        fields.data[cols[size]] = f[size];
        fields.len[cols[size]] = len[size];
    }

    imp->line = version;
    imp->brow = NULL;

    rc = actl_import_row(imp, &fields, err, sizeof(err));

    if (rc == ACTL_OK) {
        if (ch != NULL) {
            ch->row = (uint32_t) (imp->nrows - 1);
        }

        fl->rows++;

        return ACTL_OK;
    }

    if (rc != ACTL_INVALID) {
        /* out of memory: not PostgreSQL's failure */
        return ACTL_FOLLOW_LOCAL;
    }

    fl->invalid++;

    if (ch != NULL) {
        ch->invalid = 1;
    }

    actl_error(fl->ctx, "row %s of version %llu: %s; its key is not served",
               actl_has_key(f[1], len[1]) ? ACTL_A_KEY
                                          : actl_quote(f[1], len[1], q),
               (unsigned long long) version, err);

    return ACTL_OK;
}


static int
actl_follow_keep_id(actl_follow_t *fl, actl_change_t *ch, const char *id,
    size_t len)
{
    char    *ids;
    size_t   size;

    if (fl->ids_size - fl->ids_len < len) {
        size = fl->ids_size ? 2 * fl->ids_size : 65536;

        ids = realloc(fl->ids, size);
        if (ids == NULL) {
            actl_error(fl->ctx, "out of memory");
            return ACTL_FAIL;
        }

        fl->ids = ids;
        fl->ids_size = size;
    }

    memcpy(fl->ids + fl->ids_len, id, len);

    ch->id_off = (uint32_t) fl->ids_len;
    ch->id_len = (uint8_t) len;
    fl->ids_len += len;

    return ACTL_OK;
}


/* the rows read, for the next round */

void
actl_follow_reset(actl_follow_t *fl)
{
    actl_import_t  *imp;

    imp = fl->imp;

    actl_import_free(imp);
    memset(imp, 0, sizeof(actl_import_t));

    imp->ctx = fl->ctx;
    imp->skip_invalid = 1;
    imp->follow = 1;
    imp->threads = 0;

    fl->nchanges = 0;
    fl->ids_len = 0;
    fl->rows = 0;
    fl->invalid = 0;
}


int
actl_follow_write_all(actl_follow_t *fl)
{
    int  rc;

    fl->ctx->now = (int64_t) time(NULL);

    rc = actl_write(fl->ctx, actl_follow_all, fl);

    if (rc == ACTL_OK) {
        fl->synced_at = actl_follow_now();
        fl->generation = fl->produced;
        fl->foreign = 0;
        memcpy(fl->source_meta, fl->source, sizeof(fl->source));
        (void) actl_import_report(fl->imp);
    }

    return rc;
}


/* ACTL_FOLLOW_FOREIGN: nothing written, a full synchronisation is due */

int
actl_follow_write_changes(actl_follow_t *fl)
{
    int  rc;

    fl->ctx->now = (int64_t) time(NULL);

    rc = actl_write(fl->ctx, actl_follow_changes, fl);

    if (rc == ACTL_OK) {
        fl->synced_at = actl_follow_now();
        fl->generation = fl->produced;

        if (fl->source[0] != '\0') {
            memcpy(fl->source_meta, fl->source, sizeof(fl->source));
        }
    }

    return rc;
}


/*
 * Nothing changed: is follow_synced due?  The first round of a run
 * writes it, and then one every ACTL_FOLLOW_SYNCED_EVERY seconds; the
 * commits that carry changes write it too.  An idle follower leaves
 * the database alone in between: no fsync, and nginx's workers keep
 * their snapshot.  follow_synced may be that old on a healthy node.
 */

int
actl_follow_synced_due(actl_follow_t *fl)
{
    return fl->synced_at == 0
           || actl_follow_now() - fl->synced_at >= ACTL_FOLLOW_SYNCED_EVERY;
}


/*
 * Nothing changed: the time of this poll alone, without bumping the
 * generation (nginx has nothing new to see)
 */

int
actl_follow_write_synced(actl_follow_t *fl)
{
    int       rc;
    MDB_txn  *txn;

    fl->ctx->now = (int64_t) time(NULL);

    if (actl_begin(fl->ctx, 0, 0, 1, &txn) != ACTL_OK) {
        return ACTL_FAIL;
    }

    rc = actl_follow_generation(fl, txn, 1, NULL);

    if (rc == ACTL_OK) {
        rc = actl_follow_synced(fl->ctx, txn, fl);
    }

    if (rc == ACTL_OK) {
        rc = actl_commit(fl->ctx, &txn);

        if (rc == ACTL_OK) {
            fl->synced_at = actl_follow_now();
        }

        return rc;
    }

    mdb_txn_abort(txn);

    if (rc != ACTL_MAP_FULL) {
        return rc;
    }

    /* a full map: actl_write() grows it, and bumps the generation */

    rc = actl_write(fl->ctx, actl_follow_synced_grow, fl);

    if (rc == ACTL_OK) {
        fl->synced_at = actl_follow_now();
        fl->generation = fl->produced;
    }

    return rc;
}


/*
 * The whole table: as import --replace of every row, or every key
 * removed when the table is empty.  The follower is the database's only
 * writer: PostgreSQL is the whole truth, so nothing needs --force.
 */

static int
actl_follow_all(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    actl_follow_t  *fl = data;

    int             rc;
    actl_import_t  *imp;

    imp = fl->imp;

    if (imp->nrows == 0) {
        rc = mdb_drop(txn, ctx->dbs.keys, 0);

        if (rc == MDB_SUCCESS) {
            rc = mdb_drop(txn, ctx->dbs.ids, 0);
        }

        if (rc != MDB_SUCCESS) {
            return actl_mdb_write_error(ctx, "mdb_drop", rc);
        }

        return actl_follow_meta(fl, txn);
    }

    imp->replace = 1;
    imp->force = 1;
    imp->rc = ACTL_OK;

    rc = actl_import_write(ctx, txn, imp);

    if (rc == ACTL_IMPORT_SAME) {
        rc = ACTL_OK;
    }

    if (rc != ACTL_OK) {
        return rc;
    }

    return actl_follow_meta(fl, txn);
}


static int
actl_follow_changes(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    actl_follow_t  *fl = data;

    int             rc;
    size_t          i;
    actl_change_t  *ch;

    rc = actl_follow_generation(fl, txn, 1, NULL);
    if (rc != ACTL_OK) {
        return rc;
    }

    for (i = 0; i < fl->nchanges; i++) {
        ch = &fl->changes[i];

        if (ch->tombstone || ch->invalid) {
            rc = actl_follow_del(fl, txn, ch);

        } else {
            rc = actl_follow_put(fl, txn, ch);
        }

        if (rc != ACTL_OK) {
            return rc;
        }
    }

    return actl_follow_meta(fl, txn);
}


static int
actl_follow_synced(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    int  rc;

    rc = akc_meta_put_u64(txn, &ctx->dbs, AKC_META_FOLLOW_SYNCED,
                          (uint64_t) ctx->now);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_put", rc);
    }

    return ACTL_OK;
}


static int
actl_follow_synced_grow(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    actl_follow_t  *fl = data;

    int       rc;
    uint64_t  g;

    rc = actl_follow_generation(fl, txn, 1, &g);

    if (rc == ACTL_OK) {
        rc = actl_follow_synced(ctx, txn, data);
    }

    if (rc != ACTL_OK) {
        return rc;
    }

    /* the generation actl_write() makes */

    fl->produced = g + 1;

    rc = akc_meta_put_u64(txn, &ctx->dbs, AKC_META_FOLLOW_GENERATION,
                          fl->produced);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_put", rc);
    }

    return ACTL_OK;
}


/*
 * The version reached, the time, and the generation this commit makes
 * (actl_write() adds one to the one in meta): a generation in meta
 * other than this one, before the follower's next round, is another
 * writer's.
 */

static int
actl_follow_meta(actl_follow_t *fl, MDB_txn *txn)
{
    int       rc;
    MDB_val   k, v;
    uint64_t  g;

    rc = actl_follow_generation(fl, txn, 0, &g);
    if (rc != ACTL_OK) {
        return rc;
    }

    fl->produced = g + 1;

    rc = akc_meta_put_u64(txn, &fl->ctx->dbs, AKC_META_FOLLOW_GENERATION,
                          fl->produced);

    if (rc == MDB_SUCCESS && fl->source[0] != '\0') {
        k.mv_size = sizeof(AKC_META_FOLLOW_SOURCE) - 1;
        k.mv_data = AKC_META_FOLLOW_SOURCE;
        v.mv_size = strlen(fl->source);
        v.mv_data = fl->source;

        rc = mdb_put(txn, fl->ctx->dbs.meta, &k, &v, 0);
    }

    if (rc == MDB_SUCCESS) {
        rc = akc_meta_put_u64(txn, &fl->ctx->dbs, AKC_META_FOLLOW_VERSION,
                              fl->target);
    }

    if (rc == MDB_SUCCESS) {
        rc = akc_meta_put_u64(txn, &fl->ctx->dbs, AKC_META_FOLLOW_SYNCED,
                              (uint64_t) fl->ctx->now);
    }

    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(fl->ctx, "mdb_put", rc);
    }

    return ACTL_OK;
}


/*
 * A row: the key its id named (another hash, maybe) goes, and so does
 * the key of its hash (under another id, maybe), both with their ids
 * (actl_del_id(), actl_del_hash(): ids and keys stay in step, as with
 * revoke); then the record and its id are put.
 */

static int
actl_follow_put(actl_follow_t *fl, MDB_txn *txn, actl_change_t *ch)
{
    int          rc;
    MDB_val      k, v;
    actl_row_t  *row;

    row = &fl->imp->rows[ch->row];

    /* the id, in the arena after the record: not in the map */

    k.mv_size = row->id_len;
    k.mv_data = fl->imp->arena + row->off + row->len;

    rc = actl_del_id(fl->ctx, txn, &k);

    if (rc == ACTL_OK) {
        rc = actl_del_hash(fl->ctx, txn, row->hash);
    }

    if (rc != ACTL_OK) {
        return rc;
    }

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = row->hash;
    v.mv_size = row->len;
    v.mv_data = fl->imp->arena + row->off;

    rc = mdb_put(txn, fl->ctx->dbs.keys, &k, &v, 0);

    if (rc == MDB_SUCCESS) {
        k.mv_size = row->id_len;
        k.mv_data = fl->imp->arena + row->off + row->len;
        v.mv_size = AKC_HASH_LEN;
        v.mv_data = row->hash;

        rc = mdb_put(txn, fl->ctx->dbs.ids, &k, &v, 0);
    }

    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(fl->ctx, "mdb_put", rc);
    }

    return ACTL_OK;
}


/* a tombstone, or a row that did not validate: its id and hash go */

static int
actl_follow_del(actl_follow_t *fl, MDB_txn *txn, actl_change_t *ch)
{
    int      rc;
    MDB_val  k;

    if (ch->id_len > 0) {
        k.mv_size = ch->id_len;
        k.mv_data = fl->ids + ch->id_off;

        rc = actl_del_id(fl->ctx, txn, &k);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    if (ch->has_hash) {
        return actl_del_hash(fl->ctx, txn, ch->hash);
    }

    return ACTL_OK;
}


/* seconds of CLOCK_MONOTONIC: a clock set back does not stop the writes */

static time_t
actl_follow_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    /* never 0, which stands for "not yet" */

    return ts.tv_sec + 1;
}
