
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl: reading a copy of a database (a backup, or another
 * database directory) without changing it, and checking it whole;
 * restore reads the copy it restores, and backup reads back what it
 * wrote.
 */


#include "actl.h"


#define ACTL_COPY_TRIES         10      /* ACTL_LAG_RETRY_MS apart */


static void actl_copy_sigbus_handler(int signo);
static int actl_copy_link(actl_copy_t *copy, const akc_record_t *rec,
    const akc_str_t *link, int forward, char *why, size_t size);


static char    actl_copy_sigbus_msg[1024];
static size_t  actl_copy_sigbus_len;


/*
 * A copy is opened read-only.  A directory with a lock.mdb (a backup
 * made by backup, or a database that may be in use) is read through it
 * as a registered reader, so that writers leave the pages read alone;
 * only the lock file's reader table is written.  A directory without
 * one (a backup of an older apikeyctl), or whose lock file cannot be
 * written (read-only media, another user's backup), is read without a
 * lock, which is safe for a copy that nobody writes; nothing is written
 * into it.
 */

int
actl_copy_open(actl_ctx_t *ctx, actl_copy_t *copy)
{
    int              rc, n, fd;
    char            *data, *lock;
    long             psize;
    unsigned         flags;
    struct stat      st;
    struct timespec  ts;
    char             q[ACTL_QUOTE_LEN], q2[ACTL_QUOTE_LEN];

    data = actl_path(copy->path, AKC_DATA_FILE);
    lock = actl_path(copy->path, AKC_LOCK_FILE);

    rc = ACTL_FAIL;

    if (data == NULL || lock == NULL) {
        actl_error(ctx, "out of memory");
        goto done;
    }

    (void) actl_quote(copy->path, strlen(copy->path), q);

    if (stat(copy->path, &st) == -1) {
        actl_error(ctx, "%s: %s", q, strerror(errno));
        goto done;
    }

    if (!S_ISDIR(st.st_mode)) {
        actl_error(ctx, "%s is not a directory (give the directory of a "
                   "backup or a database)", q);
        goto done;
    }

    if (stat(data, &st) == -1) {
        if (errno == ENOENT) {
            actl_error(ctx, "%s holds no %s: not a backup", q,
                       AKC_DATA_FILE);

        } else {
            actl_error(ctx, "%s: %s", actl_quote(data, strlen(data), q2),
                       strerror(errno));
        }

        goto done;
    }

    psize = sysconf(_SC_PAGESIZE);

    if (!S_ISREG(st.st_mode) || psize <= 0 || st.st_size < 2 * psize) {
        actl_error(ctx, "%s: %s", q, akc_meta_strerror(AKC_ETRUNCATED));
        goto done;
    }

    copy->size = st.st_size;

    flags = MDB_RDONLY;

    if (lstat(lock, &st) == -1) {
        if (errno != ENOENT) {
            actl_error(ctx, "%s: %s", actl_quote(lock, strlen(lock), q2),
                       strerror(errno));
            goto done;
        }

        flags |= MDB_NOLOCK;

    } else {
        fd = open(lock, O_RDWR | O_CLOEXEC);

        if (fd != -1) {
            close(fd);

        } else if (errno == EROFS || errno == EACCES || errno == EPERM) {
            flags |= MDB_NOLOCK;

        } else {
            actl_error(ctx, "open %s: %s",
                       actl_quote(lock, strlen(lock), q2), strerror(errno));
            goto done;
        }
    }

    rc = mdb_env_create(&copy->env);
    if (rc != MDB_SUCCESS) {
        copy->env = NULL;
        actl_error(ctx, "mdb_env_create() failed: %s", mdb_strerror(rc));
        rc = ACTL_FAIL;
        goto done;
    }

    (void) mdb_env_set_assert(copy->env, actl_lmdb_assert);

    /* a lock file made here has init's reader slots: nginx may serve it */

    rc = mdb_env_set_maxdbs(copy->env, AKC_MAXDBS);

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_set_maxreaders(copy->env, AKC_MAXREADERS);
    }

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_open(copy->env, copy->path, flags, 0);
    }

    if (rc != MDB_SUCCESS) {
        actl_error(ctx, "open %s: %s", q, mdb_strerror(rc));
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
            actl_error(ctx, "open %s: %s", q, mdb_strerror(rc));
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

    if (rc == AKC_ESECRET) {
        actl_error(ctx, "%s was made with another secret than the one in "
                   "the secret file %s (-s), which the live database was "
                   "made with: a backup of another database?", q,
                   actl_quote(ctx->secret_path, strlen(ctx->secret_path),
                              q2));
        rc = ACTL_FAIL;
        goto done;
    }

    if (rc != AKC_OK) {
        actl_error(ctx, "%s: %s", q, akc_meta_strerror(rc));
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
 * every id names a key that carries it.  The rotation links pair as
 * check wants them: a link names another key of the copy, which links
 * back.  What restore puts in the live database is whole.
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
    char           q[ACTL_QUOTE_LEN], link[4 * ACTL_QUOTE_LEN];

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

        if (rec.replaced_by.len) {
            rc = actl_copy_link(copy, &rec, &rec.replaced_by, 1, link,
                                sizeof(link));
            if (rc != MDB_SUCCESS) {
                why = (rc == ACTL_INVALID) ? link : NULL;
                break;
            }
        }

        if (rec.replaces.len) {
            rc = actl_copy_link(copy, &rec, &rec.replaces, 0, link,
                                sizeof(link));
            if (rc != MDB_SUCCESS) {
                why = (rc == ACTL_INVALID) ? link : NULL;
                break;
            }
        }
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
        actl_error(ctx, "%s is damaged: %s",
                   actl_quote(copy->path, strlen(copy->path), q), why);
        return ACTL_FAIL;
    }

    return ACTL_OK;

failed:

    actl_error(ctx, "%s: reading it failed: %s",
               actl_quote(copy->path, strlen(copy->path), q),
               mdb_strerror(rc));
    return ACTL_FAIL;
}


/*
 * MDB_SUCCESS: the key a link names is in the copy and links back;
 * ACTL_INVALID: it does not, why says so; an LMDB error otherwise.
 */

static int
actl_copy_link(actl_copy_t *copy, const akc_record_t *rec,
    const akc_str_t *link, int forward, char *why, size_t size)
{
    int                rc;
    MDB_val            k, v;
    akc_record_t       other;
    const char        *what, *back_what;
    const akc_str_t   *back;
    char               q[ACTL_QUOTE_LEN], q2[ACTL_QUOTE_LEN];
    char               q3[ACTL_QUOTE_LEN];

    what = forward ? "is replaced by" : "replaces";
    back_what = forward ? "replaces" : "is replaced by";

    actl_quote(rec->id.data, rec->id.len, q);
    actl_quote(link->data, link->len, q2);

    if (link->len == rec->id.len
        && memcmp(link->data, rec->id.data, link->len) == 0)
    {
        snprintf(why, size, "key %s %s itself", q, what);
        return ACTL_INVALID;
    }

    k.mv_size = link->len;
    k.mv_data = (void *) link->data;

    rc = mdb_get(copy->txn, copy->dbs.ids, &k, &v);

    if (rc == MDB_NOTFOUND) {
        snprintf(why, size, "key %s %s %s, which is not in it", q, what, q2);
        return ACTL_INVALID;
    }

    if (rc != MDB_SUCCESS) {
        return rc;
    }

    k = v;

    rc = (k.mv_size == AKC_HASH_LEN)
         ? mdb_get(copy->txn, copy->dbs.keys, &k, &v) : MDB_NOTFOUND;

    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        return rc;
    }

    if (rc == MDB_NOTFOUND
        || akc_record_decode(&other, v.mv_data, v.mv_size) != AKC_OK)
    {
        /* the id of a key that is not there: found by the caller later */
        snprintf(why, size, "key %s %s %s, which is not in it", q, what, q2);
        return ACTL_INVALID;
    }

    back = forward ? &other.replaces : &other.replaced_by;

    if (back->len == rec->id.len
        && memcmp(back->data, rec->id.data, back->len) == 0)
    {
        return MDB_SUCCESS;
    }

    snprintf(why, size, "key %s %s %s, which %s %s", q, what, q2, back_what,
             back->len ? actl_quote(back->data, back->len, q3) : "no key");

    return ACTL_INVALID;
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

void
actl_copy_sigbus_init(const char *path)
{
    int               n;
    struct sigaction  sa;
    char              q[ACTL_QUOTE_LEN];

    n = snprintf(actl_copy_sigbus_msg, sizeof(actl_copy_sigbus_msg),
                 "apikeyctl: restore: %s: data.mdb ends before a page "
                 "read from it (truncated or damaged?); nothing was "
                 "changed\n",
                 actl_quote(path, strlen(path), q));

    if (n < 0 || (size_t) n >= sizeof(actl_copy_sigbus_msg)) {
        n = snprintf(actl_copy_sigbus_msg, sizeof(actl_copy_sigbus_msg),
                     "apikeyctl: restore: the backup's data.mdb ends "
                     "before a page read from it (truncated or damaged?); "
                     "nothing was changed\n");
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
