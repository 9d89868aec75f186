
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * libFuzzer target: record decoding, as the module and apikeyctl decode
 * whatever a key's value in the database holds.  A record that decodes
 * must encode again to exactly the same bytes (one encoding per record)
 * and decode again to the same fields; its status, scopes and times are
 * used as the module uses them.
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

static void akf_str_equal(const akc_str_t *a, const akc_str_t *b);


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return akc_init();
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             n;
    char            t[AKC_TIME_LEN + 1];
    unsigned char  *buf, out[AKC_RECORD_MAX_LEN];
    akc_record_t    rec, again;
    akc_status_e    status;

    /* an exact copy: the sanitizers see any read past the end */

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }

    memcpy(buf, data, size);

    if (akc_record_decode(&rec, buf, size) != AKC_OK) {
        free(buf);
        return 0;
    }

    akf_assert(rec.id.len > 0);
    akf_assert(akc_record_size(&rec) == size);
    akf_assert((unsigned char *) rec.strings.data
               == buf + AKC_RECORD_HEADER_LEN);
    akf_assert(rec.strings.len == size - AKC_RECORD_HEADER_LEN);

    /* what decodes encodes to the same bytes */

    n = akc_record_encode(&rec, out, sizeof(out));

    akf_assert(n == (int) size);
    akf_assert(memcmp(out, buf, size) == 0);

    akf_assert(akc_record_decode(&again, out, n) == AKC_OK);
    akf_assert(again.created == rec.created
               && again.not_before == rec.not_before
               && again.expires == rec.expires
               && again.flags == rec.flags);

    akf_str_equal(&again.id, &rec.id);
    akf_str_equal(&again.subject, &rec.subject);
    akf_str_equal(&again.scopes, &rec.scopes);
    akf_str_equal(&again.plan, &rec.plan);
    akf_str_equal(&again.hint, &rec.hint);

    /* as the module uses it */

    status = akc_record_status(&rec, 1767225600);
    akf_assert(status >= AKC_STATUS_VALID && status <= AKC_STATUS_DISABLED);
    (void) akc_status_name(status);

    (void) akc_scopes_contain(&rec.scopes, "read", 4);
    (void) akc_scopes_contain(&rec.scopes, rec.plan.data, rec.plan.len);

    akf_assert(akc_time_format(rec.expires, t) <= AKC_TIME_LEN);
    akf_assert(akc_time_format(rec.not_before, t) <= AKC_TIME_LEN);
    akf_assert(akc_time_format(rec.created, t) <= AKC_TIME_LEN);

    free(buf);

    return 0;
}


static void
akf_str_equal(const akc_str_t *a, const akc_str_t *b)
{
    akf_assert(a->len == b->len);
    akf_assert(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}
