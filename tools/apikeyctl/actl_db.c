
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl: the database: the secret file, the environment, its lock
 * file, transactions, and reading keys by id or in order.
 */


#include "actl.h"


static int actl_lock_check(actl_ctx_t *ctx);
static void actl_lock_wait(actl_ctx_t *ctx);
static int actl_sync(actl_ctx_t *ctx);


/* the database */

int
actl_db_exists(actl_ctx_t *ctx)
{
    int           rc;
    char         *path;
    size_t        len;
    struct stat   st;

    len = strlen(ctx->db) + sizeof("/" AKC_DATA_FILE);

    path = malloc(len);
    if (path == NULL) {
        actl_error(NULL, "out of memory");
        return -1;
    }

    snprintf(path, len, "%s/%s", ctx->db, AKC_DATA_FILE);

    rc = 1;

    if (stat(path, &st) == -1) {
        if (errno == ENOENT || errno == ENOTDIR) {
            rc = 0;

        } else {
            actl_error(NULL, "open \"%s\": %s", ctx->db, strerror(errno));
            rc = -1;
        }
    }

    free(path);

    return rc;
}


int
actl_secret_create(actl_ctx_t *ctx)
{
    int            fd, rc;
    char           hex[2 * AKC_SECRET_LEN + 2];
    size_t         off;
    ssize_t        n;
    akc_secret_t   secret;

    fd = open(ctx->secret_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
              0600);
    if (fd == -1) {
        if (errno == EEXIST) {
            /* made at the same moment by someone else: use theirs */
            return ACTL_INVALID;
        }

        actl_error(NULL, "create \"%s\": %s", ctx->secret_path,
                   strerror(errno));
        return ACTL_FAIL;
    }

    randombytes_buf(secret.bytes, AKC_SECRET_LEN);
    akc_secret_format(&secret, hex);
    hex[2 * AKC_SECRET_LEN] = '\n';

    rc = ACTL_OK;

    for (off = 0; off < sizeof(hex) - 1; off += n) {
        n = write(fd, hex + off, sizeof(hex) - 1 - off);
        if (n == -1) {
            if (errno == EINTR) {
                n = 0;
                continue;
            }

            rc = ACTL_FAIL;
            break;
        }
    }

    if (rc == ACTL_OK && fsync(fd) == -1) {
        rc = ACTL_FAIL;
    }

    if (rc != ACTL_OK) {
        actl_error(NULL, "write \"%s\": %s", ctx->secret_path,
                   strerror(errno));
        unlink(ctx->secret_path);
    }

    close(fd);

    sodium_memzero(hex, sizeof(hex));
    sodium_memzero(&secret, sizeof(akc_secret_t));

    return rc;
}


int
actl_secret_load(actl_ctx_t *ctx)
{
    char  err[ACTL_ERR_LEN];

    if (akc_secret_load(&ctx->secret, ctx->secret_path, err, sizeof(err))
        != AKC_OK)
    {
        actl_error(NULL, "secret \"%s\": %s", ctx->secret_path, err);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


int
actl_env_open(actl_ctx_t *ctx, unsigned flags, mode_t mode, size_t mapsize)
{
    int  rc, dead;

    if (actl_lock_check(ctx) != ACTL_OK) {
        return ACTL_FAIL;
    }

    rc = mdb_env_create(&ctx->env);
    if (rc != MDB_SUCCESS) {
        ctx->env = NULL;
        actl_error(NULL, "mdb_env_create() failed: %s", mdb_strerror(rc));
        return ACTL_FAIL;
    }

    (void) mdb_env_set_assert(ctx->env, actl_lmdb_assert);

    /* maxreaders only counts when the lock file is made */

    rc = mdb_env_set_maxdbs(ctx->env, AKC_MAXDBS);

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_set_maxreaders(ctx->env, AKC_MAXREADERS);
    }

    if (rc == MDB_SUCCESS && mapsize != 0) {
        rc = mdb_env_set_mapsize(ctx->env, mapsize);
    }

    /* the meta page is synced after the commit: see actl_sync() */

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_open(ctx->env, ctx->db, flags | MDB_NOMETASYNC, mode);
    }

    if (rc != MDB_SUCCESS) {
        actl_error(NULL, "open \"%s\": %s", ctx->db, mdb_strerror(rc));
        actl_close(ctx);
        return ACTL_FAIL;
    }

    rc = mdb_reader_check(ctx->env, &dead);
    if (rc != MDB_SUCCESS) {
        actl_error(NULL, "mdb_reader_check(\"%s\") failed: %s", ctx->db,
                   mdb_strerror(rc));
        actl_close(ctx);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/*
 * Before LMDB opens an environment whose data file exists: a data file
 * too short to hold its meta pages is refused (LMDB would make a new,
 * empty database in it), and a missing lock file is made here with the
 * group and mode that "init --user" gave the environment: LMDB would
 * make it 0600, and nginx workers could no longer open it.
 */

static int
actl_lock_check(actl_ctx_t *ctx)
{
    int           fd, rc;
    char         *data, *lock;
    long          psize;
    mode_t        mode;
    size_t        len;
    struct stat   st, lst;

    len = strlen(ctx->db) + sizeof("/" AKC_DATA_FILE);

    data = malloc(2 * len);
    if (data == NULL) {
        actl_error(NULL, "out of memory");
        return ACTL_FAIL;
    }

    lock = data + len;

    snprintf(data, len, "%s/%s", ctx->db, AKC_DATA_FILE);
    snprintf(lock, len, "%s/%s", ctx->db, AKC_LOCK_FILE);

    rc = ACTL_OK;

    if (stat(data, &st) == -1) {
        /* a new database, or the error is for mdb_env_open() to tell */
        goto done;
    }

    psize = sysconf(_SC_PAGESIZE);

    if (S_ISREG(st.st_mode) && psize > 0 && st.st_size < 2 * (off_t) psize) {
        actl_error(NULL, "open \"%s\": %s", ctx->db,
                   akc_meta_strerror(AKC_ETRUNCATED));
        rc = ACTL_FAIL;
        goto done;
    }

    if (lstat(lock, &lst) == 0 || errno != ENOENT) {
        goto done;
    }

    /* data.mdb 0640 (init --user): lock.mdb 0660, both of its group */

    mode = (st.st_mode & S_IRGRP) ? 0660 : 0600;

    fd = open(lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);

    if (fd == -1) {
        if (errno == EEXIST) {
            /* made at the same moment by another process */
            goto done;
        }

        actl_error(NULL, "open \"%s\": lock.mdb is missing, and it cannot "
                   "be made (%s): run \"apikeyctl init --user USER\" as "
                   "the owner of the database", ctx->db, strerror(errno));
        rc = ACTL_FAIL;
        goto done;
    }

    if ((st.st_gid != getegid() && fchown(fd, (uid_t) -1, st.st_gid) == -1)
        || fchmod(fd, mode) == -1)
    {
        actl_error(NULL, "open \"%s\": lock.mdb is missing, and it cannot "
                   "be made with the group and mode of data.mdb (%s): run "
                   "\"apikeyctl init --user USER\" as the owner of the "
                   "database", ctx->db, strerror(errno));
        (void) unlink(lock);
        close(fd);
        rc = ACTL_FAIL;
        goto done;
    }

    close(fd);

    ctx->lock_made = 1;

done:

    free(data);

    return rc;
}


/*
 * nginx workers that still hold the deleted lock file would pick stale
 * meta pages; they look for a new lock file once a second and reopen.
 * Nothing is written before each of them has had the time to.
 */

static void
actl_lock_wait(actl_ctx_t *ctx)
{
    if (!ctx->lock_made) {
        return;
    }

    ctx->lock_made = 0;

    fprintf(stderr, "apikeyctl: %s: lock.mdb was missing and is made anew; "
            "waiting %d seconds before writing, so that running nginx "
            "workers switch to it\n", ctx->db, ACTL_LOCK_WAIT);

    sleep(ACTL_LOCK_WAIT);
}


int
actl_open(actl_ctx_t *ctx, unsigned flags)
{
    int  rc;

    rc = actl_db_exists(ctx);

    if (rc == -1) {
        return ACTL_FAIL;
    }

    if (rc == 0) {
        actl_error(NULL, "database \"%s\" does not exist (run \"apikeyctl "
                   "init\")", ctx->db);
        return ACTL_FAIL;
    }

    if (actl_secret_load(ctx) != ACTL_OK) {
        return ACTL_FAIL;
    }

    return actl_env_open(ctx, flags, 0600, 0);
}


int
actl_start(actl_ctx_t *ctx, unsigned flags, MDB_txn **txn)
{
    /* what every command but init begins with: the checked database */

    if (actl_open(ctx, flags) != ACTL_OK) {
        return ACTL_FAIL;
    }

    if (actl_begin(ctx, flags, 0, 1, txn) != ACTL_OK) {
        actl_close(ctx);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


int
actl_begin(actl_ctx_t *ctx, unsigned flags, unsigned dbflags, int check,
    MDB_txn **txn)
{
    int              rc, retried;
    struct timespec  ts;

    if (!(flags & MDB_RDONLY)) {
        actl_lock_wait(ctx);
    }

    for (retried = 0; /* void */; retried = 1) {

        rc = mdb_txn_begin(ctx->env, NULL, flags, txn);

        if (rc == MDB_MAP_RESIZED) {
            /* a writer grew the map since we opened: adopt its size */

            rc = mdb_env_set_mapsize(ctx->env, 0);
            if (rc == MDB_SUCCESS) {
                rc = mdb_txn_begin(ctx->env, NULL, flags, txn);
            }
        }

        if (rc != MDB_SUCCESS) {
            *txn = NULL;
            actl_mdb_error(ctx, "mdb_txn_begin", rc);
            return ACTL_FAIL;
        }

        /*
         * before any page is read: a truncated data file, or a lock file
         * that is not the data file's; a reader one commit behind may
         * have met a commit in flight, and looks again once; still behind
         * a moment later, it reads through a lock file that is not the
         * data file's, and would show an old view (a revoked key valid)
         */

        rc = akc_env_check(*txn, !(flags & MDB_RDONLY));

        if (rc != AKC_ELAG || retried) {
            break;
        }

        mdb_txn_abort(*txn);

        ts.tv_sec = 0;
        ts.tv_nsec = ACTL_LAG_RETRY_MS * 1000000L;
        (void) nanosleep(&ts, NULL);
    }

    if (rc != AKC_OK) {
        actl_error(NULL, "open \"%s\": %s; nothing was %s", ctx->db,
                   akc_meta_strerror(rc),
                   (flags & MDB_RDONLY) ? "read" : "changed");
        mdb_txn_abort(*txn);
        *txn = NULL;
        return ACTL_FAIL;
    }

    rc = akc_dbs_open(*txn, &ctx->dbs, dbflags);

    if (rc == MDB_NOTFOUND) {
        rc = AKC_EUNINIT;

    } else if (rc == MDB_SUCCESS && check) {
        rc = akc_meta_check(*txn, &ctx->dbs, &ctx->secret);
    }

    if (rc != MDB_SUCCESS) {
        actl_error(NULL, "open \"%s\": %s", ctx->db, akc_meta_strerror(rc));
        mdb_txn_abort(*txn);
        *txn = NULL;
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


int
actl_commit(actl_ctx_t *ctx, MDB_txn **txn)
{
    int  rc;

    rc = mdb_txn_commit(*txn);

    /* mdb_txn_commit() frees the transaction even when it fails */

    *txn = NULL;

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_txn_commit", rc);
        return ACTL_FAIL;
    }

    return actl_sync(ctx);
}


/*
 * The meta page of a commit is written without O_DSYNC (MDB_NOMETASYNC)
 * and synced here, once the commit has returned, before apikeyctl says
 * it is done.  LMDB gives readers the new transaction id in the lock
 * file only after the meta page write returns: a synchronous write kept
 * nginx workers one commit behind for as long as the disk took (over
 * 200 ms on a busy disk, and then they answered 503); now only for as
 * long as a copy into the page cache.  The data pages are still synced
 * by the commit, before its meta page is written.
 */

static int
actl_sync(actl_ctx_t *ctx)
{
    int  rc;

    rc = mdb_env_sync(ctx->env, 1);
    if (rc != MDB_SUCCESS) {
        actl_error(ctx, "mdb_env_sync() failed: %s; the change was made, "
                   "but may be lost if the system crashes now",
                   mdb_strerror(rc));
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/*
 * One write transaction: the handler writes, the generation is bumped,
 * and the transaction commits.  A full map is not an error to give the
 * operator: the whole transaction is aborted, the map doubled (workers
 * adopt the new size on their next MDB_MAP_RESIZED) and the handler run
 * again from the start, so a handler must keep everything it needs
 * outside the transaction and must not print before the commit.
 */

int
actl_write(actl_ctx_t *ctx, actl_write_pt handler, void *data)
{
    int           rc;
    size_t        size;
    MDB_txn      *txn;
    MDB_envinfo   info;

    for ( ;; ) {

        if (actl_begin(ctx, 0, 0, 1, &txn) != ACTL_OK) {
            return ACTL_FAIL;
        }

        rc = handler(ctx, txn, data);

        if (rc == ACTL_UNCHANGED) {
            mdb_txn_abort(txn);
            return ACTL_OK;
        }

        if (rc == ACTL_OK) {
            rc = akc_meta_touch(txn, &ctx->dbs, ctx->now);

            if (rc == MDB_SUCCESS) {
                rc = mdb_txn_commit(txn);
                txn = NULL;

                if (rc == MDB_SUCCESS) {
                    return actl_sync(ctx);
                }
            }

            if (rc != MDB_MAP_FULL) {
                if (txn == NULL) {
                    actl_mdb_error(ctx, "mdb_txn_commit", rc);
                    return ACTL_FAIL;
                }

                mdb_txn_abort(txn);
                actl_mdb_error(ctx, "mdb_put", rc);
                return ACTL_FAIL;
            }

            rc = ACTL_MAP_FULL;
        }

        if (txn != NULL) {
            mdb_txn_abort(txn);
        }

        if (rc != ACTL_MAP_FULL) {
            return rc;
        }

        rc = mdb_env_info(ctx->env, &info);
        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_env_info", rc);
            return ACTL_FAIL;
        }

        if (info.me_mapsize >= ACTL_MAP_GROW_MAX) {
            actl_mdb_error(ctx, "mdb_put", MDB_MAP_FULL);
            return ACTL_FAIL;
        }

        size = info.me_mapsize * 2;

        rc = mdb_env_set_mapsize(ctx->env, size);
        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_env_set_mapsize", rc);
            return ACTL_FAIL;
        }
    }
}


/*
 * A record stored under its hash, replacing the one there: rec may
 * point into the map, so it is encoded before anything is written.
 */

int
actl_put_record(actl_ctx_t *ctx, MDB_txn *txn, const unsigned char *hash,
    const akc_record_t *rec)
{
    int            rc;
    MDB_val        k, v;
    unsigned char  buf[AKC_RECORD_MAX_LEN];

    rc = akc_record_encode(rec, buf, sizeof(buf));
    if (rc < 0) {
        actl_error(ctx, "akc_record_encode() failed");
        return ACTL_FAIL;
    }

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = (void *) hash;
    v.mv_size = rc;
    v.mv_data = buf;

    rc = mdb_put(txn, ctx->dbs.keys, &k, &v, 0);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_put", rc);
    }

    return ACTL_OK;
}


/*
 * For write handlers: a full map is handed to actl_write() without a
 * message; any other LMDB error is reported here.
 */

int
actl_mdb_write_error(actl_ctx_t *ctx, const char *call, int rc)
{
    if (rc == MDB_MAP_FULL) {
        return ACTL_MAP_FULL;
    }

    actl_mdb_error(ctx, call, rc);

    return ACTL_FAIL;
}


void
actl_close(actl_ctx_t *ctx)
{
    if (ctx->env != NULL) {
        mdb_env_close(ctx->env);
        ctx->env = NULL;
    }
}


/* reading */

int
actl_lookup(actl_ctx_t *ctx, MDB_txn *txn, const char *id,
    akc_record_t *rec)
{
    int            rc;
    char           q[ACTL_QUOTE_LEN];
    size_t         len;
    MDB_val        k, v;
    unsigned char  found;

    len = strlen(id);

    if (!akc_id_valid(id, len)) {
        actl_error(ctx, "no key with id %s", actl_quote(id, len, q));
        return ACTL_INVALID;
    }

    k.mv_size = len;
    k.mv_data = (void *) id;

    rc = mdb_get(txn, ctx->dbs.ids, &k, &v);

    if (rc == MDB_NOTFOUND) {

        /* a damaged ids page must not pass for an unknown id */

        rc = actl_keys_find(ctx, txn, (char **) &id, 1, &found);
        if (rc != ACTL_OK) {
            return rc;
        }

        if (found) {
            return actl_damaged(ctx, id);
        }

        actl_error(ctx, "no key with id %s", actl_quote(id, len, q));
        return ACTL_INVALID;
    }

    if (rc == MDB_SUCCESS && v.mv_size != AKC_HASH_LEN) {
        rc = MDB_CORRUPTED;
    }

    if (rc == MDB_SUCCESS) {
        rc = mdb_get(txn, ctx->dbs.keys, &v, &v);

        if (rc == MDB_NOTFOUND) {
            rc = MDB_CORRUPTED;
        }
    }

    if (rc == MDB_SUCCESS
        && akc_record_decode(rec, v.mv_data, v.mv_size) != AKC_OK)
    {
        rc = MDB_CORRUPTED;
    }

    if (rc != MDB_SUCCESS) {
        actl_error(ctx, "id %s: %s", actl_quote(id, len, q),
                   mdb_strerror(rc));
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


int
actl_each(actl_ctx_t *ctx, MDB_txn *txn, const char *subject,
    actl_each_pt handler, void *data)
{
    int            rc;
    size_t         len;
    MDB_val        k, v, r;
    MDB_cursor    *cur;
    akc_record_t   rec;

    rc = mdb_cursor_open(txn, ctx->dbs.ids, &cur);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_cursor_open", rc);
        return ACTL_FAIL;
    }

    len = (subject != NULL) ? strlen(subject) : 0;

    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    {
        if (v.mv_size != AKC_HASH_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }

        rc = mdb_get(txn, ctx->dbs.keys, &v, &r);
        if (rc == MDB_NOTFOUND) {
            rc = MDB_CORRUPTED;
        }

        if (rc != MDB_SUCCESS) {
            break;
        }

        if (akc_record_decode(&rec, r.mv_data, r.mv_size) != AKC_OK
            || rec.id.len != k.mv_size
            || memcmp(rec.id.data, k.mv_data, k.mv_size) != 0)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        if (subject != NULL
            && (rec.subject.len != len
                || memcmp(rec.subject.data, subject, len) != 0))
        {
            continue;
        }

        rc = handler(ctx, &rec, v.mv_data, data);
        if (rc != ACTL_OK) {
            mdb_cursor_close(cur);
            return rc;
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
 * The ids of the records in keys, for ids that ids does not hold: one
 * walk over keys for all of them, sorted in strcmp() order and each one
 * given once, found[i] set for each one a record holds.  It
 * is only taken when an id is not found, so a damaged ids page is told
 * apart from an unknown id.
 */

int
actl_keys_find(actl_ctx_t *ctx, MDB_txn *txn, char **ids, size_t n,
    unsigned char *found)
{
    int            rc, c;
    size_t         i, lo, hi, len, left;
    MDB_val        k, v;
    MDB_cursor    *cur;
    akc_record_t   rec;

    memset(found, 0, n);

    rc = mdb_cursor_open(txn, ctx->dbs.keys, &cur);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_cursor_open", rc);
        return ACTL_FAIL;
    }

    left = n;

    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == MDB_SUCCESS && left > 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    {
        /* a record that does not decode is for "apikeyctl check" */

        if (akc_record_decode(&rec, v.mv_data, v.mv_size) != AKC_OK) {
            continue;
        }

        /* a binary search: ids are sorted */

        lo = 0;
        hi = n;

        while (lo < hi) {
            i = lo + (hi - lo) / 2;

            len = strlen(ids[i]);

            c = memcmp(rec.id.data, ids[i],
                       rec.id.len < len ? rec.id.len : len);
            if (c == 0) {
                c = (rec.id.len > len) - (rec.id.len < len);
            }

            if (c == 0) {
                if (!found[i]) {
                    found[i] = 1;
                    left--;
                }

                break;
            }

            if (c < 0) {
                hi = i;

            } else {
                lo = i + 1;
            }
        }
    }

    mdb_cursor_close(cur);

    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        actl_mdb_error(ctx, "mdb_cursor_get", rc);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


int
actl_damaged(actl_ctx_t *ctx, const char *id)
{
    char  q[ACTL_QUOTE_LEN];

    actl_error(ctx, "database \"%s\" is damaged: key %s is in keys but "
               "not in ids; nothing was changed; run \"apikeyctl check\"",
               ctx->db, actl_quote(id, strlen(id), q));

    return ACTL_FAIL;
}
