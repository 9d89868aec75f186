
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * The shared core: key format and checksum, the keyed hash, the record
 * encoding and the database layout.  Plain C with no nginx types; it is
 * compiled into both the nginx module and apikeyctl, so the on-disk
 * format is written exactly once.
 */


#ifndef _APIKEY_CORE_H_INCLUDED_
#define _APIKEY_CORE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>
#include <sodium.h>


#define AKC_FORMAT_VERSION      2

#define AKC_SECRET_LEN          32
#define AKC_HASH_LEN            32
#define AKC_FINGERPRINT_LEN     32

#define AKC_KEY_MIN_LEN         8
#define AKC_KEY_MAX_LEN         256
#define AKC_KEY_RUN_MIN         32      /* a random token: 24 bytes in
                                           urlsafe base64, a key's body */
#define AKC_KEY_RUN_CHANGES     5       /* "aB", "a1", "1a" in it */
#define AKC_PREFIX_PART_MAX     16
#define AKC_PREFIX_MAX_LEN      (2 * AKC_PREFIX_PART_MAX + 1)
#define AKC_RANDOM_LEN          32
#define AKC_CHECKSUM_LEN        6
#define AKC_GEN_TAIL_LEN        (AKC_RANDOM_LEN + AKC_CHECKSUM_LEN)
#define AKC_GEN_KEY_MAX_LEN     (AKC_PREFIX_MAX_LEN + 1 + AKC_GEN_TAIL_LEN)
#define AKC_DEFAULT_PREFIX      "ak"

#define AKC_ID_MAX_LEN          128
#define AKC_SUBJECT_MAX_LEN     256
#define AKC_SCOPES_MAX_LEN      1024
#define AKC_PLAN_MAX_LEN        64
#define AKC_HINT_MAX_LEN        48

#define AKC_TIME_LEN            20      /* "2027-01-31T00:00:00Z" */

#define AKC_RECORD_VERSION      1
#define AKC_RECORD_HEADER_LEN   28
#define AKC_RECORD_MAX_LEN                                                    \
    (AKC_RECORD_HEADER_LEN + 7 * 2 + 3 * AKC_ID_MAX_LEN                     \
     + AKC_SUBJECT_MAX_LEN + AKC_SCOPES_MAX_LEN + AKC_PLAN_MAX_LEN            \
     + AKC_HINT_MAX_LEN)

#define AKC_FLAG_DISABLED       0x01
#define AKC_FLAG_RETIRED        0x02    /* replaced: its end is kept */
#define AKC_FLAGS               (AKC_FLAG_DISABLED|AKC_FLAG_RETIRED)

/* the database layout */
#define AKC_MAXDBS              4
#define AKC_MAXREADERS          510
#define AKC_DEFAULT_MAPSIZE     ((size_t) 8 << 30)
#define AKC_DB_KEYS             "keys"
#define AKC_DB_IDS              "ids"
#define AKC_DB_META             "meta"
#define AKC_META_FORMAT         "format"
#define AKC_META_FINGERPRINT    "fingerprint"
#define AKC_META_GENERATION     "generation"
#define AKC_META_CHANGED        "changed"
#define AKC_META_MAPSIZE        "map_size"
/* written by apikeyctl follow: the PostgreSQL version reached, the
 * unix time of its last successful poll, and the generation its last
 * commit produced (another one in "generation": another writer) */
#define AKC_META_FOLLOW_VERSION "follow_version"
#define AKC_META_FOLLOW_SYNCED  "follow_synced"
#define AKC_META_FOLLOW_GENERATION  "follow_generation"
/* and the PostgreSQL database followed: "<system identifier>/<name>" */
#define AKC_META_FOLLOW_SOURCE  "follow_source"
#define AKC_DATA_FILE           "data.mdb"
#define AKC_LOCK_FILE           "lock.mdb"


typedef enum {
    AKC_KEY_INVALID = 0,        /* wrong length or characters */
    AKC_KEY_BAD_CHECKSUM,       /* the generated shape, wrong checksum */
    AKC_KEY_GENERATED,          /* the generated shape, checksum correct */
    AKC_KEY_PLAIN               /* any other acceptable string */
} akc_key_kind_e;


typedef enum {
    AKC_STATUS_NONE = 0,
    AKC_STATUS_VALID,
    AKC_STATUS_MISSING,
    AKC_STATUS_MALFORMED,
    AKC_STATUS_UNKNOWN,
    AKC_STATUS_EXPIRED,
    AKC_STATUS_NOT_YET_VALID,
    AKC_STATUS_DISABLED,
    AKC_STATUS_FORBIDDEN,
    AKC_STATUS_ERROR
} akc_status_e;


/* results of akc_meta_check() */
#define AKC_OK                  0
#define AKC_ERROR               -1
#define AKC_EUNINIT             -2      /* no meta: not initialized */
#define AKC_EFORMAT             -3      /* unknown format version */
#define AKC_ESECRET             -4      /* made with another secret */
#define AKC_EOLDFORMAT          -5      /* format 1: the old hash */

/* results of akc_env_check() */
#define AKC_ETRUNCATED          -6      /* data file shorter than its pages */
#define AKC_ELOCK               -7      /* lock file not the data file's */
#define AKC_ELAG                -8      /* a reader one commit behind */


typedef struct {
    size_t                  len;
    const char             *data;
} akc_str_t;


/* one argument of a query string or one cookie: where it is, its value */

typedef struct {
    size_t                  start;      /* the name */
    size_t                  end;        /* past the value */
    akc_str_t               value;      /* raw: not decoded */
} akc_field_t;


/* after changing bytes, call akc_secret_prepare(); parsing does */

typedef struct {
    unsigned char           bytes[AKC_SECRET_LEN];
    unsigned char           prepared[
                                sizeof(crypto_generichash_blake2b_state)];
} akc_secret_t;


typedef struct {
    int64_t                 created;
    int64_t                 not_before;     /* 0: no lower bound */
    int64_t                 expires;        /* 0: never */
    unsigned                flags;
    akc_str_t               id;
    akc_str_t               subject;
    akc_str_t               scopes;
    akc_str_t               plan;
    akc_str_t               hint;
    akc_str_t               replaces;       /* rotation links: ids, */
    akc_str_t               replaced_by;    /* both absent in most */
    akc_str_t               strings;    /* decoded: all the strings lie in
                                           it, to be copied at once */
} akc_record_t;


typedef struct {
    MDB_dbi                 keys;
    MDB_dbi                 ids;
    MDB_dbi                 meta;
} akc_dbs_t;


/* what "apikeyctl stats" and apikey_metrics report, read the same way */

typedef struct {
    uint64_t                format;
    uint64_t                generation;
    uint64_t                changed;
    uint64_t                follow_version;     /* if followed */
    uint64_t                follow_synced;
    uint64_t                keys;
    uint64_t                map_size;
    uint64_t                map_used;
    uint64_t                readers_used;       /* of live processes */
    uint64_t                readers_max;
    unsigned                followed:1;
} akc_stats_t;


int akc_init(void);

int akc_secret_parse(akc_secret_t *secret, const char *text, size_t len);
void akc_secret_prepare(akc_secret_t *secret);
int akc_secret_load(akc_secret_t *secret, const char *path, char *err,
    size_t errlen);
void akc_secret_format(const akc_secret_t *secret,
    char out[2 * AKC_SECRET_LEN + 1]);
void akc_secret_fingerprint(const akc_secret_t *secret,
    unsigned char out[AKC_FINGERPRINT_LEN]);
void akc_hash(const akc_secret_t *secret, const unsigned char *key,
    size_t len, unsigned char out[AKC_HASH_LEN]);

int akc_prefix_valid(const char *prefix, size_t len);
akc_key_kind_e akc_key_classify(const unsigned char *key, size_t len);
int akc_key_generate(const char *prefix, char *out, size_t size);
size_t akc_key_hint(const unsigned char *key, size_t len,
    char out[AKC_HINT_MAX_LEN + 1]);
void akc_checksum(const unsigned char *data, size_t len,
    char out[AKC_CHECKSUM_LEN]);

int akc_id_valid(const char *s, size_t len);
int akc_text_valid(const char *s, size_t len, size_t max);
int akc_scopes_valid(const char *s, size_t len);
int akc_plan_valid(const char *s, size_t len);
int akc_scopes_contain(const akc_str_t *scopes, const char *scope,
    size_t len);

size_t akc_record_size(const akc_record_t *rec);
int akc_record_encode(const akc_record_t *rec, unsigned char *buf,
    size_t size);
int akc_record_decode(akc_record_t *rec, const unsigned char *buf,
    size_t size);
akc_status_e akc_record_status(const akc_record_t *rec, int64_t now);

const char *akc_status_name(akc_status_e status);

int akc_time_parse(const char *s, size_t len, int64_t now, int64_t *out);
size_t akc_time_format(int64_t t, char out[AKC_TIME_LEN + 1]);

int akc_dbs_open(MDB_txn *txn, akc_dbs_t *dbs, unsigned flags);
int akc_meta_check(MDB_txn *txn, const akc_dbs_t *dbs,
    const akc_secret_t *secret);
int akc_meta_init(MDB_txn *txn, const akc_dbs_t *dbs,
    const akc_secret_t *secret, int64_t now);
int akc_meta_touch(MDB_txn *txn, const akc_dbs_t *dbs, int64_t now);
int akc_meta_get_u64(MDB_txn *txn, const akc_dbs_t *dbs, const char *name,
    uint64_t *value);
int akc_meta_put_u64(MDB_txn *txn, const akc_dbs_t *dbs, const char *name,
    uint64_t value);
const char *akc_meta_strerror(int rc);
int akc_stats(MDB_env *env, MDB_txn *txn, const akc_dbs_t *dbs, long self,
    akc_stats_t *st, const char **what);

int akc_env_check(MDB_txn *txn, int write);
int akc_auth_parse(const unsigned char *value, size_t len,
    const char *scheme, size_t scheme_len, akc_str_t *key);
int akc_query_next(const unsigned char *args, size_t len, size_t *pos,
    const char *name, size_t name_len, akc_field_t *f);
int akc_cookie_next(const unsigned char *value, size_t len, size_t *pos,
    const char *name, size_t name_len, akc_field_t *f);
int akc_pct_decode(const unsigned char *in, size_t len, unsigned char *out,
    size_t *out_len);
size_t akc_field_remove(const unsigned char *in, size_t len,
    const akc_field_t *f, char sep, unsigned char *out);
size_t akc_key_run(const unsigned char *p, size_t len, size_t *pos);
size_t akc_mask_keys(unsigned char *p, size_t len);

akc_status_e akc_check_key(MDB_txn *txn, const akc_dbs_t *dbs,
    const akc_secret_t *secret, const unsigned char *key, size_t len,
    int64_t now, akc_record_t *rec, int *mdb_rc);
akc_status_e akc_lookup_key(MDB_txn *txn, const akc_dbs_t *dbs,
    const akc_secret_t *secret, const unsigned char *key, size_t len,
    int64_t now, akc_record_t *rec, int *mdb_rc);


#endif /* _APIKEY_CORE_H_INCLUDED_ */
