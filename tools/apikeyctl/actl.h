
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl's internal header: what its files share, the types, the
 * exit codes and limits, and the functions each file offers the others
 * (and fuzz/fuzz_import.c).
 */


#ifndef _ACTL_H_INCLUDED_
#define _ACTL_H_INCLUDED_


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

/* a write handler's answer to MDB_MAP_FULL: actl_write() grows the map */
#define ACTL_MAP_FULL           -1

/* a write handler that changed nothing: actl_write() aborts, no commit */
#define ACTL_UNCHANGED          -2

#define ACTL_MAP_GROW_MAX       ((size_t) 1 << 40)
#define ACTL_MAP_MIN            ((size_t) 64 * 1024)

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
    uint64_t                off;        /* its encoded record in the arena,
                                           then its id */
    uint64_t                aux;        /* in the arena: the stored id
                                           (clash), the owner's hash
                                           (taken) */
    uint16_t                len;
    uint8_t                 id_len;
    uint8_t                 aux_len;
    unsigned                has_id:1;
    unsigned                has_created:1;
    unsigned                rejected:1;
    unsigned                stored:1;   /* the key is in the database */
    unsigned                same:1;     /* and its record unchanged */
    unsigned                clash:1;    /* stored under another id */
    unsigned                taken:1;    /* its id is another stored key's */
} actl_row_t;


/*
 * CSV rows as libcsv splits them, handed in batches to the thread that
 * checks and hashes them: each field's length (a longer one keeps its
 * length, and ACTL_FIELD_MAX bytes), then the fields one after the
 * other in data, each with a NUL.  data holds plaintext keys: it is
 * wiped once the batch is done.  The main thread hashes the key too,
 * so that both threads have about as much to do.
 */

#include <pthread.h>

#define ACTL_BATCH_ROWS         4096
#define ACTL_BATCH_DATA         (1024 * 1024)

typedef struct {
    uint64_t                line;
    uint32_t                off;
    int32_t                 nfields;
    uint32_t                len[ACTL_COL_N];
    unsigned char           hash[AKC_HASH_LEN];  /* of a key of a valid */
    char                    hint[AKC_HINT_MAX_LEN + 1];  /* length */
    uint8_t                 hint_len;
    uint8_t                 hashed;
} actl_brow_t;


typedef struct {
    actl_brow_t            *rows;
    size_t                  nrows;
    char                   *data;
    size_t                  len;
} actl_batch_t;


/* a row rejected in the write transaction: its reason in imp->msgs */

typedef struct {
    uint64_t                line;
    size_t                  off;
} actl_reject_t;


typedef struct {
    actl_ctx_t             *ctx;
    actl_row_t             *rows;
    size_t                  nrows;
    size_t                  nrows_alloc;
    unsigned char          *arena;
    size_t                  arena_len;
    size_t                  arena_size;
    actl_reject_t          *rejects;
    size_t                  nrejects;
    size_t                  nrejects_alloc;
    char                   *msgs;
    size_t                  msgs_len;
    size_t                  msgs_size;
    uint32_t               *order;      /* row indexes, sorted by id */
    size_t                  norder;
    uint64_t                line;       /* the first line of the row */

    /* the summary: skipped counts the rows rejected while reading */
    uint64_t                added;
    uint64_t                updated;
    uint64_t                unchanged;
    uint64_t                removed;
    uint64_t                rejected;
    uint64_t                skipped;

    /* the progress line */
    uint64_t                nread;
    struct timespec         start;
    struct timespec         shown;
    unsigned                progress:1;
    int                     progress_on;    /* a line is on the terminal */

    int                     rc;
    unsigned                skip_invalid:1;
    unsigned                jsonl:1;
    unsigned                follow:1;   /* PostgreSQL's: no key column */
    unsigned                replace:1;
    unsigned                force:1;
    unsigned                sorted:1;   /* rows in hash order */

    /* CSV: the rows checked in a second thread, batch by batch */
    actl_batch_t            batch[2];
    int                     fill;       /* the batch being filled */
    int                     full[2];    /* handed to the thread */
    int                     wrc;        /* the thread's result */
    pthread_t               thread;
    pthread_mutex_t         mutex;
    pthread_cond_t          cond;
    unsigned                threads:1;  /* wanted */

    /* not bit fields: each thread writes its own */
    int                     threaded;   /* running */
    int                     quit;
    uint64_t                csv_line;   /* the first line of the row */
    actl_brow_t            *brow;       /* the row checked, hashed */

    char                    header;
    char                    pending;    /* a row continues on next line */
    char                    row_ended;
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


/* one write: run again from the start after the map is grown */

typedef int (*actl_write_pt)(actl_ctx_t *ctx, MDB_txn *txn, void *data);


typedef int (*actl_each_pt)(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data);


/* apikeyctl.c: main, the command table and the usage */

void actl_usage(const char *name, FILE *fp);


/* actl_error.c: usage and errors */

int actl_check_args(actl_ctx_t *ctx, int argc, char **argv);
int actl_has_key(const char *s, size_t len);
int actl_option_error(actl_ctx_t *ctx, int c, char **argv);
int actl_usage_error(actl_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void actl_error(actl_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void actl_mdb_error(actl_ctx_t *ctx, const char *call, int rc);
const char *actl_quote(const char *s, size_t len,
    char out[ACTL_QUOTE_LEN]);


/* actl_mem.c: memory */

void actl_no_core(void);
void actl_sigbus_init(actl_ctx_t *ctx);
void actl_lmdb_assert(MDB_env *env, const char *msg);
void *actl_secure_malloc(size_t size);
void *actl_secure_realloc(void *p, size_t size);
void actl_secure_free(void *p);


/* actl_db.c: the database */

int actl_db_exists(actl_ctx_t *ctx);
int actl_secret_create(actl_ctx_t *ctx);
int actl_secret_load(actl_ctx_t *ctx);
int actl_env_open(actl_ctx_t *ctx, unsigned flags, mode_t mode,
    size_t mapsize);
int actl_open(actl_ctx_t *ctx, unsigned flags);
int actl_start(actl_ctx_t *ctx, unsigned flags, MDB_txn **txn);
int actl_begin(actl_ctx_t *ctx, unsigned flags, unsigned dbflags,
    int check, MDB_txn **txn);
int actl_commit(actl_ctx_t *ctx, MDB_txn **txn);
int actl_write(actl_ctx_t *ctx, actl_write_pt handler, void *data);
int actl_mdb_write_error(actl_ctx_t *ctx, const char *call, int rc);
int actl_put_record(actl_ctx_t *ctx, MDB_txn *txn, const unsigned char *hash,
    const akc_record_t *rec);
void actl_close(actl_ctx_t *ctx);
int actl_lookup(actl_ctx_t *ctx, MDB_txn *txn, const char *id,
    akc_record_t *rec);
int actl_each(actl_ctx_t *ctx, MDB_txn *txn, const char *subject,
    actl_each_pt handler, void *data);
int actl_keys_find(actl_ctx_t *ctx, MDB_txn *txn, char **ids, size_t n,
    unsigned char *found);
int actl_damaged(actl_ctx_t *ctx, const char *id);


/* actl_fields.c: arguments and fields */

int actl_parse_size(const char *s, size_t *size);
int actl_parse_duration(actl_ctx_t *ctx, const char *s, int64_t *until);
int actl_parse_format(actl_ctx_t *ctx, const char *s,
    const char **names);
int actl_check_field(actl_col_e col, const char *s, size_t len,
    char *err, size_t errlen);
int actl_check_time(actl_col_e col, const char *s, size_t len,
    int64_t now, int64_t *t, char *err, size_t errlen);
int actl_check_times(int64_t not_before, int64_t expires, char *err,
    size_t errlen);
int actl_check_bool(const char *s, size_t len, unsigned *flags,
    char *err, size_t errlen);
int actl_check_hash(const char *s, size_t len,
    unsigned char hash[AKC_HASH_LEN], char *err, size_t errlen);
int actl_check_key(const char *s, size_t len, char *err,
    size_t errlen);
int actl_col_lookup(const char *name, size_t len);
int actl_read_ids(actl_ctx_t *ctx, char **bufp, char ***idsp, size_t *np);
int actl_format_only(actl_ctx_t *ctx, int argc, char **argv,
    const char **formats);
void actl_default_id(const unsigned char *hash,
    char id[ACTL_DEFAULT_ID_LEN + 1]);

extern const char  *actl_col_names[];


/* actl_output.c: output formats */

int actl_table_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data);
int actl_json_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data);
int actl_csv_out_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data);
int actl_json_show(actl_ctx_t *ctx, const akc_record_t *rec, int replaces,
    int replaced_by);
void actl_json_str(json_t *obj, const char *name, const char *s,
    size_t len);
void actl_json_time(json_t *obj, const char *name, int64_t t);
const char *actl_time(int64_t t, char buf[AKC_TIME_LEN + 1]);


/* actl_init.c: init */

int actl_cmd_init(actl_ctx_t *ctx, int argc, char **argv);


/* actl_gen.c: gen */

int actl_cmd_gen(actl_ctx_t *ctx, int argc, char **argv);
int actl_gen_store(actl_ctx_t *ctx, MDB_txn *txn, akc_record_t *rec,
    const char *prefix, const char *id, actl_genkey_t *g);
void actl_gen_print(actl_ctx_t *ctx, akc_record_t *rec, const char *id,
    actl_genkey_t *g, int json);


/* actl_rotate.c: rotate */

int actl_cmd_rotate(actl_ctx_t *ctx, int argc, char **argv);


/* actl_import.c, actl_import_write.c: import */

/* a handler's answers that abort the transaction: --dry-run, no change */
#define ACTL_IMPORT_DRY         100
#define ACTL_IMPORT_SAME        101


int actl_cmd_import(actl_ctx_t *ctx, int argc, char **argv);
int actl_import_keep(actl_import_t *imp, akc_record_t *rec,
    const unsigned char *hash, int has_id, int has_created, char *err,
    size_t errlen);
void actl_import_free(actl_import_t *imp);
int actl_import_result(actl_import_t *imp, int rc, const char *err);
void actl_import_progress(actl_import_t *imp, int done);
int actl_import_sort_rows(actl_import_t *imp);
int actl_import_sort_ids(actl_import_t *imp);
int actl_order_id_cmp(const void *a, const void *b, void *data);
int actl_import_write(actl_ctx_t *ctx, MDB_txn *txn, void *data);
int actl_import_reject(actl_import_t *imp, uint64_t line,
    const char *err);
int actl_import_report(actl_import_t *imp);


/* actl_import_resolve.c: rows that share a key or an id */

int actl_import_resolve(actl_import_t *imp);


/* actl_import_thread.c: CSV rows checked in a second thread */

int actl_batch_start(actl_import_t *imp);
int actl_batch_add(actl_import_t *imp);
int actl_batch_send(actl_import_t *imp);
int actl_batch_drain(actl_import_t *imp);
void actl_batch_stop(actl_import_t *imp);


/* actl_import_read.c: the readers of import */

int actl_reader_init(actl_reader_t *r, int fd);
void actl_reader_free(actl_reader_t *r);
int actl_import_csv(actl_import_t *imp, actl_reader_t *r,
    const char *path);
int actl_import_jsonl(actl_import_t *imp, actl_reader_t *r,
    const char *path);
int actl_import_row(actl_import_t *imp, actl_fields_t *f, char *err,
    size_t errlen);


/* actl_update.c: revoke, disable, enable, expire */

int actl_cmd_revoke(actl_ctx_t *ctx, int argc, char **argv);
int actl_cmd_disable(actl_ctx_t *ctx, int argc, char **argv);
int actl_cmd_enable(actl_ctx_t *ctx, int argc, char **argv);
int actl_cmd_expire(actl_ctx_t *ctx, int argc, char **argv);
int actl_del_id(actl_ctx_t *ctx, MDB_txn *txn, MDB_val *id);
int actl_del_hash(actl_ctx_t *ctx, MDB_txn *txn, const unsigned char *hash);


/* actl_list.c: list, show, export */

int actl_cmd_list(actl_ctx_t *ctx, int argc, char **argv);
int actl_cmd_show(actl_ctx_t *ctx, int argc, char **argv);
int actl_cmd_export(actl_ctx_t *ctx, int argc, char **argv);


/* actl_verify.c: verify, hash */

int actl_cmd_verify(actl_ctx_t *ctx, int argc, char **argv);
int actl_cmd_hash(actl_ctx_t *ctx, int argc, char **argv);


/* actl_stats.c: stats */

int actl_cmd_stats(actl_ctx_t *ctx, int argc, char **argv);


/* actl_check.c: check */

int actl_cmd_check(actl_ctx_t *ctx, int argc, char **argv);


/* actl_backup.c: backup */

int actl_cmd_backup(actl_ctx_t *ctx, int argc, char **argv);


/* actl_restore.c: restore, and reading a copy, which backup checks too */

typedef struct {
    const char             *path;
    MDB_env                *env;
    MDB_txn                *txn;
    akc_dbs_t               dbs;
    size_t                  nkeys;
    off_t                   size;       /* of data.mdb */
} actl_copy_t;


int actl_cmd_restore(actl_ctx_t *ctx, int argc, char **argv);


/* actl_follow*.c: follow, a PostgreSQL table (actl_follow.h) */

int actl_cmd_follow(actl_ctx_t *ctx, int argc, char **argv);


/* actl_copy.c: reading a copy of a database, for backup and restore */

int actl_copy_open(actl_ctx_t *ctx, actl_copy_t *copy);
int actl_copy_verify(actl_ctx_t *ctx, actl_copy_t *copy);
void actl_copy_close(actl_copy_t *copy);
void actl_copy_sigbus_init(const char *path);
char *actl_path(const char *dir, const char *name);


#endif /* _ACTL_H_INCLUDED_ */
