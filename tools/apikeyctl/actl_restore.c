
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl restore: a copy (a backup, or another database) is read,
 * checked whole, and its keys replace those of the live database in
 * one write transaction: running workers see the old keys or the new
 * ones, never a mix, and no file of the live database is replaced.
 * Reading a copy is shared with backup, which reads back what it wrote.
 */


#include "actl.h"


#define ACTL_COPY_TRIES         10      /* ACTL_LAG_RETRY_MS apart */


typedef struct {
    actl_copy_t            *src;
    size_t                  before;
    size_t                  removed;
    unsigned                force:1;
} actl_restore_t;


static int actl_restore_write(actl_ctx_t *ctx, MDB_txn *txn, void *data);
static void actl_copy_sigbus_init(const char *path);
static void actl_copy_sigbus_handler(int signo);


static char    actl_copy_sigbus_msg[1024];
static size_t  actl_copy_sigbus_len;


int
actl_cmd_restore(actl_ctx_t *ctx, int argc, char **argv)
{
    int              c, rc;
    char            *live, *path;
    struct stat      lst, st;
    actl_copy_t      src;
    actl_restore_t   r;

    static struct option  options[] = {
        { "force",      no_argument,       NULL, 'F' },
        { NULL, 0, NULL, 0 }
    };

    memset(&r, 0, sizeof(actl_restore_t));

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'F':
            r.force = 1;
            break;

        default:
            return actl_option_error(ctx, c, argv);
        }
    }

    if (optind == argc) {
        return actl_usage_error(ctx, "expected the backup directory SRC");
    }

    if (argc - optind > 1) {
        return actl_usage_error(ctx, "unexpected argument \"%s\"",
                                argv[optind + 1]);
    }

    if (argv[optind][0] == '\0') {
        return actl_usage_error(ctx, "empty SRC");
    }

    if (strcmp(argv[optind], "-") == 0) {
        return actl_usage_error(ctx, "SRC is a directory; \"-\" (standard "
                                "input) is not one");
    }

    memset(&src, 0, sizeof(actl_copy_t));
    src.path = argv[optind];

    r.src = &src;

    rc = actl_open(ctx, 0);
    if (rc != ACTL_OK) {
        return rc;
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
        actl_error(ctx, "\"%s\" is the live database itself; nothing was "
                   "changed", src.path);
        rc = ACTL_FAIL;
        goto done;
    }

    actl_copy_sigbus_init(src.path);

    rc = actl_copy_open(ctx, &src);

    if (rc == ACTL_OK) {
        rc = actl_copy_verify(ctx, &src);
    }

    actl_sigbus_init(ctx);

    if (rc != ACTL_OK) {
        actl_error(ctx, "nothing was changed");
        goto done;
    }

    if (src.nkeys == 0 && !r.force) {
        actl_error(ctx, "\"%s\" holds no keys: restoring it would remove "
                   "every key; nothing was changed (add --force to do it)",
                   src.path);
        rc = ACTL_INVALID;
        goto done;
    }

    rc = actl_write(ctx, actl_restore_write, &r);
    if (rc != ACTL_OK) {
        goto done;
    }

    printf("restored %zu keys from \"%s\" (%zu keys before, %zu of them "
           "not in the backup)\n", src.nkeys, src.path, r.before, r.removed);

done:

    actl_copy_close(&src);
    actl_close(ctx);

    free(live);
    free(path);

    return rc;
}


/*
 * One write transaction: the keys of the live database are dropped and
 * the copy's put in their place, in the copy's order, which is the
 * order of the trees (MDB_APPEND).  The meta of the live database, its
 * format and secret fingerprint, stays; actl_write() bumps generation.
 */

static int
actl_restore_write(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    actl_restore_t *r = data;

    int           rc, i;
    size_t        removed;
    MDB_dbi       from[2], to[2];
    MDB_val       k, v;
    MDB_stat      st;
    MDB_cursor   *cur;
    actl_copy_t  *src;

    src = r->src;

    rc = mdb_stat(txn, ctx->dbs.keys, &st);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_stat", rc);
    }

    /* the live keys that the backup does not hold */

    rc = mdb_cursor_open(txn, ctx->dbs.keys, &cur);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_cursor_open", rc);
    }

    removed = 0;

    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    {
        rc = mdb_get(src->txn, src->dbs.keys, &k, &v);

        if (rc == MDB_NOTFOUND) {
            removed++;

        } else if (rc != MDB_SUCCESS) {
            break;
        }
    }

    mdb_cursor_close(cur);

    if (rc != MDB_NOTFOUND) {
        return actl_mdb_write_error(ctx, "mdb_cursor_get", rc);
    }

    if (!r->force && removed > st.ms_entries / 2) {
        actl_error(ctx, "restoring \"%s\" would remove %zu of the %zu keys, "
                   "more than half; nothing was changed (add --force to do "
                   "it)", src->path, removed, (size_t) st.ms_entries);
        return ACTL_INVALID;
    }

    r->before = st.ms_entries;
    r->removed = removed;

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
 * A copy is opened read-only.  A directory without lock.mdb (a backup:
 * mdb_env_copy2() writes data.mdb only) is opened without one, and
 * nothing is written into it.  A directory with a lock.mdb may be a
 * database in use: it is read through its lock file as a reader, so
 * that its writers leave the pages read alone; only the lock file's
 * reader table is written.
 */

int
actl_copy_open(actl_ctx_t *ctx, actl_copy_t *copy)
{
    int              rc, n;
    char            *data, *lock;
    long             psize;
    unsigned         flags;
    struct stat      st;
    struct timespec  ts;

    data = actl_path(copy->path, AKC_DATA_FILE);
    lock = actl_path(copy->path, AKC_LOCK_FILE);

    rc = ACTL_FAIL;

    if (data == NULL || lock == NULL) {
        actl_error(ctx, "out of memory");
        goto done;
    }

    if (stat(copy->path, &st) == -1) {
        actl_error(ctx, "\"%s\": %s", copy->path, strerror(errno));
        goto done;
    }

    if (!S_ISDIR(st.st_mode)) {
        actl_error(ctx, "\"%s\" is not a directory (give the directory "
                   "of a backup or a database)", copy->path);
        goto done;
    }

    if (stat(data, &st) == -1) {
        if (errno == ENOENT) {
            actl_error(ctx, "\"%s\" holds no %s: not a backup", copy->path,
                       AKC_DATA_FILE);

        } else {
            actl_error(ctx, "\"%s\": %s", data, strerror(errno));
        }

        goto done;
    }

    psize = sysconf(_SC_PAGESIZE);

    if (!S_ISREG(st.st_mode) || psize <= 0 || st.st_size < 2 * psize) {
        actl_error(ctx, "\"%s\": %s", copy->path,
                   akc_meta_strerror(AKC_ETRUNCATED));
        goto done;
    }

    copy->size = st.st_size;

    flags = MDB_RDONLY;

    if (lstat(lock, &st) == -1) {
        if (errno != ENOENT) {
            actl_error(ctx, "\"%s\": %s", lock, strerror(errno));
            goto done;
        }

        flags |= MDB_NOLOCK;
    }

    rc = mdb_env_create(&copy->env);
    if (rc != MDB_SUCCESS) {
        copy->env = NULL;
        actl_error(ctx, "mdb_env_create() failed: %s", mdb_strerror(rc));
        rc = ACTL_FAIL;
        goto done;
    }

    rc = mdb_env_set_maxdbs(copy->env, AKC_MAXDBS);

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_open(copy->env, copy->path, flags, 0);
    }

    if (rc != MDB_SUCCESS) {
        actl_error(ctx, "open \"%s\": %s", copy->path, mdb_strerror(rc));
        rc = ACTL_FAIL;
        goto done;
    }

    for (n = 1; /* void */; n++) {

        rc = mdb_txn_begin(copy->env, NULL, MDB_RDONLY, &copy->txn);

        if (rc == MDB_MAP_RESIZED) {
            rc = mdb_env_set_mapsize(copy->env, 0);
            if (rc == MDB_SUCCESS) {
                rc = mdb_txn_begin(copy->env, NULL, MDB_RDONLY, &copy->txn);
            }
        }

        if (rc != MDB_SUCCESS) {
            copy->txn = NULL;
            actl_error(ctx, "open \"%s\": %s", copy->path, mdb_strerror(rc));
            rc = ACTL_FAIL;
            goto done;
        }

        /*
         * as actl_begin(), but a copy may be a database that another
         * process keeps writing: a commit in flight, or two committed
         * between mdb_txn_begin() and the check, are looked at again for
         * a second before its lock file is called another file's
         */

        rc = akc_env_check(copy->txn, 0);

        if ((rc != AKC_ELAG && rc != AKC_ELOCK) || n == ACTL_COPY_TRIES) {
            break;
        }

        mdb_txn_abort(copy->txn);
        copy->txn = NULL;

        ts.tv_sec = 0;
        ts.tv_nsec = ACTL_LAG_RETRY_MS * 1000000L;
        (void) nanosleep(&ts, NULL);
    }

    if (rc == AKC_OK) {
        rc = akc_dbs_open(copy->txn, &copy->dbs, 0);

        if (rc == MDB_NOTFOUND) {
            rc = AKC_EUNINIT;

        } else if (rc == MDB_SUCCESS) {
            rc = akc_meta_check(copy->txn, &copy->dbs, &ctx->secret);
        }
    }

    if (rc != AKC_OK) {
        actl_error(ctx, "\"%s\": %s", copy->path, akc_meta_strerror(rc));
        rc = ACTL_FAIL;
        goto done;
    }

    rc = ACTL_OK;

done:

    free(data);
    free(lock);

    return rc;
}


/*
 * Every record decodes and the id of each names it: distinct keys then
 * carry distinct ids, and as many ids as keys that carry one means that
 * every id names a key that carries it.  What restore puts in the live
 * database is whole.
 */

int
actl_copy_verify(actl_ctx_t *ctx, actl_copy_t *copy)
{
    int            rc;
    size_t         nids;
    MDB_val        k, v, r;
    MDB_stat       st;
    const char    *why;
    MDB_cursor    *cur;
    akc_record_t   rec;

    rc = mdb_cursor_open(copy->txn, copy->dbs.keys, &cur);
    if (rc != MDB_SUCCESS) {
        goto failed;
    }

    why = NULL;
    nids = 0;

    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    {
        if (k.mv_size != AKC_HASH_LEN
            || akc_record_decode(&rec, v.mv_data, v.mv_size) != AKC_OK)
        {
            why = "a record does not decode";
            break;
        }

        copy->nkeys++;

        if (rec.id.len == 0) {
            continue;
        }

        r.mv_size = rec.id.len;
        r.mv_data = (void *) rec.id.data;

        rc = mdb_get(copy->txn, copy->dbs.ids, &r, &r);

        if (rc == MDB_NOTFOUND
            || (rc == MDB_SUCCESS
                && (r.mv_size != AKC_HASH_LEN
                    || memcmp(r.mv_data, k.mv_data, AKC_HASH_LEN) != 0)))
        {
            why = "a key's id does not name it";
            break;
        }

        if (rc != MDB_SUCCESS) {
            break;
        }

        nids++;
    }

    mdb_cursor_close(cur);

    if (why == NULL) {
        if (rc != MDB_NOTFOUND) {
            goto failed;
        }

        rc = mdb_stat(copy->txn, copy->dbs.ids, &st);
        if (rc != MDB_SUCCESS) {
            goto failed;
        }

        if (st.ms_entries != nids) {
            why = "an id does not name a key that carries it";
        }
    }

    if (why != NULL) {
        actl_error(ctx, "\"%s\" is damaged: %s", copy->path, why);
        return ACTL_FAIL;
    }

    return ACTL_OK;

failed:

    actl_error(ctx, "\"%s\": reading it failed: %s", copy->path,
               mdb_strerror(rc));
    return ACTL_FAIL;
}


void
actl_copy_close(actl_copy_t *copy)
{
    if (copy->txn != NULL) {
        mdb_txn_abort(copy->txn);
        copy->txn = NULL;
    }

    if (copy->env != NULL) {
        mdb_env_close(copy->env);
        copy->env = NULL;
    }
}


char *
actl_path(const char *dir, const char *name)
{
    char    *path;
    size_t   len;

    len = strlen(dir) + 1 + strlen(name) + 1;

    path = malloc(len);
    if (path == NULL) {
        return NULL;
    }

    snprintf(path, len, "%s/%s", dir, name);

    return path;
}


/*
 * A copy truncated, or cut short while it is read, is SIGBUS: the live
 * database is not written yet, and the message names the copy.
 */

static void
actl_copy_sigbus_init(const char *path)
{
    int               n;
    struct sigaction  sa;

    n = snprintf(actl_copy_sigbus_msg, sizeof(actl_copy_sigbus_msg),
                 "apikeyctl: restore: \"%s\": data.mdb ends before a page "
                 "read from it (truncated?); nothing was changed\n", path);

    if (n < 0 || (size_t) n >= sizeof(actl_copy_sigbus_msg)) {
        n = snprintf(actl_copy_sigbus_msg, sizeof(actl_copy_sigbus_msg),
                     "apikeyctl: restore: the backup's data.mdb ends "
                     "before a page read from it (truncated?); nothing "
                     "was changed\n");
    }

    actl_copy_sigbus_len = (size_t) n;

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = actl_copy_sigbus_handler;
    sigemptyset(&sa.sa_mask);

    (void) sigaction(SIGBUS, &sa, NULL);
}


static void
actl_copy_sigbus_handler(int signo)
{
    ssize_t  n;

    n = write(STDERR_FILENO, actl_copy_sigbus_msg, actl_copy_sigbus_len);
    (void) n;

    _exit(ACTL_FAIL);
}
