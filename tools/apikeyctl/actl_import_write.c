
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl import: the write transaction, an actl_write() handler.  Into
 * an empty database, or with --replace, the rows are sorted by hash and
 * appended to the trees (MDB_APPEND), one pass for "keys" and one for
 * "ids"; into a database that holds keys they go one by one, in the
 * order of the file.
 */


#define _GNU_SOURCE     /* qsort_r() */

#include "actl.h"


static int actl_import_fast(actl_import_t *imp, MDB_txn *txn,
    size_t entries);
static int actl_import_sort(actl_import_t *imp);
static int actl_radix_sort(uint64_t *keys, uint32_t *idx, uint64_t *tkeys,
    uint32_t *tidx, size_t n);
static uint64_t actl_be64(const unsigned char *p, size_t len);
static int actl_import_dups(actl_import_t *imp);
static int actl_import_merge(actl_import_t *imp, MDB_txn *txn,
    size_t entries);
static int actl_import_append(actl_import_t *imp, MDB_txn *txn);
static int actl_import_lines(actl_import_t *imp, MDB_txn *txn);
static int actl_import_put(actl_import_t *imp, MDB_txn *txn,
    actl_row_t *row, char *err, size_t errlen);
static int actl_row_hash_cmp(const void *a, const void *b);
static int actl_row_line_cmp(const void *a, const void *b);
static int actl_order_id_cmp(const void *a, const void *b, void *data);
static int actl_order_line_cmp(const void *a, const void *b, void *data);


/*
 * The write transaction of an import, an actl_write() handler: run again
 * from the start after the map is grown, so everything it counts or
 * reports is reset first, and it prints nothing but fatal errors.
 * Into an empty database, or with --replace, the rows go in sorted
 * (actl_import_sorted.c... below: actl_import_fast()); otherwise one by
 * one in the order of the file.
 */

int
actl_import_write(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    actl_import_t  *imp = data;

    int        rc;
    size_t     i;
    MDB_stat   keys, ids;

    imp->added = 0;
    imp->updated = 0;
    imp->unchanged = 0;
    imp->removed = 0;
    imp->rejected = 0;
    imp->replaced = 0;
    imp->nrejects = 0;
    imp->msgs_len = 0;

    for (i = 0; i < imp->nrows; i++) {
        imp->rows[i].rejected = 0;
    }

    rc = mdb_stat(txn, ctx->dbs.keys, &keys);

    if (rc == MDB_SUCCESS) {
        rc = mdb_stat(txn, ctx->dbs.ids, &ids);
    }

    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_stat", rc);
    }

    if (imp->replace || (keys.ms_entries == 0 && ids.ms_entries == 0)) {
        rc = actl_import_fast(imp, txn, keys.ms_entries);

    } else {
        rc = actl_import_lines(imp, txn);
    }

    if (rc != ACTL_OK) {
        return rc;
    }

    return imp->rc;
}


/*
 * Into empty trees: the rows in hash order, the ids in their own order,
 * each appended at the end of its tree.  The duplicates within the file
 * are settled first, as the general case settles them: a row is kept
 * when no earlier kept row has its key or its id.
 */

static int
actl_import_fast(actl_import_t *imp, MDB_txn *txn, size_t entries)
{
    int          rc;
    actl_ctx_t  *ctx;

    ctx = imp->ctx;

    if (!imp->sorted || imp->order == NULL) {
        rc = actl_import_sort(imp);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    rc = actl_import_dups(imp);
    if (rc != ACTL_OK) {
        return rc;
    }

    if (imp->replace) {
        rc = actl_import_merge(imp, txn, entries);
        if (rc != ACTL_OK) {
            return rc;
        }

        rc = mdb_drop(txn, ctx->dbs.keys, 0);
        if (rc == MDB_SUCCESS) {
            rc = mdb_drop(txn, ctx->dbs.ids, 0);
        }

        if (rc != MDB_SUCCESS) {
            return actl_mdb_write_error(ctx, "mdb_drop", rc);
        }

    } else {
        imp->added = imp->nrows - imp->rejected;
    }

    return actl_import_append(imp, txn);
}


/*
 * The rows in hash order, then the ids in theirs: a radix sort on the
 * first eight bytes (hashes are uniform: they almost always decide), then
 * the runs of equal first bytes sorted in full.  The sort is stable, and
 * the rows were in the order of the file: equal keys stay in it.
 */

static int
actl_import_sort(actl_import_t *imp)
{
    size_t       i, j, n;
    uint32_t    *idx, *tidx;
    uint64_t    *keys, *tkeys;
    actl_row_t  *rows, *row;

    n = imp->nrows;

    keys = malloc(2 * n * sizeof(uint64_t) + 1);
    idx = malloc(2 * n * sizeof(uint32_t) + 1);
    rows = actl_secure_malloc(n * sizeof(actl_row_t) + 1);

    if (keys == NULL || idx == NULL || rows == NULL) {
        goto nomem;
    }

    tkeys = keys + n;
    tidx = idx + n;

    if (!imp->sorted) {
        for (i = 0; i < n; i++) {
            keys[i] = actl_be64(imp->rows[i].hash, AKC_HASH_LEN);
            idx[i] = (uint32_t) i;
        }

        if (actl_radix_sort(keys, idx, tkeys, tidx, n) != ACTL_OK) {
            goto nomem;
        }

        for (i = 0; i < n; i++) {
            rows[i] = imp->rows[idx[i]];
        }

        for (i = 0; i < n; i = j) {
            for (j = i + 1; j < n && keys[j] == keys[i]; j++) {
                /* void */
            }

            if (j - i > 1) {
                qsort(rows + i, j - i, sizeof(actl_row_t), actl_row_hash_cmp);
            }
        }

        actl_secure_free(imp->rows);
        imp->rows = rows;
        imp->nrows_alloc = n;
        imp->sorted = 1;
        rows = NULL;
    }

    for (i = 0; i < n; i++) {
        row = &imp->rows[i];
        keys[i] = actl_be64(imp->arena + row->off + row->len, row->id_len);
        idx[i] = (uint32_t) i;
    }

    if (actl_radix_sort(keys, idx, tkeys, tidx, n) != ACTL_OK) {
        goto nomem;
    }

    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && keys[j] == keys[i]; j++) {
            /* void */
        }

        if (j - i > 1) {
            qsort_r(idx + i, j - i, sizeof(uint32_t), actl_order_id_cmp, imp);
        }
    }

    free(imp->order);
    imp->order = idx;

    free(keys);
    actl_secure_free(rows);

    return ACTL_OK;

nomem:

    free(keys);
    free(idx);
    actl_secure_free(rows);

    actl_error(imp->ctx, "out of memory");

    return ACTL_FAIL;
}


/* LSD, sixteen bits a pass; stable */

static int
actl_radix_sort(uint64_t *keys, uint32_t *idx, uint64_t *tkeys,
    uint32_t *tidx, size_t n)
{
    int        pass;
    size_t     i, b, sum, c;
    size_t    *count;
    uint64_t  *k;
    uint32_t  *x;

    count = calloc(65536, sizeof(size_t));
    if (count == NULL) {
        return ACTL_FAIL;
    }

    for (pass = 0; pass < 4; pass++) {
        memset(count, 0, 65536 * sizeof(size_t));

        for (i = 0; i < n; i++) {
            count[(keys[i] >> (16 * pass)) & 0xffff]++;
        }

        for (sum = 0, b = 0; b < 65536; b++) {
            c = count[b];
            count[b] = sum;
            sum += c;
        }

        for (i = 0; i < n; i++) {
            b = count[(keys[i] >> (16 * pass)) & 0xffff]++;
            tkeys[b] = keys[i];
            tidx[b] = idx[i];
        }

        k = keys; keys = tkeys; tkeys = k;
        x = idx; idx = tidx; tidx = x;
    }

    /* four passes: the sorted arrays are the caller's own again */

    free(count);

    return ACTL_OK;
}


static uint64_t
actl_be64(const unsigned char *p, size_t len)
{
    size_t    i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | (i < len ? p[i] : 0);
    }

    return v;
}



static int
actl_import_dups(actl_import_t *imp)
{
    int          rc;
    char         err[ACTL_ERR_LEN], q[ACTL_QUOTE_LEN];
    size_t       i, n, nconf;
    uint32_t    *hg, *ig, *conf, g;
    uint64_t    *taken;
    actl_row_t  *row, *rows;

    rows = imp->rows;
    n = imp->nrows;

    /* the common case: no two rows share a key or an id */

    for (i = 1; i < n; i++) {
        if (memcmp(rows[i - 1].hash, rows[i].hash, AKC_HASH_LEN) == 0
            || actl_order_id_cmp(&imp->order[i - 1], &imp->order[i], imp)
               == 0)
        {
            break;
        }
    }

    if (i >= n) {
        return ACTL_OK;
    }

    /* groups: the rows of one key, the rows of one id */

    hg = calloc(3 * n + 2, sizeof(uint32_t));
    taken = calloc(2 * n + 2, sizeof(uint64_t));

    if (hg == NULL || taken == NULL) {
        free(hg);
        free(taken);
        actl_error(imp->ctx, "out of memory");
        return ACTL_FAIL;
    }

    ig = hg + n;
    conf = ig + n;
    g = 0;

    for (i = 1; i < n; i++) {
        if (memcmp(rows[i - 1].hash, rows[i].hash, AKC_HASH_LEN) == 0) {
            if (hg[i - 1] == 0) {
                hg[i - 1] = ++g;
            }

            hg[i] = hg[i - 1];
        }
    }

    for (i = 1; i < n; i++) {
        if (actl_order_id_cmp(&imp->order[i - 1], &imp->order[i], imp) == 0) {
            if (ig[imp->order[i - 1]] == 0) {
                ig[imp->order[i - 1]] = ++g;
            }

            ig[imp->order[i]] = ig[imp->order[i - 1]];
        }
    }

    nconf = 0;

    for (i = 0; i < n; i++) {
        if (hg[i] || ig[i]) {
            conf[nconf++] = (uint32_t) i;
        }
    }

    qsort_r(conf, nconf, sizeof(uint32_t), actl_order_line_cmp, imp);

    rc = ACTL_OK;

    for (i = 0; i < nconf; i++) {
        row = &rows[conf[i]];

        if (hg[conf[i]] && taken[hg[conf[i]]]) {
            snprintf(err, sizeof(err), "the same key as line %llu",
                     (unsigned long long) taken[hg[conf[i]]]);

        } else if (ig[conf[i]] && taken[ig[conf[i]]]) {
            snprintf(err, sizeof(err), "id %s is already used on line %llu",
                     actl_quote((char *) imp->arena + row->off + row->len,
                                row->id_len, q),
                     (unsigned long long) taken[ig[conf[i]]]);

        } else {
            taken[hg[conf[i]]] = row->line;
            taken[ig[conf[i]]] = row->line;
            taken[0] = 0;
            continue;
        }

        row->rejected = 1;

        rc = actl_import_reject(imp, row->line, err);
        if (rc != ACTL_OK) {
            break;
        }
    }

    free(hg);
    free(taken);

    return rc;
}


/*
 * --replace: the rows against the keys in the database, both in hash
 * order, for the summary and the check that at most half of the keys
 * go away without --force.  The file is the whole truth: the trees are
 * then emptied and filled again.
 */

static int
actl_import_merge(actl_import_t *imp, MDB_txn *txn, size_t entries)
{
    int          rc, c;
    size_t       i;
    MDB_val      k, v;
    actl_ctx_t  *ctx;
    MDB_cursor  *cur;
    actl_row_t  *row;

    ctx = imp->ctx;
    imp->replaced = entries;

    rc = mdb_cursor_open(txn, ctx->dbs.keys, &cur);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_cursor_open", rc);
    }

    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

    for (i = 0; i < imp->nrows; i++) {
        row = &imp->rows[i];

        if (row->rejected) {
            continue;
        }

        c = 1;

        while (rc == MDB_SUCCESS) {
            c = (k.mv_size == AKC_HASH_LEN)
                ? memcmp(k.mv_data, row->hash, AKC_HASH_LEN) : -1;

            if (c >= 0) {
                break;
            }

            imp->removed++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }

        if (rc != MDB_SUCCESS || c != 0) {
            imp->added++;
            continue;
        }

        if (v.mv_size == row->len
            && memcmp(v.mv_data, imp->arena + row->off, row->len) == 0)
        {
            imp->unchanged++;

        } else {
            imp->updated++;
        }

        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    while (rc == MDB_SUCCESS) {
        imp->removed++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }

    mdb_cursor_close(cur);

    if (rc != MDB_NOTFOUND) {
        return actl_mdb_write_error(ctx, "mdb_cursor_get", rc);
    }

    if (!imp->force && imp->removed > entries / 2) {
        actl_error(ctx, "--replace would remove %llu of the %zu keys, "
                   "more than half; nothing was changed (add --force "
                   "to do it)", (unsigned long long) imp->removed, entries);
        return ACTL_INVALID;
    }

    return ACTL_OK;
}


static int
actl_import_append(actl_import_t *imp, MDB_txn *txn)
{
    int          rc;
    size_t       i;
    MDB_val      k, v;
    actl_ctx_t  *ctx;
    MDB_cursor  *cur;
    actl_row_t  *row;

    ctx = imp->ctx;

    rc = mdb_cursor_open(txn, ctx->dbs.keys, &cur);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_cursor_open", rc);
    }

    for (i = 0; i < imp->nrows; i++) {
        row = &imp->rows[i];

        if (row->rejected) {
            continue;
        }

        k.mv_size = AKC_HASH_LEN;
        k.mv_data = row->hash;
        v.mv_size = row->len;
        v.mv_data = imp->arena + row->off;

        rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND);
        if (rc != MDB_SUCCESS) {
            mdb_cursor_close(cur);
            return actl_mdb_write_error(ctx, "mdb_cursor_put", rc);
        }
    }

    mdb_cursor_close(cur);

    rc = mdb_cursor_open(txn, ctx->dbs.ids, &cur);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_cursor_open", rc);
    }

    for (i = 0; i < imp->nrows; i++) {
        row = &imp->rows[imp->order[i]];

        if (row->rejected) {
            continue;
        }

        k.mv_size = row->id_len;
        k.mv_data = imp->arena + row->off + row->len;
        v.mv_size = AKC_HASH_LEN;
        v.mv_data = row->hash;

        rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND);
        if (rc != MDB_SUCCESS) {
            mdb_cursor_close(cur);
            return actl_mdb_write_error(ctx, "mdb_cursor_put", rc);
        }
    }

    mdb_cursor_close(cur);

    return ACTL_OK;
}


static int
actl_row_hash_cmp(const void *a, const void *b)
{
    int                c;
    const actl_row_t  *x = a, *y = b;

    c = memcmp(x->hash, y->hash, AKC_HASH_LEN);

    if (c != 0) {
        return c;
    }

    return (x->line > y->line) - (x->line < y->line);
}


/* LMDB's own order of keys: memcmp(), then the shorter first */

static int
actl_order_id_cmp(const void *a, const void *b, void *data)
{
    actl_import_t  *imp = data;

    int          c;
    size_t       n;
    actl_row_t  *x, *y;

    x = &imp->rows[*(const uint32_t *) a];
    y = &imp->rows[*(const uint32_t *) b];

    n = (x->id_len < y->id_len) ? x->id_len : y->id_len;

    c = memcmp(imp->arena + x->off + x->len, imp->arena + y->off + y->len, n);

    if (c != 0) {
        return c;
    }

    return (int) x->id_len - (int) y->id_len;
}


static int
actl_order_line_cmp(const void *a, const void *b, void *data)
{
    actl_import_t  *imp = data;

    return actl_row_line_cmp(&imp->rows[*(const uint32_t *) a],
                             &imp->rows[*(const uint32_t *) b]);
}



/* the general case: row by row, in the order of the file */

static int
actl_import_lines(actl_import_t *imp, MDB_txn *txn)
{
    int          rc;
    char         err[ACTL_ERR_LEN];
    size_t       i;
    actl_row_t  *row;

    if (imp->sorted && imp->nrows > 1) {
        qsort(imp->rows, imp->nrows, sizeof(actl_row_t), actl_row_line_cmp);
        imp->sorted = 0;
    }

    actl_set_free(&imp->seen);

    for (i = 0; i < imp->nrows; i++) {
        row = &imp->rows[i];

        rc = actl_import_put(imp, txn, row, err, sizeof(err));

        if (rc == ACTL_INVALID) {
            rc = actl_import_reject(imp, row->line, err);
        }

        if (rc != ACTL_OK) {
            return rc;
        }
    }

    return ACTL_OK;
}


static int
actl_row_line_cmp(const void *a, const void *b)
{
    const actl_row_t  *x = a, *y = b;

    return (x->line > y->line) - (x->line < y->line);
}


/*
 * One row into a database that holds keys.  A key already there keeps
 * its id, its creation time and its rotation links; a record left
 * byte for byte as it was is not written again.
 */

static int
actl_import_put(actl_import_t *imp, MDB_txn *txn, actl_row_t *row,
    char *err, size_t errlen)
{
    int             rc, update;
    char            q[ACTL_QUOTE_LEN];
    MDB_val         k, v, h;
    actl_ctx_t     *ctx;
    actl_seen_t    *seen;
    akc_record_t    rec, old;
    unsigned char   buf[AKC_RECORD_MAX_LEN];

    ctx = imp->ctx;

    seen = actl_set_find(&imp->seen, row->hash);

    if (seen != NULL) {
        snprintf(err, errlen, "the same key as line %llu",
                 (unsigned long long) seen->line);
        return ACTL_INVALID;
    }

    if (akc_record_decode(&rec, imp->arena + row->off, row->len) != AKC_OK) {
        actl_error(ctx, "akc_record_decode() failed");
        return ACTL_FAIL;
    }

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = row->hash;

    rc = mdb_get(txn, ctx->dbs.keys, &k, &v);

    if (rc == MDB_SUCCESS) {
        if (akc_record_decode(&old, v.mv_data, v.mv_size) != AKC_OK) {
            actl_error(ctx, "a record in the database is corrupt");
            return ACTL_FAIL;
        }

        if (row->has_id
            && (old.id.len != rec.id.len
                || memcmp(old.id.data, rec.id.data, rec.id.len) != 0))
        {
            snprintf(err, errlen, "key already exists as id %s",
                     actl_quote(old.id.data, old.id.len, q));
            return ACTL_INVALID;
        }

        /* the same key under the same id: an update */

        rec.id = old.id;
        rec.created = old.created;
        rec.replaces = old.replaces;
        rec.replaced_by = old.replaced_by;
        update = 1;

    } else if (rc == MDB_NOTFOUND) {
        k.mv_size = rec.id.len;
        k.mv_data = (void *) rec.id.data;

        rc = mdb_get(txn, ctx->dbs.ids, &k, &h);

        if (rc == MDB_SUCCESS) {
            seen = (h.mv_size == AKC_HASH_LEN)
                   ? actl_set_find(&imp->seen, h.mv_data) : NULL;

            if (seen != NULL) {
                snprintf(err, errlen, "id %s is already used on line "
                         "%llu", actl_quote(rec.id.data, rec.id.len, q),
                         (unsigned long long) seen->line);

            } else {
                snprintf(err, errlen, "id %s already exists with "
                         "another key",
                         actl_quote(rec.id.data, rec.id.len, q));
            }

            return ACTL_INVALID;
        }

        if (rc != MDB_NOTFOUND) {
            return actl_mdb_write_error(ctx, "mdb_get", rc);
        }

        update = 0;

    } else {
        return actl_mdb_write_error(ctx, "mdb_get", rc);
    }

    /* rec may point into the map: encode it before anything is written */

    rc = akc_record_encode(&rec, buf, sizeof(buf));
    if (rc < 0) {
        snprintf(err, errlen, "the record cannot be encoded");
        return ACTL_INVALID;
    }

    if (actl_set_add(&imp->seen, row->hash, row->line) != ACTL_OK) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    if (update && v.mv_size == (size_t) rc
        && memcmp(v.mv_data, buf, rc) == 0)
    {
        imp->unchanged++;
        return ACTL_OK;
    }

    v.mv_size = rc;
    v.mv_data = buf;

    if (!update) {
        h.mv_size = AKC_HASH_LEN;
        h.mv_data = row->hash;

        rc = mdb_put(txn, ctx->dbs.ids, &k, &h, MDB_NOOVERWRITE);
        if (rc != MDB_SUCCESS) {
            return actl_mdb_write_error(ctx, "mdb_put", rc);
        }
    }

    k.mv_size = AKC_HASH_LEN;
    k.mv_data = row->hash;

    rc = mdb_put(txn, ctx->dbs.keys, &k, &v, 0);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_put", rc);
    }

    if (update) {
        imp->updated++;

    } else {
        imp->added++;
    }

    return ACTL_OK;
}
