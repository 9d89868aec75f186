
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikey_metrics: the Prometheus text exposition format (version 0.0.4).
 *
 * The counters live in one shared memory zone, "apikey_metrics", of a
 * fixed size, so that a reload finds it again with its counts.  A
 * process claims a slot of its own (a free one, or one whose owner has
 * died) by a compare-and-set of the owner's pid, and writes it alone,
 * with plain increments and no lock; a scrape sums the slots.  A process
 * that exits gives its slot back, and one that was killed leaves it with
 * its pid: either way the counts stay, and the next process to take the
 * slot adds to them.  When every slot is taken, a process counts in the
 * shared one, with atomic increments.
 *
 * The requests are counted by the first name of their server block:
 * each name gets a row of the zone at configuration time, in the master,
 * and a location knows its row, so that counting a request is a few
 * instructions (ngx_http_apikey_metrics_request()).
 *
 * Label values come from the configuration (server names, database
 * paths): they are escaped once, when configured, and a scrape copies
 * them.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "apikey_core.h"
#include "ngx_http_apikey_metrics.h"


/*
 * the row of the names that do not fit: nginx lowercases a server_name
 * that is not a regular expression (and those begin with "~"), so no
 * server block can have this one
 */
#define NGX_HTTP_APIKEY_METRICS_OTHER     "(OTHER)"

/* room for a sample's line, besides its escaped label values */
#define NGX_HTTP_APIKEY_METRICS_LINE      256

#define NGX_HTTP_APIKEY_METRICS_BUFSIZE   8192

/* the name and value of a label, for ngx_http_apikey_metrics_sample() */
#define ngx_http_apikey_metrics_label(l, n, v)                               \
    ngx_str_set(&(l)[0], n); (l)[1] = *(v)

/* a field of ngx_http_apikey_db_stats_t, for a gauge */
#define ngx_http_apikey_metrics_field(name)                                  \
    offsetof(ngx_http_apikey_db_stats_t, name)

#define NGX_HTTP_APIKEY_METRICS_ALWAYS    ((size_t) -1)


typedef struct {
    ngx_http_request_t           *request;
    ngx_chain_t                  *out;
    ngx_chain_t                 **last;
    ngx_buf_t                    *buf;
    off_t                         size;
} ngx_http_apikey_metrics_out_t;


/* a counter of the processes, without labels: offset, in the sums */

typedef struct {
    const char                   *name;
    const char                   *help;
    size_t                        offset;
} ngx_http_apikey_metrics_counter_t;


/* a gauge of each database: cond, a field that must not be 0 for it */

typedef struct {
    const char                   *name;
    const char                   *help;
    size_t                        cond;
    size_t                        field;
} ngx_http_apikey_metrics_gauge_t;


typedef struct {
    ngx_atomic_uint_t             lookups;
    ngx_atomic_uint_t             lookup_errors;
    ngx_atomic_uint_t             reopens;
    ngx_atomic_uint_t             requests[NGX_HTTP_APIKEY_METRICS_SERVERS + 1]
                                          [NGX_HTTP_APIKEY_METRICS_STATUSES];
} ngx_http_apikey_metrics_sum_t;


static ngx_int_t ngx_http_apikey_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_uint_t ngx_http_apikey_metrics_row(ngx_http_apikey_metrics_sh_t *sh,
    ngx_str_t *label);
static void ngx_http_apikey_metrics_cleanup(void *data);
static void ngx_http_apikey_metrics_use(ngx_http_apikey_metrics_t *m,
    ngx_http_apikey_metrics_slot_t *slot, ngx_uint_t shared);
static ngx_uint_t ngx_http_apikey_metrics_dead(ngx_pid_t pid);
static void ngx_http_apikey_metrics_sum(ngx_http_apikey_metrics_sh_t *sh,
    ngx_http_apikey_metrics_sum_t *sum);
static ngx_int_t ngx_http_apikey_metrics_requests(
    ngx_http_apikey_metrics_out_t *o, ngx_http_apikey_metrics_sh_t *sh,
    ngx_http_apikey_metrics_sum_t *sum);
static ngx_int_t ngx_http_apikey_metrics_dbs(ngx_http_apikey_metrics_out_t *o);
static ngx_int_t ngx_http_apikey_metrics_db_gauge(
    ngx_http_apikey_metrics_out_t *o, ngx_http_apikey_metrics_gauge_t *g,
    ngx_http_apikey_db_stats_t *st, ngx_uint_t n);
static ngx_int_t ngx_http_apikey_metrics_family(
    ngx_http_apikey_metrics_out_t *o, const char *name, const char *type,
    const char *help);
static ngx_int_t ngx_http_apikey_metrics_sample(
    ngx_http_apikey_metrics_out_t *o, const char *name, ngx_str_t *labels,
    ngx_uint_t nlabels, uint64_t value);
static u_char *ngx_http_apikey_metrics_room(ngx_http_apikey_metrics_out_t *o,
    size_t size);
static size_t ngx_http_apikey_metrics_utf8(u_char *p, u_char *last);


extern ngx_module_t  ngx_http_apikey_module;


static ngx_http_apikey_metrics_counter_t  ngx_http_apikey_metrics_counters[] =
{
    { "apikey_lookups_total",
      "Keys looked up in a database.",
      offsetof(ngx_http_apikey_metrics_sum_t, lookups) },

    { "apikey_lookup_errors_total",
      "Lookups that failed: the open database could not be read. A "
      "database that is not open (missing, damaged, of another secret) "
      "does no lookup: see apikey_db_usable.",
      offsetof(ngx_http_apikey_metrics_sum_t, lookup_errors) },

    { "apikey_env_reopens_total",
      "Databases opened again by a worker after it had closed them "
      "(replaced, unusable, recovered).",
      offsetof(ngx_http_apikey_metrics_sum_t, reopens) },

    { NULL, NULL, 0 }
};


static ngx_http_apikey_metrics_gauge_t  ngx_http_apikey_metrics_gauges[] = {

    { "apikey_db_usable",
      "1 if the database can be read, 0 if the requests that need it are "
      "answered 503.",
      NGX_HTTP_APIKEY_METRICS_ALWAYS,
      ngx_http_apikey_metrics_field(usable) },

    { "apikey_db_generation",
      "The generation counter of the database, bumped by every write.",
      ngx_http_apikey_metrics_field(usable),
      ngx_http_apikey_metrics_field(generation) },

    { "apikey_db_last_change_timestamp_seconds",
      "Time of the last write, in seconds since the epoch.",
      ngx_http_apikey_metrics_field(usable),
      ngx_http_apikey_metrics_field(changed) },

    { "apikey_db_keys",
      "Keys in the database, whatever their status.",
      ngx_http_apikey_metrics_field(usable),
      ngx_http_apikey_metrics_field(keys) },

    { "apikey_db_map_size_bytes",
      "Size of the memory map.",
      ngx_http_apikey_metrics_field(usable),
      ngx_http_apikey_metrics_field(map_size) },

    { "apikey_db_map_used_bytes",
      "Bytes of the map in use, up to the last page written.",
      ngx_http_apikey_metrics_field(usable),
      ngx_http_apikey_metrics_field(map_used) },

    { "apikey_db_readers",
      "Reader slots of the lock file held by live processes.",
      ngx_http_apikey_metrics_field(usable),
      ngx_http_apikey_metrics_field(readers_used) },

    { "apikey_db_readers_max",
      "Reader slots in the lock file.",
      ngx_http_apikey_metrics_field(usable),
      ngx_http_apikey_metrics_field(readers_max) },

    { "apikey_db_follow_version",
      "The PostgreSQL version that apikeyctl follow has reached.",
      ngx_http_apikey_metrics_field(follow),
      ngx_http_apikey_metrics_field(follow_version) },

    { "apikey_db_follow_synced_timestamp_seconds",
      "Time of the last successful poll of apikeyctl follow.",
      ngx_http_apikey_metrics_field(follow),
      ngx_http_apikey_metrics_field(follow_synced) },

    { NULL, NULL, 0, 0 }
};


ngx_http_apikey_metrics_t *
ngx_http_apikey_metrics_create(ngx_conf_t *cf)
{
    size_t                      size;
    ngx_str_t                   name;
    ngx_pool_cleanup_t         *cln;
    ngx_http_apikey_metrics_t  *m;

    m = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_metrics_t));
    if (m == NULL) {
        return NULL;
    }

    if (ngx_array_init(&m->servers, cf->pool, 4,
                       sizeof(ngx_http_apikey_metrics_server_t *))
        != NGX_OK)
    {
        return NULL;
    }

    /*
     * the same name, size and tag at every reload: nginx then keeps the
     * zone, and its counts, from one configuration to the next
     */

    ngx_str_set(&name, "apikey_metrics");

    size = ngx_align(sizeof(ngx_http_apikey_metrics_sh_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    m->zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_apikey_module);
    if (m->zone == NULL) {
        return NULL;
    }

    if (m->zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared memory zone \"%V\" is already used",
                           &name);
        return NULL;
    }

    m->zone->init = ngx_http_apikey_metrics_init_zone;
    m->zone->data = m;

    /* the slot goes back when the configuration does (a reload) */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_apikey_metrics_cleanup;
    cln->data = m;

    return m;
}


ngx_http_apikey_metrics_server_t *
ngx_http_apikey_metrics_server(ngx_conf_t *cf, ngx_http_apikey_metrics_t *m,
    ngx_str_t *name)
{
    ngx_uint_t                          i;
    ngx_http_apikey_metrics_server_t   *srv, **srvp;

    /* a row a name; the zone's row is found when the zone is ready */

    srvp = m->servers.elts;

    for (i = 0; i < m->servers.nelts; i++) {
        if (srvp[i]->name.len == name->len
            && ngx_strncmp(srvp[i]->name.data, name->data, name->len) == 0)
        {
            return srvp[i];
        }
    }

    /*
     * apart from the array, which moves as it grows: locations keep
     * this pointer
     */

    srv = ngx_pcalloc(cf->pool, sizeof(ngx_http_apikey_metrics_server_t));
    if (srv == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     srv->label = { 0, NULL };
     *     srv->row = NULL;
     */

    if (name->len > NGX_HTTP_APIKEY_METRICS_NAME_LEN) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "apikey_metrics counts the requests of a server "
                           "name longer than %d bytes as server=\""
                           NGX_HTTP_APIKEY_METRICS_OTHER "\", \"%*s...\"",
                           NGX_HTTP_APIKEY_METRICS_NAME_LEN, (size_t) 32,
                           name->data);

    } else if (ngx_http_apikey_metrics_escape(cf->pool, name, &srv->label)
               != NGX_OK)
    {
        return NULL;
    }

    srvp = ngx_array_push(&m->servers);
    if (srvp == NULL) {
        return NULL;
    }

    *srvp = srv;

    srv->name = *name;
    srv->index = NGX_HTTP_APIKEY_METRICS_SERVERS;
    srv->metrics = m;

    return srv;
}


static ngx_int_t
ngx_http_apikey_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_apikey_metrics_t *m = shm_zone->data;

    ngx_str_t                          *first;
    ngx_uint_t                          i, full;
    ngx_slab_pool_t                    *shpool;
    ngx_http_apikey_metrics_sh_t       *sh;
    ngx_http_apikey_metrics_server_t  **srv;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data || shm_zone->shm.exists) {

        /* the zone of the configuration before, counts and names */

        sh = shpool->data;

    } else {
        sh = ngx_slab_calloc(shpool, sizeof(ngx_http_apikey_metrics_sh_t));
        if (sh == NULL) {
            return NGX_ERROR;
        }

        shpool->data = sh;
        shpool->log_nomem = 0;
    }

    m->sh = sh;

    /*
     * Only the master writes names, here, while workers may read them:
     * a name is whole before the count that shows it.  Names are never
     * taken out, as their counts stay: a zone that has had 64 names,
     * over every configuration since it was made, counts a new one in
     * the last row.  A name too long was warned of already.
     */

    first = NULL;
    full = 0;

    srv = m->servers.elts;

    for (i = 0; i < m->servers.nelts; i++) {

        if (srv[i]->name.len > NGX_HTTP_APIKEY_METRICS_NAME_LEN) {
            continue;
        }

        srv[i]->index = ngx_http_apikey_metrics_row(sh, &srv[i]->label);

        if (srv[i]->index == NGX_HTTP_APIKEY_METRICS_SERVERS && full++ == 0) {
            first = &srv[i]->name;
        }
    }

    if (full) {
        ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                      "apikey_metrics counts the requests of more than %d "
                      "server names as server=\""
                      NGX_HTTP_APIKEY_METRICS_OTHER "\", such as \"%V\" "
                      "(%ui names of this configuration; the zone keeps "
                      "the names of every configuration since nginx "
                      "started)",
                      NGX_HTTP_APIKEY_METRICS_SERVERS, first, full);
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_apikey_metrics_row(ngx_http_apikey_metrics_sh_t *sh, ngx_str_t *label)
{
    ngx_uint_t                       i, n;
    ngx_http_apikey_metrics_name_t  *name;

    /* names that look the same share a row: a series has one label set */

    n = sh->nservers;

    for (i = 0; i < n; i++) {
        name = &sh->names[i];

        if (name->len == label->len
            && ngx_memcmp(name->data, label->data, label->len) == 0)
        {
            return i;
        }
    }

    if (n == NGX_HTTP_APIKEY_METRICS_SERVERS) {
        return NGX_HTTP_APIKEY_METRICS_SERVERS;
    }

    name = &sh->names[n];
    name->len = (u_short) label->len;
    ngx_memcpy(name->data, label->data, label->len);

    ngx_memory_barrier();

    sh->nservers = n + 1;

    return n;
}


ngx_http_apikey_metrics_slot_t *
ngx_http_apikey_metrics_claim(ngx_http_apikey_metrics_t *m)
{
    ngx_pid_t                        pid;
    ngx_uint_t                       i;
    ngx_http_apikey_metrics_sh_t    *sh;
    ngx_http_apikey_metrics_slot_t  *slot;

    sh = m->sh;

    if (sh == NULL) {
        return NULL;
    }

    /*
     * A free slot, or one whose owner is gone (a worker killed), or one
     * that is this process's already (a reload without a master); the
     * compare-and-set settles a race between two processes.
     */

    for (i = 0; i < NGX_HTTP_APIKEY_METRICS_SLOTS; i++) {
        slot = &sh->slots[i];
        pid = (ngx_pid_t) slot->pid;

        if (pid == ngx_pid
            || ((pid == 0 || ngx_http_apikey_metrics_dead(pid))
                && ngx_atomic_cmp_set(&slot->pid, (ngx_atomic_uint_t) pid,
                                      (ngx_atomic_uint_t) ngx_pid)))
        {
            ngx_http_apikey_metrics_use(m, slot, 0);
            return slot;
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "apikey_metrics: all %d slots are taken, counting in the "
                  "shared one", NGX_HTTP_APIKEY_METRICS_SLOTS);

    slot = &sh->slots[NGX_HTTP_APIKEY_METRICS_SLOTS];

    ngx_http_apikey_metrics_use(m, slot, 1);

    return slot;
}


static void
ngx_http_apikey_metrics_use(ngx_http_apikey_metrics_t *m,
    ngx_http_apikey_metrics_slot_t *slot, ngx_uint_t shared)
{
    ngx_uint_t                          i;
    ngx_http_apikey_metrics_server_t  **srv;

    /*
     * each server's row of the slot, where requests count without
     * another lookup; the plain increments need no "volatile"
     */

    m->slot = slot;
    m->shared = shared;

    srv = m->servers.elts;

    for (i = 0; i < m->servers.nelts; i++) {
        srv[i]->row = (slot != NULL)
                      ? (ngx_atomic_uint_t *) slot->requests[srv[i]->index]
                      : NULL;
    }
}


static ngx_uint_t
ngx_http_apikey_metrics_dead(ngx_pid_t pid)
{
    /* EPERM: alive, as another user */

    return kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH;
}


void
ngx_http_apikey_metrics_release(ngx_http_apikey_metrics_t *m)
{
    ngx_http_apikey_metrics_slot_t  *slot;

    slot = m->slot;

    ngx_http_apikey_metrics_use(m, NULL, 0);

    if (slot == NULL || m->shared) {
        return;
    }

    /* its counts stay, for the next owner to add to */

    (void) ngx_atomic_cmp_set(&slot->pid, (ngx_atomic_uint_t) ngx_pid, 0);
}


static void
ngx_http_apikey_metrics_cleanup(void *data)
{
    ngx_http_apikey_metrics_t *m = data;

    /*
     * the old configuration of a process that goes on (without a master):
     * its slot is this process's in the new one too, if the zone stayed;
     * and the zone may be gone already, so it is not touched
     */

    ngx_http_apikey_metrics_use(m, NULL, 0);
    m->sh = NULL;
}


ngx_int_t
ngx_http_apikey_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_table_elt_t                    *h;
    ngx_http_apikey_metrics_t          *m;
    ngx_http_apikey_metrics_sh_t       *sh;
    ngx_http_apikey_metrics_out_t       o;
    ngx_http_apikey_metrics_sum_t      *sum;
    ngx_http_apikey_metrics_counter_t  *c;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {

        /* a 405 names the methods allowed (RFC 9110, 15.5.6) */

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
        ngx_str_set(&h->key, "Allow");
        ngx_str_set(&h->value, "GET, HEAD");

        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    m = ngx_http_apikey_get_metrics(r);

    if (m == NULL || m->sh == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sh = m->sh;

    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;
    r->headers_out.content_type_lowcase = NULL;

    sum = ngx_pcalloc(r->pool, sizeof(ngx_http_apikey_metrics_sum_t));
    if (sum == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_apikey_metrics_sum(sh, sum);

    ngx_memzero(&o, sizeof(ngx_http_apikey_metrics_out_t));
    o.request = r;
    o.last = &o.out;

    if (ngx_http_apikey_metrics_requests(&o, sh, sum) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (c = ngx_http_apikey_metrics_counters; c->name; c++) {
        if (ngx_http_apikey_metrics_family(&o, c->name, "counter", c->help)
            != NGX_OK
            || ngx_http_apikey_metrics_sample(&o, c->name, NULL, 0,
                   *(ngx_atomic_uint_t *) ((u_char *) sum + c->offset))
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_apikey_metrics_dbs(&o) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    o.buf->last_buf = (r == r->main) ? 1 : 0;
    o.buf->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = o.size;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, o.out);
}


static void
ngx_http_apikey_metrics_sum(ngx_http_apikey_metrics_sh_t *sh,
    ngx_http_apikey_metrics_sum_t *sum)
{
    ngx_uint_t                       i, j, k;
    ngx_http_apikey_metrics_slot_t  *slot;

    /* every slot, the free ones too: counts outlive their processes */

    for (i = 0; i <= NGX_HTTP_APIKEY_METRICS_SLOTS; i++) {
        slot = &sh->slots[i];

        sum->lookups += slot->lookups;
        sum->lookup_errors += slot->lookup_errors;
        sum->reopens += slot->reopens;

        for (j = 0; j <= NGX_HTTP_APIKEY_METRICS_SERVERS; j++) {
            for (k = 0; k < NGX_HTTP_APIKEY_METRICS_STATUSES; k++) {
                sum->requests[j][k] += slot->requests[j][k];
            }
        }
    }
}


static ngx_int_t
ngx_http_apikey_metrics_requests(ngx_http_apikey_metrics_out_t *o,
    ngx_http_apikey_metrics_sh_t *sh, ngx_http_apikey_metrics_sum_t *sum)
{
    ngx_str_t    labels[4], server, status;
    ngx_uint_t   i, n, k, other;

    if (ngx_http_apikey_metrics_family(o, "apikey_requests_total", "counter",
            "Requests decided by apikey on or optional, by $apikey_status "
            "and by the first server_name of their server block.")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    n = sh->nservers;

    ngx_memory_barrier();

    other = 0;

    for (k = 0; k < NGX_HTTP_APIKEY_METRICS_STATUSES; k++) {
        other |= (sum->requests[NGX_HTTP_APIKEY_METRICS_SERVERS][k] != 0);
    }

    for (i = 0; i <= NGX_HTTP_APIKEY_METRICS_SERVERS; i++) {

        if (i < n) {
            server.len = sh->names[i].len;
            server.data = sh->names[i].data;

        } else if (i == NGX_HTTP_APIKEY_METRICS_SERVERS && other) {
            ngx_str_set(&server, NGX_HTTP_APIKEY_METRICS_OTHER);

        } else {
            continue;
        }

        /* AKC_STATUS_NONE, no decision, is never counted */

        for (k = AKC_STATUS_NONE + 1; k < NGX_HTTP_APIKEY_METRICS_STATUSES;
             k++)
        {
            status.data = (u_char *) akc_status_name(k);
            status.len = ngx_strlen(status.data);

            ngx_http_apikey_metrics_label(&labels[0], "server", &server);
            ngx_http_apikey_metrics_label(&labels[2], "status", &status);

            if (ngx_http_apikey_metrics_sample(o, "apikey_requests_total",
                                               labels, 2, sum->requests[i][k])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_metrics_dbs(ngx_http_apikey_metrics_out_t *o)
{
    ngx_int_t                         rc;
    ngx_array_t                       stats;
    ngx_http_apikey_db_stats_t       *st;
    ngx_http_apikey_metrics_gauge_t  *g;

    /* every database read now, by this worker */

    if (ngx_array_init(&stats, o->request->pool, 2,
                       sizeof(ngx_http_apikey_db_stats_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for ( ;; ) {
        st = ngx_array_push(&stats);
        if (st == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_apikey_db_stats(o->request, stats.nelts - 1, st);

        if (rc == NGX_DECLINED) {
            stats.nelts--;
            break;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }
    }

    st = stats.elts;

    for (g = ngx_http_apikey_metrics_gauges; g->name; g++) {
        if (ngx_http_apikey_metrics_db_gauge(o, g, st, stats.nelts)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_metrics_db_gauge(ngx_http_apikey_metrics_out_t *o,
    ngx_http_apikey_metrics_gauge_t *g, ngx_http_apikey_db_stats_t *st,
    ngx_uint_t n)
{
    u_char      *p;
    ngx_str_t    labels[2];
    ngx_uint_t   i, header;

    /* a sample a database that has the value; no family with no sample */

    header = 0;

    for (i = 0; i < n; i++) {
        p = (u_char *) &st[i];

        if (g->cond != NGX_HTTP_APIKEY_METRICS_ALWAYS
            && *(uint64_t *) (p + g->cond) == 0)
        {
            continue;
        }

        if (!header++
            && ngx_http_apikey_metrics_family(o, g->name, "gauge", g->help)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_apikey_metrics_label(labels, "db", &st[i].label);

        if (ngx_http_apikey_metrics_sample(o, g->name, labels, 1,
                                           *(uint64_t *) (p + g->field))
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_metrics_family(ngx_http_apikey_metrics_out_t *o,
    const char *name, const char *type, const char *help)
{
    u_char  *p;
    size_t   len;

    len = 2 * ngx_strlen(name) + ngx_strlen(type) + ngx_strlen(help)
          + sizeof("# HELP  \n# TYPE  \n");

    p = ngx_http_apikey_metrics_room(o, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                    type);

    o->size += p - o->buf->last;
    o->buf->last = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_apikey_metrics_sample(ngx_http_apikey_metrics_out_t *o,
    const char *name, ngx_str_t *labels, ngx_uint_t nlabels, uint64_t value)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    /* labels: name and value pairs, the values escaped already */

    len = NGX_HTTP_APIKEY_METRICS_LINE;

    for (i = 0; i < 2 * nlabels; i++) {
        len += labels[i].len;
    }

    p = ngx_http_apikey_metrics_room(o, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(p, "%s", name);

    for (i = 0; i < nlabels; i++) {
        *p++ = (i == 0) ? '{' : ',';
        p = ngx_cpymem(p, labels[2 * i].data, labels[2 * i].len);
        *p++ = '=';
        *p++ = '"';
        p = ngx_cpymem(p, labels[2 * i + 1].data, labels[2 * i + 1].len);
        *p++ = '"';
    }

    if (nlabels) {
        *p++ = '}';
    }

    p = ngx_sprintf(p, " %uL\n", value);

    o->size += p - o->buf->last;
    o->buf->last = p;

    return NGX_OK;
}


static u_char *
ngx_http_apikey_metrics_room(ngx_http_apikey_metrics_out_t *o, size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    /* the buffer in use, or a new one; the family lines count here */

    b = o->buf;

    if (b != NULL && (size_t) (b->end - b->last) >= size) {
        return b->last;
    }

    b = ngx_create_temp_buf(o->request->pool,
                            ngx_max(size, NGX_HTTP_APIKEY_METRICS_BUFSIZE));
    if (b == NULL) {
        return NULL;
    }

    cl = ngx_alloc_chain_link(o->request->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    *o->last = cl;
    o->last = &cl->next;
    o->buf = b;

    return b->last;
}


ngx_int_t
ngx_http_apikey_metrics_escape(ngx_pool_t *pool, ngx_str_t *value,
    ngx_str_t *label)
{
    u_char  c, *p, *last, *dst;
    size_t  n;

    /*
     * A label value: backslash, double quote and line feed escaped as
     * the format says.  The output must be UTF-8 (a parser rejects the
     * whole scrape otherwise), and a line must stay one line for the
     * tools that split on other control characters: a byte that does
     * not begin a valid UTF-8 sequence, and a control character, C0 but
     * the line feed, DEL or C1, become U+FFFD, the replacement
     * character, of 3 bytes.  Done once, when the value is configured:
     * a scrape copies the label.
     */

    dst = ngx_pnalloc(pool, 3 * value->len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    label->data = dst;

    p = value->data;
    last = value->data + value->len;

    while (p < last) {
        c = *p;

        if (c == '\\' || c == '"') {
            *dst++ = '\\';
            *dst++ = c;
            p++;
            continue;
        }

        if (c == '\n') {
            *dst++ = '\\';
            *dst++ = 'n';
            p++;
            continue;
        }

        n = ngx_http_apikey_metrics_utf8(p, last);

        if (n == 0) {

            /* the first byte only: the next one is looked at again */

            dst = ngx_cpymem(dst, "\xef\xbf\xbd", 3);
            p++;
            continue;
        }

        if (c < 0x20 || c == 0x7f || (c == 0xc2 && p[1] < 0xa0)) {
            dst = ngx_cpymem(dst, "\xef\xbf\xbd", 3);

        } else {
            dst = ngx_cpymem(dst, p, n);
        }

        p += n;
    }

    label->len = dst - label->data;

    return NGX_OK;
}


static size_t
ngx_http_apikey_metrics_utf8(u_char *p, u_char *last)
{
    u_char    *q;
    size_t     n, i;
    uint32_t   u;

    /*
     * the length of the valid UTF-8 sequence at p, or 0; besides what
     * ngx_utf8_decode() rejects (a byte that cannot begin a sequence,
     * one cut short, an overlong form, past U+10FFFF), a continuation
     * byte not of the form 10xxxxxx, and a surrogate
     */

    if (*p < 0x80) {
        return 1;
    }

    q = p;
    u = ngx_utf8_decode(&q, last - p);

    if (u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return 0;
    }

    n = q - p;

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    return n;
}
