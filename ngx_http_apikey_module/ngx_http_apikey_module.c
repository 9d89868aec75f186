
/*
 * Copyright (C) ngx_http_apikey_module developers
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <setjmp.h>
#include <lmdb.h>
#include <sodium.h>

#include "apikey_core.h"
#include "ngx_http_apikey_metrics.h"


#define NGX_HTTP_APIKEY_OFF             0
#define NGX_HTTP_APIKEY_ON              1
#define NGX_HTTP_APIKEY_OPTIONAL        2

#define NGX_HTTP_APIKEY_SOURCE_HEADER   0
#define NGX_HTTP_APIKEY_SOURCE_AUTH     1
#define NGX_HTTP_APIKEY_SOURCE_QUERY    2
#define NGX_HTTP_APIKEY_SOURCE_COOKIE   3

/* a request header by its lowercase name */
#define ngx_http_apikey_header_named(h, name)                                \
    ((h)->key.len == sizeof(name) - 1                                        \
     && ngx_strncmp((h)->lowcase_key, name, sizeof(name) - 1) == 0)

#define NGX_HTTP_APIKEY_DEFAULT_DB      "/var/lib/apikey"
#define NGX_HTTP_APIKEY_DEFAULT_SECRET  "/etc/nginx/apikey.secret"

#define NGX_HTTP_APIKEY_ERRLEN          1024

/* the part of an LMDB assertion's message kept for the log */
#define NGX_HTTP_APIKEY_ASSERTLEN       256

/* where a read of a damaged data file faulted */
#define NGX_HTTP_APIKEY_DAMAGED_READ    1
#define NGX_HTTP_APIKEY_DAMAGED_OPEN    2

/* how long a reader may stay one commit behind: a commit in flight */
#define NGX_HTTP_APIKEY_LAG_MAX         200

/* how long a snapshot no request uses is kept (ms) */
#define NGX_HTTP_APIKEY_RELEASE         50


typedef enum {
    NGX_HTTP_APIKEY_VAR_STATUS = 0,
    NGX_HTTP_APIKEY_VAR_ID,
    NGX_HTTP_APIKEY_VAR_SUBJECT,
    NGX_HTTP_APIKEY_VAR_SCOPES,
    NGX_HTTP_APIKEY_VAR_PLAN,
    NGX_HTTP_APIKEY_VAR_EXPIRES,
    NGX_HTTP_APIKEY_VAR_SOURCE,
    NGX_HTTP_APIKEY_VAR_HINT,
    NGX_HTTP_APIKEY_NVARS
} ngx_http_apikey_var_e;


/* a loaded secret, shared by every location that names its file */

typedef struct {
    ngx_str_t                   path;
    akc_secret_t                secret;
    u_char                      fingerprint[AKC_FINGERPRINT_LEN];
} ngx_http_apikey_secret_t;


/*
 * An open LMDB environment, one per data file: LMDB forbids opening one
 * environment twice in a process, so the configured paths that reach it
 * (a symlink and the direct path) share it.  Handles and paths live in
 * process memory outside any cycle: in "master_process off" mode a
 * reload makes a new cycle without calling init_process again.  The
 * master never opens an environment.
 */

typedef struct ngx_http_apikey_handle_s  ngx_http_apikey_handle_t;

struct ngx_http_apikey_handle_s {
    ngx_http_apikey_handle_t   *next;
    MDB_env                    *env;
    MDB_txn                    *txn;
    akc_dbs_t                   dbs;
    ngx_uint_t                  refs;
    ngx_uint_t                  broken;     /* unusable: detach from it */
    ngx_uint_t                  live;       /* txn renewed, not reset */
    ngx_uint_t                  used;       /* since the last release */
    ngx_uint_t                  lagging;    /* one commit behind */
    size_t                      lag_id;
    ngx_msec_t                  lag_since;
    size_t                      seen;       /* the newest id read */
    off_t                       lock_size;
    dev_t                       data_dev;
    ino_t                       data_ino;
    dev_t                       lock_dev;
    ino_t                       lock_ino;
    u_char                      checked[AKC_FINGERPRINT_LEN];
};


/* a configured path, which follows its own target */

typedef struct ngx_http_apikey_env_s  ngx_http_apikey_env_t;

struct ngx_http_apikey_env_s {
    ngx_http_apikey_env_t      *next;
    u_char                     *path;
    u_char                     *data_path;
    u_char                     *lock_path;
    ngx_http_apikey_handle_t   *handle;
    time_t                      next_open;
    time_t                      next_check;
    ngx_uint_t                  opened;     /* times, in this process */
    ngx_uint_t                  damaged;    /* NGX_HTTP_APIKEY_DAMAGED_* */
    ngx_file_info_t             damage;     /* the data file that faulted */
    dev_t                       damage_lock_dev;
    ino_t                       damage_lock_ino;
    u_char                      error[NGX_HTTP_APIKEY_ERRLEN];
};


/* a database as configured: a path and the secret its keys are hashed with */

typedef struct {
    ngx_str_t                   path;
    ngx_str_t                   label;      /* path, as apikey_metrics
                                               labels it */
    ngx_http_apikey_secret_t   *secret;
    ngx_http_apikey_env_t      *env;
} ngx_http_apikey_db_t;


typedef struct {
    ngx_uint_t                  type;
    ngx_str_t                   name;
    ngx_str_t                   text;       /* "header=X-API-Key" */
} ngx_http_apikey_source_t;


typedef struct {
    ngx_array_t                 secrets;    /* ngx_http_apikey_secret_t * */
    ngx_array_t                 dbs;        /* ngx_http_apikey_db_t * */
    ngx_int_t                   index[NGX_HTTP_APIKEY_NVARS];
    ngx_flag_t                  hide;       /* some location hides */
    ngx_http_apikey_metrics_t  *metrics;    /* some location has them */
} ngx_http_apikey_main_conf_t;


typedef struct {
    ngx_uint_t                  mode;
    ngx_str_t                   db_path;
    ngx_http_apikey_secret_t   *secret;
    ngx_http_apikey_db_t       *db;
    ngx_array_t                *sources;    /* ngx_http_apikey_source_t */
    ngx_array_t                *scopes;     /* ngx_str_t */
    ngx_str_t                   realm;
    ngx_flag_t                  hide;
    ngx_flag_t                  skip_preflight;
    ngx_http_apikey_metrics_server_t  *metrics;
} ngx_http_apikey_loc_conf_t;


typedef struct {
    akc_status_e                status;
    ngx_http_apikey_db_t       *db;
    ngx_array_t                *sources;
    ngx_http_apikey_source_t   *source;
    ngx_str_t                   id;
    ngx_str_t                   subject;
    ngx_str_t                   scopes;
    ngx_str_t                   plan;
    ngx_str_t                   expires;
    ngx_str_t                   hint;
    ngx_str_t                   unknown;    /* the unknown key, for a hint */
    ngx_str_t                   key;        /* as found, before hiding */
    unsigned                    preflight:1;
    unsigned                    hidden:1;
} ngx_http_apikey_ctx_t;


static ngx_int_t ngx_http_apikey_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_http_apikey_preflight(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_skip(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf);
static ngx_int_t ngx_http_apikey_hide_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_apikey_hide_all(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_hide(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src);
static ngx_int_t ngx_http_apikey_remove_header(ngx_http_request_t *r,
    ngx_list_part_t *part, ngx_uint_t i);
static ngx_int_t ngx_http_apikey_hide_cookie(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_table_elt_t *h);
static void ngx_http_apikey_unlink_cookie(ngx_http_request_t *r,
    ngx_table_elt_t *h);
static ngx_int_t ngx_http_apikey_hide_query(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src);
static ngx_int_t ngx_http_apikey_strip_args(ngx_http_request_t *r,
    ngx_str_t *args, ngx_str_t *name);
static ngx_http_apikey_ctx_t *ngx_http_apikey_lookup(ngx_http_request_t *r);
static ngx_http_apikey_ctx_t *ngx_http_apikey_get_ctx(ngx_http_request_t *r);
static void ngx_http_apikey_hidden_marker(void *data);
static ngx_int_t ngx_http_apikey_find_key(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx,
    ngx_str_t *key);
static ngx_int_t ngx_http_apikey_source_key(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_str_t *key);
static ngx_int_t ngx_http_apikey_header_key(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_str_t *key);
static ngx_inline ngx_table_elt_t *ngx_http_apikey_next_header(
    ngx_http_request_t *r, ngx_list_part_t **part, ngx_uint_t *i);
static ngx_uint_t ngx_http_apikey_header_is(ngx_table_elt_t *h,
    ngx_str_t *name);
static ngx_int_t ngx_http_apikey_query_key(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_str_t *key);
static ngx_int_t ngx_http_apikey_cookie_key(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_str_t *key);
static ngx_int_t ngx_http_apikey_authorization_key(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_str_t *key);
static void ngx_http_apikey_check(ngx_http_request_t *r,
    ngx_http_apikey_db_t *db, ngx_http_apikey_ctx_t *ctx, ngx_str_t *key);
static ngx_int_t ngx_http_apikey_txn_begin(ngx_log_t *log,
    ngx_http_apikey_db_t *db, ngx_http_apikey_handle_t *h);
static akc_status_e ngx_http_apikey_read(ngx_http_request_t *r,
    ngx_http_apikey_db_t *db, ngx_http_apikey_handle_t *h,
    ngx_http_apikey_ctx_t *ctx, ngx_str_t *key);
static ngx_int_t ngx_http_apikey_copy_record(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx, akc_record_t *rec);
static ngx_inline void ngx_http_apikey_rebase(ngx_str_t *dst,
    akc_str_t *src, u_char *copy, akc_record_t *rec);
static ngx_str_t *ngx_http_apikey_hint(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_scopes_allowed(
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx);
static void ngx_http_apikey_set_variables(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);
static ngx_int_t ngx_http_apikey_unauthorized(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx);
static void ngx_http_apikey_log_rejection(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx);

static void ngx_http_apikey_info(ngx_http_request_t *r, const char *fmt,
    ...);
static ngx_int_t ngx_http_apikey_mask_line(ngx_http_request_t *r);
static ngx_http_apikey_handle_t *ngx_http_apikey_env_usable(ngx_log_t *log,
    ngx_http_apikey_db_t *db);
static void ngx_http_apikey_env_watch(ngx_log_t *log,
    ngx_http_apikey_env_t *env);
static void ngx_http_apikey_watch_handler(ngx_event_t *ev);
static void ngx_http_apikey_release_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_apikey_env_check(ngx_log_t *log,
    ngx_http_apikey_env_t *env);
static ngx_int_t ngx_http_apikey_env_whole(ngx_log_t *log,
    ngx_http_apikey_env_t *env, ngx_http_apikey_handle_t *h);
static ngx_int_t ngx_http_apikey_txn_check(ngx_log_t *log,
    ngx_http_apikey_env_t *env, ngx_http_apikey_handle_t *h, MDB_txn *txn);
static ngx_msec_int_t ngx_http_apikey_commit_age(
    ngx_http_apikey_handle_t *h);
static ngx_int_t ngx_http_apikey_env_open(ngx_log_t *log,
    ngx_http_apikey_env_t *env, ngx_http_apikey_secret_t *secret);
static ngx_int_t ngx_http_apikey_env_stat(ngx_log_t *log,
    ngx_http_apikey_env_t *env, ngx_file_info_t *data, ngx_file_info_t *lock);
static ngx_int_t ngx_http_apikey_handle_open(ngx_log_t *log,
    ngx_http_apikey_env_t *env, ngx_http_apikey_handle_t *h,
    ngx_http_apikey_secret_t *secret, ngx_file_info_t *lock);
static void ngx_http_apikey_txn_end(ngx_http_apikey_handle_t *h);
static void ngx_http_apikey_env_detach(ngx_http_apikey_env_t *env);
static void ngx_http_apikey_handle_close(ngx_http_apikey_handle_t *h);
static void ngx_http_apikey_env_error(ngx_log_t *log,
    ngx_http_apikey_env_t *env, ngx_uint_t level, const char *fmt, ...);
static ngx_int_t ngx_http_apikey_env_renew(ngx_log_t *log,
    ngx_http_apikey_env_t *env, ngx_http_apikey_handle_t *h);
static ngx_http_apikey_env_t *ngx_http_apikey_env_get(ngx_str_t *path);
static void ngx_http_apikey_fault_error(ngx_log_t *log,
    ngx_http_apikey_env_t *env, ngx_http_apikey_handle_t *h,
    ngx_uint_t where);
static ngx_uint_t ngx_http_apikey_env_damaged(ngx_http_apikey_env_t *env,
    ngx_file_info_t *data, ngx_file_info_t *lock);
static void ngx_http_apikey_fault(int signo, siginfo_t *si, void *uc);
static void ngx_http_apikey_assert(MDB_env *env, const char *msg);
static ngx_http_apikey_metrics_t *ngx_http_apikey_cycle_metrics(void);
static ngx_int_t ngx_http_apikey_read_stats(ngx_log_t *log,
    ngx_http_apikey_db_t *db, ngx_http_apikey_handle_t *h,
    ngx_http_apikey_db_stats_t *st);
static ngx_int_t ngx_http_apikey_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_apikey_add_variables(ngx_conf_t *cf);
static void *ngx_http_apikey_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_apikey_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_apikey_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_http_apikey_secret_t *ngx_http_apikey_load_secret(ngx_conf_t *cf,
    ngx_str_t *path);
static ngx_http_apikey_db_t *ngx_http_apikey_add_db(ngx_conf_t *cf,
    ngx_str_t *path, ngx_http_apikey_secret_t *secret);
static void ngx_http_apikey_cleanup_secret(void *data);
static ngx_int_t ngx_http_apikey_init(ngx_conf_t *cf);

static char *ngx_http_apikey(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_apikey_db(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_source(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_uint_t ngx_http_apikey_source_same(ngx_http_apikey_source_t *a,
    ngx_http_apikey_source_t *b);
static char *ngx_http_apikey_scope(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_realm(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_apikey_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

static ngx_int_t ngx_http_apikey_init_process(ngx_cycle_t *cycle);
static void ngx_http_apikey_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_apikey_commands[] = {

    { ngx_string("apikey"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_db"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_db,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, db_path),
      NULL },

    { ngx_string("apikey_secret"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_source"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_apikey_source,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_scope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_1MORE,
      ngx_http_apikey_scope,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("apikey_hide_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, hide),
      NULL },

    { ngx_string("apikey_skip_preflight"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, skip_preflight),
      NULL },

    { ngx_string("apikey_realm"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_apikey_realm,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_apikey_loc_conf_t, realm),
      NULL },

    { ngx_string("apikey_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_apikey_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_apikey_module_ctx = {
    ngx_http_apikey_add_variables,         /* preconfiguration */
    ngx_http_apikey_init,                  /* postconfiguration */

    ngx_http_apikey_create_main_conf,      /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_apikey_create_loc_conf,       /* create location configuration */
    ngx_http_apikey_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_apikey_module = {
    NGX_MODULE_V1,
    &ngx_http_apikey_module_ctx,           /* module context */
    ngx_http_apikey_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_apikey_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_apikey_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_apikey_vars[] = {

    { ngx_string("apikey_status"), NULL, ngx_http_apikey_variable,
      NGX_HTTP_APIKEY_VAR_STATUS, 0, 0 },

    { ngx_string("apikey_id"), NULL, ngx_http_apikey_variable,
      NGX_HTTP_APIKEY_VAR_ID, 0, 0 },

    { ngx_string("apikey_subject"), NULL, ngx_http_apikey_variable,
      NGX_HTTP_APIKEY_VAR_SUBJECT, 0, 0 },

    { ngx_string("apikey_scopes"), NULL, ngx_http_apikey_variable,
      NGX_HTTP_APIKEY_VAR_SCOPES, 0, 0 },

    { ngx_string("apikey_plan"), NULL, ngx_http_apikey_variable,
      NGX_HTTP_APIKEY_VAR_PLAN, 0, 0 },

    { ngx_string("apikey_expires"), NULL, ngx_http_apikey_variable,
      NGX_HTTP_APIKEY_VAR_EXPIRES, 0, 0 },

    { ngx_string("apikey_source"), NULL, ngx_http_apikey_variable,
      NGX_HTTP_APIKEY_VAR_SOURCE, 0, 0 },

    { ngx_string("apikey_hint"), NULL, ngx_http_apikey_variable,
      NGX_HTTP_APIKEY_VAR_HINT, 0, 0 },

      ngx_http_null_variable
};


static ngx_conf_enum_t  ngx_http_apikey_modes[] = {
    { ngx_string("off"), NGX_HTTP_APIKEY_OFF },
    { ngx_string("on"), NGX_HTTP_APIKEY_ON },
    { ngx_string("optional"), NGX_HTTP_APIKEY_OPTIONAL },
    { ngx_null_string, 0 }
};


/* configured paths and open environments of this process */
static ngx_http_apikey_env_t     *ngx_http_apikey_envs;
static ngx_http_apikey_handle_t  *ngx_http_apikey_handles;

/*
 * Where a fault inside LMDB jumps to, with the signal: SIGBUS when a data
 * file or lock file truncated under the map is read past its end, SIGSEGV
 * when damaged bytes in a page send LMDB's reads astray, SIGABRT when
 * LMDB finds a page inconsistent and fails one of its own assertions
 * (the message kept in ngx_http_apikey_fault_assert).  Set only around
 * LMDB calls, and only by this thread; any other fault is left to the
 * actions these were before.
 */
static sigjmp_buf *volatile       ngx_http_apikey_fault_jmp;
static volatile sig_atomic_t      ngx_http_apikey_fault_signo;
static u_char                     ngx_http_apikey_fault_assert[
                                      NGX_HTTP_APIKEY_ASSERTLEN];
static struct sigaction           ngx_http_apikey_old_sigbus;
static struct sigaction           ngx_http_apikey_old_sigsegv;
#if (NGX_LINUX)
static pid_t                      ngx_http_apikey_fault_tid;
#endif

/* checks the files of open environments once a second */
static ngx_event_t                ngx_http_apikey_watch_event;

/* ends the snapshots no request used for NGX_HTTP_APIKEY_RELEASE ms */
static ngx_event_t                ngx_http_apikey_release_event;


static ngx_int_t
ngx_http_apikey_handler(ngx_http_request_t *r)
{
    ngx_http_apikey_ctx_t       *ctx;
    ngx_http_apikey_loc_conf_t  *alcf;

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);

    if (alcf->mode == NGX_HTTP_APIKEY_OFF) {
        return NGX_DECLINED;
    }

    if (alcf->skip_preflight && ngx_http_apikey_preflight(r)) {
        return ngx_http_apikey_skip(r, alcf);
    }

    ctx = ngx_http_apikey_lookup(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* scopes are this location's: a valid key forbidden elsewhere is valid */

    if (ctx->status == AKC_STATUS_FORBIDDEN) {
        ctx->status = AKC_STATUS_VALID;
    }

    if (ctx->status == AKC_STATUS_VALID
        && ngx_http_apikey_scopes_allowed(alcf, ctx) != NGX_OK)
    {
        ctx->status = AKC_STATUS_FORBIDDEN;
    }

    ngx_http_apikey_set_variables(r, ctx);

    ngx_http_apikey_metrics_request(alcf->metrics, ctx->status);

    if (ctx->status != AKC_STATUS_VALID) {
        ngx_http_apikey_log_rejection(r, ctx);
    }

    /*
     * hidden now, whatever the outcome: auth_request, which runs after
     * this handler, and an error_page that proxies a rejection make
     * subrequests and redirects that must not carry the key either
     */

    if (alcf->hide && ngx_http_apikey_hide_all(r, alcf, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (alcf->mode == NGX_HTTP_APIKEY_OPTIONAL) {
        return NGX_DECLINED;
    }

    switch (ctx->status) {

    case AKC_STATUS_VALID:
        return NGX_OK;

    case AKC_STATUS_FORBIDDEN:
        return NGX_HTTP_FORBIDDEN;

    case AKC_STATUS_ERROR:
        return NGX_HTTP_SERVICE_UNAVAILABLE;

    default:
        return ngx_http_apikey_unauthorized(r, alcf, ctx);
    }
}


static ngx_uint_t
ngx_http_apikey_preflight(ngx_http_request_t *r)
{
    ngx_uint_t        i, found;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    /* CORS: OPTIONS with Origin and Access-Control-Request-Method */

    if (r->method != NGX_HTTP_OPTIONS) {
        return 0;
    }

    found = 0;
    part = NULL;

    while ((h = ngx_http_apikey_next_header(r, &part, &i)) != NULL) {

        if (h->value.len == 0) {
            continue;
        }

        if (ngx_http_apikey_header_named(h, "origin")) {
            found |= 1;

        } else if (ngx_http_apikey_header_named(
                       h, "access-control-request-method"))
        {
            found |= 2;
        }
    }

    return found == 3;
}


static ngx_int_t
ngx_http_apikey_skip(ngx_http_request_t *r, ngx_http_apikey_loc_conf_t *alcf)
{
    ngx_http_apikey_ctx_t  *ctx;

    /*
     * a preflight passes without a key and without a lookup: an outcome
     * with no status, which the variables then reuse
     */

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);

    } else {
        ngx_memzero(ctx, sizeof(ngx_http_apikey_ctx_t));
    }

    ctx->db = alcf->db;
    ctx->sources = alcf->sources;
    ctx->preflight = 1;

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_apikey_hide_handler(ngx_http_request_t *r)
{
    ngx_http_apikey_ctx_t       *ctx;
    ngx_http_apikey_loc_conf_t  *alcf;

    /*
     * Before the content (the precontent phase, after every access
     * handler whatever "satisfy" decided): the key leaves every source
     * it was sent in, once the variables have their outcome.
     */

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);

    if (!alcf->hide || alcf->mode == NGX_HTTP_APIKEY_OFF || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_apikey_get_ctx(r);

    if (ctx == NULL || !ctx->preflight) {
        ctx = ngx_http_apikey_lookup(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_apikey_hide_all(r, alcf, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_apikey_hide_all(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx)
{
    ngx_uint_t                 i;
    ngx_pool_cleanup_t        *cln;
    ngx_http_apikey_source_t  *src;

    /*
     * the main request only: a subrequest shares its headers with it
     * (the first part of the list copied, the rest the same), and gets
     * them as the main request had them when it was made
     */

    if (ctx->hidden || r != r->main) {
        return NGX_OK;
    }

    src = alcf->sources->elts;

    for (i = 0; i < alcf->sources->nelts; i++) {
        if (ngx_http_apikey_hide(r, &src[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /* found again after an internal redirect: see ngx_http_apikey_get_ctx() */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_apikey_hidden_marker;
    cln->data = ctx;

    ctx->hidden = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_hide(ngx_http_request_t *r, ngx_http_apikey_source_t *src)
{
    akc_str_t         k;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (src->type == NGX_HTTP_APIKEY_SOURCE_QUERY) {
        return ngx_http_apikey_hide_query(r, src);
    }

    /* headers: every copy, Authorization only with the scheme, cookies */

again:

    part = NULL;

    while ((h = ngx_http_apikey_next_header(r, &part, &i)) != NULL) {

        switch (src->type) {

        case NGX_HTTP_APIKEY_SOURCE_HEADER:
            if (!ngx_http_apikey_header_is(h, &src->name)) {
                continue;
            }

            break;

        case NGX_HTTP_APIKEY_SOURCE_AUTH:
            if (!ngx_http_apikey_header_named(h, "authorization")
                || akc_auth_parse(h->value.data, h->value.len,
                                  (const char *) src->name.data,
                                  src->name.len, &k)
                   != AKC_OK)
            {
                continue;
            }

            if (r->headers_in.authorization == h) {
                r->headers_in.authorization = NULL;
            }

            break;

        default: /* NGX_HTTP_APIKEY_SOURCE_COOKIE */
            if (!ngx_http_apikey_header_named(h, "cookie")) {
                continue;
            }

            switch (ngx_http_apikey_hide_cookie(r, src, h)) {
            case NGX_OK:
                continue;
            case NGX_DECLINED:
                /* no cookie left in it: the header goes */
                break;
            default:
                return NGX_ERROR;
            }

            ngx_http_apikey_unlink_cookie(r, h);
        }

        if (ngx_http_apikey_remove_header(r, part, i) != NGX_OK) {
            return NGX_ERROR;
        }

        goto again;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_remove_header(ngx_http_request_t *r, ngx_list_part_t *part,
    ngx_uint_t i)
{
    ngx_list_t       *l;
    ngx_list_part_t  *prev, *tail;

    /*
     * Element i leaves the list and no element moves: r->headers_in
     * points to elements (and since nginx 1.23 elements point to each
     * other through next).  No part is left empty, since iterators step
     * into a next part without looking at its count; and l->nalloc stays
     * the number of slots the last part may grow into, which
     * ngx_list_push() trusts.
     */

    l = &r->headers_in.headers;

    if (part->nelts == 1) {

        if (part == &l->part) {
            if (part->next == NULL) {
                part->nelts = 0;
                return NGX_OK;
            }

            tail = part->next;
            *part = *tail;

            if (l->last == tail) {
                l->last = part;
            }

            return NGX_OK;
        }

        for (prev = &l->part; prev->next != part; prev = prev->next) {
            /* void */
        }

        prev->next = part->next;

        if (l->last == part) {
            l->last = prev;
            l->nalloc = prev->nelts;
        }

        return NGX_OK;
    }

    if (i == part->nelts - 1) {
        part->nelts--;
        return NGX_OK;
    }

    if (i == 0) {
        part->elts = (char *) part->elts + l->size;
        part->nelts--;

        if (l->last == part) {
            l->nalloc--;
        }

        return NGX_OK;
    }

    tail = ngx_palloc(r->pool, sizeof(ngx_list_part_t));
    if (tail == NULL) {
        return NGX_ERROR;
    }

    tail->elts = (char *) part->elts + (i + 1) * l->size;
    tail->nelts = part->nelts - i - 1;
    tail->next = part->next;

    part->nelts = i;
    part->next = tail;

    if (l->last == part) {
        l->last = tail;
        l->nalloc -= i + 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_hide_cookie(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_table_elt_t *h)
{
    size_t        pos, len, i;
    u_char       *p;
    akc_field_t   f;

    /* NGX_OK: kept (maybe rewritten); NGX_DECLINED: no cookie is left */

    pos = 0;

    if (!akc_cookie_next(h->value.data, h->value.len, &pos,
                         (const char *) src->name.data, src->name.len, &f))
    {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, h->value.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    len = akc_field_remove(h->value.data, h->value.len, &f, ';', p);

    pos = f.start;

    while (akc_cookie_next(p, len, &pos, (const char *) src->name.data,
                           src->name.len, &f))
    {
        len = akc_field_remove(p, len, &f, ';', p);
        pos = f.start;
    }

    for (i = 0; i < len; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != ';') {
            h->value.data = p;
            h->value.len = len;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


static void
ngx_http_apikey_unlink_cookie(ngx_http_request_t *r, ngx_table_elt_t *h)
{
#if (nginx_version >= 1023000)

    ngx_table_elt_t  **hp;

    /* the chain $cookie_ and $http_cookie read */

    for (hp = &r->headers_in.cookie; *hp; hp = &(*hp)->next) {
        if (*hp == h) {
            *hp = h->next;
            return;
        }
    }

#else

    ngx_uint_t         i;
    ngx_table_elt_t  **cookies;

    cookies = r->headers_in.cookies.elts;

    for (i = 0; i < r->headers_in.cookies.nelts; i++) {
        if (cookies[i] == h) {
            ngx_memmove(&cookies[i], &cookies[i + 1],
                        (r->headers_in.cookies.nelts - i - 1)
                        * sizeof(ngx_table_elt_t *));
            r->headers_in.cookies.nelts--;
            return;
        }
    }

#endif
}


static ngx_int_t
ngx_http_apikey_hide_query(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src)
{
    u_char     *p, *q;
    size_t      len;
    ngx_str_t   args;

    /* $args, which proxy_pass with a URI and $args send */

    if (ngx_http_apikey_strip_args(r, &r->args, &src->name) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * $request_uri, which proxy_pass without a URI sends as it is, and
     * "proxy_pass http://up$request_uri" too
     */

    q = ngx_strlchr(r->unparsed_uri.data,
                    r->unparsed_uri.data + r->unparsed_uri.len, '?');
    if (q == NULL) {
        return NGX_OK;
    }

    args.data = q + 1;
    args.len = r->unparsed_uri.data + r->unparsed_uri.len - (q + 1);

    if (ngx_http_apikey_strip_args(r, &args, &src->name) != NGX_OK) {
        return NGX_ERROR;
    }

    if (args.data == q + 1) {
        return NGX_OK;
    }

    len = q - r->unparsed_uri.data;

    p = ngx_pnalloc(r->pool, len + 1 + args.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, r->unparsed_uri.data, len);

    /* no "?" left alone */

    if (args.len) {
        p[len++] = '?';
        len = ngx_cpymem(p + len, args.data, args.len) - p;
    }

    r->unparsed_uri.data = p;
    r->unparsed_uri.len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_strip_args(ngx_http_request_t *r, ngx_str_t *args,
    ngx_str_t *name)
{
    size_t        pos, len;
    u_char       *p;
    akc_field_t   f;

    /* every argument of that name, the others kept byte for byte */

    pos = 0;

    if (!akc_query_next(args->data, args->len, &pos, (const char *) name->data,
                        name->len, &f))
    {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, args->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    len = akc_field_remove(args->data, args->len, &f, '&', p);

    pos = f.start;

    while (akc_query_next(p, len, &pos, (const char *) name->data,
                          name->len, &f))
    {
        len = akc_field_remove(p, len, &f, '&', p);
        pos = f.start;
    }

    args->data = p;
    args->len = len;

    return NGX_OK;
}


static ngx_http_apikey_ctx_t *
ngx_http_apikey_lookup(ngx_http_request_t *r)
{
    ngx_str_t                    key;
    ngx_uint_t                   hidden;
    akc_status_e                 status;
    ngx_http_apikey_ctx_t       *ctx;
    ngx_http_apikey_source_t    *source;
    ngx_http_apikey_loc_conf_t  *alcf;

    /*
     * at most one lookup per request: the outcome lives in the context;
     * but a variable may have been evaluated with another configuration
     * (the server rewrite phase, a location left by "rewrite ... last"),
     * and an outcome from another database or sources must not be reused
     */

    alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);

    ctx = ngx_http_apikey_get_ctx(r);

    hidden = 0;

    if (ctx != NULL) {
        if (ctx->db == alcf->db && ctx->sources == alcf->sources) {
            return ctx;
        }

        hidden = ctx->hidden;
        status = ctx->status;
        source = ctx->source;
        key = ctx->key;

        ngx_memzero(ctx, sizeof(ngx_http_apikey_ctx_t));

    } else {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);
    }

    ctx->db = alcf->db;
    ctx->sources = alcf->sources;

    if (alcf->db == NULL) {
        ctx->status = AKC_STATUS_NONE;
        return ctx;
    }

    if (hidden) {

        /*
         * the key has left its source already in this request (an
         * internal redirect, another location's sources): the key found
         * then is the key, checked against this location's database
         */

        ctx->hidden = 1;
        ctx->source = source;

        if (key.data == NULL) {
            ctx->status = status;
            return ctx;
        }

        ctx->key = key;
        ngx_http_apikey_check(r, alcf->db, ctx, &ctx->key);

        return ctx;
    }

    if (ngx_http_apikey_find_key(r, alcf, ctx, &key) != NGX_OK) {
        return ctx;
    }

    ctx->key = key;

    ngx_http_apikey_check(r, alcf->db, ctx, &key);

    return ctx;
}


static ngx_http_apikey_ctx_t *
ngx_http_apikey_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_apikey_ctx_t  *ctx;

    /*
     * an internal redirect (error_page, try_files) clears the contexts;
     * one whose key was hidden is found again through the marker that
     * ngx_http_apikey_hide_all() left among the pool's cleanups
     */

    ctx = ngx_http_get_module_ctx(r, ngx_http_apikey_module);

    if (ctx != NULL || !r->internal) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_apikey_hidden_marker) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_apikey_module);
            return ctx;
        }
    }

    return NULL;
}


static void
ngx_http_apikey_hidden_marker(void *data)
{
    /* void */
}


static ngx_int_t
ngx_http_apikey_find_key(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx,
    ngx_str_t *key)
{
    ngx_int_t                  rc;
    ngx_str_t                  value;
    ngx_uint_t                 i, found;
    ngx_http_apikey_source_t  *src;

    /*
     * The first source present wins; but every source is looked at: a
     * source present twice, or another source with a different value,
     * makes the request malformed, so that nginx and an upstream that
     * reads another copy never disagree about who called.
     */

    src = alcf->sources->elts;
    found = 0;

    for (i = 0; i < alcf->sources->nelts; i++) {

        rc = ngx_http_apikey_source_key(r, &src[i], &value);

        if (rc == NGX_DECLINED) {
            continue;
        }

        if (!found) {
            ctx->source = &src[i];
        }

        if (rc != NGX_OK) {
            ctx->status = AKC_STATUS_MALFORMED;
            return NGX_DECLINED;
        }

        if (!found++) {
            *key = value;
            continue;
        }

        if (value.len != key->len
            || ngx_memcmp(value.data, key->data, key->len) != 0)
        {
            ngx_http_apikey_info(r, "apikey: \"%V\" and \"%V\" carry "
                                 "different keys", &ctx->source->text,
                                 &src[i].text);
            ctx->status = AKC_STATUS_MALFORMED;
            return NGX_DECLINED;
        }
    }

    if (!found) {
        ctx->status = AKC_STATUS_MISSING;
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_source_key(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_str_t *key)
{
    /* NGX_OK and the key, NGX_DECLINED: absent, NGX_ERROR: malformed */

    switch (src->type) {

    case NGX_HTTP_APIKEY_SOURCE_HEADER:
        return ngx_http_apikey_header_key(r, src, key);

    case NGX_HTTP_APIKEY_SOURCE_AUTH:
        return ngx_http_apikey_authorization_key(r, src, key);

    case NGX_HTTP_APIKEY_SOURCE_QUERY:
        return ngx_http_apikey_query_key(r, src, key);

    default: /* NGX_HTTP_APIKEY_SOURCE_COOKIE */
        return ngx_http_apikey_cookie_key(r, src, key);
    }
}


static ngx_int_t
ngx_http_apikey_header_key(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_str_t *key)
{
    ngx_uint_t        i, found;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    found = 0;
    part = NULL;

    while ((h = ngx_http_apikey_next_header(r, &part, &i)) != NULL) {

        if (!ngx_http_apikey_header_is(h, &src->name)) {
            continue;
        }

        /*
         * two copies of the key header: an upstream that reads the last
         * one and nginx the first would disagree, so reject the request
         */

        if (found++) {
            ngx_http_apikey_info(r, "apikey: duplicate \"%V\" header",
                                 &h->key);
            return NGX_ERROR;
        }

        *key = h->value;
    }

    if (!found) {
        return NGX_DECLINED;
    }

    /*
     * nginx keeps a tab around a value (optional whitespace, RFC 9110),
     * which akc_auth_parse() trims from Authorization: trim it here too
     */

    if (key->len == 0
        || (key->data[0] > ' ' && key->data[key->len - 1] > ' '))
    {
        return NGX_OK;
    }

    while (key->len && (key->data[0] == ' ' || key->data[0] == '\t')) {
        key->data++;
        key->len--;
    }

    while (key->len
           && (key->data[key->len - 1] == ' '
               || key->data[key->len - 1] == '\t'))
    {
        key->len--;
    }

    return NGX_OK;
}


static ngx_inline ngx_table_elt_t *
ngx_http_apikey_next_header(ngx_http_request_t *r, ngx_list_part_t **part,
    ngx_uint_t *i)
{
    ngx_table_elt_t  *h;

    /*
     * the request's headers one by one, *part NULL to begin; *part and
     * *i then say where the one returned is, for removing it
     */

    if (*part == NULL) {
        *part = &r->headers_in.headers.part;
        *i = 0;

    } else {
        (*i)++;
    }

    while (*i >= (*part)->nelts) {
        if ((*part)->next == NULL) {
            return NULL;
        }

        *part = (*part)->next;
        *i = 0;
    }

    h = (*part)->elts;

    return &h[*i];
}


static ngx_uint_t
ngx_http_apikey_header_is(ngx_table_elt_t *h, ngx_str_t *name)
{
    ngx_uint_t  i;
    u_char      c;

    /*
     * name is lowercase; "_" and "-" are one, as in $http_x_api_key and
     * in the CGI-style names of fastcgi, uwsgi and scgi: with
     * underscores_in_headers on, X_API_Key is a copy of X-API-Key
     */

    if (h->key.len != name->len) {
        return 0;
    }

    if (ngx_strncmp(h->lowcase_key, name->data, name->len) == 0) {
        return 1;
    }

    for (i = 0; i < name->len; i++) {
        c = h->lowcase_key[i];

        if (c != name->data[i]
            && !((c == '_' || c == '-')
                 && (name->data[i] == '_' || name->data[i] == '-')))
        {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_apikey_authorization_key(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_str_t *key)
{
    akc_str_t         k;
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h == NULL) {
        return NGX_DECLINED;
    }

    /* another scheme, such as Basic, is not ours */

    if (akc_auth_parse(h->value.data, h->value.len,
                       (const char *) src->name.data, src->name.len, &k)
        != AKC_OK)
    {
        return NGX_DECLINED;
    }

    key->data = (u_char *) k.data;
    key->len = k.len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_query_key(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_str_t *key)
{
    size_t        pos, n;
    u_char       *p;
    ngx_uint_t    found;
    akc_field_t   f, first;

    found = 0;
    pos = 0;

    while (akc_query_next(r->args.data, r->args.len, &pos,
                          (const char *) src->name.data, src->name.len, &f))
    {
        if (found++) {
            ngx_http_apikey_info(r, "apikey: duplicate \"%V\" argument",
                                 &src->name);
            return NGX_ERROR;
        }

        first = f;
    }

    if (!found) {
        return NGX_DECLINED;
    }

    key->data = (u_char *) first.value.data;
    key->len = first.value.len;

    if (ngx_strlchr(key->data, key->data + key->len, '%') == NULL) {
        return NGX_OK;
    }

    /* percent-decoded: "%2B" is "+"; an invalid escape is malformed */

    p = ngx_pnalloc(r->pool, key->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (akc_pct_decode(key->data, key->len, p, &n) != AKC_OK) {
        return NGX_ERROR;
    }

    key->data = p;
    key->len = n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_cookie_key(ngx_http_request_t *r,
    ngx_http_apikey_source_t *src, ngx_str_t *key)
{
    size_t            pos;
    ngx_uint_t        i, found;
    akc_field_t       f;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    /* every Cookie header: a cookie in two of them is a duplicate too */

    found = 0;
    part = NULL;

    while ((h = ngx_http_apikey_next_header(r, &part, &i)) != NULL) {

        if (!ngx_http_apikey_header_named(h, "cookie")) {
            continue;
        }

        pos = 0;

        while (akc_cookie_next(h->value.data, h->value.len, &pos,
                               (const char *) src->name.data, src->name.len,
                               &f))
        {
            if (found++) {
                ngx_http_apikey_info(r, "apikey: duplicate \"%V\" cookie",
                                     &src->name);
                return NGX_ERROR;
            }

            key->data = (u_char *) f.value.data;
            key->len = f.value.len;
        }
    }

    return found ? NGX_OK : NGX_DECLINED;
}


static void
ngx_http_apikey_check(ngx_http_request_t *r, ngx_http_apikey_db_t *db,
    ngx_http_apikey_ctx_t *ctx, ngx_str_t *key)
{
    sigjmp_buf                    jb;
    akc_key_kind_e                kind;
    ngx_http_apikey_handle_t     *h;
    ngx_http_apikey_main_conf_t  *amcf;

    /* the shape and checksum are checked without touching the database */

    kind = akc_key_classify(key->data, key->len);

    if (kind == AKC_KEY_INVALID || kind == AKC_KEY_BAD_CHECKSUM) {
        ctx->status = AKC_STATUS_MALFORMED;
        return;
    }

    h = ngx_http_apikey_env_usable(r->connection->log, db);
    if (h == NULL) {
        ctx->status = AKC_STATUS_ERROR;
        return;
    }

    amcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    ngx_http_apikey_metrics_lookup(amcf->metrics);

    if (sigsetjmp(jb, 0) != 0) {

        /*
         * a file truncated under the map, or damaged bytes in a page:
         * fail closed, never crash
         */

        ngx_http_apikey_fault_jmp = NULL;

        ngx_http_apikey_fault_error(r->connection->log, db->env, h,
                                    NGX_HTTP_APIKEY_DAMAGED_READ);

        if (db->env->handle == h) {
            h->broken = 1;
            ngx_http_apikey_env_detach(db->env);
            db->env->next_open = ngx_time() + 1;
        }

        ngx_http_apikey_metrics_lookup_error(amcf->metrics);

        ctx->status = AKC_STATUS_ERROR;
        return;
    }

    ngx_http_apikey_fault_jmp = &jb;

    ctx->status = ngx_http_apikey_read(r, db, h, ctx, key);

    ngx_http_apikey_fault_jmp = NULL;

    if (ctx->status == AKC_STATUS_ERROR) {
        ngx_http_apikey_metrics_lookup_error(amcf->metrics);
    }
}


/*
 * renews the worker's read transaction and, for a location with another
 * secret than the one checked last, checks the database's fingerprint
 * against it; runs inside the fault guard of its caller
 */

static ngx_int_t
ngx_http_apikey_txn_begin(ngx_log_t *log, ngx_http_apikey_db_t *db,
    ngx_http_apikey_handle_t *h)
{
    int  rc;

    if (ngx_http_apikey_env_renew(log, db->env, h) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_memcmp(h->checked, db->secret->fingerprint, AKC_FINGERPRINT_LEN)
        == 0)
    {
        return NGX_OK;
    }

    rc = akc_meta_check(h->txn, &h->dbs, &db->secret->secret);

    if (rc != AKC_OK) {
        ngx_http_apikey_txn_end(h);
        ngx_http_apikey_env_error(log, db->env, NGX_LOG_CRIT,
                                  "apikey database \"%s\": %s with "
                                  "secret \"%V\"", db->env->path,
                                  akc_meta_strerror(rc), &db->secret->path);
        return NGX_ERROR;
    }

    ngx_memcpy(h->checked, db->secret->fingerprint, AKC_FINGERPRINT_LEN);

    return NGX_OK;
}


static akc_status_e
ngx_http_apikey_read(ngx_http_request_t *r, ngx_http_apikey_db_t *db,
    ngx_http_apikey_handle_t *h, ngx_http_apikey_ctx_t *ctx, ngx_str_t *key)
{
    int            rc, mdb_rc;
    ngx_log_t     *log;
    akc_record_t   rec;
    akc_status_e   status;

    /* inside the fault guard of ngx_http_apikey_check() */

    log = r->connection->log;

    if (ngx_http_apikey_txn_begin(log, db, h) != NGX_OK) {
        return AKC_STATUS_ERROR;
    }

    status = akc_lookup_key(h->txn, &h->dbs, &db->secret->secret,
                            key->data, key->len, ngx_time(), &rec, &mdb_rc);

    if (status == AKC_STATUS_ERROR) {
        ngx_http_apikey_txn_end(h);
        ngx_http_apikey_env_error(log, db->env, NGX_LOG_CRIT,
                                  "apikey database \"%s\": lookup failed "
                                  "(%d: %s)", db->env->path, mdb_rc,
                                  mdb_strerror(mdb_rc));
        return AKC_STATUS_ERROR;
    }

    if (status == AKC_STATUS_UNKNOWN) {

        /* its hint is made only if a log line or variable asks for it */
        ctx->unknown = *key;

        return status;
    }

    /*
     * the record points into the map: it is copied, and the transaction
     * is left renewed for the next request (ngx_http_apikey_env_renew())
     */

    rc = ngx_http_apikey_copy_record(r, ctx, &rec);

    return (rc == NGX_OK) ? status : AKC_STATUS_ERROR;
}


static ngx_int_t
ngx_http_apikey_copy_record(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx, akc_record_t *rec)
{
    u_char  *p;

    /* one copy of the bytes every string of the record lies in */

    p = ngx_pnalloc(r->pool, rec->strings.len
                             + (rec->expires ? AKC_TIME_LEN + 1 : 0));
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, rec->strings.data, rec->strings.len);

    ngx_http_apikey_rebase(&ctx->id, &rec->id, p, rec);
    ngx_http_apikey_rebase(&ctx->subject, &rec->subject, p, rec);
    ngx_http_apikey_rebase(&ctx->scopes, &rec->scopes, p, rec);
    ngx_http_apikey_rebase(&ctx->plan, &rec->plan, p, rec);
    ngx_http_apikey_rebase(&ctx->hint, &rec->hint, p, rec);

    if (rec->expires) {
        ctx->expires.data = p + rec->strings.len;
        ctx->expires.len = akc_time_format(rec->expires,
                                           (char *) ctx->expires.data);
    }

    return NGX_OK;
}


static ngx_inline void
ngx_http_apikey_rebase(ngx_str_t *dst, akc_str_t *src, u_char *copy,
    akc_record_t *rec)
{
    dst->len = src->len;
    dst->data = copy + (src->data - rec->strings.data);
}


static ngx_str_t *
ngx_http_apikey_hint(ngx_http_request_t *r, ngx_http_apikey_ctx_t *ctx)
{
    char  hint[AKC_HINT_MAX_LEN + 1];

    if (ctx->hint.len || ctx->unknown.len == 0) {
        return &ctx->hint;
    }

    ctx->hint.len = akc_key_hint(ctx->unknown.data, ctx->unknown.len, hint);

    ctx->hint.data = ngx_pnalloc(r->pool, ctx->hint.len);
    if (ctx->hint.data == NULL) {
        ctx->hint.len = 0;
        return &ctx->hint;
    }

    ngx_memcpy(ctx->hint.data, hint, ctx->hint.len);

    return &ctx->hint;
}


static ngx_int_t
ngx_http_apikey_scopes_allowed(ngx_http_apikey_loc_conf_t *alcf,
    ngx_http_apikey_ctx_t *ctx)
{
    ngx_str_t   *scope;
    akc_str_t    held;
    ngx_uint_t   i;

    if (alcf->scopes == NULL) {
        return NGX_OK;
    }

    held.len = ctx->scopes.len;
    held.data = (const char *) ctx->scopes.data;

    scope = alcf->scopes->elts;

    for (i = 0; i < alcf->scopes->nelts; i++) {
        if (!akc_scopes_contain(&held, (const char *) scope[i].data,
                                scope[i].len))
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


static void
ngx_http_apikey_set_variables(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx)
{
    const char                   *name;
    ngx_uint_t                    i;
    ngx_http_variable_value_t    *vv;
    ngx_http_apikey_main_conf_t  *amcf;

    /*
     * The status is set always, so that it is right after an internal
     * redirect (error_page), as auth_request does; any other variable
     * already evaluated, maybe with another location's configuration
     * (the server rewrite phase, "rewrite ... last"), is made again from
     * the outcome this decision was made on.
     */

    amcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    name = akc_status_name(ctx->status);

    vv = &r->variables[amcf->index[NGX_HTTP_APIKEY_VAR_STATUS]];

    vv->data = (u_char *) name;
    vv->len = ngx_strlen(name);
    vv->valid = 1;
    vv->no_cacheable = 0;
    vv->not_found = (vv->len == 0);

    for (i = NGX_HTTP_APIKEY_VAR_STATUS + 1; i < NGX_HTTP_APIKEY_NVARS; i++) {
        vv = &r->variables[amcf->index[i]];

        if (vv->valid || vv->not_found) {
            vv->valid = 0;
            vv->not_found = 0;

            (void) ngx_http_apikey_variable(r, vv, i);
        }
    }
}


static ngx_int_t
ngx_http_apikey_unauthorized(ngx_http_request_t *r,
    ngx_http_apikey_loc_conf_t *alcf, ngx_http_apikey_ctx_t *ctx)
{
    size_t            len;
    u_char           *p;
    ngx_str_t         scheme;
    ngx_table_elt_t  *h;

    /*
     * challenge with the scheme the client used in Authorization, else
     * with "ApiKey"; the response never depends on whether a key exists
     */

    if (ctx->source && ctx->source->type == NGX_HTTP_APIKEY_SOURCE_AUTH) {
        scheme = ctx->source->name;

    } else {
        ngx_str_set(&scheme, "ApiKey");
    }

    len = scheme.len + sizeof(" realm=\"\"") - 1 + alcf->realm.len;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value.data = p;
    h->value.len = len;

    p = ngx_copy(p, scheme.data, scheme.len);
    p = ngx_cpymem(p, " realm=\"", sizeof(" realm=\"") - 1);
    p = ngx_copy(p, alcf->realm.data, alcf->realm.len);
    *p = '"';

    r->headers_out.www_authenticate = h;

    return NGX_HTTP_UNAUTHORIZED;
}


static void
ngx_http_apikey_log_rejection(ngx_http_request_t *r,
    ngx_http_apikey_ctx_t *ctx)
{
    /* client mistakes go to "info"; never a key, at most its hint */

    switch (ctx->status) {

    case AKC_STATUS_ERROR:
        /* already logged where it happened */
        return;

    case AKC_STATUS_MISSING:
        ngx_http_apikey_info(r, "apikey: no key in request");
        return;

    case AKC_STATUS_MALFORMED:
        ngx_http_apikey_info(r, "apikey: malformed key in \"%V\"",
                             &ctx->source->text);
        return;

    default:
        if (r->connection->log->log_level >= NGX_LOG_INFO) {
            ngx_http_apikey_info(r, "apikey: key \"%V\" rejected: %s",
                                 ngx_http_apikey_hint(r, ctx),
                                 akc_status_name(ctx->status));
        }
    }
}


static void
ngx_http_apikey_info(ngx_http_request_t *r, const char *fmt, ...)
{
    u_char     *p;
    va_list     args;
    ngx_str_t   line;
    u_char      buf[NGX_MAX_ERROR_STR];

    if (r->connection->log->log_level < NGX_LOG_INFO) {
        return;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    /*
     * nginx ends a line about a request with its request line, where a
     * key sent in the query string would be: the line is logged with a
     * copy of the request line that holds no key
     */

    line = r->request_line;

    if (ngx_http_apikey_mask_line(r) != NGX_OK) {
        r->request_line.len = 0;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "%*s", p - buf, buf);

    r->request_line = line;
}


static ngx_int_t
ngx_http_apikey_mask_line(ngx_http_request_t *r)
{
    u_char                      *q, *last;
    ngx_str_t                    line, query;
    ngx_uint_t                   i;
    ngx_http_apikey_source_t    *src;
    ngx_http_apikey_loc_conf_t  *alcf;

    /* the arguments of query sources out, and any generated key masked */

    line = r->request_line;

    r->request_line.data = ngx_pnalloc(r->pool, line.len);
    if (r->request_line.data == NULL) {
        return NGX_ERROR;
    }

    r->request_line.len = line.len;
    ngx_memcpy(r->request_line.data, line.data, line.len);

    q = ngx_strlchr(line.data, line.data + line.len, '?');

    if (q != NULL) {
        last = line.data + line.len;

        /* "GET /uri?args HTTP/1.1", or "GET /uri?args" in HTTP/0.9 */

        while (last > q && *(last - 1) != ' ') {
            last--;
        }

        last = (last == q) ? line.data + line.len : last - 1;

        query.data = q + 1;
        query.len = last - (q + 1);

        alcf = ngx_http_get_module_loc_conf(r, ngx_http_apikey_module);
        src = alcf->sources->elts;

        for (i = 0; i < alcf->sources->nelts; i++) {
            if (src[i].type == NGX_HTTP_APIKEY_SOURCE_QUERY
                && ngx_http_apikey_strip_args(r, &query, &src[i].name)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        r->request_line.len = ngx_sprintf(r->request_line.data, "%*s%V%*s",
                                          q + 1 - line.data, line.data,
                                          &query,
                                          line.data + line.len - last, last)
                              - r->request_line.data;
    }

    (void) akc_mask_keys(r->request_line.data, r->request_line.len);

    return NGX_OK;
}


static ngx_http_apikey_handle_t *
ngx_http_apikey_env_usable(ngx_log_t *log, ngx_http_apikey_db_t *db)
{
    time_t                  now;
    ngx_http_apikey_env_t  *env;

    env = db->env;
    now = ngx_time();

    ngx_http_apikey_env_watch(log, env);

    if (env->handle != NULL) {
        return env->handle;
    }

    /* fail closed, and retry at most about once a second */

    if (now < env->next_open) {
        return NULL;
    }

    env->next_open = now + 1;

    if (ngx_http_apikey_env_open(log, env, db->secret) != NGX_OK) {
        return NULL;
    }

    return env->handle;
}


static void
ngx_http_apikey_env_watch(ngx_log_t *log, ngx_http_apikey_env_t *env)
{
    time_t     now;
    ngx_int_t  rc;

    now = ngx_time();

    if (env->handle == NULL
        || (!env->handle->broken && now < env->next_check))
    {
        return;
    }

    /* at most once a second: are the files still those opened? */

    env->next_check = now + 1;

    rc = ngx_http_apikey_env_check(log, env);

    if (rc != NGX_OK) {
        ngx_http_apikey_env_detach(env);

        /* a directory swapped in whole is opened at once */
        env->next_open = (rc == NGX_DECLINED) ? 0 : now + 1;
    }
}


static void
ngx_http_apikey_watch_handler(ngx_event_t *ev)
{
    ngx_http_apikey_env_t  *env;

    /*
     * idle workers too let go of files that are no longer whole: LMDB
     * makes a lock file right again only when no process has it open
     */

    for (env = ngx_http_apikey_envs; env; env = env->next) {
        ngx_http_apikey_env_watch(ev->log, env);
    }

    if (!ngx_exiting) {
        ngx_add_timer(ev, 1000);
    }
}


static void
ngx_http_apikey_release_handler(ngx_event_t *ev)
{
    ngx_uint_t                           live;
    sigjmp_buf                           jb;
    ngx_http_apikey_env_t               *env;
    ngx_http_apikey_handle_t            *h;
    ngx_http_apikey_handle_t *volatile   cur;

    /*
     * a read transaction left renewed keeps the pages of its snapshot
     * from being reused: a worker between requests would otherwise pin
     * them while a burst of writes grows the data file
     */

    cur = NULL;

    if (sigsetjmp(jb, 0) == 0) {
        ngx_http_apikey_fault_jmp = &jb;

        for (h = ngx_http_apikey_handles; h; h = h->next) {
            cur = h;

            if (!h->used) {
                ngx_http_apikey_txn_end(h);
            }

            h->used = 0;
        }

        ngx_http_apikey_fault_jmp = NULL;

    } else {

        /* the reset faulted (a lock file cut short): as a read would */

        ngx_http_apikey_fault_jmp = NULL;

        h = cur;
        h->live = 0;
        h->broken = 1;

        for (env = ngx_http_apikey_envs; env; env = env->next) {
            if (env->handle == h) {
                ngx_http_apikey_fault_error(ev->log, env, h,
                                            NGX_HTTP_APIKEY_DAMAGED_READ);
                ngx_http_apikey_env_detach(env);
                env->next_open = ngx_time() + 1;
            }
        }
    }

    /*
     * armed again by the next renew once every snapshot has ended; an
     * exiting worker, which may still serve long requests, goes on too
     * (the timer is cancelable)
     */

    live = 0;

    for (h = ngx_http_apikey_handles; h; h = h->next) {
        live |= h->live;
    }

    if (live) {
        ngx_add_timer(ev, NGX_HTTP_APIKEY_RELEASE);
    }
}


static ngx_int_t
ngx_http_apikey_env_check(ngx_log_t *log, ngx_http_apikey_env_t *env)
{
    ngx_uint_t                 same_data, same_lock;
    ngx_file_info_t            data, lock;
    ngx_http_apikey_handle_t  *h;

    /*
     * NGX_OK: the path still names the files opened, and they are whole;
     * NGX_DECLINED: a new directory (both files new), to be opened now;
     * NGX_ERROR: not usable, logged, retried about a second later
     */

    h = env->handle;

    if (h->broken) {
        return NGX_DECLINED;
    }

    if (ngx_http_apikey_env_stat(log, env, &data, &lock) != NGX_OK) {
        return NGX_ERROR;
    }

    same_data = (data.st_ino == h->data_ino && data.st_dev == h->data_dev);
    same_lock = (lock.st_ino == h->lock_ino && lock.st_dev == h->lock_dev);

    if (!same_data && !same_lock) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "apikey database \"%s\" was replaced, reopening",
                      env->path);
        return NGX_DECLINED;
    }

    if (same_lock && lock.st_size < h->lock_size) {
        ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                                  "apikey database \"%s\" is not usable: "
                                  "\"%s\" was truncated while in use",
                                  env->path, env->lock_path);
        return NGX_ERROR;
    }

    /*
     * one file of the pair replaced on its own: readers pick the meta
     * page through the lock file, so the pair no longer agrees
     */

    if (!same_data || !same_lock) {
        ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                                  "apikey database \"%s\" is not usable: "
                                  "\"%s\" was replaced on its own while in "
                                  "use; swap in a whole new directory "
                                  "instead", env->path,
                                  same_data ? env->lock_path
                                            : env->data_path);
        return NGX_ERROR;
    }

    return ngx_http_apikey_env_whole(log, env, h);
}


static ngx_int_t
ngx_http_apikey_env_whole(ngx_log_t *log, ngx_http_apikey_env_t *env,
    ngx_http_apikey_handle_t *h)
{
    int                   rc;
    ngx_int_t             ok;
    sigjmp_buf            jb;
    sigjmp_buf *volatile  saved;

    saved = ngx_http_apikey_fault_jmp;

    if (sigsetjmp(jb, 0) != 0) {
        ngx_http_apikey_fault_jmp = saved;
        ngx_http_apikey_fault_error(log, env, h,
                                    NGX_HTTP_APIKEY_DAMAGED_READ);
        h->broken = 1;
        return NGX_ERROR;
    }

    ngx_http_apikey_fault_jmp = &jb;

    ngx_http_apikey_txn_end(h);

    rc = mdb_txn_renew(h->txn);

    ok = NGX_OK;

    if (rc == MDB_SUCCESS) {
        ok = ngx_http_apikey_txn_check(log, env, h, h->txn);
        mdb_txn_reset(h->txn);

    } else if (rc != MDB_MAP_RESIZED) {

        /* a map grown by apikeyctl is adopted by the next request */

        ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                                  "apikey database \"%s\": mdb_txn_renew() "
                                  "failed (%d: %s)", env->path, rc,
                                  mdb_strerror(rc));
        h->broken = 1;
        ok = NGX_ERROR;
    }

    ngx_http_apikey_fault_jmp = saved;

    return ok;
}


static ngx_int_t
ngx_http_apikey_txn_check(ngx_log_t *log, ngx_http_apikey_env_t *env,
    ngx_http_apikey_handle_t *h, MDB_txn *txn)
{
    int     rc;
    size_t  id;

    /*
     * After every renew: the data file holds its pages, and the lock
     * file's id is that of the data file's newest meta page.  A reader
     * one commit behind has met a commit in flight (the meta page is
     * written and synced before the lock file's id), unless it stays
     * behind: a lock file one commit old, copied back in place.  A lock
     * file whose id went back is never a commit in flight.
     */

    rc = akc_env_check(txn, 0);
    id = mdb_txn_id(txn);

    if ((rc == AKC_OK || rc == AKC_ELAG) && id < h->seen) {
        rc = AKC_ELOCK;
    }

    if (rc == AKC_ELAG) {

        if (!h->lagging || h->lag_id != id) {
            h->lagging = 1;
            h->lag_id = id;
            h->lag_since = ngx_current_msec;
        }

        /*
         * and the commit began when the data file was last written: a
         * worker that has not read for a while knows it all the same
         */

        rc = (ngx_current_msec - h->lag_since < NGX_HTTP_APIKEY_LAG_MAX
              && ngx_http_apikey_commit_age(h) < NGX_HTTP_APIKEY_LAG_MAX)
             ? AKC_OK : AKC_ELOCK;

    } else {
        h->lagging = 0;
    }

    if (rc == AKC_OK) {
        if (id > h->seen) {
            h->seen = id;
        }

        return NGX_OK;
    }

    ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                              "apikey database \"%s\" is not usable: %s",
                              env->path, akc_meta_strerror(rc));
    h->broken = 1;

    return NGX_ERROR;
}


static ngx_msec_int_t
ngx_http_apikey_commit_age(ngx_http_apikey_handle_t *h)
{
    ngx_time_t        *tp;
    ngx_file_info_t    fi;
    mdb_filehandle_t   fd;

    /* milliseconds since data.mdb was last written; unknown is old */

    if (mdb_env_get_fd(h->env, &fd) != MDB_SUCCESS
        || ngx_fd_info(fd, &fi) == NGX_FILE_ERROR)
    {
        return NGX_HTTP_APIKEY_LAG_MAX;
    }

    tp = ngx_timeofday();

    return (ngx_msec_int_t) (tp->sec - fi.st_mtim.tv_sec) * 1000
           + (ngx_msec_int_t) tp->msec
           - (ngx_msec_int_t) (fi.st_mtim.tv_nsec / 1000000);
}


static ngx_int_t
ngx_http_apikey_env_open(ngx_log_t *log, ngx_http_apikey_env_t *env,
    ngx_http_apikey_secret_t *secret)
{
    ngx_file_info_t            data, lock;
    ngx_http_apikey_handle_t  *h;

    /*
     * never let a worker create the files: LMDB would make a lock.mdb
     * of its own that the loader then cannot use
     */

    if (ngx_http_apikey_env_stat(log, env, &data, &lock) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * a data file whose pages faulted while it was opened would fault
     * again, and what LMDB held then is left open: wait for another
     * file, a write to this one, or another lock file
     */

    if (env->damaged == NGX_HTTP_APIKEY_DAMAGED_OPEN
        && ngx_http_apikey_env_damaged(env, &data, &lock))
    {
        return NGX_ERROR;
    }

    /*
     * another path to an environment open in this process (a symlink, a
     * doubled slash): share it, LMDB must not open it twice; one opened
     * with another lock file is no longer right for any path
     */

    for (h = ngx_http_apikey_handles; h; h = h->next) {
        if (h->broken || h->env == NULL
            || h->data_ino != data.st_ino || h->data_dev != data.st_dev)
        {
            continue;
        }

        if (h->lock_ino == lock.st_ino && h->lock_dev == lock.st_dev) {
            h->refs++;
            goto opened;
        }

        h->broken = 1;
    }

    h = ngx_calloc(sizeof(ngx_http_apikey_handle_t), log);
    if (h == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_apikey_handle_open(log, env, h, secret, &lock) != NGX_OK) {
        ngx_http_apikey_handle_close(h);
        ngx_free(h);
        return NGX_ERROR;
    }

    h->refs = 1;
    h->next = ngx_http_apikey_handles;
    ngx_http_apikey_handles = h;

opened:

    env->handle = h;
    env->next_check = ngx_time() + 1;

    if (env->opened++) {
        ngx_http_apikey_metrics_reopen(ngx_http_apikey_cycle_metrics());
    }

    /*
     * the same damaged data file, opened again for the keys it still
     * reads: its fault stays logged once, not once per reopening
     */

    if (env->damaged && ngx_http_apikey_env_damaged(env, &data, &lock)) {
        return NGX_OK;
    }

    env->damaged = 0;

    if (env->error[0] != '\0') {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "apikey database \"%s\" is usable again", env->path);
        env->error[0] = '\0';
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_env_stat(ngx_log_t *log, ngx_http_apikey_env_t *env,
    ngx_file_info_t *data, ngx_file_info_t *lock)
{
    u_char      *name;
    ngx_err_t    err;
    const char  *what;

    what = ngx_file_info_n;
    name = env->data_path;

    if (ngx_file_info(name, data) == NGX_FILE_ERROR) {
        goto failed;
    }

    name = env->lock_path;

    if (ngx_file_info(name, lock) == NGX_FILE_ERROR) {
        goto failed;
    }

    /*
     * files made unreadable while open would still be read through the
     * map: fail closed as a new worker would, LMDB opens data.mdb to
     * read and lock.mdb to read and write
     */

    what = "access()";
    name = env->data_path;

    if (access((char *) name, R_OK) == -1) {
        goto failed;
    }

    name = env->lock_path;

    if (access((char *) name, R_OK|W_OK) == -1) {
        goto failed;
    }

    return NGX_OK;

failed:

    err = ngx_errno;

    /*
     * a data file alone: a backup put in place, whose lock file only
     * apikeyctl makes (a worker must not, see ngx_http_apikey_env_open())
     */

    if (name == env->lock_path && err == NGX_ENOENT) {
        ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                                  "apikey database \"%s\" is not usable: "
                                  ngx_file_info_n " \"%s\" failed (%d: %s): "
                                  "lock.mdb is missing; run any apikeyctl "
                                  "command on the directory as its owner "
                                  "(e.g. \"apikeyctl -d %s check\") to make "
                                  "it", env->path, name, err, strerror(err),
                                  env->path);
        return NGX_ERROR;
    }

    ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                              "apikey database \"%s\" is not usable: "
                              "%s \"%s\" failed (%d: %s)",
                              env->path, what, name, err, strerror(err));

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_apikey_handle_open(ngx_log_t *log, ngx_http_apikey_env_t *env,
    ngx_http_apikey_handle_t *h, ngx_http_apikey_secret_t *secret,
    ngx_file_info_t *lock)
{
    int                   rc;
    MDB_txn              *txn;
    sigjmp_buf            jb;
    const char           *what;
    ngx_file_info_t       fi;
    mdb_filehandle_t      fd;

    txn = NULL;

    /* the lock file of a fault, for ngx_http_apikey_fault_error() */

    h->lock_dev = lock->st_dev;
    h->lock_ino = lock->st_ino;

    if (sigsetjmp(jb, 0) != 0) {
        ngx_http_apikey_fault_jmp = NULL;
        ngx_http_apikey_fault_error(log, env, h,
                                    NGX_HTTP_APIKEY_DAMAGED_OPEN);

        /* what LMDB was doing is unknown: leave it, closing may fault */

        h->txn = NULL;
        h->env = NULL;

        return NGX_ERROR;
    }

    ngx_http_apikey_fault_jmp = &jb;

    rc = mdb_env_create(&h->env);
    if (rc != MDB_SUCCESS) {
        h->env = NULL;
        what = "mdb_env_create()";
        goto failed;
    }

    /* an assertion LMDB fails on a damaged page is answered as a fault */

    rc = mdb_env_set_assert(h->env, ngx_http_apikey_assert);
    if (rc != MDB_SUCCESS) {
        what = "mdb_env_set_assert()";
        goto failed;
    }

    rc = mdb_env_set_maxdbs(h->env, AKC_MAXDBS);
    if (rc != MDB_SUCCESS) {
        what = "mdb_env_set_maxdbs()";
        goto failed;
    }

    /* a worker that makes the lock file again makes it as init does */

    rc = mdb_env_set_maxreaders(h->env, AKC_MAXREADERS);
    if (rc != MDB_SUCCESS) {
        what = "mdb_env_set_maxreaders()";
        goto failed;
    }

    /* the map size is not set: the one stored in the file is adopted */

    rc = mdb_env_open(h->env, (char *) env->path,
                      MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, 0);
    if (rc != MDB_SUCCESS) {
        what = "mdb_env_open()";
        goto failed;
    }

    (void) mdb_reader_check(h->env, NULL);

    rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn);
    if (rc != MDB_SUCCESS) {
        txn = NULL;
        what = "mdb_txn_begin()";
        goto failed;
    }

    /* whole before anything else is read: a short file is SIGBUS */

    if (ngx_http_apikey_txn_check(log, env, h, txn) != NGX_OK) {
        goto failed_logged;
    }

    rc = akc_dbs_open(txn, &h->dbs, 0);
    if (rc == MDB_NOTFOUND) {
        rc = AKC_EUNINIT;
    }

    if (rc == MDB_SUCCESS) {
        rc = akc_meta_check(txn, &h->dbs, &secret->secret);
    }

    if (rc != AKC_OK) {
        ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                                  "apikey database \"%s\" is not usable: "
                                  "%s (secret \"%V\")", env->path,
                                  akc_meta_strerror(rc), &secret->path);
        goto failed_logged;
    }

    /* a read-only commit keeps the database handles open */

    rc = mdb_txn_commit(txn);
    txn = NULL;

    if (rc != MDB_SUCCESS) {
        what = "mdb_txn_commit()";
        goto failed;
    }

    /*
     * the files opened are those stat()ed before and after: with the
     * path switched under mdb_env_open(), try again later
     */

    rc = mdb_env_get_fd(h->env, &fd);
    if (rc != MDB_SUCCESS || ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        rc = (rc != MDB_SUCCESS) ? rc : ngx_errno;
        what = ngx_fd_info_n;
        goto failed;
    }

    h->data_dev = fi.st_dev;
    h->data_ino = fi.st_ino;

    if (ngx_file_info(env->lock_path, &fi) == NGX_FILE_ERROR
        || fi.st_ino != h->lock_ino || fi.st_dev != h->lock_dev
        || ngx_file_info(env->data_path, &fi) == NGX_FILE_ERROR
        || fi.st_ino != h->data_ino || fi.st_dev != h->data_dev)
    {
        ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                                  "apikey database \"%s\" is not usable: "
                                  "its files changed while it was opened",
                                  env->path);
        goto failed_logged;
    }

    /* as LMDB sized it: a lock file truncated later is noticed */

    if (ngx_file_info(env->lock_path, &fi) != NGX_FILE_ERROR) {
        h->lock_size = fi.st_size;
    }

    /* the per-worker read transaction, renewed and reset per request */

    rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &h->txn);
    if (rc != MDB_SUCCESS) {
        h->txn = NULL;
        what = "mdb_txn_begin()";
        goto failed;
    }

    mdb_txn_reset(h->txn);

    ngx_memcpy(h->checked, secret->fingerprint, AKC_FINGERPRINT_LEN);

    ngx_http_apikey_fault_jmp = NULL;

    return NGX_OK;

failed:

    ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                              "apikey database \"%s\" is not usable: "
                              "%s failed (%d: %s)", env->path, what, rc,
                              mdb_strerror(rc));

failed_logged:

    if (txn != NULL) {
        mdb_txn_abort(txn);
    }

    ngx_http_apikey_fault_jmp = NULL;

    return NGX_ERROR;
}


static void
ngx_http_apikey_txn_end(ngx_http_apikey_handle_t *h)
{
    if (h->live) {
        mdb_txn_reset(h->txn);
        h->live = 0;
    }
}


static void
ngx_http_apikey_env_detach(ngx_http_apikey_env_t *env)
{
    ngx_http_apikey_handle_t  *h, **hp;

    h = env->handle;
    env->handle = NULL;

    if (h == NULL || --h->refs > 0) {
        return;
    }

    for (hp = &ngx_http_apikey_handles; *hp; hp = &(*hp)->next) {
        if (*hp == h) {
            *hp = h->next;
            break;
        }
    }

    ngx_http_apikey_handle_close(h);
    ngx_free(h);
}


static void
ngx_http_apikey_handle_close(ngx_http_apikey_handle_t *h)
{
    sigjmp_buf            jb;
    sigjmp_buf *volatile  saved;

    saved = ngx_http_apikey_fault_jmp;

    if (sigsetjmp(jb, 0) != 0) {

        /* a truncated lock file faults here too: leave the environment */

        ngx_http_apikey_fault_jmp = saved;
        h->txn = NULL;
        h->env = NULL;
        return;
    }

    ngx_http_apikey_fault_jmp = &jb;

    if (h->txn != NULL) {
        mdb_txn_abort(h->txn);
        h->txn = NULL;
    }

    if (h->env != NULL) {
        mdb_env_close(h->env);
        h->env = NULL;
    }

    ngx_http_apikey_fault_jmp = saved;
}


static void
ngx_http_apikey_fault_error(ngx_log_t *log, ngx_http_apikey_env_t *env,
    ngx_http_apikey_handle_t *h, ngx_uint_t where)
{
    const char        *doing;
    mdb_filehandle_t   fd;

    /*
     * the files that faulted are those LMDB has open, whatever the path
     * names now: damaged bytes in a page fault wherever they are read,
     * a file too short faults again at each open, not at each read
     */

    if ((ngx_http_apikey_fault_signo == SIGSEGV
         || ngx_http_apikey_fault_signo == SIGABRT
         || where == NGX_HTTP_APIKEY_DAMAGED_OPEN)
        && h->env != NULL
        && mdb_env_get_fd(h->env, &fd) == MDB_SUCCESS
        && ngx_fd_info(fd, &env->damage) != NGX_FILE_ERROR)
    {
        env->damaged = where;
        env->damage_lock_dev = h->lock_dev;
        env->damage_lock_ino = h->lock_ino;
    }

    doing = (where == NGX_HTTP_APIKEY_DAMAGED_OPEN) ? "opening" : "reading";

    /* the signal the guard has just caught */

    if (ngx_http_apikey_fault_signo == SIGBUS) {
        ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                                  "apikey database \"%s\" is not usable: "
                                  "SIGBUS while %s it (data.mdb or "
                                  "lock.mdb truncated or damaged?)",
                                  env->path, doing);
        return;
    }

    /* damaged bytes in a page, which "apikeyctl check" finds too */

    if (ngx_http_apikey_fault_signo == SIGABRT) {
        ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                                  "apikey database \"%s\" is not usable: "
                                  "\"%s\" is damaged: LMDB found it "
                                  "inconsistent (%s) while %s it; run "
                                  "\"apikeyctl -d %s check\", restore a "
                                  "backup into a new directory and swap it "
                                  "in", env->path, env->data_path,
                                  ngx_http_apikey_fault_assert, doing,
                                  env->path);
        return;
    }

    ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                              "apikey database \"%s\" is not usable: "
                              "\"%s\" is damaged: a read inside it faulted "
                              "(SIGSEGV while %s it); run \"apikeyctl -d %s "
                              "check\", restore a backup into a new "
                              "directory and swap it in", env->path,
                              env->data_path, doing, env->path);
}


static ngx_uint_t
ngx_http_apikey_env_damaged(ngx_http_apikey_env_t *env,
    ngx_file_info_t *data, ngx_file_info_t *lock)
{
    ngx_file_info_t  *fi;

    /*
     * the data file that faulted, not written to since, with the same
     * lock file: a damaged lock file made anew is worth another try
     */

    fi = &env->damage;

    return lock->st_dev == env->damage_lock_dev
           && lock->st_ino == env->damage_lock_ino
           && data->st_dev == fi->st_dev
           && data->st_ino == fi->st_ino
           && data->st_size == fi->st_size
           && data->st_mtim.tv_sec == fi->st_mtim.tv_sec
           && data->st_mtim.tv_nsec == fi->st_mtim.tv_nsec;
}


static void
ngx_http_apikey_env_error(ngx_log_t *log, ngx_http_apikey_env_t *env,
    ngx_uint_t level, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;
    u_char    buf[NGX_HTTP_APIKEY_ERRLEN];

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf) - 1, fmt, args);
    va_end(args);

    *p = '\0';

    /* a failure is logged when it starts or changes, not per request */

    if (ngx_strcmp(buf, env->error) == 0) {
        return;
    }

    ngx_memcpy(env->error, buf, p - buf + 1);

    ngx_log_error(level, log, 0, "%s", buf);
}


static ngx_int_t
ngx_http_apikey_env_renew(ngx_log_t *log, ngx_http_apikey_env_t *env,
    ngx_http_apikey_handle_t *h)
{
    int          rc;
    MDB_envinfo  info;

    h->used = 1;

    if (h->live) {

        /*
         * the snapshot of the last request is the newest while no write
         * has committed since: the newest meta page still has its id
         * (a commit writes the meta page before the lock file's id, so
         * a write that has returned is always seen here)
         */

        if (mdb_env_info(h->env, &info) == MDB_SUCCESS
            && info.me_last_txnid == mdb_txn_id(h->txn))
        {
            return NGX_OK;
        }

        mdb_txn_reset(h->txn);
        h->live = 0;
    }

    rc = mdb_txn_renew(h->txn);

    if (rc == MDB_MAP_RESIZED) {

        /*
         * the map grew: apikeyctl's doing, or another data file; adopt
         * the new size once the files are known to be those opened
         */

        if (ngx_http_apikey_env_check(log, env) != NGX_OK) {
            ngx_http_apikey_env_detach(env);
            env->next_open = ngx_time() + 1;
            return NGX_ERROR;
        }

        rc = mdb_env_set_mapsize(h->env, 0);

        if (rc == MDB_SUCCESS) {
            rc = mdb_txn_renew(h->txn);
        }
    }

    if (rc == MDB_SUCCESS) {
        h->live = 1;

        if (!ngx_http_apikey_release_event.timer_set
            && ngx_http_apikey_release_event.handler)
        {
            ngx_add_timer(&ngx_http_apikey_release_event,
                          NGX_HTTP_APIKEY_RELEASE);
        }

        if (ngx_http_apikey_txn_check(log, env, h, h->txn) == NGX_OK) {
            return NGX_OK;
        }

        ngx_http_apikey_txn_end(h);
        ngx_http_apikey_env_detach(env);
        env->next_open = ngx_time() + 1;

        return NGX_ERROR;
    }

    ngx_http_apikey_env_error(log, env, NGX_LOG_CRIT,
                              "apikey database \"%s\": mdb_txn_renew() "
                              "failed (%d: %s)", env->path, rc,
                              mdb_strerror(rc));

    /* start afresh, about a second from now */

    h->broken = 1;
    ngx_http_apikey_env_detach(env);
    env->next_open = ngx_time() + 1;

    return NGX_ERROR;
}


static ngx_http_apikey_env_t *
ngx_http_apikey_env_get(ngx_str_t *path)
{
    size_t                  len;
    ngx_http_apikey_env_t  *env;

    for (env = ngx_http_apikey_envs; env; env = env->next) {
        if (ngx_strlen(env->path) == path->len
            && ngx_strncmp(env->path, path->data, path->len) == 0)
        {
            return env;
        }
    }

    /* process memory, not a pool: these outlive the cycle */

    env = ngx_calloc(sizeof(ngx_http_apikey_env_t), ngx_cycle->log);
    if (env == NULL) {
        return NULL;
    }

    len = path->len;

    env->path = ngx_alloc(len + 1, ngx_cycle->log);
    env->data_path = ngx_alloc(len + sizeof("/" AKC_DATA_FILE),
                               ngx_cycle->log);
    env->lock_path = ngx_alloc(len + sizeof("/" AKC_LOCK_FILE),
                               ngx_cycle->log);

    if (env->path == NULL || env->data_path == NULL
        || env->lock_path == NULL)
    {
        ngx_free(env->path);
        ngx_free(env->data_path);
        ngx_free(env->lock_path);
        ngx_free(env);
        return NULL;
    }

    ngx_cpystrn(env->path, path->data, len + 1);
    ngx_memcpy(ngx_cpymem(env->data_path, path->data, len),
               "/" AKC_DATA_FILE, sizeof("/" AKC_DATA_FILE));
    ngx_memcpy(ngx_cpymem(env->lock_path, path->data, len),
               "/" AKC_LOCK_FILE, sizeof("/" AKC_LOCK_FILE));

    env->next = ngx_http_apikey_envs;
    ngx_http_apikey_envs = env;

    return env;
}


static void
ngx_http_apikey_fault(int signo, siginfo_t *si, void *uc)
{
    sigjmp_buf  *jb;

    /* async-signal-safe only */

    jb = ngx_http_apikey_fault_jmp;

#if (NGX_LINUX)
    if (jb != NULL && syscall(SYS_gettid) != ngx_http_apikey_fault_tid) {
        jb = NULL;
    }
#endif

    if (jb != NULL) {
        ngx_http_apikey_fault_jmp = NULL;
        ngx_http_apikey_fault_signo = signo;
        siglongjmp(*jb, 1);
    }

    /*
     * not inside LMDB: a bug, which is to crash and dump core as it would
     * without this module; the faulting instruction runs again once this
     * returns, under the action before, and a signal sent by kill() is
     * raised again for it
     */

    (void) sigaction(signo, (signo == SIGBUS) ? &ngx_http_apikey_old_sigbus
                                              : &ngx_http_apikey_old_sigsegv,
                     NULL);

    if (si == NULL || si->si_code <= 0) {
        (void) raise(signo);
    }
}


static void
ngx_http_apikey_assert(MDB_env *env, const char *msg)
{
    sigjmp_buf  *jb;

    /*
     * LMDB calls abort() once this returns: inside the fault guard the
     * request is answered 503 instead, and the data file is handled as
     * one whose reads faulted; elsewhere it aborts, as before
     */

    jb = ngx_http_apikey_fault_jmp;

#if (NGX_LINUX)
    if (jb != NULL && syscall(SYS_gettid) != ngx_http_apikey_fault_tid) {
        jb = NULL;
    }
#endif

    if (jb == NULL) {
        return;
    }

    (void) ngx_cpystrn(ngx_http_apikey_fault_assert, (u_char *) msg,
                       NGX_HTTP_APIKEY_ASSERTLEN);

    ngx_http_apikey_fault_jmp = NULL;
    ngx_http_apikey_fault_signo = SIGABRT;
    siglongjmp(*jb, 1);
}


ngx_http_apikey_metrics_t *
ngx_http_apikey_get_metrics(ngx_http_request_t *r)
{
    ngx_http_apikey_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    return amcf->metrics;
}


static ngx_http_apikey_metrics_t *
ngx_http_apikey_cycle_metrics(void)
{
    ngx_http_apikey_main_conf_t  *amcf;

    /* the configuration this process serves, where there is no request */

    amcf = ngx_http_cycle_get_module_main_conf((ngx_cycle_t *) ngx_cycle,
                                               ngx_http_apikey_module);

    return (amcf != NULL) ? amcf->metrics : NULL;
}


ngx_int_t
ngx_http_apikey_db_stats(ngx_http_request_t *r, ngx_uint_t n,
    ngx_http_apikey_db_stats_t *st)
{
    ngx_log_t                    *log;
    sigjmp_buf                    jb;
    ngx_http_apikey_db_t         *db, **dbp;
    ngx_http_apikey_handle_t     *h;
    ngx_http_apikey_main_conf_t  *amcf;

    amcf = ngx_http_get_module_main_conf(r, ngx_http_apikey_module);

    if (n >= amcf->dbs.nelts) {
        return NGX_DECLINED;
    }

    dbp = amcf->dbs.elts;
    db = dbp[n];
    log = r->connection->log;

    ngx_memzero(st, sizeof(ngx_http_apikey_db_stats_t));
    st->path = db->path;
    st->label = db->label;

    /*
     * the files as they are now, not as they were up to a second ago;
     * a database not open is opened at most once a second, as requests
     * do: scrapes may come often
     */

    db->env->next_check = 0;

    h = ngx_http_apikey_env_usable(log, db);
    if (h == NULL) {
        return NGX_OK;
    }

    if (sigsetjmp(jb, 0) != 0) {

        /* as in ngx_http_apikey_check(): not usable, and closed */

        ngx_http_apikey_fault_jmp = NULL;

        ngx_http_apikey_fault_error(log, db->env, h,
                                    NGX_HTTP_APIKEY_DAMAGED_READ);

        if (db->env->handle == h) {
            h->broken = 1;
            ngx_http_apikey_env_detach(db->env);
            db->env->next_open = ngx_time() + 1;
        }

        st->usable = 0;

        return NGX_OK;
    }

    ngx_http_apikey_fault_jmp = &jb;

    st->usable = (ngx_http_apikey_read_stats(log, db, h, st) == NGX_OK);

    ngx_http_apikey_fault_jmp = NULL;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_read_stats(ngx_log_t *log, ngx_http_apikey_db_t *db,
    ngx_http_apikey_handle_t *h, ngx_http_apikey_db_stats_t *st)
{
    int           rc;
    const char   *what;
    akc_stats_t   as;

    /* inside the fault guard of ngx_http_apikey_db_stats() */

    if (ngx_http_apikey_txn_begin(log, db, h) != NGX_OK) {
        return NGX_ERROR;
    }

    /* what apikeyctl stats reports, the scraping worker's slot counted */

    ngx_memzero(&as, sizeof(akc_stats_t));

    rc = akc_stats(h->env, h->txn, &h->dbs, 0, &as, &what);

    if (rc != MDB_SUCCESS) {
        ngx_http_apikey_txn_end(h);
        ngx_http_apikey_env_error(log, db->env, NGX_LOG_CRIT,
                                  "apikey database \"%s\": reading its "
                                  "statistics failed: %s (%d: %s)",
                                  db->env->path, what, rc,
                                  mdb_strerror(rc));
        return NGX_ERROR;
    }

    st->generation = as.generation;
    st->changed = as.changed;
    st->follow = as.followed;
    st->follow_version = as.follow_version;
    st->follow_synced = as.follow_synced;
    st->keys = as.keys;
    st->map_size = as.map_size;
    st->map_used = as.map_used;
    st->readers_used = as.readers_used;
    st->readers_max = as.readers_max;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    const char             *name;
    ngx_str_t              *s;
    ngx_http_apikey_ctx_t  *ctx;

    ctx = ngx_http_apikey_lookup(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    s = NULL;

    switch (data) {

    case NGX_HTTP_APIKEY_VAR_STATUS:
        name = akc_status_name(ctx->status);
        v->data = (u_char *) name;
        v->len = ngx_strlen(name);
        break;

    case NGX_HTTP_APIKEY_VAR_SOURCE:
        s = ctx->source ? &ctx->source->text : NULL;
        break;

    default:
        if (ctx->status != AKC_STATUS_VALID
            && ctx->status != AKC_STATUS_FORBIDDEN
            && data != NGX_HTTP_APIKEY_VAR_HINT)
        {
            /* identity only for keys that were accepted */
            break;
        }

        switch (data) {
        case NGX_HTTP_APIKEY_VAR_ID:
            s = &ctx->id;
            break;
        case NGX_HTTP_APIKEY_VAR_SUBJECT:
            s = &ctx->subject;
            break;
        case NGX_HTTP_APIKEY_VAR_SCOPES:
            s = &ctx->scopes;
            break;
        case NGX_HTTP_APIKEY_VAR_PLAN:
            s = &ctx->plan;
            break;
        case NGX_HTTP_APIKEY_VAR_EXPIRES:
            s = &ctx->expires;
            break;
        default: /* NGX_HTTP_APIKEY_VAR_HINT */
            s = ngx_http_apikey_hint(r, ctx);
            break;
        }
    }

    if (data != NGX_HTTP_APIKEY_VAR_STATUS) {
        if (s == NULL || s->len == 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = s->data;
        v->len = s->len;
    }

    if (v->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_apikey_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_apikey_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_main_conf_t  *amcf;

    amcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_main_conf_t));
    if (amcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&amcf->secrets, cf->pool, 1,
                       sizeof(ngx_http_apikey_secret_t *))
        != NGX_OK
        || ngx_array_init(&amcf->dbs, cf->pool, 1,
                          sizeof(ngx_http_apikey_db_t *))
           != NGX_OK)
    {
        return NULL;
    }

    return amcf;
}


static void *
ngx_http_apikey_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_apikey_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->db_path = { 0, NULL };
     *     conf->db = NULL;
     *     conf->realm = { 0, NULL };
     *     conf->metrics = NULL;
     */

    conf->mode = NGX_CONF_UNSET_UINT;
    conf->secret = NGX_CONF_UNSET_PTR;
    conf->sources = NGX_CONF_UNSET_PTR;
    conf->scopes = NGX_CONF_UNSET_PTR;
    conf->hide = NGX_CONF_UNSET;
    conf->skip_preflight = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_apikey_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_apikey_loc_conf_t *prev = parent;
    ngx_http_apikey_loc_conf_t *conf = child;

    ngx_str_t                     path;
    ngx_http_core_srv_conf_t     *cscf;
    ngx_http_apikey_source_t     *src;
    ngx_http_apikey_main_conf_t  *amcf;

    ngx_conf_merge_uint_value(conf->mode, prev->mode, NGX_HTTP_APIKEY_OFF);
    ngx_conf_merge_str_value(conf->db_path, prev->db_path, "");
    ngx_conf_merge_ptr_value(conf->secret, prev->secret, NULL);
    ngx_conf_merge_ptr_value(conf->scopes, prev->scopes, NULL);
    ngx_conf_merge_str_value(conf->realm, prev->realm, "api");
    ngx_conf_merge_value(conf->hide, prev->hide, 0);
    ngx_conf_merge_value(conf->skip_preflight, prev->skip_preflight, 0);

    if (conf->hide && conf->mode != NGX_HTTP_APIKEY_OFF) {
        amcf = ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_apikey_module);
        amcf->hide = 1;
    }

    /*
     * with apikey_metrics, a location that decides requests counts them
     * in the row of its server block's first name
     */

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    if (amcf->metrics != NULL && conf->mode != NGX_HTTP_APIKEY_OFF) {
        cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

        conf->metrics = ngx_http_apikey_metrics_server(cf, amcf->metrics,
                                                       &cscf->server_name);
        if (conf->metrics == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->sources == NGX_CONF_UNSET_PTR) {

        if (prev->sources == NGX_CONF_UNSET_PTR) {

            /* the default: header=X-API-Key authorization=Bearer */

            prev->sources = ngx_array_create(cf->pool, 2,
                                             sizeof(ngx_http_apikey_source_t));
            if (prev->sources == NULL) {
                return NGX_CONF_ERROR;
            }

            src = ngx_array_push_n(prev->sources, 2);
            if (src == NULL) {
                return NGX_CONF_ERROR;
            }

            src[0].type = NGX_HTTP_APIKEY_SOURCE_HEADER;
            ngx_str_set(&src[0].name, "x-api-key");
            ngx_str_set(&src[0].text, "header=X-API-Key");

            src[1].type = NGX_HTTP_APIKEY_SOURCE_AUTH;
            ngx_str_set(&src[1].name, "Bearer");
            ngx_str_set(&src[1].text, "authorization=Bearer");
        }

        conf->sources = prev->sources;
    }

    /*
     * With apikey on or optional, the defaults of apikeyctl apply to what
     * is not set; where apikey is off, the variables work only if both a
     * database and a secret are named, and nothing is opened otherwise.
     */

    if (conf->mode == NGX_HTTP_APIKEY_OFF
        && (conf->db_path.len == 0 || conf->secret == NULL))
    {
        return NGX_CONF_OK;
    }

    if (conf->secret == NULL) {
        ngx_str_set(&path, NGX_HTTP_APIKEY_DEFAULT_SECRET);

        conf->secret = ngx_http_apikey_load_secret(cf, &path);
        if (conf->secret == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->db_path.len == 0) {
        ngx_str_set(&conf->db_path, NGX_HTTP_APIKEY_DEFAULT_DB);
    }

    if (prev->db != NULL && prev->secret == conf->secret
        && prev->db_path.len == conf->db_path.len
        && ngx_strncmp(prev->db_path.data, conf->db_path.data,
                       conf->db_path.len) == 0)
    {
        conf->db = prev->db;
        return NGX_CONF_OK;
    }

    conf->db = ngx_http_apikey_add_db(cf, &conf->db_path, conf->secret);
    if (conf->db == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_http_apikey_secret_t *
ngx_http_apikey_load_secret(ngx_conf_t *cf, ngx_str_t *path)
{
    char                          err[NGX_HTTP_APIKEY_ERRLEN];
    ngx_str_t                     full;
    ngx_uint_t                    i;
    ngx_file_info_t               fi;
    ngx_pool_cleanup_t           *cln;
    ngx_http_apikey_secret_t     *secret, **sp;
    ngx_http_apikey_main_conf_t  *amcf;

    full = *path;

    if (ngx_conf_full_name(cf->cycle, &full, 1) != NGX_OK) {
        return NULL;
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    sp = amcf->secrets.elts;

    for (i = 0; i < amcf->secrets.nelts; i++) {
        if (sp[i]->path.len == full.len
            && ngx_strncmp(sp[i]->path.data, full.data, full.len) == 0)
        {
            return sp[i];
        }
    }

    /* the file is read here, in the master, before privileges drop */

    secret = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_secret_t));
    if (secret == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_apikey_cleanup_secret;
    cln->data = secret;

    secret->path = full;

    if (akc_secret_load(&secret->secret, (char *) full.data, err,
                        sizeof(err))
        != AKC_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot load apikey secret \"%V\": %s",
                           &full, err);
        return NULL;
    }

    akc_secret_fingerprint(&secret->secret, secret->fingerprint);

    /* whoever can read the secret can test guesses against a stolen db */

    if (ngx_file_info(full.data, &fi) != NGX_FILE_ERROR
        && (fi.st_mode & 0077))
    {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "apikey secret \"%V\" is accessible by group "
                           "or others (mode 0%ui%ui%ui), make it 0600",
                           &full, (ngx_uint_t) (fi.st_mode >> 6) & 7,
                           (ngx_uint_t) (fi.st_mode >> 3) & 7,
                           (ngx_uint_t) fi.st_mode & 7);
    }

    sp = ngx_array_push(&amcf->secrets);
    if (sp == NULL) {
        return NULL;
    }

    *sp = secret;

    return secret;
}


static ngx_http_apikey_db_t *
ngx_http_apikey_add_db(ngx_conf_t *cf, ngx_str_t *path,
    ngx_http_apikey_secret_t *secret)
{
    ngx_str_t                     full;
    ngx_uint_t                    i;
    ngx_http_apikey_db_t         *db, **dbp;
    ngx_http_apikey_main_conf_t  *amcf;

    full = *path;

    if (ngx_conf_full_name(cf->cycle, &full, 0) != NGX_OK) {
        return NULL;
    }

    /*
     * "/var/lib/apikey/" is "/var/lib/apikey": one environment, which
     * LMDB must never open twice in a process
     */

    while (full.len > 1 && full.data[full.len - 1] == '/') {
        full.len--;
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    dbp = amcf->dbs.elts;

    for (i = 0; i < amcf->dbs.nelts; i++) {
        if (dbp[i]->path.len != full.len
            || ngx_strncmp(dbp[i]->path.data, full.data, full.len) != 0)
        {
            continue;
        }

        if (dbp[i]->secret == secret) {
            return dbp[i];
        }

        if (ngx_memcmp(dbp[i]->secret->fingerprint, secret->fingerprint,
                       AKC_FINGERPRINT_LEN) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "apikey database \"%V\" is used with two "
                               "different secrets, \"%V\" and \"%V\"",
                               &full, &dbp[i]->secret->path, &secret->path);
            return NULL;
        }
    }

    db = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_db_t));
    if (db == NULL) {
        return NULL;
    }

    db->path = full;
    db->secret = secret;

    if (ngx_http_apikey_metrics_escape(cf->pool, &full, &db->label)
        != NGX_OK)
    {
        return NULL;
    }

    /* the process-wide entry; the environment is opened in workers only */

    db->env = ngx_http_apikey_env_get(&full);
    if (db->env == NULL) {
        return NULL;
    }

    dbp = ngx_array_push(&amcf->dbs);
    if (dbp == NULL) {
        return NULL;
    }

    *dbp = db;

    return db;
}


static void
ngx_http_apikey_cleanup_secret(void *data)
{
    ngx_http_apikey_secret_t  *secret = data;

    ngx_explicit_memzero(&secret->secret, sizeof(akc_secret_t));
}


static ngx_int_t
ngx_http_apikey_init(ngx_conf_t *cf)
{
    ngx_uint_t                    i, n;
    ngx_array_t                  *handlers;
    ngx_http_variable_t          *v;
    ngx_http_handler_pt          *h;
    ngx_http_core_main_conf_t    *cmcf;
    ngx_http_apikey_main_conf_t  *amcf;

    if (akc_init() != AKC_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "sodium_init() failed");
        return NGX_ERROR;
    }

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    for (v = ngx_http_apikey_vars; v->name.len; v++) {
        amcf->index[v->data] = ngx_http_get_variable_index(cf, &v->name);
        if (amcf->index[v->data] == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * The access handler runs where auth_basic's does: after allow and
     * deny, before auth_request, so that "satisfy" gives the answers it
     * gives with auth_basic.  A phase runs its handlers in the reverse
     * order of their registration, and the built-in modules register
     * theirs in module order: auth_request, auth_basic, access.  So ours
     * goes right after auth_request's, when it is built in.
     */

    handlers = &cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers;

    n = 0;

    for (i = 0; cf->cycle->modules[i]; i++) {
        if (ngx_strcmp(cf->cycle->modules[i]->name,
                       "ngx_http_auth_request_module") == 0)
        {
            n = (handlers->nelts > 0) ? 1 : 0;
            break;
        }
    }

    h = ngx_array_push(handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h = handlers->elts;

    ngx_memmove(&h[n + 1], &h[n],
                (handlers->nelts - 1 - n) * sizeof(ngx_http_handler_pt));

    h[n] = ngx_http_apikey_handler;

    /* no cost to requests where nothing is hidden */

    if (!amcf->hide) {
        return NGX_OK;
    }

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_apikey_hide_handler;

    return NGX_OK;
}


static char *
ngx_http_apikey(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (alcf->mode != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 0; ngx_http_apikey_modes[i].name.len; i++) {
        if (value[1].len == ngx_http_apikey_modes[i].name.len
            && ngx_strcmp(value[1].data, ngx_http_apikey_modes[i].name.data)
               == 0)
        {
            alcf->mode = ngx_http_apikey_modes[i].value;
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\", it must be \"on\", \"off\" "
                       "or \"optional\"", &value[1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_apikey_db(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    /* "" would quietly mean the default path */

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid value \"\"");
        return NGX_CONF_ERROR;
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


static char *
ngx_http_apikey_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    ngx_str_t  *value;

    if (alcf->secret != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    alcf->secret = ngx_http_apikey_load_secret(cf, &value[1]);
    if (alcf->secret == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_source(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    u_char                    *eq;
    ngx_str_t                 *value, kind;
    ngx_uint_t                 i, j;
    ngx_http_apikey_source_t  *src, *prev;

    if (alcf->sources != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    alcf->sources = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                     sizeof(ngx_http_apikey_source_t));
    if (alcf->sources == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        if (eq == NULL || eq == value[i].data + value[i].len - 1) {
            goto invalid;
        }

        kind.data = value[i].data;
        kind.len = eq - value[i].data;

        src = ngx_array_push(alcf->sources);
        if (src == NULL) {
            return NGX_CONF_ERROR;
        }

        src->text = value[i];
        src->name.data = eq + 1;
        src->name.len = value[i].data + value[i].len - (eq + 1);

        for (j = 0; j < src->name.len; j++) {
            if (src->name.data[j] <= ' ' || src->name.data[j] >= 0x7f
                || src->name.data[j] == ':')
            {
                goto invalid;
            }
        }

        if (kind.len == 6 && ngx_strncmp(kind.data, "header", 6) == 0) {

            if (src->name.len == 13
                && ngx_strncasecmp(src->name.data, (u_char *) "authorization",
                                   13) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "use \"authorization=SCHEME\" instead of "
                                   "\"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            src->type = NGX_HTTP_APIKEY_SOURCE_HEADER;

            /* compared with the lowercased name nginx keeps per header */

            src->name.data = ngx_pstrdup(cf->pool, &src->name);
            if (src->name.data == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_strlow(src->name.data, src->name.data, src->name.len);

        } else if (kind.len == 13
                   && ngx_strncmp(kind.data, "authorization", 13) == 0)
        {
            src->type = NGX_HTTP_APIKEY_SOURCE_AUTH;

        } else if (kind.len == 5 && ngx_strncmp(kind.data, "query", 5) == 0) {

            /* a name that fits "?name=key&..." as it is */

            for (j = 0; j < src->name.len; j++) {
                if (ngx_strchr("&=%#?+;", src->name.data[j]) != NULL) {
                    goto invalid;
                }
            }

            src->type = NGX_HTTP_APIKEY_SOURCE_QUERY;

        } else if (kind.len == 6 && ngx_strncmp(kind.data, "cookie", 6) == 0) {

            /* an RFC 6265 cookie name: a token */

            for (j = 0; j < src->name.len; j++) {
                if (ngx_strchr("()<>@,;\\\"/[]?={}", src->name.data[j])
                    != NULL)
                {
                    goto invalid;
                }
            }

            src->type = NGX_HTTP_APIKEY_SOURCE_COOKIE;

        } else {
            goto invalid;
        }

        /* the same source twice: one of them could never win */

        prev = alcf->sources->elts;

        for (j = 0; j + 1 < alcf->sources->nelts; j++) {
            if (ngx_http_apikey_source_same(&prev[j], src)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "source \"%V\" is duplicate", &value[i]);
                return NGX_CONF_ERROR;
            }
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\", it must be \"header=NAME\", "
                       "\"authorization=SCHEME\", \"query=ARG\" or "
                       "\"cookie=NAME\"", &value[i]);

    return NGX_CONF_ERROR;
}


static ngx_uint_t
ngx_http_apikey_source_same(ngx_http_apikey_source_t *a,
    ngx_http_apikey_source_t *b)
{
    if (a->type != b->type || a->name.len != b->name.len) {
        return 0;
    }

    /* cookie names are case-sensitive, the others are not */

    if (a->type == NGX_HTTP_APIKEY_SOURCE_COOKIE) {
        return ngx_strncmp(a->name.data, b->name.data, a->name.len) == 0;
    }

    return ngx_strncasecmp(a->name.data, b->name.data, a->name.len) == 0;
}


static char *
ngx_http_apikey_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_apikey_loc_conf_t *alcf = conf;

    ngx_str_t   *value, *scope;
    ngx_uint_t   i;

    /*
     * every scope listed is required, in one directive or several; one
     * that no key can hold (empty, with a comma or a space) is refused
     */

    if (alcf->scopes == NGX_CONF_UNSET_PTR) {
        alcf->scopes = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                        sizeof(ngx_str_t));
        if (alcf->scopes == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0
            || ngx_strlchr(value[i].data, value[i].data + value[i].len, ',')
            || !akc_scopes_valid((const char *) value[i].data, value[i].len))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\", a scope is letters, "
                               "digits and \".\", \"_\", \":\", \"/\", "
                               "\"*\", \"-\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        scope = ngx_array_push(alcf->scopes);
        if (scope == NULL) {
            return NGX_CONF_ERROR;
        }

        *scope = value[i];
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_apikey_realm(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t   *value;
    ngx_uint_t   i;

    value = cf->args->elts;

    /* the realm is sent inside a quoted string */

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] < ' ' || value[1].data[i] == 0x7f
            || value[1].data[i] == '"' || value[1].data[i] == '\\')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


static char *
ngx_http_apikey_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_apikey_main_conf_t  *amcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_apikey_metrics_handler) {
        return "is duplicate";
    }

    clcf->handler = ngx_http_apikey_metrics_handler;

    /* one zone for the whole configuration, made by the first of them */

    amcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_apikey_module);

    if (amcf->metrics == NULL) {
        amcf->metrics = ngx_http_apikey_metrics_create(cf);
        if (amcf->metrics == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_apikey_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i;
    struct sigaction              sa;
    ngx_http_apikey_db_t        **db;
    ngx_http_apikey_main_conf_t  *amcf;

    /* not in the master, nor in the cache manager and loader */

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_apikey_module);
    if (amcf == NULL) {
        return NGX_OK;
    }

    /* this process's slot of counters, if apikey_metrics is configured */

    if (amcf->metrics != NULL) {
        (void) ngx_http_apikey_metrics_claim(amcf->metrics);
    }

    /*
     * a data file or lock file truncated under the map faults on access
     * (SIGBUS), and so do damaged bytes in a page (SIGSEGV): both are
     * caught around LMDB calls and answered with 503
     */

#if (NGX_LINUX)
    ngx_http_apikey_fault_tid = syscall(SYS_gettid);
#endif

    ngx_memzero(&sa, sizeof(struct sigaction));
    sa.sa_sigaction = ngx_http_apikey_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);

    if (sigaction(SIGBUS, &sa, &ngx_http_apikey_old_sigbus) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "sigaction(SIGBUS) failed");
    }

    if (sigaction(SIGSEGV, &sa, &ngx_http_apikey_old_sigsegv) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "sigaction(SIGSEGV) failed");
    }

    /*
     * open every database now; a failure is logged and retried by
     * requests, never fatal: a worker that fails here is not respawned
     */

    db = amcf->dbs.elts;

    for (i = 0; i < amcf->dbs.nelts; i++) {
        if (db[i]->env->handle == NULL) {
            db[i]->env->next_open = 0;
            (void) ngx_http_apikey_env_usable(cycle->log, db[i]);
        }
    }

    if (amcf->dbs.nelts && !ngx_http_apikey_watch_event.timer_set) {
        ngx_http_apikey_watch_event.handler = ngx_http_apikey_watch_handler;
        ngx_http_apikey_watch_event.log = cycle->log;
        ngx_http_apikey_watch_event.data = cycle;
        ngx_http_apikey_watch_event.cancelable = 1;

        ngx_add_timer(&ngx_http_apikey_watch_event, 1000);

        ngx_http_apikey_release_event.handler =
                                           ngx_http_apikey_release_handler;
        ngx_http_apikey_release_event.log = cycle->log;
        ngx_http_apikey_release_event.data = cycle;
        ngx_http_apikey_release_event.cancelable = 1;
    }

    return NGX_OK;
}


static void
ngx_http_apikey_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_apikey_env_t        *env;
    ngx_http_apikey_main_conf_t  *amcf;

    for (env = ngx_http_apikey_envs; env; env = env->next) {
        ngx_http_apikey_env_detach(env);
    }

    /* the slot is free for the next process, its counts kept */

    amcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_apikey_module);

    if (amcf != NULL && amcf->metrics != NULL) {
        ngx_http_apikey_metrics_release(amcf->metrics);
    }
}
