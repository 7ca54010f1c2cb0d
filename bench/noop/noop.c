/*-------------------------------------------------------------------------
 *
 * noop.c
 *		The no-op function of bench/run.sh, in C with include/fx.h.
 *
 * It returns null.  Args {"t": true} make it return {"t": US} instead, the
 * wall clock (CLOCK_REALTIME, microseconds since the epoch) when the
 * handler started, which is how run.sh times enqueue -> start: the sandbox
 * shares the host's clock.  The same binary serves both modes (fx_main
 * picks by FX_MODE): run.sh deploys it as a session function for the
 * throughput and latency scenarios and as a simple one for cold starts.
 *
 *	cc -O2 -I include -o noop bench/noop/noop.c -lcjson
 *	fx deploy noop DIR --cmd ./noop --mode session
 *
 *-------------------------------------------------------------------------
 */
#include <time.h>

#include <fx.h>

static cJSON *
noop(fx_ctx *ctx, const cJSON *args)
{
	struct timespec ts;
	cJSON	   *result;

	(void) ctx;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(args, "t")))
		return NULL;
	clock_gettime(CLOCK_REALTIME, &ts);
	result = cJSON_CreateObject();
	cJSON_AddNumberToObject(result, "t",
							(double) ts.tv_sec * 1e6 + ts.tv_nsec / 1000);
	return result;
}

int
main(void)
{
	return fx_main(noop);
}
