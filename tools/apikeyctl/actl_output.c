
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl: keys written out as a table, JSON or CSV, never with the
 * plaintext key.
 */


#include "actl.h"


static json_t *actl_json_record(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash);
static void actl_csv_put(const char *s, size_t len, int last);


int
actl_table_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data)
{
    actl_table_t  *table = data;

    int          i;
    size_t       len[ACTL_TABLE_COLS];
    const char  *val[ACTL_TABLE_COLS];
    char         t[AKC_TIME_LEN + 1];

    val[0] = rec->id.data;
    len[0] = rec->id.len;
    val[1] = rec->subject.data;
    len[1] = rec->subject.len;
    val[2] = rec->plan.data;
    len[2] = rec->plan.len;
    val[3] = rec->scopes.data;
    len[3] = rec->scopes.len;
    val[4] = akc_status_name(akc_record_status(rec, ctx->now));
    len[4] = strlen(val[4]);
    val[5] = rec->expires ? actl_time(rec->expires, t) : "";
    len[5] = strlen(val[5]);
    val[6] = rec->hint.data;
    len[6] = rec->hint.len;

    for (i = 0; i < ACTL_TABLE_COLS; i++) {
        if (len[i] == 0) {
            val[i] = "-";
            len[i] = 1;
        }

        if (table->pass == 0) {
            if (len[i] > table->width[i]) {
                table->width[i] = len[i];
            }

            continue;
        }

        if (i < ACTL_TABLE_COLS - 1) {
            printf("%.*s%*s  ", (int) len[i], val[i],
                   (int) (table->width[i] - len[i]), "");

        } else {
            printf("%.*s\n", (int) len[i], val[i]);
        }
    }

    return ACTL_OK;
}


/* data != NULL: export, with the hash */

int
actl_json_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data)
{
    json_t  *obj;

    obj = actl_json_record(ctx, rec, data != NULL ? hash : NULL);
    if (obj == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    json_dumpf(obj, stdout, JSON_COMPACT);
    fputc('\n', stdout);

    json_decref(obj);

    return ACTL_OK;
}


static json_t *
actl_json_record(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash)
{
    json_t  *obj;
    char     hex[2 * AKC_HASH_LEN + 1];

    obj = json_object();
    if (obj == NULL) {
        return NULL;
    }

    if (hash != NULL) {
        sodium_bin2hex(hex, sizeof(hex), hash, AKC_HASH_LEN);
        actl_json_str(obj, "hash", hex, 2 * AKC_HASH_LEN);
    }

    actl_json_str(obj, "id", rec->id.data, rec->id.len);
    actl_json_str(obj, "subject", rec->subject.data, rec->subject.len);
    actl_json_str(obj, "scopes", rec->scopes.data, rec->scopes.len);
    actl_json_str(obj, "plan", rec->plan.data, rec->plan.len);

    if (hash == NULL) {
        json_object_set_new(obj, "status",
            json_string(akc_status_name(akc_record_status(rec, ctx->now))));
    }

    actl_json_time(obj, "expires", rec->expires);
    actl_json_time(obj, "not_before", rec->not_before);

    if (hash == NULL) {
        actl_json_time(obj, "created", rec->created);
    }

    json_object_set_new(obj, "disabled",
                        json_boolean(rec->flags & AKC_FLAG_DISABLED));
    actl_json_str(obj, "hint", rec->hint.data, rec->hint.len);

    if (hash != NULL) {
        actl_json_time(obj, "created", rec->created);
        return obj;
    }

    /* rotated once, when it was: its end is kept by imports */

    if (rec->flags & AKC_FLAG_RETIRED) {
        json_object_set_new(obj, "retired", json_true());
    }

    /* the rotation links, when set: export's columns stay as they are */

    if (rec->replaces.len) {
        actl_json_str(obj, "replaces", rec->replaces.data, rec->replaces.len);
    }

    if (rec->replaced_by.len) {
        actl_json_str(obj, "replaced_by", rec->replaced_by.data,
                      rec->replaced_by.len);
    }

    return obj;
}


/*
 * show: both links, null when unset, and whether the key each names is
 * still in the database (a revoked one is not)
 */

int
actl_json_show(actl_ctx_t *ctx, const akc_record_t *rec, int replaces,
    int replaced_by)
{
    json_t  *obj;

    obj = actl_json_record(ctx, rec, NULL);
    if (obj == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    if (!(rec->flags & AKC_FLAG_RETIRED)) {
        json_object_set_new(obj, "retired", json_false());
    }

    if (rec->replaces.len) {
        json_object_set_new(obj, "replaces_exists", json_boolean(replaces));

    } else {
        json_object_set_new(obj, "replaces", json_null());
    }

    if (rec->replaced_by.len) {
        json_object_set_new(obj, "replaced_by_exists",
                            json_boolean(replaced_by));

    } else {
        json_object_set_new(obj, "replaced_by", json_null());
    }

    json_dumpf(obj, stdout, JSON_COMPACT);
    fputc('\n', stdout);

    json_decref(obj);

    return ACTL_OK;
}


/* a string that is not UTF-8 (a subject from CSV may not be) is null */

void
actl_json_str(json_t *obj, const char *name, const char *s, size_t len)
{
    json_t  *v;

    v = json_stringn(s, len);

    json_object_set_new(obj, name, v != NULL ? v : json_null());
}


void
actl_json_time(json_t *obj, const char *name, int64_t t)
{
    char  buf[AKC_TIME_LEN + 1];

    json_object_set_new(obj, name,
                        t ? json_string(actl_time(t, buf)) : json_null());
}


/* data != NULL: export, with the hash */

int
actl_csv_out_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data)
{
    const char  *s;
    char         hex[2 * AKC_HASH_LEN + 1], t[AKC_TIME_LEN + 1];

    if (data != NULL) {
        sodium_bin2hex(hex, sizeof(hex), hash, AKC_HASH_LEN);
        actl_csv_put(hex, 2 * AKC_HASH_LEN, 0);
    }

    actl_csv_put(rec->id.data, rec->id.len, 0);
    actl_csv_put(rec->subject.data, rec->subject.len, 0);
    actl_csv_put(rec->scopes.data, rec->scopes.len, 0);
    actl_csv_put(rec->plan.data, rec->plan.len, 0);

    s = rec->expires ? actl_time(rec->expires, t) : "";
    actl_csv_put(s, strlen(s), 0);

    s = rec->not_before ? actl_time(rec->not_before, t) : "";
    actl_csv_put(s, strlen(s), 0);

    s = (rec->flags & AKC_FLAG_DISABLED) ? "true" : "false";
    actl_csv_put(s, strlen(s), 0);

    actl_csv_put(rec->hint.data, rec->hint.len, 0);

    s = rec->created ? actl_time(rec->created, t) : "";
    actl_csv_put(s, strlen(s), 1);

    return ACTL_OK;
}


static void
actl_csv_put(const char *s, size_t len, int last)
{
    /* csv_fwrite() quotes every field */

    csv_fwrite(stdout, s, len);
    fputc(last ? '\n' : ',', stdout);
}


const char *
actl_time(int64_t t, char buf[AKC_TIME_LEN + 1])
{
    if (akc_time_format(t, buf) == 0) {
        return "";
    }

    return buf;
}
