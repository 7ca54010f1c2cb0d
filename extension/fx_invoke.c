/*
 * fx_invoke.c: transactional enqueue.
 *
 * fx_invoke() is one INSERT into fx.invocation plus a NOTIFY on fx_wake;
 * fx_invoke_all() is the same for a batch, one INSERT for all.
 * Both take effect when the caller commits and vanish if it rolls back;
 * NOTIFYs with the same channel and payload are folded by PostgreSQL, so an
 * enqueue of 20,000 rows in one statement wakes the workers once.
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "fx.h"

PG_FUNCTION_INFO_V1(fx_invoke);
PG_FUNCTION_INFO_V1(fx_invoke_all);

static SPIPlanPtr by_version_plan = NULL;
static SPIPlanPtr by_alias_plan = NULL;
static SPIPlanPtr exists_plan = NULL;
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr insert_idem_plan = NULL;
static SPIPlanPtr insert_keyed_plan = NULL;
static SPIPlanPtr insert_keyed_idem_plan = NULL;
static SPIPlanPtr idem_plan = NULL;
static SPIPlanPtr may_plan = NULL;
static SPIPlanPtr insert_all_plan = NULL;

/*
 * Saved plans.  The inserts' plans are generic, made once per session: a
 * custom plan, made again on every call, would cost more than the rest of
 * an enqueue.  So are the lookups that resolve a function and check the
 * right to invoke it (planning them took 48 and 128 us of a single
 * fx_invoke's 270), run with sequential scans off (run_indexed) so that a
 * plan made while fx.function and fx.alias were small still finds rows
 * by key when they are not.  The rarer lookups in fx.invocation are
 * planned on each call, for the table as it is then; kept for the session,
 * a plan made for the queue at the session's first call (often an empty
 * one) could scan all of a full one.
 */
static SPIPlanPtr
keep_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types, int options)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, options);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/* Execute a saved plan with sequential scans off, also while it is (re)planned. */
static int
run_indexed(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only, long count)
{
	int			nest = NewGUCNestLevel();
	int			ret;

	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	ret = SPI_execute_plan(plan, values, nulls, read_only, count);
	AtEOXact_GUC(true, nest);	/* on error, the transaction's abort restores it */
	return ret;
}

static bool
is_all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char) *s))
			return false;
	return true;
}

static int
get_int(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row],
								  SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

/*
 * fx_invoke over a set resolves the same name once per row; remember the
 * last resolution for the rest of the statement (a deploy in between, in
 * this backend, forgets it).
 */
static struct
{
	char	   *ref;
	LocalTransactionId lxid;
	TimestampTz stmt;
	Oid			user;			/* the caller it was checked for */
	uint64		deploys;
	FxTarget	target;
}			last;

uint64		fx_deploy_count = 0;

static bool
cached(const char *ref, Oid user, FxTarget *target)
{
	if (last.ref == NULL || last.lxid != MyProc->lxid || last.user != user ||
		last.stmt != GetCurrentStatementStartTimestamp() ||
		last.deploys != fx_deploy_count || strcmp(last.ref, ref) != 0)
		return false;
	*target = last.target;
	target->fn = pstrdup(last.target.fn);
	return true;
}

static void
remember(const char *ref, Oid user, FxTarget *target)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	if (last.ref)
	{
		pfree(last.ref);
		pfree(last.target.fn);
	}
	last.ref = pstrdup(ref);
	last.lxid = MyProc->lxid;
	last.stmt = GetCurrentStatementStartTimestamp();
	last.deploys = fx_deploy_count;
	last.user = user;
	last.target = *target;
	last.target.fn = pstrdup(target->fn);
	MemoryContextSwitchTo(old);
}

/*
 * Resolve "name", "name:7" or "name:alias" to a version.  The bare name
 * means the alias "live", which every deploy moves to the new version.
 * Must be called inside SPI_connect().
 */
void
fx_resolve(const char *ref, FxTarget *target)
{
	char	   *fn = pstrdup(ref);
	char	   *qual = strchr(fn, ':');
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2];
	int			ret;

	if (qual)
		*qual++ = '\0';
	if (*fn == '\0' || (qual && *qual == '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid function reference \"%s\"", ref),
				 errhint("Use \"name\", \"name:version\" or \"name:alias\".")));

	values[0] = CStringGetTextDatum(fn);
	if (qual && is_all_digits(qual))
	{
		/* A number too large for a version simply matches none. */
		values[1] = Int32GetDatum(strlen(qual) > 9 ? -1 : pg_strtoint32(qual));
		ret = run_indexed(keep_plan(&by_version_plan,
									"SELECT version, retries, timeout_ms FROM fx.version"
									" WHERE fn = $1 AND version = $2",
									2, types, CURSOR_OPT_GENERIC_PLAN),
						  values, NULL, true, 1);
	}
	else
	{
		types[1] = TEXTOID;
		values[1] = CStringGetTextDatum(qual ? qual : "live");
		ret = run_indexed(keep_plan(&by_alias_plan,
									"SELECT v.version, v.retries, v.timeout_ms"
									" FROM fx.alias a JOIN fx.version v"
									" ON v.fn = a.fn AND v.version = a.version"
									" WHERE a.fn = $1 AND a.alias = $2",
									2, types, CURSOR_OPT_GENERIC_PLAN),
						  values, NULL, true, 1);
	}
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "resolving function failed: %s", SPI_result_code_string(ret));

	if (SPI_processed == 0)
	{
		ret = run_indexed(keep_plan(&exists_plan,
									"SELECT 1 FROM fx.function WHERE name = $1",
									1, types, CURSOR_OPT_GENERIC_PLAN),
						  values, NULL, true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("function \"%s\" is not deployed", fn),
					 errhint("Deploy it with fx_deploy() or \"fx deploy %s DIR\".", fn)));
		if (qual && is_all_digits(qual))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("function \"%s\" has no version %s", fn, qual),
					 errhint("SELECT * FROM fx.version_list WHERE fn = '%s' lists its versions.", fn)));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("function \"%s\" has no alias \"%s\"", fn, qual ? qual : "live"),
				 errhint("Point one at a version with fx_alias().")));
	}

	target->fn = fn;
	target->version = get_int(0, 1);
	target->retries = get_int(0, 2);
	target->timeout_ms = get_int(0, 3);
}

/* The first two arguments (a function name, then what) must not be null. */
void
fx_require_args(FunctionCallInfo fcinfo, const char *what)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("function name must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what),
				 strcmp(what, "args") == 0 ?
				 errhint("Pass '{}' or 'null'::jsonb for no arguments.") : 0));
}

void
fx_check_payload(Jsonb *args, const char *what)
{
	Size		size = VARSIZE(args);

	if (size > (Size) fx_max_payload_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s of %zu bytes exceed the limit of %d bytes", what, size,
						fx_max_payload_size),
				 errdetail("The limit is set by fx.max_payload_size."),
				 errhint("Pass large data by reference, e.g. the key of a row.")));
}

static int
choose_bucket(const char *fn, text *key)
{
	if (key == NULL)
		return (int) (pg_prng_uint32(&pg_global_prng_state) & 4095);
	return (int) (DatumGetUInt64(DirectFunctionCall2Coll(hashtextextended,
														 DEFAULT_COLLATION_OID,
													 PointerGetDatum(cstring_to_text(psprintf("%s/%s", fn, text_to_cstring(key)))),
													 Int64GetDatum(0))) & 4095);
}

/* fx_call's loopback session waits for the invocations it makes. */
#define WAITER_SQL \
	"CASE WHEN current_setting('fx.sync_waiter')::bool THEN pg_backend_pid() END"

/* BLOCKED: whether an earlier invocation of its key holds it back. */
#define INSERT_SQL(BLOCKED) \
	"INSERT INTO fx.invocation (bucket, fn, version, key, queue," \
	" idempotency_key, args, priority, not_before, max_attempts, waiter, blocked," \
	" deadline, invoker)" \
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8," \
	" now() + coalesce($9, interval '0'), $10, " WAITER_SQL ", " BLOCKED \
	", now() + $11, $12)"
#define KEY_BUSY \
	"EXISTS (SELECT 1 FROM fx.invocation e" \
	" WHERE e.fn = $2 AND e.key = $4 AND e.status IN ('queued', 'running'))"
#define ON_IDEM_CONFLICT \
	" ON CONFLICT (fn, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"

static int64
insert_invocation(FxTarget *t, int bucket, Jsonb *args, Datum *opt, bool *optnull,
				  int32 priority, Oid invoker)
{
	Oid			types[12] = {INT4OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
	JSONBOID, INT4OID, INTERVALOID, INT4OID, INTERVALOID, REGROLEOID};
	Datum		values[12];
	char		nulls[12];
	bool		isnull;
	int			ret;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int32GetDatum(bucket);
	values[1] = CStringGetTextDatum(t->fn);
	values[2] = Int32GetDatum(t->version);
	values[3] = opt[0];			/* key */
	nulls[3] = optnull[0] ? 'n' : ' ';
	values[4] = opt[1];			/* queue */
	nulls[4] = optnull[1] ? 'n' : ' ';
	values[5] = opt[2];			/* idempotency key */
	nulls[5] = optnull[2] ? 'n' : ' ';
	values[6] = JsonbPGetDatum(args);
	values[7] = Int32GetDatum(priority);
	values[8] = opt[3];			/* delay */
	nulls[8] = optnull[3] ? 'n' : ' ';
	values[9] = Int32GetDatum(fx_sync_waiter ? 1 : t->retries + 1);
	values[10] = opt[4];		/* timeout */
	nulls[10] = optnull[4] ? 'n' : ' ';
	values[11] = ObjectIdGetDatum(invoker);

	/* Without an idempotency key there is no conflict to look for. */
	if (optnull[0])
		ret = SPI_execute_plan(optnull[2]
							   ? keep_plan(&insert_plan, INSERT_SQL("false") " RETURNING id",
										   12, types, CURSOR_OPT_GENERIC_PLAN)
							   : keep_plan(&insert_idem_plan,
										   INSERT_SQL("false") ON_IDEM_CONFLICT " RETURNING id",
										   12, types, CURSOR_OPT_GENERIC_PLAN),
							   values, nulls, false, 1);
	else
	{
		/*
		 * A keyed one looks for an earlier one of its key.  Its plan is
		 * generic too, made with sequential scans off: the lookup then
		 * goes through invocation_key however small the table was when
		 * the plan was made.
		 */
		ret = run_indexed(optnull[2]
						  ? keep_plan(&insert_keyed_plan, INSERT_SQL(KEY_BUSY) " RETURNING id",
									  12, types, CURSOR_OPT_GENERIC_PLAN)
						  : keep_plan(&insert_keyed_idem_plan,
									  INSERT_SQL(KEY_BUSY) ON_IDEM_CONFLICT " RETURNING id",
									  12, types, CURSOR_OPT_GENERIC_PLAN),
						  values, nulls, false, 1);
	}
	if (ret != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "enqueue failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		Async_Notify("fx_wake", NULL);
		return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	}

	/* The idempotency key was used before: return that invocation. */
	ret = SPI_execute_plan(keep_plan(&idem_plan,
									 "SELECT id FROM fx.invocation"
									 " WHERE fn = $2 AND idempotency_key = $6",
									 11, types, CURSOR_OPT_CUSTOM_PLAN),
						   values, nulls, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "invocation with idempotency key vanished");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}

/* The owner of schema fx: the extension's owner, who owns its tables. */
Oid
fx_owner(void)
{
	Oid			nsp = get_namespace_oid("fx", false);
	HeapTuple	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for schema fx");
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Whether role is a superuser or has the privileges of fx_admin (or, with
 * or_worker, of fx_worker).
 */
bool
fx_is_admin(Oid role, bool or_worker)
{
	if (superuser_arg(role) || has_privs_of_role(role, get_role_oid("fx_admin", false)))
		return true;
	return or_worker && has_privs_of_role(role, get_role_oid("fx_worker", false));
}

/*
 * Who may enqueue an invocation of fn: administrators and workers (members
 * of fx_admin or fx_worker), the function's owner and members of that
 * role, the roles it was granted to with fx_grant (and their members), and
 * the sql of the owner's functions (the role a version of one of them names
 * at deploy), so that a function can enqueue others in its own
 * transaction.  Superusers are not checked.  Runs as fx's owner, inside SPI.
 */
static void
check_may_invoke(const char *fn, Oid invoker)
{
	Oid			types[3] = {TEXTOID, OIDOID, TEXTOID};
	Datum		values[3];
	bool		isnull;
	int			ret;

	values[0] = CStringGetTextDatum(fn);
	values[1] = ObjectIdGetDatum(invoker);
	values[2] = CStringGetTextDatum(GetUserNameFromId(invoker, false));
	ret = run_indexed(keep_plan(&may_plan,
								"SELECT pg_has_role($2, 'fx_admin', 'USAGE')"
								" OR pg_has_role($2, 'fx_worker', 'USAGE')"
								" OR pg_has_role($2, f.owner, 'USAGE')"
								" OR EXISTS (SELECT 1 FROM fx.grant g WHERE g.fn = f.name"
								" AND (g.grantee = 0 OR pg_has_role($2, g.grantee::oid, 'USAGE')))"
								" OR EXISTS (SELECT 1 FROM fx.version v"
								" JOIN fx.function g ON g.name = v.fn"
								" WHERE g.owner = f.owner AND v.options->>'role' = $3),"
								" f.owner::text"
								" FROM fx.function f WHERE f.name = $1",
								3, types, CURSOR_OPT_GENERIC_PLAN),
					  values, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "checking the right to invoke \"%s\" failed", fn);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to invoke function \"%s\"", fn),
				 errdetail("Function \"%s\" belongs to role \"%s\", and role \"%s\" was not granted it.",
						   fn, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2),
						   GetUserNameFromId(invoker, false)),
				 errhint("Its owner or an administrator can run: SELECT fx_grant('%s', '%s');",
						 fn, GetUserNameFromId(invoker, false))));
}

/*
 * The role an enqueue is made for: the caller, or, when fx's own code
 * running as a worker, an administrator or a superuser set fx.invoke_as (a
 * schedule's owner, a token's, a workflow's invoker), that role.
 */
static Oid
invoker_of(Oid caller)
{
	if (fx_invoke_as == NULL || fx_invoke_as[0] == '\0')
		return caller;
	if (!fx_is_admin(caller, true))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set fx.invoke_as"),
				 errdetail("Only workers and administrators enqueue for another role."),
				 errhint("RESET fx.invoke_as;")));
	return get_role_oid(fx_invoke_as, false);
}

/* A delay must not be negative, a timeout must be positive (NULL: none). */
static void
check_delay_timeout(Datum delay, bool delay_null, Datum timeout, bool timeout_null)
{
	Datum		zero = IntervalPGetDatum(palloc0(sizeof(Interval)));

	if (!delay_null && DatumGetBool(DirectFunctionCall2(interval_lt, delay, zero)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delay must not be negative")));
	if (!timeout_null && !DatumGetBool(DirectFunctionCall2(interval_gt, timeout, zero)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be positive"),
				 errhint("timeout is how long the invocation may take from its enqueue to its end, e.g. '10 minutes'.")));
}

/*
 * Run as fx's owner from here to end_as_owner, once the right to invoke is
 * checked: callers other than superusers cannot read or write fx's tables.
 * An error on the way restores the caller at (sub)transaction abort.
 */
typedef struct AsOwner
{
	Oid			caller;
	int			sec;
	bool		switched;
} AsOwner;

static Oid
begin_as_owner(AsOwner *as)
{
	Oid			invoker;

	GetUserIdAndSecContext(&as->caller, &as->sec);
	invoker = invoker_of(as->caller);
	as->switched = !superuser_arg(as->caller);
	if (as->switched)
		SetUserIdAndSecContext(fx_owner(), as->sec | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
	return invoker;
}

static void
end_as_owner(AsOwner *as)
{
	if (as->switched)
		SetUserIdAndSecContext(as->caller, as->sec);
}

/*
 * fx_invoke(fn, args, key, delay, idempotency_key, queue, priority) -> id
 */
Datum
fx_invoke(PG_FUNCTION_ARGS)
{
	char	   *ref;
	Jsonb	   *args;
	Datum		opt[5];
	bool		optnull[5];
	int32		priority;
	FxTarget	target;
	int64		id;
	bool		hit;
	Oid			invoker;
	AsOwner		as;

	fx_require_args(fcinfo, "args");
	ref = text_to_cstring(PG_GETARG_TEXT_PP(0));
	args = PG_GETARG_JSONB_P(1);
	fx_check_payload(args, "args");

	optnull[0] = PG_ARGISNULL(2);	/* key */
	opt[0] = optnull[0] ? (Datum) 0 : PG_GETARG_DATUM(2);
	optnull[3] = PG_ARGISNULL(3);	/* delay */
	opt[3] = optnull[3] ? (Datum) 0 : PG_GETARG_DATUM(3);
	optnull[2] = PG_ARGISNULL(4);	/* idempotency key */
	opt[2] = optnull[2] ? (Datum) 0 : PG_GETARG_DATUM(4);
	optnull[1] = PG_ARGISNULL(5);	/* queue */
	opt[1] = optnull[1] ? (Datum) 0 : PG_GETARG_DATUM(5);
	priority = PG_ARGISNULL(6) ? 0 : PG_GETARG_INT32(6);
	optnull[4] = PG_NARGS() < 8 || PG_ARGISNULL(7);	/* timeout */
	opt[4] = optnull[4] ? (Datum) 0 : PG_GETARG_DATUM(7);

	check_delay_timeout(opt[3], optnull[3], opt[4], optnull[4]);
	if (!optnull[2] && VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(4)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency key must not be empty")));

	invoker = begin_as_owner(&as);
	SPI_connect();
	hit = cached(ref, invoker, &target);
	if (!hit)
	{
		fx_resolve(ref, &target);
		if (!superuser_arg(invoker))
			check_may_invoke(target.fn, invoker);
		remember(ref, invoker, &target);
	}
	id = insert_invocation(&target,
						   choose_bucket(target.fn,
										 optnull[0] ? NULL : PG_GETARG_TEXT_PP(2)),
						   args, opt, optnull, priority, invoker);
	SPI_finish();
	end_as_owner(&as);

	PG_RETURN_INT64(id);
}

/*
 * fx_invoke_all(fn, args jsonb[], delay, queue, priority, timeout) -> ids
 *
 * fx_invoke for every element of args, in one INSERT, the ids in the order
 * of args.  fx_invoke over a set runs its INSERT once per row, and starting
 * that INSERT's executor (its indexes opened, their predicates compiled)
 * costs more than the row itself; here it is started once.  No key and no
 * idempotency key: those need a lookup per row, which fx_invoke makes.
 */
#define INSERT_ALL_SQL \
	"INSERT INTO fx.invocation (bucket, fn, version, queue, args, priority," \
	" not_before, max_attempts, waiter, deadline, invoker)" \
	" SELECT floor(random() * 4096)::int, $1, $2, $3, a.args, $4," \
	" now() + coalesce($5, interval '0'), $6, " WAITER_SQL ", now() + $7, $8" \
	" FROM unnest($9::jsonb[]) WITH ORDINALITY a(args, n) ORDER BY a.n" \
	" RETURNING id"

Datum
fx_invoke_all(PG_FUNCTION_ARGS)
{
	Oid			types[9] = {TEXTOID, INT4OID, TEXTOID, INT4OID, INTERVALOID, INT4OID,
	INTERVALOID, REGROLEOID, JSONBARRAYOID};
	Datum		values[9];
	char		nulls[9];
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *elem_null;
	int			n;
	Datum	   *ids;
	FxTarget	target;
	Oid			invoker;
	AsOwner		as;
	int			ret;

	fx_require_args(fcinfo, "args");
	arr = PG_GETARG_ARRAYTYPE_P(1);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("args must be a one-dimensional array, not %d-dimensional", ARR_NDIM(arr))));
	deconstruct_array(arr, JSONBOID, -1, false, TYPALIGN_INT, &elems, &elem_null, &n);
	for (int i = 0; i < n; i++)
	{
		if (elem_null[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("args[%d] must not be null", i + 1),
					 errhint("Pass '{}' or 'null'::jsonb for no arguments.")));
		/* as fx_check_payload counts, with a 4-byte header; named on error only */
		if (VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i])) + VARHDRSZ > (Size) fx_max_payload_size)
			fx_check_payload(DatumGetJsonbP(elems[i]), psprintf("args[%d]", i + 1));
	}
	check_delay_timeout(PG_GETARG_DATUM(2), PG_ARGISNULL(2), PG_GETARG_DATUM(5), PG_ARGISNULL(5));

	invoker = begin_as_owner(&as);
	SPI_connect();
	fx_resolve(text_to_cstring(PG_GETARG_TEXT_PP(0)), &target);
	if (!superuser_arg(invoker))
		check_may_invoke(target.fn, invoker);

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(target.fn);
	values[1] = Int32GetDatum(target.version);
	values[2] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);	/* queue */
	nulls[2] = PG_ARGISNULL(3) ? 'n' : ' ';
	values[3] = Int32GetDatum(PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4));
	values[4] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);	/* delay */
	nulls[4] = PG_ARGISNULL(2) ? 'n' : ' ';
	values[5] = Int32GetDatum(fx_sync_waiter ? 1 : target.retries + 1);
	values[6] = PG_ARGISNULL(5) ? (Datum) 0 : PG_GETARG_DATUM(5);	/* timeout */
	nulls[6] = PG_ARGISNULL(5) ? 'n' : ' ';
	values[7] = ObjectIdGetDatum(invoker);
	values[8] = PointerGetDatum(arr);
	ret = SPI_execute_plan(keep_plan(&insert_all_plan, INSERT_ALL_SQL, 9, types,
									 CURSOR_OPT_GENERIC_PLAN),
						   values, nulls, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != (uint64) n)
		elog(ERROR, "enqueue failed: %s", SPI_result_code_string(ret));
	ids = SPI_palloc(sizeof(Datum) * (n > 0 ? n : 1));	/* in the caller's context */
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
	}
	if (n > 0)
		Async_Notify("fx_wake", NULL);
	SPI_finish();
	end_as_owner(&as);

	PG_RETURN_ARRAYTYPE_P(construct_array(ids, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
										  TYPALIGN_DOUBLE));
}
