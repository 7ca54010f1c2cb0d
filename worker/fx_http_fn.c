/*
 * fx_http_fn.c: function URLs: POST /fn/NAME (a call, or with ?async=1 an
 * enqueue) and GET /invocations/ID, on the server's database session.
 *
 * POST /fn/NAME calls fx.http_invoke(), which checks the token and
 * enqueues with fx_invoke; a synchronous call marks the invocation as
 * waited for by this session, exactly as fx_call's loopback does, so
 * fx.finish notifies fx_done_<pid> with "ID" or "ID RESULT", and the
 * waiting request (on h->waiting) is found by its invocation id.  "ID"
 * alone, a wait that the reconnect found ended, and a call past its
 * timeout read the end with fx.http_outcome().  After a reconnect the
 * session has a new pid: fx.http_rewait() moves the waits to it.  A call
 * that does not end within its timeout is cancelled (504).
 */
#include "fx_http_int.h"

#define CALL_TIMEOUT_S 30
#define MAX_CALL_TIMEOUT_S 900

static void wait_end(http_req *r);

/* ---------------------------------------------------------------------
 * POST /fn/NAME: calls
 * --------------------------------------------------------------------- */

static void
outcome_cb(fx_db *db, PGresult *res, void *arg)
{
	http_req   *r = arg;
	const char *status;
	char	   *msg;

	(void) db;
	if (fx_http_gone(r))
		return;
	if (res == NULL)
	{
		if (r->timed_out)
			fx_http_reply_error(fx_http_req_done(r), 504, NULL,
								"timed out, and the invocation could not be cancelled: the database connection is down",
								NULL, r->id);
		else
			wait_end(r);		/* asked again after the reconnect */
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fx_http_answer_sql_error(r, res);
		return;
	}
	if (PQntuples(res) != 1)
	{
		fx_http_reply_error(fx_http_req_done(r), 500, NULL, "the invocation vanished", NULL, r->id);
		return;
	}
	status = PQgetvalue(res, 0, 1);
	if (strcmp(status, "succeeded") == 0)
	{
		const char *result = PQgetisnull(res, 0, 2) ? "null" : PQgetvalue(res, 0, 2);

		fx_http_reply(fx_http_req_done(r), 200, JSON_TYPE, NULL, result, strlen(result));
	}
	else if (strcmp(status, "queued") == 0 || strcmp(status, "running") == 0)
	{
		if (r->timed_out)
			fx_http_reply_error(fx_http_req_done(r), 504, NULL,
								"timed out, and the invocation could not be cancelled", NULL, r->id);
		else
			wait_end(r);
	}
	else if (strcmp(status, "cancelled") == 0 && r->timed_out)
	{
		msg = fx_xasprintf("function \"%s\" did not finish within %d s; the invocation was cancelled",
						   PQgetvalue(res, 0, 0), r->timeout_s);
		fx_http_reply_error(fx_http_req_done(r), 504, NULL, msg, NULL, r->id);
		free(msg);
	}
	else if (strcmp(status, "cancelled") == 0)
		fx_http_reply_error(fx_http_req_done(r), 409, NULL, "the invocation was cancelled", NULL, r->id);
	else
	{
		msg = fx_xasprintf("function \"%s\" failed: %s", PQgetvalue(res, 0, 0),
						   PQgetisnull(res, 0, 3) ? "unknown error" : PQgetvalue(res, 0, 3));
		fx_http_reply_error(fx_http_req_done(r), 502, NULL, msg,
							PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4), r->id);
		free(msg);
	}
}

/* Read the end of r's invocation; cancel: cancel it first (timed out). */
static void
fetch_outcome(http_req *r, bool cancel)
{
	char		id[24];
	const char *params[2] = {id, cancel ? "true" : "false"};

	snprintf(id, sizeof(id), "%lld", (long long) r->id);
	r->in_db = true;
	fx_db_query_prepared(&r->h->db,
						 "SELECT fn, status, result, error, detail"
						 " FROM fx.http_outcome($1::bigint, $2::boolean)",
						 2, params, outcome_cb, r);
}

static void
call_timeout(uv_timer_t *t)
{
	http_req   *r = t->data;

	fx_http_unlist(r);
	r->timed_out = true;
	fetch_outcome(r, true);
}

/* Wait for the fx_done notification of r's invocation, until its deadline. */
static void
wait_end(http_req *r)
{
	int64_t		left = r->deadline_ms - fx_now_ms();

	r->next = r->h->waiting;
	r->h->waiting = r;
	r->listed = true;
	uv_timer_start(&r->timer, call_timeout, left > 0 ? (uint64_t) left : 0, 0);
}

static void
invoked_cb(fx_db *db, PGresult *res, void *arg)
{
	http_req   *r = arg;
	char	   *body;
	char	   *loc;

	(void) db;
	if (fx_http_gone(r) || !fx_http_row_or_answer(r, res))
		return;
	r->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (r->kind == REQ_CALL)
	{
		wait_end(r);
		return;
	}
	body = fx_xasprintf("{\"invocation\": %lld}", (long long) r->id);
	loc = fx_xasprintf("Location: /invocations/%lld\r\n", (long long) r->id);
	fx_http_reply(fx_http_req_done(r), 202, JSON_TYPE, loc, body, strlen(body));
	free(body);
	free(loc);
}

typedef struct call_opts
{
	bool		async;
	int			timeout_s;
	char	   *key;
} call_opts;

/* Parse ?async=1&timeout=S&key=K; an error message, or NULL. */
static const char *
parse_query(const char *q, call_opts *o)
{
	while (q && *q)
	{
		size_t		len = strcspn(q, "&");
		const char *eq = memchr(q, '=', len);
		size_t		klen = eq ? (size_t) (eq - q) : len;
		char	   *v = eq ? fx_http_decode(eq + 1, len - klen - 1, true) : fx_xstrdup("");
		const char *err = NULL;

		if (v == NULL)
			return "malformed query string";
		if (klen == 5 && strncmp(q, "async", 5) == 0)
		{
			if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || v[0] == '\0')
				o->async = true;
			else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
				o->async = false;
			else
				err = "async must be 1 or 0";
		}
		else if (klen == 7 && strncmp(q, "timeout", 7) == 0)
		{
			char	   *end;
			long		s = strtol(v, &end, 10);

			if (*end || end == v || s < 1 || s > MAX_CALL_TIMEOUT_S)
				err = "timeout must be a whole number of seconds from 1 to 900";
			else
				o->timeout_s = (int) s;
		}
		else if (klen == 3 && strncmp(q, "key", 3) == 0)
		{
			free(o->key);
			o->key = v;
			v = NULL;
		}
		free(v);
		if (err)
			return err;
		q += len;
		if (*q == '&')
			q++;
	}
	return NULL;
}

void
fx_http_call(http_conn *c, const char *fn, const char *query, const char *secret)
{
	call_opts	o = {false, CALL_TIMEOUT_S, NULL};
	const char *err = parse_query(query, &o);
	const char *params[5];
	http_req   *r;

	if (err)
	{
		free(o.key);
		fx_http_reply_error(c, 400, NULL, err, NULL, 0);
		return;
	}
	if (c->body_len > 0 && memchr(c->body, '\0', c->body_len))
	{
		free(o.key);
		fx_http_reply_error(c, 400, NULL, "the body holds a NUL byte", NULL, 0);
		return;
	}
	r = fx_http_req_new(c, o.async ? REQ_ASYNC : REQ_CALL);
	r->timeout_s = o.timeout_s;
	r->deadline_ms = fx_now_ms() + (int64_t) o.timeout_s * 1000;
	params[0] = secret;
	params[1] = fn;
	params[2] = c->body_len > 0 ? c->body : "{}";
	params[3] = o.key;
	params[4] = o.async ? "false" : "true";
	r->in_db = true;
	fx_db_query_prepared(&c->h->db,
						 "SELECT fx.http_invoke($1, $2, $3, $4, $5::boolean)",
						 5, params, invoked_cb, r);
	free(o.key);
}

/* ---------------------------------------------------------------------
 * The ends of calls: notifications, and waits across a reconnect
 * --------------------------------------------------------------------- */

void
fx_http_call_ended(fx_http *h, const char *payload)
{
	char	   *end;
	int64_t		id = strtoll(payload, &end, 10);

	for (http_req *r = h->waiting; r; r = r->next)
		if (r->id == id)
		{
			fx_http_unlist(r);
			if (*end == ' ')	/* "ID RESULT": it succeeded */
				fx_http_reply(fx_http_req_done(r), 200, JSON_TYPE, NULL, end + 1, strlen(end + 1));
			else
				fetch_outcome(r, false);
			return;
		}
}

/* The invocations of waits moved to this session that had ended already. */
static void
rewaited_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_http    *h = arg;

	(void) db;
	if (res == NULL || h->stopping)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fx_err("http: moving waits to the new session failed: %s", fx_db_error(res));
		return;
	}
	for (int i = 0; i < PQntuples(res); i++)
	{
		int64_t		id = strtoll(PQgetvalue(res, i, 0), NULL, 10);

		for (http_req *r = h->waiting; r; r = r->next)
			if (r->id == id)
			{
				fx_http_unlist(r);
				fetch_outcome(r, false);
				break;
			}
	}
}

void
fx_http_rewait(fx_http *h, fx_db *db)
{
	strbuf		ids = {0};
	const char *params[1];

	if (h->waiting == NULL)
		return;
	/* waits from before the reconnect: notify this session instead */
	sb_add(&ids, "{", 1);
	for (http_req *r = h->waiting; r; r = r->next)
		sb_printf(&ids, "%s%lld", ids.len > 1 ? "," : "", (long long) r->id);
	sb_add(&ids, "}", 1);
	params[0] = ids.s;
	fx_db_query_params(db, "SELECT fx.http_rewait($1::bigint[])", 1, params, rewaited_cb, h);
	free(ids.s);
}

/* ---------------------------------------------------------------------
 * GET /invocations/ID
 * --------------------------------------------------------------------- */

static void
got_cb(fx_db *db, PGresult *res, void *arg)
{
	http_req   *r = arg;

	(void) db;
	if (fx_http_gone(r) || !fx_http_row_or_answer(r, res))
		return;
	fx_http_reply(fx_http_req_done(r), 200, JSON_TYPE, NULL,
				  PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));
}

void
fx_http_get_invocation(http_conn *c, const char *id, const char *secret)
{
	const char *params[2] = {secret, id};
	http_req   *r = fx_http_req_new(c, REQ_GET);

	r->in_db = true;
	fx_db_query_prepared(&c->h->db, "SELECT fx.http_invocation($1, $2::bigint)",
						 2, params, got_cb, r);
}
