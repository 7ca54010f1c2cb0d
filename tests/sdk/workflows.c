/*
 * tests/sdk/workflows.c: a workflow function using include/fx.h, run by
 * fake_worker.py's "workflows" suite (tests/sdk/run.sh builds it).  args
 * {"op": ...} say what it does; tests/sdk/workflows.py does the same in
 * Python, so both answer alike.  "ran" counts how often step code really
 * ran during the invocation.
 *
 *	run			fx_run "add" with args.a and args.b: {"output": {"sum": a + b},
 *				"ran"}
 *	other		the same, but the step is named "other"
 *	fail		fx_run "charge", whose code fails with "card declined",
 *				detail "ValueError": {"error", "detail", "sqlstate", "ran"}
 *	null		fx_run "nothing", whose output is null: {"is_null", "ran"}
 *	mixed		every kind of step, in order: run "add" (20 + 1), call
 *				"double" {"n": 21}, start "double" {"n": 5}, sleep 1500 ms,
 *				recv "paid" (2500 ms), recv "late" (250 ms), recv "paid"
 *				(for ever), send {"x": 1} to 77 on "paid", set_event "status"
 *				"shipped", await the child; returns the outputs and the
 *				workflow id
 *	call_fail	call "fail" without args: [error, detail]
 *	big			fx_run "big", whose output is 2000 x's: [error, sqlstate]
 *	evict		sleep 60 s, then set_event and sql; notes each one's
 *				[error, sqlstate] and returns "ignored"
 *	evict_plain	sleep 60 s, return "woke"
 *	notes		the notes "evict" took
 *	simple		fx_run "add" in simple mode: [error, sqlstate, ran]
 *
 * A request that fails unexpectedly fails the invocation as workflows.py's
 * uncaught exceptions do: a failed step with its detail and an FXW01 reply
 * with detail "SQLSTATE FXW01", both not retryable; any other error reply
 * with "SQLSTATE <code>", retryable.
 */
#include <fx.h>

static int	ran;
static cJSON *notes;

static cJSON *
give_up(fx_ctx *ctx, cJSON *result)
{
	const char *sqlstate = fx_sqlstate(ctx);
	char		detail[32];

	cJSON_Delete(result);
	if (sqlstate == NULL)
	{
		fx_fail(ctx, fx_error(ctx), fx_error_detail(ctx), 0);
		return NULL;
	}
	snprintf(detail, sizeof(detail), "SQLSTATE %s", sqlstate);
	fx_fail(ctx, fx_error(ctx), detail, strcmp(sqlstate, "FXW01") != 0);
	return NULL;
}

static cJSON *
add(fx_ctx *ctx, void *arg)
{
	const cJSON *args = arg;
	cJSON	   *sum = cJSON_CreateObject();

	(void) ctx;
	ran++;
	cJSON_AddNumberToObject(sum, "sum",
							cJSON_GetObjectItem(args, "a")->valuedouble +
							cJSON_GetObjectItem(args, "b")->valuedouble);
	return sum;
}

static cJSON *
decline(fx_ctx *ctx, void *arg)
{
	(void) arg;
	ran++;
	fx_fail(ctx, "card declined", "ValueError", 1);
	return cJSON_CreateString("dropped");	/* fx_fail wins */
}

static cJSON *
nothing(fx_ctx *ctx, void *arg)
{
	(void) ctx;
	(void) arg;
	ran++;
	return NULL;
}

static cJSON *
big(fx_ctx *ctx, void *arg)
{
	char		text[2001];

	(void) ctx;
	(void) arg;
	memset(text, 'x', 2000);
	text[2000] = '\0';
	return cJSON_CreateString(text);
}

static cJSON *
op_run(fx_ctx *ctx, const cJSON *args, const char *name)
{
	cJSON	   *output = fx_run(ctx, name, add, (void *) args);
	cJSON	   *result = cJSON_CreateObject();

	if (output == NULL)
		return give_up(ctx, result);
	cJSON_AddItemToObject(result, "output", output);
	return result;
}

static cJSON *
op_fail(fx_ctx *ctx)
{
	cJSON	   *output = fx_run(ctx, "charge", decline, NULL);
	cJSON	   *result = cJSON_CreateObject();

	if (output != NULL)
	{
		cJSON_Delete(output);
		cJSON_AddNullToObject(result, "error");
		return result;
	}
	cJSON_AddStringToObject(result, "error", fx_error(ctx));
	cJSON_AddStringToObject(result, "detail", fx_error_detail(ctx));
	if (fx_sqlstate(ctx))
		cJSON_AddStringToObject(result, "sqlstate", fx_sqlstate(ctx));
	else
		cJSON_AddNullToObject(result, "sqlstate");
	return result;
}

static cJSON *
op_null(fx_ctx *ctx)
{
	cJSON	   *output = fx_run(ctx, "nothing", nothing, NULL);
	cJSON	   *result = cJSON_CreateObject();

	if (output == NULL)
		return give_up(ctx, result);
	cJSON_AddBoolToObject(result, "is_null", cJSON_IsNull(output));
	cJSON_Delete(output);
	return result;
}

/* Add output to result as name; false if it is NULL (a failed request). */
static bool
keep(cJSON *result, const char *name, cJSON *output)
{
	if (output == NULL)
		return false;
	cJSON_AddItemToObject(result, name, output);
	return true;
}

static cJSON *
op_mixed(fx_ctx *ctx)
{
	cJSON	   *result = cJSON_CreateObject();
	cJSON	   *args = cJSON_CreateObject();
	cJSON	   *payload = cJSON_CreateObject();
	cJSON	   *event = cJSON_CreateString("shipped");
	long long	child = -1;
	bool		ok;

	cJSON_AddNumberToObject(args, "a", 20);
	cJSON_AddNumberToObject(args, "b", 1);
	ok = keep(result, "add", fx_run(ctx, "add", add, args));
	cJSON_DeleteItemFromObject(args, "a");
	cJSON_DeleteItemFromObject(args, "b");
	cJSON_AddNumberToObject(args, "n", 21);
	ok = ok && keep(result, "call", fx_call(ctx, "double", args));
	cJSON_ReplaceItemInObject(args, "n", cJSON_CreateNumber(5));
	ok = ok && (child = fx_start(ctx, "double", args)) >= 0;
	if (ok)
		cJSON_AddNumberToObject(result, "child", (double) child);
	ok = ok && fx_sleep(ctx, 1500);
	ok = ok && keep(result, "recv", fx_recv(ctx, "paid", 2500));
	ok = ok && keep(result, "timeout", fx_recv(ctx, "late", 250));
	ok = ok && keep(result, "forever", fx_recv(ctx, "paid", -1));
	cJSON_AddNumberToObject(payload, "x", 1);
	ok = ok && fx_send(ctx, 77, "paid", payload);
	ok = ok && fx_set_event(ctx, "status", event);
	ok = ok && keep(result, "awaited", fx_await(ctx, child));
	cJSON_AddNumberToObject(result, "workflow_id",
							(double) fx_workflow_id(ctx));
	cJSON_Delete(args);
	cJSON_Delete(payload);
	cJSON_Delete(event);
	return ok ? result : give_up(ctx, result);
}

static cJSON *
op_call_fail(fx_ctx *ctx)
{
	cJSON	   *output = fx_call(ctx, "fail", NULL);
	cJSON	   *result = cJSON_CreateArray();

	if (output != NULL)
	{
		cJSON_Delete(output);
		return result;
	}
	cJSON_AddItemToArray(result, cJSON_CreateString(fx_error(ctx)));
	cJSON_AddItemToArray(result, cJSON_CreateString(fx_error_detail(ctx)));
	return result;
}

/* [error, sqlstate] of the last request, null for NULL. */
static cJSON *
error_pair(fx_ctx *ctx)
{
	cJSON	   *pair = cJSON_CreateArray();

	cJSON_AddItemToArray(pair, fx_error(ctx)
						 ? cJSON_CreateString(fx_error(ctx))
						 : cJSON_CreateNull());
	cJSON_AddItemToArray(pair, fx_sqlstate(ctx)
						 ? cJSON_CreateString(fx_sqlstate(ctx))
						 : cJSON_CreateNull());
	return pair;
}

static cJSON *
op_big(fx_ctx *ctx)
{
	cJSON	   *output = fx_run(ctx, "big", big, NULL);

	if (output != NULL)
	{
		cJSON_Delete(output);
		return cJSON_CreateNull();
	}
	return fx_sqlstate(ctx) ? error_pair(ctx)
		: cJSON_CreateString("a step error");
}

static cJSON *
op_evict(fx_ctx *ctx)
{
	cJSON	   *one = cJSON_CreateNumber(1);
	cJSON	   *res;

	cJSON_Delete(notes);
	notes = cJSON_CreateArray();
	if (!fx_sleep(ctx, 60000))
		cJSON_AddItemToArray(notes, error_pair(ctx));
	if (!fx_set_event(ctx, "after", one))
		cJSON_AddItemToArray(notes, error_pair(ctx));
	if ((res = fx_sql(ctx, "select 1", NULL)) == NULL)
		cJSON_AddItemToArray(notes, error_pair(ctx));
	cJSON_Delete(res);
	cJSON_Delete(one);
	return cJSON_CreateString("ignored");
}

static cJSON *
op_evict_plain(fx_ctx *ctx)
{
	if (!fx_sleep(ctx, 60000))
		return give_up(ctx, NULL);
	return cJSON_CreateString("woke");
}

static cJSON *
op_notes(void)
{
	cJSON	   *result = notes ? notes : cJSON_CreateArray();

	notes = NULL;
	return result;
}

static cJSON *
op_simple(fx_ctx *ctx)
{
	int			before = ran;
	cJSON	   *args = cJSON_CreateObject();
	cJSON	   *output;
	cJSON	   *result;

	cJSON_AddNumberToObject(args, "a", 1);
	cJSON_AddNumberToObject(args, "b", 2);
	output = fx_run(ctx, "add", add, args);
	cJSON_Delete(args);
	if (output != NULL)
	{
		cJSON_Delete(output);
		return cJSON_CreateNull();
	}
	result = error_pair(ctx);
	cJSON_AddItemToArray(result, cJSON_CreateNumber(ran - before));
	return result;
}

/* The op's result with "ran" added, if it is an object. */
static cJSON *
counted(cJSON *result, int before)
{
	if (cJSON_IsObject(result))
		cJSON_AddNumberToObject(result, "ran", ran - before);
	return result;
}

static cJSON *
workflows(fx_ctx *ctx, const cJSON *args)
{
	const char *op = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(args, "op"));
	int			before = ran;

	if (op == NULL)
		op = "";
	if (strcmp(op, "run") == 0 || strcmp(op, "other") == 0)
		return counted(op_run(ctx, args, op[0] == 'r' ? "add" : "other"),
					   before);
	if (strcmp(op, "fail") == 0)
		return counted(op_fail(ctx), before);
	if (strcmp(op, "null") == 0)
		return counted(op_null(ctx), before);
	if (strcmp(op, "mixed") == 0)
		return op_mixed(ctx);
	if (strcmp(op, "call_fail") == 0)
		return op_call_fail(ctx);
	if (strcmp(op, "big") == 0)
		return op_big(ctx);
	if (strcmp(op, "evict") == 0)
		return op_evict(ctx);
	if (strcmp(op, "evict_plain") == 0)
		return op_evict_plain(ctx);
	if (strcmp(op, "notes") == 0)
		return op_notes();
	if (strcmp(op, "simple") == 0)
		return op_simple(ctx);
	fx_fail(ctx, "unknown op", op, 0);
	return NULL;
}

int
main(void)
{
	return fx_main(workflows);
}
