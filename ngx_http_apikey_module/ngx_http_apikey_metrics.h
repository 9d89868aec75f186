
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * The counters of apikey_metrics: one shared memory zone, a slot of
 * counters per worker process, written by that process alone with plain
 * increments and summed when scraped.
 */


#ifndef _NGX_HTTP_APIKEY_METRICS_H_INCLUDED_
#define _NGX_HTTP_APIKEY_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "apikey_core.h"


/* the outcomes of akc_status_e, AKC_STATUS_NONE included */
#define NGX_HTTP_APIKEY_METRICS_STATUSES  (AKC_STATUS_ERROR + 1)

/* server names in the zone; the last row counts those that do not fit */
#define NGX_HTTP_APIKEY_METRICS_SERVERS   64
#define NGX_HTTP_APIKEY_METRICS_NAME_LEN  255

/* a label value escaped: a byte may become 3, U+FFFD */
#define NGX_HTTP_APIKEY_METRICS_LABEL_LEN                                   \
    (3 * NGX_HTTP_APIKEY_METRICS_NAME_LEN)

/* slots of processes; one more, shared, once they are all taken */
#define NGX_HTTP_APIKEY_METRICS_SLOTS     128


typedef struct {
    ngx_atomic_t                  pid;      /* the owner; 0: free */
    ngx_atomic_t                  lookups;
    ngx_atomic_t                  lookup_errors;
    ngx_atomic_t                  reopens;
    ngx_atomic_t                  requests[NGX_HTTP_APIKEY_METRICS_SERVERS + 1]
                                          [NGX_HTTP_APIKEY_METRICS_STATUSES];
} ngx_http_apikey_metrics_slot_t;


/* a server's row in the zone, by its label: the name escaped */

typedef struct {
    u_short                       len;
    u_char                        data[NGX_HTTP_APIKEY_METRICS_LABEL_LEN];
} ngx_http_apikey_metrics_name_t;


/* the zone: server names, then slots; it outlives reloads */

typedef struct {
    ngx_atomic_t                  nservers;
    ngx_http_apikey_metrics_name_t  names[NGX_HTTP_APIKEY_METRICS_SERVERS];
    ngx_http_apikey_metrics_slot_t  slots[NGX_HTTP_APIKEY_METRICS_SLOTS + 1];
} ngx_http_apikey_metrics_sh_t;


typedef struct ngx_http_apikey_metrics_s  ngx_http_apikey_metrics_t;


/* the counters of one configuration cycle, as this process writes them */

struct ngx_http_apikey_metrics_s {
    ngx_shm_zone_t                   *zone;
    ngx_http_apikey_metrics_sh_t     *sh;
    ngx_http_apikey_metrics_slot_t   *slot;     /* NULL: not claimed yet */
    ngx_uint_t                        shared;   /* slot is the shared one */
    ngx_array_t                       servers;  /* of pointers */
};


/*
 * a server block's row, resolved at configuration time; allocated on its
 * own, as locations keep a pointer to it while more servers are added
 */

typedef struct {
    ngx_str_t                         name;
    ngx_str_t                         label;    /* name, escaped */
    ngx_uint_t                        index;    /* in the zone */
    ngx_atomic_uint_t                *row;      /* in this process's slot */
    ngx_http_apikey_metrics_t        *metrics;
} ngx_http_apikey_metrics_server_t;


/* what the module reads from one configured database, for a scrape */

typedef struct {
    ngx_str_t                         path;
    ngx_str_t                         label;    /* path, escaped */
    uint64_t                          usable;
    uint64_t                          follow;   /* the follow_* are set */
    uint64_t                          generation;
    uint64_t                          changed;
    uint64_t                          keys;
    uint64_t                          map_size;
    uint64_t                          map_used;
    uint64_t                          readers_used;
    uint64_t                          readers_max;
    uint64_t                          follow_version;
    uint64_t                          follow_synced;
} ngx_http_apikey_db_stats_t;


ngx_http_apikey_metrics_t *ngx_http_apikey_metrics_create(ngx_conf_t *cf);
ngx_http_apikey_metrics_server_t *ngx_http_apikey_metrics_server(
    ngx_conf_t *cf, ngx_http_apikey_metrics_t *m, ngx_str_t *name);
ngx_http_apikey_metrics_slot_t *ngx_http_apikey_metrics_claim(
    ngx_http_apikey_metrics_t *m);
void ngx_http_apikey_metrics_release(ngx_http_apikey_metrics_t *m);
ngx_int_t ngx_http_apikey_metrics_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_apikey_metrics_escape(ngx_pool_t *pool, ngx_str_t *value,
    ngx_str_t *label);

/*
 * in ngx_http_apikey_module.c: the counters of the request's
 * configuration, and the numbers of its n-th database (NGX_DECLINED past
 * the last one)
 */
ngx_http_apikey_metrics_t *ngx_http_apikey_get_metrics(
    ngx_http_request_t *r);
ngx_int_t ngx_http_apikey_db_stats(ngx_http_request_t *r, ngx_uint_t n,
    ngx_http_apikey_db_stats_t *st);


/*
 * The cost of counting on the request path: a few loads, two tests and
 * an increment.  A process writes its own slot only, so a plain
 * increment of an aligned word is enough (the scrape reads it whole);
 * the shared slot needs an atomic one.
 */

static ngx_inline void
ngx_http_apikey_metrics_request(ngx_http_apikey_metrics_server_t *srv,
    akc_status_e status)
{
    if (srv == NULL) {
        return;
    }

    if (srv->row == NULL && ngx_http_apikey_metrics_claim(srv->metrics)
                            == NULL)
    {
        return;
    }

    if (srv->metrics->shared) {
        (void) ngx_atomic_fetch_add((ngx_atomic_t *) &srv->row[status], 1);

    } else {
        srv->row[status]++;
    }
}


/* what: offsetof() a counter of ngx_http_apikey_metrics_slot_t */

#define ngx_http_apikey_metrics_lookup(m)                                    \
    ngx_http_apikey_metrics_event(m,                                         \
        offsetof(ngx_http_apikey_metrics_slot_t, lookups))
#define ngx_http_apikey_metrics_lookup_error(m)                              \
    ngx_http_apikey_metrics_event(m,                                         \
        offsetof(ngx_http_apikey_metrics_slot_t, lookup_errors))
#define ngx_http_apikey_metrics_reopen(m)                                    \
    ngx_http_apikey_metrics_event(m,                                         \
        offsetof(ngx_http_apikey_metrics_slot_t, reopens))


static ngx_inline void
ngx_http_apikey_metrics_event(ngx_http_apikey_metrics_t *m, size_t what)
{
    ngx_atomic_uint_t  *c;

    if (m == NULL
        || (m->slot == NULL && ngx_http_apikey_metrics_claim(m) == NULL))
    {
        return;
    }

    c = (ngx_atomic_uint_t *) ((u_char *) m->slot + what);

    if (m->shared) {
        (void) ngx_atomic_fetch_add((ngx_atomic_t *) c, 1);

    } else {
        (*c)++;
    }
}


#endif /* _NGX_HTTP_APIKEY_METRICS_H_INCLUDED_ */
