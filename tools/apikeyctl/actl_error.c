
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl: usage and errors, the arguments that would show a key.
 */


#include "actl.h"

#include <sys/statvfs.h>


/*
 * LMDB writes at most 64 pages (of the system's page size) at a time: a
 * write that the disk cut short leaves less room than that
 */

#define ACTL_DISK_FULL_PAGES    64


static int actl_disk_full(actl_ctx_t *ctx);


int
actl_option_error(actl_ctx_t *ctx, int c, char **argv)
{
    int          len;
    char         opt[3];
    const char  *arg, *eq;

    /* a long option is named by the element getopt_long() has passed */

    arg = argv[optind - 1];

    if (strncmp(arg, "--", 2) == 0) {
        eq = strchr(arg, '=');
        len = (eq != NULL) ? (int) (eq - arg) : (int) strlen(arg);

    } else {
        opt[0] = '-';
        opt[1] = (char) optopt;
        opt[2] = '\0';

        arg = opt;
        len = 2;
    }

    if (c == ':') {
        actl_error(ctx, "option \"%.*s\" requires an argument", len, arg);

    } else {
        actl_error(ctx, "invalid option \"%.*s\"", len, arg);
    }

    if (ctx->cmd != NULL) {
        actl_usage(ctx->cmd, stderr);

    } else {
        fprintf(stderr, "see \"apikeyctl --help\"\n");
    }

    return ACTL_USAGE;
}


int
actl_usage_error(actl_ctx_t *ctx, const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "apikeyctl: %s: ", ctx->cmd);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);

    actl_usage(ctx->cmd, stderr);

    return ACTL_USAGE;
}


void
actl_error(actl_ctx_t *ctx, const char *fmt, ...)
{
    va_list  args;

    fputs("apikeyctl: ", stderr);

    if (ctx != NULL && ctx->cmd != NULL) {
        fprintf(stderr, "%s: ", ctx->cmd);
    }

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


void
actl_mdb_error(actl_ctx_t *ctx, const char *call, int rc)
{
    MDB_envinfo  info;

    if (rc == MDB_MAP_FULL) {
        if (ctx->env == NULL || mdb_env_info(ctx->env, &info) != 0) {
            info.me_mapsize = 0;
        }

        actl_error(ctx, "database map is full (map size %zu bytes); grow "
                   "it with \"apikeyctl init --map-size SIZE\"",
                   info.me_mapsize);
        return;
    }

    /*
     * LMDB makes a short write EIO: a full disk is named when the file
     * system of the database has no room left; else a full disk and a
     * file size limit look like a failing disk unless said otherwise
     */

    if (rc == EIO && actl_disk_full(ctx)) {
        actl_error(ctx, "%s() failed: no space left on the device of "
                   "\"%s\" (a write cut short, which LMDB reports as "
                   "\"%s\")%s", call, ctx->db, mdb_strerror(rc),
                   (strcmp(call, "mdb_txn_commit") == 0)
                   ? "; nothing was changed" : "");
        return;
    }

    actl_error(ctx, "%s() failed: %s%s%s", call, mdb_strerror(rc),
               (rc == EIO) ? " (a full disk or a file size limit gives "
                             "this error too)" : "",
               (strcmp(call, "mdb_txn_commit") == 0)
               ? "; nothing was changed" : "");
}


static int
actl_disk_full(actl_ctx_t *ctx)
{
    uint64_t        room;
    struct statvfs  vfs;

    if (ctx->db == NULL || statvfs(ctx->db, &vfs) == -1) {
        return 0;
    }

    /* root may write into the blocks reserved for it */

    room = (uint64_t) (geteuid() == 0 ? vfs.f_bfree : vfs.f_bavail)
           * vfs.f_frsize;

    return room < (uint64_t) ACTL_DISK_FULL_PAGES * sysconf(_SC_PAGESIZE);
}


/*
 * A value for an error message, in quotes: at most ACTL_QUOTE_MAX
 * characters, quotes, backslashes and unprintable bytes escaped; a value
 * that holds a generated key is not shown at all.
 */

const char *
actl_quote(const char *s, size_t len, char out[ACTL_QUOTE_LEN])
{
    size_t         i, n;
    unsigned char  c;

    /* a key that would be shown only in part is a key too */

    if (actl_has_key(s, len < ACTL_QUOTE_MAX + AKC_GEN_KEY_MAX_LEN
                        ? len : ACTL_QUOTE_MAX + AKC_GEN_KEY_MAX_LEN))
    {
        return ACTL_A_KEY;
    }

    n = 0;
    out[n++] = '"';

    for (i = 0; i < len && i < ACTL_QUOTE_MAX; i++) {
        c = (unsigned char) s[i];

        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = c;

        } else if (c < 0x20 || c >= 0x7f) {
            n += snprintf(out + n, 5, "\\x%02x", c);

        } else {
            out[n++] = c;
        }
    }

    if (i < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }

    out[n++] = '"';
    out[n] = '\0';

    return out;
}


/*
 * Whether s holds a generated key (the prefix, "_", 32 base62 and a
 * 6-character checksum) anywhere: such a value is never shown or stored
 * but as a key.  The checksum need not match: a key with one character
 * mistyped is still all but the whole secret; nor need the prefix or
 * the length: a long run of urlsafe characters that looks random, as
 * akc_key_run() defines it, is taken for a key too.
 */

int
actl_has_key(const char *s, size_t len)
{
    size_t  i, start, end, pos;

    /* the body of a key without its prefix, or a character short */

    pos = 0;

    if (akc_key_run((const unsigned char *) s, len, &pos) != 0) {
        return 1;
    }

    for (i = 1; i + 1 + AKC_GEN_TAIL_LEN <= len; i++) {
        if (s[i] != '_') {
            continue;
        }

        end = i + 1 + AKC_GEN_TAIL_LEN;
        start = (i > AKC_PREFIX_MAX_LEN) ? i - AKC_PREFIX_MAX_LEN : 0;

        for ( /* void */ ; start < i; start++) {
            switch (akc_key_classify((const unsigned char *) s + start,
                                     end - start))
            {
            case AKC_KEY_GENERATED:
            case AKC_KEY_BAD_CHECKSUM:
                return 1;

            default:
                break;
            }
        }
    }

    return 0;
}


/*
 * A key given where an id, an option value or a file name belongs is
 * refused before anything else happens, and never echoed.
 */

int
actl_check_args(actl_ctx_t *ctx, int argc, char **argv)
{
    int          i;
    const char  *eq;

    for (i = 1; i < argc; i++) {
        if (!actl_has_key(argv[i], strlen(argv[i]))) {
            continue;
        }

        eq = strchr(argv[i], '=');

        if (argv[i][0] == '-' && argv[i][1] == '-' && eq != NULL
            && !actl_has_key(argv[i], eq - argv[i]))
        {
            return actl_usage_error(ctx, "%.*s holds an API key (not "
                                    "shown); a key is never an option "
                                    "value", (int) (eq - argv[i]), argv[i]);
        }

        if (i > 1 && argv[i - 1][0] == '-' && argv[i - 1][1] != '\0'
            && strchr(argv[i - 1], '=') == NULL
            && !actl_has_key(argv[i - 1], strlen(argv[i - 1])))
        {
            return actl_usage_error(ctx, "the argument of %s holds an API "
                                    "key (not shown); a key is never an "
                                    "option value", argv[i - 1]);
        }

        if ((strcmp(ctx->cmd, "revoke") == 0
             || strcmp(ctx->cmd, "disable") == 0
             || strcmp(ctx->cmd, "enable") == 0
             || strcmp(ctx->cmd, "expire") == 0
             || strcmp(ctx->cmd, "show") == 0
             || strcmp(ctx->cmd, "rotate") == 0)
            && argv[i][0] != '-')
        {
            actl_error(ctx, "an API key was given where an id belongs (not "
                       "shown); \"apikeyctl verify -\" reads a key from "
                       "standard input and prints its id");
            return ACTL_INVALID;
        }

        if (strcmp(ctx->cmd, "hash") == 0) {
            return actl_usage_error(ctx, "argument %d holds an API key (not "
                                    "shown); \"hash\" reads the key from "
                                    "standard input", i);
        }

        return actl_usage_error(ctx, "argument %d holds an API key (not "
                                "shown); only \"verify\" takes a key", i);
    }

    return ACTL_OK;
}
