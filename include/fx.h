/*-------------------------------------------------------------------------
 *
 * fx.h
 *		C SDK for fx functions: one header, no library to link but cJSON.
 *
 * A function is a program the fx worker runs (docs/protocol.md).  The
 * program hands a handler to fx_main(), which speaks whichever mode the
 * worker started it in:
 *
 *	session   FX_MODE=session: one process serves many invocations.  fx_main
 *			  sends {"type":"ready","protocol":1} on the socket in
 *			  $FX_SOCKET_FD, then calls the handler once per "invoke" message
 *			  and answers each with a "result" or "error" message.  Other
 *			  message types are skipped.  It returns 0 when the worker closes
 *			  the socket, 1 on an I/O or protocol error.
 *	simple	  anything else (also FX_MODE unset, e.g. run by hand): stdin is
 *			  the args JSON (empty means null), the handler runs once, its
 *			  result is printed on stdout and fx_main returns 0; after
 *			  fx_fail() the message and detail go to stderr and it returns 1.
 *
 * The handler gets a context and the args.  It returns the result, a new
 * cJSON item whose ownership passes to the SDK (NULL means JSON null; to
 * return part of args, cJSON_Duplicate() it).  To report an error it calls
 * fx_fail() and returns NULL; a non-retryable error is not retried by the
 * invocation's retry policy.  Lines written to stderr are the invocation's
 * log; the SDK flushes stdout and stderr before each answer.  In simple mode
 * stdout carries the result, so log to stderr only.
 *
 * Example (examples/hello-c has a complete one):
 *
 *	#include <fx.h>
 *
 *	static cJSON *
 *	hello(fx_ctx *ctx, const cJSON *args)
 *	{
 *		const cJSON *name = cJSON_GetObjectItemCaseSensitive(args, "name");
 *		cJSON	   *result;
 *
 *		if (!cJSON_IsString(name))
 *		{
 *			fx_fail(ctx, "name is required", NULL, 0);
 *			return NULL;
 *		}
 *		fprintf(stderr, "invocation %lld says hello\n",
 *				fx_invocation_id(ctx));
 *		result = cJSON_CreateObject();
 *		cJSON_AddStringToObject(result, "hello", name->valuestring);
 *		return result;
 *	}
 *
 *	int
 *	main(void)
 *	{
 *		return fx_main(hello);
 *	}
 *
 * Build with: cc -Wall -O2 -I<fx>/include hello.c -lcjson
 *
 * While an invocation runs, a handler in session mode may read and write
 * the state of the invocation's key and run SQL in the invocation's
 * transaction, which commits with its result ("State and SQL" in
 * docs/protocol.md).  Each call sends one request and waits for its reply:
 * fx_sql() and fx_state_get() return a new item the caller deletes,
 * fx_state_set() and fx_state_delete() return true.  After an error reply
 * they return NULL or false, and fx_error() and fx_sqlstate() give the
 * message and SQLSTATE until the next request; the handler may go on or
 * fail.  In simple mode they fail with SQLSTATE 0A000.  A reply that breaks
 * the protocol, or none at all, ends the process with exit status 70.  A
 * counter (invoked with a key; the state is null until first set):
 *
 *	static cJSON *
 *	count(fx_ctx *ctx, const cJSON *args)
 *	{
 *		cJSON	   *state = fx_state_get(ctx);
 *		double		n = cJSON_IsNumber(state) ? state->valuedouble : 0;
 *		cJSON	   *next = cJSON_CreateNumber(n + 1);
 *		cJSON	   *params = cJSON_CreateArray();
 *		cJSON	   *res = NULL;
 *
 *		cJSON_AddItemToArray(params, cJSON_CreateNumber(n));
 *		if (state != NULL && fx_state_set(ctx, next))
 *			res = fx_sql(ctx, "INSERT INTO seen (n) VALUES ($1)", params);
 *		if (res == NULL)
 *			fx_fail(ctx, fx_error(ctx), NULL, 1);
 *		cJSON_Delete(state);
 *		cJSON_Delete(next);
 *		cJSON_Delete(params);
 *		return res;
 *	}
 *
 * which returns {"rows":[],"count":1,"command":"INSERT"}.
 *
 * A session function is a workflow as soon as it records steps ("Workflows"
 * in docs/protocol.md).  Each step is numbered in the order the code reaches
 * it (1, 2, 3, ... in every invocation) and recorded when it ends; when the
 * invocation runs again, after a crash, a failed attempt or an eviction, a
 * recorded step returns its recorded outcome instead of running again, so
 * the code between steps must be deterministic.  The steps: fx_run() (runs
 * a fx_step_fn once and records its output), fx_call() (another function
 * as a child invocation, waited for), fx_start() and fx_await() (a child
 * not waited for, then waited for), fx_sleep(), fx_recv() (a message sent
 * to this workflow), fx_send() and fx_set_event().  Each returns its output
 * (a new item the caller deletes) or true; after a failure NULL (-1 for
 * fx_start) or false, and fx_error() gives the message.  A failed step (the
 * fx_step_fn called fx_fail(), a child failed) leaves fx_sqlstate() NULL
 * and its detail in fx_error_detail(), and fails again on every replay; an
 * error reply sets fx_sqlstate(), as above.  fx_workflow_id() is the
 * invocation id.  A step that waits longer than the worker allows is
 * evicted (SQLSTATE FXW02): every later request fails at once, and
 * whatever the handler returns the SDK answers the invocation with the
 * error "evicted", which the worker ignores; it runs the invocation again
 * when the wait is over.  A replay that reaches other steps than the
 * recorded ones gets SQLSTATE FXW01; the invocation has failed (not
 * retried) and should give up.  Workflows need session mode; in simple
 * mode the steps fail with SQLSTATE 0A000.  An order:
 *
 *	static cJSON *
 *	price(fx_ctx *ctx, void *arg)
 *	{
 *		const cJSON *items = arg;
 *
 *		(void) ctx;
 *		return cJSON_CreateNumber(10.0 * cJSON_GetArraySize(items));
 *	}
 *
 *	static cJSON *
 *	order(fx_ctx *ctx, const cJSON *args)
 *	{
 *		cJSON	   *total = fx_run(ctx, "price", price,
 *								   cJSON_GetObjectItem(args, "items"));
 *		cJSON	   *paid = NULL;
 *
 *		if (total != NULL)
 *			paid = fx_recv(ctx, "confirmed", 3600 * 1000);
 *		if (paid == NULL)
 *		{
 *			fx_fail(ctx, fx_error(ctx), fx_error_detail(ctx), 0);
 *			cJSON_Delete(total);
 *			return NULL;
 *		}
 *		cJSON_Delete(paid);
 *		return total;
 *	}
 *
 * Everything here is static; names starting with fx__ are internal.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FX_H
#define FX_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define FX_PROTOCOL_VERSION 1
#define FX_MAX_MESSAGE		(64 * 1024 * 1024)	/* bytes, both directions */
#define FX_EXIT_PROTOCOL	70	/* EX_SOFTWARE: a request got no valid reply */

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/*
 * One invocation, as seen by the handler.  Read it with the accessors below;
 * the fields are the SDK's.  Strings live until the handler returns.
 */
typedef struct fx_ctx
{
	long long	id;				/* invocation id */
	int			attempt;		/* 1 on the first attempt */
	long long	deadline_ms;	/* Unix ms after which the process is killed */
	const char *fn;				/* function name, or NULL if unknown */
	const char *idempotency_key;	/* stable across attempts */
	const char *key;			/* the invocation's key, or NULL */
	/* set by fx_fail() */
	int			failed;
	int			retryable;
	char	   *message;
	char	   *detail;
	/* requests: the session socket (-1 in simple mode), the last seq sent */
	int			sock;
	long long  *seq;			/* counts per process, not per invocation */
	/* the last request's error reply, NULL after a success */
	char	   *error;
	char	   *sqlstate;
	char	   *error_detail;	/* a failed step's detail */
	/* workflows: the last step number; set once a request was evicted */
	long long	step;
	int			evicted;
} fx_ctx;

typedef cJSON *(*fx_handler) (fx_ctx *ctx, const cJSON *args);

/*
 * The code of an inline step (fx_run).  It returns the step's output, a new
 * item whose ownership passes to the SDK (NULL means JSON null), or calls
 * fx_fail() and returns NULL to fail the step.
 */
typedef cJSON *(*fx_step_fn) (fx_ctx *ctx, void *arg);

static inline long long
fx_invocation_id(const fx_ctx *ctx)
{
	return ctx->id;
}

static inline int
fx_attempt(const fx_ctx *ctx)
{
	return ctx->attempt;
}

static inline const char *
fx_idempotency_key(const fx_ctx *ctx)
{
	return ctx->idempotency_key;
}

static inline const char *
fx_key(const fx_ctx *ctx)
{
	return ctx->key;
}

static inline long long
fx_deadline_ms(const fx_ctx *ctx)
{
	return ctx->deadline_ms;
}

static inline const char *
fx_fn(const fx_ctx *ctx)
{
	return ctx->fn;
}

/* The workflow's id: the invocation id. */
static inline long long
fx_workflow_id(const fx_ctx *ctx)
{
	return ctx->id;
}

static inline char *
fx__strdup(const char *s)
{
	size_t		len = strlen(s) + 1;
	char	   *copy = malloc(len);

	if (copy == NULL)
	{
		fprintf(stderr, "fx: out of memory\n");
		abort();
	}
	return memcpy(copy, s, len);
}

/*
 * Make this invocation fail with message (required) and detail (may be
 * NULL).  The handler should then return NULL; a later call replaces an
 * earlier one.
 */
static inline void
fx_fail(fx_ctx *ctx, const char *message, const char *detail, int retryable)
{
	free(ctx->message);
	free(ctx->detail);
	ctx->failed = 1;
	ctx->retryable = retryable != 0;
	ctx->message = fx__strdup(message ? message : "function failed");
	ctx->detail = detail ? fx__strdup(detail) : NULL;
}

/* Call the handler; on failure the result, if any, is dropped. */
static inline cJSON *
fx__call(fx_handler handler, fx_ctx *ctx, const cJSON *args)
{
	cJSON	   *result = handler(ctx, args);

	fflush(stdout);
	fflush(stderr);
	if (ctx->failed)
	{
		cJSON_Delete(result);
		return NULL;
	}
	return result;
}

static inline void
fx__ctx_free(fx_ctx *ctx)
{
	free(ctx->message);
	free(ctx->detail);
	free(ctx->error);
	free(ctx->sqlstate);
	free(ctx->error_detail);
}

/*
 * Read exactly len bytes unless EOF comes first.  Returns the number of
 * bytes read (less than len only at EOF) or -1 with errno set.
 */
static inline ssize_t
fx__read_full(int fd, void *buf, size_t len)
{
	size_t		done = 0;

	while (done < len)
	{
		ssize_t		n = read(fd, (char *) buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

/* Write all of buf; no SIGPIPE if fd is a socket whose peer is gone. */
static inline int
fx__write_full(int fd, const void *buf, size_t len)
{
	size_t		done = 0;
	int			is_socket = 1;

	while (done < len)
	{
		const char *p = (const char *) buf + done;
		ssize_t		n;

		n = is_socket ? send(fd, p, len - done, MSG_NOSIGNAL)
			: write(fd, p, len - done);
		if (n < 0 && errno == ENOTSOCK && is_socket)
		{
			is_socket = 0;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		done += n;
	}
	return 0;
}

/*
 * Send msg as one length-prefixed message and delete it.  Header and text
 * go in one write, so the worker wakes once for the message, not twice.
 */
static inline int
fx__send(int fd, cJSON *msg)
{
	char	   *text = cJSON_PrintUnformatted(msg);
	unsigned char *frame = NULL;
	size_t		len;
	int			rc = -1;

	cJSON_Delete(msg);
	if (text == NULL)
	{
		fprintf(stderr, "fx: cannot serialise message\n");
		return -1;
	}
	len = strlen(text);
	if (len > FX_MAX_MESSAGE)
		fprintf(stderr, "fx: message of %zu bytes is too large\n", len);
	else if ((frame = (unsigned char *) malloc(len + 4)) == NULL)
		fprintf(stderr, "fx: out of memory\n");
	else
	{
		frame[0] = (unsigned char) (len >> 24);
		frame[1] = (unsigned char) (len >> 16);
		frame[2] = (unsigned char) (len >> 8);
		frame[3] = (unsigned char) len;
		memcpy(frame + 4, text, len);
		rc = fx__write_full(fd, frame, len + 4);
		if (rc < 0)
			fprintf(stderr, "fx: write: %s\n", strerror(errno));
	}
	free(frame);
	cJSON_free(text);
	return rc;
}

/*
 * Receive one message into *msg.  Returns 1, 0 at a clean end of file, or
 * -1 on an I/O or protocol error (already reported on stderr).
 */
static inline int
fx__recv(int fd, cJSON **msg)
{
	unsigned char header[4];
	size_t		len;
	char	   *text;
	ssize_t		n;

	/*
	 * Wait in poll() for something to read rather than in read(): a reader
	 * blocked in read() on a Unix socket is woken each time its peer reads
	 * what it sent, as the worker does with every answer; poll() is woken
	 * only when there is something to read.
	 */
	{
		struct pollfd p = {fd, POLLIN, 0};

		while (poll(&p, 1, -1) < 0 && errno == EINTR)
			;
	}
	n = fx__read_full(fd, header, 4);
	if (n == 0)
		return 0;
	if (n != 4)
	{
		fprintf(stderr, "fx: read: %s\n",
				n < 0 ? strerror(errno) : "end of file inside a header");
		return -1;
	}
	len = ((size_t) header[0] << 24) | ((size_t) header[1] << 16) |
		((size_t) header[2] << 8) | header[3];
	if (len > FX_MAX_MESSAGE)
	{
		fprintf(stderr, "fx: message of %zu bytes is too large\n", len);
		return -1;
	}
	if ((text = malloc(len + 1)) == NULL)
	{
		fprintf(stderr, "fx: out of memory\n");
		return -1;
	}
	n = fx__read_full(fd, text, len);
	if (n < 0 || (size_t) n != len)
	{
		fprintf(stderr, "fx: read: %s\n",
				n < 0 ? strerror(errno) : "end of file inside a message");
		free(text);
		return -1;
	}
	*msg = cJSON_ParseWithLength(text, len);
	free(text);
	if (!cJSON_IsObject(*msg) ||
		!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(*msg, "type")))
	{
		fprintf(stderr, "fx: received a message that is not a JSON object "
				"with a string \"type\"\n");
		cJSON_Delete(*msg);
		return -1;
	}
	return 1;
}

static inline const char *
fx__string(const cJSON *obj, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(item) ? item->valuestring : NULL;
}

static inline double
fx__number(const cJSON *obj, const char *name, double dflt)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsNumber(item) ? item->valuedouble : dflt;
}

/*
 * Add an integer member, printed as one: cJSON prints a number beyond
 * int's range (an id past 2^31) with sprintf("%1.15g") and checks it with
 * sscanf.
 */
static inline void
fx__add_int(cJSON *obj, const char *name, long long v)
{
	char		buf[24];

	snprintf(buf, sizeof(buf), "%lld", v);
	cJSON_AddRawToObject(obj, name, buf);
}

/* The message and SQLSTATE of the last request's error, or NULL. */
static inline const char *
fx_error(const fx_ctx *ctx)
{
	return ctx->error;
}

static inline const char *
fx_sqlstate(const fx_ctx *ctx)
{
	return ctx->sqlstate;
}

/* The detail of the last request's failed step, or NULL. */
static inline const char *
fx_error_detail(const fx_ctx *ctx)
{
	return ctx->error_detail;
}

static inline void
fx__set_error(fx_ctx *ctx, const char *message, const char *sqlstate)
{
	free(ctx->error);
	free(ctx->sqlstate);
	free(ctx->error_detail);
	ctx->error = message ? fx__strdup(message) : NULL;
	ctx->sqlstate = sqlstate ? fx__strdup(sqlstate) : NULL;
	ctx->error_detail = NULL;
}

/*
 * A request got no reply the protocol allows.  The worker may be gone or
 * out of step, so the invocation cannot go on: end the process, which the
 * worker reports as the attempt's failure.
 */
static inline void
fx__request_broken(const char *why, long long seq)
{
	fprintf(stderr, "fx: no valid reply to request %lld: %s\n", seq, why);
	exit(FX_EXIT_PROTOCOL);
}

/*
 * Start a request of the given type: {"type":type,"seq":N}.  In simple
 * mode there is no worker to ask, and after an eviction no point in asking;
 * returns NULL with the error set.
 */
static inline cJSON *
fx__request_new(fx_ctx *ctx, const char *type)
{
	cJSON	   *req;

	if (ctx->sock < 0)
	{
		fx__set_error(ctx, "state and sql need session mode", "0A000");
		return NULL;
	}
	if (ctx->evicted)
	{
		fx__set_error(ctx, "workflow evicted while waiting", "FXW02");
		return NULL;
	}
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "type", type);
	fx__add_int(req, "seq", ++*ctx->seq);
	return req;
}

/*
 * Send req (deleted here; NULL passes an error from fx__request_new on)
 * and wait for its reply, the next message: the worker answers requests in
 * order and sends nothing else meanwhile.  Returns the reply's value,
 * detached and owned by the caller, or NULL after an error reply.
 */
static inline cJSON *
fx__request(fx_ctx *ctx, cJSON *req)
{
	long long	seq;
	cJSON	   *reply;
	cJSON	   *value;
	const char *code;
	int			rc;

	if (req == NULL)
		return NULL;
	seq = *ctx->seq;
	if (fx__send(ctx->sock, req) < 0)
		fx__request_broken("cannot send it", seq);
	if ((rc = fx__recv(ctx->sock, &reply)) <= 0)
		fx__request_broken(rc == 0 ? "end of file" : "bad message", seq);
	if (strcmp(fx__string(reply, "type"), "reply") != 0 ||
		fx__number(reply, "seq", -1) != (double) seq)
	{
		cJSON_Delete(reply);
		fx__request_broken("another message came", seq);
	}
	if (fx__string(reply, "error") != NULL)
	{
		code = fx__string(reply, "code");
		fx__set_error(ctx, fx__string(reply, "error"), code ? code : "XX000");
		if (code != NULL && strcmp(code, "FXW02") == 0)
			ctx->evicted = 1;
		cJSON_Delete(reply);
		return NULL;
	}
	value = cJSON_DetachItemFromObjectCaseSensitive(reply, "value");
	cJSON_Delete(reply);
	if (value == NULL)
		fx__request_broken("the reply has neither value nor error", seq);
	fx__set_error(ctx, NULL, NULL);
	return value;
}

/*
 * Run one SQL statement in the invocation's transaction, with $1, $2, ...
 * bound to the elements of params (a JSON array, or NULL for none; the
 * caller keeps it).  Returns {"rows":[...],"count":N,"command":"..."}, which
 * the caller deletes, or NULL on an error (see fx_error(), fx_sqlstate()).
 */
static inline cJSON *
fx_sql(fx_ctx *ctx, const char *query, const cJSON *params)
{
	cJSON	   *req;

	if (query == NULL || (params != NULL && !cJSON_IsArray(params)))
	{
		fx__set_error(ctx, query ? "params must be a JSON array"
					  : "query must not be NULL", "22023");
		return NULL;
	}
	if ((req = fx__request_new(ctx, "sql")) != NULL)
	{
		cJSON_AddStringToObject(req, "query", query);
		cJSON_AddItemToObject(req, "params", params
							  ? cJSON_Duplicate(params, 1)
							  : cJSON_CreateArray());
	}
	return fx__request(ctx, req);
}

/*
 * The state of the invocation's key as this invocation left it so far, else
 * as committed: a new item the caller deletes, a JSON null if there is
 * none.  NULL on an error (see fx_error(), fx_sqlstate()).
 */
static inline cJSON *
fx_state_get(fx_ctx *ctx)
{
	return fx__request(ctx, fx__request_new(ctx, "state.get"));
}

/* Set the state to value (NULL means JSON null; the caller keeps it). */
static inline bool
fx_state_set(fx_ctx *ctx, const cJSON *value)
{
	cJSON	   *req = fx__request_new(ctx, "state.set");
	cJSON	   *reply;

	if (req != NULL)
		cJSON_AddItemToObject(req, "value", value ? cJSON_Duplicate(value, 1)
							  : cJSON_CreateNull());
	reply = fx__request(ctx, req);
	cJSON_Delete(reply);
	return reply != NULL;
}

static inline bool
fx_state_delete(fx_ctx *ctx)
{
	cJSON	   *reply = fx__request(ctx, fx__request_new(ctx, "state.delete"));

	cJSON_Delete(reply);
	return reply != NULL;
}

/*
 * Start the request of a step: {"type":type,"seq":N,"step":S}, S being the
 * step number, the next one unless step > 0.  NULL with the error set if
 * it cannot be sent.
 */
static inline cJSON *
fx__step_new(fx_ctx *ctx, const char *type, long long step)
{
	cJSON	   *req;

	if (ctx->sock < 0)
	{
		fx__set_error(ctx, "workflows need session mode", "0A000");
		return NULL;
	}
	if ((req = fx__request_new(ctx, type)) != NULL)
		cJSON_AddNumberToObject(req, "step",
								(double) (step > 0 ? step : ++ctx->step));
	return req;
}

/*
 * The outcome a step request got (value, deleted here): returns 1 with the
 * output in *output (never NULL: a JSON null is an item), 0 if the step
 * failed (its error set, SQLSTATE NULL), 2 for {"done":false} if pending.
 * Anything else breaks the protocol.
 */
static inline int
fx__outcome(fx_ctx *ctx, cJSON *value, int pending, cJSON **output)
{
	const cJSON *done = cJSON_GetObjectItemCaseSensitive(value, "done");
	const char *error = fx__string(value, "error");

	*output = NULL;
	if (!cJSON_IsBool(done) || (cJSON_IsFalse(done) && !pending))
	{
		cJSON_Delete(value);
		fx__request_broken("the reply is not a step outcome", *ctx->seq);
	}
	if (cJSON_IsFalse(done))
	{
		cJSON_Delete(value);
		return 2;
	}
	if (error != NULL)
	{
		fx__set_error(ctx, error, NULL);
		if (fx__string(value, "detail") != NULL)
			ctx->error_detail = fx__strdup(fx__string(value, "detail"));
		cJSON_Delete(value);
		return 0;
	}
	*output = cJSON_DetachItemFromObjectCaseSensitive(value, "output");
	if (*output == NULL)
		*output = cJSON_CreateNull();
	cJSON_Delete(value);
	return 1;
}

/* Send a step request (see fx__step_new) and return its output or NULL. */
static inline cJSON *
fx__step(fx_ctx *ctx, cJSON *req)
{
	cJSON	   *value = fx__request(ctx, req);
	cJSON	   *output;

	if (value == NULL)
		return NULL;
	fx__outcome(ctx, value, 0, &output);
	return output;
}

/* Add item (the caller keeps it; NULL means JSON null) to req as name. */
static inline void
fx__add_json(cJSON *req, const char *name, const cJSON *item)
{
	if (req != NULL)
		cJSON_AddItemToObject(req, name, item ? cJSON_Duplicate(item, 1)
							  : cJSON_CreateNull());
}

/*
 * Step: run fn(ctx, arg) once.  The first time the step is reached fn runs
 * and its output is recorded; a replay returns the recorded output without
 * running fn.  If fn calls fx_fail(), the step's failure is recorded (and
 * the invocation has not failed: the fx_fail() was the step's): fx_run()
 * returns NULL with fx_error() and fx_error_detail() giving fx_fail()'s
 * message and detail, now and on every replay.  Returns a new item the
 * caller deletes (a JSON null for a null output), or NULL (see
 * fx_error(), fx_sqlstate()).  fx_sql() in fn commits with the step.
 */
static inline cJSON *
fx_run(fx_ctx *ctx, const char *name, fx_step_fn fn, void *arg)
{
	cJSON	   *req;
	cJSON	   *value;
	cJSON	   *output;
	long long	step;
	int			failed = ctx->failed;
	int			retryable = ctx->retryable;
	char	   *message = ctx->message;
	char	   *detail = ctx->detail;

	if (name == NULL || fn == NULL)
	{
		fx__set_error(ctx, name ? "fn must not be NULL"
					  : "name must not be NULL", "22023");
		return NULL;
	}
	if ((req = fx__step_new(ctx, "step", 0)) == NULL)
		return NULL;
	step = ctx->step;
	cJSON_AddStringToObject(req, "name", name);
	if ((value = fx__request(ctx, req)) == NULL)
		return NULL;
	if (fx__outcome(ctx, value, 1, &output) != 2)
		return output;			/* recorded */

	/* Run the code: a failure it reports is the step's, not the handler's. */
	ctx->failed = 0;
	ctx->message = ctx->detail = NULL;
	output = fn(ctx, arg);
	req = fx__step_new(ctx, "step.done", step);
	if (req != NULL)
		cJSON_AddStringToObject(req, "name", name);
	if (req != NULL && ctx->failed)
	{
		cJSON_AddStringToObject(req, "error", ctx->message);
		if (ctx->detail)
			cJSON_AddStringToObject(req, "detail", ctx->detail);
		else
			cJSON_AddNullToObject(req, "detail");
	}
	else if (req != NULL)
		cJSON_AddItemToObject(req, "output",
							  output ? output : cJSON_CreateNull());
	if (req == NULL || ctx->failed)
		cJSON_Delete(output);
	free(ctx->message);
	free(ctx->detail);
	ctx->failed = failed;
	ctx->retryable = retryable;
	ctx->message = message;
	ctx->detail = detail;
	return fx__step(ctx, req);
}

/*
 * Step: run function fn ("name" or "name:version") with args (the caller
 * keeps them; NULL means JSON null) as a child invocation and wait for it.
 * Returns its result, a new item the caller deletes, or NULL if it failed
 * (see fx_error(), fx_error_detail()) or on an error.
 */
static inline cJSON *
fx_call(fx_ctx *ctx, const char *fn, const cJSON *args)
{
	cJSON	   *req = fx__step_new(ctx, "call", 0);

	if (req != NULL)
		cJSON_AddStringToObject(req, "fn", fn ? fn : "");
	fx__add_json(req, "args", args);
	return fx__step(ctx, req);
}

/* The same as fx_call(): another function as a step (ctx.step in Python). */
static inline cJSON *
fx_step(fx_ctx *ctx, const char *fn, const cJSON *args)
{
	return fx_call(ctx, fn, args);
}

/*
 * Step: start function fn with args as a child invocation without waiting
 * for it.  Returns its invocation id (for fx_await()), or -1 on an error.
 */
static inline long long
fx_start(fx_ctx *ctx, const char *fn, const cJSON *args)
{
	cJSON	   *req = fx__step_new(ctx, "start", 0);
	cJSON	   *output;
	long long	child;

	if (req != NULL)
		cJSON_AddStringToObject(req, "fn", fn ? fn : "");
	fx__add_json(req, "args", args);
	if ((output = fx__step(ctx, req)) == NULL)
		return -1;
	if (!cJSON_IsNumber(output))
	{
		cJSON_Delete(output);
		fx__request_broken("the child's id is not a number", *ctx->seq);
	}
	child = (long long) output->valuedouble;
	cJSON_Delete(output);
	return child;
}

/* Step: wait for a child started by fx_start(); as fx_call(). */
static inline cJSON *
fx_await(fx_ctx *ctx, long long child)
{
	cJSON	   *req = fx__step_new(ctx, "await", 0);

	if (req != NULL)
		cJSON_AddNumberToObject(req, "child", (double) child);
	return fx__step(ctx, req);
}

/* Return 1 if req, a step whose output is null, succeeds, else 0. */
static inline int
fx__step_ok(fx_ctx *ctx, cJSON *req)
{
	cJSON	   *output = fx__step(ctx, req);

	cJSON_Delete(output);
	return output != NULL;
}

/* Step: a durable sleep of ms milliseconds (a replay sleeps what is left). */
static inline int
fx_sleep(fx_ctx *ctx, long long ms)
{
	cJSON	   *req = fx__step_new(ctx, "sleep", 0);

	if (req != NULL)
		cJSON_AddNumberToObject(req, "ms", (double) ms);
	return fx__step_ok(ctx, req);
}

/*
 * Step: the payload of the oldest message sent to this workflow on topic,
 * waiting up to timeout_ms (< 0: for ever).  Returns a new item the caller
 * deletes (a JSON null on a timeout), or NULL on an error.
 */
static inline cJSON *
fx_recv(fx_ctx *ctx, const char *topic, long long timeout_ms)
{
	cJSON	   *req = fx__step_new(ctx, "recv", 0);

	if (req != NULL)
	{
		cJSON_AddStringToObject(req, "topic", topic ? topic : "");
		if (timeout_ms < 0)
			cJSON_AddNullToObject(req, "timeout_ms");
		else
			cJSON_AddNumberToObject(req, "timeout_ms", (double) timeout_ms);
	}
	return fx__step(ctx, req);
}

/* Step: send payload (the caller keeps it) to workflow "to" on topic. */
static inline int
fx_send(fx_ctx *ctx, long long to, const char *topic, const cJSON *payload)
{
	cJSON	   *req = fx__step_new(ctx, "send", 0);

	if (req != NULL)
	{
		cJSON_AddNumberToObject(req, "to", (double) to);
		cJSON_AddStringToObject(req, "topic", topic ? topic : "");
	}
	fx__add_json(req, "payload", payload);
	return fx__step_ok(ctx, req);
}

/* Step: set this workflow's event key to value (the caller keeps it). */
static inline int
fx_set_event(fx_ctx *ctx, const char *key, const cJSON *value)
{
	cJSON	   *req = fx__step_new(ctx, "set_event", 0);

	if (req != NULL)
		cJSON_AddStringToObject(req, "key", key ? key : "");
	fx__add_json(req, "value", value);
	return fx__step_ok(ctx, req);
}

/* Build the "result" or "error" answer to invocation id. */
static inline cJSON *
fx__answer(fx_ctx *ctx, double id, cJSON *result)
{
	cJSON	   *reply = cJSON_CreateObject();

	cJSON_AddStringToObject(reply, "type", ctx->failed ? "error" : "result");
	fx__add_int(reply, "id", (long long) id);
	if (ctx->failed)
	{
		cJSON_AddStringToObject(reply, "message", ctx->message);
		if (ctx->detail)
			cJSON_AddStringToObject(reply, "detail", ctx->detail);
		else
			cJSON_AddNullToObject(reply, "detail");
		cJSON_AddBoolToObject(reply, "retryable", ctx->retryable);
	}
	else if (result)
		cJSON_AddItemToObject(reply, "value", result);
	else
		cJSON_AddNullToObject(reply, "value");
	return reply;
}

/* Run one "invoke" message and send the answer. */
static inline int
fx__invoke(int fd, long long *seq, fx_handler handler, const cJSON *msg)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(msg, "args");
	cJSON	   *null_args = NULL;
	cJSON	   *result;
	cJSON	   *reply;
	fx_ctx		ctx;
	int			rc;

	if (!cJSON_IsNumber(id))
	{
		fprintf(stderr, "fx: invoke message without a numeric \"id\"\n");
		return -1;
	}
	if (args == NULL)
		args = null_args = cJSON_CreateNull();
	memset(&ctx, 0, sizeof(ctx));
	ctx.sock = fd;
	ctx.seq = seq;
	ctx.id = (long long) id->valuedouble;
	ctx.attempt = (int) fx__number(msg, "attempt", 1);
	ctx.deadline_ms = (long long) fx__number(msg, "deadline", 0);
	ctx.fn = fx__string(msg, "fn");
	ctx.idempotency_key = fx__string(msg, "idempotency_key");
	ctx.key = fx__string(msg, "key");
	if (ctx.idempotency_key == NULL)
		ctx.idempotency_key = "";

	result = fx__call(handler, &ctx, args);
	if (ctx.evicted)
	{
		/* the worker has given the invocation up: nothing else counts */
		cJSON_Delete(result);
		reply = cJSON_CreateObject();
		cJSON_AddStringToObject(reply, "type", "error");
		fx__add_int(reply, "id", (long long) id->valuedouble);
		cJSON_AddStringToObject(reply, "message", "evicted");
		cJSON_AddBoolToObject(reply, "retryable", 1);
	}
	else
		reply = fx__answer(&ctx, id->valuedouble, result);
	rc = fx__send(fd, reply);
	fx__ctx_free(&ctx);
	cJSON_Delete(null_args);
	return rc;
}

static inline int
fx__session(fx_handler handler)
{
	const char *fdstr = getenv("FX_SOCKET_FD");
	int			fd = fdstr ? atoi(fdstr) : 3;
	cJSON	   *ready = cJSON_CreateObject();
	cJSON	   *msg;
	long long	seq = 0;
	int			rc;

	cJSON_AddStringToObject(ready, "type", "ready");
	cJSON_AddNumberToObject(ready, "protocol", FX_PROTOCOL_VERSION);
	if (fx__send(fd, ready) < 0)
		return 1;
	while ((rc = fx__recv(fd, &msg)) > 0)
	{
		if (strcmp(fx__string(msg, "type"), "invoke") == 0)
			rc = fx__invoke(fd, &seq, handler, msg);
		cJSON_Delete(msg);
		if (rc < 0)
			break;
	}
	return rc < 0 ? 1 : 0;
}

/* Read all of stdin (at most FX_MAX_MESSAGE bytes); NULL on error. */
static inline char *
fx__read_stdin(size_t *lenp)
{
	size_t		cap = 4096;
	size_t		len = 0;
	char	   *buf = malloc(cap);
	char	   *bigger;
	ssize_t		n;

	while (buf != NULL && len <= FX_MAX_MESSAGE)
	{
		if (len == cap)
		{
			if ((bigger = realloc(buf, cap * 2)) == NULL)
				break;
			buf = bigger;
			cap *= 2;
		}
		n = read(STDIN_FILENO, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (n == 0)
		{
			*lenp = len;
			return buf;
		}
		len += n;
	}
	fprintf(stderr, "fx: cannot read args from stdin: %s\n",
			buf == NULL || len <= FX_MAX_MESSAGE ? strerror(errno)
			: "larger than 64 MiB");
	free(buf);
	return NULL;
}

/* Is text only white space (no args at all)? */
static inline int
fx__blank(const char *text, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' &&
			text[i] != '\n')
			return 0;
	return 1;
}

static inline long long
fx__env_ll(const char *name, long long dflt)
{
	const char *value = getenv(name);

	return value && *value ? strtoll(value, NULL, 10) : dflt;
}

static inline int
fx__simple(fx_handler handler)
{
	fx_ctx		ctx;
	cJSON	   *args;
	cJSON	   *result;
	char	   *text;
	size_t		len;

	if ((text = fx__read_stdin(&len)) == NULL)
		return 1;
	args = fx__blank(text, len) ? cJSON_CreateNull()
		: cJSON_ParseWithLength(text, len);
	free(text);
	if (args == NULL)
	{
		fprintf(stderr, "fx: args on stdin are not JSON\n");
		return 1;
	}
	memset(&ctx, 0, sizeof(ctx));
	ctx.sock = -1;
	ctx.id = fx__env_ll("FX_INVOCATION_ID", 0);
	ctx.attempt = (int) fx__env_ll("FX_ATTEMPT", 1);
	ctx.deadline_ms = fx__env_ll("FX_DEADLINE_MS", 0);
	ctx.fn = getenv("FX_FN");
	ctx.idempotency_key = getenv("FX_IDEMPOTENCY_KEY");
	ctx.key = getenv("FX_KEY");
	if (ctx.idempotency_key == NULL)
		ctx.idempotency_key = "";

	result = fx__call(handler, &ctx, args);
	cJSON_Delete(args);
	if (ctx.failed)
	{
		fprintf(stderr, "%s\n", ctx.message);
		if (ctx.detail)
			fprintf(stderr, "%s\n", ctx.detail);
		fx__ctx_free(&ctx);
		return 1;
	}
	if (result == NULL)
		result = cJSON_CreateNull();
	text = cJSON_PrintUnformatted(result);
	cJSON_Delete(result);
	fx__ctx_free(&ctx);
	if (text == NULL)
	{
		fprintf(stderr, "fx: cannot serialise the result\n");
		return 1;
	}
	printf("%s\n", text);
	cJSON_free(text);
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}

/*
 * Serve invocations with handler in the mode given by $FX_MODE.  Returns
 * the process's exit status; call it as "return fx_main(handler);".
 */
static inline int
fx_main(fx_handler handler)
{
	const char *mode = getenv("FX_MODE");

	if (mode != NULL && strcmp(mode, "session") == 0)
		return fx__session(handler);
	return fx__simple(handler);
}

#endif							/* FX_H */
