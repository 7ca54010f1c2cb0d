/*
 * fx_http.c: the worker's HTTP server: function URLs, /metrics and the
 * dashboard.  This file starts and stops it, keeps its database session,
 * and routes each request to its part (fx_http_int.h lists them):
 * connections and parsing in fx_http_conn.c, calls in fx_http_fn.c,
 * metrics in fx_http_metrics.c, the dashboard in fx_http_api.c.
 *
 * Connections are libuv TCP streams whose requests are parsed by the
 * nodejs http-parser library, one answered at a time per connection.  A
 * request that needs the database becomes an http_req, which lives until
 * its query returns even if its client has gone (then nobody is answered).
 * Everything the server holds counts in h->open: itself, its listener,
 * its database sessions, connections and requests; h is freed with the
 * last (fx_http_release).
 *
 * The server has a database connection of its own (fx_db), on which /fn,
 * /invocations and /metrics run, and the dashboard's /api reads a second
 * one, opened on the first of them ("dash/OWNER").  On each (re)connect the
 * session LISTENs for the ends of the calls it waits for (fx_done_<pid>),
 * reads fx.max_payload_size, and moves the waits of the session before
 * to itself.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <strings.h>
#include <arpa/inet.h>

#include "fx_http_int.h"

#define DEFAULT_MAX_BODY (6 * 1024 * 1024)	/* until fx.max_payload_size is read */

/* ---------------------------------------------------------------------
 * Small helpers
 * --------------------------------------------------------------------- */

void
fx_http_release(fx_http *h)
{
	if (--h->open > 0)
		return;
	fx_http_metrics_free(h);
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

char *
fx_http_decode(const char *s, size_t n, bool plus)
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

bool
fx_http_all_digits(const char *s)
{
	size_t		n = strlen(s);

	if (n == 0 || n > 18)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
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
	fx_http_release(h);
}

http_req *
fx_http_req_new(http_conn *c, req_kind kind)
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

void
fx_http_unlist(http_req *r)
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

void
fx_http_req_free(http_req *r)
{
	if (r->c)
		r->c->req = NULL;
	r->c = NULL;
	fx_http_unlist(r);
	uv_close((uv_handle_t *) &r->timer, req_closed);
}

/* r's memory stays until its timer is closed, after the caller returns. */
http_conn *
fx_http_req_done(http_req *r)
{
	http_conn  *c = r->c;

	fx_http_req_free(r);
	return c;
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

void
fx_http_answer_sql_error(http_req *r, PGresult *res)
{
	int			status = sql_status(res);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	if (status == 500 || status == 503)
		fx_err("http: %s", fx_db_error(res));
	fx_http_reply_error(fx_http_req_done(r), status, NULL, msg ? msg : "database error",
						PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL), 0);
}

/*
 * fx.http_invoke, fx.http_invocation and the /api statements return one
 * row or fail: anything else is the connection gone or the statement's
 * error, answered here so that their callbacks read only the row.
 */
bool
fx_http_row_or_answer(http_req *r, PGresult *res)
{
	if (res == NULL)
	{
		fx_http_reply_error(fx_http_req_done(r), 503, NULL, "the database connection is down", NULL, 0);
		return false;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		fx_http_answer_sql_error(r, res);
		return false;
	}
	return true;
}

bool
fx_http_gone(http_req *r)
{
	r->in_db = false;
	if (r->c && !r->h->stopping)
		return false;
	fx_http_req_free(r);
	return true;
}

/* ---------------------------------------------------------------------
 * Routing
 * --------------------------------------------------------------------- */

char *
fx_http_token(http_conn *c)
{
	const char *v = c->auth;
	size_t		n;

	if (v == NULL || c->auth_len < 7 || strncasecmp(v, "bearer ", 7) != 0)
		goto none;
	v += 7;
	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n > 0)
		return strndup(v, n);
none:
	fx_http_reply_error(c, 401, NULL,
						"a bearer token is required (Authorization: Bearer SECRET)", NULL, 0);
	return NULL;
}

/* /fn/NAME and /invocations/ID: the token first, then the work. */
static void
route_api(http_conn *c, bool fn, const char *arg, const char *query)
{
	char	   *secret;

	if (c->parser.method != (fn ? HTTP_POST : HTTP_GET))
	{
		fx_http_method_not_allowed(c, fn ? "POST" : "GET");
		return;
	}
	secret = fx_http_token(c);
	if (secret == NULL)
		return;
	if (fn)
		fx_http_call(c, arg, query, secret);
	else
		fx_http_get_invocation(c, arg, secret);
	free(secret);
}

void
fx_http_route(http_conn *c, const char *path, const char *query)
{
	size_t		n = strlen(path);
	char	   *arg = NULL;

	if (fx_http_serve_page(c, path))
		return;
	if (strncmp(path, "/api/", 5) == 0)
		fx_http_route_dash(c, path, query);
	else if (strcmp(path, "/metrics") == 0)
	{
		if (c->parser.method == HTTP_GET)
			fx_http_scrape(c);
		else
			fx_http_method_not_allowed(c, "GET");
	}
	else if (n > 4 && memcmp(path, "/fn/", 4) == 0 && memchr(path + 4, '/', n - 4) == NULL &&
			 (arg = fx_http_decode(path + 4, n - 4, false)) != NULL)
		route_api(c, true, arg, query);
	else if (n > 13 && memcmp(path, "/invocations/", 13) == 0 && fx_http_all_digits(path + 13))
		route_api(c, false, path + 13, query);
	else
		fx_http_reply_error(c, 404, NULL, "not found",
							"Paths: POST /fn/NAME, GET /invocations/ID, GET /metrics, GET / (the dashboard) and GET /api/*.", 0);
	free(arg);
}

/* ---------------------------------------------------------------------
 * The database connection
 * --------------------------------------------------------------------- */

void
fx_http_ignore_cb(fx_db *db, PGresult *res, void *arg)
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

static void
db_ready(fx_db *db)
{
	fx_http    *h = db->data;
	char		sql[64];

	snprintf(sql, sizeof(sql), "LISTEN fx_done_%d", PQbackendPID(db->conn));
	fx_db_query_simple(db, sql, fx_http_ignore_cb, "LISTEN");
	fx_db_query_params(db, "SELECT fx.http_max_body()", 0, NULL, max_body_cb, h);
	fx_http_rewait(h, db);
}

static void
db_notify(fx_db *db, const char *channel, const char *payload)
{
	if (strncmp(channel, "fx_done_", 8) != 0)
		return;
	fx_http_call_ended(db->data, payload);
}

void
fx_http_db_closed(fx_db *db)
{
	fx_http_release(db->data);
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
	fx_http_release(handle->data);
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
		rc = uv_listen((uv_stream_t *) &h->listener, 128, fx_http_on_connection);
	if (rc < 0)
	{
		*why = fx_xasprintf("cannot listen on %s: %s", cfg->addr, uv_strerror(rc));
		h->stopping = true;
		uv_close((uv_handle_t *) &h->listener, listener_closed);
		fx_http_release(h);
		return NULL;
	}
	h->listening = true;
	log_address(h);
	fx_db_init(&h->db, loop, cfg->conninfo, cfg->appname);
	h->open++;
	h->db.data = h;
	h->db.on_ready = db_ready;
	h->db.on_notify = db_notify;
	h->db.on_closed = fx_http_db_closed;
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
		fx_http_conn_close(h->conns);
	fx_db_close(&h->db);		/* queries in flight: their callbacks free them */
	if (h->dash_started)
		fx_db_close(&h->dash);
	while (h->waiting)
		fx_http_req_free(h->waiting);
	while (h->scrapes)
		fx_http_req_free(h->scrapes);
	while (h->dash_waiting)
		fx_http_req_free(h->dash_waiting);
	fx_http_release(h);
}
