/*-------------------------------------------------------------------------
 *
 * counter.c
 *		The keyed function of bench/keyed.sh: adds 1 to its key's state.
 *
 * Each invocation reads the state of its key with fx_state_get() (a number,
 * or null before the first one), writes the number plus one with
 * fx_state_set() and returns it.  The worker records the new state with the
 * invocation's completion, so after N successful invocations the states of
 * all keys add up to N, which keyed.sh checks.  Invoked without a key it
 * fails: the state requests need one.
 *
 *	cc -O2 -Wall -Wextra -Werror -I include -o counter bench/keyed/counter.c -lcjson
 *	fx deploy counter DIR --cmd ./counter --mode session
 *	SELECT fx_invoke('counter', '{}', key => 'hot');
 *
 *-------------------------------------------------------------------------
 */
#include <fx.h>

static cJSON *
counter(fx_ctx *ctx, const cJSON *args)
{
	cJSON	   *state;
	cJSON	   *next;

	(void) args;
	if ((state = fx_state_get(ctx)) == NULL)
	{
		fx_fail(ctx, fx_error(ctx), NULL, 1);
		return NULL;
	}
	next = cJSON_CreateNumber(cJSON_IsNumber(state) ? state->valuedouble + 1 : 1);
	cJSON_Delete(state);
	if (!fx_state_set(ctx, next))
	{
		fx_fail(ctx, fx_error(ctx), NULL, 1);
		cJSON_Delete(next);
		return NULL;
	}
	return next;
}

int
main(void)
{
	return fx_main(counter);
}
