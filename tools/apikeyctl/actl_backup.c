
/*
 * Copyright (C) ngx_http_apikey_module developers
 *
 * apikeyctl backup, restore.
 */


#include "actl.h"


int
actl_cmd_backup(actl_ctx_t *ctx, int argc, char **argv)
{
    actl_error(ctx, "not built yet");
    return ACTL_FAIL;
}


int
actl_cmd_restore(actl_ctx_t *ctx, int argc, char **argv)
{
    actl_error(ctx, "not built yet");
    return ACTL_FAIL;
}
