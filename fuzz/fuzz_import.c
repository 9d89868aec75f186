
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the rows of "apikeyctl import", CSV (fuzz_import_csv)
 * or JSONL (fuzz_import_jsonl, built with AKF_JSONL=1).  Every file of
 * tools/apikeyctl/ is linked in, its main() renamed (-Dmain=actl_main),
 * so the fuzzed code is the real row code (libcsv or jansson, the field
 * checks, the hashing, the duplicate checks), not a copy.  As
 * "apikeyctl import --skip-invalid" does, the input goes through a pipe
 * to apikeyctl's own line reader and row parser, with no transaction;
 * the rows kept are then written by actl_import_write() in a write
 * transaction on a scratch database, aborted after each input.  The
 * database holds one key (id "seeded") from the start, so that updates
 * and clashing ids are reached too; an input whose first byte is odd
 * goes with --replace --force, through the sorted path.
 */


#include "actl.h"


#ifndef AKF_JSONL
#define AKF_JSONL               0
#endif

#define AKF_NOW                 1767225600      /* 2026-01-01T00:00:00Z */
#define AKF_MAPSIZE             ((size_t) 64 << 20)
#define AKF_INPUT_MAX           65536           /* what a pipe holds */

#define akf_assert(expr)                                                      \
    if (!(expr)) {                                                            \
        abort();                                                              \
    }


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int akf_import(const char *data, size_t size, int commit);
static void akf_cleanup(void);


static actl_ctx_t  akf_ctx;
static char        akf_dir[] = "/tmp/apikey-fuzz-XXXXXX";


#if (AKF_JSONL)
static const char  akf_seed[] =
    "{\"key\": \"ak_seededseededseededseededseeded1\", \"id\": \"seeded\"}\n";
#else
static const char  akf_seed[] =
    "key,id\n"
    "ak_seededseededseededseededseeded1,seeded\n";
#endif


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int       rc;
    size_t    i;
    MDB_txn  *txn;

    if (akc_init() != AKC_OK) {
        abort();
    }

    json_set_alloc_funcs(actl_secure_malloc, actl_secure_free);

    akf_ctx.cmd = "import";
    akf_ctx.now = AKF_NOW;

    for (i = 0; i < AKC_SECRET_LEN; i++) {
        akf_ctx.secret.bytes[i] = (unsigned char) i;
    }

    akc_secret_prepare(&akf_ctx.secret);

    if (mkdtemp(akf_dir) == NULL) {
        abort();
    }

    atexit(akf_cleanup);

    akf_ctx.db = akf_dir;

    rc = mdb_env_create(&akf_ctx.env);

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_set_maxdbs(akf_ctx.env, AKC_MAXDBS);
    }

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_set_mapsize(akf_ctx.env, AKF_MAPSIZE);
    }

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_open(akf_ctx.env, akf_dir, MDB_NOSYNC, 0600);
    }

    if (rc == MDB_SUCCESS) {
        rc = mdb_txn_begin(akf_ctx.env, NULL, 0, &txn);
    }

    if (rc == MDB_SUCCESS) {
        rc = akc_dbs_open(txn, &akf_ctx.dbs, MDB_CREATE);

        if (rc == MDB_SUCCESS) {
            rc = akc_meta_init(txn, &akf_ctx.dbs, &akf_ctx.secret, AKF_NOW);
        }

        if (rc == MDB_SUCCESS) {
            rc = mdb_txn_commit(txn);

        } else {
            mdb_txn_abort(txn);
        }
    }

    if (rc != MDB_SUCCESS
        || akf_import(akf_seed, sizeof(akf_seed) - 1, 1) != ACTL_OK)
    {
        abort();
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int  rc;

    if (size > AKF_INPUT_MAX) {
        return 0;
    }

    rc = akf_import((const char *) data, size, 0);

    /* ACTL_FAIL is a database or memory failure: none should happen */

    akf_assert(rc == ACTL_OK || rc == ACTL_INVALID);

    return 0;
}


static int
akf_import(const char *data, size_t size, int commit)
{
    int             rc, fd[2];
    MDB_txn        *txn;
    actl_reader_t   r;
    actl_import_t  *imp;

    if (pipe(fd) == -1) {
        abort();
    }

    if (size > 0 && write(fd[1], data, size) != (ssize_t) size) {
        abort();
    }

    close(fd[1]);

    imp = calloc(1, sizeof(actl_import_t));

    if (imp == NULL || actl_reader_init(&r, fd[0]) != ACTL_OK) {
        abort();
    }

    imp->ctx = &akf_ctx;
    imp->skip_invalid = 1;
    imp->jsonl = AKF_JSONL;
    imp->replace = !commit && size > 0 && (data[0] & 1);
    imp->force = imp->replace;

    /* the rows are read and checked with no transaction, as by import */

#if (AKF_JSONL)
    rc = actl_import_jsonl(imp, &r, "fuzz");
#else
    rc = actl_import_csv(imp, &r, "fuzz");
#endif

    actl_reader_free(&r);
    close(fd[0]);

    /* then written, and the transaction aborted but for the seed */

    if (rc == ACTL_OK) {
        if (mdb_txn_begin(akf_ctx.env, NULL, 0, &txn) != MDB_SUCCESS) {
            abort();
        }

        rc = actl_import_write(&akf_ctx, txn, imp);

        if (rc == ACTL_IMPORT_SAME) {
            /* nothing to change: import aborts, and succeeds */
            rc = ACTL_OK;
        }

        if (commit && rc == ACTL_OK) {
            if (mdb_txn_commit(txn) != MDB_SUCCESS) {
                abort();
            }

        } else {
            mdb_txn_abort(txn);
        }

        /* the rows rejected in the transaction, as import prints them */

        if (rc == ACTL_OK || rc == ACTL_INVALID) {
            fflush(stderr);
            (void) actl_import_report(imp);
        }
    }

    actl_import_free(imp);
    sodium_memzero(imp, sizeof(actl_import_t));
    free(imp);

    return rc;
}


static void
akf_cleanup(void)
{
    char  path[sizeof(akf_dir) + sizeof("/" AKC_DATA_FILE)];

    if (akf_ctx.env != NULL) {
        mdb_env_close(akf_ctx.env);
        akf_ctx.env = NULL;
    }

    snprintf(path, sizeof(path), "%s/%s", akf_dir, AKC_DATA_FILE);
    (void) unlink(path);
    snprintf(path, sizeof(path), "%s/%s", akf_dir, AKC_LOCK_FILE);
    (void) unlink(path);
    (void) rmdir(akf_dir);
}
