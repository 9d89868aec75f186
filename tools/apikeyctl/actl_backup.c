
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl backup: a compact copy of the database, made with
 * mdb_env_copy2() from one read transaction while nginx serves.  It is
 * written into a new directory beside DEST, given a lock file, read
 * back as restore reads a copy, given the source's group and modes,
 * synced, and renamed to DEST last, so that a backup killed at any
 * moment leaves no DEST.  With its lock file, a backup is a whole
 * environment: nginx can serve it (a directory swapped in), apikeyctl
 * can check it, from read-only media too.
 */


#define _GNU_SOURCE     /* statx() */

#include "actl.h"

#include <dirent.h>
#include <libgen.h>


#define ACTL_BACKUP_TMP         ".incomplete-XXXXXX"


static int actl_backup_dest(actl_ctx_t *ctx, const char *dest, char **target,
    char **tmp);
static int actl_backup_name(actl_ctx_t *ctx, const char *dest);
static int actl_backup_mount(actl_ctx_t *ctx, const char *dest,
    const char *real, const struct stat *st);
static int actl_backup_inside(actl_ctx_t *ctx, const char *dest,
    const char *real, int made);
static int actl_backup_empty(actl_ctx_t *ctx, const char *dir);
static int actl_backup_lock(actl_ctx_t *ctx, const char *tmp,
    const struct stat *data);
static int actl_backup_finish(actl_ctx_t *ctx, const char *tmp,
    const struct stat *dir, const struct stat *data);
static int actl_fsync_path(actl_ctx_t *ctx, const char *path);
static void actl_backup_remove(const char *tmp);


int
actl_cmd_backup(actl_ctx_t *ctx, int argc, char **argv)
{
    int           c, rc;
    char         *target, *tmp, *path;
    MDB_txn      *txn;
    struct stat   dir, data;
    actl_copy_t   copy;
    char          q[ACTL_QUOTE_LEN], q2[ACTL_QUOTE_LEN];

    static struct option  options[] = {
        { NULL, 0, NULL, 0 }
    };

    c = getopt_long(argc, argv, ":", options, NULL);
    if (c != -1) {
        return actl_option_error(ctx, c, argv);
    }

    if (optind == argc) {
        return actl_usage_error(ctx, "expected the backup directory DEST");
    }

    if (argc - optind > 1) {
        return actl_usage_error(ctx, "unexpected argument %s",
                                actl_quote(argv[optind + 1],
                                           strlen(argv[optind + 1]), q));
    }

    if (argv[optind][0] == '\0') {
        return actl_usage_error(ctx, "empty DEST");
    }

    if (strcmp(argv[optind], "-") == 0) {
        return actl_usage_error(ctx, "DEST is a directory; \"-\" (standard "
                                "output) is not one");
    }

    /* the source first: its format and that it is this secret's */

    rc = actl_start(ctx, MDB_RDONLY, &txn);
    if (rc != ACTL_OK) {
        return rc;
    }

    /* mdb_env_copy2() begins its own read transaction in this thread */

    mdb_txn_abort(txn);

    target = NULL;
    tmp = NULL;
    path = NULL;

    memset(&copy, 0, sizeof(actl_copy_t));

    path = actl_path(ctx->db, AKC_DATA_FILE);
    if (path == NULL) {
        actl_error(ctx, "out of memory");
        rc = ACTL_FAIL;
        goto close;
    }

    if (stat(ctx->db, &dir) == -1 || stat(path, &data) == -1) {
        actl_error(ctx, "stat %s: %s", actl_quote(ctx->db, strlen(ctx->db), q),
                   strerror(errno));
        rc = ACTL_FAIL;
        goto close;
    }

    rc = actl_backup_dest(ctx, argv[optind], &target, &tmp);
    if (rc != ACTL_OK) {
        goto close;
    }

    if (mkdtemp(tmp) == NULL) {
        actl_error(ctx, "mkdir %s: %s", actl_quote(tmp, strlen(tmp), q),
                   strerror(errno));
        rc = ACTL_FAIL;
        goto close;
    }

    (void) actl_quote(tmp, strlen(tmp), q);

    rc = mdb_env_copy2(ctx->env, tmp, MDB_CP_COMPACT);

    actl_close(ctx);

    if (rc != MDB_SUCCESS) {
        actl_error(ctx, "writing the copy into %s failed: %s; no backup "
                   "was made", q, mdb_strerror(rc));
        rc = ACTL_FAIL;
        goto failed;
    }

    rc = actl_backup_lock(ctx, tmp, &data);
    if (rc != ACTL_OK) {
        goto failed;
    }

    /* the copy is read back as restore would read it, through its lock */

    copy.path = tmp;

    rc = actl_copy_open(ctx, &copy);

    if (rc == ACTL_OK) {
        rc = actl_copy_verify(ctx, &copy);
    }

    actl_copy_close(&copy);

    if (rc != ACTL_OK) {
        actl_error(ctx, "the copy in %s is not whole; no backup was made",
                   q);
        rc = ACTL_FAIL;
        goto failed;
    }

    rc = actl_backup_finish(ctx, tmp, &dir, &data);
    if (rc != ACTL_OK) {
        goto failed;
    }

    if (rename(tmp, target) == -1) {
        actl_error(ctx, "rename %s to %s: %s; no backup was made", q,
                   actl_quote(target, strlen(target), q2), strerror(errno));
        rc = ACTL_FAIL;
        goto failed;
    }

    /* the rename itself: the directory entry in DEST's parent */

    (void) actl_fsync_path(ctx, dirname(tmp));

    printf("backed up %zu key%s to %s (%lld bytes)\n", copy.nkeys,
           copy.nkeys == 1 ? "" : "s", actl_quote(target, strlen(target), q),
           (long long) copy.size);

    rc = ACTL_OK;
    goto close;

failed:

    actl_backup_remove(tmp);

close:

    actl_close(ctx);

    free(path);
    free(target);
    free(tmp);

    return rc;
}


/*
 * DEST is made, or it is an empty directory; it is neither the source
 * nor inside it, nor a mount point, nor the current directory.  target
 * is DEST with its symbolic links resolved, tmp the template of the
 * directory the copy is written into: beside DEST, on its file system,
 * hidden from "backup-*" globs.
 */

static int
actl_backup_dest(actl_ctx_t *ctx, const char *dest, char **target,
    char **tmp)
{
    int           rc, made;
    char         *d, *b, *name, *real, *p;
    size_t        len;
    struct stat   st, cwd;
    char          q[ACTL_QUOTE_LEN];

    if (actl_backup_name(ctx, dest) != ACTL_OK) {
        return ACTL_FAIL;
    }

    d = strdup(dest);
    b = strdup(dest);
    real = NULL;

    rc = ACTL_FAIL;

    if (d == NULL || b == NULL) {
        actl_error(ctx, "out of memory");
        goto done;
    }

    (void) actl_quote(dest, strlen(dest), q);

    made = (lstat(dest, &st) == -1 && errno == ENOENT);

    if (made) {
        /* "dir/new/": made in the real "dir", as "new" */

        name = basename(b);

        p = realpath(dirname(d), NULL);
        if (p == NULL) {
            actl_error(ctx, "%s: the directory it is to be made in: %s",
                       q, strerror(errno));
            goto done;
        }

        len = strlen(p) + 1 + strlen(name) + 1;

        real = malloc(len);
        if (real != NULL) {
            snprintf(real, len, "%s/%s", (strcmp(p, "/") == 0) ? "" : p,
                     name);
        }

        free(p);

        if (real == NULL) {
            actl_error(ctx, "out of memory");
            goto done;
        }

    } else if (stat(dest, &st) == -1) {
        actl_error(ctx, "%s: %s", q, strerror(errno));
        goto done;

    } else if (!S_ISDIR(st.st_mode)) {
        actl_error(ctx, "%s exists and is not a directory; nothing was "
                   "written (give a new or empty directory)", q);
        goto done;

    } else {
        real = realpath(dest, NULL);
        if (real == NULL) {
            actl_error(ctx, "%s: %s", q, strerror(errno));
            goto done;
        }
    }

    if (actl_backup_inside(ctx, dest, real, made) != ACTL_OK) {
        goto done;
    }

    if (!made) {
        /* renamed over, it would leave the shell in a deleted directory */

        if (stat(".", &cwd) == 0
            && cwd.st_dev == st.st_dev && cwd.st_ino == st.st_ino)
        {
            actl_error(ctx, "%s is the current directory; nothing was "
                       "written (give a new directory, such as "
                       "\"backup-1\")", q);
            goto done;
        }

        if (actl_backup_mount(ctx, dest, real, &st) != ACTL_OK) {
            goto done;
        }

        if (actl_backup_empty(ctx, dest) != ACTL_OK) {
            goto done;
        }
    }

    /* "/parent/.name.incomplete-XXXXXX" */

    p = strrchr(real, '/');
    len = strlen(real) + sizeof("/." ACTL_BACKUP_TMP);

    *tmp = malloc(len);
    if (*tmp == NULL) {
        actl_error(ctx, "out of memory");
        goto done;
    }

    snprintf(*tmp, len, "%.*s/.%s" ACTL_BACKUP_TMP, (int) (p - real), real,
             p + 1);

    *target = real;
    real = NULL;

    rc = ACTL_OK;

done:

    free(d);
    free(b);
    free(real);

    return rc;
}


/* "." and "..", alone or last ("dir/.", "../.."), name no new directory */

static int
actl_backup_name(actl_ctx_t *ctx, const char *dest)
{
    size_t       len;
    const char  *last;
    char         q[ACTL_QUOTE_LEN];

    len = strlen(dest);

    while (len > 1 && dest[len - 1] == '/') {
        len--;
    }

    for (last = dest + len; last > dest && last[-1] != '/'; last--) {
        /* void */
    }

    len -= last - dest;

    if ((len == 1 && last[0] == '.')
        || (len == 2 && last[0] == '.' && last[1] == '.'))
    {
        actl_error(ctx, "%s ends in \"%.*s\": name the backup directory "
                   "itself, a new one (such as \"backup-1\") or an empty "
                   "one, not the current or the parent directory; nothing "
                   "was written", actl_quote(dest, strlen(dest), q),
                   (int) len, last);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/*
 * The copy is made beside DEST and renamed onto it; a mount point
 * cannot be renamed over (EBUSY), and only after the whole copy was
 * written on the file system of its parent.  A mount point is refused
 * before anything is written: its device differs from its parent's, or,
 * for a bind mount of the same file system, statx() says so.
 */

static int
actl_backup_mount(actl_ctx_t *ctx, const char *dest, const char *real,
    const struct stat *st)
{
    int           mount;
    char         *parent;
    size_t        len;
    struct stat   pst;
    char          q[ACTL_QUOTE_LEN];
#ifdef STATX_ATTR_MOUNT_ROOT
    struct statx  stx;
#endif

    len = strrchr(real, '/') - real;

    parent = strndup(real, len ? len : 1);
    if (parent == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    mount = (stat(parent, &pst) == 0
             && (pst.st_dev != st->st_dev || pst.st_ino == st->st_ino));

#ifdef STATX_ATTR_MOUNT_ROOT

    if (!mount
        && statx(AT_FDCWD, real, 0, 0, &stx) == 0
        && (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
        && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
    {
        mount = 1;
    }

#endif

    free(parent);

    if (mount) {
        actl_error(ctx, "%s is a mount point: the copy is written beside "
                   "DEST and renamed onto it, which a mount point does "
                   "not allow; nothing was written (give a new directory "
                   "inside it)", actl_quote(dest, strlen(dest), q));
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/*
 * DEST is not the database directory, nor inside it: DEST itself when
 * it exists, and every directory above it, is compared with the
 * database directory by device and inode, so that neither a symbolic
 * link nor a bind mount of the database directory hides it.
 */

static int
actl_backup_inside(actl_ctx_t *ctx, const char *dest, const char *real,
    int made)
{
    int           rc;
    char         *p, *slash;
    struct stat   db, st;
    char          q[ACTL_QUOTE_LEN];

    if (stat(ctx->db, &db) == -1) {
        actl_error(ctx, "stat %s: %s", actl_quote(ctx->db, strlen(ctx->db), q),
                   strerror(errno));
        return ACTL_FAIL;
    }

    p = strdup(real);
    if (p == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    rc = ACTL_OK;

    if (made) {
        slash = strrchr(p, '/');
        slash[slash == p ? 1 : 0] = '\0';
    }

    for ( ;; ) {

        if (stat(p, &st) == 0
            && st.st_dev == db.st_dev && st.st_ino == db.st_ino)
        {
            actl_error(ctx, "%s is the database directory or inside it; "
                       "nothing was written",
                       actl_quote(dest, strlen(dest), q));
            rc = ACTL_FAIL;
            break;
        }

        if (strcmp(p, "/") == 0) {
            break;
        }

        slash = strrchr(p, '/');
        slash[slash == p ? 1 : 0] = '\0';
    }

    free(p);

    return rc;
}


static int
actl_backup_empty(actl_ctx_t *ctx, const char *dir)
{
    int             n, data;
    DIR            *dp;
    struct dirent  *de;
    char            q[ACTL_QUOTE_LEN];

    (void) actl_quote(dir, strlen(dir), q);

    dp = opendir(dir);
    if (dp == NULL) {
        actl_error(ctx, "opendir %s: %s", q, strerror(errno));
        return ACTL_FAIL;
    }

    n = 0;
    data = 0;

    errno = 0;

    while ((de = readdir(dp)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }

        n++;

        if (strcmp(de->d_name, AKC_DATA_FILE) == 0) {
            data = 1;
            break;
        }
    }

    if (de == NULL && errno != 0) {
        actl_error(ctx, "readdir %s: %s", q, strerror(errno));
        closedir(dp);
        return ACTL_FAIL;
    }

    closedir(dp);

    if (data) {
        actl_error(ctx, "%s holds a database already; nothing was written "
                   "(give a new or empty directory)", q);
        return ACTL_FAIL;
    }

    if (n) {
        actl_error(ctx, "%s is not empty; nothing was written (give a new "
                   "or empty directory)", q);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/*
 * The copy's lock file, made as apikeyctl makes a missing one (see
 * actl_lock_check()): of the group of data.mdb, 0660 when data.mdb is
 * readable by its group (init --user), else 0600; LMDB would make it
 * with the mode it is given, and nginx workers could not open it.  The
 * read back of the copy then sets it up, with init's reader slots.
 */

static int
actl_backup_lock(actl_ctx_t *ctx, const char *tmp, const struct stat *data)
{
    int      fd, rc;
    char    *lock;
    mode_t   mode;
    char     q[ACTL_QUOTE_LEN];

    lock = actl_path(tmp, AKC_LOCK_FILE);
    if (lock == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    mode = (data->st_mode & S_IRGRP) ? 0660 : 0600;

    rc = ACTL_OK;

    fd = open(lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);

    if (fd == -1
        || (data->st_gid != getegid()
            && fchown(fd, (uid_t) -1, data->st_gid) == -1)
        || fchmod(fd, mode) == -1)
    {
        actl_error(ctx, "%s: the lock file cannot be made with the group "
                   "(%ld) and mode (%04o) of the database: %s; no backup "
                   "was made", actl_quote(lock, strlen(lock), q),
                   (long) data->st_gid, (unsigned) mode, strerror(errno));
        rc = ACTL_FAIL;
    }

    if (fd != -1) {
        close(fd);
    }

    free(lock);

    return rc;
}


/*
 * The copy gets the group and mode of the source: data.mdb those of
 * data.mdb, the directory those of the database directory; a copy left
 * readable by another group would show it the hashes.  Then both are
 * synced, before the rename makes the copy DEST.
 */

static int
actl_backup_finish(actl_ctx_t *ctx, const char *tmp, const struct stat *dir,
    const struct stat *data)
{
    int                 i, fd, rc;
    char               *file;
    const char         *path[2];
    struct stat         cur;
    const struct stat  *st[2];
    char                q[ACTL_QUOTE_LEN];

    file = actl_path(tmp, AKC_DATA_FILE);
    if (file == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    path[0] = file;
    path[1] = tmp;
    st[0] = data;
    st[1] = dir;

    rc = ACTL_OK;

    for (i = 0; i < 2 && rc == ACTL_OK; i++) {

        (void) actl_quote(path[i], strlen(path[i]), q);

        fd = open(path[i], O_RDONLY | O_CLOEXEC);
        if (fd == -1) {
            actl_error(ctx, "open %s: %s", q, strerror(errno));
            rc = ACTL_FAIL;
            break;
        }

        if (fstat(fd, &cur) == -1
            || (cur.st_gid != st[i]->st_gid
                && fchown(fd, (uid_t) -1, st[i]->st_gid) == -1)
            || fchmod(fd, st[i]->st_mode & 07777) == -1)
        {
            actl_error(ctx, "%s: the group (%ld) and mode (%04o) of the "
                       "database cannot be given to it: %s; no backup was "
                       "made", q, (long) st[i]->st_gid,
                       (unsigned) (st[i]->st_mode & 07777), strerror(errno));
            rc = ACTL_FAIL;

        } else if (fsync(fd) == -1) {
            actl_error(ctx, "fsync %s: %s", q, strerror(errno));
            rc = ACTL_FAIL;
        }

        close(fd);
    }

    free(file);

    return rc;
}


static int
actl_fsync_path(actl_ctx_t *ctx, const char *path)
{
    int   fd, rc;
    char  q[ACTL_QUOTE_LEN];

    (void) actl_quote(path, strlen(path), q);

    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        actl_error(ctx, "open %s: %s", q, strerror(errno));
        return ACTL_FAIL;
    }

    rc = ACTL_OK;

    if (fsync(fd) == -1) {
        actl_error(ctx, "fsync %s: %s", q, strerror(errno));
        rc = ACTL_FAIL;
    }

    close(fd);

    return rc;
}


/* what a failed backup wrote: data.mdb, and lock.mdb once it is made */

static void
actl_backup_remove(const char *tmp)
{
    int          i;
    char        *path;
    const char  *name[2] = { AKC_DATA_FILE, AKC_LOCK_FILE };

    for (i = 0; i < 2; i++) {
        path = actl_path(tmp, name[i]);

        if (path != NULL) {
            (void) unlink(path);
            free(path);
        }
    }

    (void) rmdir(tmp);
}
