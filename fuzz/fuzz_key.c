
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: key classification and the checksum.  Every input
 * is classified as a presented key; a key of the generated shape is
 * checked against its own checksum recomputed, and given a correct
 * checksum it must classify as generated; the hint of any acceptable
 * key stays within its bounds.  The input's head is also tried as a
 * prefix for akc_key_generate().
 */


#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apikey_core.h"


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
    int             n;
    char            sum[AKC_CHECKSUM_LEN], hint[AKC_HINT_MAX_LEN + 1];
    char            prefix[AKC_PREFIX_MAX_LEN + 2];
    char            gen[AKC_GEN_KEY_MAX_LEN + 1];
    size_t          len, plen;
    unsigned char  *key;
    akc_key_kind_e  kind;

    /* an exact copy: the sanitizers see any read past the end */

    key = malloc(size ? size : 1);
    if (key == NULL) {
        return 0;
    }

    memcpy(key, data, size);

    kind = akc_key_classify(key, size);

    if (kind == AKC_KEY_GENERATED || kind == AKC_KEY_BAD_CHECKSUM) {
        akf_assert(size > AKC_GEN_TAIL_LEN + 1);
        akf_assert(key[size - AKC_GEN_TAIL_LEN - 1] == '_');
        akf_assert(akc_prefix_valid((char *) key,
                                    size - AKC_GEN_TAIL_LEN - 1));

        akc_checksum(key, size - AKC_CHECKSUM_LEN, sum);

        akf_assert((memcmp(sum, key + size - AKC_CHECKSUM_LEN,
                           AKC_CHECKSUM_LEN) == 0)
                   == (kind == AKC_KEY_GENERATED));

        /* the same key with its checksum put right */

        memcpy(key + size - AKC_CHECKSUM_LEN, sum, AKC_CHECKSUM_LEN);
        akf_assert(akc_key_classify(key, size) == AKC_KEY_GENERATED);
        memcpy(key, data, size);
    }

    if (kind != AKC_KEY_INVALID) {
        akf_assert(size >= AKC_KEY_MIN_LEN && size <= AKC_KEY_MAX_LEN);

        len = akc_key_hint(key, size, hint);

        akf_assert(len <= AKC_HINT_MAX_LEN);
        akf_assert(len > 3 && memcmp(hint + len - 3, "...", 4) == 0);
        akf_assert(memcmp(hint, key, len - 3) == 0);
    }

    /* the head of the input as a prefix for a generated key */

    plen = size < sizeof(prefix) - 1 ? size : sizeof(prefix) - 1;
    memcpy(prefix, data, plen);
    prefix[plen] = '\0';
    plen = strlen(prefix);

    n = akc_key_generate(prefix, gen, sizeof(gen));

    if (akc_prefix_valid(prefix, plen)) {
        akf_assert(n == (int) (plen + 1 + AKC_GEN_TAIL_LEN));
        akf_assert(akc_key_classify((unsigned char *) gen, n)
                   == AKC_KEY_GENERATED);

    } else {
        akf_assert(n == AKC_ERROR);
    }

    free(key);

    return 0;
}
