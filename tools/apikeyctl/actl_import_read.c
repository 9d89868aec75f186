
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl import: its readers, lines into buffers that are wiped, and
 * the rows of CSV (libcsv, checked in batches: actl_import_thread.c) and
 * JSONL (jansson).
 */


#include "actl.h"


static int actl_reader_line(actl_reader_t *r, char **line, size_t *len);
static int actl_reader_error(actl_import_t *imp, actl_reader_t *r, int n,
    const char *path);
static void actl_csv_field(void *s, size_t len, void *data);
static void actl_csv_row(int c, void *data);
static void actl_csv_reset(actl_import_t *imp);
static int actl_import_json(actl_import_t *imp, json_t *obj, char *err,
    size_t errlen);


/* input lines, read into buffers that are wiped */

int
actl_reader_init(actl_reader_t *r, int fd)
{
    memset(r, 0, sizeof(actl_reader_t));

    r->fd = fd;
    r->size = 1024;
    r->buf = actl_secure_malloc(ACTL_READ_SIZE);
    r->line = actl_secure_malloc(r->size);

    if (r->buf == NULL || r->line == NULL) {
        actl_reader_free(r);
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/* 1: a line, without its "\n"; 0: the end; -1: an error; -2: too long */

static int
actl_reader_line(actl_reader_t *r, char **line, size_t *len)
{
    char     *p, *nl, *nb;
    size_t    n, chunk, size;
    ssize_t   nr;

    n = 0;

    for ( ;; ) {
        if (r->pos == r->len) {
            if (r->eof) {
                break;
            }

            nr = read(r->fd, r->buf, ACTL_READ_SIZE);

            if (nr == -1) {
                if (errno == EINTR) {
                    continue;
                }

                return -1;
            }

            if (nr == 0) {
                r->eof = 1;
                break;
            }

            r->pos = 0;
            r->len = (size_t) nr;
        }

        p = r->buf + r->pos;
        nl = memchr(p, '\n', r->len - r->pos);
        chunk = (nl != NULL) ? (size_t) (nl - p) : r->len - r->pos;

        if (n + chunk > ACTL_LINE_MAX) {
            r->number++;
            return -2;
        }

        if (n + chunk + 1 > r->size) {
            size = 2 * r->size;
            if (size < n + chunk + 1) {
                size = n + chunk + 1;
            }

            nb = actl_secure_realloc(r->line, size);
            if (nb == NULL) {
                errno = ENOMEM;
                return -1;
            }

            r->line = nb;
            r->size = size;
        }

        memcpy(r->line + n, p, chunk);
        n += chunk;
        r->pos += chunk;

        if (nl != NULL) {
            r->pos++;
            goto done;
        }
    }

    if (n == 0) {
        return 0;
    }

done:

    r->line[n] = '\0';
    r->number++;

    *line = r->line;
    *len = n;

    return 1;
}


void
actl_reader_free(actl_reader_t *r)
{
    actl_secure_free(r->buf);
    actl_secure_free(r->line);

    r->buf = NULL;
    r->line = NULL;
}


static int
actl_reader_error(actl_import_t *imp, actl_reader_t *r, int n,
    const char *path)
{
    if (n == -2) {
        actl_error(imp->ctx, "line %llu: line is longer than %d bytes",
                   (unsigned long long) r->number, ACTL_LINE_MAX);
        return ACTL_INVALID;
    }

    actl_error(imp->ctx, "read \"%s\": %s", path, strerror(errno));

    return ACTL_FAIL;
}


/* import */

int
actl_import_csv(actl_import_t *imp, actl_reader_t *r, const char *path)
{
    int                 n, rc;
    char               *line;
    size_t              i, len;
    struct csv_parser   p;

    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        actl_error(imp->ctx, "csv_init() failed");
        return ACTL_FAIL;
    }

    /*
     * libcsv collects each field in a buffer it grows with realloc() and
     * releases with free(); a field may be a plaintext key, so the buffer
     * must be wiped whenever it moves or goes: see actl_mem_t
     */

    csv_set_realloc_func(&p, actl_secure_realloc);
    csv_set_free_func(&p, actl_secure_free);

    for (i = 0; i < ACTL_COL_N; i++) {
        imp->fields.data[i] = imp->store[i];
    }

    /*
     * The rows split here are checked and hashed in batches, in another
     * thread (actl_import_thread.c), which reports the rows it rejects;
     * an error found here is reported only after every row before it.
     */

    rc = actl_batch_start(imp);
    if (rc != ACTL_OK) {
        goto done;
    }

    for ( ;; ) {
        n = actl_reader_line(r, &line, &len);

        if (n == 0) {
            break;
        }

        if (n < 0) {
            rc = actl_batch_drain(imp);

            if (rc == ACTL_OK) {
                rc = actl_reader_error(imp, r, n, path);
            }

            goto done;
        }

        if (r->number == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
        {
            /* a UTF-8 byte order mark */
            line += 3;
            len -= 3;
        }

        if (!imp->pending) {
            imp->csv_line = r->number;
        }

        imp->row_ended = 0;

        if (csv_parse(&p, line, len, actl_csv_field, actl_csv_row, imp) != len
            || csv_parse(&p, "\n", 1, actl_csv_field, actl_csv_row, imp) != 1)
        {
            rc = actl_batch_drain(imp);

            if (rc == ACTL_OK) {
                actl_error(imp->ctx, "line %llu: malformed CSV (%s)",
                           (unsigned long long) r->number,
                           csv_strerror(csv_error(&p)));
                rc = ACTL_INVALID;
            }

            goto done;
        }

        if (imp->rc != ACTL_OK) {
            rc = imp->rc;
            goto done;
        }

        if (imp->row_ended) {
            imp->pending = 0;

        } else if (len > 0 && strspn(line, " \t\r") != len) {
            imp->pending = 1;
        }
    }

    if (csv_fini(&p, actl_csv_field, actl_csv_row, imp) != 0) {
        rc = actl_batch_drain(imp);

        if (rc == ACTL_OK) {
            actl_error(imp->ctx, "line %llu: malformed CSV (a quoted field "
                       "is not closed)", (unsigned long long) imp->csv_line);
            rc = ACTL_INVALID;
        }

        goto done;
    }

    rc = imp->rc;

    if (rc == ACTL_OK) {
        rc = actl_batch_drain(imp);
    }

done:

    actl_batch_stop(imp);
    csv_free(&p);

    return rc;
}


static void
actl_csv_field(void *s, size_t len, void *data)
{
    actl_import_t  *imp = data;

    int          col;
    size_t       n;
    const char  *v;
    char         q[ACTL_QUOTE_LEN];

    if (imp->rc != ACTL_OK) {
        return;
    }

    v = (s != NULL) ? s : "";

    if (!imp->header) {
        col = actl_col_lookup(v, len);

        if (col == -1) {
            if (akc_key_classify((const unsigned char *) v, len)
                != AKC_KEY_INVALID)
            {
                /* a file without a header row: the name may be a key */

                actl_error(imp->ctx, "line %llu: unknown column %d (its "
                           "name is not shown: it could be a key)",
                           (unsigned long long) imp->csv_line, imp->ncols + 1);

            } else {
                actl_error(imp->ctx, "line %llu: unknown column %s",
                           (unsigned long long) imp->csv_line,
                           actl_quote(v, len, q));
            }

            imp->rc = ACTL_INVALID;
            return;
        }

        if (imp->colset & (1u << col)) {
            actl_error(imp->ctx, "line %llu: column \"%s\" is repeated",
                       (unsigned long long) imp->csv_line, actl_col_names[col]);
            imp->rc = ACTL_INVALID;
            return;
        }

        imp->colset |= 1u << col;
        imp->cols[imp->ncols++] = col;

        return;
    }

    if (imp->nfields < imp->ncols) {
        col = imp->cols[imp->nfields];
        n = (len < ACTL_FIELD_MAX) ? len : ACTL_FIELD_MAX;

        /* a longer value keeps its length: every check rejects it */

        memcpy(imp->store[col], v, n);
        imp->store[col][n] = '\0';
        imp->fields.len[col] = len;
    }

    imp->nfields++;
}


static void
actl_csv_row(int c, void *data)
{
    actl_import_t  *imp = data;

    if (imp->rc != ACTL_OK) {
        return;
    }

    imp->row_ended = 1;

    if (!imp->header) {
        if (!(imp->colset & ((1u << ACTL_COL_KEY) | (1u << ACTL_COL_HASH)))) {
            actl_error(imp->ctx, "line %llu: the header has neither a "
                       "\"key\" nor a \"hash\" column",
                       (unsigned long long) imp->csv_line);
            imp->rc = ACTL_INVALID;
            return;
        }

        imp->header = 1;
        return;
    }

    actl_import_progress(imp, 0);

    /* checked, with the count of its fields, in the order of the file */

    imp->rc = actl_batch_add(imp);

    actl_csv_reset(imp);
}


static void
actl_csv_reset(actl_import_t *imp)
{
    int  i;

    sodium_memzero(imp->store[ACTL_COL_KEY], ACTL_FIELD_MAX + 1);

    for (i = 0; i < ACTL_COL_N; i++) {
        imp->store[i][0] = '\0';
        imp->fields.len[i] = 0;
    }

    imp->nfields = 0;
}


int
actl_import_jsonl(actl_import_t *imp, actl_reader_t *r, const char *path)
{
    int            n, rc;
    char          *line;
    char           err[ACTL_ERR_LEN];
    size_t         len;
    json_t        *obj;
    json_error_t   jerr;

    for ( ;; ) {
        n = actl_reader_line(r, &line, &len);

        if (n == 0) {
            return ACTL_OK;
        }

        if (n < 0) {
            return actl_reader_error(imp, r, n, path);
        }

        imp->line = r->number;

        if (strspn(line, " \t\r") == len) {
            continue;
        }

        actl_import_progress(imp, 0);

        /* jansson's error text quotes the input: it may hold a key */

        obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);

        if (obj == NULL) {
            if (json_error_code(&jerr) == json_error_duplicate_key) {
                snprintf(err, sizeof(err), "a field is repeated");

            } else {
                snprintf(err, sizeof(err), "invalid JSON at column %d",
                         jerr.column);
            }

            rc = ACTL_INVALID;

        } else {
            rc = actl_import_json(imp, obj, err, sizeof(err));
            json_decref(obj);
        }

        rc = actl_import_result(imp, rc, err);
        if (rc != ACTL_OK) {
            return rc;
        }
    }
}


static int
actl_import_json(actl_import_t *imp, json_t *obj, char *err, size_t errlen)
{
    int             col, rc;
    char            q[ACTL_QUOTE_LEN];
    size_t          i, n, len;
    json_t         *value, *item;
    const char     *name;
    actl_fields_t   f;
    char            scopes[AKC_SCOPES_MAX_LEN + 1];

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "not a JSON object");
        return ACTL_INVALID;
    }

    for (i = 0; i < ACTL_COL_N; i++) {
        f.data[i] = "";
        f.len[i] = 0;
    }

    json_object_foreach(obj, name, value) {
        col = actl_col_lookup(name, strlen(name));

        if (col == -1) {
            if (akc_key_classify((const unsigned char *) name, strlen(name))
                != AKC_KEY_INVALID)
            {
                snprintf(err, errlen, "unknown field (its name is not "
                         "shown: it could be a key)");

            } else {
                snprintf(err, errlen, "unknown field %s",
                         actl_quote(name, strlen(name), q));
            }

            return ACTL_INVALID;
        }

        if (json_is_null(value)) {
            continue;
        }

        if (json_is_string(value)) {
            f.data[col] = json_string_value(value);
            f.len[col] = json_string_length(value);

            if (memchr(f.data[col], '\0', f.len[col]) != NULL) {
                snprintf(err, errlen, "field \"%s\" contains a NUL",
                         actl_col_names[col]);
                return ACTL_INVALID;
            }

            continue;
        }

        if (col == ACTL_COL_DISABLED && json_is_boolean(value)) {
            f.data[col] = json_is_true(value) ? "true" : "false";
            f.len[col] = strlen(f.data[col]);
            continue;
        }

        if (col == ACTL_COL_SCOPES && json_is_array(value)) {
            n = 0;

            json_array_foreach(value, i, item) {
                if (!json_is_string(item)) {
                    snprintf(err, errlen, "scopes must be strings");
                    return ACTL_INVALID;
                }

                len = json_string_length(item);

                /* one element, one scope: "read,admin" is not two */

                if (len == 0
                    || memchr(json_string_value(item), ',', len) != NULL)
                {
                    snprintf(err, errlen, "scopes[%zu] is not one scope "
                             "(empty, or with a comma)", i);
                    return ACTL_INVALID;
                }

                if (n + (n > 0) + len > AKC_SCOPES_MAX_LEN) {
                    snprintf(err, errlen, "scopes are longer than %d bytes",
                             AKC_SCOPES_MAX_LEN);
                    return ACTL_INVALID;
                }

                if (n > 0) {
                    scopes[n++] = ',';
                }

                memcpy(scopes + n, json_string_value(item), len);
                n += len;
            }

            f.data[col] = scopes;
            f.len[col] = n;
            continue;
        }

        snprintf(err, errlen, "field \"%s\" has the wrong type",
                 actl_col_names[col]);
        return ACTL_INVALID;
    }

    rc = actl_import_row(imp, &f, err, errlen);

    return rc;
}


/*
 * One row, whatever its format: ACTL_OK, ACTL_INVALID with the reason in
 * err, or ACTL_FAIL (reported already).  Nothing is written before every
 * check has passed, so a skipped row leaves no trace.
 */

int
actl_import_row(actl_import_t *imp, actl_fields_t *f, char *err,
    size_t errlen)
{
    int            rc, has_key;
    size_t         i;
    akc_record_t   rec;
    unsigned char  hash[AKC_HASH_LEN];
    char           hint[AKC_HINT_MAX_LEN + 1];
    char           id[ACTL_DEFAULT_ID_LEN + 1];

    static const actl_col_e  texts[] = {
        ACTL_COL_ID, ACTL_COL_SUBJECT, ACTL_COL_SCOPES, ACTL_COL_PLAN
    };

    /* a key in any other column is neither stored nor shown */

    for (i = 0; i < ACTL_COL_N; i++) {
        /* a CSV field keeps ACTL_FIELD_MAX bytes of a longer value */

        if (i != ACTL_COL_KEY
            && actl_has_key(f->data[i], f->len[i] < ACTL_FIELD_MAX
                                        ? f->len[i] : ACTL_FIELD_MAX))
        {
            if (imp->follow) {
                snprintf(err, errlen, "column \"%s\" holds an API key (not "
                         "shown); the table holds the keyed hash of a key "
                         "(\"hash\"), never the key", actl_col_names[i]);

            } else {
                snprintf(err, errlen, "%s \"%s\" holds an API key (not "
                         "shown); keys go in the \"key\" %s",
                         imp->jsonl ? "field" : "column", actl_col_names[i],
                         imp->jsonl ? "field" : "column");
            }

            return ACTL_INVALID;
        }
    }

    has_key = f->len[ACTL_COL_KEY] > 0;

    if (has_key == (f->len[ACTL_COL_HASH] > 0)) {
        snprintf(err, errlen, has_key ? "both a key and a hash"
                                      : "no key or hash");
        return ACTL_INVALID;
    }

    memset(&rec, 0, sizeof(akc_record_t));

    if (has_key) {
        rc = actl_check_key(f->data[ACTL_COL_KEY], f->len[ACTL_COL_KEY],
                            err, errlen);
        if (rc != ACTL_OK) {
            return rc;
        }

        /* the hint is the key's own: a hint column is ignored */

        if (imp->brow != NULL) {
            /* hashed already, in the thread that read it */
            memcpy(hash, imp->brow->hash, AKC_HASH_LEN);
            memcpy(hint, imp->brow->hint, imp->brow->hint_len);
            rec.hint.len = imp->brow->hint_len;

        } else {
            akc_hash(&imp->ctx->secret,
                     (unsigned char *) f->data[ACTL_COL_KEY],
                     f->len[ACTL_COL_KEY], hash);
            rec.hint.len = akc_key_hint(
                               (unsigned char *) f->data[ACTL_COL_KEY],
                               f->len[ACTL_COL_KEY], hint);
        }

        rec.hint.data = hint;

    } else {
        rc = actl_check_hash(f->data[ACTL_COL_HASH], f->len[ACTL_COL_HASH],
                             hash, err, errlen);
        if (rc != ACTL_OK) {
            return rc;
        }

        rc = actl_check_field(ACTL_COL_HINT, f->data[ACTL_COL_HINT],
                              f->len[ACTL_COL_HINT], err, errlen);
        if (rc != ACTL_OK) {
            return rc;
        }

        rec.hint.data = f->data[ACTL_COL_HINT];
        rec.hint.len = f->len[ACTL_COL_HINT];
    }

    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (texts[i] == ACTL_COL_ID && f->len[ACTL_COL_ID] == 0) {
            continue;
        }

        rc = actl_check_field(texts[i], f->data[texts[i]], f->len[texts[i]],
                              err, errlen);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    rc = actl_check_time(ACTL_COL_EXPIRES, f->data[ACTL_COL_EXPIRES],
                         f->len[ACTL_COL_EXPIRES], imp->ctx->now,
                         &rec.expires, err, errlen);

    if (rc == ACTL_OK) {
        rc = actl_check_time(ACTL_COL_NOT_BEFORE, f->data[ACTL_COL_NOT_BEFORE],
                             f->len[ACTL_COL_NOT_BEFORE], imp->ctx->now,
                             &rec.not_before, err, errlen);
    }

    if (rc == ACTL_OK) {
        rc = actl_check_time(ACTL_COL_CREATED, f->data[ACTL_COL_CREATED],
                             f->len[ACTL_COL_CREATED], imp->ctx->now,
                             &rec.created, err, errlen);
    }

    if (rc == ACTL_OK) {
        rc = actl_check_times(rec.not_before, rec.expires, err, errlen);
    }

    if (rc == ACTL_OK) {
        rc = actl_check_bool(f->data[ACTL_COL_DISABLED],
                             f->len[ACTL_COL_DISABLED], &rec.flags, err,
                             errlen);
    }

    if (rc != ACTL_OK) {
        return rc;
    }

    if (rec.created == 0) {
        rec.created = imp->ctx->now;
    }

    rec.subject.data = f->data[ACTL_COL_SUBJECT];
    rec.subject.len = f->len[ACTL_COL_SUBJECT];
    rec.scopes.data = f->data[ACTL_COL_SCOPES];
    rec.scopes.len = f->len[ACTL_COL_SCOPES];
    rec.plan.data = f->data[ACTL_COL_PLAN];
    rec.plan.len = f->len[ACTL_COL_PLAN];

    if (f->len[ACTL_COL_ID] > 0) {
        rec.id.data = f->data[ACTL_COL_ID];
        rec.id.len = f->len[ACTL_COL_ID];

    } else {
        actl_default_id(hash, id);
        rec.id.data = id;
        rec.id.len = ACTL_DEFAULT_ID_LEN;
    }

    return actl_import_keep(imp, &rec, hash, f->len[ACTL_COL_ID] > 0,
                            f->len[ACTL_COL_CREATED] > 0, err, errlen);
}
