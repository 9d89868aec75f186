
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl rotate.
 */


#include "actl.h"


int
actl_cmd_rotate(actl_ctx_t *ctx, int argc, char **argv)
{
    actl_error(ctx, "not built yet");
    return ACTL_FAIL;
}
