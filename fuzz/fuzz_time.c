
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: times and durations ("2027-01-31T00:00:00Z", with
 * fractions or an offset, "now", "30d"), parsed as apikeyctl parses
 * --expires and the time columns of an import, then formatted as the
 * module formats $apikey_expires.  A time that formats must parse back
 * to itself.
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apikey_core.h"


#define AKF_NOW                 1767225600      /* 2026-01-01T00:00:00Z */

#define akf_assert(expr)                                                      \
    if (!(expr)) {                                                            \
        abort();                                                              \
    }


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return akc_init();
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char     *s, out[AKC_TIME_LEN + 1];
    size_t    n;
    int64_t   t, back;

    /* an exact copy: the sanitizers see any read past the end */

    s = malloc(size ? size : 1);
    if (s == NULL) {
        return 0;
    }

    memcpy(s, data, size);

    if (akc_time_parse(s, size, AKF_NOW, &t) != AKC_OK) {
        free(s);
        return 0;
    }

    memset(out, 'x', sizeof(out));

    n = akc_time_format(t, out);

    akf_assert(n <= AKC_TIME_LEN);
    akf_assert(strlen(out) == n);

    if (n > 0 && t >= 0) {
        akf_assert(n == AKC_TIME_LEN);
        akf_assert(akc_time_parse(out, n, AKF_NOW, &back) == AKC_OK);
        akf_assert(back == t);
    }

    free(s);

    return 0;
}
