/*
 * tests/sdk/requests.c: a function that sends requests through include/fx.h,
 * run by fake_worker.py's "requests" suite (tests/sdk/run.sh builds it).
 * args {"op": ...} say what it does; tests/sdk/requests.py does the same in
 * Python, so both answer alike:
 *
 *	counter		n = state or 0, set the state to n + 1, return n
 *	delete		delete the state, return the state read back
 *	sql			run args.query with args.params (NULL if absent) twice,
 *				return {"rows": the first's rows, "result": the second}
 *	catch		run "select * from fail", then "select 1"; return the first's
 *				error and sqlstate, the second's rows and whether the error
 *				was cleared
 *	uncaught	run "select * from fail" and fail with its error
 *	all			try each request, return [[ok, error, sqlstate], ...]
 */
#include <fx.h>

static cJSON *
op_counter(fx_ctx *ctx)
{
	cJSON	   *state = fx_state_get(ctx);
	double		n = cJSON_IsNumber(state) ? state->valuedouble : 0;
	cJSON	   *next = cJSON_CreateNumber(n + 1);
	cJSON	   *result = NULL;

	if (state != NULL && fx_state_set(ctx, next))
		result = cJSON_CreateNumber(n);
	else
		fx_fail(ctx, fx_error(ctx), fx_sqlstate(ctx), 1);
	cJSON_Delete(state);
	cJSON_Delete(next);
	return result;
}

static cJSON *
op_delete(fx_ctx *ctx)
{
	if (!fx_state_delete(ctx))
	{
		fx_fail(ctx, fx_error(ctx), fx_sqlstate(ctx), 1);
		return NULL;
	}
	return fx_state_get(ctx);
}

static cJSON *
op_sql(fx_ctx *ctx, const cJSON *args)
{
	const cJSON *query = cJSON_GetObjectItemCaseSensitive(args, "query");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(args, "params");
	cJSON	   *first = fx_sql(ctx, query->valuestring, params);
	cJSON	   *result = cJSON_CreateObject();

	cJSON_AddItemToObject(result, "rows",
						  cJSON_DetachItemFromObject(first, "rows"));
	cJSON_AddItemToObject(result, "result",
						  fx_sql(ctx, query->valuestring, params));
	cJSON_Delete(first);
	return result;
}

static cJSON *
op_catch(fx_ctx *ctx)
{
	cJSON	   *res = fx_sql(ctx, "select * from fail", NULL);
	cJSON	   *result = cJSON_CreateObject();

	cJSON_AddBoolToObject(result, "null", res == NULL);
	cJSON_AddStringToObject(result, "error", fx_error(ctx));
	cJSON_AddStringToObject(result, "sqlstate", fx_sqlstate(ctx));
	cJSON_Delete(res);
	res = fx_sql(ctx, "select 1", NULL);
	cJSON_AddItemToObject(result, "then",
						  cJSON_DetachItemFromObject(res, "rows"));
	cJSON_AddBoolToObject(result, "cleared",
						  fx_error(ctx) == NULL && fx_sqlstate(ctx) == NULL);
	cJSON_Delete(res);
	return result;
}

static cJSON *
op_uncaught(fx_ctx *ctx)
{
	cJSON	   *res = fx_sql(ctx, "select * from fail", NULL);

	if (res == NULL)
		fx_fail(ctx, fx_error(ctx), fx_sqlstate(ctx), 1);
	return res;
}

/* [ok, error, sqlstate] for one request's outcome. */
static void
add_outcome(cJSON *list, fx_ctx *ctx, bool ok)
{
	cJSON	   *item = cJSON_CreateArray();

	cJSON_AddItemToArray(item, cJSON_CreateBool(ok));
	cJSON_AddItemToArray(item, fx_error(ctx) ? cJSON_CreateString(fx_error(ctx))
						 : cJSON_CreateNull());
	cJSON_AddItemToArray(item, fx_sqlstate(ctx)
						 ? cJSON_CreateString(fx_sqlstate(ctx))
						 : cJSON_CreateNull());
	cJSON_AddItemToArray(list, item);
}

static cJSON *
op_all(fx_ctx *ctx)
{
	cJSON	   *list = cJSON_CreateArray();
	cJSON	   *value = cJSON_CreateObject();
	cJSON	   *res;

	res = fx_state_get(ctx);
	add_outcome(list, ctx, res != NULL);
	cJSON_Delete(res);
	add_outcome(list, ctx, fx_state_set(ctx, value));
	add_outcome(list, ctx, fx_state_delete(ctx));
	res = fx_sql(ctx, "select 1", NULL);
	add_outcome(list, ctx, res != NULL);
	cJSON_Delete(res);
	cJSON_Delete(value);
	return list;
}

static cJSON *
requests(fx_ctx *ctx, const cJSON *args)
{
	const char *op = cJSON_GetStringValue(
		cJSON_GetObjectItemCaseSensitive(args, "op"));

	if (op == NULL)
		op = "";
	if (strcmp(op, "counter") == 0)
		return op_counter(ctx);
	if (strcmp(op, "delete") == 0)
		return op_delete(ctx);
	if (strcmp(op, "sql") == 0)
		return op_sql(ctx, args);
	if (strcmp(op, "catch") == 0)
		return op_catch(ctx);
	if (strcmp(op, "uncaught") == 0)
		return op_uncaught(ctx);
	if (strcmp(op, "all") == 0)
		return op_all(ctx);
	fx_fail(ctx, "unknown op", op, 0);
	return NULL;
}

int
main(void)
{
	return fx_main(requests);
}
