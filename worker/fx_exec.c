/*
 * fx_exec.c: the lifecycle of an attempt, in simple and session mode.
 *
 * Simple mode: one process per attempt; args on stdin, result on stdout.
 * The attempt ends when the process has exited and its pipes are drained,
 * or at the deadline (the process group is killed).
 *
 * Session mode: a pool of warm processes keyed by (function, version).  A
 * session is STARTING until it sends "ready", then IDLE or BUSY with one
 * attempt.  Its end (exit, protocol error, timeout of its attempt) fails
 * the attempt it was running and removes it from the pool; idle sessions
 * are killed after warm_ttl_ms, and the least recently used idle one makes
 * room when the pool is full.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fx/fx_common.h"
#include "fx_exec.h"
#include "fx_json.h"
#include "fx_log.h"
#include "fx_proc.h"
#include "fx_secret.h"
#include "fx_workflow.h"

#define LINE_MAX_BYTES 8192
#define DETAIL_LINES 5
#define MAX_WAITING_REQUESTS 64	/* requests without their replies yet */
#define MAX_UNREAD_BYTES (8u << 20) /* sent to a session, not read by it */
#define SOCK_EOF_GRACE_MS 1000	/* after a closed socket, wait for the exit */

typedef struct fx_lines
{
	char		buf[LINE_MAX_BYTES];
	size_t		len;
	fx_secrets *sec;			/* redacted from each line (a reference) */
	fx_redact_carry carry;		/* a value the last piece ended in */
} fx_lines;

struct fx_simple
{
	fx_proc		proc;
	fx_inv	   *inv;			/* NULL once the attempt was reported */
	char	   *out;			/* stdout, the result */
	size_t		out_len;
	bool		out_overflow;
	fx_lines	err;
	size_t		max_out;
};

typedef enum fx_session_state
{
	SESSION_STARTING,			/* waiting for "ready" */
	SESSION_IDLE,
	SESSION_BUSY,
	SESSION_DEAD				/* being closed */
} fx_session_state;

struct fx_session
{
	fx_exec    *ex;
	fx_proc		proc;
	fx_session_state state;
	char	   *fn;
	int			version;
	fx_inv	   *inv;			/* the attempt it runs or will run */
	char	   *rbuf;			/* bytes from the socket not yet parsed */
	size_t		rlen;
	size_t		rcap;			/* rbuf's size */
	int			waiting;		/* requests of inv not answered yet */
	bool		sock_eof;		/* it closed its end of the socket */
	bool		retire;			/* end it after its attempt (secrets changed) */
	fx_secrets *secrets;		/* what its sandbox was given */
	fx_lines	out;
	fx_lines	err;
	uv_timer_t	idle;
	uint64_t	last_used_ns;
	fx_session *next;
};

static void session_end(fx_session *s, const char *why, const char *detail);

/* ---------------------------------------------------------------------
 * Attempt bookkeeping
 * --------------------------------------------------------------------- */

void
fx_inv_log(fx_inv *inv, const char *stream, const char *line, size_t n)
{
	cJSON	   *entry;
	char	   *copy;

	if (inv->log_truncated)
		return;
	if (inv->logs == NULL)
		inv->logs = cJSON_CreateArray();
	entry = cJSON_CreateArray();
	cJSON_AddItemToArray(entry, fx_json_int(fx_now_ms()));
	cJSON_AddItemToArray(entry, cJSON_CreateString(stream));
	copy = fx_utf8_clean(line, n);	/* it goes to PostgreSQL as JSON */
	cJSON_AddItemToArray(entry, cJSON_CreateString(copy));
	free(copy);
	cJSON_AddItemToArray(inv->logs, entry);
	inv->log_bytes += n;
}

static void
log_bounded(fx_exec *ex, fx_inv *inv, const char *stream, const char *line, size_t n)
{
	if (inv->log_truncated)
		return;
	if (inv->log_bytes + n > ex->cfg.max_log_bytes)
	{
		fx_inv_log(inv, "fx", "[log truncated]", 15);
		inv->log_truncated = true;
		return;
	}
	fx_inv_log(inv, stream, line, n);
}

/*
 * Where to split a full line buffer: before a UTF-8 sequence its end
 * cuts, so that both parts keep the character.
 */
static size_t
utf8_cut(const char *buf, size_t len)
{
	size_t		k = 0;			/* continuation bytes at the end */
	unsigned char lead;
	size_t		need;

	while (k < 3 && k < len && ((unsigned char) buf[len - 1 - k] & 0xc0) == 0x80)
		k++;
	if (k == len)
		return len;
	lead = (unsigned char) buf[len - 1 - k];
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return (lead & 0xc0) == 0xc0 && need > k + 1 && len - 1 - k > 0 ? len - 1 - k : len;
}

/*
 * Give a line, or a piece of a longer one (cut_after), to emit, with the
 * secrets of the process that wrote it redacted (fx_secret.h).
 */
static void
lines_emit(fx_lines *l, size_t n, bool cut_after,
		   void (*emit) (void *arg, const char *line, size_t len), void *arg)
{
	char	   *red;
	size_t		rn;

	if (fx_secrets_redact_piece(l->sec, l->buf, n, &l->carry, cut_after, &red, &rn))
	{
		emit(arg, red, rn);
		explicit_bzero(red, rn);
		free(red);
	}
	else
		emit(arg, l->buf, n);
}

/*
 * Split bytes into lines; each complete line goes to emit, and so does
 * the first LINE_MAX_BYTES of a longer one (less the start of a secret
 * it may end in, which goes with the next piece).
 */
static void
lines_feed(fx_lines *l, const char *data, size_t n,
		   void (*emit) (void *arg, const char *line, size_t len), void *arg)
{
	while (n > 0)
	{
		size_t		room = LINE_MAX_BYTES - l->len;
		size_t		take = n < room ? n : room;
		const char *nl;

		if (room == 0)
		{
			size_t		cut = *data == '\n' ? l->len : utf8_cut(l->buf, l->len);

			if (*data != '\n')
				cut -= fx_secrets_keep(l->sec, l->buf, cut);
			lines_emit(l, cut, *data != '\n', emit, arg);
			memmove(l->buf, l->buf + cut, l->len - cut);
			l->len -= cut;
			if (*data == '\n')
			{
				data++;
				n--;
			}
			continue;
		}
		if ((nl = memchr(data, '\n', take)) != NULL)
			take = (size_t) (nl - data);
		memcpy(l->buf + l->len, data, take);
		l->len += take;
		data += take;
		n -= take;
		if (nl != NULL)
		{
			lines_emit(l, l->len, false, emit, arg);
			l->len = 0;
			data++;
			n--;
		}
	}
}

static void
lines_flush(fx_lines *l, void (*emit) (void *arg, const char *line, size_t len), void *arg)
{
	if (l->len > 0)
		lines_emit(l, l->len, false, emit, arg);
	l->len = 0;
}

void
fx_inv_fail(fx_inv *inv, bool retryable, const char *error, const char *detail)
{
	char	   *red_error = fx_secrets_redact_str(inv->secrets, error);
	char	   *red_detail = fx_secrets_redact_str(inv->secrets, detail);

	if (red_error)
		error = red_error;
	if (red_detail)
		detail = red_detail;
	inv->finished = true;
	inv->ok = false;
	inv->retryable = retryable;
	/* they go to PostgreSQL as JSON: valid UTF-8 only, secrets redacted */
	free(inv->error);
	inv->error = fx_utf8_clean(error, strlen(error));
	free(inv->detail);
	inv->detail = detail ? fx_utf8_clean(detail, strlen(detail)) : NULL;
	free(red_error);
	free(red_detail);
}

/* The last stderr lines of the attempt, as the detail of its error. */
static char *
stderr_tail(fx_inv *inv)
{
	int			n = inv->logs ? cJSON_GetArraySize(inv->logs) : 0;
	int			taken = 0;
	size_t		len = 0;
	char	   *out;
	int			first = n;

	for (int i = n - 1; i >= 0 && taken < DETAIL_LINES; i--)
	{
		cJSON	   *e = cJSON_GetArrayItem(inv->logs, i);

		if (strcmp(cJSON_GetArrayItem(e, 1)->valuestring, "stderr") == 0)
		{
			len += strlen(cJSON_GetArrayItem(e, 2)->valuestring) + 1;
			taken++;
			first = i;
		}
	}
	if (taken == 0)
		return NULL;
	out = fx_xcalloc(1, len + 1);
	for (int i = first; i < n; i++)
	{
		cJSON	   *e = cJSON_GetArrayItem(inv->logs, i);

		if (strcmp(cJSON_GetArrayItem(e, 1)->valuestring, "stderr") != 0)
			continue;
		if (out[0])
			strcat(out, "\n");
		strcat(out, cJSON_GetArrayItem(e, 2)->valuestring);
	}
	return out;
}

static void
timer_closed(uv_handle_t *h)
{
	fx_inv	   *inv = h->data;

	inv->timer_open = false;
	free(inv->bundle_dir);
	inv->bundle_dir = NULL;
	inv->ex->on_done(inv);
}

/* The attempt is over: stop its timer, then report it. */
static void
finish(fx_exec *ex, fx_inv *inv)
{
	inv->wall_ms = (fx_mono_ns() - inv->started_ns) / 1e6;
	if (inv->timer_open)
	{
		uv_timer_stop(&inv->timer);
		uv_close((uv_handle_t *) &inv->timer, timer_closed);
	}
	else
		ex->on_done(inv);
}

/* Add "K=V", replacing an earlier K. */
static void
add_env(char ***env, int *n, char *entry)
{
	size_t		klen = strcspn(entry, "=");

	for (int i = 0; i < *n; i++)
		if (strncmp((*env)[i], entry, klen + 1) == 0)
		{
			free((*env)[i]);
			(*env)[i] = entry;
			return;
		}
	*env = fx_xrealloc(*env, sizeof(char *) * (*n + 2));
	(*env)[(*n)++] = entry;
	(*env)[*n] = NULL;
}

static char **
build_env(fx_exec *ex, fx_inv *inv)
{
	char	  **env = NULL;
	int			n = 0;
	cJSON	   *user = cJSON_GetObjectItem(inv->options, "env");
	cJSON	   *e;

	add_env(&env, &n, fx_xstrdup("PATH=/usr/local/bin:/usr/bin:/bin"));
	add_env(&env, &n, fx_xstrdup("LANG=C.UTF-8"));
	add_env(&env, &n, fx_xstrdup("HOME=/tmp"));
	for (char **ie = inv->image ? inv->image->env : NULL; ie && *ie; ie++)
		if (strchr(*ie, '='))
			add_env(&env, &n, fx_xstrdup(*ie));
	add_env(&env, &n, fx_xasprintf("FX_MODE=%s", inv->session ? "session" : "simple"));
	add_env(&env, &n, fx_xasprintf("FX_FN=%s", inv->fn));
	add_env(&env, &n, fx_xasprintf("FX_VERSION=%d", inv->version));
	if (!inv->image)
		add_env(&env, &n, fx_xasprintf("FX_BUNDLE=%s", ex->cfg.sandbox ? "/fn" : inv->bundle_dir));
	if (ex->cfg.python_path)
		add_env(&env, &n, fx_xasprintf("PYTHONPATH=%s", ex->cfg.python_path));
	if (inv->session)
		add_env(&env, &n, fx_xasprintf("FX_SOCKET_FD=%d", FX_SESSION_FD));
	else
	{
		add_env(&env, &n, fx_xasprintf("FX_INVOCATION_ID=%lld", (long long) inv->id));
		add_env(&env, &n, fx_xasprintf("FX_ATTEMPT=%d", inv->attempt));
		add_env(&env, &n, fx_xasprintf("FX_IDEMPOTENCY_KEY=%s", inv->idem));
		add_env(&env, &n, fx_xasprintf("FX_DEADLINE_MS=%lld", (long long) inv->deadline_ms));
		if (inv->key)
			add_env(&env, &n, fx_xasprintf("FX_KEY=%s", inv->key));
	}
	cJSON_ArrayForEach(e, user)
		if (cJSON_IsString(e))
		add_env(&env, &n, fx_xasprintf("%s=%s", e->string, e->valuestring));
	return env;
}

static int
option_int(fx_inv *inv, const char *name, int dflt)
{
	cJSON	   *v = cJSON_GetObjectItem(inv->options, name);

	return cJSON_IsNumber(v) ? v->valueint : dflt;
}

/* What the sandbox needs to know about this attempt's function. */
static void
make_launch(fx_inv *inv, char **env, fx_launch *l)
{
	cJSON	   *cpu = cJSON_GetObjectItem(inv->options, "cpu");

	memset(l, 0, sizeof(*l));
	l->bundle_dir = inv->bundle_dir;
	l->argv = inv->argv;
	if (inv->image)
	{
		l->bundle_dir = "";
		l->rootfs = inv->image->rootfs;
		l->workdir = inv->image->workdir;
		l->uid = inv->image->uid;
		l->gid = inv->image->gid;
	}
	l->envp = env;
	l->session = inv->session;
	l->memory_mb = inv->memory_mb;
	l->pids = option_int(inv, "pids", 256);
	l->tmp_mb = option_int(inv, "tmp_mb", 64);
	l->cpu = cJSON_IsNumber(cpu) ? cpu->valuedouble : 1.0;
	l->net = cJSON_IsTrue(cJSON_GetObjectItem(inv->options, "net"));
	l->secrets = inv->secrets;
	if (!inv->image)
		l->uid = l->gid = -1;
}

/* Metering from how the process ended. */
static void
meter(fx_inv *inv, fx_proc *p)
{
	inv->cpu_ms = (p->ru.ru_utime.tv_sec + p->ru.ru_stime.tv_sec) * 1e3 +
		(p->ru.ru_utime.tv_usec + p->ru.ru_stime.tv_usec) / 1e3;
	inv->max_rss_kb = p->peak_kb >= 0 ? p->peak_kb : p->ru.ru_maxrss;
}

static char *
oom_message(fx_inv *inv)
{
	return fx_xasprintf("out of memory: the function exceeded its %d MB", inv->memory_mb);
}

static void
free_strv(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

void
fx_inv_free(fx_inv *inv)
{
	free(inv->fn);
	free(inv->args);
	free(inv->key);
	free(inv->idem);
	free(inv->hash);
	free_strv(inv->argv);
	cJSON_Delete(inv->options);
	free(inv->bundle_dir);
	if (inv->image)
	{
		fx_image_free(inv->image);
		free(inv->image);
	}
	cJSON_Delete(inv->result);
	free(inv->error);
	free(inv->detail);
	cJSON_Delete(inv->logs);
	free(inv->token);
	if (inv->secrets)
		fx_secret_unbind(inv->id, inv->secrets);
	fx_secrets_unref(inv->secrets);
	cJSON_Delete(inv->state);
	fx_wf_free(inv->wf);
	free(inv);
}

/* ---------------------------------------------------------------------
 * Simple mode
 * --------------------------------------------------------------------- */

static void
simple_log_err(void *arg, const char *line, size_t n)
{
	fx_simple  *s = arg;

	if (s->inv)
		log_bounded(s->inv->ex, s->inv, "stderr", line, n);
}

static void
simple_on_err(fx_proc *p, const char *buf, size_t n)
{
	fx_simple  *s = p->owner;

	lines_feed(&s->err, buf, n, simple_log_err, s);
}

static void
simple_on_out(fx_proc *p, const char *buf, size_t n)
{
	fx_simple  *s = p->owner;

	if (s->out_overflow)
		return;
	if (s->out_len + n > s->max_out)
	{
		s->out_overflow = true;
		fx_proc_kill(p);
		return;
	}
	s->out = fx_xrealloc(s->out, s->out_len + n + 1);
	memcpy(s->out + s->out_len, buf, n);
	s->out_len += n;
	s->out[s->out_len] = '\0';
}

static void
simple_closed(fx_proc *p)
{
	fx_simple  *s = p->owner;

	fx_secrets_unref(s->err.sec);
	free(s->out);
	free(s);
}

/*
 * Text a function sent that is to go to PostgreSQL as jsonb: NULL if it
 * takes it, else why not (allocated), "is not valid JSON for ...".
 */
static char *
refuse_json(const char *text, size_t len)
{
	size_t		at;
	const char *why = fx_json_check(text, len, &at);

	return why ? fx_xasprintf("is not valid JSON for PostgreSQL: %s at byte %zu", why, at) : NULL;
}

cJSON *
fx_exec_result(const char *out, size_t len, char **why)
{
	*why = NULL;
	if (len == 0 || strspn(out, " \t\r\n") == len)
		return cJSON_CreateNull();
	/* Checked as jsonb reads it, kept as written (see fx_json.h). */
	if ((*why = refuse_json(out, len)) != NULL)
		return NULL;
	return fx_json_raw(out, len);
}

static void
simple_outcome(fx_simple *s, fx_inv *inv)
{
	fx_proc    *p = &s->proc;
	char	   *why;

	meter(inv, p);
	if (inv->cancelled)
		return;					/* outcome already set by fx_exec_kill */
	if (inv->timed_out)
	{
		why = fx_xasprintf("timed out after %d ms", inv->timeout_ms);
		fx_inv_fail(inv, true, why, NULL);
		free(why);
		return;
	}
	if (p->oom_killed)
	{
		why = oom_message(inv);
		fx_inv_fail(inv, true, why, NULL);
		free(why);
		return;
	}
	if (s->out_overflow)
	{
		why = fx_xasprintf("bad output: result larger than %zu bytes", s->max_out);
		fx_inv_fail(inv, true, why, NULL);
		free(why);
		return;
	}
	if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0)
	{
		char	   *detail = stderr_tail(inv);

		why = fx_proc_describe(p->status);
		fx_inv_fail(inv, true, why, detail);
		free(why);
		free(detail);
		return;
	}
	inv->result = fx_exec_result(s->out, s->out_len, &why);
	if (inv->result == NULL)
	{
		char	   *detail = fx_xasprintf("stdout began: %.200s", s->out);
		char	   *msg = fx_xasprintf("bad output: result %s", why);

		fx_inv_fail(inv, true, msg, detail);
		free(msg);
		free(detail);
		free(why);
		return;
	}
	inv->finished = true;
	inv->ok = true;
}

static void
simple_on_exit(fx_proc *p)
{
	fx_simple  *s = p->owner;
	fx_inv	   *inv = s->inv;

	lines_flush(&s->err, simple_log_err, s);
	s->inv = NULL;
	fx_proc_close(p);
	if (inv == NULL)
		return;
	simple_outcome(s, inv);
	inv->simple = NULL;
	finish(inv->ex, inv);
}

static void
simple_start(fx_exec *ex, fx_inv *inv)
{
	fx_simple  *s = fx_xcalloc(1, sizeof(*s));
	fx_proc_spec spec;
	fx_launch	launch;
	char	  **env = build_env(ex, inv);
	char	   *why = NULL;

	spec.argv = inv->argv;
	spec.envp = env;
	spec.cwd = inv->bundle_dir;
	spec.session = false;
	make_launch(inv, env, &launch);
	spec.sandbox = ex->cfg.sandbox ? &launch : NULL;
	s->inv = inv;
	s->max_out = ex->cfg.max_result_bytes;
	s->proc.owner = s;
	s->proc.on_out = simple_on_out;
	s->proc.on_err = simple_on_err;
	s->proc.on_exit = simple_on_exit;
	s->proc.on_closed = simple_closed;
	inv->start = FX_START_COLD;
	if (fx_proc_start(ex->loop, &spec, &s->proc, &why) < 0)
	{
		fx_inv_fail(inv, true, why, NULL);
		free(why);
		free(s);
		free_strv(env);
		finish(ex, inv);
		return;
	}
	free_strv(env);
	inv->simple = s;
	s->err.sec = fx_secrets_ref(inv->secrets);
	inv->start = s->proc.prewarmed ? FX_START_PREWARMED : FX_START_COLD;
	fx_proc_write_stdin(&s->proc, inv->args, strlen(inv->args));
}

/* ---------------------------------------------------------------------
 * Session mode
 * --------------------------------------------------------------------- */

/*
 * Send msg; -ENOBUFS if what was sent before is still not read: a
 * function that does not read its replies must not fill our memory.
 */
static int
session_send(fx_session *s, cJSON *msg)
{
	char	   *body;
	size_t		n;
	char	   *frame;
	int			r;

	if (fx_proc_unsent(&s->proc) > MAX_UNREAD_BYTES)
		return -ENOBUFS;
	body = cJSON_PrintUnformatted(msg);
	n = strlen(body);
	frame = fx_xmalloc(n + 4);

	frame[0] = (char) (n >> 24);
	frame[1] = (char) (n >> 16);
	frame[2] = (char) (n >> 8);
	frame[3] = (char) n;
	memcpy(frame + 4, body, n);
	r = fx_proc_send(&s->proc, frame, n + 4);
	free(frame);
	cJSON_free(body);
	return r;
}

static void
session_invoke(fx_session *s)
{
	fx_inv	   *inv = s->inv;
	cJSON	   *msg = cJSON_CreateObject();
	cJSON	   *args = cJSON_CreateRaw(inv->args);	/* as PostgreSQL wrote it */

	s->state = SESSION_BUSY;
	cJSON_AddStringToObject(msg, "type", "invoke");
	cJSON_AddItemToObject(msg, "id", fx_json_int(inv->id));
	cJSON_AddStringToObject(msg, "fn", inv->fn);
	cJSON_AddNumberToObject(msg, "version", inv->version);
	cJSON_AddNumberToObject(msg, "attempt", inv->attempt);
	cJSON_AddItemToObject(msg, "args", args ? args : cJSON_CreateNull());
	if (inv->key)
		cJSON_AddStringToObject(msg, "key", inv->key);
	else
		cJSON_AddNullToObject(msg, "key");
	cJSON_AddStringToObject(msg, "idempotency_key", inv->idem);
	cJSON_AddItemToObject(msg, "deadline", fx_json_int(inv->deadline_ms));
	s->waiting = 0;
	if (session_send(s, msg) < 0)
		session_end(s, "cannot write to the session process", NULL);
	cJSON_Delete(msg);
}

static void
idle_expired(uv_timer_t *t)
{
	fx_session *s = t->data;

	fx_debug("closing idle session process of %s:%d", s->fn, s->version);
	session_end(s, NULL, NULL);
}

/* The attempt the session ran is over; the session is idle again. */
static void
session_done(fx_session *s)
{
	fx_inv	   *inv = s->inv;

	s->inv = NULL;
	s->state = SESSION_IDLE;
	s->last_used_ns = fx_mono_ns();
	inv->sess = NULL;
	uv_timer_start(&s->idle, idle_expired, s->ex->cfg.warm_ttl_ms, 0);
	finish(s->ex, inv);
	if (s->sock_eof || s->retire)
		session_end(s, NULL, NULL);		/* it can take no other */
}

/*
 * A result or error message that is refused (why: "is not valid JSON
 * ..."): it fails its attempt, and the session goes on.
 */
static void
session_bad_reply(fx_session *s, const char *type, const char *why)
{
	char	   *msg = fx_xasprintf("bad output: %s %s", type, why);

	fx_inv_fail(s->inv, true, msg, NULL);
	free(msg);
	session_done(s);
}

static void
session_reply(fx_session *s, cJSON *msg, const char *body, size_t n, const char *why)
{
	cJSON	   *inv_id = cJSON_GetObjectItem(msg, "id");
	const char *type = cJSON_GetObjectItem(msg, "type")->valuestring;
	fx_inv	   *inv = s->inv;

	if (s->state != SESSION_BUSY || !cJSON_IsNumber(inv_id) ||
		(int64_t) inv_id->valuedouble != inv->id)
	{
		session_end(s, "protocol error: a result for an invocation it was not given", NULL);
		return;
	}
	/* lines it printed before answering belong to this attempt */
	fx_proc_drain(&s->proc);
	if (why != NULL)
	{
		session_bad_reply(s, type, why);
		return;
	}
	if (strcmp(type, "result") == 0)
	{
		size_t		len;
		const char *value = fx_json_member(body, n, "value", &len);

		if (value != NULL && len > s->ex->cfg.max_result_bytes)
		{
			char	   *big = fx_xasprintf("is larger than %zu bytes", s->ex->cfg.max_result_bytes);

			session_bad_reply(s, type, big);
			free(big);
			return;
		}
		inv->result = value ? fx_json_raw(value, len) : cJSON_CreateNull();
		inv->finished = true;
		inv->ok = true;
	}
	else
	{
		cJSON	   *m = cJSON_GetObjectItem(msg, "message");
		cJSON	   *d = cJSON_GetObjectItem(msg, "detail");
		cJSON	   *r = cJSON_GetObjectItem(msg, "retryable");

		fx_inv_fail(inv, !cJSON_IsFalse(r),
					cJSON_IsString(m) ? m->valuestring : "function reported an error",
					cJSON_IsString(d) ? d->valuestring : NULL);
	}
	session_done(s);
}

void
fx_exec_reply(fx_inv *inv, const cJSON *seq, cJSON *value, const char *error,
			  const char *code)
{
	fx_session *s = inv->sess;
	cJSON	   *reply;

	if (s == NULL || s->inv != inv || s->state != SESSION_BUSY)
	{
		cJSON_Delete(value);	/* the attempt is over: nobody to tell */
		return;
	}
	if (s->waiting > 0)
		s->waiting--;
	reply = cJSON_CreateObject();
	cJSON_AddStringToObject(reply, "type", "reply");
	cJSON_AddItemToObject(reply, "seq", cJSON_Duplicate(seq, true));
	if (error)
	{
		cJSON_AddStringToObject(reply, "error", error);
		cJSON_AddStringToObject(reply, "code", code ? code : "XX000");
		cJSON_Delete(value);
	}
	else
		cJSON_AddItemToObject(reply, "value", value ? value : cJSON_CreateNull());
	if (session_send(s, reply) == -ENOBUFS)
		session_end(s, "protocol error: the session process does not read its replies "
					"(more than 8 MiB of them unread)", NULL);
	cJSON_Delete(reply);
}

int
fx_frame_next(const char *buf, size_t len, const char **body, size_t *n)
{
	const unsigned char *h = (const unsigned char *) buf;

	if (len < 4)
		return 0;
	*n = ((size_t) h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3];
	if (*n > FX_MAX_MESSAGE)
		return -EMSGSIZE;
	if (len - 4 < *n)
		return 0;
	*body = buf + 4;
	return 1;
}

/*
 * The members that say what a refused message is and whom it is for,
 * found in text that may not be JSON at all.
 */
static cJSON *
message_routing(const char *body, size_t n)
{
	static const char *const keys[] = {"type", "id", "seq", NULL};
	cJSON	   *msg = cJSON_CreateObject();

	for (int i = 0; keys[i] != NULL; i++)
	{
		size_t		len;
		const char *v = fx_json_member(body, n, keys[i], &len);
		cJSON	   *item = v && len <= 64 ? cJSON_ParseWithLength(v, len) : NULL;

		if (cJSON_IsString(item) || cJSON_IsNumber(item))
			cJSON_AddItemToObject(msg, keys[i], item);
		else
			cJSON_Delete(item);
	}
	return msg;
}

cJSON *
fx_message_parse(const char *body, size_t n, char **why)
{
	cJSON	   *msg = NULL;
	const char *limit = NULL;

	*why = refuse_json(body, n);
	if (*why == NULL)
	{
		msg = fx_json_parse_message(body, n, &limit);
		if (limit != NULL)
			*why = fx_xasprintf("has %s", limit);
	}
	if (*why != NULL)
		msg = message_routing(body, n);
	if (cJSON_IsString(cJSON_GetObjectItem(msg, "type")))
		return msg;
	cJSON_Delete(msg);
	return NULL;
}

/* A request (a message with a "seq") of the attempt running. */
static void
session_request(fx_session *s, cJSON *msg, const char *body, size_t n, const char *why)
{
	const char *type = cJSON_GetObjectItem(msg, "type")->valuestring;
	cJSON	   *seq = cJSON_GetObjectItem(msg, "seq");
	char	   *err = NULL;

	if (++s->waiting > MAX_WAITING_REQUESTS)
	{
		session_end(s, "protocol error: more than 64 requests waiting for their replies", NULL);
		return;
	}
	if (why != NULL)
	{
		err = fx_xasprintf("request %s", why);
		fx_exec_reply(s->inv, seq, NULL, err, "22P02");
	}
	else if (s->ex->on_request)
		s->ex->on_request(s->inv, type, msg, body, n);
	else
	{
		err = fx_xasprintf("unsupported request \"%s\"", type);
		fx_exec_reply(s->inv, seq, NULL, err, "0A000");
	}
	free(err);
}

static void
session_message(fx_session *s, const char *body, size_t n)
{
	char	   *why;
	cJSON	   *msg = fx_message_parse(body, n, &why);
	const char *type = msg ? cJSON_GetObjectItem(msg, "type")->valuestring : NULL;

	if (msg == NULL)
	{
		char	   *detail = why ? fx_xasprintf("The message %s.", why) : NULL;

		session_end(s, "protocol error: a message that is not a JSON object with a \"type\"",
					detail);
		free(detail);
	}
	else if (strcmp(type, "ready") == 0 && s->state == SESSION_STARTING)
	{
		if (s->inv)
			session_invoke(s);
		else
			s->state = SESSION_IDLE;
	}
	else if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0)
		session_reply(s, msg, body, n, why);
	else if (cJSON_GetObjectItem(msg, "seq") != NULL && s->state == SESSION_BUSY)
		session_request(s, msg, body, n, why);
	else
	{
		char	   *err = fx_xasprintf("protocol error: unexpected message \"%s\"", type);

		session_end(s, err, NULL);
		free(err);
	}
	free(why);
	cJSON_Delete(msg);
}

static void
session_on_sock(fx_proc *p, const char *buf, size_t n)
{
	fx_session *s = p->owner;
	size_t		off = 0;

	if (s->state == SESSION_DEAD)
		return;
	if (s->rlen + n > s->rcap)
	{
		/* doubling: a large message arrives in many small reads */
		s->rcap = 2 * s->rcap > FX_MAX_MESSAGE + 4 ? FX_MAX_MESSAGE + 4 : 2 * s->rcap;
		if (s->rcap < s->rlen + n)
			s->rcap = s->rlen + n;
		s->rbuf = fx_xrealloc(s->rbuf, s->rcap);
	}
	memcpy(s->rbuf + s->rlen, buf, n);
	s->rlen += n;
	while (s->state != SESSION_DEAD)
	{
		const char *body;
		size_t		len;
		int			r = fx_frame_next(s->rbuf + off, s->rlen - off, &body, &len);

		if (r < 0)
		{
			session_end(s, "protocol error: message larger than 64 MiB", NULL);
			return;
		}
		if (r == 0)
			break;
		session_message(s, body, len);
		off += 4 + len;
	}
	if (s->state == SESSION_DEAD)
		return;
	memmove(s->rbuf, s->rbuf + off, s->rlen - off);
	s->rlen -= off;
	if (s->rlen == 0 && s->rcap > 65536)
	{
		/* an idle session keeps no large buffer */
		free(s->rbuf);
		s->rbuf = NULL;
		s->rcap = 0;
	}
}

static void
session_log(fx_session *s, const char *stream, const char *line, size_t n)
{
	if (s->inv)
		log_bounded(s->ex, s->inv, stream, line, n);
	else
		fx_debug("%s:%d %s: %.*s", s->fn, s->version, stream, (int) n, line);
}

static void
session_log_out(void *arg, const char *line, size_t n)
{
	session_log(arg, "stdout", line, n);
}

static void
session_log_err(void *arg, const char *line, size_t n)
{
	session_log(arg, "stderr", line, n);
}

static void
session_on_out(fx_proc *p, const char *buf, size_t n)
{
	fx_session *s = p->owner;

	/* a flood after the attempt's log is full: drop it, cheaply */
	if (s->inv && s->inv->log_truncated)
		s->out.len = 0;
	else
		lines_feed(&s->out, buf, n, session_log_out, s);
}

static void
session_on_err(fx_proc *p, const char *buf, size_t n)
{
	fx_session *s = p->owner;

	if (s->inv && s->inv->log_truncated)
		s->err.len = 0;
	else
		lines_feed(&s->err, buf, n, session_log_err, s);
}

/* "" or how much of a message the socket held when it closed. */
static char *
partial_message(fx_session *s)
{
	const unsigned char *h = (const unsigned char *) s->rbuf;

	if (s->rlen == 0)
		return fx_xstrdup("");
	if (s->rlen < 4)
		return fx_xasprintf(" in the middle of a message (%zu of the 4 bytes of its length)",
							s->rlen);
	return fx_xasprintf(" in the middle of a message (%zu of its %zu bytes)", s->rlen - 4,
						((size_t) h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]);
}

static void
sock_eof_expired(uv_timer_t *t)
{
	fx_session *s = t->data;
	char	   *part = partial_message(s);
	char	   *why = fx_xasprintf("protocol error: the session process closed its socket%s",
								   part);

	session_end(s, why, NULL);
	free(why);
	free(part);
}

/*
 * The process closed its end of the socket: it can answer nothing more.
 * If it is exiting, its exit says more (and comes with its stderr), so the
 * attempt it holds fails a moment later unless that comes first.
 */
static void
session_on_sock_eof(fx_proc *p)
{
	fx_session *s = p->owner;

	if (s->state == SESSION_DEAD)
		return;
	s->sock_eof = true;
	if (s->inv == NULL)
		session_end(s, NULL, NULL);
	else
		uv_timer_start(&s->idle, sock_eof_expired, SOCK_EOF_GRACE_MS, 0);
}

static void
session_on_exit(fx_proc *p)
{
	fx_session *s = p->owner;
	char	   *why;

	lines_flush(&s->out, session_log_out, s);
	lines_flush(&s->err, session_log_err, s);
	why = fx_proc_describe(p->status);
	if (s->inv)
	{
		char	   *part = partial_message(s);
		char	   *msg = fx_xasprintf("session process ended: %s%s", why, part);
		char	   *detail = stderr_tail(s->inv);

		session_end(s, msg, detail);
		free(part);
		free(msg);
		free(detail);
	}
	else
		session_end(s, NULL, NULL);
	free(why);
}

static void
session_freed(uv_handle_t *h)
{
	fx_session *s = h->data;

	s->ex->closing--;
	fx_secrets_unref(s->secrets);
	free(s->rbuf);
	free(s->fn);
	free(s);
}

static void
session_proc_closed(fx_proc *p)
{
	fx_session *s = p->owner;

	uv_close((uv_handle_t *) &s->idle, session_freed);
}

static void
unlink_session(fx_session *s)
{
	fx_exec    *ex = s->ex;

	for (fx_session **pp = &ex->sessions; *pp; pp = &(*pp)->next)
		if (*pp == s)
		{
			*pp = s->next;
			ex->nsessions--;
			break;
		}
}

/*
 * The session is over: fail the attempt it held (why says how), take it
 * out of the pool and close its process.
 */
static void
session_end(fx_session *s, const char *why, const char *detail)
{
	fx_inv	   *inv = s->inv;

	if (s->state == SESSION_DEAD)
		return;
	s->state = SESSION_DEAD;
	s->inv = NULL;
	uv_timer_stop(&s->idle);
	unlink_session(s);
	s->ex->closing++;
	if (inv)
	{
		inv->sess = NULL;
		meter(inv, &s->proc);
		if (!inv->cancelled)
		{
			if (s->proc.oom_killed)
			{
				char	   *msg = oom_message(inv);

				fx_inv_fail(inv, true, msg, NULL);
				free(msg);
			}
			else if (inv->timed_out)
			{
				char	   *msg = fx_xasprintf("timed out after %d ms", inv->timeout_ms);

				fx_inv_fail(inv, true, msg, NULL);
				free(msg);
			}
			else
				fx_inv_fail(inv, true, why ? why : "session process ended", detail);
		}
		fx_proc_close(&s->proc);
		finish(s->ex, inv);
		return;
	}
	fx_proc_close(&s->proc);
}

/* Make room in a full pool by ending the least recently used idle session. */
static bool
evict_one(fx_exec *ex)
{
	fx_session *victim = NULL;

	for (fx_session *s = ex->sessions; s; s = s->next)
		if (s->state == SESSION_IDLE &&
			(victim == NULL || s->last_used_ns < victim->last_used_ns))
			victim = s;
	if (victim == NULL)
		return false;
	session_end(victim, NULL, NULL);
	return true;
}

static fx_session *
session_new(fx_exec *ex, fx_inv *inv, char **why)
{
	fx_session *s = fx_xcalloc(1, sizeof(*s));
	fx_proc_spec spec;
	fx_launch	launch;
	char	  **env = build_env(ex, inv);
	int			r;

	spec.argv = inv->argv;
	spec.envp = env;
	spec.cwd = inv->bundle_dir;
	spec.session = true;
	make_launch(inv, env, &launch);
	spec.sandbox = ex->cfg.sandbox ? &launch : NULL;
	s->ex = ex;
	s->fn = fx_xstrdup(inv->fn);
	s->version = inv->version;
	s->state = SESSION_STARTING;
	s->proc.owner = s;
	s->proc.on_out = session_on_out;
	s->proc.on_err = session_on_err;
	s->proc.on_sock = session_on_sock;
	s->proc.on_sock_eof = session_on_sock_eof;
	s->proc.on_exit = session_on_exit;
	s->proc.on_closed = session_proc_closed;
	r = fx_proc_start(ex->loop, &spec, &s->proc, why);
	free_strv(env);
	if (r < 0)
	{
		free(s->fn);
		free(s);
		return NULL;
	}
	s->secrets = fx_secrets_ref(inv->secrets);
	s->out.sec = s->err.sec = s->secrets;
	uv_timer_init(ex->loop, &s->idle);
	s->idle.data = s;
	s->next = ex->sessions;
	ex->sessions = s;
	ex->nsessions++;
	return s;
}

static void
session_start(fx_exec *ex, fx_inv *inv)
{
	fx_session *s;
	char	   *why = NULL;

	for (s = ex->sessions; s; s = s->next)
		if (s->state == SESSION_IDLE && s->version == inv->version &&
			strcmp(s->fn, inv->fn) == 0 && !s->retire &&
			fx_secrets_equal(s->secrets, inv->secrets))
			break;
	if (s)
	{
		uv_timer_stop(&s->idle);
		inv->start = FX_START_WARM;
		inv->sess = s;
		s->inv = inv;
		session_invoke(s);
		return;
	}
	while (ex->nsessions >= ex->cfg.max_sessions && evict_one(ex))
		;
	s = session_new(ex, inv, &why);
	if (s == NULL)
	{
		fx_inv_fail(inv, true, why, NULL);
		free(why);
		finish(ex, inv);
		return;
	}
	inv->start = s->proc.prewarmed ? FX_START_PREWARMED : FX_START_COLD;
	inv->sess = s;
	s->inv = inv;				/* sent when the process says "ready" */
}

/* ---------------------------------------------------------------------
 * Public
 * --------------------------------------------------------------------- */

void
fx_exec_init(fx_exec *ex, uv_loop_t *loop, const fx_exec_config *cfg)
{
	memset(ex, 0, sizeof(*ex));
	ex->loop = loop;
	ex->cfg = *cfg;
}

static void
deadline_cb(uv_timer_t *t)
{
	fx_inv	   *inv = t->data;

	inv->timed_out = true;
	fx_log(FX_LOG_INFO, inv->id, "timed out after %d ms, killing it", inv->timeout_ms);
	if (inv->simple)
		fx_proc_kill(&inv->simple->proc);
	else if (inv->sess)
		session_end(inv->sess, NULL, NULL);
}

void
fx_exec_start(fx_exec *ex, fx_inv *inv)
{
	inv->ex = ex;
	inv->started_ns = fx_mono_ns();
	inv->deadline_ms = fx_now_ms() + inv->timeout_ms;
	uv_timer_init(ex->loop, &inv->timer);
	inv->timer.data = inv;
	inv->timer_open = true;
	uv_timer_start(&inv->timer, deadline_cb, inv->timeout_ms, 0);
	if (inv->session)
		session_start(ex, inv);
	else
		simple_start(ex, inv);
}

void
fx_exec_kill(fx_exec *ex, fx_inv *inv, const char *why)
{
	(void) ex;
	if (inv->finished || inv->cancelled)
		return;
	inv->cancelled = true;
	fx_inv_fail(inv, true, why, NULL);
	if (inv->simple)
		fx_proc_kill(&inv->simple->proc);
	else if (inv->sess)
		session_end(inv->sess, why, NULL);
}

void
fx_exec_retire(fx_exec *ex, const char *fn)
{
	fx_session *s = ex->sessions;

	while (s)
	{
		fx_session *next = s->next;

		if (strcmp(s->fn, fn) == 0)
		{
			s->retire = true;
			if (s->state == SESSION_IDLE)
				session_end(s, NULL, NULL);
		}
		s = next;
	}
}

void
fx_exec_shutdown(fx_exec *ex)
{
	while (ex->sessions)
		session_end(ex->sessions, "worker stopping", NULL);
}
