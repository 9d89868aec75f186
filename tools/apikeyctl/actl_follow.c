
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl follow: keeps the database equal to a PostgreSQL table (the
 * schema of --print-schema).  The first round, or one after tombstones
 * it needs were pruned, the table truncated or its versions gone back,
 * reads the whole table from one snapshot and writes it in one
 * transaction; every other round reads the changes after the version
 * in meta and writes them in version order, a batch a transaction.  A
 * round runs on NOTIFY and every --poll interval.  PostgreSQL away, the
 * database stays as it is (nginx serves it) and the follower tries
 * again, a little later each time.  SIGTERM or SIGINT: the transaction
 * under way ends, and so does the follower, with 0.
 */


#include "actl_follow.h"


static int actl_follow_run(actl_follow_t *fl);
static int actl_follow_round(actl_follow_t *fl);
static int actl_follow_full(actl_follow_t *fl, const char *why);
static void actl_follow_down(actl_follow_t *fl, const char *what);
static int actl_follow_parse_poll(const char *s, int64_t *ms);
static void actl_follow_signal(int signo);


volatile sig_atomic_t  actl_follow_stop;


int
actl_cmd_follow(actl_ctx_t *ctx, int argc, char **argv)
{
    int                c, rc, schema;
    actl_follow_t      fl;
    struct sigaction   sa;

    static struct option  options[] = {
        { "print-schema", no_argument,       NULL, 'S' },
        { "poll",         required_argument, NULL, 'p' },
        { "once",         no_argument,       NULL, 'o' },
        { NULL, 0, NULL, 0 }
    };

    memset(&fl, 0, sizeof(actl_follow_t));

    fl.ctx = ctx;
    fl.poll = ACTL_FOLLOW_POLL_MS;
    schema = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'S':
            schema = 1;
            break;

        case 'p':
            if (actl_follow_parse_poll(optarg, &fl.poll) != ACTL_OK) {
                return actl_usage_error(ctx, "invalid --poll \"%s\" (10ms "
                                        "to 1h: 250ms, 1s, 5m)", optarg);
            }
            break;

        case 'o':
            fl.once = 1;
            break;

        default:
            return actl_option_error(ctx, c, argv);
        }
    }

    if (schema) {
        if (argc - optind != 0) {
            return actl_usage_error(ctx, "--print-schema takes no "
                                    "argument");
        }

        fputs(actl_follow_schema, stdout);

        return ACTL_OK;
    }

    if (argc - optind > 1) {
        return actl_usage_error(ctx, "expected one CONNINFO (a libpq "
                                "connection string or URI) at most");
    }

    /*
     * No CONNINFO: APIKEY_FOLLOW_CONNINFO, where no other user reads it
     * (an argument is in /proc/PID/cmdline for all to see); unset or
     * empty: libpq's defaults and its PGHOST... variables.
     */

    if (argc - optind == 1) {
        fl.conninfo = argv[optind];
        fl.conninfo_name = "CONNINFO";

    } else {
        fl.conninfo = getenv(ACTL_FOLLOW_CONNINFO_ENV);
        fl.conninfo_name = ACTL_FOLLOW_CONNINFO_ENV;

        if (fl.conninfo == NULL) {
            fl.conninfo = "";
        }
    }

    if (actl_follow_check_conninfo(&fl) != ACTL_OK) {
        return ACTL_USAGE;
    }

    fl.imp = calloc(1, sizeof(actl_import_t));
    if (fl.imp == NULL) {
        actl_error(ctx, "out of memory");
        return ACTL_FAIL;
    }

    actl_follow_reset(&fl);

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = actl_follow_signal;
    sigemptyset(&sa.sa_mask);

    /* no SA_RESTART: a signal ends the wait */

    (void) sigaction(SIGTERM, &sa, NULL);
    (void) sigaction(SIGINT, &sa, NULL);
    (void) signal(SIGPIPE, SIG_IGN);

    rc = actl_open(ctx, 0);

    if (rc == ACTL_OK) {
        rc = actl_follow_lock(&fl);

        if (rc == ACTL_OK) {
            rc = actl_follow_load(&fl);
        }

        if (rc == ACTL_OK) {
            rc = actl_follow_run(&fl);
        }

        actl_close(ctx);
    }

    actl_follow_disconnect(&fl);
    actl_import_free(fl.imp);
    free(fl.imp);
    free(fl.changes);
    free(fl.ids);

    return rc;
}


static int
actl_follow_run(actl_follow_t *fl)
{
    int  rc;

    while (!actl_follow_stop) {

        if (actl_follow_check_env(fl) != ACTL_OK
            || actl_follow_check_writer(fl) != ACTL_OK)
        {
            return ACTL_FAIL;
        }

        if (fl->conn == NULL) {
            rc = actl_follow_connect(fl);

            if (rc == ACTL_FOLLOW_LOCAL) {
                return ACTL_FAIL;
            }

            if (rc != ACTL_OK) {
                actl_follow_down(fl, "connect to PostgreSQL");

                if (fl->once) {
                    return ACTL_FAIL;
                }

                (void) actl_follow_wait(fl, fl->backoff);
                continue;
            }
        }

        rc = actl_follow_round(fl);
        actl_follow_reset(fl);

        if (rc == ACTL_FOLLOW_LOCAL) {
            /* the follower or its database failed: systemd starts again */
            return ACTL_FAIL;
        }

        if (rc != ACTL_OK) {
            actl_follow_down(fl, "read PostgreSQL");

            if (fl->once) {
                return ACTL_FAIL;
            }

            (void) actl_follow_wait(fl, fl->backoff);
            continue;
        }

        if (fl->state != ACTL_FOLLOW_UP) {
            actl_error(fl->ctx, "following PostgreSQL at version %llu",
                       (unsigned long long) fl->version);
            fl->state = ACTL_FOLLOW_UP;
        }

        fl->backoff = 0;

        if (fl->once) {
            break;
        }

        if (actl_follow_wait(fl, fl->poll) != ACTL_OK) {
            actl_follow_down(fl, "PostgreSQL");
        }
    }

    return ACTL_OK;
}


/*
 * One round: the state of the table, then the whole table or the
 * changes, batch after batch.  ACTL_FOLLOW_LOCAL: the follower (out of
 * memory) or the local database failed; ACTL_INVALID: PostgreSQL did.
 */

static int
actl_follow_round(actl_follow_t *fl)
{
    int        rc, more;
    PGresult  *res;

    for ( ;; ) {
        if (actl_follow_read_state(fl) != ACTL_OK) {
            return ACTL_INVALID;
        }

        if (!fl->synced) {
            return actl_follow_full(fl, "a first synchronisation");
        }

        if (fl->foreign) {
            return actl_follow_full(fl, "the database was written by "
                                    "another process since the "
                                    "follower's last commit");
        }

        if (fl->version < fl->pruned) {
            return actl_follow_full(fl, "tombstones pruned or the table "
                                    "truncated since");
        }

        if (fl->version > fl->last) {
            return actl_follow_full(fl, "PostgreSQL's versions went back");
        }

        if (fl->source[0] != '\0' && fl->source_meta[0] != '\0'
            && strcmp(fl->source, fl->source_meta) != 0)
        {
            return actl_follow_full(fl, "another PostgreSQL database than "
                                    "the one followed so far");
        }

        rc = actl_follow_read_changes(fl, &more);

        if (rc == ACTL_FOLLOW_LOCAL) {
            goto failed;
        }

        if (rc != ACTL_OK) {
            return ACTL_INVALID;
        }

        res = PQexec(fl->conn, "COMMIT");
        PQclear(res);

        if (fl->nchanges == 0) {
            if (!actl_follow_synced_due(fl)) {
                return ACTL_OK;
            }

            rc = actl_follow_write_synced(fl);

        } else {
            rc = actl_follow_write_changes(fl);
        }

        if (rc == ACTL_FOLLOW_FOREIGN) {
            /* another writer since the check: the whole table, now */
            actl_follow_reset(fl);
            continue;
        }

        if (rc != ACTL_OK) {
            goto failed;
        }

        if (fl->nchanges == 0) {
            return ACTL_OK;
        }

        fl->version = fl->target;

        actl_follow_reset(fl);

        if (!more || actl_follow_stop) {
            return ACTL_OK;
        }
    }

failed:

    actl_follow_disconnect(fl);

    return ACTL_FOLLOW_LOCAL;
}


static int
actl_follow_full(actl_follow_t *fl, const char *why)
{
    int        rc;
    uint64_t   from;
    PGresult  *res;

    from = fl->version;
    fl->full = 1;

    rc = actl_follow_read_all(fl);

    fl->full = 0;

    if (rc == ACTL_FOLLOW_LOCAL) {
        actl_follow_disconnect(fl);
        return ACTL_FOLLOW_LOCAL;
    }

    if (rc != ACTL_OK) {
        return ACTL_INVALID;
    }

    res = PQexec(fl->conn, "COMMIT");
    PQclear(res);

    if (actl_follow_stop) {
        return ACTL_OK;
    }

    if (actl_follow_write_all(fl) != ACTL_OK) {
        actl_follow_disconnect(fl);
        return ACTL_FOLLOW_LOCAL;
    }

    fl->version = fl->target;
    fl->synced = 1;

    actl_error(fl->ctx, "full synchronisation (%s): %llu keys at version "
               "%llu (was %llu), %llu rows not served", why,
               (unsigned long long) fl->rows,
               (unsigned long long) fl->version,
               (unsigned long long) from,
               (unsigned long long) fl->invalid);

    return ACTL_OK;
}


/* once a state: the line says what nginx keeps serving meanwhile */

static void
actl_follow_down(actl_follow_t *fl, const char *what)
{
    if (fl->state != ACTL_FOLLOW_DOWN) {
        actl_follow_pg_error(fl, what);

        if (fl->once) {
            /* void */

        } else if (fl->synced) {
            actl_error(fl->ctx, "PostgreSQL unreachable: the keys of "
                       "version %llu are served; trying again",
                       (unsigned long long) fl->version);

        } else {
            actl_error(fl->ctx, "PostgreSQL unreachable before a first "
                       "synchronisation; trying again");
        }

        fl->state = ACTL_FOLLOW_DOWN;
    }

    actl_follow_disconnect(fl);

    fl->backoff = (fl->backoff == 0) ? fl->poll : 2 * fl->backoff;

    if (fl->backoff > ACTL_FOLLOW_BACKOFF_MAX) {
        fl->backoff = ACTL_FOLLOW_BACKOFF_MAX;
    }
}


/* 250ms, 1s, 5m; bare digits are seconds */

static int
actl_follow_parse_poll(const char *s, int64_t *ms)
{
    char       *end;
    long long   n;

    if (s[0] < '0' || s[0] > '9') {
        return ACTL_FAIL;
    }

    errno = 0;
    n = strtoll(s, &end, 10);

    if (errno != 0 || n > 3600000) {
        return ACTL_FAIL;
    }

    if (strcmp(end, "ms") == 0) {
        /* void */

    } else if (*end == '\0' || strcmp(end, "s") == 0) {
        n *= 1000;

    } else if (strcmp(end, "m") == 0) {
        n *= 60000;

    } else if (strcmp(end, "h") == 0) {
        n *= 3600000;

    } else {
        return ACTL_FAIL;
    }

    if (n < 10 || n > 3600000) {
        return ACTL_FAIL;
    }

    *ms = n;

    return ACTL_OK;
}


static void
actl_follow_signal(int signo)
{
    actl_follow_stop = 1;
}
