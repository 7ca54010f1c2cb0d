/*
 * fuzz_http.c: libFuzzer target for the worker's HTTP request path
 * (fx_http_conn.c: http-parser and its callbacks, the header and body limits,
 * Expect: 100-continue, pipelining and keep-alive, routing, the query
 * string and bearer token, the answers).
 *
 * One server, started with fx_http_start on 127.0.0.1 (a free port), runs
 * for the whole process on a loop of its own.  Its database connection can
 * never be made (the conninfo names a socket directory that does not
 * exist), so a request that reaches the database is answered at once with
 * its error: what is fuzzed is everything up to there, through the public
 * interface, as a client sees it.
 *
 * Each input is one connection.  The first byte sets the size of the
 * pieces the rest is sent in, with the loop run between pieces; then the
 * client closes its sending side and reads until the server closes the
 * connection.  A request that waits (an /api read waits up to 5 s for the
 * dashboard's session) is left open and checked by later inputs, at most
 * MAX_PENDING of them at once.
 *
 * Beyond the sanitizers it checks that after the client's end the server
 * is never silent for CLOSE_MS without closing the connection (it may
 * answer the requests it holds, one at a time, but must not keep the
 * connections of clients that have gone), and that what came back is a
 * sequence of whole HTTP/1.1 answers: a status line, headers, a
 * Content-Length (except 100 Continue) that the body matches, a JSON body
 * where the type says JSON, and nothing after "Connection: close".  A
 * failure found late names the input it belongs to (fail_client).
 * FX_FUZZ_HTTP_VERBOSE=1 prints the answers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "fx_http.h"
#include "fx_log.h"

#define CLOSE_MS 10000			/* DASH_CONNECT_MS (5 s) is the longest wait */
#define GRACE_SPINS 20			/* about 20 ms: most inputs end by then */
#define MAX_PENDING 128			/* connections left open, checked later */

int			LLVMFuzzerInitialize(int *argc, char ***argv);
int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void settle_rest(void);

static uv_loop_t loop;
static int	port;
static bool verbose;			/* FX_FUZZ_HTTP_VERBOSE set: print answers */

static void fail(const char *what, const char *text, size_t n)
			__attribute__((noreturn));

static void
fail(const char *what, const char *text, size_t n)
{
	fprintf(stderr, "fuzz_http: %s\n", what);
	if (text != NULL)
		fprintf(stderr, "  answers (%zu bytes): %.*s\n", n,
				(int) (n < 2000 ? n : 2000), text);
	abort();
}

/* One input's connection, from the client's side. */
typedef struct client
{
	int			fd;
	uint64_t	since;			/* the client's end, or the last answer after it */
	char	   *buf;			/* what the server sent */
	size_t		len;
	size_t		cap;
	uint8_t    *input;			/* for the report */
	size_t		size;
} client;

/* Connections the server had not closed by the end of their input. */
static client *pending[MAX_PENDING];
static int	npending;

/*
 * Fail over c.  c may be an earlier input's connection, checked late: its
 * input is written to FX_FUZZ_HTTP_SAVE (a directory, default /tmp) as
 * fuzz_http-input-<pid>, the reproducer.
 */
static void fail_client(client *c, const char *what)
			__attribute__((noreturn));

static void
fail_client(client *c, const char *what)
{
	const char *dir = getenv("FX_FUZZ_HTTP_SAVE");
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/fuzz_http-input-%d", dir ? dir : "/tmp",
			 (int) getpid());
	f = fopen(path, "wb");
	if (f != NULL && fwrite(c->input, 1, c->size, f) == c->size && fclose(f) == 0)
		fprintf(stderr, "fuzz_http: the connection's input is in %s\n", path);
	fail(what, c->buf, c->len);
}

static void
gauges(void *arg, fx_http_gauges *g)
{
	g->running = 1;
	g->claimed = 2;
	g->warm = 3;
}

/* A port nobody listens on now. */
static int
free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t	len = sizeof(sa);
	int			fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
		getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
		fail("cannot find a free port", NULL, 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* Run the server's loop a little, waiting for FD (POLLIN or POLLOUT). */
static void
spin(int fd, short events)
{
	struct pollfd p = {fd, events, 0};

	uv_run(&loop, UV_RUN_NOWAIT);
	(void) poll(&p, 1, 1);
	uv_run(&loop, UV_RUN_NOWAIT);
}

static int
connect_client(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
	.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 ||
		(connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno != EINPROGRESS))
		fail("cannot connect to the server", NULL, 0);
	return fd;
}

enum
{
	OPEN,
	CLOSED,
	RESET						/* the kernel may drop what was unread */
};

/* Read what is there into *buf: OPEN, CLOSED or RESET. */
static int
drain(int fd, char **buf, size_t *len, size_t *cap)
{
	for (;;)
	{
		ssize_t		n;

		if (*cap - *len < 65536)
		{
			*cap = 2 * *cap + 65536;
			*buf = fx_xrealloc(*buf, *cap);
		}
		n = recv(fd, *buf + *len, *cap - *len - 1, 0);
		if (n > 0)
		{
			*len += (size_t) n;
			continue;
		}
		if (n == 0)
			return CLOSED;
		return errno == EAGAIN || errno == EINTR ? OPEN : RESET;
	}
}

/* The value of header NAME in head[0..n), or NULL. */
static const char *
header(const char *head, size_t n, const char *name, size_t *vlen)
{
	size_t		k = strlen(name);

	for (const char *p = memmem(head, n, "\r\n", 2); p && p + 2 < head + n;
		 p = memmem(p + 2, (size_t) (head + n - p - 2), "\r\n", 2))
	{
		const char *line = p + 2;
		const char *eol = memmem(line, (size_t) (head + n - line), "\r\n", 2);

		if (eol && (size_t) (eol - line) > k + 1 && strncasecmp(line, name, k) == 0 &&
			line[k] == ':')
		{
			const char *v = line + k + 1;

			while (*v == ' ')
				v++;
			*vlen = (size_t) (eol - v);
			return v;
		}
	}
	return NULL;
}

/*
 * buf[0..len) is whole answers, none after "Connection: close"; after a
 * reset (CUT) the last one may be cut short.
 */
static void
check_answers(client *c, bool cut)
{
	const char *buf = c->buf;
	size_t		len = c->len;
	size_t		off = 0;
	bool		closed = false;

	while (off < len)
	{
		const char *a = buf + off;
		const char *end = memmem(a, len - off, "\r\n\r\n", 4);
		size_t		hlen;
		size_t		vlen;
		const char *v;
		char	   *stop;
		unsigned long body;
		int			status;

		if (closed)
			fail_client(c, "an answer after \"Connection: close\"");
		if (cut && (end == NULL || len - off < 13))
			return;
		if (end == NULL || len - off < 13 || memcmp(a, "HTTP/1.1 ", 9) != 0)
			fail_client(c, "not a whole HTTP/1.1 answer");
		status = atoi(a + 9);
		if (status < 100 || status > 599)
			fail_client(c, "an answer with no valid status");
		hlen = (size_t) (end - a) + 4;
		if (status == 100)
		{
			off += hlen;
			continue;
		}
		v = header(a, hlen, "Content-Length", &vlen);
		if (v == NULL)
			fail_client(c, "an answer without Content-Length");
		body = strtoul(v, &stop, 10);
		if (cut && body > len - off - hlen)
			return;
		if (stop != v + vlen || body > len - off - hlen)
			fail_client(c, "an answer whose body is not its Content-Length");
		v = header(a, hlen, "Content-Type", &vlen);
		if (v != NULL && vlen >= 16 && strncmp(v, "application/json", 16) == 0)
		{
			cJSON	   *j = cJSON_ParseWithLength(a + hlen, body);

			if (j == NULL)
				fail_client(c, "an answer whose JSON body is not JSON");
			cJSON_Delete(j);
		}
		v = header(a, hlen, "Connection", &vlen);
		closed = v != NULL && vlen == 5 && strncasecmp(v, "close", 5) == 0;
		off += hlen + body;
	}
}

/*
 * Read what the server sent to c; true once it closed the connection and
 * the answers were checked (c is freed then).  After the client's end the
 * server may answer the requests it has (one at a time), but not be silent
 * for CLOSE_MS and keep the connection.
 */
static bool
settle(client *c)
{
	size_t		had = c->len;
	int			state = drain(c->fd, &c->buf, &c->len, &c->cap);

	if (state == OPEN)
	{
		if (c->len > had)
			c->since = uv_hrtime();	/* pipelined requests: one at a time */
		else if (uv_hrtime() - c->since > (uint64_t) CLOSE_MS * 1000000)
			fail_client(c, "the server keeps a silent connection its client has closed");
		return false;
	}
	close(c->fd);
	uv_run(&loop, UV_RUN_NOWAIT);	/* its close callbacks */
	uv_run(&loop, UV_RUN_NOWAIT);
	if (verbose)
		fprintf(stderr, "fuzz_http: %s, answers:\n%.*s\n",
				state == RESET ? "reset" : "closed", (int) c->len, c->buf ? c->buf : "");
	check_answers(c, state == RESET);
	free(c->buf);
	free(c->input);
	free(c);
	return true;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fx_http_config cfg = {0};
	char		addr[32];
	char	   *why = NULL;

	fx_log_min = (fx_log_level) (FX_LOG_ERROR + 1);	/* quiet */
	verbose = getenv("FX_FUZZ_HTTP_VERBOSE") != NULL;
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	port = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	cfg.addr = addr;
	cfg.conninfo = "host=/nonexistent/fx-fuzz-http dbname=fx connect_timeout=1";
	cfg.appname = "fx fuzz_http";
	cfg.gauges = gauges;
	if (fx_http_start(&loop, &cfg, &why) == NULL)
	{
		fprintf(stderr, "fuzz_http: %s\n", why);
		exit(2);
	}
	atexit(settle_rest);
	return 0;
}

/* Wait for the oldest connection still open to end. */
static void
settle_oldest(void)
{
	client	   *c = pending[0];

	while (!settle(c))
		spin(c->fd, POLLIN);
	memmove(pending, pending + 1, sizeof(pending[0]) * (size_t) --npending);
}

/* Check the connections still open; keep those that are. */
static void
settle_all(void)
{
	int			kept = 0;

	for (int i = 0; i < npending; i++)
		if (!settle(pending[i]))
			pending[kept++] = pending[i];
	npending = kept;
}

/* At exit (a replayed input too): wait for every connection to end. */
static void
settle_rest(void)
{
	while (npending > 0)
		settle_oldest();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	client	   *c;
	size_t		piece;
	size_t		sent = 0;
	int			state = OPEN;

	if (size < 1)
		return 0;
	settle_all();
	if (npending == MAX_PENDING)
		settle_oldest();
	c = fx_xcalloc(1, sizeof(*c));
	c->input = fx_xmalloc(size);
	memcpy(c->input, data, size);
	c->size = size;
	piece = (size_t) data[0] + 1;
	data++;
	size--;
	c->fd = connect_client();
	while (sent < size && state == OPEN)
	{
		size_t		n = size - sent < piece ? size - sent : piece;
		ssize_t		w = send(c->fd, data + sent, n, MSG_NOSIGNAL);

		if (w > 0)
			sent += (size_t) w;
		else if (errno != EAGAIN && errno != EINTR && errno != ENOTCONN)
			break;				/* the server closed: it may, after an answer */
		spin(c->fd, POLLOUT);
		state = drain(c->fd, &c->buf, &c->len, &c->cap);
	}
	shutdown(c->fd, SHUT_WR);
	c->since = uv_hrtime();
	for (int i = 0; i < GRACE_SPINS; i++)
	{
		if (settle(c))
			return 0;
		spin(c->fd, POLLIN);
	}
	pending[npending++] = c;	/* waiting for something: see later */
	return 0;
}
