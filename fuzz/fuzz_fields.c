
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the query= and cookie= sources.  The first byte
 * picks the parser (query string or Cookie header value) and the name
 * (as "apikey_source query=NAME" or "cookie=NAME" would store it); the
 * rest is what the client sent.  Every field of that name is found with
 * akc_query_next() or akc_cookie_next() and checked against the input,
 * its value is percent-decoded as the module does and compared with a
 * decoder of the test's own, then the fields are removed one by one with
 * akc_field_remove() as apikey_hide_credentials does: no field of the
 * name may be left, every other field must be kept, in order, and no
 * empty field ("a=1&&b=2", " ; a=2") may appear.
 */


#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apikey_core.h"


#define AKF_FIELDS_MAX  1024


#define akf_blank(c)                                                          \
    ((c) == ' ' || (c) == '\t' || (c) == '\v' || (c) == '\f')


#define akf_assert(expr)                                                      \
    if (!(expr)) {                                                            \
        abort();                                                              \
    }


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t akf_find(int cookie, const unsigned char *in, size_t len,
    const char *name, size_t nlen, akc_field_t *f, size_t max);
static void akf_decode(const akc_str_t *value);
static size_t akf_others(int cookie, const unsigned char *in, size_t len,
    const char *name, size_t nlen, unsigned char *out);
static size_t akf_empty(int cookie, const unsigned char *in, size_t len);
static int akf_name_is(const unsigned char *raw, size_t len,
    const char *name, size_t nlen, int nocase);


static const char  *akf_names[] = {
    "k", "key", "api_key", "API_KEY", "X-API-Key", "a", "_", "k1"
};


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return akc_init();
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             cookie;
    char            sep;
    size_t          i, n, m, len, nlen, olen, rlen;
    akc_str_t       whole;
    akc_field_t    *f;
    const char     *name;
    unsigned char  *in, *out, *others, *rest;

    if (size == 0) {
        return 0;
    }

    cookie = data[0] & 1;
    sep = cookie ? ';' : '&';
    name = akf_names[(data[0] >> 1) % (sizeof(akf_names) / sizeof(char *))];
    nlen = strlen(name);

    data++;
    len = size - 1;

    /* exact sizes, so that ASan sees any read past the input */

    in = malloc(len ? len : 1);
    out = malloc(len ? len : 1);
    others = malloc(len ? len : 1);
    rest = malloc(len ? len : 1);
    f = malloc(AKF_FIELDS_MAX * sizeof(akc_field_t));

    if (in == NULL || out == NULL || others == NULL || rest == NULL
        || f == NULL)
    {
        goto done;
    }

    memcpy(in, data, len);

    n = akf_find(cookie, in, len, name, nlen, f, AKF_FIELDS_MAX);

    for (i = 0; i < n; i++) {
        akf_decode(&f[i].value);
    }

    /* the whole input through the decoder too */

    whole.data = (const char *) in;
    whole.len = len;
    akf_decode(&whole);

    if (n == AKF_FIELDS_MAX) {
        goto done;
    }

    /* what is not the name, before removal */

    olen = akf_others(cookie, in, len, name, nlen, others);

    /* each field removed, from the last, the output once in place */

    memcpy(out, in, len);
    rlen = len;

    for (i = n; i > 0; i--) {
        m = akc_field_remove(out, rlen, &f[i - 1], sep,
                             (i & 1) ? out : rest);
        akf_assert(m < rlen);
        akf_assert(rlen - m >= f[i - 1].end - f[i - 1].start);

        if (!(i & 1)) {
            memcpy(out, rest, m);
        }

        rlen = m;
    }

    akf_assert(akf_find(cookie, out, rlen, name, nlen, f, AKF_FIELDS_MAX)
               == 0);

    m = akf_others(cookie, out, rlen, name, nlen, rest);

    akf_assert(m == olen);
    akf_assert(memcmp(rest, others, m) == 0);

    akf_assert(akf_empty(cookie, out, rlen) <= akf_empty(cookie, in, len));

done:

    free(f);
    free(rest);
    free(others);
    free(out);
    free(in);

    return 0;
}


/* every field "name", checked against the input */

static size_t
akf_find(int cookie, const unsigned char *in, size_t len, const char *name,
    size_t nlen, akc_field_t *f, size_t max)
{
    int             rc;
    size_t          n, pos, last, e;
    const char     *v;
    unsigned char  *eq;

    n = 0;
    pos = 0;

    while (n < max) {
        last = pos;

        if (cookie) {
            rc = akc_cookie_next(in, len, &pos, name, nlen, &f[n]);
        } else {
            rc = akc_query_next(in, len, &pos, name, nlen, &f[n]);
        }

        if (rc == 0) {
            akf_assert(pos == len);
            break;
        }

        akf_assert(rc == 1);
        akf_assert(f[n].start >= last);
        akf_assert(f[n].start + nlen <= f[n].end && f[n].end <= len);
        akf_assert(pos > f[n].start && pos <= len + 1);

        if (n > 0) {
            akf_assert(f[n].start > f[n - 1].end);
        }

        v = f[n].value.data;
        akf_assert(v >= (const char *) in + f[n].start + nlen);
        akf_assert(v + f[n].value.len <= (const char *) in + f[n].end);
        akf_assert(memchr(v, cookie ? ';' : '&', f[n].value.len) == NULL);

        /* the raw name, percent-decoded, is the name */

        eq = memchr(in + f[n].start, '=', f[n].end - f[n].start);

        if (cookie) {
            akf_assert(eq != NULL);

            e = eq - in;

            while (e > f[n].start && akf_blank(in[e - 1])) {
                e--;
            }

            akf_assert(akf_name_is(in + f[n].start, e - f[n].start, name,
                                   nlen, 0));
            akf_assert(!akf_blank(in[f[n].start]));

            if (f[n].start > 0) {
                akf_assert(in[f[n].start - 1] == ';'
                           || akf_blank(in[f[n].start - 1]));
            }

        } else {
            akf_assert(f[n].start == 0 || in[f[n].start - 1] == '&');
            akf_assert(f[n].end == len || in[f[n].end] == '&');

            if (eq == NULL) {
                akf_assert(akf_name_is(in + f[n].start,
                                       f[n].end - f[n].start, name, nlen, 1));
                akf_assert(f[n].value.len == 0);

            } else {
                akf_assert(akf_name_is(in + f[n].start, eq - in - f[n].start,
                                       name, nlen, 1));
                akf_assert(v == (const char *) eq + 1);
            }
        }

        n++;
    }

    return n;
}


/* akc_pct_decode() against a decoder of the test's own */

static void
akf_decode(const akc_str_t *value)
{
    int                   rc, ok;
    char                  hex[3];
    size_t                i, n, m;
    unsigned char        *out, *ref;
    const unsigned char  *p;

    p = (const unsigned char *) value->data;

    out = malloc(value->len ? value->len : 1);
    ref = malloc(value->len ? value->len : 1);

    if (out == NULL || ref == NULL) {
        goto done;
    }

    ok = 1;
    m = 0;

    for (i = 0; i < value->len; i++) {
        if (p[i] != '%') {
            ref[m++] = p[i];
            continue;
        }

        if (value->len - i < 3 || !isxdigit(p[i + 1])
            || !isxdigit(p[i + 2]))
        {
            ok = 0;
            break;
        }

        hex[0] = (char) p[i + 1];
        hex[1] = (char) p[i + 2];
        hex[2] = '\0';

        ref[m++] = (unsigned char) strtoul(hex, NULL, 16);
        i += 2;
    }

    n = (size_t) -1;
    rc = akc_pct_decode(p, value->len, out, &n);

    if (ok) {
        akf_assert(rc == AKC_OK);
        akf_assert(n == m);
        akf_assert(memcmp(out, ref, n) == 0);

    } else {
        akf_assert(rc == AKC_ERROR);
    }

done:

    free(ref);
    free(out);
}


/*
 * the fields whose name is not "name", each with its separator, in
 * order: what apikey_hide_credentials must keep (empty fields aside,
 * and for cookies the spaces around a field, which are not its bytes)
 */

static size_t
akf_others(int cookie, const unsigned char *in, size_t len, const char *name,
    size_t nlen, unsigned char *out)
{
    char                  sep;
    size_t                i, s, e, n, pos;
    akc_field_t           f;
    const unsigned char  *amp;

    sep = cookie ? ';' : '&';
    n = 0;

    for (i = 0; i < len; i = e + 1) {
        amp = memchr(in + i, sep, len - i);
        e = (amp != NULL) ? (size_t) (amp - in) : len;

        s = i;

        if (cookie) {
            while (s < e && akf_blank(in[s])) {
                s++;
            }

            while (e > s && akf_blank(in[e - 1])) {
                e--;
            }
        }

        if (s == e) {
            e = (amp != NULL) ? (size_t) (amp - in) : len;
            continue;
        }

        /* is this field one of the name? */

        pos = 0;

        if ((cookie ? akc_cookie_next(in + s, e - s, &pos, name, nlen, &f)
                    : akc_query_next(in + s, e - s, &pos, name, nlen, &f))
            == 0)
        {
            /* one separator between two fields: the input had it */

            if (n > 0) {
                out[n++] = (unsigned char) sep;
            }

            memcpy(out + n, in + s, e - s);
            n += e - s;
        }

        e = (amp != NULL) ? (size_t) (amp - in) : len;
    }

    return n;
}


/* the number of empty fields (for cookies, of spaces only) */

static size_t
akf_empty(int cookie, const unsigned char *in, size_t len)
{
    char    sep;
    size_t  i, n, empty;

    sep = cookie ? ';' : '&';
    empty = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        if (in[i] == (unsigned char) sep) {
            empty += (n == 0);
            n = 0;

        } else if (!cookie || !akf_blank(in[i])) {
            n++;
        }
    }

    return empty + (len > 0 && n == 0);
}


/* raw, percent-decoded by the test's own decoder, is name */

static int
akf_name_is(const unsigned char *raw, size_t len, const char *name,
    size_t nlen, int nocase)
{
    char      hex[3];
    size_t    i, n;
    unsigned  c;

    n = 0;

    for (i = 0; i < len; i++) {
        c = raw[i];

        if (c == '%' && len - i >= 3 && isxdigit(raw[i + 1])
            && isxdigit(raw[i + 2]))
        {
            hex[0] = (char) raw[i + 1];
            hex[1] = (char) raw[i + 2];
            hex[2] = '\0';
            c = (unsigned) strtoul(hex, NULL, 16);
            i += 2;
        }

        if (n == nlen
            || (nocase ? tolower(c) != tolower((unsigned char) name[n])
                       : c != (unsigned char) name[n]))
        {
            return 0;
        }

        n++;
    }

    return n == nlen;
}
