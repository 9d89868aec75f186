
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl list, show and export: reading keys.
 */


#include "actl.h"


static const char  *actl_table_header[] = {
    "ID", "SUBJECT", "PLAN", "SCOPES", "STATUS", "EXPIRES", "HINT"
};


int
actl_cmd_list(actl_ctx_t *ctx, int argc, char **argv)
{
    int            c, rc, format;
    MDB_txn       *txn;
    const char    *subject;
    actl_table_t   table;

    static const char  *formats[] = { "table", "json", "csv", NULL };

    static struct option  options[] = {
        { "subject",    required_argument, NULL, 'S' },
        { "format",     required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    subject = NULL;
    format = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'S':
            subject = optarg;
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

        rc = actl_each(ctx, txn, subject, actl_table_row, &table);
        if (rc != ACTL_OK) {
            break;
        }

        table.pass = 1;

        for (c = 0; c < ACTL_TABLE_COLS - 1; c++) {
            printf("%-*s  ", (int) table.width[c], actl_table_header[c]);
        }

        printf("%s\n", actl_table_header[c]);

        rc = actl_each(ctx, txn, subject, actl_table_row, &table);
        break;

    case 1:
        rc = actl_each(ctx, txn, subject, actl_json_row, NULL);
        break;

    default:
        printf("%s\n", ACTL_CSV_LIST_HEADER);
        rc = actl_each(ctx, txn, subject, actl_csv_out_row, NULL);
        break;
    }

    mdb_txn_abort(txn);

    actl_close(ctx);

    return rc;
}


int
actl_cmd_show(actl_ctx_t *ctx, int argc, char **argv)
{
    int            c, rc, json;
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

    if (json) {
        rc = actl_json_row(ctx, &rec, NULL, NULL);
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
    actl_show_str("hint", rec.hint);

#undef actl_show_str

abort:

    mdb_txn_abort(txn);

    actl_close(ctx);

    return rc;
}


int
actl_cmd_export(actl_ctx_t *ctx, int argc, char **argv)
{
    int           c, rc, jsonl;
    MDB_txn      *txn;

    static const char  *formats[] = { "csv", "jsonl", NULL };

    static struct option  options[] = {
        { "format",     required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    jsonl = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'f':
            jsonl = actl_parse_format(ctx, optarg, formats);
            if (jsonl == -1) {
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
