/*
 * fx_http_int.h: what the parts of the worker's HTTP server share; the
 * worker sees only fx_http.h.
 *
 *   fx_http.c          starting and stopping, the database session, requests
 *                      (an answer that may outlive its client) and routing
 *   fx_http_conn.c     connections: reading, parsing, limits, writing answers
 *   fx_http_fn.c       POST /fn/NAME and GET /invocations/ID
 *   fx_http_metrics.c  the counters and histograms, GET /metrics
 *   fx_http_api.c      the dashboard: GET / and its files, GET /api/...
 *
 * Vocabulary: a connection is replied to (fx_http_reply*, by the parts that
 * answer at once); a request, which may wait for the database after its
 * client has gone, is answered by ending it (fx_http_req_done) and
 * replying to the connection that gives back, if any.
 */
#ifndef FX_HTTP_INT_H
#define FX_HTTP_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>
#include <uv.h>

#include "fx_db.h"
#include "fx_http.h"
#include "fx_log.h"

#define JSON_TYPE "application/json"

typedef struct fn_stats fn_stats;	/* a function's metrics (fx_http_metrics.c) */

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

/* ---------------------------------------------------------------------
 * A growing string: answers, the metrics page, lists of ids
 * --------------------------------------------------------------------- */

typedef struct strbuf
{
	char	   *s;
	size_t		len;
	size_t		cap;
} strbuf;

static inline void
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

static inline void sb_printf(strbuf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static inline void
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

/* ---------------------------------------------------------------------
 * fx_http.c
 * --------------------------------------------------------------------- */

/* One of h->open is gone; h is freed with the last. */
void		fx_http_release(fx_http *h);

/* Percent-decode s[0..n), '+' as a space if plus; NULL if malformed or NUL. */
char	   *fx_http_decode(const char *s, size_t n, bool plus);

/* s is an invocation id: 1 to 18 digits. */
bool		fx_http_all_digits(const char *s);

/* The secret of "Authorization: Bearer SECRET"; NULL once c had its 401. */
char	   *fx_http_token(http_conn *c);

/* Answer the request c has read completely (fx_http_conn.c parses it). */
void		fx_http_route(http_conn *c, const char *path, const char *query);

http_req   *fx_http_req_new(http_conn *c, req_kind kind);
void		fx_http_req_free(http_req *r);

/* Take r off the list it waits on and stop its timer. */
void		fx_http_unlist(http_req *r);

/* r is answered: free it; the connection to reply to, NULL if none. */
http_conn  *fx_http_req_done(http_req *r);

/* Answer r with the error of a failed statement of fx.http_* or /api. */
void		fx_http_answer_sql_error(http_req *r, PGresult *res);

/*
 * res holds exactly one row: true; else r is answered (503 if the
 * connection is down, else the statement's error) and false.
 */
bool		fx_http_row_or_answer(http_req *r, PGresult *res);

/* A callback's request whose answer nobody can take any more: freed. */
bool		fx_http_gone(http_req *r);

/* fx_db callbacks of both sessions: log a failure; one session less. */
void		fx_http_ignore_cb(fx_db *db, PGresult *res, void *arg);
void		fx_http_db_closed(fx_db *db);

/* ---------------------------------------------------------------------
 * fx_http_conn.c
 * --------------------------------------------------------------------- */

void		fx_http_on_connection(uv_stream_t *server, int status);
void		fx_http_conn_close(http_conn *c);

/* Write an answer to c (none if c is NULL); the connection goes on after it. */
void		fx_http_reply(http_conn *c, int status, const char *ctype, const char *extra,
						  const char *body, size_t len);

/*
 * Reply with a JSON error, {"error": msg[, "detail": detail][, "invocation":
 * id]}, the only way errors are answered; a 401 (extra NULL) asks for a
 * bearer token.
 */
void		fx_http_reply_error(http_conn *c, int status, const char *extra,
								const char *msg, const char *detail, int64_t id);

/* 405, naming the methods allowed. */
void		fx_http_method_not_allowed(http_conn *c, const char *allow);

/* ---------------------------------------------------------------------
 * fx_http_fn.c
 * --------------------------------------------------------------------- */

void		fx_http_call(http_conn *c, const char *fn, const char *query, const char *secret);
void		fx_http_get_invocation(http_conn *c, const char *id, const char *secret);

/* After a (re)connect: move the calls still waiting to this session. */
void		fx_http_rewait(fx_http *h, fx_db *db);

/* The fx_done notification "ID" or "ID RESULT": answer the call waiting. */
void		fx_http_call_ended(fx_http *h, const char *payload);

/* ---------------------------------------------------------------------
 * fx_http_metrics.c
 * --------------------------------------------------------------------- */

void		fx_http_scrape(http_conn *c);
void		fx_http_metrics_free(fx_http *h);

/* ---------------------------------------------------------------------
 * fx_http_api.c
 * --------------------------------------------------------------------- */

/* GET /, /dashboard.js, /dashboard.css; false if path is none of them. */
bool		fx_http_serve_page(http_conn *c, const char *path);

/* GET /api/...: the dashboard's reads, with a bearer token. */
void		fx_http_route_dash(http_conn *c, const char *path, const char *query);

#endif							/* FX_HTTP_INT_H */
