
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl list, show and export: reading keys.
 */


#include "actl.h"


/* the filters of list beyond the subject, which actl_each() applies */

typedef struct {
    const char             *plan;
    akc_status_e            status;     /* AKC_STATUS_NONE: any */
    int64_t                 until;      /* expiring by then; 0: any */
    actl_each_pt            handler;
    void                   *data;
} actl_filter_t;


static int actl_parse_status(const char *s, akc_status_e *status);
static int actl_filter_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data);
static int actl_show_link(actl_ctx_t *ctx, MDB_txn *txn,
    const akc_record_t *rec, int forward);


static const char  *actl_table_header[] = {
    "ID", "SUBJECT", "PLAN", "SCOPES", "STATUS", "EXPIRES", "HINT"
};


int
actl_cmd_list(actl_ctx_t *ctx, int argc, char **argv)
{
    int             c, rc, format;
    MDB_txn        *txn;
    const char     *subject;
    actl_table_t    table;
    actl_filter_t   filter;

    static const char  *formats[] = { "table", "json", "csv", NULL };

    static struct option  options[] = {
        { "subject",          required_argument, NULL, 'S' },
        { "plan",             required_argument, NULL, 'p' },
        { "status",           required_argument, NULL, 't' },
        { "expiring-within",  required_argument, NULL, 'e' },
        { "format",           required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    subject = NULL;
    format = 0;

    memset(&filter, 0, sizeof(actl_filter_t));

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'S':
            subject = optarg;
            break;

        case 'p':
            filter.plan = optarg;
            break;

        case 't':
            if (actl_parse_status(optarg, &filter.status) != ACTL_OK) {
                return actl_usage_error(ctx, "invalid status \"%s\" "
                                        "(valid, expired, disabled or "
                                        "not_yet_valid)", optarg);
            }
            break;

        case 'e':
            if (actl_parse_duration(ctx, optarg, &filter.until) != ACTL_OK)
            {
                return actl_usage_error(ctx, "invalid duration \"%s\" "
                                        "(such as 30d, 12h, 15m, 90s or "
                                        "2w)", optarg);
            }
            break;

        case 'f':
            format = actl_parse_format(ctx, optarg, formats);
            if (format == -1) {
                return ACTL_USAGE;
            }
            break;

        default:
            return actl_option_error(ctx, c, argv);
        }
    }

    if (optind != argc) {
        return actl_usage_error(ctx, "unexpected argument \"%s\"",
                                argv[optind]);
    }

    txn = NULL;

    rc = actl_start(ctx, MDB_RDONLY, &txn);
    if (rc != ACTL_OK) {
        return rc;
    }

    switch (format) {

    case 0:
        /* two passes: the widths of the columns, then the rows */

        memset(&table, 0, sizeof(actl_table_t));

        for (c = 0; c < ACTL_TABLE_COLS; c++) {
            table.width[c] = strlen(actl_table_header[c]);
        }

        filter.handler = actl_table_row;
        filter.data = &table;

        rc = actl_each(ctx, txn, subject, actl_filter_row, &filter);
        if (rc != ACTL_OK) {
            break;
        }

        table.pass = 1;

        for (c = 0; c < ACTL_TABLE_COLS - 1; c++) {
            printf("%-*s  ", (int) table.width[c], actl_table_header[c]);
        }

        printf("%s\n", actl_table_header[c]);

        rc = actl_each(ctx, txn, subject, actl_filter_row, &filter);
        break;

    case 1:
        filter.handler = actl_json_row;
        rc = actl_each(ctx, txn, subject, actl_filter_row, &filter);
        break;

    default:
        printf("%s\n", ACTL_CSV_LIST_HEADER);
        filter.handler = actl_csv_out_row;
        rc = actl_each(ctx, txn, subject, actl_filter_row, &filter);
        break;
    }

    mdb_txn_abort(txn);

    actl_close(ctx);

    return rc;
}


static int
actl_parse_status(const char *s, akc_status_e *status)
{
    size_t  i;

    static akc_status_e  statuses[] = {
        AKC_STATUS_VALID, AKC_STATUS_EXPIRED, AKC_STATUS_DISABLED,
        AKC_STATUS_NOT_YET_VALID
    };

    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (strcmp(s, akc_status_name(statuses[i])) == 0) {
            *status = statuses[i];
            return ACTL_OK;
        }
    }

    return ACTL_USAGE;
}


static int
actl_filter_row(actl_ctx_t *ctx, const akc_record_t *rec,
    const unsigned char *hash, void *data)
{
    size_t          len;
    actl_filter_t  *filter;

    filter = data;

    if (filter->plan != NULL) {
        len = strlen(filter->plan);

        if (rec->plan.len != len
            || memcmp(rec->plan.data, filter->plan, len) != 0)
        {
            return ACTL_OK;
        }
    }

    if (filter->status != AKC_STATUS_NONE
        && akc_record_status(rec, ctx->now) != filter->status)
    {
        return ACTL_OK;
    }

    /* not expired yet, and expiring by then */

    if (filter->until != 0
        && (rec->expires == 0 || rec->expires <= ctx->now
            || rec->expires > filter->until))
    {
        return ACTL_OK;
    }

    return filter->handler(ctx, rec, hash, filter->data);
}


int
actl_cmd_show(actl_ctx_t *ctx, int argc, char **argv)
{
    int            c, rc, json, replaces, replaced_by;
    char          *id;
    MDB_txn       *txn;
    akc_record_t   rec;
    char           t[AKC_TIME_LEN + 1];

    static const char  *formats[] = { "text", "json", NULL };

    static struct option  options[] = {
        { "format",     required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    json = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'f':
            json = actl_parse_format(ctx, optarg, formats);
            if (json == -1) {
                return ACTL_USAGE;
            }
            break;

        default:
            return actl_option_error(ctx, c, argv);
        }
    }

    if (argc - optind != 1) {
        return actl_usage_error(ctx, "expected one ID");
    }

    id = argv[optind];
    txn = NULL;

    rc = actl_start(ctx, MDB_RDONLY, &txn);
    if (rc != ACTL_OK) {
        return rc;
    }

    rc = actl_lookup(ctx, txn, id, &rec);
    if (rc != ACTL_OK) {
        goto abort;
    }

    replaces = actl_show_link(ctx, txn, &rec, 0);
    replaced_by = actl_show_link(ctx, txn, &rec, 1);

    if (replaces == -1 || replaced_by == -1) {
        rc = ACTL_FAIL;
        goto abort;
    }

    if (json) {
        rc = actl_json_show(ctx, &rec, replaces, replaced_by);
        goto abort;
    }

#define actl_show_str(name, s)                                                \
    printf("%s: %.*s\n", name, (s).len ? (int) (s).len : 1,                   \
           (s).len ? (s).data : "-")

    actl_show_str("id", rec.id);
    actl_show_str("subject", rec.subject);
    actl_show_str("scopes", rec.scopes);
    actl_show_str("plan", rec.plan);
    printf("status: %s\n",
           akc_status_name(akc_record_status(&rec, ctx->now)));
    printf("created: %s\n", rec.created ? actl_time(rec.created, t) : "-");
    printf("not_before: %s\n",
           rec.not_before ? actl_time(rec.not_before, t) : "-");
    printf("expires: %s\n", rec.expires ? actl_time(rec.expires, t) : "-");
    printf("disabled: %s\n",
           (rec.flags & AKC_FLAG_DISABLED) ? "true" : "false");

    /* only on the old key of a rotation: other keys show as before */

    if (rec.flags & AKC_FLAG_RETIRED) {
        printf("retired: true\n");
    }

    actl_show_str("hint", rec.hint);

#define actl_show_id(name, s, exists)                                         \
    printf("%s: %.*s%s\n", name, (s).len ? (int) (s).len : 1,                 \
           (s).len ? (s).data : "-",                                          \
           ((s).len && !(exists)) ? " (no longer in the database)" : "")

    actl_show_id("replaces", rec.replaces, replaces);
    actl_show_id("replaced_by", rec.replaced_by, replaced_by);

#undef actl_show_id
#undef actl_show_str

abort:

    mdb_txn_abort(txn);

    actl_close(ctx);

    return rc;
}


/*
 * 1: the key a link names (replaced_by when forward, or replaces) is
 * there and links back, 0: it is not, or no link; -1: an error.  revoke
 * removes the links to the key it revokes, so a link to a key that is
 * not there is left only by an older apikeyctl, or by damage: an id given
 * again to another key is not taken for the key that had it.
 */

static int
actl_show_link(actl_ctx_t *ctx, MDB_txn *txn, const akc_record_t *rec,
    int forward)
{
    int                rc;
    MDB_val            k, v;
    akc_record_t       other;
    const akc_str_t   *link, *back;

    link = forward ? &rec->replaced_by : &rec->replaces;

    if (link->len == 0) {
        return 0;
    }

    k.mv_size = link->len;
    k.mv_data = (void *) link->data;

    rc = mdb_get(txn, ctx->dbs.ids, &k, &v);

    if (rc == MDB_SUCCESS) {
        if (v.mv_size != AKC_HASH_LEN) {
            return 0;
        }

        rc = mdb_get(txn, ctx->dbs.keys, &v, &v);
    }

    if (rc == MDB_NOTFOUND) {
        return 0;
    }

    if (rc != MDB_SUCCESS) {
        actl_mdb_error(ctx, "mdb_get", rc);
        return -1;
    }

    if (akc_record_decode(&other, v.mv_data, v.mv_size) != AKC_OK) {
        return 0;
    }

    back = forward ? &other.replaces : &other.replaced_by;

    return back->len == rec->id.len
           && memcmp(back->data, rec->id.data, rec->id.len) == 0;
}


int
actl_cmd_export(actl_ctx_t *ctx, int argc, char **argv)
{
    int           rc, jsonl;
    MDB_txn      *txn;

    static const char  *formats[] = { "csv", "jsonl", NULL };

    jsonl = actl_format_only(ctx, argc, argv, formats);
    if (jsonl == -1) {
        return ACTL_USAGE;
    }

    txn = NULL;

    rc = actl_start(ctx, MDB_RDONLY, &txn);
    if (rc != ACTL_OK) {
        return rc;
    }

    if (jsonl) {
        rc = actl_each(ctx, txn, NULL, actl_json_row, (void *) 1);

    } else {
        printf("hash,%s\n", ACTL_CSV_LIST_HEADER);
        rc = actl_each(ctx, txn, NULL, actl_csv_out_row, (void *) 1);
    }

    mdb_txn_abort(txn);

    actl_close(ctx);

    return rc;
}
