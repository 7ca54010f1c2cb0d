/*
 * fx_http_conn.c: the HTTP server's connections: accepting, reading and
 * parsing requests, their limits, and writing the answers.
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
 * A complete request goes to fx_http_route (fx_http.c); every answer,
 * there or from a request that waited, is written by fx_http_reply, and
 * every error's JSON is built by fx_http_reply_error.
 */
#define _GNU_SOURCE
#include <ctype.h>

#include <cjson/cJSON.h>

#include "fx_http_int.h"

#define MAX_HEADER_BYTES (16 * 1024)	/* request line and headers */
#define MAX_CONNS 1024
#define IDLE_MS 30000			/* for a whole request, or idle between two */
#define LINGER_MS 2000			/* reading a refused upload to its end */

enum
{
	HDR_OTHER,
	HDR_AUTH,
	HDR_EXPECT
};

typedef struct write_req
{
	uv_write_t	req;
	http_conn  *c;
	char	   *data;
	bool		final;			/* the answer, not a 100 Continue */
} write_req;

static void conn_timeout(uv_timer_t *t);
static void feed(http_conn *c, const char *data, size_t len);
static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

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
		fx_http_conn_close(c);
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
		fx_http_conn_close(c);
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
		fx_http_conn_close(c);
	}
}

void
fx_http_reply(http_conn *c, int status, const char *ctype, const char *extra,
			  const char *body, size_t len)
{
	strbuf		b = {0};

	if (c == NULL || c->closing)
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

void
fx_http_reply_error(http_conn *c, int status, const char *extra, const char *msg,
					const char *detail, int64_t id)
{
	cJSON	   *o;
	char	   *body;

	if (c == NULL)
		return;					/* nobody to tell */
	if (status == 401 && extra == NULL)
		extra = "WWW-Authenticate: Bearer realm=\"fx\"\r\n";
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "error", msg);
	if (detail)
		cJSON_AddStringToObject(o, "detail", detail);
	if (id > 0)
		cJSON_AddNumberToObject(o, "invocation", (double) id);
	body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	fx_http_reply(c, status, JSON_TYPE, extra, body, strlen(body));
	cJSON_free(body);
}

void
fx_http_method_not_allowed(http_conn *c, const char *allow)
{
	char	   *extra = fx_xasprintf("Allow: %s\r\n", allow);
	char	   *msg = fx_xasprintf("method %s is not allowed here; use %s",
								   http_method_str(c->parser.method), allow);

	fx_http_reply_error(c, 405, extra, msg, NULL, 0);
	free(extra);
	free(msg);
}

/* Refuse the request being read, then close (after reading what follows). */
static void
refuse(http_conn *c, int status, const char *msg)
{
	c->keep_alive = false;
	c->lingering = true;
	fx_http_reply_error(c, status, NULL, msg, NULL, 0);
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
		fx_http_reply_error(c, 400, NULL, "invalid request target", NULL, 0);
		return;
	}
	path = strndup(c->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
	if (u.field_set & (1 << UF_QUERY))
		query = strndup(c->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
	fx_http_route(c, path, query);
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
	fx_http_release(h);
}

void
fx_http_conn_close(http_conn *c)
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
			fx_http_req_free(r);	/* else when its query returns */
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
	fx_http_conn_close(t->data);
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
		fx_http_conn_close(c);	/* EOF, reset */
	else if (nread > 0 && !c->closing && !c->lingering)
		feed(c, buf->base, (size_t) nread);
	free(buf->base);
}

void
fx_http_on_connection(uv_stream_t *server, int status)
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
		fx_http_conn_close(c);
		return;
	}
	if (h->nconns > MAX_CONNS)
	{
		fx_warn("http: more than %d connections: closing a new one", MAX_CONNS);
		fx_http_conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	uv_timer_start(&c->timer, conn_timeout, IDLE_MS, 0);
	uv_read_start((uv_stream_t *) &c->tcp, alloc_cb, on_read);
}
