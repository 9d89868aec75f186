
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl import: the CSV rows checked and hashed in a second thread.
 * The main thread reads and splits the lines (libcsv) into one batch
 * while the second thread checks, hashes and keeps the rows of the
 * other, in the order of the file, and reports the rows it rejects as
 * before.  Without the thread (imp->threads unset, or no thread could
 * be made) each batch is done where it is filled.
 */


#include "actl.h"


static void *actl_batch_thread(void *data);
static int actl_batch_run(actl_import_t *imp, actl_batch_t *b);
static void actl_batch_wipe(actl_batch_t *b);


int
actl_batch_start(actl_import_t *imp)
{
    int  i;

    for (i = 0; i < 2; i++) {
        imp->batch[i].rows = malloc(ACTL_BATCH_ROWS * sizeof(actl_brow_t));
        imp->batch[i].data = actl_secure_malloc(ACTL_BATCH_DATA);
        imp->batch[i].nrows = 0;
        imp->batch[i].len = 0;

        if (imp->batch[i].rows == NULL || imp->batch[i].data == NULL) {
            actl_error(imp->ctx, "out of memory");
            return ACTL_FAIL;
        }

        imp->full[i] = 0;
    }

    imp->fill = 0;
    imp->wrc = ACTL_OK;
    imp->quit = 0;

    if (!imp->threads) {
        return ACTL_OK;
    }

    if (pthread_mutex_init(&imp->mutex, NULL) != 0) {
        return ACTL_OK;
    }

    if (pthread_cond_init(&imp->cond, NULL) != 0) {
        pthread_mutex_destroy(&imp->mutex);
        return ACTL_OK;
    }

    if (pthread_create(&imp->thread, NULL, actl_batch_thread, imp) != 0) {
        pthread_cond_destroy(&imp->cond);
        pthread_mutex_destroy(&imp->mutex);
        return ACTL_OK;
    }

    imp->threaded = 1;

    return ACTL_OK;
}


/* the row libcsv has split (imp->store, imp->fields), into the batch */

int
actl_batch_add(actl_import_t *imp)
{
    int            rc;
    size_t         i, n;
    actl_brow_t   *br;
    actl_batch_t  *b;

    b = &imp->batch[imp->fill];

    if (b->nrows == ACTL_BATCH_ROWS
        || ACTL_BATCH_DATA - b->len < ACTL_COL_N * (ACTL_FIELD_MAX + 1))
    {
        rc = actl_batch_send(imp);
        if (rc != ACTL_OK) {
            return rc;
        }

        b = &imp->batch[imp->fill];
    }

    br = &b->rows[b->nrows++];

    br->line = imp->csv_line;
    br->off = (uint32_t) b->len;
    br->nfields = imp->nfields;

    for (i = 0; i < ACTL_COL_N; i++) {
        n = imp->fields.len[i];
        br->len[i] = (uint32_t) n;

        if (n > ACTL_FIELD_MAX) {
            n = ACTL_FIELD_MAX;
        }

        memcpy(b->data + b->len, imp->store[i], n);
        b->data[b->len + n] = '\0';
        b->len += n + 1;
    }

    n = imp->fields.len[ACTL_COL_KEY];
    br->hashed = (n >= AKC_KEY_MIN_LEN && n <= AKC_KEY_MAX_LEN);

    if (br->hashed) {
        akc_hash(&imp->ctx->secret, (unsigned char *) imp->store[ACTL_COL_KEY],
                 n, br->hash);
        br->hint_len = (uint8_t) akc_key_hint(
                           (unsigned char *) imp->store[ACTL_COL_KEY], n,
                           br->hint);
    }

    return ACTL_OK;
}


/*
 * The batch filled goes to the thread, and the other one is waited for;
 * the thread's result so far is returned: not ACTL_OK, it has reported
 * why, and the reading stops.
 */

int
actl_batch_send(actl_import_t *imp)
{
    int            rc;
    actl_batch_t  *b;

    b = &imp->batch[imp->fill];

    if (b->nrows == 0) {
        return imp->threaded ? ACTL_OK : imp->wrc;
    }

    if (!imp->threaded) {
        if (imp->wrc == ACTL_OK) {
            imp->wrc = actl_batch_run(imp, b);
        }

        actl_batch_wipe(b);

        return imp->wrc;
    }

    pthread_mutex_lock(&imp->mutex);

    imp->full[imp->fill] = 1;
    pthread_cond_broadcast(&imp->cond);

    imp->fill ^= 1;

    while (imp->full[imp->fill]) {
        pthread_cond_wait(&imp->cond, &imp->mutex);
    }

    rc = imp->wrc;

    pthread_mutex_unlock(&imp->mutex);

    return rc;
}


/* every row read is done: what the thread found, reported already */

int
actl_batch_drain(actl_import_t *imp)
{
    int  rc;

    rc = actl_batch_send(imp);

    if (!imp->threaded) {
        return rc;
    }

    pthread_mutex_lock(&imp->mutex);

    while (imp->full[0] || imp->full[1]) {
        pthread_cond_wait(&imp->cond, &imp->mutex);
    }

    rc = imp->wrc;

    pthread_mutex_unlock(&imp->mutex);

    return rc;
}


void
actl_batch_stop(actl_import_t *imp)
{
    int  i;

    if (imp->threaded) {
        pthread_mutex_lock(&imp->mutex);
        imp->quit = 1;
        pthread_cond_broadcast(&imp->cond);
        pthread_mutex_unlock(&imp->mutex);

        pthread_join(imp->thread, NULL);

        pthread_cond_destroy(&imp->cond);
        pthread_mutex_destroy(&imp->mutex);

        imp->threaded = 0;
    }

    for (i = 0; i < 2; i++) {
        if (imp->batch[i].data != NULL) {
            actl_batch_wipe(&imp->batch[i]);
        }

        actl_secure_free(imp->batch[i].data);
        free(imp->batch[i].rows);

        imp->batch[i].data = NULL;
        imp->batch[i].rows = NULL;
    }
}


static void *
actl_batch_thread(void *data)
{
    actl_import_t  *imp = data;

    int  i, rc;

    i = 0;

    pthread_mutex_lock(&imp->mutex);

    for ( ;; ) {
        while (!imp->full[i] && !imp->quit) {
            pthread_cond_wait(&imp->cond, &imp->mutex);
        }

        if (!imp->full[i]) {
            break;
        }

        rc = imp->wrc;

        pthread_mutex_unlock(&imp->mutex);

        /* after a failure the rows are only wiped */

        if (rc == ACTL_OK) {
            rc = actl_batch_run(imp, &imp->batch[i]);
        }

        actl_batch_wipe(&imp->batch[i]);

        pthread_mutex_lock(&imp->mutex);

        imp->wrc = rc;
        imp->full[i] = 0;
        pthread_cond_broadcast(&imp->cond);

        i ^= 1;
    }

    pthread_mutex_unlock(&imp->mutex);

    return NULL;
}


static int
actl_batch_run(actl_import_t *imp, actl_batch_t *b)
{
    int             rc;
    char           *p;
    char            err[ACTL_ERR_LEN];
    size_t          i, j, n;
    actl_brow_t    *br;
    actl_fields_t   f;

    for (i = 0; i < b->nrows; i++) {
        br = &b->rows[i];

        imp->line = br->line;

        if (br->nfields != imp->ncols) {
            snprintf(err, sizeof(err), "expected %d fields, found %d",
                     imp->ncols, (int) br->nfields);
            rc = ACTL_INVALID;

        } else {
            p = b->data + br->off;

            for (j = 0; j < ACTL_COL_N; j++) {
                n = br->len[j];

                f.data[j] = p;
                f.len[j] = n;

                p += ((n < ACTL_FIELD_MAX) ? n : ACTL_FIELD_MAX) + 1;
            }

            imp->brow = br->hashed ? br : NULL;

            rc = actl_import_row(imp, &f, err, sizeof(err));

            imp->brow = NULL;
        }

        rc = actl_import_result(imp, rc, err);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    return ACTL_OK;
}


static void
actl_batch_wipe(actl_batch_t *b)
{
    sodium_memzero(b->data, b->len);

    b->len = 0;
    b->nrows = 0;
}
