
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl: creates the API key database and writes to it while nginx
 * keeps serving.  Everything about the key format, the hash, the record
 * encoding and the database layout lives in apikey_core.c.  This file
 * parses the global options and dispatches to one function per command,
 * each in the file named for it; actl.h lists them all.
 */


#include "actl.h"


static int actl_cmd_help(actl_ctx_t *ctx, int argc, char **argv);

static void actl_help(FILE *fp);


static struct option  actl_global_options[] = {
    { "db",         required_argument, NULL, 'd' },
    { "secret",     required_argument, NULL, 's' },
    { "help",       no_argument,       NULL, 'h' },
    { "version",    no_argument,       NULL, 'V' },
    { NULL, 0, NULL, 0 }
};


static char  actl_stdout_buf[BUFSIZ];


static actl_cmd_t  actl_commands[] = {

    { "init", actl_cmd_init,
      "init [--user USER] [--map-size SIZE]" },

    { "gen", actl_cmd_gen,
      "gen [--id ID] [--subject S] [--scopes A,B] [--plan P]\n"
      "                [--expires WHEN] [--not-before WHEN] [--prefix P]\n"
      "                [--count N] [--format text|json]" },

    { "import", actl_cmd_import,
      "import [--format csv|jsonl] [--replace [--force]] [--dry-run]\n"
      "                   [--skip-invalid] FILE|-" },

    { "rotate", actl_cmd_rotate,
      "rotate ID [--grace DURATION] [--new-id ID] [--prefix P]\n"
      "                   [--format text|json]" },

    { "revoke", actl_cmd_revoke, "revoke [--ignore-missing] ID...|-" },
    { "disable", actl_cmd_disable, "disable [--ignore-missing] ID...|-" },
    { "enable", actl_cmd_enable, "enable [--ignore-missing] ID...|-" },
    { "expire", actl_cmd_expire,
      "expire [--ignore-missing] ID...|- --at WHEN" },

    { "list", actl_cmd_list,
      "list [--subject S] [--plan P]\n"
      "                 [--status valid|expired|disabled|not_yet_valid]\n"
      "                 [--expiring-within DURATION]\n"
      "                 [--format table|json|csv]" },

    { "show", actl_cmd_show, "show ID [--format text|json]" },
    { "verify", actl_cmd_verify, "verify [KEY|-]" },
    { "hash", actl_cmd_hash, "hash" },
    { "export", actl_cmd_export, "export [--format csv|jsonl]" },
    { "stats", actl_cmd_stats, "stats [--format text|json]" },
    { "check", actl_cmd_check, "check" },
    { "backup", actl_cmd_backup, "backup DEST" },
    { "restore", actl_cmd_restore, "restore [--force] [--dry-run] SRC" },
    { "follow", actl_cmd_follow,
      "follow [--poll DURATION] [--once] [CONNINFO] | follow --print-schema" },
    { "help", actl_cmd_help, "help" },

    { NULL, NULL, NULL }
};


int
main(int argc, char **argv)
{
    int          c, rc, first;
    actl_ctx_t   ctx;
    actl_cmd_t  *cmd;
    const char  *s;

    /* it holds keys and the secret: no core file, no ptrace by peers */

    actl_no_core();

    memset(&ctx, 0, sizeof(actl_ctx_t));

    s = getenv("APIKEY_DB");
    ctx.db = (s != NULL && s[0] != '\0') ? s : ACTL_DEFAULT_DB;

    s = getenv("APIKEY_SECRET");
    ctx.secret_path = (s != NULL && s[0] != '\0') ? s : ACTL_DEFAULT_SECRET;

    opterr = 0;

    while ((c = getopt_long(argc, argv, "+:d:s:hV", actl_global_options,
                            NULL))
           != -1)
    {
        switch (c) {

        case 'd':
            ctx.db = optarg;
            break;

        case 's':
            ctx.secret_path = optarg;
            break;

        case 'h':
            actl_help(stdout);
            return ACTL_OK;

        case 'V':
            printf("apikeyctl %s\n", ACTL_VERSION);
            return ACTL_OK;

        default:
            return actl_option_error(&ctx, c, argv);
        }
    }

    if (optind == argc) {
        actl_help(stderr);
        return ACTL_USAGE;
    }

    /* a key given as the database or the secret file is never echoed */

    if (actl_has_key(ctx.db, strlen(ctx.db))) {
        actl_error(NULL, "the database path (-d or APIKEY_DB) holds an API "
                   "key, not shown; give the database directory");
        return ACTL_USAGE;
    }

    if (actl_has_key(ctx.secret_path, strlen(ctx.secret_path))) {
        actl_error(NULL, "the secret file path (-s or APIKEY_SECRET) holds "
                   "an API key, not shown; give the file the hashing secret "
                   "is in");
        return ACTL_USAGE;
    }

    for (cmd = actl_commands; cmd->name != NULL; cmd++) {
        if (strcmp(cmd->name, argv[optind]) == 0) {
            break;
        }
    }

    if (cmd->name == NULL) {
        if (actl_has_key(argv[optind], strlen(argv[optind]))) {
            actl_error(NULL, "unknown command: it holds an API key, not "
                       "shown (see \"apikeyctl help\")");
            return ACTL_USAGE;
        }

        actl_error(NULL, "unknown command \"%s\" (see \"apikeyctl help\")",
                   argv[optind]);
        return ACTL_USAGE;
    }

    ctx.cmd = cmd->name;

    /* only verify takes a key on its command line */

    if (cmd->handler != actl_cmd_verify) {
        rc = actl_check_args(&ctx, argc - optind, argv + optind);
        if (rc != ACTL_OK) {
            return rc;
        }
    }

    actl_sigbus_init(&ctx);

    /*
     * a file size limit (ulimit -f) makes write() fail with EFBIG, which
     * every command reports, rather than kill it half way
     */

    (void) signal(SIGXFSZ, SIG_IGN);

    /*
     * libsodium's ChaCha20 generator, seeded from getrandom(): the
     * default one makes a system call for every randombytes_uniform(),
     * 32 per generated key, which made "gen --count 1000000" take a
     * minute
     */

    (void) randombytes_set_implementation(
                                     &randombytes_internal_implementation);

    if (akc_init() != AKC_OK) {
        actl_error(NULL, "sodium_init() failed");
        return ACTL_FAIL;
    }

    json_set_alloc_funcs(actl_secure_malloc, actl_secure_free);

    /* gen prints keys: stdio buffers them here, and this is wiped */

    (void) setvbuf(stdout, actl_stdout_buf,
                   isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF,
                   sizeof(actl_stdout_buf));

    ctx.now = (int64_t) time(NULL);

    /* each command parses its own options: optind 0 resets getopt */

    first = optind;
    optind = 0;

    rc = cmd->handler(&ctx, argc - first, argv + first);

    sodium_memzero(&ctx.secret, sizeof(akc_secret_t));

    if ((fflush(stdout) == EOF || ferror(stdout)) && rc == ACTL_OK) {
        actl_error(NULL, "write to standard output failed: %s",
                   strerror(errno));
        rc = ACTL_FAIL;
    }

    sodium_memzero(actl_stdout_buf, sizeof(actl_stdout_buf));

    return rc;
}


/* commands */

static int
actl_cmd_help(actl_ctx_t *ctx, int argc, char **argv)
{
    if (argc > 1) {
        return actl_usage_error(ctx, "unexpected argument \"%s\"", argv[1]);
    }

    actl_help(stdout);

    return ACTL_OK;
}


/* usage */

static void
actl_help(FILE *fp)
{
    actl_cmd_t  *cmd;

    fprintf(fp,
        "usage: apikeyctl [-d DIR] [-s FILE] COMMAND [ARGS]\n"
        "\n"
        "commands:\n");

    for (cmd = actl_commands; cmd->name != NULL; cmd++) {
        fprintf(fp, "  apikeyctl %s\n", cmd->usage);
    }

    fprintf(fp,
        "\n"
        "global options:\n"
        "  -d, --db DIR        database directory (default: $APIKEY_DB,\n"
        "                      else " ACTL_DEFAULT_DB ")\n"
        "  -s, --secret FILE   secret file (default: $APIKEY_SECRET,\n"
        "                      else " ACTL_DEFAULT_SECRET ")\n"
        "  -h, --help          print this help\n"
        "  -V, --version       print the version\n"
        "\n"
        "WHEN is now, an RFC 3339 time (2027-01-31T00:00:00Z) or a "
        "duration\n"
        "from now (30d, 12h, 15m, 90s, 2w), at most 9999-12-31T23:59:59Z.\n"
        "\n"
        "import --replace of no rows is refused, and one that would "
        "remove more\n"
        "than half of the keys needs --force.  A generated key anywhere "
        "but\n"
        "where a key belongs is refused and never shown.  A missing "
        "lock.mdb is\n"
        "made with the group and mode of data.mdb, and the first write "
        "waits\n"
        "2 seconds for nginx workers to switch to it.\n"
        "\n"
        "exit status:\n"
        "  0  success (verify: the key would be accepted)\n"
        "  1  failure: database, secret file, I/O or LMDB error, damaged "
        "database\n"
        "     files; nothing was changed (gen: keys stored, not printed: "
        "said so)\n"
        "  2  usage error (bad option or argument)\n"
        "  3  invalid input data or unknown ID; nothing was changed\n"
        "  4  verify: the key would be rejected\n");
}


void
actl_usage(const char *name, FILE *fp)
{
    actl_cmd_t  *cmd;

    for (cmd = actl_commands; cmd->name != NULL; cmd++) {
        if (strcmp(cmd->name, name) == 0) {
            fprintf(fp, "usage:\n  apikeyctl %s\n", cmd->usage);
            return;
        }
    }
}
