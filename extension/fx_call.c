/*
 * fx_call.c: synchronous calls (fx_call) and waiting for results (fx_result).
 *
 * fx_call must work from a plain autocommit SELECT and must not wait on its
 * caller's own uncommitted row, so it enqueues through a second connection
 * to this same server (the "loopback"), kept open for the life of the
 * backend.  That connection LISTENs on fx_done_<its pid>; fx_invoke marks
 * invocations made on it with that pid (the session sets fx.sync_waiter),
 * and the worker's completion notifies the channel.  All waits go through
 * WaitLatchOrSocket, so a caller can cancel them like any query.
 *
 * The loopback connects as the current user to the current database over
 * this server's first Unix socket, unless fx.loopback_conninfo says
 * otherwise; the server must let that user in (e.g. peer or trust for local
 * connections, or a password in the conninfo).
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "fx.h"

PG_FUNCTION_INFO_V1(fx_call);
PG_FUNCTION_INFO_V1(fx_result);
PG_FUNCTION_INFO_V1(fx_get_event);

static PGconn *loopback = NULL;

/* What an invocation ended as, copied out of a PGresult. */
typedef struct FxOutcome
{
	char	   *fn;
	char	   *status;
	char	   *result;
	char	   *error;
	char	   *detail;
} FxOutcome;

static void
wait_socket(PGconn *conn, int events, long timeout_ms)
{
	int			rc;

	rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | events |
						   (timeout_ms >= 0 ? WL_TIMEOUT : 0),
						   PQsocket(conn), timeout_ms, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

static void
loopback_fail(const char *what)
{
	char	   *msg = pstrdup(loopback ? PQerrorMessage(loopback) : "out of memory");

	if (loopback)
		PQfinish(loopback);
	loopback = NULL;
	ereport(ERROR,
			(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
			 errmsg("fx could not %s its loopback connection", what),
			 errdetail_internal("%s", msg),
			 errhint("fx_call reaches this server again as the current user; allow that in pg_hba.conf or set fx.loopback_conninfo.")));
}

static char *
first_socket_dir(void)
{
	const char *dirs = GetConfigOption("unix_socket_directories", false, false);
	char	   *dir;
	char	   *comma;

	if (dirs == NULL || dirs[0] == '\0')
		return "localhost";
	dir = pstrdup(dirs);
	comma = strchr(dir, ',');
	if (comma)
		*comma = '\0';
	while (*dir == ' ')
		dir++;
	return dir;
}

static void
loopback_connect(void)
{
	const char *keys[] = {"host", "port", "dbname", "user", "options",
	"application_name", "dbname", NULL};
	const char *vals[8];
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	bool		custom = fx_loopback_conninfo && fx_loopback_conninfo[0];

	vals[0] = first_socket_dir();
	vals[1] = psprintf("%d", PostPortNumber);
	vals[2] = get_database_name(MyDatabaseId);
	vals[3] = GetUserNameFromId(GetUserId(), false);
	vals[4] = "-c fx.sync_waiter=on";
	vals[5] = "fx_call";
	vals[6] = custom ? fx_loopback_conninfo : NULL;	/* expanded conninfo wins */
	vals[7] = NULL;

	loopback = PQconnectStartParams(keys, vals, 1);
	if (loopback == NULL || PQstatus(loopback) == CONNECTION_BAD)
		loopback_fail("open");
	while (st != PGRES_POLLING_OK)
	{
		if (st == PGRES_POLLING_FAILED)
			loopback_fail("open");
		wait_socket(loopback, st == PGRES_POLLING_READING ?
					WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE, -1);
		st = PQconnectPoll(loopback);
	}
}

/* Wait for the query in flight and return its last result. */
static PGresult *
loopback_result(void)
{
	PGresult   *last = NULL;
	PGresult   *res;

	for (;;)
	{
		while (PQisBusy(loopback))
		{
			wait_socket(loopback, WL_SOCKET_READABLE, -1);
			if (!PQconsumeInput(loopback))
				loopback_fail("read from");
		}
		res = PQgetResult(loopback);
		if (res == NULL)
			return last;
		PQclear(last);
		last = res;
	}
}

/* Raise the loopback's error as our own, keeping its SQLSTATE. */
static void
rethrow(PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	char	   *msg = pstrdup(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ?
							  PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) :
							  PQresultErrorMessage(res));
	const char *d = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *h = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	char	   *detail = d ? pstrdup(d) : NULL;
	char	   *hint = h ? pstrdup(h) : NULL;
	int			code = state ? MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4])
		: ERRCODE_INTERNAL_ERROR;

	PQclear(res);
	ereport(ERROR,
			(errcode(code),
			 errmsg_internal("%s", msg),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
}

/*
 * The statements every fx_call sends, prepared once per loopback
 * connection (named by their index) rather than parsed on every call.
 */
enum
{
	LOOPBACK_INVOKE,
	LOOPBACK_FETCH,
	LOOPBACK_EVENT,
	LOOPBACK_NSTMTS
};
static bool loopback_prepared[LOOPBACK_NSTMTS];
static bool loopback_events;	/* LISTEN fx_event sent on this connection */

/*
 * Run one statement on the loopback, connecting first if needed; stmt >= 0
 * names one of the prepared ones above, of which sql is the text.
 */
static PGresult *
loopback_run(int stmt, const char *sql, int n, const char *const *params)
{
	PGresult   *res;
	char		name[16];

	if (loopback && (PQstatus(loopback) != CONNECTION_OK ||
					 PQtransactionStatus(loopback) != PQTRANS_IDLE))
	{
		PQfinish(loopback);		/* broken, or abandoned mid-query */
		loopback = NULL;
	}
	if (loopback == NULL)
	{
		memset(loopback_prepared, 0, sizeof(loopback_prepared));
		loopback_events = false;
		loopback_connect();
		if (!PQsendQuery(loopback, psprintf("LISTEN fx_done_%d", PQbackendPID(loopback))))
			loopback_fail("use");
		res = loopback_result();
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			rethrow(res);
		PQclear(res);
	}
	snprintf(name, sizeof(name), "fx_call_%d", stmt);
	if (stmt >= 0 && !loopback_prepared[stmt])
	{
		if (!PQsendPrepare(loopback, name, sql, n, NULL))
			loopback_fail("use");
		res = loopback_result();
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			rethrow(res);
		PQclear(res);
		loopback_prepared[stmt] = true;
	}
	if (stmt >= 0 ? !PQsendQueryPrepared(loopback, name, n, params, NULL, NULL, 0)
		: !PQsendQueryParams(loopback, sql, n, NULL, params, NULL, NULL, 0))
		loopback_fail("use");
	res = loopback_result();
	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
		rethrow(res);
	return res;
}

static char *
copy_field(PGresult *res, int col)
{
	return PQgetisnull(res, 0, col) ? NULL : pstrdup(PQgetvalue(res, 0, col));
}

static bool
fetch_outcome(int64 id, FxOutcome *out)
{
	const char *params[1] = {psprintf(INT64_FORMAT, id)};
	PGresult   *res = loopback_run(LOOPBACK_FETCH,
								   "SELECT fn, status, result, error, error_detail"
								   " FROM fx.invocation WHERE id = $1", 1, params);

	if (PQntuples(res) != 1)
	{
		PQclear(res);
		if (out->status && strcmp(out->status, "queued") == 0)
			ereport(ERROR,	/* we saw it, the committed world does not */
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("invocation " INT64_FORMAT " is not committed yet", id),
					 errdetail("It was enqueued in this transaction, so no worker can run it before the transaction commits."),
					 errhint("Commit first, or use fx_call() to run a function within a transaction.")));
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("invocation " INT64_FORMAT " does not exist", id)));
	}
	out->fn = copy_field(res, 0);
	out->status = copy_field(res, 1);
	out->result = copy_field(res, 2);
	out->error = copy_field(res, 3);
	out->detail = copy_field(res, 4);
	PQclear(res);
	return strcmp(out->status, "queued") != 0 && strcmp(out->status, "running") != 0;
}

/* Return the result of a finished invocation, or raise its error. */
static Datum
outcome_datum(int64 id, FxOutcome *o)
{
	if (strcmp(o->status, "succeeded") == 0)
		return DirectFunctionCall1(jsonb_in, CStringGetDatum(o->result ? o->result : "null"));
	if (strcmp(o->status, "cancelled") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("invocation " INT64_FORMAT " of function \"%s\" was cancelled", id, o->fn)));
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("function \"%s\" failed: %s", o->fn, o->error ? o->error : "unknown error"),
			 o->detail ? errdetail("%s", o->detail) : 0,
			 errhint("fx_logs(" INT64_FORMAT ") shows its output; the invocation is %s.", id, o->status)));
	return (Datum) 0;
}

static long
interval_ms(Interval *iv, const char *what)
{
	double		ms = iv->time / 1000.0 + (iv->day + iv->month * 30.0) * 86400000.0;

	if (ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be negative", what)));
	return ms > (double) LONG_MAX ? LONG_MAX : (long) ms;
}

/*
 * Wait until a notification for id arrives or timeout_ms passes.  Its
 * payload is "ID", or "ID RESULT" for one that succeeded with a result
 * small enough to travel with it; *result then gets RESULT.
 */
static bool
await_done(int64 id, long timeout_ms, char **result)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	char	   *want = psprintf(INT64_FORMAT, id);
	size_t		len = strlen(want);

	*result = NULL;
	for (;;)
	{
		PGnotify   *n;
		long		left;

		while ((n = PQnotifies(loopback)) != NULL)
		{
			bool		hit = strncmp(n->extra, want, len) == 0 &&
				(n->extra[len] == '\0' || n->extra[len] == ' ');

			if (hit && n->extra[len] == ' ')
				*result = pstrdup(n->extra + len + 1);
			PQfreemem(n);
			if (hit)
				return true;
		}
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);
		if (left <= 0)
			return false;
		wait_socket(loopback, WL_SOCKET_READABLE, left);
		if (!PQconsumeInput(loopback))
			loopback_fail("read from");
	}
}

/*
 * fx_call(fn, args, timeout, key) -> jsonb
 *
 * Runs the function now and returns its result, or raises its error.  A
 * synchronous call is not retried when the function fails (as with AWS
 * Lambda's RequestResponse); on timeout the invocation is cancelled.
 */
Datum
fx_call(PG_FUNCTION_ARGS)
{
	char	   *schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));
	const char *params[3];
	long		timeout_ms;
	PGresult   *res;
	int64		id;
	char	   *result;
	FxOutcome	o = {0};

	fx_require_args(fcinfo, "args");
	fx_check_payload(PG_GETARG_JSONB_P(1), "args");
	timeout_ms = PG_ARGISNULL(2) ? 30000 : interval_ms(PG_GETARG_INTERVAL_P(2), "timeout");

	params[0] = text_to_cstring(PG_GETARG_TEXT_PP(0));
	params[1] = JsonbToCString(NULL, &PG_GETARG_JSONB_P(1)->root, VARSIZE(PG_GETARG_JSONB_P(1)));
	params[2] = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	/*
	 * The enqueue does not wait for the disk: if the server crashed before
	 * the row reached it, this backend would be gone with it, and no one
	 * would have been told of the invocation.  The completion, which the
	 * caller waits for, is a synchronous commit, and makes the row durable
	 * at the latest.
	 */
	res = loopback_run(LOOPBACK_INVOKE,
					   psprintf("SELECT %s.fx_invoke($1, $2::jsonb, $3)"
								" FROM (SELECT set_config('synchronous_commit', 'off', true)) s",
								quote_identifier(schema)), 3, params);
	id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);

	if (!await_done(id, timeout_ms, &result) && !fetch_outcome(id, &o))
	{
		params[0] = psprintf(INT64_FORMAT, id);
		PQclear(loopback_run(-1, psprintf("SELECT %s.fx_cancel($1)",
									   quote_identifier(schema)), 1, params));
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("function \"%s\" did not finish within %ld ms", o.fn, timeout_ms),
				 errdetail("Invocation " INT64_FORMAT " was cancelled.", id),
				 errhint("Pass a longer timeout, or use fx_invoke() and fx_result().")));
	}
	if (result)
		PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(result)));
	fetch_outcome(id, &o);
	PG_RETURN_DATUM(outcome_datum(id, &o));
}

/*
 * fx_result(id, wait) -> jsonb
 *
 * The result of a finished invocation (or its error, raised); NULL when it
 * has not finished within wait.  Waiting polls the row on the loopback with
 * a growing pause, so it works under any isolation level.
 */
Datum
fx_result(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	long		wait_ms = interval_ms(PG_GETARG_INTERVAL_P(1), "wait");
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
	long		pause = 1;
	FxOutcome	o;

	/* Look in our own snapshot first: it may be uncommitted work of ours. */
	{
		MemoryContext caller = CurrentMemoryContext;
		Oid			types[1] = {INT8OID};
		Datum		values[1] = {Int64GetDatum(id)};
		char	  **fields[5] = {&o.fn, &o.status, &o.result, &o.error, &o.detail};

		SPI_connect();
		if (SPI_execute_with_args("SELECT fn, status::text, result::text, error, error_detail"
								  " FROM fx.invocation WHERE id = $1",
								  1, types, values, NULL, true, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("invocation " INT64_FORMAT " does not exist", id)));
		for (int i = 0; i < 5; i++)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1);

			*fields[i] = v ? MemoryContextStrdup(caller, v) : NULL;
		}
		SPI_finish();
		if (strcmp(o.status, "queued") != 0 && strcmp(o.status, "running") != 0)
			PG_RETURN_DATUM(outcome_datum(id, &o));
		if (wait_ms == 0)
			PG_RETURN_NULL();
	}

	while (!fetch_outcome(id, &o))
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);
		int			rc;

		if (left <= 0)
			PG_RETURN_NULL();
		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					   Min(pause, left), PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		pause = Min(pause * 2, 100);
	}
	PG_RETURN_DATUM(outcome_datum(id, &o));
}

/*
 * fx_get_event(workflow, key, wait) -> jsonb
 *
 * The value workflow last set for its event key; NULL when it has set none
 * within wait.  Reads through the loopback (the committed world, whatever
 * the caller's isolation level), and waits for the fx_event notification
 * that a set_event step sends, listened for before the first look.
 */
Datum
fx_get_event(PG_FUNCTION_ARGS)
{
	int64		wf = PG_GETARG_INT64(0);
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	long		wait_ms = interval_ms(PG_GETARG_INTERVAL_P(2), "wait");
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
	char	   *want = psprintf(INT64_FORMAT " %s", wf, key);
	const char *params[2] = {psprintf(INT64_FORMAT, wf), key};

	for (;;)
	{
		PGresult   *res;
		long		left;

		if (!loopback_events && wait_ms > 0)
		{
			PQclear(loopback_run(-1, "LISTEN fx_event", 0, NULL));
			loopback_events = true;
		}
		res = loopback_run(LOOPBACK_EVENT,
						   "SELECT EXISTS (SELECT 1 FROM fx.invocation WHERE id = $1),"
						   " e.value FROM (SELECT 1) one"
						   " LEFT JOIN fx.event e ON e.workflow_id = $1 AND e.key = $2",
						   2, params);
		if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		{
			PQclear(res);
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("workflow " INT64_FORMAT " does not exist", wf)));
		}
		if (!PQgetisnull(res, 0, 1))
		{
			Datum		d = DirectFunctionCall1(jsonb_in,
											CStringGetDatum(pstrdup(PQgetvalue(res, 0, 1))));

			PQclear(res);
			PG_RETURN_DATUM(d);
		}
		PQclear(res);
		/* Wait for a set_event of this key (any other notification: look again). */
		for (;;)
		{
			PGnotify   *n;
			bool		hit = false;

			left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);
			if (left <= 0)
				PG_RETURN_NULL();
			while ((n = PQnotifies(loopback)) != NULL)
			{
				hit = hit || strcmp(n->extra, want) == 0;
				PQfreemem(n);
			}
			if (hit)
				break;
			wait_socket(loopback, WL_SOCKET_READABLE, left);
			if (!PQconsumeInput(loopback))
				loopback_fail("read from");
		}
	}
}
