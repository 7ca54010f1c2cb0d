/*
 * fx_http.c: the worker's HTTP server: function URLs, /metrics and the
 * dashboard.
 *
 * Connections are libuv TCP streams; requests are parsed by the nodejs
 * http-parser library (Debian's libhttp-parser).  One request is answered
 * at a time per connection: when one is complete the parser is paused and
 * reading stops, and bytes that came after it (a pipelined request) wait
 * until the answer is written.  Keep-alive follows HTTP/1.1.  Limits: 16 KiB
 * of request line and headers (431), the body fx.max_payload_size (413), a
 * request must arrive whole within 30 s and an idle connection is closed
 * after 30 s, and at most MAX_CONNS connections are open.  A request that
 * is refused before its body was read is answered, then the rest of its
 * upload is read and dropped until the client closes (or LINGER_MS), so
 * that the client sees the answer rather than a reset.
 *
 * The server has a database connection of its own (fx_db).  POST /fn/NAME
 * calls fx.http_invoke(), which checks the token and enqueues with
 * fx_invoke; a synchronous call marks the invocation as waited for by this
 * session, exactly as fx_call's loopback does, so fx.finish notifies
 * fx_done_<pid> with "ID" or "ID RESULT", and the waiting request is found
 * by its invocation id.  After a reconnect the session has a new pid:
 * fx.http_rewait() moves the waits to it.  A call that does not end within
 * its timeout is cancelled (504).
 *
 * Metrics are counted here from the worker's attempt_done (per attempt of
 * this worker, since it started), plus gauges the worker reports and the
 * queue depth, asked of the database on each scrape (the last value is
 * served if it does not answer within SCRAPE_WAIT_MS).
 *
 * The dashboard: GET / serves a page (dashboard.html, .js and .css, built
 * into the binary as arrays by the Makefile) that polls the JSON of GET
 * /api/... with the same bearer tokens as /fn: a token sees the functions
 * it may invoke and their invocations.  Those reads run on a database
 * session of their own ("dash/OWNER"), opened on the first /api request,
 * read-only and with a statement timeout, so that a slow aggregate never
 * holds up a call queued behind it on the session above.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include <cjson/cJSON.h>
#include <http_parser.h>

#include "fx_dashboard.h"		/* generated from dashboard.* (Makefile) */
#include "fx_db.h"
#include "fx_http.h"
#include "fx_log.h"

#define MAX_HEADER_BYTES (16 * 1024)	/* request line and headers */
#define DEFAULT_MAX_BODY (6 * 1024 * 1024)	/* until fx.max_payload_size is read */
#define MAX_CONNS 1024
#define IDLE_MS 30000			/* for a whole request, or idle between two */
#define LINGER_MS 2000			/* reading a refused upload to its end */
#define CALL_TIMEOUT_S 30
#define MAX_CALL_TIMEOUT_S 900
#define SCRAPE_WAIT_MS 1000
#define MAX_FNS 1000			/* functions with metrics of their own */
#define JSON_TYPE "application/json"
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define DASH_CONNECT_MS 5000	/* an /api request waits this long for the session */
#define DASH_STATEMENT_TIMEOUT "10s"
#define MAX_LIST 200			/* /api/invocations?limit= */
#define MAX_THROUGHPUT_S 600	/* /api/throughput?seconds= */

/* Upper bounds of the duration histogram, seconds. */
static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30};
#define NBUCKETS (int) (sizeof(buckets) / sizeof(buckets[0]))

static const char *const start_kinds[] = {"cold", "prewarmed", "warm"};

typedef struct fn_stats
{
	char	   *fn;
	uint64_t	succeeded;
	uint64_t	failed;
	uint64_t	starts[3];		/* by fx_start_kind */
	uint64_t	in_bucket[NBUCKETS + 1];	/* not cumulative; last: +Inf */
	double		sum;			/* seconds */
	uint64_t	count;
	struct fn_stats *next;
} fn_stats;

typedef enum req_kind
{
	REQ_CALL,					/* POST /fn/NAME */
	REQ_ASYNC,					/* POST /fn/NAME?async=1 */
	REQ_GET,					/* GET /invocations/ID */
	REQ_SCRAPE,					/* GET /metrics */
	REQ_API						/* GET /api/...: the dashboard's reads */
} req_kind;

typedef struct http_conn http_conn;
typedef struct http_req http_req;

/* A request being answered; it may outlive its connection. */
struct http_req
{
	fx_http    *h;
	http_conn  *c;				/* NULL once its client is gone */
	req_kind	kind;
	int64_t		id;				/* the invocation, once enqueued */
	int			timeout_s;
	int64_t		deadline_ms;
	bool		in_db;			/* a query of it is in flight */
	bool		listed;			/* on h->waiting, h->scrapes or h->dash_waiting */
	bool		timed_out;
	uv_timer_t	timer;
	/* REQ_API: the statement, sent once the dashboard's session is up */
	bool		resent;			/* once more, after its session was lost */
	const char *sql;
	int			nparams;
	char	   *params[4];		/* [0]: the token's secret */
	http_req   *next;
};

enum
{
	HDR_OTHER,
	HDR_AUTH,
	HDR_EXPECT
};

struct http_conn
{
	uv_tcp_t	tcp;
	uv_timer_t	timer;			/* request, idle or linger timeout */
	uv_shutdown_t shutdown;
	fx_http    *h;
	int			open;			/* of its two handles */
	http_parser parser;
	/* the request being read */
	bool		complete;
	int			refuse;			/* answer this and close: 413, 431 */
	size_t		header_bytes;
	char	   *url;
	size_t		url_len;
	char		field[16];		/* header name being read, lower case, cut */
	size_t		field_len;
	bool		in_value;
	int			which;			/* HDR_* of the header being read */
	char	   *auth;
	size_t		auth_len;
	char		expect[16];
	size_t		expect_len;
	char	   *body;
	size_t		body_len;
	size_t		body_cap;
	/* what came after a complete request, parsed once it is answered */
	char	   *rest;
	size_t		rest_len;
	http_req   *req;			/* being answered */
	bool		keep_alive;
	bool		lingering;		/* answered and closing: dropping input */
	bool		closing;
	http_conn  *prev;
	http_conn  *next;
};

struct fx_http
{
	uv_loop_t  *loop;
	char	   *addr;
	void		(*gauges) (void *arg, fx_http_gauges *g);
	void	   *arg;
	uv_tcp_t	listener;
	bool		listening;
	fx_db		db;
	char	   *owner;			/* the worker's name (its main session's) */
	fx_db		dash;			/* the dashboard's reads, once dash_started */
	bool		dash_started;
	http_req   *dash_waiting;	/* /api requests waiting for it to connect */
	int			open;			/* itself, its handles, conns and requests */
	bool		stopping;
	size_t		max_body;
	http_conn  *conns;
	int			nconns;
	http_req   *waiting;		/* synchronous calls waiting for their end */
	http_req   *scrapes;		/* /metrics waiting for the queue depth */
	bool		depth_asked;
	long long	queue_depth;	/* -1: not known */
	fn_stats   *fns;
	int			nfns;
	fn_stats   *other;			/* the functions past MAX_FNS */
	uint64_t	responses[6];	/* by status class */
};

typedef struct write_req
{
	uv_write_t	req;
	http_conn  *c;
	char	   *data;
	bool		final;			/* the answer, not a 100 Continue */
} write_req;

static void conn_close(http_conn *c);
static void conn_timeout(uv_timer_t *t);
static void feed(http_conn *c, const char *data, size_t len);
static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void wait_end(http_req *r);
static void method_not_allowed(http_conn *c, const char *allow);
static void ignore_cb(fx_db *db, PGresult *res, void *arg);
static void db_closed(fx_db *db);
static void dash_ready(fx_db *db);
static void api_send(http_req *r);

/* ---------------------------------------------------------------------
 * Small helpers
 * --------------------------------------------------------------------- */

typedef struct strbuf
{
	char	   *s;
	size_t		len;
	size_t		cap;
} strbuf;

static void
sb_add(strbuf *b, const char *data, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		b->cap = (b->len + n + 1) * 2;
		b->s = fx_xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, data, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_printf(strbuf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
sb_printf(strbuf *b, const char *fmt,...)
{
	char		small[256];
	char	   *big;
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t) n < sizeof(small))
	{
		sb_add(b, small, n);
		return;
	}
	big = fx_xmalloc(n + 1);
	va_start(ap, fmt);
	vsnprintf(big, n + 1, fmt, ap);
	va_end(ap);
	sb_add(b, big, n);
	free(big);
}

static void
release(fx_http *h)
{
	if (--h->open > 0)
		return;
	while (h->fns)
	{
		fn_stats   *s = h->fns;

		h->fns = s->next;
		free(s->fn);
		free(s);
	}
	if (h->other)
		free(h->other->fn);
	free(h->other);
	free(h->owner);
	free(h->addr);
	free(h);
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decode s[0..n), '+' as a space if plus; NULL if malformed or NUL. */
static char *
decode(const char *s, size_t n, bool plus)
{
	char	   *out = fx_xmalloc(n + 1);
	size_t		o = 0;

	for (size_t i = 0; i < n; i++)
	{
		int			ch = (unsigned char) s[i];

		if (ch == '%')
		{
			if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				goto bad;
			ch = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
			i += 2;
			if (ch == 0)
				goto bad;
		}
		else if (ch == '+' && plus)
			ch = ' ';
		out[o++] = (char) ch;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* A JSON error body: {"error": msg[, "detail": detail][, "invocation": id]}. */
static char *
error_json(const char *msg, const char *detail, int64_t id)
{
	cJSON	   *o = cJSON_CreateObject();
	char	   *s;

	cJSON_AddStringToObject(o, "error", msg);
	if (detail)
		cJSON_AddStringToObject(o, "detail", detail);
	if (id > 0)
		cJSON_AddNumberToObject(o, "invocation", (double) id);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* ---------------------------------------------------------------------
 * Answers
 * --------------------------------------------------------------------- */

static void
after_response(http_conn *c)
{
	char	   *rest = c->rest;
	size_t		n = c->rest_len;

	if (c->lingering)
	{
		/* the client gets our FIN; what it still sends is read and dropped */
		uv_shutdown(&c->shutdown, (uv_stream_t *) &c->tcp, NULL);
		uv_timer_start(&c->timer, conn_timeout, LINGER_MS, 0);
		return;
	}
	if (!c->keep_alive)
	{
		conn_close(c);
		return;
	}
	/* ready for the next request */
	free(c->url);
	free(c->auth);
	free(c->body);
	c->url = c->auth = c->body = NULL;
	c->url_len = c->auth_len = c->body_len = c->body_cap = 0;
	c->header_bytes = 0;
	c->expect_len = 0;
	c->complete = false;
	c->rest = NULL;
	c->rest_len = 0;
	http_parser_pause(&c->parser, 0);
	uv_timer_start(&c->timer, conn_timeout, IDLE_MS, 0);
	if (n > 0)
		feed(c, rest, n);
	free(rest);
	if (!c->closing && !c->complete && !c->lingering)
		uv_read_start((uv_stream_t *) &c->tcp, alloc_cb, on_read);
}

static void
written(uv_write_t *req, int status)
{
	write_req  *wr = (write_req *) req;
	http_conn  *c = wr->c;
	bool		final = wr->final;

	free(wr->data);
	free(wr);
	if (c->closing)
		return;
	if (status < 0)
		conn_close(c);
	else if (final)
		after_response(c);
}

static void
send_bytes(http_conn *c, char *data, size_t len, bool final)
{
	write_req  *wr = fx_xcalloc(1, sizeof(*wr));
	uv_buf_t	buf = uv_buf_init(data, (unsigned int) len);

	wr->c = c;
	wr->data = data;
	wr->final = final;
	if (uv_write(&wr->req, (uv_stream_t *) &c->tcp, &buf, 1, written) < 0)
	{
		free(data);
		free(wr);
		conn_close(c);
	}
}

/* Write an answer; the connection goes on after it is written. */
static void
respond(http_conn *c, int status, const char *ctype, const char *extra,
		const char *body, size_t len)
{
	strbuf		b = {0};

	if (c->closing)
		return;
	c->h->responses[status / 100 < 6 ? status / 100 : 0]++;
	fx_debug("http: %s %s: %d", http_method_str(c->parser.method),
			 c->url ? c->url : "-", status);
	sb_printf(&b, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n", status,
			  http_status_str((enum http_status) status), len);
	if (ctype)
		sb_printf(&b, "Content-Type: %s\r\n", ctype);
	if (extra)
		sb_printf(&b, "%s", extra);
	if (!c->keep_alive)
		sb_printf(&b, "Connection: close\r\n");
	else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
		sb_printf(&b, "Connection: keep-alive\r\n");
	sb_add(&b, "\r\n", 2);
	if (len > 0)
		sb_add(&b, body, len);
	send_bytes(c, b.s, b.len, true);
	if (!c->closing)			/* a client that does not read it is closed */
		uv_timer_start(&c->timer, conn_timeout, IDLE_MS, 0);
}

static void
respond_error(http_conn *c, int status, const char *extra, const char *msg,
			  const char *detail, int64_t id)
{
	char	   *body = error_json(msg, detail, id);

	respond(c, status, JSON_TYPE, extra, body, strlen(body));
	cJSON_free(body);
}

/* Refuse the request being read, then close (after reading what follows). */
static void
refuse(http_conn *c, int status, const char *msg)
{
	c->keep_alive = false;
	c->lingering = true;
	respond_error(c, status, NULL, msg, NULL, 0);
}

/* ---------------------------------------------------------------------
 * Requests
 * --------------------------------------------------------------------- */

static void
req_closed(uv_handle_t *t)
{
	http_req   *r = t->data;
	fx_http    *h = r->h;

	for (int i = 0; i < r->nparams; i++)
		free(r->params[i]);
	free(r);
	release(h);
}

static http_req *
req_new(http_conn *c, req_kind kind)
{
	http_req   *r = fx_xcalloc(1, sizeof(*r));

	r->h = c->h;
	r->c = c;
	r->kind = kind;
	c->req = r;
	uv_timer_init(c->h->loop, &r->timer);
	r->timer.data = r;
	c->h->open++;
	return r;
}

static http_req **
list_of(http_req *r)
{
	if (r->kind == REQ_SCRAPE)
		return &r->h->scrapes;
	if (r->kind == REQ_API)
		return &r->h->dash_waiting;
	return &r->h->waiting;
}

static void
unlist(http_req *r)
{
	http_req  **list = list_of(r);

	if (!r->listed)
		return;
	for (http_req **pp = list; *pp; pp = &(*pp)->next)
		if (*pp == r)
		{
			*pp = r->next;
			break;
		}
	r->listed = false;
	r->next = NULL;
	uv_timer_stop(&r->timer);
}

static void
req_free(http_req *r)
{
	if (r->c)
		r->c->req = NULL;
	r->c = NULL;
	unlist(r);
	uv_close((uv_handle_t *) &r->timer, req_closed);
}

/* Answer r (if its client is still there) and free it. */
static void
answer(http_req *r, int status, const char *ctype, const char *extra,
	   const char *body, size_t len)
{
	http_conn  *c = r->c;

	req_free(r);
	if (c)
		respond(c, status, ctype, extra, body, len);
}

static void
answer_error(http_req *r, int status, const char *msg, const char *detail, int64_t id)
{
	char	   *body = error_json(msg, detail, id);

	answer(r, status, JSON_TYPE,
		   status == 401 ? "WWW-Authenticate: Bearer realm=\"fx\"\r\n" : NULL,
		   body, strlen(body));
	cJSON_free(body);
}

/* The HTTP status that fits a failed statement of fx.http_*. */
static int
sql_status(PGresult *res)
{
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (s == NULL)
		return 500;
	if (strcmp(s, "28000") == 0)	/* invalid_authorization_specification */
		return 401;
	if (strcmp(s, "42501") == 0)	/* insufficient_privilege */
		return 403;
	if (strcmp(s, "42704") == 0)	/* undefined_object */
		return 404;
	if (strcmp(s, "54000") == 0)	/* program_limit_exceeded */
		return 413;
	if (strncmp(s, "22", 2) == 0 || strcmp(s, "23502") == 0)	/* bad data */
		return 400;
	if (strncmp(s, "08", 2) == 0 || strncmp(s, "57", 2) == 0 ||
		strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0)
		return 503;
	return 500;
}

static void
answer_sql_error(http_req *r, PGresult *res)
{
	int			status = sql_status(res);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (status == 500 || status == 503)
		fx_err("http: %s", fx_db_error(res));
	answer_error(r, status, msg ? msg : "database error",
				 PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL), 0);
}

/* A callback's request whose answer nobody can take any more. */
static bool
gone(http_req *r)
{
	r->in_db = false;
	if (r->c && !r->h->stopping)
		return false;
	req_free(r);
	return true;
}

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
	if (gone(r))
		return;
	if (res == NULL)
	{
		if (r->timed_out)
			answer_error(r, 504, "timed out, and the invocation could not be cancelled: the database connection is down",
						 NULL, r->id);
		else
			wait_end(r);		/* asked again after the reconnect */
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		answer_sql_error(r, res);
		return;
	}
	if (PQntuples(res) != 1)
	{
		answer_error(r, 500, "the invocation vanished", NULL, r->id);
		return;
	}
	status = PQgetvalue(res, 0, 1);
	if (strcmp(status, "succeeded") == 0)
	{
		const char *result = PQgetisnull(res, 0, 2) ? "null" : PQgetvalue(res, 0, 2);

		answer(r, 200, JSON_TYPE, NULL, result, strlen(result));
	}
	else if (strcmp(status, "queued") == 0 || strcmp(status, "running") == 0)
	{
		if (r->timed_out)
			answer_error(r, 504, "timed out, and the invocation could not be cancelled", NULL, r->id);
		else
			wait_end(r);
	}
	else if (strcmp(status, "cancelled") == 0 && r->timed_out)
	{
		msg = fx_xasprintf("function \"%s\" did not finish within %d s; the invocation was cancelled",
						   PQgetvalue(res, 0, 0), r->timeout_s);
		answer_error(r, 504, msg, NULL, r->id);
		free(msg);
	}
	else if (strcmp(status, "cancelled") == 0)
		answer_error(r, 409, "the invocation was cancelled", NULL, r->id);
	else
	{
		msg = fx_xasprintf("function \"%s\" failed: %s", PQgetvalue(res, 0, 0),
						   PQgetisnull(res, 0, 3) ? "unknown error" : PQgetvalue(res, 0, 3));
		answer_error(r, 502, msg, PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4), r->id);
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

	unlist(r);
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
	if (gone(r))
		return;
	if (res == NULL)
	{
		answer_error(r, 503, "the database connection is down", NULL, 0);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		answer_sql_error(r, res);
		return;
	}
	r->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (r->kind == REQ_CALL)
	{
		wait_end(r);
		return;
	}
	body = fx_xasprintf("{\"invocation\": %lld}", (long long) r->id);
	loc = fx_xasprintf("Location: /invocations/%lld\r\n", (long long) r->id);
	answer(r, 202, JSON_TYPE, loc, body, strlen(body));
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
		char	   *v = eq ? decode(eq + 1, len - klen - 1, true) : fx_xstrdup("");
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

static void
call(http_conn *c, const char *fn, const char *query, const char *secret)
{
	call_opts	o = {false, CALL_TIMEOUT_S, NULL};
	const char *err = parse_query(query, &o);
	const char *params[5];
	http_req   *r;

	if (err)
	{
		free(o.key);
		respond_error(c, 400, NULL, err, NULL, 0);
		return;
	}
	if (c->body_len > 0 && memchr(c->body, '\0', c->body_len))
	{
		free(o.key);
		respond_error(c, 400, NULL, "the body holds a NUL byte", NULL, 0);
		return;
	}
	r = req_new(c, o.async ? REQ_ASYNC : REQ_CALL);
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
 * GET /invocations/ID
 * --------------------------------------------------------------------- */

static void
got_cb(fx_db *db, PGresult *res, void *arg)
{
	http_req   *r = arg;

	(void) db;
	if (gone(r))
		return;
	if (res == NULL)
		answer_error(r, 503, "the database connection is down", NULL, 0);
	else if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		answer_sql_error(r, res);
	else
		answer(r, 200, JSON_TYPE, NULL, PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));
}

static void
get_invocation(http_conn *c, const char *id, const char *secret)
{
	const char *params[2] = {secret, id};
	http_req   *r = req_new(c, REQ_GET);

	r->in_db = true;
	fx_db_query_prepared(&c->h->db, "SELECT fx.http_invocation($1, $2::bigint)",
						 2, params, got_cb, r);
}

/* ---------------------------------------------------------------------
 * Metrics
 * --------------------------------------------------------------------- */

static fn_stats *
stats_for(fx_http *h, const char *fn)
{
	fn_stats   *s;

	for (s = h->fns; s; s = s->next)
		if (strcmp(s->fn, fn) == 0)
			return s;
	if (h->nfns >= MAX_FNS)
	{
		if (h->other == NULL)
		{
			h->other = fx_xcalloc(1, sizeof(*s));
			h->other->fn = fx_xstrdup("_other");
		}
		return h->other;
	}
	s = fx_xcalloc(1, sizeof(*s));
	s->fn = fx_xstrdup(fn);
	s->next = h->fns;
	h->fns = s;
	h->nfns++;
	return s;
}

void
fx_http_observe(fx_http *h, const fx_inv *inv)
{
	fn_stats   *s = stats_for(h, inv->fn ? inv->fn : "?");
	double		secs = inv->wall_ms / 1000.0;
	int			b = 0;

	if (inv->ok)
		s->succeeded++;
	else
		s->failed++;
	if (!inv->started_ns)
		return;					/* it never ran: no start, no duration */
	if (inv->start >= FX_START_COLD && inv->start <= FX_START_WARM)
		s->starts[inv->start]++;
	while (b < NBUCKETS && secs > buckets[b])
		b++;
	s->in_bucket[b]++;
	s->sum += secs;
	s->count++;
}

/* fn as a label value: backslash, quote and newline escaped. */
static void
sb_label(strbuf *b, const char *v)
{
	for (; *v; v++)
	{
		if (*v == '\\' || *v == '"')
			sb_printf(b, "\\%c", *v);
		else if (*v == '\n')
			sb_add(b, "\\n", 2);
		else
			sb_add(b, v, 1);
	}
}

static void
sb_help(strbuf *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
sb_fn(strbuf *b, const char *name, const fn_stats *s)
{
	sb_printf(b, "%s{fn=\"", name);
	sb_label(b, s->fn);
	sb_add(b, "\"", 1);
}

static void
render_counters(strbuf *b, fn_stats *all)
{
	sb_help(b, "fx_invocations_total", "counter",
			"Attempts this worker finished, by function and outcome.");
	for (fn_stats *s = all; s; s = s->next)
	{
		sb_fn(b, "fx_invocations_total", s);
		sb_printf(b, ",outcome=\"succeeded\"} %llu\n", (unsigned long long) s->succeeded);
		sb_fn(b, "fx_invocations_total", s);
		sb_printf(b, ",outcome=\"failed\"} %llu\n", (unsigned long long) s->failed);
	}
	sb_help(b, "fx_cold_starts_total", "counter",
			"Attempts that started a new process (cold or prewarmed sandbox), not a warm one.");
	for (fn_stats *s = all; s; s = s->next)
	{
		sb_fn(b, "fx_cold_starts_total", s);
		sb_printf(b, "} %llu\n", (unsigned long long) (s->starts[FX_START_COLD] +
													  s->starts[FX_START_PREWARMED]));
	}
	sb_help(b, "fx_starts_total", "counter", "Attempts started, by function and start kind.");
	for (fn_stats *s = all; s; s = s->next)
		for (int k = 0; k < 3; k++)
		{
			sb_fn(b, "fx_starts_total", s);
			sb_printf(b, ",kind=\"%s\"} %llu\n", start_kinds[k],
					  (unsigned long long) s->starts[k]);
		}
}

static void
render_histogram(strbuf *b, fn_stats *all)
{
	sb_help(b, "fx_invocation_duration_seconds", "histogram",
			"Wall time of the attempts this worker ran, by function.");
	for (fn_stats *s = all; s; s = s->next)
	{
		uint64_t	cum = 0;

		for (int i = 0; i <= NBUCKETS; i++)
		{
			cum += s->in_bucket[i];
			sb_fn(b, "fx_invocation_duration_seconds_bucket", s);
			if (i < NBUCKETS)
				sb_printf(b, ",le=\"%g\"} %llu\n", buckets[i], (unsigned long long) cum);
			else
				sb_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long) cum);
		}
		sb_fn(b, "fx_invocation_duration_seconds_sum", s);
		sb_printf(b, "} %.6f\n", s->sum);
		sb_fn(b, "fx_invocation_duration_seconds_count", s);
		sb_printf(b, "} %llu\n", (unsigned long long) s->count);
	}
}

static void
render_gauges(fx_http *h, strbuf *b)
{
	fx_http_gauges g = {0, 0, 0};

	if (h->gauges)
		h->gauges(h->arg, &g);
	sb_help(b, "fx_running", "gauge", "Attempts executing on this worker.");
	sb_printf(b, "fx_running %d\n", g.running);
	sb_help(b, "fx_claimed", "gauge", "Invocations this worker holds: running or waiting for a slot.");
	sb_printf(b, "fx_claimed %d\n", g.claimed);
	sb_help(b, "fx_warm_sandboxes", "gauge", "Warm session processes kept by this worker.");
	sb_printf(b, "fx_warm_sandboxes %d\n", g.warm);
	if (h->queue_depth >= 0)
	{
		sb_help(b, "fx_queue_depth", "gauge",
				"Queued invocations in the database (all workers), at the last scrape that could ask.");
		sb_printf(b, "fx_queue_depth %lld\n", h->queue_depth);
	}
	sb_help(b, "fx_http_responses_total", "counter", "HTTP responses of this worker, by status class.");
	for (int i = 1; i < 6; i++)
		sb_printf(b, "fx_http_responses_total{code=\"%dxx\"} %llu\n", i,
				  (unsigned long long) h->responses[i]);
}

static void
render(http_req *r)
{
	fx_http    *h = r->h;
	strbuf		b = {0};
	fn_stats   *all = h->fns;

	if (h->other)
	{
		h->other->next = h->fns;	/* listed too, for this render */
		all = h->other;
	}
	render_counters(&b, all);
	render_histogram(&b, all);
	render_gauges(h, &b);
	if (h->other)
		h->other->next = NULL;
	answer(r, 200, METRICS_TYPE, NULL, b.s, b.len);
	free(b.s);
}

static void
depth_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_http    *h = arg;

	(void) db;
	h->depth_asked = false;
	if (h->stopping)
		return;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		h->queue_depth = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else if (res)
		fx_warn("http: reading the queue depth failed: %s", fx_db_error(res));
	while (h->scrapes)
		render(h->scrapes);
}

static void
scrape_timeout(uv_timer_t *t)
{
	render(t->data);
}

static void
scrape(http_conn *c)
{
	fx_http    *h = c->h;
	http_req   *r = req_new(c, REQ_SCRAPE);

	if (h->db.state != FX_DB_READY)
	{
		render(r);				/* the last queue depth known */
		return;
	}
	r->next = h->scrapes;
	h->scrapes = r;
	r->listed = true;
	uv_timer_start(&r->timer, scrape_timeout, SCRAPE_WAIT_MS, 0);
	if (!h->depth_asked)
	{
		h->depth_asked = true;
		fx_db_query_prepared(&h->db, "SELECT fx.queue_depth()", 0, NULL, depth_cb, h);
	}
}

/* ---------------------------------------------------------------------
 * The dashboard: GET / and its files, GET /api/...
 *
 * Every /api statement returns one row: the token's verdict, then the
 * answer as JSON text.  The verdict is fx.token_allows() of the token:
 * 'unknown' is a 401; lists hold only the functions it may invoke ('ok'
 * for them), and one invocation is 'missing' (404), 'forbidden' (403) or
 * 'ok'.
 * --------------------------------------------------------------------- */

/* The page may load its own script and style and fetch /api: nothing else. */
#define PAGE_HEADERS \
	"Cache-Control: no-cache\r\n" \
	"X-Content-Type-Options: nosniff\r\n" \
	"Referrer-Policy: no-referrer\r\n" \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self';" \
	" connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none';" \
	" frame-ancestors 'none'\r\n"

/* The token's verdict and the functions it sees: "WITH tok, fns". */
#define API_SCOPE \
	"WITH tok AS (SELECT fx.token_allows($1, '') AS verdict)," \
	" fns AS (SELECT f.name FROM fx.function f, tok" \
	"          WHERE tok.verdict <> 'unknown' AND fx.token_allows($1, f.name) = 'ok')"

/*
 * Functions: the live version, and the numbers of fx.stats (errors: failed
 * or dead; percentiles of the wall time) over each function's newest
 * 10 000 invocations (fx.stats reads all of them: a second per million).
 */
static const char sql_functions[] =
API_SCOPE
" SELECT tok.verdict, coalesce((SELECT jsonb_agg(jsonb_build_object("
"     'name', f.name, 'version', v.version, 'mode', v.mode,"
"     'invocations', s.invocations, 'errors', s.errors,"
"     'p50_ms', round(s.p50_ms::numeric, 2), 'p95_ms', round(s.p95_ms::numeric, 2),"
"     'last_invoked', s.last_invoked) ORDER BY f.name)"
"   FROM fns f"
"   LEFT JOIN fx.alias a ON a.fn = f.name AND a.alias = 'live'"
"   LEFT JOIN fx.version v ON v.fn = a.fn AND v.version = a.version"
"   CROSS JOIN LATERAL (SELECT count(*) AS invocations,"
"          count(*) FILTER (WHERE r.status IN ('failed', 'dead')) AS errors,"
"          percentile_cont(0.5) WITHIN GROUP (ORDER BY r.wall_ms)"
"              FILTER (WHERE r.finished_at IS NOT NULL) AS p50_ms,"
"          percentile_cont(0.95) WITHIN GROUP (ORDER BY r.wall_ms)"
"              FILTER (WHERE r.finished_at IS NOT NULL) AS p95_ms,"
"          max(r.created_at) AS last_invoked"
"        FROM (SELECT i.status, i.wall_ms, i.finished_at, i.created_at"
"                FROM fx.invocation i WHERE i.fn = f.name"
"               ORDER BY i.id DESC LIMIT 10000) r) s),"
"  '[]')::text"
" FROM tok";

/* The newest invocations ($2: of one function, or NULL; $3: how many). */
static const char sql_invocations[] =
API_SCOPE
" SELECT tok.verdict, coalesce((SELECT jsonb_agg(to_jsonb(x) ORDER BY x.id DESC) FROM ("
"   SELECT i.id, i.fn, i.version, i.status, i.attempts, i.created_at, i.started_at,"
"          i.finished_at, round(i.wall_ms::numeric, 2) AS duration_ms, i.start_kind,"
"          i.worker, i.parent, left(i.error, 200) AS error"
"     FROM fx.invocation i"
"    WHERE i.fn IN (SELECT name FROM fns) AND ($2::text IS NULL OR i.fn = $2)"
"    ORDER BY i.id DESC LIMIT $3::int) x), '[]')::text"
" FROM tok";

/* One invocation ($2) with its logs (the first 2000 lines), steps and children. */
static const char sql_invocation[] =
"WITH i AS (SELECT * FROM fx.invocation v WHERE v.id = $2::bigint),"
" tok AS (SELECT fx.token_allows($1, coalesce((SELECT i.fn FROM i), '')) AS verdict)"
" SELECT CASE WHEN tok.verdict = 'unknown' THEN 'unknown'"
"             WHEN NOT EXISTS (SELECT 1 FROM i) THEN 'missing' ELSE tok.verdict END,"
"  (SELECT jsonb_build_object("
"     'id', i.id, 'fn', i.fn, 'version', i.version, 'key', i.key, 'queue', i.queue,"
"     'status', i.status, 'attempts', i.attempts, 'max_attempts', i.max_attempts,"
"     'args', i.args, 'result', i.result, 'error', i.error, 'detail', i.error_detail,"
"     'worker', i.worker, 'parent', i.parent, 'created_at', i.created_at,"
"     'not_before', i.not_before, 'started_at', i.started_at, 'finished_at', i.finished_at,"
"     'duration_ms', round(i.wall_ms::numeric, 2), 'cpu_ms', round(i.cpu_ms::numeric, 2),"
"     'max_rss_kb', i.max_rss_kb, 'start_kind', i.start_kind, 'deadline', i.deadline,"
"     'log_lines', (SELECT count(*) FROM fx.log l WHERE l.invocation_id = i.id),"
"     'logs', (SELECT coalesce(jsonb_agg(jsonb_build_object("
"                'attempt', l.attempt, 'at', l.at, 'stream', l.stream, 'line', l.line)"
"                ORDER BY l.attempt, l.seq), '[]')"
"              FROM (SELECT * FROM fx.log l WHERE l.invocation_id = i.id"
"                     ORDER BY l.attempt, l.seq LIMIT 2000) l),"
"     'steps', (SELECT coalesce(jsonb_agg(jsonb_build_object("
"                 'step', s.step, 'name', s.name, 'kind', s.kind, 'done', s.done,"
"                 'output', s.output, 'error', s.error, 'child', s.child,"
"                 'wake_at', s.wake_at, 'started_at', s.started_at,"
"                 'ms', round((extract(epoch FROM s.finished_at - s.started_at) * 1000)::numeric, 2))"
"                 ORDER BY s.step), '[]')"
"               FROM fx.step s WHERE s.invocation_id = i.id),"
"     'children', (SELECT coalesce(jsonb_agg(jsonb_build_object("
"                    'id', c.id, 'fn', c.fn, 'status', c.status) ORDER BY c.id), '[]')"
"                  FROM (SELECT * FROM fx.invocation c WHERE c.parent = i.id"
"                         ORDER BY c.id LIMIT 200) c)"
"   )::text FROM i WHERE tok.verdict = 'ok')"
" FROM tok";

/* Workflows not ended: queued or running invocations that recorded steps. */
static const char sql_workflows[] =
API_SCOPE
" SELECT tok.verdict, coalesce((SELECT jsonb_agg(to_jsonb(w) ORDER BY w.id DESC) FROM ("
"   SELECT i.id, i.fn, i.status, i.created_at, i.started_at, i.not_before,"
"          st.steps, st.done, st.last_step, st.waiting, st.wake_at"
"     FROM (SELECT * FROM fx.invocation i"
"            WHERE i.status IN ('queued', 'running') AND i.fn IN (SELECT name FROM fns)"
"              AND EXISTS (SELECT 1 FROM fx.step s WHERE s.invocation_id = i.id)"
"            ORDER BY i.id DESC LIMIT 100) i"
"     CROSS JOIN LATERAL (SELECT count(*) AS steps, count(*) FILTER (WHERE s.done) AS done,"
"          (array_agg(s.name || ' (' || s.kind || ')' ORDER BY s.step DESC))[1] AS last_step,"
"          (array_agg(s.kind ORDER BY s.step) FILTER (WHERE NOT s.done))[1] AS waiting,"
"          min(s.wake_at) FILTER (WHERE NOT s.done) AS wake_at"
"        FROM fx.step s WHERE s.invocation_id = i.id) st) w), '[]')::text"
" FROM tok";

/*
 * Workers: the sessions named like a worker's ("fx-HOST-PID-XXXX"; their
 * other sessions are "sql/...", "state/...", "http/...", "dash/..."), with
 * the attempts each holds; $2: this worker's own gauges, $3: its name.
 */
static const char sql_workers[] =
"WITH tok AS (SELECT fx.token_allows($1, '') AS verdict)"
" SELECT tok.verdict, CASE WHEN tok.verdict <> 'unknown' THEN jsonb_build_object("
"   'database', current_database(), 'server_version', current_setting('server_version'),"
"   'now', now(), 'queue_depth', fx.queue_depth(), 'self', $2::jsonb,"
"   'workers', coalesce((SELECT jsonb_agg(jsonb_build_object("
"       'name', a.application_name, 'pid', a.pid,"
"       'client', coalesce(host(a.client_addr), 'local'),"
"       'backend_start', a.backend_start, 'state', a.state, 'state_change', a.state_change,"
"       'running', (SELECT count(*) FROM fx.invocation i"
"                    WHERE i.status = 'running' AND i.lease_owner = a.application_name),"
"       'http', EXISTS (SELECT 1 FROM pg_stat_activity h"
"                        WHERE h.application_name = 'http/' || a.application_name),"
"       'self', a.application_name = $3) ORDER BY a.backend_start)"
"     FROM pg_stat_activity a"
"    WHERE a.application_name LIKE 'fx-%' AND a.datname = current_database()), '[]')"
"  )::text END"
" FROM tok";

/*
 * Invocations finished in each of the last $2 whole seconds, oldest first.
 * fx.invocation has no index on finished_at: the scan is bounded to the
 * newest 100 000 invocations (by id, the primary key).
 */
static const char sql_throughput[] =
API_SCOPE ","
" win AS (SELECT date_trunc('second', now()) AS hi, $2::int AS n),"
" fin AS (SELECT win.n - 1 - floor(extract(epoch FROM win.hi - i.finished_at))::int AS k,"
"                i.status"
"           FROM fx.invocation i, win"
"          WHERE i.id > (SELECT coalesce(max(m.id), 0) FROM fx.invocation m) - 100000"
"            AND i.finished_at >= win.hi - make_interval(secs => win.n)"
"            AND i.finished_at < win.hi AND i.fn IN (SELECT name FROM fns)),"
" per AS (SELECT fin.k, count(*) FILTER (WHERE fin.status = 'succeeded') AS ok,"
"                count(*) FILTER (WHERE fin.status IN ('failed', 'dead')) AS bad"
"           FROM fin GROUP BY fin.k)"
" SELECT tok.verdict, CASE WHEN tok.verdict <> 'unknown' THEN jsonb_build_object("
"   'end', win.hi, 'seconds', win.n,"
"   'succeeded', (SELECT jsonb_agg(coalesce(per.ok, 0) ORDER BY g)"
"                   FROM generate_series(0, win.n - 1) g LEFT JOIN per ON per.k = g),"
"   'failed', (SELECT jsonb_agg(coalesce(per.bad, 0) ORDER BY g)"
"                FROM generate_series(0, win.n - 1) g LEFT JOIN per ON per.k = g)"
"  )::text END"
" FROM tok, win";

static void
serve_file(http_conn *c, const char *ctype, const char *body, size_t len)
{
	if (c->parser.method != HTTP_GET)
	{
		method_not_allowed(c, "GET");
		return;
	}
	respond(c, 200, ctype, PAGE_HEADERS, body, len);
}

/* GET /, /dashboard.js, /dashboard.css; false if path is none of them. */
static bool
serve_page(http_conn *c, const char *path)
{
	if (strcmp(path, "/") == 0)
		serve_file(c, "text/html; charset=utf-8", fx_dashboard_html, sizeof(fx_dashboard_html) - 1);
	else if (strcmp(path, "/dashboard.js") == 0)
		serve_file(c, "text/javascript; charset=utf-8", fx_dashboard_js, sizeof(fx_dashboard_js) - 1);
	else if (strcmp(path, "/dashboard.css") == 0)
		serve_file(c, "text/css; charset=utf-8", fx_dashboard_css, sizeof(fx_dashboard_css) - 1);
	else
		return false;
	return true;
}

static void
api_cb(fx_db *db, PGresult *res, void *arg)
{
	http_req   *r = arg;
	const char *verdict;
	char	   *msg;

	(void) db;
	if (gone(r))
		return;
	if (res == NULL && !r->resent)
	{
		r->resent = true;		/* a read: ask again after the reconnect */
		api_send(r);
		return;
	}
	if (res == NULL)
	{
		answer_error(r, 503, "the database connection is down", NULL, 0);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		answer_sql_error(r, res);
		return;
	}
	verdict = PQgetvalue(res, 0, 0);
	if (strcmp(verdict, "unknown") == 0)
		answer_error(r, 401, "invalid token", NULL, 0);
	else if (strcmp(verdict, "missing") == 0)
	{
		msg = fx_xasprintf("invocation %s does not exist", r->params[1]);
		answer_error(r, 404, msg, NULL, 0);
		free(msg);
	}
	else if (PQgetisnull(res, 0, 1))	/* forbidden, of one invocation */
		answer_error(r, 403, "this token may not see invocations of this function", NULL, 0);
	else
		answer(r, 200, JSON_TYPE, "Cache-Control: no-store\r\n",
			   PQgetvalue(res, 0, 1), PQgetlength(res, 0, 1));
}

static void
api_connect_timeout(uv_timer_t *t)
{
	http_req   *r = t->data;

	unlist(r);
	answer_error(r, 503, "the database connection is down", NULL, 0);
}

/* Open the dashboard's session: read-only, with a statement timeout. */
static void
dash_start(fx_http *h)
{
	char	   *name = fx_xasprintf("dash/%s", h->owner);

	fx_db_init(&h->dash, h->loop, h->db.conninfo, name);
	free(name);
	h->dash_started = true;
	h->open++;
	h->dash.data = h;
	h->dash.on_ready = dash_ready;
	h->dash.on_closed = db_closed;
	fx_db_start(&h->dash);
}

/* Send r's statement, or wait for the session (at most DASH_CONNECT_MS). */
static void
api_send(http_req *r)
{
	fx_http    *h = r->h;

	if (!h->dash_started)
		dash_start(h);
	if (h->dash.state != FX_DB_READY)
	{
		r->next = h->dash_waiting;
		h->dash_waiting = r;
		r->listed = true;
		uv_timer_start(&r->timer, api_connect_timeout, DASH_CONNECT_MS, 0);
		return;
	}
	r->in_db = true;
	fx_db_query_prepared(&h->dash, r->sql, r->nparams,
						 (const char *const *) r->params, api_cb, r);
}

static void
dash_ready(fx_db *db)
{
	fx_http    *h = db->data;

	fx_db_query_simple(db, "SET statement_timeout = '" DASH_STATEMENT_TIMEOUT "';"
					   " SET default_transaction_read_only = on",
					   ignore_cb, "setting up the dashboard's session");
	while (h->dash_waiting)
	{
		http_req   *r = h->dash_waiting;

		unlist(r);
		api_send(r);
	}
}

/* The value of key in a query string, decoded; NULL if absent or malformed. */
static char *
query_value(const char *q, const char *key)
{
	size_t		klen = strlen(key);

	while (q && *q)
	{
		size_t		len = strcspn(q, "&");

		if (len > klen && strncmp(q, key, klen) == 0 && q[klen] == '=')
			return decode(q + klen + 1, len - klen - 1, true);
		q += len;
		if (*q == '&')
			q++;
	}
	return NULL;
}

/* An integer query parameter from lo to hi, def if absent; -1 if bad. */
static long
query_int(const char *q, const char *key, long def, long lo, long hi)
{
	char	   *v = query_value(q, key);
	char	   *end;
	long		n;

	if (v == NULL)
		return def;
	n = strtol(v, &end, 10);
	if (*end || end == v || n < lo || n > hi)
		n = -1;
	free(v);
	return n;
}

/* The parameters of each /api statement after the secret: NULL, or why not. */
static const char *
params_none(http_req *r, const char *id, const char *query)
{
	return NULL;
}

static const char *
params_invocations(http_req *r, const char *id, const char *query)
{
	long		limit = query_int(query, "limit", 50, 1, MAX_LIST);

	if (limit < 0)
		return "limit must be a whole number from 1 to 200";
	r->params[1] = query_value(query, "fn");	/* NULL: every function */
	r->params[2] = fx_xasprintf("%ld", limit);
	r->nparams = 3;
	return NULL;
}

static const char *
params_invocation(http_req *r, const char *id, const char *query)
{
	r->params[1] = fx_xstrdup(id);
	r->nparams = 2;
	return NULL;
}

static const char *
params_workers(http_req *r, const char *id, const char *query)
{
	fx_http    *h = r->h;
	fx_http_gauges g = {0, 0, 0};
	cJSON	   *self = cJSON_CreateObject();
	cJSON	   *resp = cJSON_AddObjectToObject(self, "responses");
	char	   *printed;
	char		name[8];

	if (h->gauges)
		h->gauges(h->arg, &g);
	cJSON_AddStringToObject(self, "name", h->owner);
	cJSON_AddStringToObject(self, "http", h->addr);
	cJSON_AddNumberToObject(self, "running", g.running);
	cJSON_AddNumberToObject(self, "claimed", g.claimed);
	cJSON_AddNumberToObject(self, "warm", g.warm);
	for (int i = 1; i < 6; i++)
	{
		snprintf(name, sizeof(name), "%dxx", i);
		cJSON_AddNumberToObject(resp, name, (double) h->responses[i]);
	}
	printed = cJSON_PrintUnformatted(self);
	r->params[1] = fx_xstrdup(printed);
	r->params[2] = fx_xstrdup(h->owner);
	r->nparams = 3;
	cJSON_free(printed);
	cJSON_Delete(self);
	return NULL;
}

static const char *
params_throughput(http_req *r, const char *id, const char *query)
{
	long		secs = query_int(query, "seconds", 60, 10, MAX_THROUGHPUT_S);

	if (secs < 0)
		return "seconds must be a whole number from 10 to 600";
	r->params[1] = fx_xasprintf("%ld", secs);
	r->nparams = 2;
	return NULL;
}

typedef struct api_endpoint
{
	const char *path;			/* after /api/; ending in '/': an ID follows */
	const char *sql;
	const char *(*params) (http_req *r, const char *id, const char *query);
} api_endpoint;

static const api_endpoint endpoints[] = {
	{"functions", sql_functions, params_none},
	{"invocations", sql_invocations, params_invocations},
	{"invocations/", sql_invocation, params_invocation},
	{"workflows", sql_workflows, params_none},
	{"workers", sql_workers, params_workers},
	{"throughput", sql_throughput, params_throughput},
};

/* Answer GET /api/... with e's statement; secret is the bearer token's. */
static void
api_request(http_conn *c, const api_endpoint *e, const char *id, const char *query,
			const char *secret)
{
	http_req   *r = req_new(c, REQ_API);
	const char *err;

	r->sql = e->sql;
	r->params[0] = fx_xstrdup(secret);
	r->nparams = 1;
	err = e->params(r, id, query);
	if (err)
	{
		answer_error(r, 400, err, NULL, 0);
		return;
	}
	api_send(r);
}

/* ---------------------------------------------------------------------
 * Routing
 * --------------------------------------------------------------------- */

/* The secret of "Authorization: Bearer SECRET", or NULL. */
static char *
bearer(http_conn *c)
{
	const char *v = c->auth;
	size_t		n;

	if (v == NULL || c->auth_len < 7 || strncasecmp(v, "bearer ", 7) != 0)
		return NULL;
	v += 7;
	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	return n > 0 ? strndup(v, n) : NULL;
}

static bool
all_digits(const char *s)
{
	size_t		n = strlen(s);

	if (n == 0 || n > 18)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static void
method_not_allowed(http_conn *c, const char *allow)
{
	char	   *extra = fx_xasprintf("Allow: %s\r\n", allow);
	char	   *msg = fx_xasprintf("method %s is not allowed here; use %s",
								   http_method_str(c->parser.method), allow);

	respond_error(c, 405, extra, msg, NULL, 0);
	free(extra);
	free(msg);
}

/* /fn/NAME and /invocations/ID: the token first, then the work. */
static void
route_api(http_conn *c, bool fn, const char *arg, const char *query)
{
	char	   *secret;

	if (c->parser.method != (fn ? HTTP_POST : HTTP_GET))
	{
		method_not_allowed(c, fn ? "POST" : "GET");
		return;
	}
	secret = bearer(c);
	if (secret == NULL)
	{
		respond_error(c, 401, "WWW-Authenticate: Bearer realm=\"fx\"\r\n",
					  "a bearer token is required (Authorization: Bearer SECRET)", NULL, 0);
		return;
	}
	if (fn)
		call(c, arg, query, secret);
	else
		get_invocation(c, arg, secret);
	free(secret);
}

/* The endpoint of path (after "/api/") and its ID, or NULL. */
static const api_endpoint *
api_find(const char *path, const char **id)
{
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
	{
		const api_endpoint *e = &endpoints[i];
		size_t		n = strlen(e->path);

		*id = NULL;
		if (e->path[n - 1] != '/' ? strcmp(path, e->path) == 0
			: strncmp(path, e->path, n) == 0 && all_digits(path + n))
		{
			*id = e->path[n - 1] == '/' ? path + n : NULL;
			return e;
		}
	}
	return NULL;
}

/* GET /api/...: the dashboard's reads, with a bearer token. */
static void
route_dash(http_conn *c, const char *path, const char *query)
{
	const char *id;
	const api_endpoint *e = api_find(path + 5, &id);
	char	   *secret;

	if (e == NULL)
	{
		respond_error(c, 404, NULL, "not found",
					  "Paths: /api/functions, /api/invocations, /api/invocations/ID,"
					  " /api/workflows, /api/workers, /api/throughput.", 0);
		return;
	}
	if (c->parser.method != HTTP_GET)
	{
		method_not_allowed(c, "GET");
		return;
	}
	secret = bearer(c);
	if (secret == NULL)
	{
		respond_error(c, 401, "WWW-Authenticate: Bearer realm=\"fx\"\r\n",
					  "a bearer token is required (Authorization: Bearer SECRET)", NULL, 0);
		return;
	}
	api_request(c, e, id, query, secret);
	free(secret);
}

static void
route(http_conn *c, const char *path, const char *query)
{
	size_t		n = strlen(path);
	char	   *arg = NULL;

	if (serve_page(c, path))
		return;
	if (strncmp(path, "/api/", 5) == 0)
		route_dash(c, path, query);
	else if (strcmp(path, "/metrics") == 0)
	{
		if (c->parser.method == HTTP_GET)
			scrape(c);
		else
			method_not_allowed(c, "GET");
	}
	else if (n > 4 && memcmp(path, "/fn/", 4) == 0 && memchr(path + 4, '/', n - 4) == NULL &&
			 (arg = decode(path + 4, n - 4, false)) != NULL)
		route_api(c, true, arg, query);
	else if (n > 13 && memcmp(path, "/invocations/", 13) == 0 && all_digits(path + 13))
		route_api(c, false, path + 13, query);
	else
		respond_error(c, 404, NULL, "not found",
					  "Paths: POST /fn/NAME, GET /invocations/ID, GET /metrics, GET / (the dashboard) and GET /api/*.", 0);
	free(arg);
}

/* A whole request was read: answer it. */
static void
dispatch(http_conn *c)
{
	struct http_parser_url u;
	char	   *path;
	char	   *query = NULL;

	if (c->parser.upgrade)
		c->keep_alive = false;	/* no protocol switch here */
	http_parser_url_init(&u);
	if (c->url == NULL ||
		http_parser_parse_url(c->url, c->url_len, c->parser.method == HTTP_CONNECT, &u) != 0 ||
		!(u.field_set & (1 << UF_PATH)))
	{
		c->keep_alive = false;
		respond_error(c, 400, NULL, "invalid request target", NULL, 0);
		return;
	}
	path = strndup(c->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
	if (u.field_set & (1 << UF_QUERY))
		query = strndup(c->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
	route(c, path, query);
	free(path);
	free(query);
}

/* ---------------------------------------------------------------------
 * Parsing (http-parser callbacks)
 * --------------------------------------------------------------------- */

/* Count request line and header bytes; false past the limit. */
static bool
header_room(http_conn *c, size_t n)
{
	c->header_bytes += n;
	if (c->header_bytes <= MAX_HEADER_BYTES)
		return true;
	c->refuse = 431;
	return false;
}

static void
append(char **buf, size_t *len, const char *at, size_t n)
{
	*buf = fx_xrealloc(*buf, *len + n + 1);
	memcpy(*buf + *len, at, n);
	*len += n;
	(*buf)[*len] = '\0';
}

static int
on_message_begin(http_parser *p)
{
	http_conn  *c = p->data;

	/* the whole request must come within IDLE_MS (slow clients) */
	uv_timer_start(&c->timer, conn_timeout, IDLE_MS, 0);
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
	http_conn  *c = p->data;

	if (!header_room(c, n))
		return -1;
	append(&c->url, &c->url_len, at, n);
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t n)
{
	http_conn  *c = p->data;

	if (!header_room(c, n))
		return -1;
	if (c->in_value)
	{
		c->in_value = false;
		c->field_len = 0;
	}
	for (size_t i = 0; i < n; i++, c->field_len++)
		if (c->field_len < sizeof(c->field) - 1)
			c->field[c->field_len] = (char) tolower((unsigned char) at[i]);
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
	http_conn  *c = p->data;

	if (!header_room(c, n))
		return -1;
	if (!c->in_value)
	{
		c->in_value = true;
		c->which = HDR_OTHER;
		if (c->field_len == 13 && memcmp(c->field, "authorization", 13) == 0)
		{
			c->which = HDR_AUTH;
			c->auth_len = 0;
		}
		else if (c->field_len == 6 && memcmp(c->field, "expect", 6) == 0)
		{
			c->which = HDR_EXPECT;
			c->expect_len = 0;
		}
	}
	if (c->which == HDR_AUTH)
		append(&c->auth, &c->auth_len, at, n);
	else if (c->which == HDR_EXPECT)
		for (size_t i = 0; i < n && c->expect_len < sizeof(c->expect) - 1; i++)
			c->expect[c->expect_len++] = (char) tolower((unsigned char) at[i]);
	return 0;
}

static int
on_headers_complete(http_parser *p)
{
	http_conn  *c = p->data;

	c->in_value = false;
	c->field_len = 0;
	c->keep_alive = http_should_keep_alive(p);
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->h->max_body)
	{
		c->refuse = 413;
		return -1;
	}
	c->expect[c->expect_len] = '\0';
	if (c->expect_len > 0 && strcmp(c->expect, "100-continue") == 0 &&
		p->http_major == 1 && p->http_minor >= 1)
	{
		const char	cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		send_bytes(c, fx_xstrdup(cont), sizeof(cont) - 1, false);
	}
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	http_conn  *c = p->data;

	if (c->body_len + n > c->h->max_body)
	{
		c->refuse = 413;
		return -1;
	}
	if (c->body_len + n + 1 > c->body_cap)
	{
		c->body_cap = (c->body_len + n + 1) * 2;
		if (c->body_cap > c->h->max_body + 1)
			c->body_cap = c->h->max_body + 1;
		c->body = fx_xrealloc(c->body, c->body_cap);
	}
	memcpy(c->body + c->body_len, at, n);
	c->body_len += n;
	c->body[c->body_len] = '\0';
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	http_conn  *c = p->data;

	c->complete = true;
	http_parser_pause(p, 1);	/* the next request waits for this answer */
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* Parse what the client sent; answer a request once it is complete. */
static void
feed(http_conn *c, const char *data, size_t len)
{
	size_t		n = http_parser_execute(&c->parser, &settings, data, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

	if (c->refuse == 413)
		refuse(c, 413, "the request body is larger than fx.max_payload_size");
	else if (c->refuse == 431)
		refuse(c, 431, "the request line and headers exceed 16 KiB");
	else if (c->complete)
	{
		/* keep what follows (pipelined) for after the answer */
		char	   *copy = n < len ? fx_xmalloc(len - n) : NULL;

		if (copy)
			memcpy(copy, data + n, len - n);
		free(c->rest);
		c->rest = copy;
		c->rest_len = len - n;
		uv_read_stop((uv_stream_t *) &c->tcp);
		uv_timer_stop(&c->timer);
		dispatch(c);
	}
	else if (e != HPE_OK)
		refuse(c, 400, http_errno_description(e));
}

/* ---------------------------------------------------------------------
 * Connections
 * --------------------------------------------------------------------- */

static void
conn_closed(uv_handle_t *handle)
{
	http_conn  *c = handle->data;
	fx_http    *h = c->h;

	if (--c->open > 0)
		return;
	free(c->url);
	free(c->auth);
	free(c->body);
	free(c->rest);
	free(c);
	release(h);
}

static void
conn_close(http_conn *c)
{
	fx_http    *h = c->h;

	if (c->closing)
		return;
	c->closing = true;
	if (c->req)
	{
		http_req   *r = c->req;

		c->req = NULL;
		r->c = NULL;
		if (!r->in_db)
			req_free(r);		/* else when its query returns */
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->nconns--;
	uv_close((uv_handle_t *) &c->tcp, conn_closed);
	uv_close((uv_handle_t *) &c->timer, conn_closed);
}

static void
conn_timeout(uv_timer_t *t)
{
	conn_close(t->data);
}

static void
alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	(void) handle;
	buf->base = fx_xmalloc(suggested);
	buf->len = suggested;
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	http_conn  *c = s->data;

	if (nread < 0)
		conn_close(c);			/* EOF, reset */
	else if (nread > 0 && !c->closing && !c->lingering)
		feed(c, buf->base, (size_t) nread);
	free(buf->base);
}

static void
on_connection(uv_stream_t *server, int status)
{
	fx_http    *h = server->data;
	http_conn  *c;

	if (status < 0)
	{
		fx_warn("http: accepting a connection failed: %s", uv_strerror(status));
		return;
	}
	c = fx_xcalloc(1, sizeof(*c));
	c->h = h;
	c->open = 2;
	h->open++;
	uv_tcp_init(h->loop, &c->tcp);
	uv_timer_init(h->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->nconns++;
	if (uv_accept(server, (uv_stream_t *) &c->tcp) < 0)
	{
		conn_close(c);
		return;
	}
	if (h->nconns > MAX_CONNS)
	{
		fx_warn("http: more than %d connections: closing a new one", MAX_CONNS);
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	uv_timer_start(&c->timer, conn_timeout, IDLE_MS, 0);
	uv_read_start((uv_stream_t *) &c->tcp, alloc_cb, on_read);
}

/* ---------------------------------------------------------------------
 * The database connection
 * --------------------------------------------------------------------- */

static void
ignore_cb(fx_db *db, PGresult *res, void *arg)
{
	(void) db;
	if (res && PQresultStatus(res) != PGRES_COMMAND_OK &&
		PQresultStatus(res) != PGRES_TUPLES_OK)
		fx_err("http: %s failed: %s", (const char *) arg, fx_db_error(res));
}

static void
max_body_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_http    *h = arg;
	long long	n;

	(void) db;
	if (res == NULL || h->stopping)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		fx_err("http: reading fx.max_payload_size failed: %s", fx_db_error(res));
		return;
	}
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (n > 0)
		h->max_body = (size_t) n;
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
				unlist(r);
				fetch_outcome(r, false);
				break;
			}
	}
}

static void
db_ready(fx_db *db)
{
	fx_http    *h = db->data;
	char		sql[64];
	strbuf		ids = {0};
	const char *params[1];

	snprintf(sql, sizeof(sql), "LISTEN fx_done_%d", PQbackendPID(db->conn));
	fx_db_query_simple(db, sql, ignore_cb, "LISTEN");
	fx_db_query_params(db, "SELECT fx.http_max_body()", 0, NULL, max_body_cb, h);
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

static void
db_notify(fx_db *db, const char *channel, const char *payload)
{
	fx_http    *h = db->data;
	char	   *end;
	int64_t		id;

	if (strncmp(channel, "fx_done_", 8) != 0)
		return;
	id = strtoll(payload, &end, 10);
	for (http_req *r = h->waiting; r; r = r->next)
		if (r->id == id)
		{
			unlist(r);
			if (*end == ' ')	/* "ID RESULT": it succeeded */
				answer(r, 200, JSON_TYPE, NULL, end + 1, strlen(end + 1));
			else
				fetch_outcome(r, false);
			return;
		}
}

static void
db_closed(fx_db *db)
{
	release(db->data);
}

/* ---------------------------------------------------------------------
 * Starting and stopping
 * --------------------------------------------------------------------- */

static int
parse_addr(const char *addr, struct sockaddr_storage *ss, char **why)
{
	char		host[64];
	const char *colon;
	const char *h = addr;
	size_t		hlen;
	char	   *end;
	long		port;
	bool		v6 = addr[0] == '[';
	int			rc;

	if (v6)
	{
		const char *close = strchr(addr, ']');

		colon = close ? close + 1 : NULL;
		h = addr + 1;
		hlen = close ? (size_t) (close - h) : 0;
		if (colon && *colon != ':')
			colon = NULL;
	}
	else
	{
		colon = strrchr(addr, ':');
		hlen = colon ? (size_t) (colon - addr) : 0;
	}
	if (colon == NULL || hlen >= sizeof(host))
		goto bad;
	port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 0 || port > 65535)
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (v6)
		rc = uv_ip6_addr(host, (int) port, (struct sockaddr_in6 *) ss);
	else
		rc = uv_ip4_addr(hlen == 0 ? "0.0.0.0" : strcmp(host, "localhost") == 0
						 ? "127.0.0.1" : host, (int) port, (struct sockaddr_in *) ss);
	if (rc == 0)
		return 0;
bad:
	*why = fx_xasprintf("invalid --http address \"%s\": use HOST:PORT with a numeric host, :PORT or [IPV6]:PORT",
						addr);
	return -1;
}

static void
listener_closed(uv_handle_t *handle)
{
	release(handle->data);
}

/* The address actually bound (PORT 0 picks one), for the log. */
static void
log_address(fx_http *h)
{
	struct sockaddr_storage ss;
	int			len = sizeof(ss);
	char		ip[64] = "?";
	int			port = 0;

	if (uv_tcp_getsockname(&h->listener, (struct sockaddr *) &ss, &len) == 0)
	{
		if (ss.ss_family == AF_INET6)
		{
			uv_ip6_name((struct sockaddr_in6 *) &ss, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
			fx_info("http: serving on [%s]:%d", ip, port);
			return;
		}
		uv_ip4_name((struct sockaddr_in *) &ss, ip, sizeof(ip));
		port = ntohs(((struct sockaddr_in *) &ss)->sin_port);
	}
	fx_info("http: serving on %s:%d", ip, port);
}

fx_http *
fx_http_start(uv_loop_t *loop, const fx_http_config *cfg, char **why)
{
	struct sockaddr_storage ss;
	fx_http    *h;
	int			rc;

	memset(&ss, 0, sizeof(ss));
	if (parse_addr(cfg->addr, &ss, why) < 0)
		return NULL;
	h = fx_xcalloc(1, sizeof(*h));
	h->loop = loop;
	h->addr = fx_xstrdup(cfg->addr);
	h->gauges = cfg->gauges;
	h->arg = cfg->arg;
	/* the worker's name: its HTTP session's is "http/NAME" */
	h->owner = fx_xstrdup(strncmp(cfg->appname, "http/", 5) == 0 ? cfg->appname + 5 : cfg->appname);
	h->max_body = DEFAULT_MAX_BODY;
	h->queue_depth = -1;
	h->open = 2;				/* itself and the listener */
	uv_tcp_init(loop, &h->listener);
	h->listener.data = h;
	rc = uv_tcp_bind(&h->listener, (struct sockaddr *) &ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *) &h->listener, 128, on_connection);
	if (rc < 0)
	{
		*why = fx_xasprintf("cannot listen on %s: %s", cfg->addr, uv_strerror(rc));
		h->stopping = true;
		uv_close((uv_handle_t *) &h->listener, listener_closed);
		release(h);
		return NULL;
	}
	h->listening = true;
	log_address(h);
	fx_db_init(&h->db, loop, cfg->conninfo, cfg->appname);
	h->open++;
	h->db.data = h;
	h->db.on_ready = db_ready;
	h->db.on_notify = db_notify;
	h->db.on_closed = db_closed;
	fx_db_start(&h->db);
	return h;
}

void
fx_http_drain(fx_http *h)
{
	if (!h->listening)
		return;
	h->listening = false;
	uv_close((uv_handle_t *) &h->listener, listener_closed);
}

void
fx_http_stop(fx_http *h)
{
	h->stopping = true;
	fx_http_drain(h);
	while (h->conns)
		conn_close(h->conns);
	fx_db_close(&h->db);		/* queries in flight: their callbacks free them */
	if (h->dash_started)
		fx_db_close(&h->dash);
	while (h->waiting)
		req_free(h->waiting);
	while (h->scrapes)
		req_free(h->scrapes);
	while (h->dash_waiting)
		req_free(h->dash_waiting);
	release(h);
}
