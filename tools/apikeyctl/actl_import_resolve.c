
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl import: the rows that share a key or an id are settled as
 * the order of the file would: a row is kept when no kept row before it
 * has its key or its id.  The rows are sorted by hash when this runs.
 */


#define _GNU_SOURCE     /* qsort_r() */

#include "actl.h"


static uint64_t actl_import_kept(actl_import_t *imp, const unsigned char *hash,
    uint64_t before);
static int actl_order_line_cmp(const void *a, const void *b, void *data);
static int actl_row_line_cmp(const void *a, const void *b);


/*
 * The rows that share a key or an id with another row, or whose key or
 * id is stored already, settled in the order of the file; every other
 * row is kept.  Groups: the rows of one key, the new rows of one id.
 */

int
actl_import_resolve(actl_import_t *imp)
{
    int           rc;
    char          err[ACTL_ERR_LEN], q[ACTL_QUOTE_LEN];
    size_t        i, n, nconf;
    uint32_t     *hg, *ig, *conf, g, r;
    uint64_t     *taken, line;
    actl_row_t   *row, *rows;
    const char   *id;

    rows = imp->rows;
    n = imp->nrows;

    for (i = 1; i < n; i++) {
        if (memcmp(rows[i - 1].hash, rows[i].hash, AKC_HASH_LEN) == 0) {
            break;
        }
    }

    if (i >= n) {
        for (i = 1; i < imp->norder; i++) {
            if (actl_order_id_cmp(&imp->order[i - 1], &imp->order[i], imp)
                == 0)
            {
                break;
            }
        }

        if (i >= imp->norder) {
            for (i = 0; i < n; i++) {
                if (rows[i].clash || rows[i].taken) {
                    break;
                }
            }

            if (i >= n) {
                /* the common case: nothing to settle */
                return ACTL_OK;
            }
        }
    }

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

    for (i = 1; i < imp->norder; i++) {
        if (actl_order_id_cmp(&imp->order[i - 1], &imp->order[i], imp) == 0) {
            if (ig[imp->order[i - 1]] == 0) {
                ig[imp->order[i - 1]] = ++g;
            }

            ig[imp->order[i]] = ig[imp->order[i - 1]];
        }
    }

    nconf = 0;

    for (i = 0; i < n; i++) {
        if (hg[i] || ig[i] || rows[i].clash || rows[i].taken) {
            conf[nconf++] = (uint32_t) i;
        }
    }

    qsort_r(conf, nconf, sizeof(uint32_t), actl_order_line_cmp, imp);

    rc = ACTL_OK;

    for (i = 0; i < nconf; i++) {
        r = conf[i];
        row = &rows[r];
        id = (const char *) imp->arena + row->off + row->len;

        if (row->rejected) {
            /* a retired key's row, rejected already: not in the file */
            continue;
        }

        if (hg[r] && taken[hg[r]]) {
            snprintf(err, sizeof(err), "the same key as line %llu",
                     (unsigned long long) taken[hg[r]]);

        } else if (row->clash) {
            snprintf(err, sizeof(err), "key already exists as id %s",
                     actl_quote((char *) imp->arena + row->aux, row->aux_len,
                                q));

        } else if (row->taken) {
            line = (row->aux_len == AKC_HASH_LEN)
                   ? actl_import_kept(imp, imp->arena + row->aux, row->line)
                   : 0;

            if (line) {
                snprintf(err, sizeof(err), "id %s is already used on line "
                         "%llu", actl_quote(id, row->id_len, q),
                         (unsigned long long) line);

            } else {
                snprintf(err, sizeof(err), "id %s already exists with "
                         "another key", actl_quote(id, row->id_len, q));
            }

        } else if (!row->stored && ig[r] && taken[ig[r]]) {
            snprintf(err, sizeof(err), "id %s is already used on line %llu",
                     actl_quote(id, row->id_len, q),
                     (unsigned long long) taken[ig[r]]);

        } else {
            if (hg[r]) {
                taken[hg[r]] = row->line;
            }

            if (ig[r] && !row->stored) {
                taken[ig[r]] = row->line;
            }

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


/* the line of a kept row of this key before a line, or 0 */

static uint64_t
actl_import_kept(actl_import_t *imp, const unsigned char *hash,
    uint64_t before)
{
    size_t       lo, hi, mid;
    actl_row_t  *row;

    lo = 0;
    hi = imp->nrows;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (memcmp(imp->rows[mid].hash, hash, AKC_HASH_LEN) < 0) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    for ( /* void */ ; lo < imp->nrows; lo++) {
        row = &imp->rows[lo];

        if (memcmp(row->hash, hash, AKC_HASH_LEN) != 0
            || row->line >= before)
        {
            break;
        }

        if (!row->rejected) {
            return row->line;
        }
    }

    return 0;
}


static int
actl_order_line_cmp(const void *a, const void *b, void *data)
{
    actl_import_t  *imp = data;

    return actl_row_line_cmp(&imp->rows[*(const uint32_t *) a],
                             &imp->rows[*(const uint32_t *) b]);
}



static int
actl_row_line_cmp(const void *a, const void *b)
{
    const actl_row_t  *x = a, *y = b;

    return (x->line > y->line) - (x->line < y->line);
}
