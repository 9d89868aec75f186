
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl init: the database, the secret and their permissions.
 */


#include "actl.h"


static int actl_init_perms(actl_ctx_t *ctx, const char *user, gid_t gid);
static void actl_init_undo(actl_ctx_t *ctx, int made);
static int actl_init_chmod(actl_ctx_t *ctx, const char *path, mode_t mode,
    const char *user, gid_t gid);


int
actl_cmd_init(actl_ctx_t *ctx, int argc, char **argv)
{
    int             c, rc, exists, created, initialized, grown, made;
    gid_t           gid;
    size_t          mapsize;
    MDB_stat        ms;
    MDB_txn        *txn;
    const char     *user;
    MDB_envinfo     info;
    struct stat     st;
    struct passwd  *pw;

    static struct option  options[] = {
        { "user",       required_argument, NULL, 'u' },
        { "map-size",   required_argument, NULL, 'm' },
        { NULL, 0, NULL, 0 }
    };

    user = NULL;
    gid = 0;
    mapsize = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'u':
            user = optarg;
            break;

        case 'm':
            if (actl_parse_size(optarg, &mapsize) != ACTL_OK) {
                return actl_usage_error(ctx, "invalid map size \"%s\" "
                                        "(bytes, or a number with k, m, "
                                        "g or t)", optarg);
            }

            /* smaller, LMDB cannot even hold the sub-databases */

            if (mapsize < ACTL_MAP_MIN) {
                return actl_usage_error(ctx, "map size \"%s\" is too "
                                        "small (at least 64k)", optarg);
            }
            break;

        default:
            return actl_option_error(ctx, c, argv);
        }
    }

    if (optind != argc) {
        return actl_usage_error(ctx, "unexpected argument \"%s\"",
                                argv[optind]);
    }

    if (user != NULL) {
        pw = getpwnam(user);
        if (pw == NULL) {
            return actl_usage_error(ctx, "unknown user \"%s\"", user);
        }

        gid = pw->pw_gid;
    }

    exists = actl_db_exists(ctx);
    if (exists == -1) {
        return ACTL_FAIL;
    }

    /* a new secret only for a new database: an old one needs its own */

    created = 0;

    if (!exists && stat(ctx->secret_path, &st) == -1 && errno == ENOENT) {
        rc = actl_secret_create(ctx);
        if (rc == ACTL_FAIL) {
            return rc;
        }

        created = (rc == ACTL_OK);
    }

    if (actl_secret_load(ctx) != ACTL_OK) {
        return ACTL_FAIL;
    }

    made = 0;

    if (mkdir(ctx->db, user ? 0750 : 0700) == 0) {
        made = 1;

    } else if (errno != EEXIST) {
        actl_error(NULL, "mkdir \"%s\": %s", ctx->db, strerror(errno));
        return ACTL_FAIL;
    }

    rc = actl_env_open(ctx, 0, user ? 0660 : 0600,
                       exists ? 0 : (mapsize ? mapsize : AKC_DEFAULT_MAPSIZE));
    if (rc != ACTL_OK) {
        goto close;
    }

    txn = NULL;
    grown = 0;
    initialized = 0;

    rc = mdb_env_info(ctx->env, &info);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_env_info", rc);
        rc = ACTL_FAIL;
        goto close;
    }

    if (exists && mapsize > info.me_mapsize) {
        rc = mdb_env_set_mapsize(ctx->env, mapsize);
        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_env_set_mapsize", rc);
            rc = ACTL_FAIL;
            goto close;
        }

        grown = 1;
    }

    rc = actl_begin(ctx, 0, MDB_CREATE, 0, &txn);
    if (rc != ACTL_OK) {
        goto close;
    }

    rc = akc_meta_check(txn, &ctx->dbs, &ctx->secret);

    if (rc == AKC_EUNINIT) {

        /*
         * keys without a format or a fingerprint: the meta entries were
         * lost, and recording them now would bless any secret
         */

        rc = mdb_stat(txn, ctx->dbs.keys, &ms);
        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_stat", rc);
            rc = ACTL_FAIL;
            goto abort;
        }

        if (ms.ms_entries != 0) {
            actl_error(NULL, "open \"%s\": it holds %zu keys but no "
                       "format version or secret fingerprint, so the "
                       "secret they were hashed with is unknown; nothing "
                       "was changed (restore a backup into a new "
                       "database)", ctx->db, (size_t) ms.ms_entries);
            rc = ACTL_FAIL;
            goto abort;
        }

        rc = akc_meta_init(txn, &ctx->dbs, &ctx->secret, ctx->now);
        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_put", rc);
            rc = ACTL_FAIL;
            goto abort;
        }

        initialized = 1;

    } else if (rc != AKC_OK) {
        actl_error(NULL, "open \"%s\": %s", ctx->db, akc_meta_strerror(rc));
        rc = ACTL_FAIL;
        goto abort;

    } else if (grown) {
        rc = akc_meta_touch(txn, &ctx->dbs, ctx->now);
        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_put", rc);
            rc = ACTL_FAIL;
            goto abort;
        }
    }

    if (initialized || grown) {
        rc = actl_commit(ctx, &txn);
        if (rc != ACTL_OK) {
            goto abort;
        }
    }

    if (!exists || user != NULL) {
        rc = actl_init_perms(ctx, user, gid);
        if (rc != ACTL_OK) {
            goto abort;
        }
    }

    rc = mdb_env_info(ctx->env, &info);
    if (rc != MDB_SUCCESS) {
        info.me_mapsize = 0;
    }

    rc = ACTL_OK;

    if (initialized) {
        printf("initialized \"%s\" (secret \"%s\"%s)\n", ctx->db,
               ctx->secret_path, created ? " created" : "");

    } else if (grown) {
        printf("map size of \"%s\" grown\n", ctx->db);

    } else {
        printf("apikeyctl: database \"%s\" already initialized\n", ctx->db);
    }

    if (user != NULL) {
        printf("permissions set for user \"%s\"\n", user);
    }

    printf("map size %zu bytes\n", info.me_mapsize);

abort:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

close:

    actl_close(ctx);

    /*
     * a new database that could not be made whole (a map larger than the
     * address space, say) is not left behind for every later command to
     * refuse
     */

    if (rc != ACTL_OK && !exists) {
        actl_init_undo(ctx, made);
    }

    return rc;
}


static void
actl_init_undo(actl_ctx_t *ctx, int made)
{
    char  *path;

    path = actl_path(ctx->db, AKC_DATA_FILE);
    if (path != NULL) {
        (void) unlink(path);
        free(path);
    }

    path = actl_path(ctx->db, AKC_LOCK_FILE);
    if (path != NULL) {
        (void) unlink(path);
        free(path);
    }

    if (made) {
        (void) rmdir(ctx->db);
    }
}


/*
 * With --user, nginx workers running as that user can read data.mdb and
 * lock lock.mdb, but cannot create files in the directory.
 */

static int
actl_init_perms(actl_ctx_t *ctx, const char *user, gid_t gid)
{
    int      rc;
    char    *path;
    size_t   len;

    len = strlen(ctx->db) + sizeof("/" AKC_DATA_FILE) + sizeof(AKC_LOCK_FILE);

    path = malloc(len);
    if (path == NULL) {
        actl_error(NULL, "out of memory");
        return ACTL_FAIL;
    }

    rc = actl_init_chmod(ctx, ctx->db, user ? 02750 : 0700, user, gid);

    if (rc == ACTL_OK) {
        snprintf(path, len, "%s/%s", ctx->db, AKC_DATA_FILE);
        rc = actl_init_chmod(ctx, path, user ? 0640 : 0600, user, gid);
    }

    if (rc == ACTL_OK) {
        snprintf(path, len, "%s/%s", ctx->db, AKC_LOCK_FILE);
        rc = actl_init_chmod(ctx, path, user ? 0660 : 0600, user, gid);
    }

    free(path);

    return rc;
}


static int
actl_init_chmod(actl_ctx_t *ctx, const char *path, mode_t mode,
    const char *user, gid_t gid)
{
    if (user != NULL && chown(path, geteuid(), gid) == -1) {
        actl_error(ctx, "chown \"%s\": %s", path, strerror(errno));
        return ACTL_FAIL;
    }

    if (chmod(path, mode) == -1) {
        actl_error(ctx, "chmod \"%s\": %s", path, strerror(errno));
        return ACTL_FAIL;
    }

    return ACTL_OK;
}
