
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl check.
 */


#include "actl.h"


int
actl_cmd_check(actl_ctx_t *ctx, int argc, char **argv)
{
    actl_error(ctx, "not built yet");
    return ACTL_FAIL;
}
