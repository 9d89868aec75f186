
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl backup: a compact copy of the database, made with
 * mdb_env_copy2() from one read transaction while nginx serves.  It is
 * written into a new directory beside DEST, read back as restore reads
 * a copy, given the source's group and modes, synced, and renamed to
 * DEST last, so that a backup killed at any moment leaves no DEST.
 */


#include "actl.h"

#include <dirent.h>
#include <libgen.h>


#define ACTL_BACKUP_TMP         ".incomplete-XXXXXX"


static int actl_backup_dest(actl_ctx_t *ctx, const char *dest, char **target,
    char **tmp);
static int actl_backup_empty(actl_ctx_t *ctx, const char *dir);
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
        return actl_usage_error(ctx, "unexpected argument \"%s\"",
                                argv[optind + 1]);
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
        actl_error(ctx, "stat \"%s\": %s", ctx->db, strerror(errno));
        rc = ACTL_FAIL;
        goto close;
    }

    rc = actl_backup_dest(ctx, argv[optind], &target, &tmp);
    if (rc != ACTL_OK) {
        goto close;
    }

    if (mkdtemp(tmp) == NULL) {
        actl_error(ctx, "mkdir \"%s\": %s", tmp, strerror(errno));
        rc = ACTL_FAIL;
        goto close;
    }

    rc = mdb_env_copy2(ctx->env, tmp, MDB_CP_COMPACT);

    actl_close(ctx);

    if (rc != MDB_SUCCESS) {
        actl_error(ctx, "mdb_env_copy2(\"%s\") failed: %s", tmp,
                   mdb_strerror(rc));
        rc = ACTL_FAIL;
        goto failed;
    }

    /* the copy is read back as restore would read it */

    copy.path = tmp;

    rc = actl_copy_open(ctx, &copy);

    if (rc == ACTL_OK) {
        rc = actl_copy_verify(ctx, &copy);
    }

    actl_copy_close(&copy);

    if (rc != ACTL_OK) {
        actl_error(ctx, "the copy in \"%s\" is not whole; no backup was "
                   "made", tmp);
        rc = ACTL_FAIL;
        goto failed;
    }

    rc = actl_backup_finish(ctx, tmp, &dir, &data);
    if (rc != ACTL_OK) {
        goto failed;
    }

    if (rename(tmp, target) == -1) {
        actl_error(ctx, "rename \"%s\" to \"%s\": %s", tmp, target,
                   strerror(errno));
        rc = ACTL_FAIL;
        goto failed;
    }

    /* the rename itself: the directory entry in DEST's parent */

    (void) actl_fsync_path(ctx, dirname(tmp));

    printf("backed up %zu keys to \"%s\" (%lld bytes)\n", copy.nkeys,
           target, (long long) copy.size);

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
 * nor inside it.  target is DEST with its symbolic links resolved, tmp
 * the template of the directory the copy is written into: beside DEST,
 * on its file system, hidden from "backup-*" globs.
 */

static int
actl_backup_dest(actl_ctx_t *ctx, const char *dest, char **target,
    char **tmp)
{
    int           rc, made;
    char         *d, *b, *name, *real, *src, *p;
    size_t        len;
    struct stat   st;

    d = strdup(dest);
    b = strdup(dest);
    real = NULL;
    src = NULL;

    rc = ACTL_FAIL;

    if (d == NULL || b == NULL) {
        actl_error(ctx, "out of memory");
        goto done;
    }

    made = (lstat(dest, &st) == -1 && errno == ENOENT);

    if (made) {
        /* "dir/new/": made in the real "dir", as "new" */

        name = basename(b);

        p = realpath(dirname(d), NULL);
        if (p == NULL) {
            actl_error(ctx, "\"%s\": the directory it is to be made in: %s",
                       dest, strerror(errno));
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
        actl_error(ctx, "\"%s\": %s", dest, strerror(errno));
        goto done;

    } else if (!S_ISDIR(st.st_mode)) {
        actl_error(ctx, "\"%s\" exists and is not a directory; nothing was "
                   "written (give a new or empty directory)", dest);
        goto done;

    } else {
        real = realpath(dest, NULL);
        if (real == NULL) {
            actl_error(ctx, "\"%s\": %s", dest, strerror(errno));
            goto done;
        }
    }

    src = realpath(ctx->db, NULL);
    if (src == NULL) {
        actl_error(ctx, "\"%s\": %s", ctx->db, strerror(errno));
        goto done;
    }

    len = strlen(src);

    if (strncmp(real, src, len) == 0
        && (real[len] == '\0' || real[len] == '/'))
    {
        actl_error(ctx, "\"%s\" is the database directory or inside it; "
                   "nothing was written", dest);
        goto done;
    }

    if (!made && actl_backup_empty(ctx, dest) != ACTL_OK) {
        goto done;
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
    free(src);

    return rc;
}


static int
actl_backup_empty(actl_ctx_t *ctx, const char *dir)
{
    DIR            *dp;
    struct dirent  *de;

    dp = opendir(dir);
    if (dp == NULL) {
        actl_error(ctx, "opendir \"%s\": %s", dir, strerror(errno));
        return ACTL_FAIL;
    }

    errno = 0;

    while ((de = readdir(dp)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }

        if (strcmp(de->d_name, AKC_DATA_FILE) == 0) {
            actl_error(ctx, "\"%s\" holds a database already; nothing was "
                       "written (give a new or empty directory)", dir);

        } else {
            actl_error(ctx, "\"%s\" is not empty; nothing was written "
                       "(give a new or empty directory)", dir);
        }

        closedir(dp);

        return ACTL_FAIL;
    }

    if (errno != 0) {
        actl_error(ctx, "readdir \"%s\": %s", dir, strerror(errno));
        closedir(dp);
        return ACTL_FAIL;
    }

    closedir(dp);

    return ACTL_OK;
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

        fd = open(path[i], O_RDONLY | O_CLOEXEC);
        if (fd == -1) {
            actl_error(ctx, "open \"%s\": %s", path[i], strerror(errno));
            rc = ACTL_FAIL;
            break;
        }

        if (fstat(fd, &cur) == -1
            || (cur.st_gid != st[i]->st_gid
                && fchown(fd, (uid_t) -1, st[i]->st_gid) == -1)
            || fchmod(fd, st[i]->st_mode & 07777) == -1)
        {
            actl_error(ctx, "\"%s\": the group (%ld) and mode (%04o) of the "
                       "database cannot be given to it: %s; no backup was "
                       "made", path[i], (long) st[i]->st_gid,
                       (unsigned) (st[i]->st_mode & 07777), strerror(errno));
            rc = ACTL_FAIL;

        } else if (fsync(fd) == -1) {
            actl_error(ctx, "fsync \"%s\": %s", path[i], strerror(errno));
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
    int  fd, rc;

    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        actl_error(ctx, "open \"%s\": %s", path, strerror(errno));
        return ACTL_FAIL;
    }

    rc = ACTL_OK;

    if (fsync(fd) == -1) {
        actl_error(ctx, "fsync \"%s\": %s", path, strerror(errno));
        rc = ACTL_FAIL;
    }

    close(fd);

    return rc;
}


/* what a failed backup wrote: mdb_env_copy2() writes data.mdb only */

static void
actl_backup_remove(const char *tmp)
{
    char  *path;

    path = actl_path(tmp, AKC_DATA_FILE);

    if (path != NULL) {
        (void) unlink(path);
        free(path);
    }

    (void) rmdir(tmp);
}
