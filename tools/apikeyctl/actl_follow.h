
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl follow: what its files share.  Only they see libpq; actl.h
 * names the command alone.
 */


#ifndef _ACTL_FOLLOW_H_INCLUDED_
#define _ACTL_FOLLOW_H_INCLUDED_


#include "actl.h"

#include <libpq-fe.h>
#include <sys/file.h>


#define ACTL_FOLLOW_CHANNEL     "apikey_keys"
#define ACTL_FOLLOW_CONNINFO_ENV "APIKEY_FOLLOW_CONNINFO"
#define ACTL_FOLLOW_POLL_MS     1000
#define ACTL_FOLLOW_BACKOFF_MAX 30000   /* ms */
#define ACTL_FOLLOW_BATCH       25000   /* changes a write transaction */
#define ACTL_FOLLOW_NFIELDS     11      /* the columns read, version last */
#define ACTL_FOLLOW_SOURCE_LEN  128     /* "<system identifier>/<dbname>" */

/*
 * Idle, follow_synced is written at most this often (s): a commit a
 * poll would cost fsyncs, and every nginx worker a new snapshot
 */
#define ACTL_FOLLOW_SYNCED_EVERY 30

/* the states logged when they change */
#define ACTL_FOLLOW_START       0
#define ACTL_FOLLOW_UP          1
#define ACTL_FOLLOW_DOWN        2

/*
 * Internal answers, negative as ACTL_MAP_FULL and ACTL_UNCHANGED are,
 * never taken for an exit code: a write refused, the database written
 * by another process; a local failure (out of memory...) while reading
 * PostgreSQL, which exits 1 rather than being retried as an outage.
 */
#define ACTL_FOLLOW_FOREIGN     -3
#define ACTL_FOLLOW_LOCAL       -4


/* one change: a row (in imp) or a tombstone, in version order */

typedef struct {
    uint64_t                version;
    uint32_t                row;        /* in imp->rows: a valid row */
    uint32_t                id_off;     /* the id, in the follower's ids */
    uint8_t                 id_len;
    unsigned                tombstone:1;
    unsigned                invalid:1;  /* a row that did not validate */
    unsigned                has_hash:1;
    unsigned char           hash[AKC_HASH_LEN];
} actl_change_t;


typedef struct {
    actl_ctx_t             *ctx;
    const char             *conninfo;
    const char             *conninfo_name;  /* where it came from */
    PGconn                 *conn;
    actl_import_t          *imp;

    uint64_t                version;    /* reached, as in meta */
    uint64_t                generation; /* its last commit produced */
    uint64_t                produced;   /* the one being committed */
    uint64_t                target;     /* what the write reaches */
    uint64_t                pruned;     /* PostgreSQL's low-water mark */
    uint64_t                last;       /* its sequence's last value */
    int64_t                 poll;       /* ms */
    int64_t                 backoff;    /* ms */
    time_t                  synced_at;  /* follow_synced last written,
                                           monotonic; 0: not yet */
    int                     state;
    struct stat             lock;       /* lock.mdb, at start-up */

    actl_change_t          *changes;
    size_t                  nchanges;
    size_t                  nchanges_alloc;
    char                   *ids;
    size_t                  ids_len;
    size_t                  ids_size;

    uint64_t                rows;       /* of the last full sync */
    uint64_t                invalid;

    unsigned                once:1;
    unsigned                synced:1;   /* meta has a version */
    unsigned                full:1;     /* a full sync is due */
    unsigned                foreign:1;  /* another writer: a full sync */

    /* the PostgreSQL database: "" when it cannot tell, or none in meta */
    char                    source[ACTL_FOLLOW_SOURCE_LEN + 1];
    char                    source_meta[ACTL_FOLLOW_SOURCE_LEN + 1];
} actl_follow_t;


/* actl_follow_pg.c: PostgreSQL */

int actl_follow_check_conninfo(actl_follow_t *fl);
int actl_follow_connect(actl_follow_t *fl);
void actl_follow_disconnect(actl_follow_t *fl);
int actl_follow_read_state(actl_follow_t *fl);
int actl_follow_read_all(actl_follow_t *fl);
int actl_follow_read_changes(actl_follow_t *fl, int *more);
int actl_follow_wait(actl_follow_t *fl, int64_t ms);
void actl_follow_pg_error(actl_follow_t *fl, const char *what);
int actl_follow_row(actl_follow_t *fl, char **f, size_t *len,
    int tombstone);


/* actl_follow_write.c: the local database */

int actl_follow_lock(actl_follow_t *fl);
int actl_follow_check_env(actl_follow_t *fl);
int actl_follow_load(actl_follow_t *fl);
int actl_follow_write_all(actl_follow_t *fl);
int actl_follow_write_changes(actl_follow_t *fl);
int actl_follow_synced_due(actl_follow_t *fl);
int actl_follow_write_synced(actl_follow_t *fl);
int actl_follow_check_writer(actl_follow_t *fl);
void actl_follow_reset(actl_follow_t *fl);


/* actl_follow_schema.c: the SQL */

extern const char  actl_follow_schema[];


extern volatile sig_atomic_t  actl_follow_stop;


#endif /* _ACTL_FOLLOW_H_INCLUDED_ */
