/*-------------------------------------------------------------------------
 *
 * sql1.c
 *		One SQL round trip per invocation, for bench/keyed.sh.
 *
 * Runs "SELECT 1" through fx_sql() and returns null.  The statement runs in
 * the invocation's own transaction, which the worker opens at this first
 * request (as the role named at deploy) and commits with the completion;
 * timed against bench/noop, the difference is what co-located SQL costs.
 *
 *	cc -O2 -Wall -Wextra -Werror -I include -o sql1 bench/keyed/sql1.c -lcjson
 *	fx deploy sql1 DIR --cmd ./sql1 --mode session
 *	SELECT fx_deploy('sql1', fx.bundle('sql1', 1), ARRAY['./sql1'],
 *					 '{"mode": "session", "role": "bench_fn"}');
 *
 *-------------------------------------------------------------------------
 */
#include <fx.h>

static cJSON *
sql1(fx_ctx *ctx, const cJSON *args)
{
	cJSON	   *res;

	(void) args;
	if ((res = fx_sql(ctx, "SELECT 1", NULL)) == NULL)
	{
		fx_fail(ctx, fx_error(ctx), NULL, 1);
		return NULL;
	}
	cJSON_Delete(res);
	return NULL;
}

int
main(void)
{
	return fx_main(sql1);
}
