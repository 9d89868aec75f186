
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: the paths a presented key takes in the module.  The
 * first byte picks the scheme of an "apikey_source authorization=..."
 * (as the directive would store it); the rest is the header value.  The
 * value is classified whole, as for "header=X-API-Key"; it is parsed
 * with akc_auth_parse() and the key it yields is classified and, when
 * acceptable, given a hint, as for an unknown key.
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apikey_core.h"


#define akf_assert(expr)                                                      \
    if (!(expr)) {                                                            \
        abort();                                                              \
    }


#define akf_blank(c)                                                          \
    ((c) == ' ' || (c) == '\t' || (c) == '\v' || (c) == '\f')


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const char  *akf_schemes[] = {
    "Bearer", "ApiKey", "Token", "X", "bearer-token", "Key"
};


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return akc_init();
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc;
    char            hint[AKC_HINT_MAX_LEN + 1];
    size_t          slen, skip;
    akc_str_t       key;
    const char     *scheme;
    unsigned char  *value;
    akc_key_kind_e  kind;

    if (size == 0) {
        return 0;
    }

    scheme = akf_schemes[data[0] % (sizeof(akf_schemes) / sizeof(char *))];
    slen = strlen(scheme);

    data++;
    size--;

    value = malloc(size ? size : 1);
    if (value == NULL) {
        return 0;
    }

    memcpy(value, data, size);

    /* header=NAME: the value is the key */

    kind = akc_key_classify(value, size);

    if (kind != AKC_KEY_INVALID) {
        (void) akc_key_hint(value, size, hint);
    }

    /* authorization=SCHEME */

    rc = akc_auth_parse(value, size, scheme, slen, &key);

    if (rc == AKC_OK) {

        /* blanks, the scheme, then a blank or nothing, then the key */

        for (skip = 0; skip < size && akf_blank(value[skip]); skip++) {
            /* void */
        }

        akf_assert(size - skip >= slen);
        akf_assert(strncasecmp((char *) value + skip, scheme, slen) == 0);
        akf_assert(size - skip == slen || akf_blank(value[skip + slen]));

        akf_assert((unsigned char *) key.data >= value + skip + slen);
        akf_assert((unsigned char *) key.data + key.len <= value + size);

        if (key.len > 0) {
            akf_assert(!akf_blank(key.data[0]));
            akf_assert(!akf_blank(key.data[key.len - 1]));
        }

        kind = akc_key_classify((unsigned char *) key.data, key.len);

        if (kind != AKC_KEY_INVALID) {
            akf_assert(key.len >= AKC_KEY_MIN_LEN
                       && key.len <= AKC_KEY_MAX_LEN);

            (void) akc_key_hint((unsigned char *) key.data, key.len, hint);
        }

    } else {
        akf_assert(rc == AKC_ERROR);
    }

    free(value);

    return 0;
}
