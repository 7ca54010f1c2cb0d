/*
 * fx_txn.c: an invocation's own transaction (see fx_txn.h).
 *
 * A connection (fx_txn_conn) is an fx_db logged in as one role that does
 * not reconnect: a lost connection takes its transaction with it.  Idle
 * connections are kept per role for the next transaction.  Requests made
 * while the connection is still being set up wait in the transaction's
 * pending list.
 *
 * Round trips per statement: one simple query moves the savepoint
 * ("RELEASE SAVEPOINT fx; SAVEPOINT fx", with BEGIN and the timeouts before
 * the first), then the statement itself through the extended protocol,
 * which accepts exactly one statement.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fx_db.h"
#include "fx_log.h"
#include "fx_txn.h"



struct fx_txn_conn
{
	fx_db		db;
	fx_txn_pool *pool;
	char	   *role;
	fx_txn	   *txn;			/* the transaction using it, NULL if idle */
	bool		dead;			/* lost or closed */
	struct fx_txn_conn *next;	/* in the pool's idle list */
};

typedef enum op_kind
{
	OP_SQL,
	OP_COMMIT
} op_kind;

/* A request waiting for the connection, or on the wire. */
typedef struct op
{
	op_kind		kind;
	fx_txn	   *t;
	char	   *query;
	int			nparams;
	char	  **params;
	fx_txn_sql_cb cb;
	fx_txn_commit_cb ccb;
	void	   *arg;
	char	   *owner;
	char	   *token;
	char	   *item;
	int			backoff_ms;
	char	   *record;			/* a step's name: commit with its record instead */
	int64_t		step_id;		/* ... its workflow */
	int			step;			/* ... its number (item: its output) */
	int64_t		step_began_ms;	/* ... when it began */
	char	   *err;			/* recording the completion failed */
	struct op  *next;
} op;

struct fx_txn
{
	fx_txn_pool *pool;
	fx_txn_conn *conn;
	int			timeout_ms;
	bool		connected;		/* the connection is ready for us */
	bool		began;			/* BEGIN has been sent */
	bool		savepoint;		/* savepoint fx exists */
	bool		ended;			/* commit or abort was asked */
	bool		broken;			/* the connection was lost */
	char	   *why;			/* the transaction could not begin */
	int			inflight;		/* fx_db queries carrying this txn */
	op		   *pending;
	op		  **pending_tail;
};

static void run_op(fx_txn *t, op *o);

/* ---------------------------------------------------------------------
 * Connections
 * --------------------------------------------------------------------- */

static fx_txn_conn *
conn_of(fx_db *db)
{
	return db->data;
}

static void
conn_closed(fx_db *db)
{
	fx_txn_conn *c = conn_of(db);
	fx_txn_pool *pool = c->pool;

	free(c->role);
	free(c);
	if (--pool->nopen == 0 && pool->closing && pool->on_closed)
		pool->on_closed(pool);
}

static void
unlink_idle(fx_txn_pool *pool, fx_txn_conn *c)
{
	for (fx_txn_conn **pp = &pool->idle; *pp; pp = &(*pp)->next)
		if (*pp == c)
		{
			*pp = c->next;
			pool->nidle--;
			return;
		}
}

static void
fail_pending(fx_txn *t)
{
	op		   *o = t->pending;

	t->pending = NULL;
	t->pending_tail = &t->pending;
	while (o)
	{
		op		   *next = o->next;

		o->next = NULL;
		run_op(t, o);			/* fails at once: t->broken */
		o = next;
	}
}

static void
maybe_free(fx_txn *t)
{
	if (!t->ended || t->inflight > 0 || t->pending != NULL)
		return;
	/* Lost while ending: conn_lost, still to come, must not find it. */
	if (t->conn && t->conn->txn == t)
		t->conn->txn = NULL;
	free(t->why);
	free(t);
}

static void
conn_lost(fx_db *db)
{
	fx_txn_conn *c = conn_of(db);
	fx_txn	   *t = c->txn;

	c->dead = true;
	if (t == NULL)
		unlink_idle(c->pool, c);
	c->txn = NULL;
	fx_db_close(db);
	if (t)
	{
		t->broken = true;
		t->conn = NULL;
		fail_pending(t);
		maybe_free(t);
	}
}

static void
conn_ready(fx_db *db)
{
	fx_txn_conn *c = conn_of(db);
	fx_txn	   *t = c->txn;
	op		   *o;

	if (t == NULL)
		return;
	t->connected = true;
	o = t->pending;
	t->pending = NULL;
	t->pending_tail = &t->pending;
	while (o)
	{
		op		   *next = o->next;

		o->next = NULL;
		run_op(t, o);
		o = next;
	}
}

static fx_txn_conn *
conn_new(fx_txn_pool *pool, const char *role)
{
	fx_txn_conn *c = fx_xcalloc(1, sizeof(*c));

	c->pool = pool;
	c->role = fx_xstrdup(role);
	fx_db_init(&c->db, pool->loop, pool->conninfo, pool->appname);
	c->db.user = fx_xstrdup(role);
	c->db.reconnect = false;
	c->db.data = c;
	c->db.on_ready = conn_ready;
	c->db.on_lost = conn_lost;
	c->db.on_closed = conn_closed;
	pool->nopen++;
	fx_debug("opening a connection as role %s (%d open, %d idle)", role,
		   pool->nopen, pool->nidle);
	return c;
}

static void
ignore_cb(fx_db *db, PGresult *res, void *arg)
{
	(void) db;
	(void) res;
	(void) arg;
}

/* The transaction is over: the connection goes back to the pool. */
static void
conn_release(fx_txn_conn *c)
{
	fx_txn_pool *pool = c->pool;

	c->txn = NULL;
	if (c->dead || c->db.state == FX_DB_DOWN)
		return;					/* lost: conn_lost closes it */
	if (pool->closing || pool->nidle >= pool->max_idle || c->db.state != FX_DB_READY)
	{
		c->dead = true;
		fx_db_close(&c->db);
		return;
	}
	/*
	 * What the function set for its session must not reach the next
	 * invocation; cached plans stay (DISCARD ALL would drop them).
	 */
	fx_db_query_simple(&c->db, "RESET ALL; RESET ROLE; DEALLOCATE ALL; CLOSE ALL;"
					   " UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP",
					   ignore_cb, NULL);
	c->next = pool->idle;
	pool->idle = c;
	pool->nidle++;
}

void
fx_txn_pool_init(fx_txn_pool *pool, uv_loop_t *loop, const char *conninfo,
				 const char *appname)
{
	memset(pool, 0, sizeof(*pool));
	pool->loop = loop;
	pool->conninfo = fx_xstrdup(conninfo ? conninfo : "");
	pool->appname = fx_xstrdup(appname);
}

void
fx_txn_pool_shutdown(fx_txn_pool *pool)
{
	pool->closing = true;
	while (pool->idle)
	{
		fx_txn_conn *c = pool->idle;

		pool->idle = c->next;
		pool->nidle--;
		c->dead = true;
		fx_db_close(&c->db);
	}
	if (pool->nopen == 0 && pool->on_closed)
		pool->on_closed(pool);
}

void
fx_txn_pool_free(fx_txn_pool *pool)
{
	free(pool->conninfo);
	free(pool->appname);
	pool->conninfo = pool->appname = NULL;
}

/* ---------------------------------------------------------------------
 * Transactions
 * --------------------------------------------------------------------- */

fx_txn *
fx_txn_open(fx_txn_pool *pool, const char *role, int timeout_ms)
{
	fx_txn	   *t = fx_xcalloc(1, sizeof(*t));
	fx_txn_conn *c;

	t->pool = pool;
	t->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	t->pending_tail = &t->pending;
	for (c = pool->idle; c; c = c->next)
		if (strcmp(c->role, role) == 0)
			break;
	if (c)
	{
		unlink_idle(pool, c);
		t->connected = true;
	}
	else
	{
		c = conn_new(pool, role);
		fx_db_start(&c->db);
	}
	c->txn = t;
	t->conn = c;
	if (c->dead)				/* the connection failed at once */
	{
		t->conn = NULL;
		t->broken = true;
	}
	return t;
}

static void
free_op(op *o)
{
	for (int i = 0; i < o->nparams; i++)
		free(o->params[i]);
	free(o->params);
	free(o->query);
	free(o->owner);
	free(o->token);
	free(o->item);
	free(o->record);
	free(o->err);
	free(o);
}

static void
op_fail(op *o, const char *why)
{
	if (o->t->why)
		why = o->t->why;
	if (o->kind == OP_SQL)
		o->cb(o->arg, NULL, why);
	else
		o->ccb(o->arg, o->t->broken ? FX_TXN_LOST : FX_TXN_FAILED, why);
	free_op(o);
}

bool
fx_txn_lost(const fx_txn *t)
{
	return t->broken;
}

static void
done_query(fx_txn *t)
{
	t->inflight--;
	maybe_free(t);
}

/* The savepoint (and the transaction before the first) is in place. */
static void
prefix_cb(fx_db *db, PGresult *res, void *arg)
{
	op		   *o = arg;
	fx_txn	   *t = o->t;

	if (res && PQresultStatus(res) != PGRES_COMMAND_OK && t->conn)
	{
		/*
		 * The statement queued right behind must not run outside the
		 * transaction: drop the connection, which fails it and rolls back.
		 */
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		fx_warn("cannot open the invocation's savepoint: %s", fx_db_error(res));
		free(t->why);
		t->why = fx_xstrdup(msg ? msg : "the invocation's transaction could not begin");
		conn_lost(db);
	}
	(void) o;
	done_query(t);
}

static void
stmt_cb(fx_db *db, PGresult *res, void *arg)
{
	op		   *o = arg;
	fx_txn	   *t = o->t;

	if (res && PQresultStatus(res) != PGRES_COMMAND_OK &&
		PQresultStatus(res) != PGRES_TUPLES_OK && db->state == FX_DB_READY)
		fx_db_query_simple(db, "ROLLBACK TO SAVEPOINT fx", ignore_cb, NULL);
	o->cb(o->arg, res, res ? NULL : t->why ? t->why : "the invocation's database connection was lost");
	free_op(o);
	done_query(t);
}

static void
send_sql(fx_txn *t, op *o)
{
	fx_db	   *db = &t->conn->db;
	char	   *prefix;

	if (!t->began)
		prefix = fx_xasprintf("BEGIN; SELECT set_config('statement_timeout', '%d', true),"
							  " set_config('lock_timeout', '%d', true),"
							  " set_config('idle_in_transaction_session_timeout', '%d', true);"
							  " SELECT fx.assert_sql_role(); SAVEPOINT fx",
							  t->timeout_ms, t->timeout_ms, t->timeout_ms + 5000);
	else
		prefix = fx_xstrdup("RELEASE SAVEPOINT fx; SAVEPOINT fx");
	t->began = true;
	t->savepoint = true;
	t->inflight += 2;
	fx_db_query_simple(db, prefix, prefix_cb, o);
	fx_db_query_params(db, o->query, o->nparams, (const char *const *) o->params,
					   stmt_cb, o);
	free(prefix);
}

/* After a refused or failed completion: roll back, hand the connection on. */
static void
after_rollback_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_txn	   *t = arg;
	fx_txn_conn *c = t->conn;

	(void) db;
	t->conn = NULL;
	if (c && c->txn == t)
	{
		if (res && PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			c->txn = NULL;		/* never hand on a transaction left open */
			c->dead = true;
			fx_db_close(&c->db);
		}
		else
			conn_release(c);
	}
	done_query(t);
}

/*
 * The completion and the commit went in one round trip: COMMIT means both
 * are in; FXL01 means the lease moved (fx.finish_tx raised, so nothing is).
 */
static void
finished_cb(fx_db *db, PGresult *res, void *arg)
{
	op		   *o = arg;
	fx_txn	   *t = o->t;
	fx_txn_conn *c = t->conn;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (res == NULL)
		o->ccb(o->arg, FX_TXN_LOST, "connection lost while committing");
	else if (PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), "COMMIT") == 0)
		o->ccb(o->arg, FX_TXN_COMMITTED, NULL);
	else if (state && strcmp(state, "FXL01") == 0)
		o->ccb(o->arg, FX_TXN_REFUSED, "the lease moved to another worker");
	else
		o->ccb(o->arg, FX_TXN_FAILED, fx_db_error(res));
	free_op(o);
	if (res && c && c->txn == t && PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		/* the transaction is aborted: end it before the next one */
		fx_db_query_simple(db, "ROLLBACK", after_rollback_cb, t);
		return;					/* after_rollback_cb carries the count */
	}
	if (c && c->txn == t)
		conn_release(c);
	t->conn = NULL;
	done_query(t);
}

static void
send_commit(fx_txn *t, op *o)
{
	PGconn	   *conn = t->conn->db.conn;
	char	   *owner = PQescapeLiteral(conn, o->owner, strlen(o->owner));
	char	   *token = PQescapeLiteral(conn, o->token, strlen(o->token));
	char	   *item = PQescapeLiteral(conn, o->item, strlen(o->item));
	char	   *sql;

	if (owner == NULL || token == NULL || item == NULL)
		sql = fx_xstrdup("SELECT 'cannot quote the completion' :: int");
	else if (o->record)
	{
		char	   *name = PQescapeLiteral(conn, o->record, strlen(o->record));

		sql = name == NULL ? fx_xstrdup("SELECT 'cannot quote the step' :: int")
			: fx_xasprintf("SELECT fx.step_tx(%s, %s::uuid, %lld, %d, %s, %s::jsonb,"
						   " to_timestamp(%lld / 1000.0));"
						   " SET LOCAL synchronous_commit = off; COMMIT",
						   owner, token, (long long) o->step_id, o->step, name, item,
						   (long long) o->step_began_ms);
		PQfreemem(name);
	}
	else
		sql = fx_xasprintf("SELECT fx.finish_tx(%s, %s::uuid, %s::jsonb, %d, strict => true);"
						   " COMMIT", owner, token, item, o->backoff_ms);
	PQfreemem(owner);
	PQfreemem(token);
	PQfreemem(item);
	t->inflight++;
	fx_db_query_simple(&t->conn->db, sql, finished_cb, o);
	free(sql);
}

static void
run_op(fx_txn *t, op *o)
{
	if (t->broken || t->conn == NULL)
	{
		op_fail(o, "the invocation's database connection was lost");
		return;
	}
	if (!t->connected)
	{
		*t->pending_tail = o;
		t->pending_tail = &o->next;
		return;
	}
	if (o->kind == OP_SQL)
		send_sql(t, o);
	else
		send_commit(t, o);
}

void
fx_txn_sql(fx_txn *t, const char *query, int nparams, const char *const *params,
		   fx_txn_sql_cb cb, void *arg)
{
	op		   *o = fx_xcalloc(1, sizeof(*o));

	o->kind = OP_SQL;
	o->t = t;
	o->query = fx_xstrdup(query);
	o->nparams = nparams;
	o->params = fx_xcalloc(nparams > 0 ? nparams : 1, sizeof(char *));
	for (int i = 0; i < nparams; i++)
		o->params[i] = params[i] ? fx_xstrdup(params[i]) : NULL;
	o->cb = cb;
	o->arg = arg;
	run_op(t, o);
}

void
fx_txn_commit(fx_txn *t, const char *owner, const char *token, const char *item,
			  int backoff_ms, fx_txn_commit_cb cb, void *arg)
{
	op		   *o = fx_xcalloc(1, sizeof(*o));

	o->kind = OP_COMMIT;
	o->t = t;
	o->owner = fx_xstrdup(owner);
	o->token = fx_xstrdup(token);
	o->item = fx_xstrdup(item);
	o->backoff_ms = backoff_ms;
	o->ccb = cb;
	o->arg = arg;
	t->ended = true;
	run_op(t, o);
	maybe_free(t);
}

void
fx_txn_commit_step(fx_txn *t, const char *owner, const char *token, int64_t id, int step,
				   int64_t began_ms, const char *name, const char *output,
				   fx_txn_commit_cb cb, void *arg)
{
	op		   *o = fx_xcalloc(1, sizeof(*o));

	o->kind = OP_COMMIT;
	o->t = t;
	o->owner = fx_xstrdup(owner);
	o->token = fx_xstrdup(token);
	o->item = fx_xstrdup(output);
	o->record = fx_xstrdup(name);
	o->step_id = id;
	o->step = step;
	o->step_began_ms = began_ms;
	o->ccb = cb;
	o->arg = arg;
	t->ended = true;
	run_op(t, o);
	maybe_free(t);
}

static void
rolled_back_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_txn	   *t = arg;
	fx_txn_conn *c = t->conn;

	(void) db;
	t->conn = NULL;
	if (c && c->txn == t)
	{
		if (res && PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			/* Never hand on a connection whose transaction may be open. */
			c->txn = NULL;
			c->dead = true;
			fx_db_close(&c->db);
		}
		else
			conn_release(c);
	}
	done_query(t);
}

void
fx_txn_abort(fx_txn *t)
{
	t->ended = true;
	if (t->conn && !t->broken && t->connected)
	{
		PGconn	   *conn = t->conn->db.conn;

		/*
		 * A statement still running (the function timed out or failed while
		 * waiting for it) would hold its locks until it ends: cancel it.
		 * A cancel that arrives when the session is idle is ignored.
		 */
		if (t->conn->db.sent && conn)
		{
			PGcancel   *cancel = PQgetCancel(conn);
			char		err[256];

			if (cancel && !PQcancel(cancel, err, sizeof(err)))
				fx_warn("cannot cancel the statement of a failed invocation: %s", err);
			PQfreeCancel(cancel);
		}
		t->inflight++;
		fx_db_query_simple(&t->conn->db, t->began ? "ROLLBACK" : "SELECT 1",
						   rolled_back_cb, t);
	}
	else if (t->conn && !t->broken)
	{
		/* Still connecting: nothing began, the connection goes idle. */
		fx_txn_conn *c = t->conn;

		t->conn = NULL;
		c->txn = NULL;
		c->dead = true;
		fx_db_close(&c->db);
		fail_pending(t);
	}
	maybe_free(t);
}

/* Skip blanks and SQL comments. */
static const char *
skip_blank(const char *p)
{
	for (;;)
	{
		while (isspace((unsigned char) *p) || *p == '(')
			p++;
		if (p[0] == '-' && p[1] == '-')
		{
			p += strcspn(p, "\n");
			continue;
		}
		if (p[0] == '/' && p[1] == '*')
		{
			const char *end = strstr(p + 2, "*/");

			p = end ? end + 2 : p + strlen(p);
			continue;
		}
		return p;
	}
}

const char *
fx_txn_refuse(const char *query)
{
	static const char *const refused[] = {
		"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT",
		"RELEASE", "PREPARE", "COPY", "DISCARD", NULL
	};
	const char *p = skip_blank(query);
	size_t		n = 0;

	while (isalpha((unsigned char) p[n]))
		n++;
	if (n == 0)
		return *p ? NULL : "empty query";
	for (int i = 0; refused[i]; i++)
		if (strlen(refused[i]) == n && strncasecmp(p, refused[i], n) == 0)
			return strcmp(refused[i], "COPY") == 0 ?
				"COPY is not available to a function's sql; use INSERT or SELECT" :
				"transaction control is not available to a function's sql: each invocation is one transaction, committed with its result";
	return NULL;
}
