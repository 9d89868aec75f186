
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl import: the command, its progress line and its summary, the
 * rows kept and sorted, the rows rejected; the rows are read and checked
 * in actl_import_read.c, and written in one transaction in
 * actl_import_write.c.
 */


#define _GNU_SOURCE     /* qsort_r() */

#include "actl.h"


#define ACTL_PROGRESS_ROWS      4096
#define ACTL_PROGRESS_NSEC      250000000L


static void actl_import_summary(actl_import_t *imp, int dry_run);
static int actl_reject_cmp(const void *a, const void *b);
static int actl_radix_sort(uint64_t *keys, uint32_t *idx, uint64_t *tkeys,
    uint32_t *tidx, size_t n);
static uint64_t actl_be64(const unsigned char *p, size_t len);
static void actl_radix_sort_keys(uint64_t *keys, uint32_t *idx,
    actl_row_t *rows, size_t n);
static int actl_row_hash_cmp(const void *a, const void *b);


int
actl_cmd_import(actl_ctx_t *ctx, int argc, char **argv)
{
    int              c, fd, rc, jsonl, replace, force, dry_run;
    int              skip_invalid;
    char            *path;
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
    imp->replace = replace;
    imp->force = force;
    imp->progress = isatty(STDERR_FILENO) ? 1 : 0;
    imp->threads = sysconf(_SC_NPROCESSORS_ONLN) > 1;

    (void) clock_gettime(CLOCK_MONOTONIC, &imp->start);
    imp->shown = imp->start;

    rc = jsonl ? actl_import_jsonl(imp, &r, path)
               : actl_import_csv(imp, &r, path);

    actl_import_progress(imp, 1);
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

    /* a dry run goes through the same transaction, and aborts it */

    imp->rc = dry_run ? ACTL_IMPORT_DRY : ACTL_OK;

    rc = actl_write(ctx, actl_import_write, imp);

    if (rc == ACTL_OK || rc == ACTL_IMPORT_DRY || rc == ACTL_IMPORT_SAME) {
        rc = actl_import_report(imp);
        actl_import_summary(imp, dry_run);

    } else if (rc == ACTL_INVALID) {
        (void) actl_import_report(imp);
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
 * The summary, one line on standard output after the commit (scripts
 * read it): the rows kept (added, updated, unchanged), the keys removed
 * by --replace, the rows rejected.
 */

static void
actl_import_summary(actl_import_t *imp, int dry_run)
{
    uint64_t  kept;

    kept = imp->added + imp->updated + imp->unchanged;

    printf("%s %llu key%s: %llu added, %llu updated, %llu unchanged, "
           "%llu removed, %llu rejected%s\n",
           dry_run ? "dry run: would import" : "imported",
           (unsigned long long) kept, (kept == 1) ? "" : "s",
           (unsigned long long) imp->added,
           (unsigned long long) imp->updated,
           (unsigned long long) imp->unchanged,
           (unsigned long long) imp->removed,
           (unsigned long long) (imp->skipped + imp->rejected),
           dry_run ? "; nothing was changed" : "");

    fflush(stdout);
}


/*
 * Keys read and keys a second, on standard error when it is a terminal,
 * at most four times a second; done: the line is cleared.
 */

void
actl_import_progress(actl_import_t *imp, int done)
{
    double           secs;
    struct timespec  now;

    if (!imp->progress) {
        return;
    }

    if (done) {
        /* the second thread too, before a message: stderr is locked */

        flockfile(stderr);

        if (imp->progress_on) {
            fputs("\r\033[K", stderr);
            imp->progress_on = 0;
        }

        funlockfile(stderr);

        return;
    }

    if (++imp->nread % ACTL_PROGRESS_ROWS != 0) {
        return;
    }

    (void) clock_gettime(CLOCK_MONOTONIC, &now);

    if ((now.tv_sec - imp->shown.tv_sec) * 1000000000L
        + (now.tv_nsec - imp->shown.tv_nsec) < ACTL_PROGRESS_NSEC)
    {
        return;
    }

    imp->shown = now;

    secs = (double) (now.tv_sec - imp->start.tv_sec)
           + (double) (now.tv_nsec - imp->start.tv_nsec) / 1e9;

    flockfile(stderr);

    fprintf(stderr, "\r\033[Kapikeyctl: %s: %llu keys read, %.0f keys/s",
            imp->ctx->cmd, (unsigned long long) imp->nread,
            secs > 0 ? (double) imp->nread / secs : 0.0);

    imp->progress_on = 1;

    funlockfile(stderr);
}


/*
 * A checked row, its record encoded, kept for the write transaction.  The
 * rows and the arena hold no plaintext key (hashes, records, ids, the
 * hints stored anyway): plain realloc(), which moves large blocks
 * without copying them.
 */

int
actl_import_keep(actl_import_t *imp, akc_record_t *rec,
    const unsigned char *hash, int has_id, int has_created, char *err,
    size_t errlen)
{
    int             n;
    size_t          size;
    actl_row_t      r, *rows;
    unsigned char  *arena;

    if (imp->nrows == imp->nrows_alloc) {
        size = imp->nrows_alloc ? 2 * imp->nrows_alloc : 1024;

        if (size > UINT32_MAX) {
            actl_error(imp->ctx, "more than %u rows", UINT32_MAX);
            return ACTL_FAIL;
        }

        rows = realloc(imp->rows, size * sizeof(actl_row_t));
        if (rows == NULL) {
            actl_error(imp->ctx, "out of memory");
            return ACTL_FAIL;
        }

        imp->rows = rows;
        imp->nrows_alloc = size;
    }

    if (imp->arena_size - imp->arena_len < 2 * AKC_RECORD_MAX_LEN) {
        size = imp->arena_size ? 2 * imp->arena_size
                               : 1024 * AKC_RECORD_MAX_LEN;

        arena = realloc(imp->arena, size);
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

    /*
     * The row is made aside and stored whole: setting a bit field of a
     * fresh page would read it first, and the write fault that follows
     * costs a TLB flush on the other thread's CPU.
     */

    memset(&r, 0, sizeof(actl_row_t));

    memcpy(r.hash, hash, AKC_HASH_LEN);
    r.line = imp->line;
    r.off = imp->arena_len;
    r.len = (uint16_t) n;
    r.id_len = (uint8_t) rec->id.len;
    r.has_id = has_id ? 1 : 0;
    r.has_created = has_created ? 1 : 0;

    imp->rows[imp->nrows++] = r;

    /* the id once more after the record: the fast path sorts by it */

    memcpy(imp->arena + imp->arena_len + n, rec->id.data, rec->id.len);

    imp->arena_len += (size_t) n + rec->id.len;

    return ACTL_OK;
}


void
actl_import_free(actl_import_t *imp)
{
    free(imp->rows);
    free(imp->arena);
    free(imp->rejects);
    free(imp->msgs);
    free(imp->order);

    imp->rows = NULL;
    imp->arena = NULL;
    imp->rejects = NULL;
    imp->msgs = NULL;
    imp->order = NULL;
}


/*
 * The rows in hash order: a radix sort on the first eight bytes (hashes
 * are uniform: they almost always decide), then the runs of equal first
 * bytes sorted in full.  The sort is stable, and the rows were in the
 * order of the file: the rows of one key stay in it.
 */

int
actl_import_sort_rows(actl_import_t *imp)
{
    size_t       i, j, k, n;
    uint32_t    *idx;
    uint64_t    *keys;
    actl_row_t   tmp, *rows;

    n = imp->nrows;
    rows = imp->rows;

    keys = malloc(2 * n * sizeof(uint64_t) + 1);
    idx = malloc(2 * n * sizeof(uint32_t) + 1);

    if (keys == NULL || idx == NULL
        || (actl_radix_sort_keys(keys, idx, rows, n),
            actl_radix_sort(keys, idx, keys + n, idx + n, n) != ACTL_OK))
    {
        free(keys);
        free(idx);
        actl_error(imp->ctx, "out of memory");
        return ACTL_FAIL;
    }

    /* rows[i] = rows[idx[i]], in place, cycle by cycle: no second copy */

    for (i = 0; i < n; i++) {
        if (idx[i] == i) {
            continue;
        }

        tmp = rows[i];

        for (j = i; idx[j] != i; j = k) {
            k = idx[j];
            rows[j] = rows[k];
            idx[j] = (uint32_t) j;
        }

        rows[j] = tmp;
        idx[j] = (uint32_t) j;
    }

    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && keys[j] == keys[i]; j++) {
            /* void */
        }

        if (j - i > 1) {
            qsort(rows + i, j - i, sizeof(actl_row_t), actl_row_hash_cmp);
        }
    }

    imp->sorted = 1;

    free(keys);
    free(idx);

    return ACTL_OK;
}


static void
actl_radix_sort_keys(uint64_t *keys, uint32_t *idx, actl_row_t *rows,
    size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        keys[i] = actl_be64(rows[i].hash, AKC_HASH_LEN);
        idx[i] = (uint32_t) i;
    }
}


/* the rows of keys not stored yet, in the order of their ids */

int
actl_import_sort_ids(actl_import_t *imp)
{
    size_t       i, j, n;
    uint32_t    *idx;
    uint64_t    *keys;
    actl_row_t  *row;

    free(imp->order);

    keys = malloc(2 * imp->nrows * sizeof(uint64_t) + 1);
    idx = malloc(2 * imp->nrows * sizeof(uint32_t) + 1);

    imp->order = idx;
    imp->norder = 0;

    if (keys == NULL || idx == NULL) {
        free(keys);
        actl_error(imp->ctx, "out of memory");
        return ACTL_FAIL;
    }

    n = 0;

    for (i = 0; i < imp->nrows; i++) {
        row = &imp->rows[i];

        if (row->stored) {
            continue;
        }

        keys[n] = actl_be64(imp->arena + row->off + row->len, row->id_len);
        idx[n++] = (uint32_t) i;
    }

    if (actl_radix_sort(keys, idx, keys + n, idx + n, n) != ACTL_OK) {
        free(keys);
        actl_error(imp->ctx, "out of memory");
        return ACTL_FAIL;
    }

    for (i = 0; i < n; i = j) {
        for (j = i + 1; j < n && keys[j] == keys[i]; j++) {
            /* void */
        }

        if (j - i > 1) {
            qsort_r(idx + i, j - i, sizeof(uint32_t), actl_order_id_cmp, imp);
        }
    }

    imp->norder = n;

    free(keys);

    return ACTL_OK;
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

int
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


/*
 * A row rejected in the write transaction: its reason kept, to be
 * printed after it (actl_import_report()).  Without --skip-invalid the
 * first one ends the import.
 */

int
actl_import_reject(actl_import_t *imp, uint64_t line, const char *err)
{
    char           *msgs;
    size_t          len, size;
    actl_reject_t  *rejects;

    len = strlen(err) + 1;

    if (imp->nrejects == imp->nrejects_alloc) {
        size = imp->nrejects_alloc ? 2 * imp->nrejects_alloc : 64;

        rejects = realloc(imp->rejects, size * sizeof(actl_reject_t));
        if (rejects == NULL) {
            actl_error(imp->ctx, "out of memory");
            return ACTL_FAIL;
        }

        imp->rejects = rejects;
        imp->nrejects_alloc = size;
    }

    if (imp->msgs_size - imp->msgs_len < len) {
        size = imp->msgs_size ? 2 * imp->msgs_size : 4096;

        while (size - imp->msgs_len < len) {
            size *= 2;
        }

        msgs = realloc(imp->msgs, size);
        if (msgs == NULL) {
            actl_error(imp->ctx, "out of memory");
            return ACTL_FAIL;
        }

        imp->msgs = msgs;
        imp->msgs_size = size;
    }

    memcpy(imp->msgs + imp->msgs_len, err, len);

    imp->rejects[imp->nrejects].line = line;
    imp->rejects[imp->nrejects].off = imp->msgs_len;
    imp->nrejects++;
    imp->msgs_len += len;

    imp->rejected++;

    return imp->skip_invalid ? ACTL_OK : ACTL_INVALID;
}


static int
actl_reject_cmp(const void *a, const void *b)
{
    const actl_reject_t  *x = a, *y = b;

    return (x->line > y->line) - (x->line < y->line);
}


/*
 * The rows rejected in the transaction, in the order of the file; without
 * --skip-invalid only the first: the import failed on it.
 */

int
actl_import_report(actl_import_t *imp)
{
    size_t  i;

    if (imp->nrejects > 1) {
        qsort(imp->rejects, imp->nrejects, sizeof(actl_reject_t),
              actl_reject_cmp);
    }

    for (i = 0; i < imp->nrejects; i++) {
        if (!imp->skip_invalid) {
            actl_error(imp->ctx, "line %llu: %s",
                       (unsigned long long) imp->rejects[i].line,
                       imp->msgs + imp->rejects[i].off);
            return ACTL_INVALID;
        }

        actl_error(imp->ctx, "skipped line %llu: %s",
                   (unsigned long long) imp->rejects[i].line,
                   imp->msgs + imp->rejects[i].off);
    }

    return ACTL_OK;
}


/* a row checked while reading: printed at once, before any transaction */

int
actl_import_result(actl_import_t *imp, int rc, const char *err)
{
    if (rc != ACTL_INVALID) {
        return rc;
    }

    flockfile(stderr);

    actl_import_progress(imp, 1);

    if (imp->skip_invalid) {
        actl_error(imp->ctx, "skipped line %llu: %s",
                   (unsigned long long) imp->line, err);
        imp->skipped++;
        rc = ACTL_OK;

    } else {
        actl_error(imp->ctx, "line %llu: %s", (unsigned long long) imp->line,
                   err);
    }

    funlockfile(stderr);

    return rc;
}
