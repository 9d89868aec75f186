
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl verify and hash: a key checked as nginx checks it, and its
 * keyed hash.
 */


#include "actl.h"


static int actl_read_stdin_key(char *buf, size_t size, size_t *len);


int
actl_cmd_verify(actl_ctx_t *ctx, int argc, char **argv)
{
    int            c, rc, mdb_rc;
    char          *key;
    size_t         len;
    MDB_txn       *txn;
    akc_record_t   rec;
    akc_status_e   status;
    char           buf[ACTL_STDIN_KEY_LEN];

    static struct option  options[] = {
        { NULL, 0, NULL, 0 }
    };

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        return actl_option_error(ctx, c, argv);
    }

    if (argc - optind > 1) {
        return actl_usage_error(ctx, "expected one KEY, or \"-\" for "
                                "standard input");
    }

    if (argc - optind == 1 && strcmp(argv[optind], "-") != 0) {
        key = argv[optind];
        len = strlen(key);

    } else {
        if (actl_read_stdin_key(buf, sizeof(buf), &len) != ACTL_OK) {
            actl_error(ctx, "read from standard input failed: %s",
                       strerror(errno));
            sodium_memzero(buf, sizeof(buf));
            return ACTL_FAIL;
        }

        key = buf;
    }

    txn = NULL;

    rc = actl_start(ctx, MDB_RDONLY, &txn);
    if (rc != ACTL_OK) {
        goto wipe;
    }

    status = akc_check_key(txn, &ctx->dbs, &ctx->secret,
                           (unsigned char *) key, len, ctx->now, &rec,
                           &mdb_rc);

    if (status == AKC_STATUS_ERROR) {
        actl_mdb_error(ctx, "mdb_get", mdb_rc);
        rc = ACTL_FAIL;
        goto abort;
    }

    printf("%s", akc_status_name(status));

    if (status != AKC_STATUS_MALFORMED && status != AKC_STATUS_UNKNOWN) {
        printf(" id=%.*s", (int) rec.id.len, rec.id.data);
    }

    printf("\n");

    rc = (status == AKC_STATUS_VALID) ? ACTL_OK : ACTL_REJECTED;

abort:

    mdb_txn_abort(txn);

    actl_close(ctx);

wipe:

    if (key != buf) {
        sodium_memzero(key, len);
    }

    sodium_memzero(buf, sizeof(buf));

    return rc;
}


int
actl_cmd_hash(actl_ctx_t *ctx, int argc, char **argv)
{
    int            c, rc;
    size_t         len;
    unsigned char  hash[AKC_HASH_LEN];
    char           err[ACTL_ERR_LEN], hex[2 * AKC_HASH_LEN + 1];
    char           buf[ACTL_STDIN_KEY_LEN];

    static struct option  options[] = {
        { NULL, 0, NULL, 0 }
    };

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        return actl_option_error(ctx, c, argv);
    }

    /* whatever it is, an argument could be a key: it is not shown */

    if (optind != argc) {
        return actl_usage_error(ctx, "takes no argument (not shown); the "
                                "key is read from standard input");
    }

    if (actl_read_stdin_key(buf, sizeof(buf), &len) != ACTL_OK) {
        actl_error(ctx, "read from standard input failed: %s",
                   strerror(errno));
        rc = ACTL_FAIL;
        goto wipe;
    }

    if (len == 0) {
        actl_error(ctx, "no key on standard input");
        rc = ACTL_INVALID;
        goto wipe;
    }

    rc = actl_check_key(buf, len, err, sizeof(err));
    if (rc != ACTL_OK) {
        actl_error(ctx, "%s", err);
        goto wipe;
    }

    rc = actl_secret_load(ctx);
    if (rc != ACTL_OK) {
        goto wipe;
    }

    akc_hash(&ctx->secret, (unsigned char *) buf, len, hash);

    sodium_bin2hex(hex, sizeof(hex), hash, AKC_HASH_LEN);

    printf("%s\n", hex);

wipe:

    sodium_memzero(buf, sizeof(buf));

    return rc;
}


/* the first line of standard input: the key stays out of ps */

static int
actl_read_stdin_key(char *buf, size_t size, size_t *len)
{
    char     *nl;
    size_t    n;
    ssize_t   nr;

    n = 0;
    nl = NULL;

    while (n < size) {
        nr = read(STDIN_FILENO, buf + n, size - n);

        if (nr == -1) {
            if (errno == EINTR) {
                continue;
            }

            return ACTL_FAIL;
        }

        if (nr == 0) {
            break;
        }

        nl = memchr(buf + n, '\n', nr);
        n += nr;

        if (nl != NULL) {
            break;
        }
    }

    if (nl != NULL) {
        n = nl - buf;
    }

    /* a line that fills the buffer is far too long to be a key */

    if (n > 0 && buf[n - 1] == '\r' && n < size) {
        n--;
    }

    *len = n;

    return ACTL_OK;
}
