/*
 * echo.c: a session-mode function (docs/protocol.md) that answers every
 * invoke with its args, through the C SDK.  bench/sandbox.sh times round
 * trips with it, in a sandbox and as a plain process.
 */
#include <fx.h>

static cJSON *
echo(fx_ctx *ctx, const cJSON *args)
{
	(void) ctx;
	return cJSON_Duplicate(args, 1);
}

int
main(void)
{
	return fx_main(echo);
}
