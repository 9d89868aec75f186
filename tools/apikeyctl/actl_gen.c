
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl gen: new keys, printed once.
 */


#include "actl.h"


/* what the write transaction of gen needs, kept outside it */

typedef struct {
    akc_record_t           *rec;
    const char             *prefix;
    const char             *id;
    actl_genkey_t          *keys;
    size_t                  count;
} actl_gen_t;


static int actl_gen_write(actl_ctx_t *ctx, MDB_txn *txn, void *data);
static void actl_gen_unseen(actl_ctx_t *ctx, actl_genkey_t *keys,
    size_t count, const char *id);


int
actl_cmd_gen(actl_ctx_t *ctx, int argc, char **argv)
{
    int              c, rc, json;
    char            *id, *prefix, *expires, *not_before, *count_s;
    char             err[ACTL_ERR_LEN], t[AKC_TIME_LEN + 1];
    size_t           i, count;
    actl_gen_t       gen;
    akc_record_t     rec;
    actl_genkey_t   *keys;

    static const char  *formats[] = { "text", "json", NULL };

    static struct option  options[] = {
        { "id",         required_argument, NULL, 'i' },
        { "subject",    required_argument, NULL, 'S' },
        { "scopes",     required_argument, NULL, 'c' },
        { "plan",       required_argument, NULL, 'p' },
        { "expires",    required_argument, NULL, 'e' },
        { "not-before", required_argument, NULL, 'n' },
        { "prefix",     required_argument, NULL, 'P' },
        { "count",      required_argument, NULL, 'C' },
        { "format",     required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    memset(&rec, 0, sizeof(akc_record_t));
    rec.subject.data = "";
    rec.scopes.data = "";
    rec.plan.data = "";

    id = NULL;
    prefix = AKC_DEFAULT_PREFIX;
    expires = NULL;
    not_before = NULL;
    count_s = NULL;
    json = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'i':
            id = optarg;
            break;

        case 'S':
            rec.subject.data = optarg;
            break;

        case 'c':
            rec.scopes.data = optarg;
            break;

        case 'p':
            rec.plan.data = optarg;
            break;

        case 'e':
            expires = optarg;
            break;

        case 'n':
            not_before = optarg;
            break;

        case 'P':
            prefix = optarg;
            break;

        case 'C':
            count_s = optarg;
            break;

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

    if (optind != argc) {
        return actl_usage_error(ctx, "unexpected argument \"%s\"",
                                argv[optind]);
    }

    count = 1;

    if (count_s != NULL) {
        count = 0;

        for (i = 0; count_s[i] != '\0'; i++) {
            if (count_s[i] < '0' || count_s[i] > '9' || i > 7) {
                count = 0;
                break;
            }

            count = count * 10 + (count_s[i] - '0');
        }

        if (count < 1 || count > ACTL_GEN_MAX) {
            return actl_usage_error(ctx, "invalid count \"%s\" "
                                    "(1 to %d)", count_s, ACTL_GEN_MAX);
        }
    }

    if (id != NULL && count > 1) {
        return actl_usage_error(ctx, "--id cannot be used with --count "
                                "greater than 1");
    }

    /*
     * an empty time is "none" in an import column, but here it is more
     * likely an unset shell variable: a key that never expires by mistake
     */

    if ((expires != NULL && expires[0] == '\0')
        || (not_before != NULL && not_before[0] == '\0'))
    {
        return actl_usage_error(ctx, "%s is empty: give an RFC 3339 time, "
                                "a duration (30d) or now, or leave the "
                                "option out",
                                (expires != NULL && expires[0] == '\0')
                                ? "--expires" : "--not-before");
    }

    if (!akc_prefix_valid(prefix, strlen(prefix))) {
        return actl_usage_error(ctx, "invalid prefix \"%s\" (1 to %d "
                                "lowercase letters or digits, optionally "
                                "followed by \"_\" and 1 to %d more)",
                                prefix, AKC_PREFIX_PART_MAX,
                                AKC_PREFIX_PART_MAX);
    }

    rec.subject.len = strlen(rec.subject.data);
    rec.scopes.len = strlen(rec.scopes.data);
    rec.plan.len = strlen(rec.plan.data);

    if ((id != NULL
         && actl_check_field(ACTL_COL_ID, id, strlen(id), err, sizeof(err))
            != ACTL_OK)
        || actl_check_field(ACTL_COL_SUBJECT, rec.subject.data,
                            rec.subject.len, err, sizeof(err)) != ACTL_OK
        || actl_check_field(ACTL_COL_SCOPES, rec.scopes.data,
                            rec.scopes.len, err, sizeof(err)) != ACTL_OK
        || actl_check_field(ACTL_COL_PLAN, rec.plan.data, rec.plan.len,
                            err, sizeof(err)) != ACTL_OK
        || (expires != NULL
            && actl_check_time(ACTL_COL_EXPIRES, expires, strlen(expires),
                               ctx->now, &rec.expires, err, sizeof(err))
               != ACTL_OK)
        || (not_before != NULL
            && actl_check_time(ACTL_COL_NOT_BEFORE, not_before,
                               strlen(not_before), ctx->now,
                               &rec.not_before, err, sizeof(err))
               != ACTL_OK)
        || actl_check_times(rec.not_before, rec.expires, err, sizeof(err))
           != ACTL_OK)
    {
        return actl_usage_error(ctx, "%s", err);
    }

    rec.created = ctx->now;

    /* a closed pipe is an error to report, not a silent death */

    (void) signal(SIGPIPE, SIG_IGN);

    keys = actl_secure_malloc(count * sizeof(actl_genkey_t));
    if (keys == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    gen.rec = &rec;
    gen.prefix = prefix;
    gen.id = id;
    gen.keys = keys;
    gen.count = count;

    rc = actl_open(ctx, 0);
    if (rc != ACTL_OK) {
        goto free;
    }

    rc = actl_write(ctx, actl_gen_write, &gen);
    if (rc != ACTL_OK) {
        goto close;
    }

    /*
     * The keys are printed after the commit, and after the writer lock
     * is gone: a key printed for a failed commit would not exist, and a
     * slow reader of the output must not hold up other writers.  Keys
     * stored but not shown are reported, so that they can be revoked.
     */

    actl_close(ctx);

    for (i = 0; i < count; i++) {
        actl_gen_print(ctx, &rec, id, &keys[i], json);
    }

    if (fflush(stdout) == EOF || ferror(stdout)) {
        actl_gen_unseen(ctx, keys, count, id);
        rc = ACTL_FAIL;

    } else if (rec.expires != 0 && rec.expires <= ctx->now) {

        /* allowed (a test, a placeholder), but rarely what was meant */

        fprintf(stderr, "apikeyctl: gen: note: --expires is %s, in the "
                "past: %s already expired\n", actl_time(rec.expires, t),
                count == 1 ? "the key is" : "the keys are");
    }

close:

    actl_close(ctx);

free:

    actl_secure_free(keys);

    return rc;
}


/*
 * Run again from the start after the map is grown: the keys are made
 * anew each time, and nobody has seen any of them yet.
 */

static int
actl_gen_write(actl_ctx_t *ctx, MDB_txn *txn, void *data)
{
    actl_gen_t  *gen = data;

    int     rc;
    size_t  i;

    for (i = 0; i < gen->count; i++) {
        rc = actl_gen_store(ctx, txn, gen->rec, gen->prefix, gen->id,
                            &gen->keys[i]);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    return ACTL_OK;
}


/*
 * One new key and its records, in a write transaction: ACTL_OK,
 * ACTL_INVALID (the id exists), ACTL_MAP_FULL for actl_write(), or
 * ACTL_FAIL; rec->id is left set to the key's id.
 */

int
actl_gen_store(actl_ctx_t *ctx, MDB_txn *txn, akc_record_t *rec,
    const char *prefix, const char *id, actl_genkey_t *g)
{
    int            rc, len;
    char           hint[AKC_HINT_MAX_LEN + 1];
    MDB_val        k, v, h;
    unsigned char  hash[AKC_HASH_LEN], buf[AKC_RECORD_MAX_LEN];

    for ( ;; ) {
        len = akc_key_generate(prefix, g->key, sizeof(g->key));
        if (len < 0) {
            actl_error(ctx, "akc_key_generate() failed");
            return ACTL_FAIL;
        }

        akc_hash(&ctx->secret, (unsigned char *) g->key, len, hash);

        /* a collision of 190 random bits: try again, never overwrite */

        k.mv_size = AKC_HASH_LEN;
        k.mv_data = hash;

        rc = mdb_get(txn, ctx->dbs.keys, &k, &v);
        if (rc == MDB_SUCCESS) {
            continue;
        }

        if (rc != MDB_NOTFOUND) {
            actl_mdb_error(ctx, "mdb_get", rc);
            return ACTL_FAIL;
        }

        actl_default_id(hash, g->id);

        rec->id.data = (id != NULL) ? id : g->id;
        rec->id.len = strlen(rec->id.data);
        rec->hint.len = akc_key_hint((unsigned char *) g->key, len, hint);
        rec->hint.data = hint;

        rc = akc_record_encode(rec, buf, sizeof(buf));

        /* the hint was only for the record */

        rec->hint.len = 0;
        rec->hint.data = "";

        if (rc < 0) {
            actl_error(ctx, "akc_record_encode() failed");
            return ACTL_FAIL;
        }

        v.mv_size = rc;
        v.mv_data = buf;

        k.mv_size = rec->id.len;
        k.mv_data = (void *) rec->id.data;

        h.mv_size = AKC_HASH_LEN;
        h.mv_data = hash;

        rc = mdb_put(txn, ctx->dbs.ids, &k, &h, MDB_NOOVERWRITE);

        if (rc == MDB_KEYEXIST) {
            if (id == NULL) {
                /* 64 bits of a default id collided: another key */
                continue;
            }

            actl_error(ctx, "id \"%s\" already exists", id);
            return ACTL_INVALID;
        }

        if (rc != MDB_SUCCESS) {
            return actl_mdb_write_error(ctx, "mdb_put", rc);
        }

        k.mv_size = AKC_HASH_LEN;
        k.mv_data = hash;

        rc = mdb_put(txn, ctx->dbs.keys, &k, &v, MDB_NOOVERWRITE);
        if (rc != MDB_SUCCESS) {
            return actl_mdb_write_error(ctx, "mdb_put", rc);
        }

        return ACTL_OK;
    }
}


static void
actl_gen_unseen(actl_ctx_t *ctx, actl_genkey_t *keys, size_t count,
    const char *id)
{
    int     err;
    size_t  i;

    err = errno;

    actl_error(ctx, "write to standard output failed (%s) after the keys "
               "were stored: %zu %s stored that nobody may have seen; "
               "revoke %s:", strerror(err), count,
               count == 1 ? "key is" : "keys are",
               count == 1 ? "it" : "them");

    if (id != NULL) {
        fprintf(stderr, "  apikeyctl revoke %s\n", id);
        return;
    }

    if (count <= ACTL_SHOW_IDS_MAX) {
        fputs("  apikeyctl revoke", stderr);

        for (i = 0; i < count; i++) {
            fprintf(stderr, " %s", keys[i].id);
        }

        fputc('\n', stderr);
        return;
    }

    /* all of them: other keys may have been made in the same second */

    fputs("  apikeyctl revoke - <<EOF\n", stderr);

    for (i = 0; i < count; i++) {
        fprintf(stderr, "%s\n", keys[i].id);
    }

    fputs("EOF\n", stderr);
}


void
actl_gen_print(actl_ctx_t *ctx, akc_record_t *rec, const char *id,
    actl_genkey_t *g, int json)
{
    size_t   len;
    json_t  *obj;
    char     hint[AKC_HINT_MAX_LEN + 1];

    len = strlen(g->key);

    if (!json) {
        fwrite(g->key, 1, len, stdout);
        fputc('\n', stdout);
        return;
    }

    obj = json_object();
    if (obj == NULL) {
        actl_error(ctx, "out of memory");
        return;
    }

    if (id == NULL) {
        id = g->id;
    }

    actl_json_str(obj, "key", g->key, len);
    actl_json_str(obj, "id", id, strlen(id));
    actl_json_str(obj, "subject", rec->subject.data, rec->subject.len);
    actl_json_str(obj, "scopes", rec->scopes.data, rec->scopes.len);
    actl_json_str(obj, "plan", rec->plan.data, rec->plan.len);
    actl_json_time(obj, "expires", rec->expires);
    actl_json_time(obj, "not_before", rec->not_before);

    len = akc_key_hint((unsigned char *) g->key, len, hint);
    actl_json_str(obj, "hint", hint, len);
    actl_json_time(obj, "created", rec->created);

    if (rec->replaces.len) {
        actl_json_str(obj, "replaces", rec->replaces.data, rec->replaces.len);
    }

    json_dumpf(obj, stdout, JSON_COMPACT);
    fputc('\n', stdout);

    json_decref(obj);
}
