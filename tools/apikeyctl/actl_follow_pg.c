
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl follow: PostgreSQL.  The connection, the state of the table
 * (its low-water mark, its sequence), the whole table or the changes
 * after a version, read with COPY in the text format from the snapshot
 * of one REPEATABLE READ transaction, and the wait for a NOTIFY.
 */


#define _GNU_SOURCE     /* ppoll() */

#include "actl_follow.h"

#include <poll.h>


/*
 * The columns of a row, as actl_follow_row() takes them, in PostgreSQL's
 * own text output, which costs it least (to_char() and encode() tripled
 * the time of a full read): the transaction sets the formats, and
 * actl_follow_text() makes of them what import reads.
 */

#define ACTL_FOLLOW_COLUMNS                                                   \
    "hash, id, subject, scopes, plan, expires, not_before, disabled, hint, " \
    "created, version"

#define ACTL_FOLLOW_BEGIN                                                     \
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; "                      \
    "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "          \
    "SET LOCAL bytea_output = 'hex'"

/* the fields actl_follow_text() rewrites, in the row after its kind */

#define ACTL_FOLLOW_F_HASH      0
#define ACTL_FOLLOW_F_EXPIRES   5
#define ACTL_FOLLOW_F_NOT_BEFORE 6
#define ACTL_FOLLOW_F_DISABLED  7
#define ACTL_FOLLOW_F_CREATED   9

/* a value of the conninfo masked in libpq's messages */

#define ACTL_FOLLOW_HIDDEN      "(not shown)"


static int actl_follow_exec(actl_follow_t *fl, const char *sql);
static int actl_follow_copy(actl_follow_t *fl, const char *sql,
    uint64_t *nrows);
static int actl_follow_copy_row(actl_follow_t *fl, char *p, size_t len);
static size_t actl_follow_unescape(char *p, size_t len);
static void actl_follow_text(char **f, size_t *len);
static size_t actl_follow_time(char *p, size_t len);
static int actl_follow_u64(const char *s, uint64_t *v);
static char *actl_follow_mask(actl_follow_t *fl, const char *msg,
    size_t len);
static int actl_follow_secret(PQconninfoOption *o);
static void actl_follow_notice(void *arg, const PGresult *res);


/*
 * The connection: the operator's conninfo (a connection string or a
 * URI) overrides the timeouts set first, so that a partition is noticed
 * in seconds rather than when TCP gives up.
 */

int
actl_follow_connect(actl_follow_t *fl)
{
    PGresult  *res;

    static const char  *keys[] = {
        "fallback_application_name", "connect_timeout", "keepalives_idle",
        "keepalives_interval", "keepalives_count", "tcp_user_timeout",
        "dbname", NULL
    };

    const char  *values[] = {
        "apikeyctl follow", "10", "10", "5", "3", "15000",
        fl->conninfo, NULL
    };

    fl->conn = PQconnectdbParams(keys, values, 1);

    if (fl->conn == NULL) {
        actl_error(fl->ctx, "out of memory");
        return ACTL_FOLLOW_LOCAL;
    }

    if (PQstatus(fl->conn) != CONNECTION_OK) {
        return ACTL_FAIL;
    }

    (void) PQsetNoticeReceiver(fl->conn, actl_follow_notice, NULL);

    /* a standby refuses LISTEN: the follower polls it */

    res = PQexec(fl->conn, "LISTEN " ACTL_FOLLOW_CHANNEL);

    if (PQresultStatus(res) != PGRES_COMMAND_OK
        && PQstatus(fl->conn) != CONNECTION_OK)
    {
        PQclear(res);
        return ACTL_FAIL;
    }

    PQclear(res);

    /*
     * which database this is: a replica has its primary's system
     * identifier; another cluster, or another database of it, another
     * source; unknown (no pg_control_system(), its EXECUTE revoked): ""
     */

    fl->source[0] = '\0';

    res = PQexec(fl->conn, "SELECT system_identifier::text || '/' || "
                           "current_database() FROM pg_control_system()");

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
        && PQgetlength(res, 0, 0) <= ACTL_FOLLOW_SOURCE_LEN)
    {
        memcpy(fl->source, PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));
        fl->source[PQgetlength(res, 0, 0)] = '\0';
    }

    PQclear(res);

    if (PQstatus(fl->conn) != CONNECTION_OK) {
        return ACTL_FAIL;
    }

    return ACTL_OK;
}


/*
 * A connection string or URI that libpq cannot parse: a usage error,
 * said without the string, nor libpq's message, which quotes the part
 * it stumbled on, a password as well.  A string without "=" that is not
 * a URI is a database name, as libpq takes it.
 */

int
actl_follow_check_conninfo(actl_follow_t *fl)
{
    char              *err;
    const char        *s;
    PQconninfoOption  *opts;

    s = fl->conninfo;

    if (strchr(s, '=') == NULL
        && strncmp(s, "postgresql://", sizeof("postgresql://") - 1) != 0
        && strncmp(s, "postgres://", sizeof("postgres://") - 1) != 0)
    {
        return ACTL_OK;
    }

    err = NULL;
    opts = PQconninfoParse(s, &err);

    if (err != NULL) {
        PQfreemem(err);
    }

    if (opts == NULL) {
        return actl_usage_error(fl->ctx, "%s is not a valid libpq "
                                "connection string or URI (not shown: it "
                                "may hold a password)", fl->conninfo_name);
    }

    PQconninfoFree(opts);

    return ACTL_OK;
}


void
actl_follow_disconnect(actl_follow_t *fl)
{
    if (fl->conn != NULL) {
        PQfinish(fl->conn);
        fl->conn = NULL;
    }
}


/*
 * The first line of libpq's message, which quotes values of the
 * connection's options ("could not translate host name", "invalid
 * sslmode value"...): those that may hold a secret are masked.
 */

void
actl_follow_pg_error(actl_follow_t *fl, const char *what)
{
    char        *line;
    size_t       len;
    const char  *msg;

    if (fl->conn == NULL) {
        actl_error(fl->ctx, "%s: out of memory", what);
        return;
    }

    msg = PQerrorMessage(fl->conn);
    len = strcspn(msg, "\n");

    if (len == 0) {
        actl_error(fl->ctx, "%s: connection lost", what);
        return;
    }

    line = actl_follow_mask(fl, msg, len);

    if (line == NULL) {
        actl_error(fl->ctx, "%s: (not shown: out of memory)", what);
        return;
    }

    actl_error(fl->ctx, "%s: %s", what, line);

    free(line);
}


/*
 * The message, every occurrence of a secret value replaced with
 * ACTL_FOLLOW_HIDDEN: the password; a value with "@" (a password with
 * an "@" in a URI ends up in the host: "postgresql://u:p@ss@h/db");
 * the value of any option but those below, unless it is a number
 * (a timeout...) or libpq's default.  The bytes to hide are marked
 * on the message first, so that one value is not looked for in
 * another's replacement.
 */

static char *
actl_follow_mask(actl_follow_t *fl, const char *msg, size_t len)
{
    char              *line, *p, *hide;
    size_t             i, vlen;
    const char        *v, *q;
    PQconninfoOption  *opts, *o;

    hide = calloc(1, len);
    line = malloc(len * (sizeof(ACTL_FOLLOW_HIDDEN) - 1) + 1);
    opts = PQconninfo(fl->conn);

    if (hide == NULL || line == NULL || opts == NULL) {
        free(hide);
        free(line);
        PQconninfoFree(opts);
        return NULL;
    }

    for (o = opts; o->keyword != NULL; o++) {
        v = o->val;

        if (v == NULL || v[0] == '\0' || !actl_follow_secret(o)) {
            continue;
        }

        vlen = strlen(v);

        for (q = msg; (size_t) (msg + len - q) >= vlen; q++) {
            if (memcmp(q, v, vlen) == 0) {
                memset(hide + (q - msg), 1, vlen);
            }
        }
    }

    PQconninfoFree(opts);

    p = line;

    for (i = 0; i < len; i++) {
        if (!hide[i]) {
            *p++ = msg[i];

        } else if (i == 0 || !hide[i - 1]) {
            memcpy(p, ACTL_FOLLOW_HIDDEN, sizeof(ACTL_FOLLOW_HIDDEN) - 1);
            p += sizeof(ACTL_FOLLOW_HIDDEN) - 1;
        }
    }

    *p = '\0';

    free(hide);

    return line;
}


static int
actl_follow_secret(PQconninfoOption *o)
{
    const char  **k;

    static const char  *shown[] = {
        "host", "hostaddr", "port", "dbname", "user", "application_name",
        "fallback_application_name", NULL
    };

    if (strcmp(o->keyword, "password") == 0 || strchr(o->val, '@') != NULL) {
        return 1;
    }

    for (k = shown; *k != NULL; k++) {
        if (strcmp(o->keyword, *k) == 0) {
            return 0;
        }
    }

    if (strspn(o->val, "0123456789") == strlen(o->val)) {
        return 0;
    }

    return o->compiled == NULL || strcmp(o->val, o->compiled) != 0;
}


static void
actl_follow_notice(void *arg, const PGresult *res)
{
    /* NOTICEs (an idle LISTEN on a standby...) are not worth a line */
}


/*
 * Opens the snapshot every read of this round uses, and reads the
 * low-water mark of the tombstones and the sequence's last value.
 * The reads that follow: ACTL_FAIL when PostgreSQL failed,
 * ACTL_FOLLOW_LOCAL when the follower did (out of memory).
 */

int
actl_follow_read_state(actl_follow_t *fl)
{
    PGresult  *res;

    if (actl_follow_exec(fl, ACTL_FOLLOW_BEGIN) != ACTL_OK)
    {
        return ACTL_FAIL;
    }

    res = PQexec(fl->conn,
                 "SELECT s.pruned, CASE WHEN v.is_called THEN v.last_value "
                 "ELSE 0 END FROM apikey_state s, apikey_version v");

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
        || PQnfields(res) != 2
        || actl_follow_u64(PQgetvalue(res, 0, 0), &fl->pruned) != ACTL_OK
        || actl_follow_u64(PQgetvalue(res, 0, 1), &fl->last) != ACTL_OK)
    {
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            actl_error(fl->ctx, "apikey_state does not hold one row: "
                       "load the schema (apikeyctl follow --print-schema)");
        }

        PQclear(res);
        return ACTL_FAIL;
    }

    PQclear(res);

    return ACTL_OK;
}


/*
 * The whole table: the version reached is the highest the snapshot
 * holds, of a key, of a tombstone or of the low-water mark.
 */

int
actl_follow_read_all(actl_follow_t *fl)
{
    uint64_t   nrows, v;
    PGresult  *res;

    res = PQexec(fl->conn,
                 "SELECT greatest((SELECT max(version) FROM apikey_keys), "
                 "(SELECT max(version) FROM apikey_tombstones), 0)");

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
        || actl_follow_u64(PQgetvalue(res, 0, 0), &v) != ACTL_OK)
    {
        PQclear(res);
        return ACTL_FAIL;
    }

    PQclear(res);

    fl->target = (v > fl->pruned) ? v : fl->pruned;

    return actl_follow_copy(fl, "COPY (SELECT 0, " ACTL_FOLLOW_COLUMNS
                                " FROM apikey_keys) TO STDOUT", &nrows);
}


/*
 * The rows and tombstones after the version reached, in version order,
 * ACTL_FOLLOW_BATCH at most: one version is one change, so a batch ends
 * between two.
 */

int
actl_follow_read_changes(actl_follow_t *fl, int *more)
{
    int       rc;
    char      sql[1024];
    uint64_t  nrows;

    /* each side cut first (the version index): fewer rows formatted */

    snprintf(sql, sizeof(sql),
             "COPY (SELECT 0, " ACTL_FOLLOW_COLUMNS " FROM "
             "(SELECT * FROM apikey_keys WHERE version > %llu "
             "ORDER BY version LIMIT %d) k "
             "UNION ALL "
             "SELECT 1, hash, id, NULL, NULL, NULL, NULL, "
             "NULL, NULL, NULL, NULL, version FROM "
             "(SELECT * FROM apikey_tombstones WHERE version > %llu "
             "ORDER BY version LIMIT %d) t "
             "ORDER BY 12 LIMIT %d) TO STDOUT",
             (unsigned long long) fl->version, ACTL_FOLLOW_BATCH,
             (unsigned long long) fl->version, ACTL_FOLLOW_BATCH,
             ACTL_FOLLOW_BATCH);

    fl->target = fl->version;

    rc = actl_follow_copy(fl, sql, &nrows);
    if (rc != ACTL_OK) {
        return rc;
    }

    *more = (nrows == ACTL_FOLLOW_BATCH);

    return ACTL_OK;
}


static int
actl_follow_exec(actl_follow_t *fl, const char *sql)
{
    PGresult  *res;

    res = PQexec(fl->conn, sql);

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        PQclear(res);
        return ACTL_FAIL;
    }

    PQclear(res);

    return ACTL_OK;
}


static int
actl_follow_copy(actl_follow_t *fl, const char *sql, uint64_t *nrows)
{
    int        n, rc;
    char      *buf;
    PGresult  *res;

    *nrows = 0;

    res = PQexec(fl->conn, sql);

    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        PQclear(res);
        return ACTL_FAIL;
    }

    PQclear(res);

    rc = ACTL_OK;

    for ( ;; ) {
        n = PQgetCopyData(fl->conn, &buf, 0);

        if (n < 0) {
            break;
        }

        if (rc == ACTL_OK) {
            rc = actl_follow_copy_row(fl, buf, (size_t) n);
            (*nrows)++;
        }

        /* a key put where none belongs is refused, and not left behind */

        sodium_memzero(buf, (size_t) n);
        PQfreemem(buf);

        if (rc == ACTL_FOLLOW_LOCAL) {
            /* the rest of the copy is dropped with the connection */
            return ACTL_FOLLOW_LOCAL;
        }
    }

    if (n == -2) {
        return ACTL_FAIL;
    }

    res = PQgetResult(fl->conn);

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = ACTL_FAIL;
    }

    PQclear(res);

    while ((res = PQgetResult(fl->conn)) != NULL) {
        PQclear(res);
    }

    if (rc == ACTL_INVALID) {
        /* a row PostgreSQL should never send: the connection is dropped */
        return ACTL_FAIL;
    }

    return rc;
}


/* one line of COPY's text format: fields split by tabs, \N for NULL */

static int
actl_follow_copy_row(actl_follow_t *fl, char *p, size_t len)
{
    int      n;
    char    *f[ACTL_FOLLOW_NFIELDS + 1], *end, *tab;
    size_t   flen[ACTL_FOLLOW_NFIELDS + 1];

    if (len == 0 || p[len - 1] != '\n') {
        actl_error(fl->ctx, "a COPY row without its end of line");
        return ACTL_INVALID;
    }

    end = p + len - 1;

    for (n = 0; n < ACTL_FOLLOW_NFIELDS + 1; n++) {
        tab = memchr(p, '\t', end - p);
        if (tab == NULL) {
            tab = end;
        }

        f[n] = p;

        if (tab - p == 2 && p[0] == '\\' && p[1] == 'N') {
            flen[n] = 0;

        } else {
            flen[n] = actl_follow_unescape(p, tab - p);
        }

        p = tab + 1;

        if (tab == end) {
            break;
        }
    }

    if (n != ACTL_FOLLOW_NFIELDS || p != end + 1) {
        actl_error(fl->ctx, "a COPY row of %d fields, not %d", n + 1,
                   ACTL_FOLLOW_NFIELDS + 1);
        return ACTL_INVALID;
    }

    actl_follow_text(&f[1], &flen[1]);

    return actl_follow_row(fl, &f[1], &flen[1], f[0][0] == '1');
}


/*
 * bytea "\x" and hex digits: the digits; timestamptz in ISO style and
 * UTC, "2027-01-31 00:00:00[.123456]+00": "2027-01-31T00:00:00Z"
 * (a fraction of a second dropped, as import would keep none); boolean
 * "t" and "f": "true" and "false".  Anything else is left as it is, for
 * the checks of import to refuse.
 */

static void
actl_follow_text(char **f, size_t *len)
{
    char  *p;

    p = f[ACTL_FOLLOW_F_HASH];

    if (len[ACTL_FOLLOW_F_HASH] >= 2 && p[0] == '\\' && p[1] == 'x') {
        f[ACTL_FOLLOW_F_HASH] += 2;
        len[ACTL_FOLLOW_F_HASH] -= 2;
    }

    len[ACTL_FOLLOW_F_EXPIRES] = actl_follow_time(f[ACTL_FOLLOW_F_EXPIRES],
                                     len[ACTL_FOLLOW_F_EXPIRES]);
    len[ACTL_FOLLOW_F_NOT_BEFORE] = actl_follow_time(
                                     f[ACTL_FOLLOW_F_NOT_BEFORE],
                                     len[ACTL_FOLLOW_F_NOT_BEFORE]);
    len[ACTL_FOLLOW_F_CREATED] = actl_follow_time(f[ACTL_FOLLOW_F_CREATED],
                                     len[ACTL_FOLLOW_F_CREATED]);

    if (len[ACTL_FOLLOW_F_DISABLED] == 1) {
        p = f[ACTL_FOLLOW_F_DISABLED];

        if (p[0] == 't') {
            f[ACTL_FOLLOW_F_DISABLED] = "true";
            len[ACTL_FOLLOW_F_DISABLED] = 4;

        } else if (p[0] == 'f') {
            f[ACTL_FOLLOW_F_DISABLED] = "false";
            len[ACTL_FOLLOW_F_DISABLED] = 5;
        }
    }
}


static size_t
actl_follow_time(char *p, size_t len)
{
    if (len < sizeof("2027-01-31 00:00:00+00") - 1
        || p[4] != '-' || p[7] != '-' || p[10] != ' ' || p[13] != ':'
        || p[16] != ':' || (p[19] != '+' && p[19] != '.')
        || memcmp(p + len - 3, "+00", 3) != 0)
    {
        return len;
    }

    p[10] = 'T';
    p[19] = 'Z';

    return 20;
}


static size_t
actl_follow_unescape(char *p, size_t len)
{
    char    c;
    size_t  i, j;

    if (memchr(p, '\\', len) == NULL) {
        return len;
    }

    for (i = 0, j = 0; i < len; i++, j++) {
        c = p[i];

        if (c == '\\' && i + 1 < len) {
            c = p[++i];

            switch (c) {
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'v':
                c = '\v';
                break;
            default:
                /* \\ and the rest: the character itself */
                break;
            }
        }

        p[j] = c;
    }

    return j;
}


static int
actl_follow_u64(const char *s, uint64_t *v)
{
    char                *end;
    unsigned long long   n;

    if (s[0] < '0' || s[0] > '9') {
        return ACTL_FAIL;
    }

    errno = 0;
    n = strtoull(s, &end, 10);

    if (errno != 0 || *end != '\0') {
        return ACTL_FAIL;
    }

    *v = n;

    return ACTL_OK;
}


/*
 * Waits ms milliseconds at most, less when a NOTIFY arrives or a signal
 * stops the follower; ACTL_FAIL when the connection is lost.  SIGTERM
 * and SIGINT are blocked from the check of the stop flag to ppoll(),
 * which lets them in: one that comes in between is not left to wait
 * for the timeout.  Anything else the server sends (a NOTICE...) is
 * read, and the wait goes on until the same deadline.
 */

int
actl_follow_wait(actl_follow_t *fl, int64_t ms)
{
    int               n, rc, woken;
    int64_t           left;
    sigset_t          set, old, wait;
    PGnotify         *nt;
    struct pollfd     pfd;
    struct timespec   deadline, now, ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &deadline);

    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000;

    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);

    (void) sigprocmask(SIG_BLOCK, &set, &old);

    wait = old;
    sigdelset(&wait, SIGTERM);
    sigdelset(&wait, SIGINT);

    rc = ACTL_OK;
    woken = 0;

    for ( ;; ) {
        if (fl->conn != NULL) {
            if (PQconsumeInput(fl->conn) == 0) {
                rc = ACTL_FAIL;
                break;
            }

            while ((nt = PQnotifies(fl->conn)) != NULL) {
                woken = 1;
                PQfreemem(nt);
            }
        }

        (void) clock_gettime(CLOCK_MONOTONIC, &now);

        left = (int64_t) (deadline.tv_sec - now.tv_sec) * 1000
               + (deadline.tv_nsec - now.tv_nsec) / 1000000;

        if (woken || actl_follow_stop || left <= 0) {
            break;
        }

        pfd.fd = (fl->conn != NULL) ? PQsocket(fl->conn) : -1;
        pfd.events = POLLIN;
        pfd.revents = 0;

        ts.tv_sec = left / 1000;
        ts.tv_nsec = (left % 1000) * 1000000;

        /* a negative fd is not polled: the timeout or a signal ends it */

        n = ppoll(&pfd, 1, &ts, &wait);

        if (n == -1 && errno != EINTR) {
            actl_error(fl->ctx, "ppoll() failed: %s", strerror(errno));
            break;
        }
    }

    (void) sigprocmask(SIG_SETMASK, &old, NULL);

    return rc;
}
