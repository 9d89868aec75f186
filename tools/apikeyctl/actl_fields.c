
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl: the arguments and the fields of a key, checked the same way
 * whether from the command line, CSV or JSONL, and the ids an update
 * command reads from standard input.
 */


#include "actl.h"


const char  *actl_col_names[] = {
    "key",
    "hash",
    "id",
    "subject",
    "scopes",
    "plan",
    "expires",
    "not_before",
    "disabled",
    "hint",
    "created"
};


/* arguments */

int
actl_parse_size(const char *s, size_t *size)
{
    size_t    i, shift;
    uint64_t  n;

    n = 0;

    for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
        if (n > (UINT64_MAX - 9) / 10) {
            return ACTL_USAGE;
        }

        n = n * 10 + (s[i] - '0');
    }

    if (i == 0) {
        return ACTL_USAGE;
    }

    switch (s[i]) {
    case '\0': shift = 0; break;
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: return ACTL_USAGE;
    }

    if (shift != 0 && s[i + 1] != '\0') {
        return ACTL_USAGE;
    }

    if (n == 0 || n > (SIZE_MAX >> shift)) {
        return ACTL_USAGE;
    }

    *size = (size_t) (n << shift);

    return ACTL_OK;
}


int
actl_parse_format(actl_ctx_t *ctx, const char *s, const char **names)
{
    int  i;

    for (i = 0; names[i] != NULL; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }

    actl_usage_error(ctx, "invalid format \"%s\"", s);

    return -1;
}


/* fields */

int
actl_check_field(actl_col_e col, const char *s, size_t len, char *err,
    size_t errlen)
{
    char  q[ACTL_QUOTE_LEN];

    switch (col) {

    case ACTL_COL_ID:
        if (akc_id_valid(s, len)) {
            return ACTL_OK;
        }

        snprintf(err, errlen, "invalid id %s (1 to %d letters, digits "
                 "or \"._:@-\")", actl_quote(s, len, q), AKC_ID_MAX_LEN);
        break;

    case ACTL_COL_SUBJECT:
        if (akc_text_valid(s, len, AKC_SUBJECT_MAX_LEN)) {
            return ACTL_OK;
        }

        snprintf(err, errlen, "invalid subject %s (at most %d bytes of "
                 "UTF-8, no control characters)", actl_quote(s, len, q),
                 AKC_SUBJECT_MAX_LEN);
        break;

    case ACTL_COL_SCOPES:
        if (akc_scopes_valid(s, len)) {
            return ACTL_OK;
        }

        snprintf(err, errlen, "invalid scopes %s (comma-separated "
                 "names of letters, digits or \"._:/*-\", at most %d "
                 "bytes)", actl_quote(s, len, q), AKC_SCOPES_MAX_LEN);
        break;

    case ACTL_COL_PLAN:
        if (akc_plan_valid(s, len)) {
            return ACTL_OK;
        }

        snprintf(err, errlen, "invalid plan %s (at most %d letters, "
                 "digits or \"._:-\")", actl_quote(s, len, q),
                 AKC_PLAN_MAX_LEN);
        break;

    case ACTL_COL_HINT:
        if (akc_text_valid(s, len, AKC_HINT_MAX_LEN)) {
            return ACTL_OK;
        }

        snprintf(err, errlen, "invalid hint %s (at most %d bytes of "
                 "UTF-8, no control characters)", actl_quote(s, len, q),
                 AKC_HINT_MAX_LEN);
        break;

    default:
        return ACTL_OK;
    }

    return ACTL_INVALID;
}


int
actl_check_time(actl_col_e col, const char *s, size_t len, int64_t now,
    int64_t *t, char *err, size_t errlen)
{
    char  q[ACTL_QUOTE_LEN];

    if (len == 0) {
        *t = 0;
        return ACTL_OK;
    }

    if (len <= ACTL_TIME_MAX && akc_time_parse(s, len, now, t) == AKC_OK
        && *t > 0)
    {
        return ACTL_OK;
    }

    snprintf(err, errlen, "invalid %s %s (now, an RFC 3339 time such as "
             "2027-01-31T00:00:00Z, or a duration such as 30d; at most "
             "9999-12-31T23:59:59Z)", actl_col_names[col],
             actl_quote(s, len, q));

    return ACTL_INVALID;
}


int
actl_check_times(int64_t not_before, int64_t expires, char *err,
    size_t errlen)
{
    if (not_before != 0 && expires != 0 && expires <= not_before) {
        snprintf(err, errlen, "expires is not after not_before");
        return ACTL_INVALID;
    }

    return ACTL_OK;
}


int
actl_check_bool(const char *s, size_t len, unsigned *flags, char *err,
    size_t errlen)
{
    char  q[ACTL_QUOTE_LEN];

    if (len == 0
        || (len == 5 && memcmp(s, "false", 5) == 0)
        || (len == 1 && s[0] == '0'))
    {
        *flags = 0;
        return ACTL_OK;
    }

    if ((len == 4 && memcmp(s, "true", 4) == 0) || (len == 1 && s[0] == '1'))
    {
        *flags = AKC_FLAG_DISABLED;
        return ACTL_OK;
    }

    snprintf(err, errlen, "invalid disabled %s (true, false, 1 or 0)",
             actl_quote(s, len, q));

    return ACTL_INVALID;
}


int
actl_check_hash(const char *s, size_t len, unsigned char hash[AKC_HASH_LEN],
    char *err, size_t errlen)
{
    size_t  i;

    if (len == 2 * AKC_HASH_LEN) {
        for (i = 0; i < len; i++) {
            if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            {
                break;
            }
        }

        if (i == len
            && sodium_hex2bin(hash, AKC_HASH_LEN, s, len, NULL, NULL, NULL)
               == 0)
        {
            return ACTL_OK;
        }
    }

    snprintf(err, errlen, "invalid hash (%d lowercase hexadecimal "
             "characters)", 2 * AKC_HASH_LEN);

    return ACTL_INVALID;
}


/* never quotes the key */

int
actl_check_key(const char *s, size_t len, char *err, size_t errlen)
{
    switch (akc_key_classify((const unsigned char *) s, len)) {

    case AKC_KEY_INVALID:
        snprintf(err, errlen, "key is malformed (%d to %d printable ASCII "
                 "characters, no spaces)", AKC_KEY_MIN_LEN, AKC_KEY_MAX_LEN);
        return ACTL_INVALID;

    case AKC_KEY_BAD_CHECKSUM:
        snprintf(err, errlen, "key has the shape of a generated key but a "
                 "wrong checksum");
        return ACTL_INVALID;

    default:
        return ACTL_OK;
    }
}


int
actl_col_lookup(const char *name, size_t len)
{
    int  i;

    for (i = 0; i < ACTL_COL_N; i++) {
        if (strlen(actl_col_names[i]) == len
            && memcmp(actl_col_names[i], name, len) == 0)
        {
            return i;
        }
    }

    return -1;
}


/* the default id: the first 8 bytes of the stored hash, deterministic */

void
actl_default_id(const unsigned char *hash, char id[ACTL_DEFAULT_ID_LEN + 1])
{
    sodium_bin2hex(id, ACTL_DEFAULT_ID_LEN + 1, hash, ACTL_DEFAULT_ID_LEN / 2);
}


/*
 * The ids of "-": standard input, one a line, blank lines ignored; a
 * line that holds a key is refused and not shown.
 */

int
actl_read_ids(actl_ctx_t *ctx, char **bufp, char ***idsp, size_t *np)
{
    char     *buf, *p, *end, *nl, *nb, **ids;
    size_t    len, size, n, line, ln;
    ssize_t   nr;

    buf = NULL;
    ids = NULL;
    len = 0;
    size = 0;

    for ( ;; ) {
        if (len == size) {
            size = size ? 2 * size : ACTL_READ_SIZE;

            nb = actl_secure_realloc(buf, size + 1);
            if (nb == NULL) {
                actl_error(ctx, "realloc() failed: %s", strerror(errno));
                goto failed;
            }

            buf = nb;
        }

        nr = read(STDIN_FILENO, buf + len, size - len);

        if (nr == -1) {
            if (errno == EINTR) {
                continue;
            }

            actl_error(ctx, "read from standard input failed: %s",
                       strerror(errno));
            goto failed;
        }

        if (nr == 0) {
            break;
        }

        len += nr;
    }

    buf[len] = '\0';

    /* at most one id a line and a line per two bytes, "x\n" */

    ids = malloc((len / 2 + 1) * sizeof(char *));
    if (ids == NULL) {
        actl_error(ctx, "malloc() failed: %s", strerror(errno));
        goto failed;
    }

    n = 0;
    line = 0;

    for (p = buf, end = buf + len; p < end; p = nl + 1) {
        line++;

        nl = memchr(p, '\n', end - p);
        if (nl == NULL) {
            nl = end;
        }

        ln = nl - p;

        if (ln > 0 && p[ln - 1] == '\r') {
            ln--;
        }

        if (actl_has_key(p, ln)) {
            actl_error(ctx, "line %zu of standard input holds an API key "
                       "(not shown); \"apikeyctl verify -\" reads a key "
                       "from standard input and prints its id", line);
            goto invalid;
        }

        while (ln > 0 && (p[ln - 1] == ' ' || p[ln - 1] == '\t')) {
            ln--;
        }

        while (ln > 0 && (p[0] == ' ' || p[0] == '\t')) {
            p++;
            ln--;
        }

        if (ln == 0) {
            continue;
        }

        if (memchr(p, '\0', ln) != NULL) {
            actl_error(ctx, "line %zu of standard input is not an id (a NUL "
                       "byte)", line);
            goto invalid;
        }

        p[ln] = '\0';
        ids[n++] = p;
    }

    if (n == 0) {
        actl_error(ctx, "no id on standard input");
        goto invalid;
    }

    *bufp = buf;
    *idsp = ids;
    *np = n;

    return ACTL_OK;

invalid:

    free(ids);
    actl_secure_free(buf);

    return ACTL_INVALID;

failed:

    free(ids);
    actl_secure_free(buf);

    return ACTL_FAIL;
}


/*
 * The options of a command that takes --format alone: the index of the
 * format in formats (0 without --format), or -1 after a usage error, for
 * which the command returns ACTL_USAGE.
 */

int
actl_format_only(actl_ctx_t *ctx, int argc, char **argv,
    const char **formats)
{
    int  c, format;

    static struct option  options[] = {
        { "format",     required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 }
    };

    format = 0;

    while ((c = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (c) {

        case 'f':
            format = actl_parse_format(ctx, optarg, formats);
            if (format == -1) {
                return -1;
            }
            break;

        default:
            (void) actl_option_error(ctx, c, argv);
            return -1;
        }
    }

    if (optind != argc) {
        (void) actl_usage_error(ctx, "unexpected argument \"%s\"",
                                argv[optind]);
        return -1;
    }

    return format;
}


/* a duration from now only (30d, 12h, 15m, 90s, 2w): no time, no "now" */

int
actl_parse_duration(actl_ctx_t *ctx, const char *s, int64_t *until)
{
    size_t  i, len;

    len = strlen(s);

    if (len < 2 || len > ACTL_TIME_MAX) {
        return ACTL_USAGE;
    }

    for (i = 0; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return ACTL_USAGE;
        }
    }

    if (akc_time_parse(s, len, ctx->now, until) != AKC_OK) {
        return ACTL_USAGE;
    }

    return ACTL_OK;
}
