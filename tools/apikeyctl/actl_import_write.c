
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl import: the write transaction, an actl_write() handler.  The
 * rows are sorted by hash, the keys already stored looked up in that
 * order, and the rows written one pass per tree: appended at the end
 * (MDB_APPEND) of empty trees, put in order otherwise.  The rows that
 * share a key or an id are settled as the order of the file would
 * (actl_import_resolve.c).
 */


#include "actl.h"


/* actl_import_end(): the row is rejected, and the import goes on */
#define ACTL_IMPORT_RETIRED     102


static int actl_import_lookup(actl_import_t *imp, MDB_txn *txn);
static int actl_import_grow(actl_import_t *imp, size_t need);
static int actl_import_merge(actl_import_t *imp, MDB_txn *txn,
    size_t entries);
static int actl_import_stays(actl_import_t *imp, actl_row_t *row,
    MDB_val *v);
static int actl_import_retired(actl_import_t *imp, MDB_txn *txn);
static int actl_import_end(actl_import_t *imp, actl_row_t *row,
    const akc_record_t *old, akc_record_t *rec);
static int actl_import_has_id(actl_import_t *imp, const akc_str_t *id);
static int actl_import_append(actl_import_t *imp, MDB_txn *txn, int append);


/*
 * The handler: run again from the start after the map is grown, so what
 * it counts or reports is reset first, and it prints nothing but fatal
 * errors; what it keeps in the rows between runs (their order, the
 * records merged with the stored ones) it makes again the same way.
 */

int
actl_import_write(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    actl_import_t  *imp = data;

    int          rc, empty;
    size_t       i;
    MDB_stat     keys, ids;
    actl_row_t  *row;

    imp->added = 0;
    imp->updated = 0;
    imp->unchanged = 0;
    imp->removed = 0;
    imp->rejected = 0;
    imp->nrejects = 0;
    imp->msgs_len = 0;

    for (i = 0; i < imp->nrows; i++) {
        row = &imp->rows[i];
        row->rejected = 0;
        row->stored = 0;
        row->same = 0;
        row->clash = 0;
        row->taken = 0;
    }

    rc = mdb_stat(txn, ctx->dbs.keys, &keys);

    if (rc == MDB_SUCCESS) {
        rc = mdb_stat(txn, ctx->dbs.ids, &ids);
    }

    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_stat", rc);
    }

    if (!imp->sorted) {
        rc = actl_import_sort_rows(imp);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    empty = (keys.ms_entries == 0 && ids.ms_entries == 0);

    /*
     * with --replace, the file is the whole truth: every row is new, but
     * for the end of a retired key's life
     */

    if (!empty) {
        rc = imp->replace ? actl_import_retired(imp, txn)
                          : actl_import_lookup(imp, txn);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    rc = actl_import_sort_ids(imp);

    if (rc == ACTL_OK) {
        rc = actl_import_resolve(imp);
    }

    if (rc != ACTL_OK) {
        return rc;
    }

    if (imp->replace) {
        rc = actl_import_merge(imp, txn, keys.ms_entries);
        if (rc != ACTL_OK) {
            return rc;
        }

        if (imp->added + imp->updated + imp->removed == 0) {
            goto same;
        }

        rc = mdb_drop(txn, ctx->dbs.keys, 0);
        if (rc == MDB_SUCCESS) {
            rc = mdb_drop(txn, ctx->dbs.ids, 0);
        }

        if (rc != MDB_SUCCESS) {
            return actl_mdb_write_error(ctx, "mdb_drop", rc);
        }

        empty = 1;
    }

    if (!imp->replace) {
        for (i = 0; i < imp->nrows; i++) {
            row = &imp->rows[i];

            if (!row->rejected && !row->same) {
                break;
            }

            imp->unchanged += !row->rejected;
        }

        if (i == imp->nrows) {
            goto same;
        }

        imp->unchanged = 0;
    }

    rc = actl_import_append(imp, txn, empty);
    if (rc != ACTL_OK) {
        return rc;
    }

    return imp->rc;

same:

    /* nothing changes: nothing is written, the generation stays */

    return (imp->rc == ACTL_OK) ? ACTL_IMPORT_SAME : imp->rc;
}


/*
 * The keys already stored, looked up in hash order.  A stored key keeps
 * its id, its creation time and its rotation links, and a retired one
 * the end of its life: the row's record is merged with the stored one
 * into the arena, and one left byte for byte as it was is not written
 * again.  A new key's id may be a stored key's.
 */

static int
actl_import_lookup(actl_import_t *imp, MDB_txn *txn)
{
    int             rc, n;
    size_t          i;
    MDB_val         k, v;
    actl_ctx_t     *ctx;
    MDB_cursor     *cur;
    actl_row_t     *row;
    akc_record_t    rec, old;

    ctx = imp->ctx;

    rc = mdb_cursor_open(txn, ctx->dbs.keys, &cur);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_cursor_open", rc);
    }

    for (i = 0; i < imp->nrows; i++) {
        row = &imp->rows[i];

        k.mv_size = AKC_HASH_LEN;
        k.mv_data = row->hash;

        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);

        if (rc == MDB_NOTFOUND) {
            k.mv_size = row->id_len;
            k.mv_data = imp->arena + row->off + row->len;

            rc = mdb_get(txn, ctx->dbs.ids, &k, &v);

            if (rc == MDB_NOTFOUND) {
                continue;
            }

            if (rc != MDB_SUCCESS) {
                break;
            }

            /* the id is a stored key's: which one, for the message */

            if (actl_import_grow(imp, AKC_HASH_LEN) != ACTL_OK) {
                rc = ENOMEM;
                break;
            }

            n = (v.mv_size == AKC_HASH_LEN) ? AKC_HASH_LEN : 0;
            memcpy(imp->arena + imp->arena_len, v.mv_data, n);

            row->taken = 1;
            row->aux = imp->arena_len;
            row->aux_len = (uint8_t) n;
            imp->arena_len += n;

            continue;
        }

        if (rc != MDB_SUCCESS) {
            break;
        }

        if (akc_record_decode(&old, v.mv_data, v.mv_size) != AKC_OK
            || actl_import_grow(imp, 2 * AKC_RECORD_MAX_LEN) != ACTL_OK
            || akc_record_decode(&rec, imp->arena + row->off, row->len)
               != AKC_OK)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        row->stored = 1;

        if (row->has_id
            && (old.id.len != rec.id.len
                || memcmp(old.id.data, rec.id.data, rec.id.len) != 0))
        {
            row->clash = 1;
            row->aux = imp->arena_len;
            row->aux_len = (uint8_t) old.id.len;
            memcpy(imp->arena + imp->arena_len, old.id.data, old.id.len);
            imp->arena_len += old.id.len;
            continue;
        }

        /* the same key under the same id: an update */

        rec.id = old.id;
        rec.created = old.created;
        rec.replaces = old.replaces;
        rec.replaced_by = old.replaced_by;

        rc = actl_import_end(imp, row, &old, &rec);

        if (rc == ACTL_IMPORT_RETIRED) {
            rc = MDB_SUCCESS;
            continue;
        }

        if (rc != ACTL_OK) {
            mdb_cursor_close(cur);
            return rc;
        }

        n = akc_record_encode(&rec, imp->arena + imp->arena_len,
                              AKC_RECORD_MAX_LEN);
        if (n < 0) {
            rc = MDB_CORRUPTED;
            break;
        }

        row->same = (v.mv_size == (size_t) n
                     && memcmp(v.mv_data, imp->arena + imp->arena_len, n)
                        == 0);

        memcpy(imp->arena + imp->arena_len + n, old.id.data, old.id.len);

        row->off = imp->arena_len;
        row->len = (uint16_t) n;
        row->id_len = (uint8_t) old.id.len;
        imp->arena_len += n + old.id.len;
    }

    mdb_cursor_close(cur);

    if (rc == ENOMEM) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    if (i < imp->nrows) {
        return actl_mdb_write_error(ctx, "mdb_get", rc);
    }

    return ACTL_OK;
}


static int
actl_import_grow(actl_import_t *imp, size_t need)
{
    size_t          size;
    unsigned char  *arena;

    if (imp->arena_size - imp->arena_len >= need) {
        return ACTL_OK;
    }

    size = imp->arena_size ? 2 * imp->arena_size : 2 * need;

    arena = realloc(imp->arena, size);
    if (arena == NULL) {
        return ACTL_FAIL;
    }

    imp->arena = arena;
    imp->arena_size = size;

    return ACTL_OK;
}


/*
 * --replace: the rows against the keys in the database, both in hash
 * order, for the summary and the check that at most half of the keys
 * go away without --force.  The file is the whole truth (but for what
 * a key that stays keeps, see actl_import_stays()): the trees are then
 * emptied and filled again.
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

        if (actl_import_stays(imp, row, &v) != ACTL_OK) {
            mdb_cursor_close(cur);
            return ACTL_FAIL;
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



/*
 * --replace: a stored key that stays keeps its creation time (but for a
 * row with a "created" column), the end of its life if it was retired
 * (actl_import_end()), and its rotation links to the ids that stay
 * too; a link to an id that goes is dropped with it.  The row's record
 * is made again in the arena only when one of them changes it.
 */

static int
actl_import_stays(actl_import_t *imp, actl_row_t *row, MDB_val *v)
{
    int            n;
    int64_t        created, expires;
    uint8_t        flags;
    akc_str_t      replaces, replaced_by;
    akc_record_t   rec, old, retired;

    if (akc_record_decode(&old, v->mv_data, v->mv_size) != AKC_OK) {
        actl_error(imp->ctx, "a record in the database is corrupt");
        return ACTL_FAIL;
    }

    if (akc_record_decode(&rec, imp->arena + row->off, row->len) != AKC_OK) {
        actl_error(imp->ctx, "akc_record_decode() failed");
        return ACTL_FAIL;
    }

    memset(&replaces, 0, sizeof(akc_str_t));
    memset(&replaced_by, 0, sizeof(akc_str_t));

    if (old.replaces.len && actl_import_has_id(imp, &old.replaces)) {
        replaces = old.replaces;
    }

    if (old.replaced_by.len && actl_import_has_id(imp, &old.replaced_by)) {
        replaced_by = old.replaced_by;
    }

    created = row->has_created ? rec.created : old.created;

    /* the row's not_before is checked before (actl_import_retired()) */

    retired = rec;
    (void) actl_import_end(imp, row, &old, &retired);

    expires = retired.expires;
    flags = retired.flags;

    if (created == rec.created && expires == rec.expires
        && flags == rec.flags && replaces.len == 0 && replaced_by.len == 0)
    {
        /* the row's record as it is */
        return ACTL_OK;
    }

    if (actl_import_grow(imp, 2 * AKC_RECORD_MAX_LEN) != ACTL_OK) {
        actl_error(imp->ctx, "out of memory");
        return ACTL_FAIL;
    }

    /* the arena may have moved: the row's record is decoded again */

    if (akc_record_decode(&rec, imp->arena + row->off, row->len) != AKC_OK) {
        actl_error(imp->ctx, "akc_record_decode() failed");
        return ACTL_FAIL;
    }

    rec.created = created;
    rec.expires = expires;
    rec.flags = flags;
    rec.replaces = replaces;
    rec.replaced_by = replaced_by;

    n = akc_record_encode(&rec, imp->arena + imp->arena_len,
                          AKC_RECORD_MAX_LEN);
    if (n < 0) {
        actl_error(imp->ctx, "akc_record_encode() failed");
        return ACTL_FAIL;
    }

    memcpy(imp->arena + imp->arena_len + n, rec.id.data, rec.id.len);

    row->off = imp->arena_len;
    row->len = (uint16_t) n;
    imp->arena_len += n + rec.id.len;

    return ACTL_OK;
}


/*
 * --replace: the rows of the retired keys stored, checked as
 * actl_import_end() does before the rows are settled; a row rejected
 * there is not in the file.  Only the flags byte of a stored record is
 * looked at for the others.
 */

static int
actl_import_retired(actl_import_t *imp, MDB_txn *txn)
{
    int            rc, c;
    size_t         i;
    MDB_val        k, v;
    actl_ctx_t    *ctx;
    MDB_cursor    *cur;
    actl_row_t    *row;
    akc_record_t   rec, old;

    ctx = imp->ctx;

    rc = mdb_cursor_open(txn, ctx->dbs.keys, &cur);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_cursor_open", rc);
    }

    /* both in hash order, as actl_import_merge() walks them */

    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);

    for (i = 0; i < imp->nrows && rc == MDB_SUCCESS; i++) {
        row = &imp->rows[i];

        c = -1;

        while (rc == MDB_SUCCESS) {
            c = (k.mv_size == AKC_HASH_LEN)
                ? memcmp(k.mv_data, row->hash, AKC_HASH_LEN) : -1;

            if (c >= 0) {
                break;
            }

            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }

        if (rc != MDB_SUCCESS || c != 0) {
            continue;
        }

        if (v.mv_size < 2
            || !(((unsigned char *) v.mv_data)[1] & AKC_FLAG_RETIRED))
        {
            continue;
        }

        if (akc_record_decode(&old, v.mv_data, v.mv_size) != AKC_OK
            || akc_record_decode(&rec, imp->arena + row->off, row->len)
               != AKC_OK)
        {
            mdb_cursor_close(cur);
            actl_error(ctx, "a record in the database is corrupt");
            return ACTL_FAIL;
        }

        rc = actl_import_end(imp, row, &old, &rec);

        if (rc != ACTL_OK && rc != ACTL_IMPORT_RETIRED) {
            mdb_cursor_close(cur);
            return rc;
        }

        rc = MDB_SUCCESS;
    }

    mdb_cursor_close(cur);

    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        return actl_mdb_write_error(ctx, "mdb_cursor_get", rc);
    }

    return ACTL_OK;
}


/*
 * The end of a stored key's life after an import of its row.  A key
 * that has been replaced (rotate) is retired, for good, whatever its
 * links: it stays so, and keeps the earlier of its stored end and the
 * row's, so that an import may shorten its grace but never lift its
 * end; "expire --at" alone does.  A row that would then end before it
 * becomes valid is rejected: ACTL_IMPORT_RETIRED, or the error of
 * actl_import_reject().
 */

static int
actl_import_end(actl_import_t *imp, actl_row_t *row,
    const akc_record_t *old, akc_record_t *rec)
{
    int   rc;
    char  err[ACTL_ERR_LEN], t[AKC_TIME_LEN + 1];

    if (!(old->flags & AKC_FLAG_RETIRED)) {
        return ACTL_OK;
    }

    rec->flags |= AKC_FLAG_RETIRED;

    if (old->expires == 0) {
        return ACTL_OK;
    }

    if (rec->expires == 0 || rec->expires > old->expires) {
        rec->expires = old->expires;
    }

    if (rec->not_before == 0 || rec->expires > rec->not_before) {
        return ACTL_OK;
    }

    snprintf(err, sizeof(err), "key is retired: its end %s is kept, and "
             "not_before must be before it", actl_time(rec->expires, t));

    row->rejected = 1;

    rc = actl_import_reject(imp, row->line, err);

    return (rc == ACTL_OK) ? ACTL_IMPORT_RETIRED : rc;
}


/* an id among the rows kept */

static int
actl_import_has_id(actl_import_t *imp, const akc_str_t *id)
{
    int          c;
    size_t       lo, hi, mid, n;
    actl_row_t  *row;

    lo = 0;
    hi = imp->norder;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        row = &imp->rows[imp->order[mid]];

        n = (row->id_len < id->len) ? row->id_len : id->len;
        c = memcmp(imp->arena + row->off + row->len, id->data, n);

        if (c == 0) {
            c = (int) row->id_len - (int) id->len;
        }

        if (c < 0) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    for ( /* void */ ; lo < imp->norder; lo++) {
        row = &imp->rows[imp->order[lo]];

        if (row->id_len != id->len
            || memcmp(imp->arena + row->off + row->len, id->data, id->len)
               != 0)
        {
            return 0;
        }

        if (!row->rejected) {
            return 1;
        }
    }

    return 0;
}


/*
 * The kept rows, one pass per tree: at the end of an empty tree
 * (MDB_APPEND), in order into one that holds keys.  A stored record
 * left as it was is not written again.
 */

static int
actl_import_append(actl_import_t *imp, MDB_txn *txn, int append)
{
    int          rc;
    size_t       i;
    MDB_val      k, v;
    unsigned     flags;
    actl_ctx_t  *ctx;
    MDB_cursor  *cur;
    actl_row_t  *row;

    ctx = imp->ctx;
    flags = append ? MDB_APPEND : 0;

    rc = mdb_cursor_open(txn, ctx->dbs.keys, &cur);
    if (rc != MDB_SUCCESS) {
        return actl_mdb_write_error(ctx, "mdb_cursor_open", rc);
    }

    for (i = 0; i < imp->nrows; i++) {
        row = &imp->rows[i];

        if (row->rejected) {
            continue;
        }

        if (!imp->replace) {
            if (row->same) {
                imp->unchanged++;
                continue;
            }

            if (row->stored) {
                imp->updated++;

            } else {
                imp->added++;
            }
        }

        k.mv_size = AKC_HASH_LEN;
        k.mv_data = row->hash;
        v.mv_size = row->len;
        v.mv_data = imp->arena + row->off;

        rc = mdb_cursor_put(cur, &k, &v, flags);
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

    for (i = 0; i < imp->norder; i++) {
        row = &imp->rows[imp->order[i]];

        if (row->rejected) {
            continue;
        }

        k.mv_size = row->id_len;
        k.mv_data = imp->arena + row->off + row->len;
        v.mv_size = AKC_HASH_LEN;
        v.mv_data = row->hash;

        rc = mdb_cursor_put(cur, &k, &v, flags | MDB_NOOVERWRITE);
        if (rc != MDB_SUCCESS) {
            mdb_cursor_close(cur);
            return actl_mdb_write_error(ctx, "mdb_cursor_put", rc);
        }
    }

    mdb_cursor_close(cur);

    return ACTL_OK;
}
