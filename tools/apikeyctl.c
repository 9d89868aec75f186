
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl: creates the API key database and writes to it while nginx
 * keeps serving.  Everything about the key format, the hash, the record
 * encoding and the database layout lives in apikey_core.c.
 */


#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <csv.h>
#include <jansson.h>
#include <lmdb.h>
#include <sodium.h>

#include "apikey_core.h"


#define ACTL_VERSION            "0.1.0"

#define ACTL_DEFAULT_DB         "/var/lib/apikey"
#define ACTL_DEFAULT_SECRET     "/etc/nginx/apikey.secret"

/* exit codes */
#define ACTL_OK                 0
#define ACTL_FAIL               1
#define ACTL_USAGE              2
#define ACTL_INVALID            3
#define ACTL_REJECTED           4

#define ACTL_GEN_MAX            1000000
#define ACTL_DEFAULT_ID_LEN     16
#define ACTL_FIELD_MAX          1024
#define ACTL_LINE_MAX           (1024 * 1024)
#define ACTL_READ_SIZE          65536
#define ACTL_ERR_LEN            512
#define ACTL_QUOTE_MAX          64
#define ACTL_QUOTE_LEN          (4 * ACTL_QUOTE_MAX + sizeof("\"...\""))
#define ACTL_A_KEY              "(an API key)"
#define ACTL_LAG_RETRY_MS       100
#define ACTL_LOCK_WAIT          2       /* seconds: workers check each 1 s */
#define ACTL_SHOW_IDS_MAX       16
#define ACTL_TIME_MAX           64
#define ACTL_STDIN_KEY_LEN      1024
#define ACTL_TABLE_COLS         7

#define ACTL_CSV_LIST_HEADER                                                  \
    "id,subject,scopes,plan,expires,not_before,disabled,hint,created"


typedef struct {
    const char             *cmd;
    const char             *db;
    const char             *secret_path;
    MDB_env                *env;
    akc_dbs_t               dbs;
    akc_secret_t            secret;
    int64_t                 now;
    unsigned                lock_made:1;    /* lock.mdb made anew */
} actl_ctx_t;


typedef int (*actl_cmd_pt)(actl_ctx_t *ctx, int argc, char **argv);


typedef struct {
    const char             *name;
    actl_cmd_pt             handler;
    const char             *usage;
} actl_cmd_t;


/*
 * libcsv and jansson grow the buffers that hold plaintext keys with
 * realloc() and release them with free(), neither of which wipes; the
 * allocation wrappers keep the size in a header so that every buffer
 * can be wiped before it goes back to the allocator.
 */

typedef union {
    size_t                  size;
    max_align_t             align;
} actl_mem_t;


typedef enum {
    ACTL_COL_KEY = 0,
    ACTL_COL_HASH,
    ACTL_COL_ID,
    ACTL_COL_SUBJECT,
    ACTL_COL_SCOPES,
    ACTL_COL_PLAN,
    ACTL_COL_EXPIRES,
    ACTL_COL_NOT_BEFORE,
    ACTL_COL_DISABLED,
    ACTL_COL_HINT,
    ACTL_COL_CREATED,
    ACTL_COL_N
} actl_col_e;


typedef enum {
    ACTL_OP_REVOKE = 0,
    ACTL_OP_DISABLE,
    ACTL_OP_ENABLE,
    ACTL_OP_EXPIRE
} actl_op_e;


/* one input row, whatever the format: an empty value is an absent one */

typedef struct {
    const char             *data[ACTL_COL_N];
    size_t                  len[ACTL_COL_N];
} actl_fields_t;


typedef struct {
    unsigned char           hash[AKC_HASH_LEN];
    uint64_t                line;
} actl_seen_t;


/* the hashes this import wrote, with their lines: in-file duplicates */

typedef struct {
    actl_seen_t            *entries;
    uint32_t               *slots;      /* index + 1 in entries; 0: free */
    size_t                  nentries;
    size_t                  nalloc;
    size_t                  nslots;     /* a power of two */
} actl_set_t;


typedef struct {
    int                     fd;
    char                   *buf;
    char                   *line;
    size_t                  pos;
    size_t                  len;
    size_t                  size;
    uint64_t                number;
    unsigned                eof:1;
} actl_reader_t;


/* a checked input row, kept until the write transaction */

typedef struct {
    unsigned char           hash[AKC_HASH_LEN];
    uint64_t                line;
    size_t                  off;        /* its encoded record in the arena */
    size_t                  len;
    unsigned                has_id:1;
} actl_row_t;


typedef struct {
    actl_ctx_t             *ctx;
    MDB_txn                *txn;
    actl_set_t              seen;
    actl_row_t             *rows;
    size_t                  nrows;
    size_t                  nrows_alloc;
    unsigned char          *arena;
    size_t                  arena_len;
    size_t                  arena_size;
    uint64_t                line;       /* the first line of the row */
    uint64_t                added;
    uint64_t                updated;
    uint64_t                skipped;
    int                     rc;
    unsigned                skip_invalid:1;
    unsigned                jsonl:1;

    /* CSV */
    unsigned                header:1;
    unsigned                pending:1;  /* a row continues on next line */
    unsigned                row_ended:1;
    unsigned                colset;
    int                     ncols;
    int                     nfields;
    int                     cols[ACTL_COL_N];
    actl_fields_t           fields;
    char                    store[ACTL_COL_N][ACTL_FIELD_MAX + 1];
} actl_import_t;


typedef struct {
    char                    key[AKC_GEN_KEY_MAX_LEN + 1];
    char                    id[ACTL_DEFAULT_ID_LEN + 1];
} actl_genkey_t;


typedef struct {
    int                     pass;
    size_t                  width[ACTL_TABLE_COLS];
} actl_table_t;


typedef int (*actl_each_pt)(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data);


static int actl_cmd_help(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_init(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_gen(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_import(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_revoke(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_disable(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_enable(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_expire(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_list(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_show(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_verify(actl_ctx_t *ctx, int argc, char **argv);
static int actl_cmd_export(actl_ctx_t *ctx, int argc, char **argv);

static void actl_no_core(void);
static void actl_sigbus_init(actl_ctx_t *ctx);
static void actl_sigbus_handler(int signo);
static int actl_check_args(actl_ctx_t *ctx, int argc, char **argv);
static int actl_has_key(const char *s, size_t len);

static void actl_help(FILE *fp);
static void actl_usage(const char *name, FILE *fp);
static int actl_option_error(actl_ctx_t *ctx, int c, char **argv);
static int actl_usage_error(actl_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void actl_error(actl_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void actl_mdb_error(actl_ctx_t *ctx, const char *call, int rc);
static const char *actl_quote(const char *s, size_t len,
    char out[ACTL_QUOTE_LEN]);

static void *actl_secure_malloc(size_t size);
static void *actl_secure_realloc(void *p, size_t size);
static void actl_secure_free(void *p);

static int actl_parse_size(const char *s, size_t *size);
static int actl_parse_format(actl_ctx_t *ctx, const char *s,
    const char **names);
static int actl_db_exists(actl_ctx_t *ctx);
static int actl_secret_create(actl_ctx_t *ctx);
static int actl_secret_load(actl_ctx_t *ctx);
static int actl_env_open(actl_ctx_t *ctx, unsigned flags, mode_t mode,
    size_t mapsize);
static int actl_lock_check(actl_ctx_t *ctx);
static void actl_lock_wait(actl_ctx_t *ctx);
static int actl_open(actl_ctx_t *ctx, unsigned flags);
static int actl_start(actl_ctx_t *ctx, unsigned flags, MDB_txn **txn);
static int actl_begin(actl_ctx_t *ctx, unsigned flags, unsigned dbflags,
    int check, MDB_txn **txn);
static int actl_commit(actl_ctx_t *ctx, MDB_txn **txn);
static void actl_close(actl_ctx_t *ctx);
static int actl_init_perms(actl_ctx_t *ctx, const char *user, gid_t gid);
static int actl_init_chmod(actl_ctx_t *ctx, const char *path, mode_t mode,
    const char *user, gid_t gid);

static int actl_check_field(actl_col_e col, const char *s, size_t len,
    char *err, size_t errlen);
static int actl_check_time(actl_col_e col, const char *s, size_t len,
    int64_t now, int64_t *t, char *err, size_t errlen);
static int actl_check_times(int64_t not_before, int64_t expires, char *err,
    size_t errlen);
static int actl_check_bool(const char *s, size_t len, unsigned *flags,
    char *err, size_t errlen);
static int actl_check_hash(const char *s, size_t len,
    unsigned char hash[AKC_HASH_LEN], char *err, size_t errlen);
static int actl_check_key(const char *s, size_t len, char *err,
    size_t errlen);
static int actl_col_lookup(const char *name, size_t len);
static void actl_default_id(const unsigned char *hash,
    char id[ACTL_DEFAULT_ID_LEN + 1]);

static int actl_gen_store(actl_ctx_t *ctx, MDB_txn *txn, akc_record_t *rec,
    const char *prefix, const char *id, actl_genkey_t *g);
static void actl_gen_print(actl_ctx_t *ctx, akc_record_t *rec,
    const char *id, actl_genkey_t *g, int json);
static void actl_gen_unseen(actl_ctx_t *ctx, actl_genkey_t *keys,
    size_t count, const char *id);

static int actl_reader_init(actl_reader_t *r, int fd);
static int actl_reader_line(actl_reader_t *r, char **line, size_t *len);
static void actl_reader_free(actl_reader_t *r);
static int actl_reader_error(actl_import_t *imp, actl_reader_t *r, int n,
    const char *path);

static actl_seen_t *actl_set_find(actl_set_t *set,
    const unsigned char *hash);
static int actl_set_add(actl_set_t *set, const unsigned char *hash,
    uint64_t line);
static void actl_set_free(actl_set_t *set);

static int actl_import_csv(actl_import_t *imp, actl_reader_t *r,
    const char *path);
static void actl_csv_field(void *s, size_t len, void *data);
static void actl_csv_row(int c, void *data);
static void actl_csv_reset(actl_import_t *imp);
static int actl_import_jsonl(actl_import_t *imp, actl_reader_t *r,
    const char *path);
static int actl_import_json(actl_import_t *imp, json_t *obj, char *err,
    size_t errlen);
static int actl_import_row(actl_import_t *imp, actl_fields_t *f, char *err,
    size_t errlen);
static int actl_import_keep(actl_import_t *imp, akc_record_t *rec,
    const unsigned char *hash, int has_id, char *err, size_t errlen);
static int actl_import_write(actl_import_t *imp, int replace, int force,
    size_t *replaced);
static void actl_import_free(actl_import_t *imp);
static int actl_import_put(actl_import_t *imp, akc_record_t *rec,
    const unsigned char *hash, int has_id, char *err, size_t errlen);
static int actl_import_result(actl_import_t *imp, int rc, const char *err);

static int actl_update(actl_ctx_t *ctx, int argc, char **argv, actl_op_e op,
    int64_t at);
static int actl_update_one(actl_ctx_t *ctx, MDB_txn *txn, const char *id,
    actl_op_e op, int64_t at);

static int actl_lookup(actl_ctx_t *ctx, MDB_txn *txn, const char *id,
    akc_record_t *rec);
static int actl_each(actl_ctx_t *ctx, MDB_txn *txn, const char *subject,
    actl_each_pt handler, void *data);
static int actl_table_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data);
static int actl_json_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data);
static int actl_csv_out_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data);
static json_t *actl_json_record(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash);
static void actl_json_str(json_t *obj, const char *name, const char *s,
    size_t len);
static void actl_json_time(json_t *obj, const char *name, int64_t t);
static void actl_csv_put(const char *s, size_t len, int last);
static const char *actl_time(int64_t t, char buf[AKC_TIME_LEN + 1]);
static int actl_read_stdin_key(char *buf, size_t size, size_t *len);


static struct option  actl_global_options[] = {
    { "db",         required_argument, NULL, 'd' },
    { "secret",     required_argument, NULL, 's' },
    { "help",       no_argument,       NULL, 'h' },
    { "version",    no_argument,       NULL, 'V' },
    { NULL, 0, NULL, 0 }
};


static char  actl_stdout_buf[BUFSIZ];

/* what the SIGBUS handler writes: made before any file is mapped */
static char    actl_sigbus_msg[1024];
static size_t  actl_sigbus_len;


static actl_cmd_t  actl_commands[] = {

    { "init", actl_cmd_init,
      "init [--user USER] [--map-size SIZE]" },

    { "gen", actl_cmd_gen,
      "gen [--id ID] [--subject S] [--scopes A,B] [--plan P]\n"
      "                [--expires WHEN] [--not-before WHEN] [--prefix P]\n"
      "                [--count N] [--format text|json]" },

    { "import", actl_cmd_import,
      "import [--format csv|jsonl] [--replace [--force]] [--dry-run]\n"
      "                   [--skip-invalid] FILE|-" },

    { "revoke", actl_cmd_revoke, "revoke ID..." },
    { "disable", actl_cmd_disable, "disable ID..." },
    { "enable", actl_cmd_enable, "enable ID..." },
    { "expire", actl_cmd_expire, "expire ID... --at WHEN" },

    { "list", actl_cmd_list,
      "list [--subject S] [--format table|json|csv]" },

    { "show", actl_cmd_show, "show ID [--format text|json]" },
    { "verify", actl_cmd_verify, "verify [KEY|-]" },
    { "export", actl_cmd_export, "export [--format csv|jsonl]" },
    { "help", actl_cmd_help, "help" },

    { NULL, NULL, NULL }
};


static const char  *actl_col_names[] = {
    "key",
    "hash",
    "id",
    "subject",
    "scopes",
    "plan",
    "expires",
    "not_before",
    "disabled",
    "hint",
    "created"
};


static const char  *actl_table_header[] = {
    "ID", "SUBJECT", "PLAN", "SCOPES", "STATUS", "EXPIRES", "HINT"
};


int
main(int argc, char **argv)
{
    int          c, rc, first;
    actl_ctx_t   ctx;
    actl_cmd_t  *cmd;
    const char  *s;

    /* it holds keys and the secret: no core file, no ptrace by peers */

    actl_no_core();

    memset(&ctx, 0, sizeof(actl_ctx_t));

    s = getenv("APIKEY_DB");
    ctx.db = (s != NULL && s[0] != '\0') ? s : ACTL_DEFAULT_DB;

    s = getenv("APIKEY_SECRET");
    ctx.secret_path = (s != NULL && s[0] != '\0') ? s : ACTL_DEFAULT_SECRET;

    opterr = 0;

    while ((c = getopt_long(argc, argv, "+:d:s:hV", actl_global_options,
                            NULL))
           != -1)
    {
        switch (c) {

        case 'd':
            ctx.db = optarg;
            break;

        case 's':
            ctx.secret_path = optarg;
            break;

        case 'h':
            actl_help(stdout);
            return ACTL_OK;

        case 'V':
            printf("apikeyctl %s\n", ACTL_VERSION);
            return ACTL_OK;

        default:
            return actl_option_error(&ctx, c, argv);
        }
    }

    if (optind == argc) {
        actl_help(stderr);
        return ACTL_USAGE;
    }

    /* a key given as the database or the secret file is never echoed */

    if (actl_has_key(ctx.db, strlen(ctx.db))) {
        actl_error(NULL, "the database path (-d or APIKEY_DB) holds an API "
                   "key, not shown; give the database directory");
        return ACTL_USAGE;
    }

    if (actl_has_key(ctx.secret_path, strlen(ctx.secret_path))) {
        actl_error(NULL, "the secret file path (-s or APIKEY_SECRET) holds "
                   "an API key, not shown; give the file the hashing secret "
                   "is in");
        return ACTL_USAGE;
    }

    for (cmd = actl_commands; cmd->name != NULL; cmd++) {
        if (strcmp(cmd->name, argv[optind]) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        if (actl_has_key(argv[optind], strlen(argv[optind]))) {
            actl_error(NULL, "unknown command: it holds an API key, not "
                       "shown (see \"apikeyctl help\")");
            return ACTL_USAGE;
        }

        actl_error(NULL, "unknown command \"%s\" (see \"apikeyctl help\")",
                   argv[optind]);
        return ACTL_USAGE;
    }

    ctx.cmd = cmd->name;

    /* only verify takes a key on its command line */

    if (cmd->handler != actl_cmd_verify) {
        rc = actl_check_args(&ctx, argc - optind, argv + optind);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    actl_sigbus_init(&ctx);

    /*
     * libsodium's ChaCha20 generator, seeded from getrandom(): the
     * default one makes a system call for every randombytes_uniform(),
     * 32 per generated key, which made "gen --count 1000000" take a
     * minute
     */

    (void) randombytes_set_implementation(
                                     &randombytes_internal_implementation);

    if (akc_init() != AKC_OK) {
        actl_error(NULL, "sodium_init() failed");
        return ACTL_FAIL;
    }

    json_set_alloc_funcs(actl_secure_malloc, actl_secure_free);

    /* gen prints keys: stdio buffers them here, and this is wiped */

    (void) setvbuf(stdout, actl_stdout_buf,
                   isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF,
                   sizeof(actl_stdout_buf));

    ctx.now = (int64_t) time(NULL);

    /* each command parses its own options: optind 0 resets getopt */

    first = optind;
    optind = 0;

    rc = cmd->handler(&ctx, argc - first, argv + first);

    sodium_memzero(&ctx.secret, sizeof(akc_secret_t));

    if ((fflush(stdout) == EOF || ferror(stdout)) && rc == ACTL_OK) {
        actl_error(NULL, "write to standard output failed: %s",
                   strerror(errno));
        rc = ACTL_FAIL;
    }

    sodium_memzero(actl_stdout_buf, sizeof(actl_stdout_buf));

    return rc;
}


/* commands */

static int
actl_cmd_help(actl_ctx_t *ctx, int argc, char **argv)
{
    if (argc > 1) {
        return actl_usage_error(ctx, "unexpected argument \"%s\"", argv[1]);
    }

    actl_help(stdout);

    return ACTL_OK;
}


static int
actl_cmd_init(actl_ctx_t *ctx, int argc, char **argv)
{
    int             c, rc, exists, created, initialized, grown;
    gid_t           gid;
    size_t          mapsize;
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

    if (mkdir(ctx->db, user ? 0750 : 0700) == -1 && errno != EEXIST) {
        actl_error(NULL, "mkdir \"%s\": %s", ctx->db, strerror(errno));
        return ACTL_FAIL;
    }

    rc = actl_env_open(ctx, 0, user ? 0660 : 0600,
                       exists ? 0 : (mapsize ? mapsize : AKC_DEFAULT_MAPSIZE));
    if (rc != ACTL_OK) {
        return rc;
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

    return rc;
}


static int
actl_cmd_gen(actl_ctx_t *ctx, int argc, char **argv)
{
    int              c, rc, json;
    char            *id, *prefix, *expires, *not_before, *count_s;
    char             err[ACTL_ERR_LEN];
    size_t           i, count;
    MDB_txn         *txn;
    akc_record_t     rec;
    actl_genkey_t   *keys;

    static const char  *formats[] = { "text", "json", NULL };

    static struct option  options[] = {
        { "id",         required_argument, NULL, 'i' },
        { "subject",    required_argument, NULL, 'S' },
        { "scopes",     required_argument, NULL, 'c' },
        { "plan",       required_argument, NULL, 'p' },
        { "expires",    required_argument, NULL, 'e' },
        { "not-before", required_argument, NULL, 'n' },
        { "prefix",     required_argument, NULL, 'P' },
        { "count",      required_argument, NULL, 'C' },
        { "format",     required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    memset(&rec, 0, sizeof(akc_record_t));
    rec.subject.data = "";
    rec.scopes.data = "";
    rec.plan.data = "";

    id = NULL;
    prefix = AKC_DEFAULT_PREFIX;
    expires = NULL;
    not_before = NULL;
    count_s = NULL;
    json = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'i':
            id = optarg;
            break;

        case 'S':
            rec.subject.data = optarg;
            break;

        case 'c':
            rec.scopes.data = optarg;
            break;

        case 'p':
            rec.plan.data = optarg;
            break;

        case 'e':
            expires = optarg;
            break;

        case 'n':
            not_before = optarg;
            break;

        case 'P':
            prefix = optarg;
            break;

        case 'C':
            count_s = optarg;
            break;

        case 'f':
            json = actl_parse_format(ctx, optarg, formats);
            if (json == -1) {
                return ACTL_USAGE;
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

    count = 1;

    if (count_s != NULL) {
        count = 0;

        for (i = 0; count_s[i] != '\0'; i++) {
            if (count_s[i] < '0' || count_s[i] > '9' || i > 7) {
                count = 0;
                break;
            }

            count = count * 10 + (count_s[i] - '0');
        }

        if (count < 1 || count > ACTL_GEN_MAX) {
            return actl_usage_error(ctx, "invalid count \"%s\" "
                                    "(1 to %d)", count_s, ACTL_GEN_MAX);
        }
    }

    if (id != NULL && count > 1) {
        return actl_usage_error(ctx, "--id cannot be used with --count "
                                "greater than 1");
    }

    /*
     * an empty time is "none" in an import column, but here it is more
     * likely an unset shell variable: a key that never expires by mistake
     */

    if ((expires != NULL && expires[0] == '\0')
        || (not_before != NULL && not_before[0] == '\0'))
    {
        return actl_usage_error(ctx, "%s is empty: give an RFC 3339 time, "
                                "a duration (30d) or now, or leave the "
                                "option out",
                                (expires != NULL && expires[0] == '\0')
                                ? "--expires" : "--not-before");
    }

    if (!akc_prefix_valid(prefix, strlen(prefix))) {
        return actl_usage_error(ctx, "invalid prefix \"%s\" (1 to %d "
                                "lowercase letters or digits, optionally "
                                "followed by \"_\" and 1 to %d more)",
                                prefix, AKC_PREFIX_PART_MAX,
                                AKC_PREFIX_PART_MAX);
    }

    rec.subject.len = strlen(rec.subject.data);
    rec.scopes.len = strlen(rec.scopes.data);
    rec.plan.len = strlen(rec.plan.data);

    if ((id != NULL
         && actl_check_field(ACTL_COL_ID, id, strlen(id), err, sizeof(err))
            != ACTL_OK)
        || actl_check_field(ACTL_COL_SUBJECT, rec.subject.data,
                            rec.subject.len, err, sizeof(err)) != ACTL_OK
        || actl_check_field(ACTL_COL_SCOPES, rec.scopes.data,
                            rec.scopes.len, err, sizeof(err)) != ACTL_OK
        || actl_check_field(ACTL_COL_PLAN, rec.plan.data, rec.plan.len,
                            err, sizeof(err)) != ACTL_OK
        || (expires != NULL
            && actl_check_time(ACTL_COL_EXPIRES, expires, strlen(expires),
                               ctx->now, &rec.expires, err, sizeof(err))
               != ACTL_OK)
        || (not_before != NULL
            && actl_check_time(ACTL_COL_NOT_BEFORE, not_before,
                               strlen(not_before), ctx->now,
                               &rec.not_before, err, sizeof(err))
               != ACTL_OK)
        || actl_check_times(rec.not_before, rec.expires, err, sizeof(err))
           != ACTL_OK)
    {
        return actl_usage_error(ctx, "%s", err);
    }

    rec.created = ctx->now;

    /* a closed pipe is an error to report, not a silent death */

    (void) signal(SIGPIPE, SIG_IGN);

    keys = actl_secure_malloc(count * sizeof(actl_genkey_t));
    if (keys == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    txn = NULL;

    rc = actl_start(ctx, 0, &txn);
    if (rc != ACTL_OK) {
        goto free;
    }

    for (i = 0; i < count; i++) {
        rc = actl_gen_store(ctx, txn, &rec, prefix, id, &keys[i]);
        if (rc != ACTL_OK) {
            goto abort;
        }
    }

    rc = akc_meta_touch(txn, &ctx->dbs, ctx->now);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_put", rc);
        rc = ACTL_FAIL;
        goto abort;
    }

    rc = actl_commit(ctx, &txn);
    if (rc != ACTL_OK) {
        goto abort;
    }

    /*
     * The keys are printed after the commit, and after the writer lock
     * is gone: a key printed for a failed commit would not exist, and a
     * slow reader of the output must not hold up other writers.  Keys
     * stored but not shown are reported, so that they can be revoked.
     */

    actl_close(ctx);

    for (i = 0; i < count; i++) {
        actl_gen_print(ctx, &rec, id, &keys[i], json);
    }

    if (fflush(stdout) == EOF || ferror(stdout)) {
        actl_gen_unseen(ctx, keys, count, id);
        rc = ACTL_FAIL;
    }

abort:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    actl_close(ctx);

free:

    actl_secure_free(keys);

    return rc;
}


static int
actl_gen_store(actl_ctx_t *ctx, MDB_txn *txn, akc_record_t *rec,
    const char *prefix, const char *id, actl_genkey_t *g)
{
    int            rc, len;
    char           hint[AKC_HINT_MAX_LEN + 1];
    MDB_val        k, v, h;
    unsigned char  hash[AKC_HASH_LEN], buf[AKC_RECORD_MAX_LEN];

    for ( ;; ) {
        len = akc_key_generate(prefix, g->key, sizeof(g->key));
        if (len < 0) {
            actl_error(ctx, "akc_key_generate() failed");
            return ACTL_FAIL;
        }

        akc_hash(&ctx->secret, (unsigned char *) g->key, len, hash);

        /* a collision of 190 random bits: try again, never overwrite */

        k.mv_size = AKC_HASH_LEN;
        k.mv_data = hash;

        rc = mdb_get(txn, ctx->dbs.keys, &k, &v);
        if (rc == MDB_SUCCESS) {
            continue;
        }

        if (rc != MDB_NOTFOUND) {
            actl_mdb_error(ctx, "mdb_get", rc);
            return ACTL_FAIL;
        }

        actl_default_id(hash, g->id);

        rec->id.data = (id != NULL) ? id : g->id;
        rec->id.len = strlen(rec->id.data);
        rec->hint.len = akc_key_hint((unsigned char *) g->key, len, hint);
        rec->hint.data = hint;

        rc = akc_record_encode(rec, buf, sizeof(buf));
        if (rc < 0) {
            actl_error(ctx, "akc_record_encode() failed");
            return ACTL_FAIL;
        }

        v.mv_size = rc;
        v.mv_data = buf;

        k.mv_size = rec->id.len;
        k.mv_data = (void *) rec->id.data;

        h.mv_size = AKC_HASH_LEN;
        h.mv_data = hash;

        rc = mdb_put(txn, ctx->dbs.ids, &k, &h, MDB_NOOVERWRITE);

        if (rc == MDB_KEYEXIST) {
            if (id == NULL) {
                /* 64 bits of a default id collided: another key */
                continue;
            }

            actl_error(ctx, "id \"%s\" already exists", id);
            return ACTL_INVALID;
        }

        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_put", rc);
            return ACTL_FAIL;
        }

        k.mv_size = AKC_HASH_LEN;
        k.mv_data = hash;

        rc = mdb_put(txn, ctx->dbs.keys, &k, &v, MDB_NOOVERWRITE);
        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_put", rc);
            return ACTL_FAIL;
        }

        return ACTL_OK;
    }
}


static void
actl_gen_unseen(actl_ctx_t *ctx, actl_genkey_t *keys, size_t count,
    const char *id)
{
    int     err;
    size_t  i;
    char    t[AKC_TIME_LEN + 1];

    err = errno;

    actl_error(ctx, "write to standard output failed (%s) after the keys "
               "were stored: %zu %s stored that nobody may have seen; "
               "revoke %s:", strerror(err), count,
               count == 1 ? "key is" : "keys are",
               count == 1 ? "it" : "them");

    if (id != NULL) {
        fprintf(stderr, "  apikeyctl revoke %s\n", id);
        return;
    }

    if (count <= ACTL_SHOW_IDS_MAX) {
        fputs("  apikeyctl revoke", stderr);

        for (i = 0; i < count; i++) {
            fprintf(stderr, " %s", keys[i].id);
        }

        fputc('\n', stderr);
        return;
    }

    fprintf(stderr, "  (the keys created at %s: \"apikeyctl list --format "
            "csv\" shows them)\n", actl_time(ctx->now, t));
}


static void
actl_gen_print(actl_ctx_t *ctx, akc_record_t *rec, const char *id,
    actl_genkey_t *g, int json)
{
    size_t   len;
    json_t  *obj;
    char     hint[AKC_HINT_MAX_LEN + 1];

    len = strlen(g->key);

    if (!json) {
        fwrite(g->key, 1, len, stdout);
        fputc('\n', stdout);
        return;
    }

    obj = json_object();
    if (obj == NULL) {
        actl_error(ctx, "out of memory");
        return;
    }

    if (id == NULL) {
        id = g->id;
    }

    actl_json_str(obj, "key", g->key, len);
    actl_json_str(obj, "id", id, strlen(id));
    actl_json_str(obj, "subject", rec->subject.data, rec->subject.len);
    actl_json_str(obj, "scopes", rec->scopes.data, rec->scopes.len);
    actl_json_str(obj, "plan", rec->plan.data, rec->plan.len);
    actl_json_time(obj, "expires", rec->expires);
    actl_json_time(obj, "not_before", rec->not_before);

    len = akc_key_hint((unsigned char *) g->key, len, hint);
    actl_json_str(obj, "hint", hint, len);
    actl_json_time(obj, "created", rec->created);

    json_dumpf(obj, stdout, JSON_COMPACT);
    fputc('\n', stdout);

    json_decref(obj);
}


static int
actl_cmd_import(actl_ctx_t *ctx, int argc, char **argv)
{
    int              c, fd, rc, jsonl, replace, force, dry_run;
    int              skip_invalid;
    char            *path;
    size_t           replaced;
    const char      *ext;
    actl_reader_t    r;
    actl_import_t   *imp;

    static const char  *formats[] = { "csv", "jsonl", NULL };

    static struct option  options[] = {
        { "format",       required_argument, NULL, 'f' },
        { "replace",      no_argument,       NULL, 'r' },
        { "force",        no_argument,       NULL, 'F' },
        { "dry-run",      no_argument,       NULL, 'n' },
        { "skip-invalid", no_argument,       NULL, 'k' },
        { NULL, 0, NULL, 0 }
    };

    jsonl = -1;
    replace = 0;
    force = 0;
    dry_run = 0;
    skip_invalid = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'f':
            jsonl = actl_parse_format(ctx, optarg, formats);
            if (jsonl == -1) {
                return ACTL_USAGE;
            }
            break;

        case 'r':
            replace = 1;
            break;

        case 'F':
            force = 1;
            break;

        case 'n':
            dry_run = 1;
            break;

        case 'k':
            skip_invalid = 1;
            break;

        default:
            return actl_option_error(ctx, c, argv);
        }
    }

    if (argc - optind != 1) {
        return actl_usage_error(ctx, "expected one FILE, or \"-\" for "
                                "standard input");
    }

    if (force && !replace) {
        return actl_usage_error(ctx, "--force goes with --replace");
    }

    path = argv[optind];

    if (jsonl == -1) {
        ext = strrchr(path, '.');

        jsonl = ext != NULL
                && (strcmp(ext, ".jsonl") == 0 || strcmp(ext, ".ndjson") == 0
                    || strcmp(ext, ".json") == 0);
    }

    if (strcmp(path, "-") == 0) {
        fd = STDIN_FILENO;
        path = "standard input";

    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd == -1) {
            actl_error(ctx, "open \"%s\": %s", path, strerror(errno));
            return ACTL_FAIL;
        }
    }

    rc = ACTL_FAIL;

    imp = calloc(1, sizeof(actl_import_t));
    if (imp == NULL) {
        actl_error(ctx, "out of memory");
        goto close_fd;
    }

    if (actl_reader_init(&r, fd) != ACTL_OK) {
        actl_error(ctx, "out of memory");
        goto free_imp;
    }

    /*
     * The database is opened (the secret hashes the keys) but no
     * transaction begins before the whole input is read and checked: a
     * slow pipe must not hold the writer lock, and keep an emergency
     * revocation waiting.
     */

    rc = actl_open(ctx, 0);
    if (rc != ACTL_OK) {
        goto free_reader;
    }

    imp->ctx = ctx;
    imp->skip_invalid = skip_invalid;
    imp->jsonl = jsonl;

    rc = jsonl ? actl_import_jsonl(imp, &r, path)
               : actl_import_csv(imp, &r, path);

    actl_reader_free(&r);

    if (rc != ACTL_OK) {
        goto close;
    }

    if (replace && imp->nrows == 0) {
        actl_error(ctx, "%s: no %s to import, and --replace would delete "
                   "every key; nothing was changed", path,
                   imp->skipped ? "valid rows" : "rows");
        rc = ACTL_INVALID;
        goto close;
    }

    rc = actl_begin(ctx, 0, 0, 1, &imp->txn);
    if (rc != ACTL_OK) {
        goto close;
    }

    rc = actl_import_write(imp, replace, force, &replaced);
    if (rc != ACTL_OK) {
        goto abort;
    }

    if (dry_run) {
        printf("dry run: would import %llu keys (%llu added, %llu updated, "
               "%llu skipped)",
               (unsigned long long) (imp->added + imp->updated),
               (unsigned long long) imp->added,
               (unsigned long long) imp->updated,
               (unsigned long long) imp->skipped);

        if (replace) {
            printf(", replacing %zu keys", replaced);
        }

        printf("; nothing was changed\n");

        goto abort;
    }

    rc = akc_meta_touch(imp->txn, &ctx->dbs, ctx->now);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_put", rc);
        rc = ACTL_FAIL;
        goto abort;
    }

    rc = actl_commit(ctx, &imp->txn);
    if (rc != ACTL_OK) {
        goto abort;
    }

    printf("imported %llu keys (%llu added, %llu updated, %llu skipped)",
           (unsigned long long) (imp->added + imp->updated),
           (unsigned long long) imp->added,
           (unsigned long long) imp->updated,
           (unsigned long long) imp->skipped);

    if (replace) {
        printf(", replaced %zu keys", replaced);
    }

    printf("\n");

abort:

    if (imp->txn != NULL) {
        mdb_txn_abort(imp->txn);
        imp->txn = NULL;
    }

close:

    actl_close(ctx);

free_reader:

    actl_reader_free(&r);

free_imp:

    if (imp != NULL) {
        actl_import_free(imp);
        sodium_memzero(imp, sizeof(actl_import_t));
        free(imp);
    }

close_fd:

    if (fd != STDIN_FILENO) {
        close(fd);
    }

    return rc;
}


/*
 * The write transaction of an import: the rows read and checked before
 * it began.  With --replace, the keys that no row keeps are counted
 * first: removing more than half of them needs --force.
 */

static int
actl_import_write(actl_import_t *imp, int replace, int force,
    size_t *replaced)
{
    int            rc;
    char           err[ACTL_ERR_LEN];
    size_t         i, kept, removed;
    MDB_val        k, v;
    MDB_stat       st;
    actl_ctx_t    *ctx;
    actl_row_t    *row;
    akc_record_t   rec;

    ctx = imp->ctx;
    *replaced = 0;

    if (replace) {
        rc = mdb_stat(imp->txn, ctx->dbs.keys, &st);
        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_stat", rc);
            return ACTL_FAIL;
        }

        kept = 0;

        for (i = 0; i < imp->nrows; i++) {
            k.mv_size = AKC_HASH_LEN;
            k.mv_data = imp->rows[i].hash;

            rc = mdb_get(imp->txn, ctx->dbs.keys, &k, &v);

            if (rc == MDB_SUCCESS) {
                kept++;

            } else if (rc != MDB_NOTFOUND) {
                actl_mdb_error(ctx, "mdb_get", rc);
                return ACTL_FAIL;
            }
        }

        removed = (kept < st.ms_entries) ? st.ms_entries - kept : 0;

        if (!force && removed > st.ms_entries / 2) {
            actl_error(ctx, "--replace would remove %zu of the %zu keys, "
                       "more than half; nothing was changed (add --force "
                       "to do it)", removed, (size_t) st.ms_entries);
            return ACTL_INVALID;
        }

        *replaced = st.ms_entries;

        rc = mdb_drop(imp->txn, ctx->dbs.keys, 0);
        if (rc == MDB_SUCCESS) {
            rc = mdb_drop(imp->txn, ctx->dbs.ids, 0);
        }

        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_drop", rc);
            return ACTL_FAIL;
        }
    }

    for (i = 0; i < imp->nrows; i++) {
        row = &imp->rows[i];
        imp->line = row->line;

        if (akc_record_decode(&rec, imp->arena + row->off, row->len)
            != AKC_OK)
        {
            actl_error(ctx, "akc_record_decode() failed");
            return ACTL_FAIL;
        }

        rc = actl_import_put(imp, &rec, row->hash, row->has_id, err,
                             sizeof(err));

        rc = actl_import_result(imp, rc, err);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    return ACTL_OK;
}


/* a checked row, its record encoded, kept for the write transaction */

static int
actl_import_keep(actl_import_t *imp, akc_record_t *rec,
    const unsigned char *hash, int has_id, char *err, size_t errlen)
{
    int             n;
    size_t          size;
    actl_row_t     *row, *rows;
    unsigned char  *arena;

    if (imp->nrows == imp->nrows_alloc) {
        size = imp->nrows_alloc ? 2 * imp->nrows_alloc : 1024;

        rows = actl_secure_realloc(imp->rows, size * sizeof(actl_row_t));
        if (rows == NULL) {
            actl_error(imp->ctx, "out of memory");
            return ACTL_FAIL;
        }

        imp->rows = rows;
        imp->nrows_alloc = size;
    }

    if (imp->arena_size - imp->arena_len < AKC_RECORD_MAX_LEN) {
        size = imp->arena_size ? 2 * imp->arena_size
                               : 1024 * AKC_RECORD_MAX_LEN;

        arena = actl_secure_realloc(imp->arena, size);
        if (arena == NULL) {
            actl_error(imp->ctx, "out of memory");
            return ACTL_FAIL;
        }

        imp->arena = arena;
        imp->arena_size = size;
    }

    n = akc_record_encode(rec, imp->arena + imp->arena_len,
                          AKC_RECORD_MAX_LEN);
    if (n < 0) {
        snprintf(err, errlen, "the record cannot be encoded");
        return ACTL_INVALID;
    }

    row = &imp->rows[imp->nrows++];

    memcpy(row->hash, hash, AKC_HASH_LEN);
    row->line = imp->line;
    row->off = imp->arena_len;
    row->len = (size_t) n;
    row->has_id = has_id ? 1 : 0;

    imp->arena_len += (size_t) n;

    return ACTL_OK;
}


static void
actl_import_free(actl_import_t *imp)
{
    actl_set_free(&imp->seen);

    actl_secure_free(imp->rows);
    actl_secure_free(imp->arena);

    imp->rows = NULL;
    imp->arena = NULL;
}


static int
actl_cmd_revoke(actl_ctx_t *ctx, int argc, char **argv)
{
    return actl_update(ctx, argc, argv, ACTL_OP_REVOKE, 0);
}


static int
actl_cmd_disable(actl_ctx_t *ctx, int argc, char **argv)
{
    return actl_update(ctx, argc, argv, ACTL_OP_DISABLE, 0);
}


static int
actl_cmd_enable(actl_ctx_t *ctx, int argc, char **argv)
{
    return actl_update(ctx, argc, argv, ACTL_OP_ENABLE, 0);
}


static int
actl_cmd_expire(actl_ctx_t *ctx, int argc, char **argv)
{
    int           c;
    char          err[ACTL_ERR_LEN];
    int64_t       at;
    const char   *when;

    static struct option  options[] = {
        { "at",         required_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 }
    };

    when = NULL;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'a':
            when = optarg;
            break;

        default:
            return actl_option_error(ctx, c, argv);
        }
    }

    if (when == NULL) {
        return actl_usage_error(ctx, "--at WHEN is required");
    }

    if (when[0] == '\0'
        || actl_check_time(ACTL_COL_EXPIRES, when, strlen(when), ctx->now,
                           &at, err, sizeof(err))
           != ACTL_OK)
    {
        return actl_usage_error(ctx, "invalid time \"%s\" (now, an RFC 3339 "
                                "time such as 2027-01-31T00:00:00Z, or a "
                                "duration such as 30d; at most "
                                "9999-12-31T23:59:59Z)", when);
    }

    return actl_update(ctx, argc - optind + 1, argv + optind - 1,
                       ACTL_OP_EXPIRE, at);
}


static int
actl_update(actl_ctx_t *ctx, int argc, char **argv, actl_op_e op,
    int64_t at)
{
    int       i, c, rc;
    MDB_txn  *txn;
    char      t[AKC_TIME_LEN + 1];

    static struct option  options[] = {
        { NULL, 0, NULL, 0 }
    };

    if (op != ACTL_OP_EXPIRE) {
        while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
            return actl_option_error(ctx, c, argv);
        }

    } else {
        /* expire: the options were parsed, argv[0] is the last of them */
        optind = 1;
    }

    if (optind == argc) {
        return actl_usage_error(ctx, "expected one or more IDs");
    }

    txn = NULL;

    rc = actl_start(ctx, 0, &txn);
    if (rc != ACTL_OK) {
        return rc;
    }

    for (i = optind; i < argc; i++) {
        rc = actl_update_one(ctx, txn, argv[i], op, at);
        if (rc != ACTL_OK) {
            goto abort;
        }
    }

    rc = akc_meta_touch(txn, &ctx->dbs, ctx->now);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_put", rc);
        rc = ACTL_FAIL;
        goto abort;
    }

    rc = actl_commit(ctx, &txn);
    if (rc != ACTL_OK) {
        goto abort;
    }

    for (i = optind; i < argc; i++) {
        switch (op) {

        case ACTL_OP_REVOKE:
            printf("revoked \"%s\"\n", argv[i]);
            break;

        case ACTL_OP_DISABLE:
            printf("disabled \"%s\"\n", argv[i]);
            break;

        case ACTL_OP_ENABLE:
            printf("enabled \"%s\"\n", argv[i]);
            break;

        case ACTL_OP_EXPIRE:
            printf("expires \"%s\" at %s\n", argv[i], actl_time(at, t));
            break;
        }
    }

abort:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    actl_close(ctx);

    return rc;
}


static int
actl_update_one(actl_ctx_t *ctx, MDB_txn *txn, const char *id, actl_op_e op,
    int64_t at)
{
    int            rc;
    MDB_val        k, v;
    akc_record_t   rec;
    unsigned char  hash[AKC_HASH_LEN], buf[AKC_RECORD_MAX_LEN];

    rc = actl_lookup(ctx, txn, id, &rec);
    if (rc != ACTL_OK) {
        return rc;
    }

    k.mv_size = strlen(id);
    k.mv_data = (void *) id;

    rc = mdb_get(txn, ctx->dbs.ids, &k, &v);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }

    memcpy(hash, v.mv_data, AKC_HASH_LEN);

    if (op == ACTL_OP_REVOKE) {
        rc = mdb_del(txn, ctx->dbs.ids, &k, NULL);

        if (rc == MDB_SUCCESS) {
            k.mv_size = AKC_HASH_LEN;
            k.mv_data = hash;

            rc = mdb_del(txn, ctx->dbs.keys, &k, NULL);
        }

        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_del", rc);
            return ACTL_FAIL;
        }

        return ACTL_OK;
    }

    switch (op) {

    case ACTL_OP_DISABLE:
        rec.flags |= AKC_FLAG_DISABLED;
        break;

    case ACTL_OP_ENABLE:
        rec.flags &= ~AKC_FLAG_DISABLED;
        break;

    default: /* ACTL_OP_EXPIRE */
        rec.expires = at;
        break;
    }

    /* rec points into the map: encode it before anything is written */

    rc = akc_record_encode(&rec, buf, sizeof(buf));
    if (rc < 0) {
        actl_error(ctx, "akc_record_encode() failed");
        return ACTL_FAIL;
    }

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = hash;
    v.mv_size = rc;
    v.mv_data = buf;

    rc = mdb_put(txn, ctx->dbs.keys, &k, &v, 0);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_put", rc);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


static int
actl_cmd_list(actl_ctx_t *ctx, int argc, char **argv)
{
    int            c, rc, format;
    MDB_txn       *txn;
    const char    *subject;
    actl_table_t   table;

    static const char  *formats[] = { "table", "json", "csv", NULL };

    static struct option  options[] = {
        { "subject",    required_argument, NULL, 'S' },
        { "format",     required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    subject = NULL;
    format = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'S':
            subject = optarg;
            break;

        case 'f':
            format = actl_parse_format(ctx, optarg, formats);
            if (format == -1) {
                return ACTL_USAGE;
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

    txn = NULL;

    rc = actl_start(ctx, MDB_RDONLY, &txn);
    if (rc != ACTL_OK) {
        return rc;
    }

    switch (format) {

    case 0:
        /* two passes: the widths of the columns, then the rows */

        memset(&table, 0, sizeof(actl_table_t));

        for (c = 0; c < ACTL_TABLE_COLS; c++) {
            table.width[c] = strlen(actl_table_header[c]);
        }

        rc = actl_each(ctx, txn, subject, actl_table_row, &table);
        if (rc != ACTL_OK) {
            break;
        }

        table.pass = 1;

        for (c = 0; c < ACTL_TABLE_COLS - 1; c++) {
            printf("%-*s  ", (int) table.width[c], actl_table_header[c]);
        }

        printf("%s\n", actl_table_header[c]);

        rc = actl_each(ctx, txn, subject, actl_table_row, &table);
        break;

    case 1:
        rc = actl_each(ctx, txn, subject, actl_json_row, NULL);
        break;

    default:
        printf("%s\n", ACTL_CSV_LIST_HEADER);
        rc = actl_each(ctx, txn, subject, actl_csv_out_row, NULL);
        break;
    }

    mdb_txn_abort(txn);

    actl_close(ctx);

    return rc;
}


static int
actl_cmd_show(actl_ctx_t *ctx, int argc, char **argv)
{
    int            c, rc, json;
    char          *id;
    MDB_txn       *txn;
    akc_record_t   rec;
    char           t[AKC_TIME_LEN + 1];

    static const char  *formats[] = { "text", "json", NULL };

    static struct option  options[] = {
        { "format",     required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    json = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'f':
            json = actl_parse_format(ctx, optarg, formats);
            if (json == -1) {
                return ACTL_USAGE;
            }
            break;

        default:
            return actl_option_error(ctx, c, argv);
        }
    }

    if (argc - optind != 1) {
        return actl_usage_error(ctx, "expected one ID");
    }

    id = argv[optind];
    txn = NULL;

    rc = actl_start(ctx, MDB_RDONLY, &txn);
    if (rc != ACTL_OK) {
        return rc;
    }

    rc = actl_lookup(ctx, txn, id, &rec);
    if (rc != ACTL_OK) {
        goto abort;
    }

    if (json) {
        rc = actl_json_row(ctx, &rec, NULL, NULL);
        goto abort;
    }

#define actl_show_str(name, s)                                                \
    printf("%s: %.*s\n", name, (s).len ? (int) (s).len : 1,                   \
           (s).len ? (s).data : "-")

    actl_show_str("id", rec.id);
    actl_show_str("subject", rec.subject);
    actl_show_str("scopes", rec.scopes);
    actl_show_str("plan", rec.plan);
    printf("status: %s\n",
           akc_status_name(akc_record_status(&rec, ctx->now)));
    printf("created: %s\n", rec.created ? actl_time(rec.created, t) : "-");
    printf("not_before: %s\n",
           rec.not_before ? actl_time(rec.not_before, t) : "-");
    printf("expires: %s\n", rec.expires ? actl_time(rec.expires, t) : "-");
    printf("disabled: %s\n",
           (rec.flags & AKC_FLAG_DISABLED) ? "true" : "false");
    actl_show_str("hint", rec.hint);

#undef actl_show_str

abort:

    mdb_txn_abort(txn);

    actl_close(ctx);

    return rc;
}


static int
actl_cmd_verify(actl_ctx_t *ctx, int argc, char **argv)
{
    int            c, rc, mdb_rc;
    char          *key;
    size_t         len;
    MDB_txn       *txn;
    akc_record_t   rec;
    akc_status_e   status;
    char           buf[ACTL_STDIN_KEY_LEN];

    static struct option  options[] = {
        { NULL, 0, NULL, 0 }
    };

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        return actl_option_error(ctx, c, argv);
    }

    if (argc - optind > 1) {
        return actl_usage_error(ctx, "expected one KEY, or \"-\" for "
                                "standard input");
    }

    if (argc - optind == 1 && strcmp(argv[optind], "-") != 0) {
        key = argv[optind];
        len = strlen(key);

    } else {
        if (actl_read_stdin_key(buf, sizeof(buf), &len) != ACTL_OK) {
            actl_error(ctx, "read from standard input failed: %s",
                       strerror(errno));
            sodium_memzero(buf, sizeof(buf));
            return ACTL_FAIL;
        }

        key = buf;
    }

    txn = NULL;

    rc = actl_start(ctx, MDB_RDONLY, &txn);
    if (rc != ACTL_OK) {
        goto wipe;
    }

    status = akc_check_key(txn, &ctx->dbs, &ctx->secret,
                           (unsigned char *) key, len, ctx->now, &rec,
                           &mdb_rc);

    if (status == AKC_STATUS_ERROR) {
        actl_mdb_error(ctx, "mdb_get", mdb_rc);
        rc = ACTL_FAIL;
        goto abort;
    }

    printf("%s", akc_status_name(status));

    if (status != AKC_STATUS_MALFORMED && status != AKC_STATUS_UNKNOWN) {
        printf(" id=%.*s", (int) rec.id.len, rec.id.data);
    }

    printf("\n");

    rc = (status == AKC_STATUS_VALID) ? ACTL_OK : ACTL_REJECTED;

abort:

    mdb_txn_abort(txn);

    actl_close(ctx);

wipe:

    if (key != buf) {
        sodium_memzero(key, len);
    }

    sodium_memzero(buf, sizeof(buf));

    return rc;
}


static int
actl_cmd_export(actl_ctx_t *ctx, int argc, char **argv)
{
    int           c, rc, jsonl;
    MDB_txn      *txn;

    static const char  *formats[] = { "csv", "jsonl", NULL };

    static struct option  options[] = {
        { "format",     required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    jsonl = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'f':
            jsonl = actl_parse_format(ctx, optarg, formats);
            if (jsonl == -1) {
                return ACTL_USAGE;
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

    txn = NULL;

    rc = actl_start(ctx, MDB_RDONLY, &txn);
    if (rc != ACTL_OK) {
        return rc;
    }

    if (jsonl) {
        rc = actl_each(ctx, txn, NULL, actl_json_row, (void *) 1);

    } else {
        printf("hash,%s\n", ACTL_CSV_LIST_HEADER);
        rc = actl_each(ctx, txn, NULL, actl_csv_out_row, (void *) 1);
    }

    mdb_txn_abort(txn);

    actl_close(ctx);

    return rc;
}


/* usage and errors */

static void
actl_help(FILE *fp)
{
    actl_cmd_t  *cmd;

    fprintf(fp,
        "usage: apikeyctl [-d DIR] [-s FILE] COMMAND [ARGS]\n"
        "\n"
        "commands:\n");

    for (cmd = actl_commands; cmd->name != NULL; cmd++) {
        fprintf(fp, "  apikeyctl %s\n", cmd->usage);
    }

    fprintf(fp,
        "\n"
        "global options:\n"
        "  -d, --db DIR        database directory (default: $APIKEY_DB,\n"
        "                      else " ACTL_DEFAULT_DB ")\n"
        "  -s, --secret FILE   secret file (default: $APIKEY_SECRET,\n"
        "                      else " ACTL_DEFAULT_SECRET ")\n"
        "  -h, --help          print this help\n"
        "  -V, --version       print the version\n"
        "\n"
        "WHEN is now, an RFC 3339 time (2027-01-31T00:00:00Z) or a "
        "duration\n"
        "from now (30d, 12h, 15m, 90s, 2w), at most 9999-12-31T23:59:59Z.\n"
        "\n"
        "import --replace of no rows is refused, and one that would "
        "remove more\n"
        "than half of the keys needs --force.  A generated key anywhere "
        "but\n"
        "where a key belongs is refused and never shown.  A missing "
        "lock.mdb is\n"
        "made with the group and mode of data.mdb, and the first write "
        "waits\n"
        "2 seconds for nginx workers to switch to it.\n"
        "\n"
        "exit status:\n"
        "  0  success (verify: the key would be accepted)\n"
        "  1  failure: database, secret file, I/O or LMDB error, damaged "
        "database\n"
        "     files; nothing was changed (gen: keys stored, not printed: "
        "said so)\n"
        "  2  usage error (bad option or argument)\n"
        "  3  invalid input data or unknown ID; nothing was changed\n"
        "  4  verify: the key would be rejected\n");
}


static void
actl_usage(const char *name, FILE *fp)
{
    actl_cmd_t  *cmd;

    for (cmd = actl_commands; cmd->name != NULL; cmd++) {
        if (strcmp(cmd->name, name) == 0) {
            fprintf(fp, "usage:\n  apikeyctl %s\n", cmd->usage);
            return;
        }
    }
}


static int
actl_option_error(actl_ctx_t *ctx, int c, char **argv)
{
    int          len;
    char         opt[3];
    const char  *arg, *eq;

    /* a long option is named by the element getopt_long() has passed */

    arg = argv[optind - 1];

    if (strncmp(arg, "--", 2) == 0) {
        eq = strchr(arg, '=');
        len = (eq != NULL) ? (int) (eq - arg) : (int) strlen(arg);

    } else {
        opt[0] = '-';
        opt[1] = (char) optopt;
        opt[2] = '\0';

        arg = opt;
        len = 2;
    }

    if (c == ':') {
        actl_error(ctx, "option \"%.*s\" requires an argument", len, arg);

    } else {
        actl_error(ctx, "invalid option \"%.*s\"", len, arg);
    }

    if (ctx->cmd != NULL) {
        actl_usage(ctx->cmd, stderr);

    } else {
        fprintf(stderr, "see \"apikeyctl --help\"\n");
    }

    return ACTL_USAGE;
}


static int
actl_usage_error(actl_ctx_t *ctx, const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "apikeyctl: %s: ", ctx->cmd);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);

    actl_usage(ctx->cmd, stderr);

    return ACTL_USAGE;
}


static void
actl_error(actl_ctx_t *ctx, const char *fmt, ...)
{
    va_list  args;

    fputs("apikeyctl: ", stderr);

    if (ctx != NULL && ctx->cmd != NULL) {
        fprintf(stderr, "%s: ", ctx->cmd);
    }

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


static void
actl_mdb_error(actl_ctx_t *ctx, const char *call, int rc)
{
    MDB_envinfo  info;

    if (rc == MDB_MAP_FULL) {
        if (ctx->env == NULL || mdb_env_info(ctx->env, &info) != 0) {
            info.me_mapsize = 0;
        }

        actl_error(ctx, "database map is full (map size %zu bytes); grow "
                   "it with \"apikeyctl init --map-size SIZE\"",
                   info.me_mapsize);
        return;
    }

    actl_error(ctx, "%s() failed: %s", call, mdb_strerror(rc));
}


/*
 * A value for an error message, in quotes: at most ACTL_QUOTE_MAX
 * characters, quotes, backslashes and unprintable bytes escaped; a value
 * that holds a generated key is not shown at all.
 */

static const char *
actl_quote(const char *s, size_t len, char out[ACTL_QUOTE_LEN])
{
    size_t         i, n;
    unsigned char  c;

    /* a key that would be shown only in part is a key too */

    if (actl_has_key(s, len < ACTL_QUOTE_MAX + AKC_GEN_KEY_MAX_LEN
                        ? len : ACTL_QUOTE_MAX + AKC_GEN_KEY_MAX_LEN))
    {
        return ACTL_A_KEY;
    }

    n = 0;
    out[n++] = '"';

    for (i = 0; i < len && i < ACTL_QUOTE_MAX; i++) {
        c = (unsigned char) s[i];

        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = c;

        } else if (c < 0x20 || c >= 0x7f) {
            n += snprintf(out + n, 5, "\\x%02x", c);

        } else {
            out[n++] = c;
        }
    }

    if (i < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }

    out[n++] = '"';
    out[n] = '\0';

    return out;
}


/*
 * Whether s holds a generated key (the prefix, "_", 32 base62 and a
 * checksum that matches) anywhere: such a value is never shown or
 * stored but as a key.  A false match needs a 32-bit checksum to agree.
 */

static int
actl_has_key(const char *s, size_t len)
{
    size_t  i, start, end;

    for (i = 1; i + 1 + AKC_GEN_TAIL_LEN <= len; i++) {
        if (s[i] != '_') {
            continue;
        }

        end = i + 1 + AKC_GEN_TAIL_LEN;
        start = (i > AKC_PREFIX_MAX_LEN) ? i - AKC_PREFIX_MAX_LEN : 0;

        for ( /* void */ ; start < i; start++) {
            if (akc_key_classify((const unsigned char *) s + start,
                                 end - start)
                == AKC_KEY_GENERATED)
            {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * A key given where an id, an option value or a file name belongs is
 * refused before anything else happens, and never echoed.
 */

static int
actl_check_args(actl_ctx_t *ctx, int argc, char **argv)
{
    int          i;
    const char  *eq;

    for (i = 1; i < argc; i++) {
        if (!actl_has_key(argv[i], strlen(argv[i]))) {
            continue;
        }

        eq = strchr(argv[i], '=');

        if (argv[i][0] == '-' && argv[i][1] == '-' && eq != NULL
            && !actl_has_key(argv[i], eq - argv[i]))
        {
            return actl_usage_error(ctx, "%.*s holds an API key (not "
                                    "shown); a key is never an option "
                                    "value", (int) (eq - argv[i]), argv[i]);
        }

        if (i > 1 && argv[i - 1][0] == '-' && argv[i - 1][1] != '\0'
            && strchr(argv[i - 1], '=') == NULL
            && !actl_has_key(argv[i - 1], strlen(argv[i - 1])))
        {
            return actl_usage_error(ctx, "the argument of %s holds an API "
                                    "key (not shown); a key is never an "
                                    "option value", argv[i - 1]);
        }

        if ((strcmp(ctx->cmd, "revoke") == 0
             || strcmp(ctx->cmd, "disable") == 0
             || strcmp(ctx->cmd, "enable") == 0
             || strcmp(ctx->cmd, "expire") == 0
             || strcmp(ctx->cmd, "show") == 0)
            && argv[i][0] != '-')
        {
            actl_error(ctx, "an API key was given where an id belongs (not "
                       "shown); \"apikeyctl verify -\" reads a key from "
                       "standard input and prints its id");
            return ACTL_INVALID;
        }

        return actl_usage_error(ctx, "argument %d holds an API key (not "
                                "shown); only \"verify\" takes a key", i);
    }

    return ACTL_OK;
}


/* core files would hold keys and the secret */

static void
actl_no_core(void)
{
    struct rlimit  rl;

    rl.rlim_cur = 0;
    rl.rlim_max = 0;

    (void) setrlimit(RLIMIT_CORE, &rl);
    (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}


/*
 * A data file or lock file truncated while mapped makes the next access
 * SIGBUS; akc_env_check() catches what was truncated before a
 * transaction began, this what is truncated during one.
 */

static void
actl_sigbus_init(actl_ctx_t *ctx)
{
    int               n;
    struct sigaction  sa;

    n = snprintf(actl_sigbus_msg, sizeof(actl_sigbus_msg),
                 "apikeyctl: %s: data file or lock file was truncated while "
                 "in use\n", ctx->db);

    if (n < 0 || (size_t) n >= sizeof(actl_sigbus_msg)) {
        n = snprintf(actl_sigbus_msg, sizeof(actl_sigbus_msg),
                     "apikeyctl: data file or lock file was truncated while "
                     "in use\n");
    }

    actl_sigbus_len = (size_t) n;

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = actl_sigbus_handler;
    sigemptyset(&sa.sa_mask);

    (void) sigaction(SIGBUS, &sa, NULL);
}


static void
actl_sigbus_handler(int signo)
{
    ssize_t  n;

    /* async-signal-safe only: write(2) and _exit(2) */

    n = write(STDERR_FILENO, actl_sigbus_msg, actl_sigbus_len);
    (void) n;

    _exit(ACTL_FAIL);
}


/* allocation that wipes */

static void *
actl_secure_malloc(size_t size)
{
    actl_mem_t  *m;

    if (size > SIZE_MAX - sizeof(actl_mem_t)) {
        return NULL;
    }

    m = malloc(sizeof(actl_mem_t) + size);
    if (m == NULL) {
        return NULL;
    }

    m->size = size;

    return m + 1;
}


static void *
actl_secure_realloc(void *p, size_t size)
{
    void        *n;
    actl_mem_t  *m;

    if (p == NULL) {
        return actl_secure_malloc(size);
    }

    m = (actl_mem_t *) p - 1;

    n = actl_secure_malloc(size);
    if (n == NULL) {
        return NULL;
    }

    memcpy(n, p, m->size < size ? m->size : size);
    actl_secure_free(p);

    return n;
}


static void
actl_secure_free(void *p)
{
    actl_mem_t  *m;

    if (p == NULL) {
        return;
    }

    m = (actl_mem_t *) p - 1;

    sodium_memzero(p, m->size);
    free(m);
}


/* arguments */

static int
actl_parse_size(const char *s, size_t *size)
{
    size_t    i, shift;
    uint64_t  n;

    n = 0;

    for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
        if (n > (UINT64_MAX - 9) / 10) {
            return ACTL_USAGE;
        }

        n = n * 10 + (s[i] - '0');
    }

    if (i == 0) {
        return ACTL_USAGE;
    }

    switch (s[i]) {
    case '\0': shift = 0; break;
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: return ACTL_USAGE;
    }

    if (shift != 0 && s[i + 1] != '\0') {
        return ACTL_USAGE;
    }

    if (n == 0 || n > (SIZE_MAX >> shift)) {
        return ACTL_USAGE;
    }

    *size = (size_t) (n << shift);

    return ACTL_OK;
}


static int
actl_parse_format(actl_ctx_t *ctx, const char *s, const char **names)
{
    int  i;

    for (i = 0; names[i] != NULL; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }

    actl_usage_error(ctx, "invalid format \"%s\"", s);

    return -1;
}


/* the database */

static int
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


static int
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


static int
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


static int
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

    /* maxreaders only counts when the lock file is made */

    rc = mdb_env_set_maxdbs(ctx->env, AKC_MAXDBS);

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_set_maxreaders(ctx->env, AKC_MAXREADERS);
    }

    if (rc == MDB_SUCCESS && mapsize != 0) {
        rc = mdb_env_set_mapsize(ctx->env, mapsize);
    }

    if (rc == MDB_SUCCESS) {
        rc = mdb_env_open(ctx->env, ctx->db, flags, mode);
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


static int
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


static int
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


static int
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


static int
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

    return ACTL_OK;
}


static void
actl_close(actl_ctx_t *ctx)
{
    if (ctx->env != NULL) {
        mdb_env_close(ctx->env);
        ctx->env = NULL;
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


/* fields */

static int
actl_check_field(actl_col_e col, const char *s, size_t len, char *err,
    size_t errlen)
{
    char  q[ACTL_QUOTE_LEN];

    switch (col) {

    case ACTL_COL_ID:
        if (akc_id_valid(s, len)) {
            return ACTL_OK;
        }

        snprintf(err, errlen, "invalid id %s (1 to %d letters, digits "
                 "or \"._:@-\")", actl_quote(s, len, q), AKC_ID_MAX_LEN);
        break;

    case ACTL_COL_SUBJECT:
        if (akc_text_valid(s, len, AKC_SUBJECT_MAX_LEN)) {
            return ACTL_OK;
        }

        snprintf(err, errlen, "invalid subject %s (at most %d bytes of "
                 "UTF-8, no control characters)", actl_quote(s, len, q),
                 AKC_SUBJECT_MAX_LEN);
        break;

    case ACTL_COL_SCOPES:
        if (akc_scopes_valid(s, len)) {
            return ACTL_OK;
        }

        snprintf(err, errlen, "invalid scopes %s (comma-separated "
                 "names of letters, digits or \"._:/*-\", at most %d "
                 "bytes)", actl_quote(s, len, q), AKC_SCOPES_MAX_LEN);
        break;

    case ACTL_COL_PLAN:
        if (akc_plan_valid(s, len)) {
            return ACTL_OK;
        }

        snprintf(err, errlen, "invalid plan %s (at most %d letters, "
                 "digits or \"._:-\")", actl_quote(s, len, q),
                 AKC_PLAN_MAX_LEN);
        break;

    case ACTL_COL_HINT:
        if (akc_text_valid(s, len, AKC_HINT_MAX_LEN)) {
            return ACTL_OK;
        }

        snprintf(err, errlen, "invalid hint %s (at most %d bytes of "
                 "UTF-8, no control characters)", actl_quote(s, len, q),
                 AKC_HINT_MAX_LEN);
        break;

    default:
        return ACTL_OK;
    }

    return ACTL_INVALID;
}


static int
actl_check_time(actl_col_e col, const char *s, size_t len, int64_t now,
    int64_t *t, char *err, size_t errlen)
{
    char  q[ACTL_QUOTE_LEN];

    if (len == 0) {
        *t = 0;
        return ACTL_OK;
    }

    if (len <= ACTL_TIME_MAX && akc_time_parse(s, len, now, t) == AKC_OK
        && *t > 0)
    {
        return ACTL_OK;
    }

    snprintf(err, errlen, "invalid %s %s (now, an RFC 3339 time such as "
             "2027-01-31T00:00:00Z, or a duration such as 30d; at most "
             "9999-12-31T23:59:59Z)", actl_col_names[col],
             actl_quote(s, len, q));

    return ACTL_INVALID;
}


static int
actl_check_times(int64_t not_before, int64_t expires, char *err,
    size_t errlen)
{
    if (not_before != 0 && expires != 0 && expires <= not_before) {
        snprintf(err, errlen, "expires is not after not_before");
        return ACTL_INVALID;
    }

    return ACTL_OK;
}


static int
actl_check_bool(const char *s, size_t len, unsigned *flags, char *err,
    size_t errlen)
{
    char  q[ACTL_QUOTE_LEN];

    if (len == 0
        || (len == 5 && memcmp(s, "false", 5) == 0)
        || (len == 1 && s[0] == '0'))
    {
        *flags = 0;
        return ACTL_OK;
    }

    if ((len == 4 && memcmp(s, "true", 4) == 0) || (len == 1 && s[0] == '1'))
    {
        *flags = AKC_FLAG_DISABLED;
        return ACTL_OK;
    }

    snprintf(err, errlen, "invalid disabled %s (true, false, 1 or 0)",
             actl_quote(s, len, q));

    return ACTL_INVALID;
}


static int
actl_check_hash(const char *s, size_t len, unsigned char hash[AKC_HASH_LEN],
    char *err, size_t errlen)
{
    size_t  i;

    if (len == 2 * AKC_HASH_LEN) {
        for (i = 0; i < len; i++) {
            if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            {
                break;
            }
        }

        if (i == len
            && sodium_hex2bin(hash, AKC_HASH_LEN, s, len, NULL, NULL, NULL)
               == 0)
        {
            return ACTL_OK;
        }
    }

    snprintf(err, errlen, "invalid hash (%d lowercase hexadecimal "
             "characters)", 2 * AKC_HASH_LEN);

    return ACTL_INVALID;
}


/* never quotes the key */

static int
actl_check_key(const char *s, size_t len, char *err, size_t errlen)
{
    switch (akc_key_classify((const unsigned char *) s, len)) {

    case AKC_KEY_INVALID:
        snprintf(err, errlen, "key is malformed (%d to %d printable ASCII "
                 "characters, no spaces)", AKC_KEY_MIN_LEN, AKC_KEY_MAX_LEN);
        return ACTL_INVALID;

    case AKC_KEY_BAD_CHECKSUM:
        snprintf(err, errlen, "key has the shape of a generated key but a "
                 "wrong checksum");
        return ACTL_INVALID;

    default:
        return ACTL_OK;
    }
}


static int
actl_col_lookup(const char *name, size_t len)
{
    int  i;

    for (i = 0; i < ACTL_COL_N; i++) {
        if (strlen(actl_col_names[i]) == len
            && memcmp(actl_col_names[i], name, len) == 0)
        {
            return i;
        }
    }

    return -1;
}


/* the default id: the first 8 bytes of the stored hash, deterministic */

static void
actl_default_id(const unsigned char *hash, char id[ACTL_DEFAULT_ID_LEN + 1])
{
    sodium_bin2hex(id, ACTL_DEFAULT_ID_LEN + 1, hash, ACTL_DEFAULT_ID_LEN / 2);
}


/* input lines, read into buffers that are wiped */

static int
actl_reader_init(actl_reader_t *r, int fd)
{
    memset(r, 0, sizeof(actl_reader_t));

    r->fd = fd;
    r->size = 1024;
    r->buf = actl_secure_malloc(ACTL_READ_SIZE);
    r->line = actl_secure_malloc(r->size);

    if (r->buf == NULL || r->line == NULL) {
        actl_reader_free(r);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/* 1: a line, without its "\n"; 0: the end; -1: an error; -2: too long */

static int
actl_reader_line(actl_reader_t *r, char **line, size_t *len)
{
    char     *p, *nl, *nb;
    size_t    n, chunk, size;
    ssize_t   nr;

    n = 0;

    for ( ;; ) {
        if (r->pos == r->len) {
            if (r->eof) {
                break;
            }

            nr = read(r->fd, r->buf, ACTL_READ_SIZE);

            if (nr == -1) {
                if (errno == EINTR) {
                    continue;
                }

                return -1;
            }

            if (nr == 0) {
                r->eof = 1;
                break;
            }

            r->pos = 0;
            r->len = (size_t) nr;
        }

        p = r->buf + r->pos;
        nl = memchr(p, '\n', r->len - r->pos);
        chunk = (nl != NULL) ? (size_t) (nl - p) : r->len - r->pos;

        if (n + chunk > ACTL_LINE_MAX) {
            r->number++;
            return -2;
        }

        if (n + chunk + 1 > r->size) {
            size = 2 * r->size;
            if (size < n + chunk + 1) {
                size = n + chunk + 1;
            }

            nb = actl_secure_realloc(r->line, size);
            if (nb == NULL) {
                errno = ENOMEM;
                return -1;
            }

            r->line = nb;
            r->size = size;
        }

        memcpy(r->line + n, p, chunk);
        n += chunk;
        r->pos += chunk;

        if (nl != NULL) {
            r->pos++;
            goto done;
        }
    }

    if (n == 0) {
        return 0;
    }

done:

    r->line[n] = '\0';
    r->number++;

    *line = r->line;
    *len = n;

    return 1;
}


static void
actl_reader_free(actl_reader_t *r)
{
    actl_secure_free(r->buf);
    actl_secure_free(r->line);

    r->buf = NULL;
    r->line = NULL;
}


static int
actl_reader_error(actl_import_t *imp, actl_reader_t *r, int n,
    const char *path)
{
    if (n == -2) {
        actl_error(imp->ctx, "line %llu: line is longer than %d bytes",
                   (unsigned long long) r->number, ACTL_LINE_MAX);
        return ACTL_INVALID;
    }

    actl_error(imp->ctx, "read \"%s\": %s", path, strerror(errno));

    return ACTL_FAIL;
}


/* the set of hashes written by this import */

static actl_seen_t *
actl_set_find(actl_set_t *set, const unsigned char *hash)
{
    size_t    i;
    uint32_t  n;
    uint64_t  h;

    if (set->nslots == 0) {
        return NULL;
    }

    /* the hashes are keyed BLAKE2b output: any 8 bytes are uniform */

    memcpy(&h, hash, sizeof(uint64_t));

    for (i = h & (set->nslots - 1); /* void */; i = (i + 1) % set->nslots) {
        n = set->slots[i];

        if (n == 0) {
            return NULL;
        }

        if (memcmp(set->entries[n - 1].hash, hash, AKC_HASH_LEN) == 0) {
            return &set->entries[n - 1];
        }
    }
}


static int
actl_set_add(actl_set_t *set, const unsigned char *hash, uint64_t line)
{
    size_t        i, j, nslots, nalloc;
    uint32_t     *slots;
    uint64_t      h;
    actl_seen_t  *entries;

    if (set->nentries == UINT32_MAX - 1) {
        return ACTL_FAIL;
    }

    if (set->nentries == set->nalloc) {
        nalloc = set->nalloc ? 2 * set->nalloc : 1024;

        entries = realloc(set->entries, nalloc * sizeof(actl_seen_t));
        if (entries == NULL) {
            return ACTL_FAIL;
        }

        set->entries = entries;
        set->nalloc = nalloc;
    }

    if (2 * (set->nentries + 1) > set->nslots) {
        nslots = set->nslots ? 2 * set->nslots : 2048;

        slots = calloc(nslots, sizeof(uint32_t));
        if (slots == NULL) {
            return ACTL_FAIL;
        }

        for (j = 0; j < set->nentries; j++) {
            memcpy(&h, set->entries[j].hash, sizeof(uint64_t));

            for (i = h & (nslots - 1); slots[i] != 0; i = (i + 1) % nslots) {
                /* void */
            }

            slots[i] = (uint32_t) (j + 1);
        }

        free(set->slots);
        set->slots = slots;
        set->nslots = nslots;
    }

    memcpy(set->entries[set->nentries].hash, hash, AKC_HASH_LEN);
    set->entries[set->nentries].line = line;

    memcpy(&h, hash, sizeof(uint64_t));

    for (i = h & (set->nslots - 1);
         set->slots[i] != 0;
         i = (i + 1) & (set->nslots - 1))
    {
        /* void */
    }

    set->slots[i] = (uint32_t) ++set->nentries;

    return ACTL_OK;
}


static void
actl_set_free(actl_set_t *set)
{
    free(set->entries);
    free(set->slots);

    memset(set, 0, sizeof(actl_set_t));
}


/* import */

static int
actl_import_csv(actl_import_t *imp, actl_reader_t *r, const char *path)
{
    int                 n, rc;
    char               *line;
    size_t              i, len;
    struct csv_parser   p;

    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        actl_error(imp->ctx, "csv_init() failed");
        return ACTL_FAIL;
    }

    /*
     * libcsv collects each field in a buffer it grows with realloc() and
     * releases with free(); a field may be a plaintext key, so the buffer
     * must be wiped whenever it moves or goes: see actl_mem_t
     */

    csv_set_realloc_func(&p, actl_secure_realloc);
    csv_set_free_func(&p, actl_secure_free);

    for (i = 0; i < ACTL_COL_N; i++) {
        imp->fields.data[i] = imp->store[i];
    }

    rc = ACTL_OK;

    for ( ;; ) {
        n = actl_reader_line(r, &line, &len);

        if (n == 0) {
            break;
        }

        if (n < 0) {
            rc = actl_reader_error(imp, r, n, path);
            goto done;
        }

        if (r->number == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
        {
            /* a UTF-8 byte order mark */
            line += 3;
            len -= 3;
        }

        if (!imp->pending) {
            imp->line = r->number;
        }

        imp->row_ended = 0;

        if (csv_parse(&p, line, len, actl_csv_field, actl_csv_row, imp) != len
            || csv_parse(&p, "\n", 1, actl_csv_field, actl_csv_row, imp) != 1)
        {
            actl_error(imp->ctx, "line %llu: malformed CSV (%s)",
                       (unsigned long long) r->number,
                       csv_strerror(csv_error(&p)));
            rc = ACTL_INVALID;
            goto done;
        }

        if (imp->rc != ACTL_OK) {
            rc = imp->rc;
            goto done;
        }

        if (imp->row_ended) {
            imp->pending = 0;

        } else if (len > 0 && strspn(line, " \t\r") != len) {
            imp->pending = 1;
        }
    }

    if (csv_fini(&p, actl_csv_field, actl_csv_row, imp) != 0) {
        actl_error(imp->ctx, "line %llu: malformed CSV (a quoted field is "
                   "not closed)", (unsigned long long) imp->line);
        rc = ACTL_INVALID;
        goto done;
    }

    rc = imp->rc;

done:

    csv_free(&p);

    return rc;
}


static void
actl_csv_field(void *s, size_t len, void *data)
{
    actl_import_t  *imp = data;

    int          col;
    size_t       n;
    const char  *v;
    char         q[ACTL_QUOTE_LEN];

    if (imp->rc != ACTL_OK) {
        return;
    }

    v = (s != NULL) ? s : "";

    if (!imp->header) {
        col = actl_col_lookup(v, len);

        if (col == -1) {
            if (akc_key_classify((const unsigned char *) v, len)
                != AKC_KEY_INVALID)
            {
                /* a file without a header row: the name may be a key */

                actl_error(imp->ctx, "line %llu: unknown column %d (its "
                           "name is not shown: it could be a key)",
                           (unsigned long long) imp->line, imp->ncols + 1);

            } else {
                actl_error(imp->ctx, "line %llu: unknown column %s",
                           (unsigned long long) imp->line,
                           actl_quote(v, len, q));
            }

            imp->rc = ACTL_INVALID;
            return;
        }

        if (imp->colset & (1u << col)) {
            actl_error(imp->ctx, "line %llu: column \"%s\" is repeated",
                       (unsigned long long) imp->line, actl_col_names[col]);
            imp->rc = ACTL_INVALID;
            return;
        }

        imp->colset |= 1u << col;
        imp->cols[imp->ncols++] = col;

        return;
    }

    if (imp->nfields < imp->ncols) {
        col = imp->cols[imp->nfields];
        n = (len < ACTL_FIELD_MAX) ? len : ACTL_FIELD_MAX;

        /* a longer value keeps its length: every check rejects it */

        memcpy(imp->store[col], v, n);
        imp->store[col][n] = '\0';
        imp->fields.len[col] = len;
    }

    imp->nfields++;
}


static void
actl_csv_row(int c, void *data)
{
    actl_import_t  *imp = data;

    int   rc;
    char  err[ACTL_ERR_LEN];

    if (imp->rc != ACTL_OK) {
        return;
    }

    imp->row_ended = 1;

    if (!imp->header) {
        if (!(imp->colset & ((1u << ACTL_COL_KEY) | (1u << ACTL_COL_HASH)))) {
            actl_error(imp->ctx, "line %llu: the header has neither a "
                       "\"key\" nor a \"hash\" column",
                       (unsigned long long) imp->line);
            imp->rc = ACTL_INVALID;
            return;
        }

        imp->header = 1;
        return;
    }

    if (imp->nfields != imp->ncols) {
        snprintf(err, sizeof(err), "expected %d fields, found %d",
                 imp->ncols, imp->nfields);
        rc = ACTL_INVALID;

    } else {
        rc = actl_import_row(imp, &imp->fields, err, sizeof(err));
    }

    imp->rc = actl_import_result(imp, rc, err);

    actl_csv_reset(imp);
}


static void
actl_csv_reset(actl_import_t *imp)
{
    int  i;

    sodium_memzero(imp->store[ACTL_COL_KEY], ACTL_FIELD_MAX + 1);

    for (i = 0; i < ACTL_COL_N; i++) {
        imp->store[i][0] = '\0';
        imp->fields.len[i] = 0;
    }

    imp->nfields = 0;
}


static int
actl_import_jsonl(actl_import_t *imp, actl_reader_t *r, const char *path)
{
    int            n, rc;
    char          *line;
    char           err[ACTL_ERR_LEN];
    size_t         len;
    json_t        *obj;
    json_error_t   jerr;

    for ( ;; ) {
        n = actl_reader_line(r, &line, &len);

        if (n == 0) {
            return ACTL_OK;
        }

        if (n < 0) {
            return actl_reader_error(imp, r, n, path);
        }

        imp->line = r->number;

        if (strspn(line, " \t\r") == len) {
            continue;
        }

        /* jansson's error text quotes the input: it may hold a key */

        obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);

        if (obj == NULL) {
            if (json_error_code(&jerr) == json_error_duplicate_key) {
                snprintf(err, sizeof(err), "a field is repeated");

            } else {
                snprintf(err, sizeof(err), "invalid JSON at column %d",
                         jerr.column);
            }

            rc = ACTL_INVALID;

        } else {
            rc = actl_import_json(imp, obj, err, sizeof(err));
            json_decref(obj);
        }

        rc = actl_import_result(imp, rc, err);
        if (rc != ACTL_OK) {
            return rc;
        }
    }
}


static int
actl_import_json(actl_import_t *imp, json_t *obj, char *err, size_t errlen)
{
    int             col, rc;
    char            q[ACTL_QUOTE_LEN];
    size_t          i, n, len;
    json_t         *value, *item;
    const char     *name;
    actl_fields_t   f;
    char            scopes[AKC_SCOPES_MAX_LEN + 1];

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "not a JSON object");
        return ACTL_INVALID;
    }

    for (i = 0; i < ACTL_COL_N; i++) {
        f.data[i] = "";
        f.len[i] = 0;
    }

    json_object_foreach(obj, name, value) {
        col = actl_col_lookup(name, strlen(name));

        if (col == -1) {
            if (akc_key_classify((const unsigned char *) name, strlen(name))
                != AKC_KEY_INVALID)
            {
                snprintf(err, errlen, "unknown field (its name is not "
                         "shown: it could be a key)");

            } else {
                snprintf(err, errlen, "unknown field %s",
                         actl_quote(name, strlen(name), q));
            }

            return ACTL_INVALID;
        }

        if (json_is_null(value)) {
            continue;
        }

        if (json_is_string(value)) {
            f.data[col] = json_string_value(value);
            f.len[col] = json_string_length(value);

            if (memchr(f.data[col], '\0', f.len[col]) != NULL) {
                snprintf(err, errlen, "field \"%s\" contains a NUL",
                         actl_col_names[col]);
                return ACTL_INVALID;
            }

            continue;
        }

        if (col == ACTL_COL_DISABLED && json_is_boolean(value)) {
            f.data[col] = json_is_true(value) ? "true" : "false";
            f.len[col] = strlen(f.data[col]);
            continue;
        }

        if (col == ACTL_COL_SCOPES && json_is_array(value)) {
            n = 0;

            json_array_foreach(value, i, item) {
                if (!json_is_string(item)) {
                    snprintf(err, errlen, "scopes must be strings");
                    return ACTL_INVALID;
                }

                len = json_string_length(item);

                /* one element, one scope: "read,admin" is not two */

                if (len == 0
                    || memchr(json_string_value(item), ',', len) != NULL)
                {
                    snprintf(err, errlen, "scopes[%zu] is not one scope "
                             "(empty, or with a comma)", i);
                    return ACTL_INVALID;
                }

                if (n + (n > 0) + len > AKC_SCOPES_MAX_LEN) {
                    snprintf(err, errlen, "scopes are longer than %d bytes",
                             AKC_SCOPES_MAX_LEN);
                    return ACTL_INVALID;
                }

                if (n > 0) {
                    scopes[n++] = ',';
                }

                memcpy(scopes + n, json_string_value(item), len);
                n += len;
            }

            f.data[col] = scopes;
            f.len[col] = n;
            continue;
        }

        snprintf(err, errlen, "field \"%s\" has the wrong type",
                 actl_col_names[col]);
        return ACTL_INVALID;
    }

    rc = actl_import_row(imp, &f, err, errlen);

    return rc;
}


/*
 * One row, whatever its format: ACTL_OK, ACTL_INVALID with the reason in
 * err, or ACTL_FAIL (reported already).  Nothing is written before every
 * check has passed, so a skipped row leaves no trace.
 */

static int
actl_import_row(actl_import_t *imp, actl_fields_t *f, char *err,
    size_t errlen)
{
    int            rc, has_key;
    size_t         i;
    akc_record_t   rec;
    unsigned char  hash[AKC_HASH_LEN];
    char           hint[AKC_HINT_MAX_LEN + 1];
    char           id[ACTL_DEFAULT_ID_LEN + 1];

    static const actl_col_e  texts[] = {
        ACTL_COL_ID, ACTL_COL_SUBJECT, ACTL_COL_SCOPES, ACTL_COL_PLAN
    };

    /* a key in any other column is neither stored nor shown */

    for (i = 0; i < ACTL_COL_N; i++) {
        /* a CSV field keeps ACTL_FIELD_MAX bytes of a longer value */

        if (i != ACTL_COL_KEY
            && actl_has_key(f->data[i], f->len[i] < ACTL_FIELD_MAX
                                        ? f->len[i] : ACTL_FIELD_MAX))
        {
            snprintf(err, errlen, "%s \"%s\" holds an API key (not shown); "
                     "keys go in the \"key\" %s",
                     imp->jsonl ? "field" : "column", actl_col_names[i],
                     imp->jsonl ? "field" : "column");
            return ACTL_INVALID;
        }
    }

    has_key = f->len[ACTL_COL_KEY] > 0;

    if (has_key == (f->len[ACTL_COL_HASH] > 0)) {
        snprintf(err, errlen, has_key ? "both a key and a hash"
                                      : "no key or hash");
        return ACTL_INVALID;
    }

    memset(&rec, 0, sizeof(akc_record_t));

    if (has_key) {
        rc = actl_check_key(f->data[ACTL_COL_KEY], f->len[ACTL_COL_KEY],
                            err, errlen);
        if (rc != ACTL_OK) {
            return rc;
        }

        akc_hash(&imp->ctx->secret, (unsigned char *) f->data[ACTL_COL_KEY],
                 f->len[ACTL_COL_KEY], hash);

        /* the hint is the key's own: a hint column is ignored */

        rec.hint.len = akc_key_hint((unsigned char *) f->data[ACTL_COL_KEY],
                                    f->len[ACTL_COL_KEY], hint);
        rec.hint.data = hint;

    } else {
        rc = actl_check_hash(f->data[ACTL_COL_HASH], f->len[ACTL_COL_HASH],
                             hash, err, errlen);
        if (rc != ACTL_OK) {
            return rc;
        }

        rc = actl_check_field(ACTL_COL_HINT, f->data[ACTL_COL_HINT],
                              f->len[ACTL_COL_HINT], err, errlen);
        if (rc != ACTL_OK) {
            return rc;
        }

        rec.hint.data = f->data[ACTL_COL_HINT];
        rec.hint.len = f->len[ACTL_COL_HINT];
    }

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (texts[i] == ACTL_COL_ID && f->len[ACTL_COL_ID] == 0) {
            continue;
        }

        rc = actl_check_field(texts[i], f->data[texts[i]], f->len[texts[i]],
                              err, errlen);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    rc = actl_check_time(ACTL_COL_EXPIRES, f->data[ACTL_COL_EXPIRES],
                         f->len[ACTL_COL_EXPIRES], imp->ctx->now,
                         &rec.expires, err, errlen);

    if (rc == ACTL_OK) {
        rc = actl_check_time(ACTL_COL_NOT_BEFORE, f->data[ACTL_COL_NOT_BEFORE],
                             f->len[ACTL_COL_NOT_BEFORE], imp->ctx->now,
                             &rec.not_before, err, errlen);
    }

    if (rc == ACTL_OK) {
        rc = actl_check_time(ACTL_COL_CREATED, f->data[ACTL_COL_CREATED],
                             f->len[ACTL_COL_CREATED], imp->ctx->now,
                             &rec.created, err, errlen);
    }

    if (rc == ACTL_OK) {
        rc = actl_check_times(rec.not_before, rec.expires, err, errlen);
    }

    if (rc == ACTL_OK) {
        rc = actl_check_bool(f->data[ACTL_COL_DISABLED],
                             f->len[ACTL_COL_DISABLED], &rec.flags, err,
                             errlen);
    }

    if (rc != ACTL_OK) {
        return rc;
    }

    if (rec.created == 0) {
        rec.created = imp->ctx->now;
    }

    rec.subject.data = f->data[ACTL_COL_SUBJECT];
    rec.subject.len = f->len[ACTL_COL_SUBJECT];
    rec.scopes.data = f->data[ACTL_COL_SCOPES];
    rec.scopes.len = f->len[ACTL_COL_SCOPES];
    rec.plan.data = f->data[ACTL_COL_PLAN];
    rec.plan.len = f->len[ACTL_COL_PLAN];

    if (f->len[ACTL_COL_ID] > 0) {
        rec.id.data = f->data[ACTL_COL_ID];
        rec.id.len = f->len[ACTL_COL_ID];

    } else {
        actl_default_id(hash, id);
        rec.id.data = id;
        rec.id.len = ACTL_DEFAULT_ID_LEN;
    }

    return actl_import_keep(imp, &rec, hash, f->len[ACTL_COL_ID] > 0, err,
                            errlen);
}


static int
actl_import_put(actl_import_t *imp, akc_record_t *rec,
    const unsigned char *hash, int has_id, char *err, size_t errlen)
{
    int             rc, update;
    char            q[ACTL_QUOTE_LEN];
    MDB_val         k, v, h;
    actl_ctx_t     *ctx;
    actl_seen_t    *seen;
    akc_record_t    old;
    unsigned char   buf[AKC_RECORD_MAX_LEN];

    ctx = imp->ctx;

    seen = actl_set_find(&imp->seen, hash);

    if (seen != NULL) {
        snprintf(err, errlen, "the same key as line %llu",
                 (unsigned long long) seen->line);
        return ACTL_INVALID;
    }

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = (void *) hash;

    rc = mdb_get(imp->txn, ctx->dbs.keys, &k, &v);

    if (rc == MDB_SUCCESS) {
        if (akc_record_decode(&old, v.mv_data, v.mv_size) != AKC_OK) {
            actl_error(ctx, "a record in the database is corrupt");
            return ACTL_FAIL;
        }

        if (has_id
            && (old.id.len != rec->id.len
                || memcmp(old.id.data, rec->id.data, rec->id.len) != 0))
        {
            snprintf(err, errlen, "key already exists as id %s",
                     actl_quote(old.id.data, old.id.len, q));
            return ACTL_INVALID;
        }

        /* the same key under the same id: an update, created is kept */

        rec->id = old.id;
        rec->created = old.created;
        update = 1;

    } else if (rc == MDB_NOTFOUND) {
        k.mv_size = rec->id.len;
        k.mv_data = (void *) rec->id.data;

        rc = mdb_get(imp->txn, ctx->dbs.ids, &k, &h);

        if (rc == MDB_SUCCESS) {
            seen = (h.mv_size == AKC_HASH_LEN)
                   ? actl_set_find(&imp->seen, h.mv_data) : NULL;

            if (seen != NULL) {
                snprintf(err, errlen, "id %s is already used on line "
                         "%llu", actl_quote(rec->id.data, rec->id.len, q),
                         (unsigned long long) seen->line);

            } else {
                snprintf(err, errlen, "id %s already exists with "
                         "another key",
                         actl_quote(rec->id.data, rec->id.len, q));
            }

            return ACTL_INVALID;
        }

        if (rc != MDB_NOTFOUND) {
            actl_mdb_error(ctx, "mdb_get", rc);
            return ACTL_FAIL;
        }

        update = 0;

    } else {
        actl_mdb_error(ctx, "mdb_get", rc);
        return ACTL_FAIL;
    }

    /* rec may point into the map: encode it before anything is written */

    rc = akc_record_encode(rec, buf, sizeof(buf));
    if (rc < 0) {
        snprintf(err, errlen, "the record cannot be encoded");
        return ACTL_INVALID;
    }

    v.mv_size = rc;
    v.mv_data = buf;

    if (!update) {
        h.mv_size = AKC_HASH_LEN;
        h.mv_data = (void *) hash;

        rc = mdb_put(imp->txn, ctx->dbs.ids, &k, &h, MDB_NOOVERWRITE);
        if (rc != MDB_SUCCESS) {
            actl_mdb_error(ctx, "mdb_put", rc);
            return ACTL_FAIL;
        }
    }

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = (void *) hash;

    rc = mdb_put(imp->txn, ctx->dbs.keys, &k, &v, 0);
    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_put", rc);
        return ACTL_FAIL;
    }

    if (actl_set_add(&imp->seen, hash, imp->line) != ACTL_OK) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    if (update) {
        imp->updated++;

    } else {
        imp->added++;
    }

    return ACTL_OK;
}


static int
actl_import_result(actl_import_t *imp, int rc, const char *err)
{
    if (rc != ACTL_INVALID) {
        return rc;
    }

    if (imp->skip_invalid) {
        actl_error(imp->ctx, "skipped line %llu: %s",
                   (unsigned long long) imp->line, err);
        imp->skipped++;
        return ACTL_OK;
    }

    actl_error(imp->ctx, "line %llu: %s", (unsigned long long) imp->line,
               err);

    return ACTL_INVALID;
}


/* reading */

static int
actl_lookup(actl_ctx_t *ctx, MDB_txn *txn, const char *id,
    akc_record_t *rec)
{
    int      rc;
    char     q[ACTL_QUOTE_LEN];
    size_t   len;
    MDB_val  k, v;

    len = strlen(id);

    if (!akc_id_valid(id, len)) {
        actl_error(ctx, "no key with id %s", actl_quote(id, len, q));
        return ACTL_INVALID;
    }

    k.mv_size = len;
    k.mv_data = (void *) id;

    rc = mdb_get(txn, ctx->dbs.ids, &k, &v);

    if (rc == MDB_NOTFOUND) {
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


static int
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


static int
actl_table_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data)
{
    actl_table_t  *table = data;

    int          i;
    size_t       len[ACTL_TABLE_COLS];
    const char  *val[ACTL_TABLE_COLS];
    char         t[AKC_TIME_LEN + 1];

    val[0] = rec->id.data;
    len[0] = rec->id.len;
    val[1] = rec->subject.data;
    len[1] = rec->subject.len;
    val[2] = rec->plan.data;
    len[2] = rec->plan.len;
    val[3] = rec->scopes.data;
    len[3] = rec->scopes.len;
    val[4] = akc_status_name(akc_record_status(rec, ctx->now));
    len[4] = strlen(val[4]);
    val[5] = rec->expires ? actl_time(rec->expires, t) : "";
    len[5] = strlen(val[5]);
    val[6] = rec->hint.data;
    len[6] = rec->hint.len;

    for (i = 0; i < ACTL_TABLE_COLS; i++) {
        if (len[i] == 0) {
            val[i] = "-";
            len[i] = 1;
        }

        if (table->pass == 0) {
            if (len[i] > table->width[i]) {
                table->width[i] = len[i];
            }

            continue;
        }

        if (i < ACTL_TABLE_COLS - 1) {
            printf("%.*s%*s  ", (int) len[i], val[i],
                   (int) (table->width[i] - len[i]), "");

        } else {
            printf("%.*s\n", (int) len[i], val[i]);
        }
    }

    return ACTL_OK;
}


/* data != NULL: export, with the hash */

static int
actl_json_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data)
{
    json_t  *obj;

    obj = actl_json_record(ctx, rec, data != NULL ? hash : NULL);
    if (obj == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    json_dumpf(obj, stdout, JSON_COMPACT);
    fputc('\n', stdout);

    json_decref(obj);

    return ACTL_OK;
}


static json_t *
actl_json_record(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash)
{
    json_t  *obj;
    char     hex[2 * AKC_HASH_LEN + 1];

    obj = json_object();
    if (obj == NULL) {
        return NULL;
    }

    if (hash != NULL) {
        sodium_bin2hex(hex, sizeof(hex), hash, AKC_HASH_LEN);
        actl_json_str(obj, "hash", hex, 2 * AKC_HASH_LEN);
    }

    actl_json_str(obj, "id", rec->id.data, rec->id.len);
    actl_json_str(obj, "subject", rec->subject.data, rec->subject.len);
    actl_json_str(obj, "scopes", rec->scopes.data, rec->scopes.len);
    actl_json_str(obj, "plan", rec->plan.data, rec->plan.len);

    if (hash == NULL) {
        json_object_set_new(obj, "status",
            json_string(akc_status_name(akc_record_status(rec, ctx->now))));
    }

    actl_json_time(obj, "expires", rec->expires);
    actl_json_time(obj, "not_before", rec->not_before);

    if (hash == NULL) {
        actl_json_time(obj, "created", rec->created);
    }

    json_object_set_new(obj, "disabled",
                        json_boolean(rec->flags & AKC_FLAG_DISABLED));
    actl_json_str(obj, "hint", rec->hint.data, rec->hint.len);

    if (hash != NULL) {
        actl_json_time(obj, "created", rec->created);
    }

    return obj;
}


/* a string that is not UTF-8 (a subject from CSV may not be) is null */

static void
actl_json_str(json_t *obj, const char *name, const char *s, size_t len)
{
    json_t  *v;

    v = json_stringn(s, len);

    json_object_set_new(obj, name, v != NULL ? v : json_null());
}


static void
actl_json_time(json_t *obj, const char *name, int64_t t)
{
    char  buf[AKC_TIME_LEN + 1];

    json_object_set_new(obj, name,
                        t ? json_string(actl_time(t, buf)) : json_null());
}


/* data != NULL: export, with the hash */

static int
actl_csv_out_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data)
{
    const char  *s;
    char         hex[2 * AKC_HASH_LEN + 1], t[AKC_TIME_LEN + 1];

    if (data != NULL) {
        sodium_bin2hex(hex, sizeof(hex), hash, AKC_HASH_LEN);
        actl_csv_put(hex, 2 * AKC_HASH_LEN, 0);
    }

    actl_csv_put(rec->id.data, rec->id.len, 0);
    actl_csv_put(rec->subject.data, rec->subject.len, 0);
    actl_csv_put(rec->scopes.data, rec->scopes.len, 0);
    actl_csv_put(rec->plan.data, rec->plan.len, 0);

    s = rec->expires ? actl_time(rec->expires, t) : "";
    actl_csv_put(s, strlen(s), 0);

    s = rec->not_before ? actl_time(rec->not_before, t) : "";
    actl_csv_put(s, strlen(s), 0);

    s = (rec->flags & AKC_FLAG_DISABLED) ? "true" : "false";
    actl_csv_put(s, strlen(s), 0);

    actl_csv_put(rec->hint.data, rec->hint.len, 0);

    s = rec->created ? actl_time(rec->created, t) : "";
    actl_csv_put(s, strlen(s), 1);

    return ACTL_OK;
}


static void
actl_csv_put(const char *s, size_t len, int last)
{
    /* csv_fwrite() quotes every field */

    csv_fwrite(stdout, s, len);
    fputc(last ? '\n' : ',', stdout);
}


static const char *
actl_time(int64_t t, char buf[AKC_TIME_LEN + 1])
{
    if (akc_time_format(t, buf) == 0) {
        return "";
    }

    return buf;
}


/* the first line of standard input: the key stays out of ps */

static int
actl_read_stdin_key(char *buf, size_t size, size_t *len)
{
    char     *nl;
    size_t    n;
    ssize_t   nr;

    n = 0;
    nl = NULL;

    while (n < size) {
        nr = read(STDIN_FILENO, buf + n, size - n);

        if (nr == -1) {
            if (errno == EINTR) {
                continue;
            }

            return ACTL_FAIL;
        }

        if (nr == 0) {
            break;
        }

        nl = memchr(buf + n, '\n', nr);
        n += nr;

        if (nl != NULL) {
            break;
        }
    }

    if (nl != NULL) {
        n = nl - buf;
    }

    /* a line that fills the buffer is far too long to be a key */

    if (n > 0 && buf[n - 1] == '\r' && n < size) {
        n--;
    }

    *len = n;

    return ACTL_OK;
}
