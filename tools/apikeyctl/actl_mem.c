
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl: the memory that holds keys and the secret: no core file,
 * allocations that are wiped, and SIGBUS on a truncated mapped file or
 * SIGSEGV on a damaged one.
 */


#include "actl.h"


static void actl_sigbus_handler(int signo);
static void actl_sigsegv_msg_init(actl_ctx_t *ctx);
static void actl_sigsegv_handler(int signo);


/* what the handlers write: made before any file is mapped */
static char    actl_sigbus_msg[1024];
static size_t  actl_sigbus_len;
static char    actl_sigsegv_msg[1024];
static size_t  actl_sigsegv_len;
static char    actl_sigsegv_problem[128];
static size_t  actl_sigsegv_problem_len;
static const char  *actl_assert_db;
static unsigned     actl_assert_restore;


/* core files would hold keys and the secret */

void
actl_no_core(void)
{
    struct rlimit  rl;

    rl.rlim_cur = 0;
    rl.rlim_max = 0;

    (void) setrlimit(RLIMIT_CORE, &rl);
    (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}


/*
 * A data file or lock file truncated while mapped makes the next access
 * SIGBUS; akc_env_check() catches what was truncated before a
 * transaction began, this what is truncated during one.
 */

void
actl_sigbus_init(actl_ctx_t *ctx)
{
    int               n;
    struct sigaction  sa;

    n = snprintf(actl_sigbus_msg, sizeof(actl_sigbus_msg),
                 "apikeyctl: %s: data.mdb or lock.mdb ends before a page "
                 "read from it (truncated or damaged?): restore it from "
                 "a backup\n",
                 ctx->db);

    if (n < 0 || (size_t) n >= sizeof(actl_sigbus_msg)) {
        n = snprintf(actl_sigbus_msg, sizeof(actl_sigbus_msg),
                     "apikeyctl: data.mdb or lock.mdb ends before a page "
                     "read from it (truncated or damaged?): restore it from "
                     "a backup\n");
    }

    actl_sigbus_len = (size_t) n;

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = actl_sigbus_handler;
    sigemptyset(&sa.sa_mask);

    (void) sigaction(SIGBUS, &sa, NULL);

    /*
     * damaged bytes in a page of data.mdb send LMDB's reads astray: one
     * message for every command, and for check a problem line too
     */

    actl_sigsegv_msg_init(ctx);

    actl_assert_db = ctx->db;
    actl_assert_restore = (ctx->cmd != NULL
                           && strcmp(ctx->cmd, "restore") == 0);

    if (ctx->cmd != NULL && strcmp(ctx->cmd, "check") == 0) {
        n = snprintf(actl_sigsegv_problem, sizeof(actl_sigsegv_problem),
                     "problem: data.mdb is damaged: a read inside it "
                     "faulted\n");
        actl_sigsegv_problem_len = (size_t) n;
    }

    sa.sa_handler = actl_sigsegv_handler;

    (void) sigaction(SIGSEGV, &sa, NULL);
}


/*
 * restore over a damaged database reads the damage too, so the way out
 * is a new directory; and restore reads two databases, either of which
 * may be the damaged one
 */

static void
actl_sigsegv_msg_init(actl_ctx_t *ctx)
{
    int          n;
    const char  *fmt;

    if (ctx->cmd != NULL && strcmp(ctx->cmd, "restore") == 0) {
        fmt = "apikeyctl: restore: a read inside LMDB faulted (SIGSEGV): "
              "the data.mdb of the backup or of \"%s\" is damaged "
              "(\"apikeyctl check\" on each tells which), or apikeyctl "
              "has a bug (please report it); restore into a new directory "
              "and swap it in\n";

    } else {
        fmt = "apikeyctl: %s: data.mdb is damaged: a read inside it "
              "faulted (SIGSEGV in LMDB), or apikeyctl has a bug (please "
              "report it); restore a backup into a new directory (init, "
              "then restore) and swap it in\n";
    }

    n = snprintf(actl_sigsegv_msg, sizeof(actl_sigsegv_msg), fmt, ctx->db);

    if (n < 0 || (size_t) n >= sizeof(actl_sigsegv_msg)) {
        n = snprintf(actl_sigsegv_msg, sizeof(actl_sigsegv_msg), fmt,
                     "the database");
    }

    actl_sigsegv_len = (size_t) n;
}


static void
actl_sigbus_handler(int signo)
{
    ssize_t  n;

    /* async-signal-safe only: write(2) and _exit(2) */

    n = write(STDERR_FILENO, actl_sigbus_msg, actl_sigbus_len);
    (void) n;

    _exit(ACTL_FAIL);
}


static void
actl_sigsegv_handler(int signo)
{
    ssize_t  n;

    /*
     * async-signal-safe only: write(2) and _exit(2); what check printed
     * before is still in stdio's buffer and is lost
     */

    if (actl_sigsegv_problem_len) {
        n = write(STDOUT_FILENO, actl_sigsegv_problem,
                  actl_sigsegv_problem_len);
        (void) n;
    }

    n = write(STDERR_FILENO, actl_sigsegv_msg, actl_sigsegv_len);
    (void) n;

    _exit(ACTL_FAIL);
}


/*
 * LMDB's own checks of the pages it reads (mdb_env_set_assert()): a
 * damaged page can fail one, and LMDB aborts once this returns; it is
 * the damage a fault shows, said the same way, and never a core
 */

void
actl_lmdb_assert(MDB_env *env, const char *msg)
{
    if (actl_sigsegv_problem_len) {
        printf("problem: data.mdb is damaged: LMDB found a page "
               "inconsistent (%s)\n", msg);
        (void) fflush(stdout);
    }

    if (actl_assert_restore) {
        fprintf(stderr, "apikeyctl: restore: LMDB found a page "
                "inconsistent (%s): the data.mdb of the backup or of "
                "\"%s\" is damaged (\"apikeyctl check\" on each tells "
                "which); restore into a new directory and swap it in\n",
                msg, actl_assert_db);

    } else {
        fprintf(stderr, "apikeyctl: %s: data.mdb is damaged: LMDB found a "
                "page inconsistent (%s); restore a backup into a new "
                "directory (init, then restore) and swap it in\n",
                actl_assert_db ? actl_assert_db : "database", msg);
    }

    _exit(ACTL_FAIL);
}


/* allocation that wipes */

void *
actl_secure_malloc(size_t size)
{
    actl_mem_t  *m;

    if (size > SIZE_MAX - sizeof(actl_mem_t)) {
        return NULL;
    }

    m = malloc(sizeof(actl_mem_t) + size);
    if (m == NULL) {
        return NULL;
    }

    m->size = size;

    return m + 1;
}


void *
actl_secure_realloc(void *p, size_t size)
{
    void        *n;
    actl_mem_t  *m;

    if (p == NULL) {
        return actl_secure_malloc(size);
    }

    m = (actl_mem_t *) p - 1;

    n = actl_secure_malloc(size);
    if (n == NULL) {
        return NULL;
    }

    memcpy(n, p, m->size < size ? m->size : size);
    actl_secure_free(p);

    return n;
}


void
actl_secure_free(void *p)
{
    actl_mem_t  *m;

    if (p == NULL) {
        return;
    }

    m = (actl_mem_t *) p - 1;

    sodium_memzero(p, m->size);
    free(m);
}
