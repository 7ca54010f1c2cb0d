/*-------------------------------------------------------------------------
 *
 * wf.c
 *		The workflow of bench/workflow.sh, in C with include/fx.h.
 *
 * One session function; args {"op": ...} say what it does:
 *
 *	{"op": "steps", "n": N}
 *		N no-op inline steps (fx_run "noop", output null), then returns
 *		null: n 0 is the "0-step workflow", n 10 the "10-step" one.
 *	{"op": "steps", "n": N, "call": true}
 *		N steps that each call the function "noop" as a child invocation
 *		(fx_call, args {}), which runs in its own sandbox.
 *	{"op": "recv"}
 *		sets the event "waiting" to true, waits for a message on the topic
 *		"go" (up to args.timeout_ms, 30000) and returns {"t": US}, the wall
 *		clock right after fx_recv returned.
 *	{"op": "event"}
 *		waits for a message on "go" (up to args.timeout_ms, 30000), then
 *		reads the wall clock T0 and sets the event "k" to T0 (also its
 *		result).
 *	{"op": "sleep", "ms": MS}
 *		an inline step "start" records the wall clock, then fx_sleep(MS);
 *		returns {"first": US, "local": US, "replayed": BOOL}: the time from
 *		the recorded start (the first run's, when the sleep outlived the
 *		worker's wait grace and the workflow was replayed) to the return of
 *		fx_sleep, and from a reading taken just before fx_sleep in this run.
 *
 * Times are microseconds of CLOCK_REALTIME, the clock the client reads too
 * (the sandbox shares the host's clock).  A step that fails fails the
 * invocation, not retried; an error reply fails the attempt, retried; an
 * evicted step (SQLSTATE FXW02) returns at once, and the SDK answers for it.
 *
 *	cc -Wall -Wextra -Werror -O2 -I include -o wf bench/wf/wf.c -lcjson
 *	fx deploy wf DIR --cmd ./wf --mode session
 *
 *-------------------------------------------------------------------------
 */
#include <time.h>

#include <fx.h>

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double) ts.tv_sec * 1e6 + (double) (ts.tv_nsec / 1000);
}

/* args.name if it is a number, else dflt. */
static double
num(const cJSON *args, const char *name, double dflt)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(args, name);

	return cJSON_IsNumber(item) ? item->valuedouble : dflt;
}

/*
 * A step went wrong.  Evicted: return, the SDK answers.  A failed step (no
 * SQLSTATE) or a nondeterministic replay (FXW01) fails the invocation for
 * good; any other error reply (the worker could not serve the request)
 * fails the attempt, to be retried by the function's policy, as an
 * application would.
 */
static cJSON *
give_up(fx_ctx *ctx, const char *what)
{
	const char *sqlstate = fx_sqlstate(ctx);
	char		detail[256];

	if (sqlstate != NULL && strcmp(sqlstate, "FXW02") == 0)
		return NULL;
	snprintf(detail, sizeof(detail), "%s: SQLSTATE %s; %s", what,
			 sqlstate ? sqlstate : "-",
			 fx_error_detail(ctx) ? fx_error_detail(ctx) : "no detail");
	fx_fail(ctx, fx_error(ctx) ? fx_error(ctx) : "step failed", detail,
			sqlstate != NULL && strcmp(sqlstate, "FXW01") != 0);
	return NULL;
}

static cJSON *
noop_step(fx_ctx *ctx, void *arg)
{
	(void) ctx;
	(void) arg;
	return NULL;
}

/* Records the wall clock; *(int *) arg notes that the code really ran. */
static cJSON *
start_step(fx_ctx *ctx, void *arg)
{
	(void) ctx;
	*(int *) arg = 1;
	return cJSON_CreateNumber(now_us());
}

static cJSON *
steps(fx_ctx *ctx, const cJSON *args)
{
	int			n = (int) num(args, "n", 0);
	int			call = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(args, "call"));
	cJSON	   *empty = cJSON_CreateObject();
	cJSON	   *out;
	int			i;

	for (i = 0; i < n; i++)
	{
		out = call ? fx_call(ctx, "noop", empty)
			: fx_run(ctx, "noop", noop_step, NULL);
		if (out == NULL)
			break;
		cJSON_Delete(out);
	}
	cJSON_Delete(empty);
	return i < n ? give_up(ctx, call ? "call noop" : "run noop") : NULL;
}

static cJSON *
recv_op(fx_ctx *ctx, const cJSON *args)
{
	cJSON	   *yes = cJSON_CreateTrue();
	cJSON	   *msg = NULL;
	cJSON	   *res;
	double		t;
	int			ok = fx_set_event(ctx, "waiting", yes);

	cJSON_Delete(yes);
	if (!ok)
		return give_up(ctx, "set_event waiting");
	msg = fx_recv(ctx, "go", (long long) num(args, "timeout_ms", 30000));
	t = now_us();
	if (msg == NULL)
		return give_up(ctx, "recv go");
	if (cJSON_IsNull(msg))
	{
		cJSON_Delete(msg);
		fx_fail(ctx, "no message on \"go\" within the timeout", NULL, 0);
		return NULL;
	}
	cJSON_Delete(msg);
	res = cJSON_CreateObject();
	cJSON_AddNumberToObject(res, "t", t);
	return res;
}

static cJSON *
event_op(fx_ctx *ctx, const cJSON *args)
{
	cJSON	   *msg = fx_recv(ctx, "go", (long long) num(args, "timeout_ms", 30000));
	cJSON	   *t0;

	if (msg == NULL)
		return give_up(ctx, "recv go");
	if (cJSON_IsNull(msg))
	{
		cJSON_Delete(msg);
		fx_fail(ctx, "no message on \"go\" within the timeout", NULL, 0);
		return NULL;
	}
	cJSON_Delete(msg);
	t0 = cJSON_CreateNumber(now_us());
	if (!fx_set_event(ctx, "k", t0))
	{
		cJSON_Delete(t0);
		return give_up(ctx, "set_event k");
	}
	return t0;
}

static cJSON *
sleep_op(fx_ctx *ctx, const cJSON *args)
{
	long long	ms = (long long) num(args, "ms", 100);
	int			ran = 0;
	cJSON	   *start = fx_run(ctx, "start", start_step, &ran);
	cJSON	   *res;
	double		first;
	double		local;
	double		t;

	if (start == NULL)
		return give_up(ctx, "run start");
	first = cJSON_IsNumber(start) ? start->valuedouble : 0;
	cJSON_Delete(start);
	local = now_us();
	if (!fx_sleep(ctx, ms))
		return give_up(ctx, "sleep");
	t = now_us();
	res = cJSON_CreateObject();
	cJSON_AddNumberToObject(res, "first", t - first);
	cJSON_AddNumberToObject(res, "local", t - local);
	cJSON_AddBoolToObject(res, "replayed", !ran);
	return res;
}

static cJSON *
wf(fx_ctx *ctx, const cJSON *args)
{
	const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(args, "op"));

	if (op == NULL)
		op = "";
	if (strcmp(op, "steps") == 0)
		return steps(ctx, args);
	if (strcmp(op, "recv") == 0)
		return recv_op(ctx, args);
	if (strcmp(op, "event") == 0)
		return event_op(ctx, args);
	if (strcmp(op, "sleep") == 0)
		return sleep_op(ctx, args);
	fx_fail(ctx, "unknown op", op, 0);
	return NULL;
}

int
main(void)
{
	return fx_main(wf);
}
