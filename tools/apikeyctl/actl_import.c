
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl import: the rows of a file checked, then written in one
 * transaction.
 */


#include "actl.h"


static actl_seen_t *actl_set_find(actl_set_t *set,
    const unsigned char *hash);
static int actl_set_add(actl_set_t *set, const unsigned char *hash,
    uint64_t line);
static void actl_set_free(actl_set_t *set);
static int actl_import_put(actl_import_t *imp, akc_record_t *rec,
    const unsigned char *hash, int has_id, char *err, size_t errlen);


int
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

int
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

int
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


void
actl_import_free(actl_import_t *imp)
{
    actl_set_free(&imp->seen);

    actl_secure_free(imp->rows);
    actl_secure_free(imp->arena);

    imp->rows = NULL;
    imp->arena = NULL;
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


int
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
