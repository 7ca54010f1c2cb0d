/*
 * fx_db.c: an asynchronous libpq connection on a uv_poll_t.
 *
 * States: DOWN -> CONNECTING -> READY -> (lost) -> DOWN ...; CLOSED is
 * final.  One handler per state change; the poll callback dispatches on the
 * state only.
 */
#include <stdlib.h>
#include <string.h>

#include "fx_db.h"
#include "fx_log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static void pump(fx_db *db);
static void lost(fx_db *db, const char *why);
static void on_poll(uv_poll_t *h, int status, int events);

/*
 * Say why a connection could not be made.  A process holds several
 * connections that all retry every few seconds while the server is away;
 * the same reason is said once a minute, not by each at every retry.
 */
static void
connect_failed(const char *reason)
{
	static char said[256];
	static uint64_t said_at;
	uint64_t	now = fx_mono_ns();
	char	   *msg = fx_xstrdup(reason);

	msg[strcspn(msg, "\n")] = '\0';
	if (said_at != 0 && now - said_at < 60ull * 1000000000 &&
		strncmp(msg, said, sizeof(said) - 1) == 0)
		fx_debug("cannot connect to the database: %s", msg);
	else
	{
		fx_warn("cannot connect to the database: %s", msg);
		snprintf(said, sizeof(said), "%s", msg);
		said_at = now;
	}
	free(msg);
}

void
fx_db_init(fx_db *db, uv_loop_t *loop, const char *conninfo, const char *appname)
{
	memset(db, 0, sizeof(*db));
	db->loop = loop;
	db->conninfo = fx_xstrdup(conninfo ? conninfo : "");
	db->appname = fx_xstrdup(appname);
	db->state = FX_DB_DOWN;
	db->backoff_ms = BACKOFF_MIN_MS;
	db->poll_fd = -1;
	db->reconnect = true;
	uv_timer_init(loop, &db->retry);
	db->retry.data = db;
}

static void
free_query(fx_db_query *q)
{
	for (int i = 0; i < q->nparams; i++)
		free(q->params[i]);
	free(q->params);
	free(q->sql);
	free(q);
}

static void
poll_closed(uv_handle_t *h)
{
	free(h);
}

static void
drop_poll(fx_db *db)
{
	if (db->poll)
	{
		uv_poll_stop(db->poll);
		uv_close((uv_handle_t *) db->poll, poll_closed);
		db->poll = NULL;
		db->poll_fd = -1;
	}
}

/* Watch the connection's socket for the events libpq needs next. */
static void
watch(fx_db *db, int events)
{
	int			fd = PQsocket(db->conn);

	if (db->poll && db->poll_fd != fd)
		drop_poll(db);
	if (db->poll == NULL)
	{
		db->poll = fx_xcalloc(1, sizeof(uv_poll_t));
		if (uv_poll_init_socket(db->loop, db->poll, fd) != 0)
		{
			free(db->poll);
			db->poll = NULL;
			lost(db, "cannot watch the connection's socket");
			return;
		}
		db->poll->data = db;
		db->poll_fd = fd;
	}
	uv_poll_start(db->poll, events, on_poll);
}

static void
fail_queries(fx_db *db)
{
	fx_db_query *q = db->head;

	db->head = db->tail = NULL;
	db->sent = false;
	PQclear(db->last);
	db->last = NULL;
	while (q)
	{
		fx_db_query *next = q->next;

		q->cb(db, NULL, q->arg);
		free_query(q);
		q = next;
	}
}

static void
retry_cb(uv_timer_t *t)
{
	fx_db_start((fx_db *) t->data);
}

static void
lost(fx_db *db, const char *why)
{
	drop_poll(db);
	if (db->conn)
	{
		if (db->reconnect)
			fx_warn("database connection lost: %s; reconnecting in %u ms", why,
					db->backoff_ms);
		else
			fx_warn("database connection lost: %s", why);
		PQfinish(db->conn);
		db->conn = NULL;
	}
	db->state = FX_DB_DOWN;
	db->ready_done = false;
	memset(db->prepared, 0, sizeof(db->prepared));	/* a new session has none */
	fail_queries(db);
	if (db->on_lost)
		db->on_lost(db);
	if (db->state == FX_DB_DOWN && db->reconnect)
	{
		uv_timer_start(&db->retry, retry_cb, db->backoff_ms, 0);
		db->backoff_ms = db->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : db->backoff_ms * 2;
	}
}

void
fx_db_start(fx_db *db)
{
	const char *keys[] = {"dbname", "application_name", "connect_timeout", "user", NULL};
	const char *vals[] = {db->conninfo, db->appname, "10", db->user, NULL};

	if (db->state != FX_DB_DOWN)
		return;
	db->conn = PQconnectStartParams(keys, vals, 1);
	if (db->conn == NULL || PQstatus(db->conn) == CONNECTION_BAD)
	{
		connect_failed(db->conn ? PQerrorMessage(db->conn) : "out of memory");
		if (db->conn)
			PQfinish(db->conn);
		db->conn = NULL;
		lost(db, "connect failed");
		return;
	}
	PQsetnonblocking(db->conn, 1);
	db->state = FX_DB_CONNECTING;
	watch(db, UV_WRITABLE);
}

static void
connecting(fx_db *db)
{
	switch (PQconnectPoll(db->conn))
	{
		case PGRES_POLLING_READING:
			watch(db, UV_READABLE);
			break;
		case PGRES_POLLING_WRITING:
			watch(db, UV_WRITABLE);
			break;
		case PGRES_POLLING_OK:
			db->state = FX_DB_READY;
			memset(db->prepared, 0, sizeof(db->prepared));
			db->backoff_ms = BACKOFF_MIN_MS;
			watch(db, UV_READABLE);
			if (db->reconnect)
				fx_info("connected to the database (backend pid %d)", PQbackendPID(db->conn));
			if (db->on_ready)
				db->on_ready(db);
			db->ready_done = true;
			pump(db);
			break;
		case PGRES_POLLING_ACTIVE:
			watch(db, UV_READABLE | UV_WRITABLE);
			break;
		case PGRES_POLLING_FAILED:
			connect_failed(PQerrorMessage(db->conn));
			PQfinish(db->conn);
			db->conn = NULL;
			lost(db, "connect failed");
			break;
	}
}

static void
notifications(fx_db *db)
{
	PGnotify   *n;

	while ((n = PQnotifies(db->conn)) != NULL)
	{
		if (db->on_notify)
			db->on_notify(db, n->relname, n->extra);
		PQfreemem(n);
	}
}

/* Read what arrived; deliver the head query's result when complete. */
static void
readable(fx_db *db)
{
	if (!PQconsumeInput(db->conn))
	{
		char	   *msg = fx_xstrdup(PQerrorMessage(db->conn));

		msg[strcspn(msg, "\n")] = '\0';
		lost(db, msg);
		free(msg);
		return;
	}
	while (db->sent && !PQisBusy(db->conn))
	{
		fx_db_query *q = db->head;
		PGresult   *res = PQgetResult(db->conn);

		if (res != NULL)
		{
			PQclear(db->last);	/* keep the last result of the query */
			db->last = res;
			continue;
		}
		res = db->last;
		db->last = NULL;
		if (q->preparing && PQresultStatus(res) == PGRES_COMMAND_OK)
		{
			/* Prepared: now send the query itself. */
			db->prepared[q->stmt] = true;
			q->preparing = false;
			db->sent = false;
			PQclear(res);
			pump(db);
			continue;
		}
		db->head = q->next;
		if (db->head == NULL)
			db->tail = NULL;
		db->sent = false;
		q->cb(db, res, q->arg);
		PQclear(res);
		free_query(q);
		if (db->state != FX_DB_READY)
			return;
	}
	notifications(db);
	pump(db);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	fx_db	   *db = h->data;

	if (db->state == FX_DB_CONNECTING)
	{
		connecting(db);
		return;
	}
	if (db->state != FX_DB_READY)
		return;
	if (status < 0)
	{
		lost(db, uv_strerror(status));
		return;
	}
	if (events & UV_WRITABLE)
	{
		int			r = PQflush(db->conn);

		if (r < 0)
		{
			lost(db, "write failed");
			return;
		}
		watch(db, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
	}
	if (events & UV_READABLE)
		readable(db);
}

/* Send the head query if nothing is on the wire. */
static void
pump(fx_db *db)
{
	fx_db_query *q = db->head;
	int			ok;
	int			r;

	if (db->state != FX_DB_READY || !db->ready_done || db->sent || q == NULL)
		return;
	if (q->stmt >= 0)
	{
		char		name[16];

		snprintf(name, sizeof(name), "fx%d", q->stmt);
		q->preparing = !db->prepared[q->stmt];
		ok = q->preparing
			? PQsendPrepare(db->conn, name, q->sql, q->nparams, NULL)
			: PQsendQueryPrepared(db->conn, name, q->nparams,
								  (const char *const *) q->params, NULL, NULL, q->binary);
	}
	else if (q->nparams < 0)
		ok = PQsendQuery(db->conn, q->sql);
	else
		ok = PQsendQueryParams(db->conn, q->sql, q->nparams, NULL,
							   (const char *const *) q->params, NULL, NULL, q->binary);
	if (!ok)
	{
		char	   *msg = fx_xstrdup(PQerrorMessage(db->conn));

		msg[strcspn(msg, "\n")] = '\0';
		lost(db, msg);
		free(msg);
		return;
	}
	db->sent = true;
	r = PQflush(db->conn);
	if (r < 0)
	{
		lost(db, "write failed");
		return;
	}
	watch(db, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static void
enqueue(fx_db *db, const char *sql, int nparams, const char *const *params,
		int binary, int stmt, fx_db_cb cb, void *arg)
{
	fx_db_query *q = fx_xcalloc(1, sizeof(*q));

	q->stmt = stmt;

	q->sql = fx_xstrdup(sql);
	q->nparams = nparams;
	q->params = fx_xcalloc(nparams > 0 ? nparams : 1, sizeof(char *));
	for (int i = 0; i < nparams; i++)
		q->params[i] = params[i] ? fx_xstrdup(params[i]) : NULL;
	q->binary = binary;
	q->cb = cb;
	q->arg = arg;
	if (db->state != FX_DB_READY)
	{
		cb(db, NULL, arg);		/* not connected: the caller retries later */
		free_query(q);
		return;
	}
	if (db->tail)
		db->tail->next = q;
	else
		db->head = q;
	db->tail = q;
	pump(db);
}

void
fx_db_query_params(fx_db *db, const char *sql, int nparams,
				   const char *const *params, fx_db_cb cb, void *arg)
{
	enqueue(db, sql, nparams, params, 0, -1, cb, arg);
}

void
fx_db_query_prepared(fx_db *db, const char *sql, int nparams,
					 const char *const *params, fx_db_cb cb, void *arg)
{
	int			stmt;

	for (stmt = 0; stmt < db->nstmts; stmt++)
		if (strcmp(db->stmts[stmt], sql) == 0)
			break;
	if (stmt == db->nstmts)
	{
		if (db->nstmts == FX_DB_MAX_STMTS)
			stmt = -1;			/* more than we keep: parsed each time */
		else
			db->stmts[db->nstmts++] = fx_xstrdup(sql);
	}
	enqueue(db, sql, nparams, params, 0, stmt, cb, arg);
}

void
fx_db_query_binary(fx_db *db, const char *sql, int nparams,
				   const char *const *params, fx_db_cb cb, void *arg)
{
	enqueue(db, sql, nparams, params, 1, -1, cb, arg);
}

void
fx_db_query_simple(fx_db *db, const char *sql, fx_db_cb cb, void *arg)
{
	enqueue(db, sql, -1, NULL, 0, -1, cb, arg);
}

bool
fx_db_idle(fx_db *db)
{
	return db->head == NULL;
}

static void
retry_closed(uv_handle_t *h)
{
	fx_db	   *db = h->data;

	free(db->conninfo);
	free(db->appname);
	free(db->user);
	for (int i = 0; i < db->nstmts; i++)
		free(db->stmts[i]);
	if (db->on_closed)
		db->on_closed(db);
}

void
fx_db_close(fx_db *db)
{
	if (db->state == FX_DB_CLOSED)
		return;
	db->state = FX_DB_CLOSED;
	drop_poll(db);
	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
	fail_queries(db);
	uv_close((uv_handle_t *) &db->retry, retry_closed);
}

const char *
fx_db_error(PGresult *res)
{
	static char buf[1024];
	const char *state;
	const char *msg;

	if (res == NULL)
		return "connection lost";
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	snprintf(buf, sizeof(buf), "%s (SQLSTATE %s)", msg ? msg : PQresultErrorMessage(res),
			 state ? state : "?");
	return buf;
}
