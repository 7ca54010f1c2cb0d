/*
 * fx_workflow.c: answering a workflow's steps (docs/protocol.md,
 * "Workflows").
 *
 * Per attempt, an fx_wf keeps the steps recorded by earlier runs (loaded at
 * the first step request of a replay), the highest step reached, the inline
 * step that is open, and the wait in progress.  Every database call goes on
 * wfs->db and is fenced in SQL by the lease (owner, token); its answer
 * finds the attempt again by (id, epoch) and is dropped if it has ended.
 *
 * A wait ends by a timer (a sleep's wake-up, a recv's timeout), by a
 * notification (fx_msg: a message for the workflow; fx_done_<pid>: a child
 * ended), or by eviction after grace_ms.  A notification that arrives while
 * the wait's query is in flight makes it look again when it returns, so no
 * message or child end is missed.
 */
#include <stdlib.h>
#include <string.h>

#include "fx_json.h"
#include "fx_log.h"
#include "fx_workflow.h"

/* A step recorded by an earlier run. */
typedef struct rec
{
	int			step;
	char	   *name;
	char	   *kind;
	bool		done;
	char	   *output;			/* JSON text, or NULL */
	char	   *error;
	char	   *detail;
	int64_t		child;
	int64_t		wake_ms;		/* 0: none */
} rec;

/* A request that came while the recorded steps were being loaded. */
typedef struct deferred
{
	char	   *type;
	cJSON	   *msg;
	char	   *body;
	size_t		n;
	struct deferred *next;
} deferred;

struct fx_wf
{
	fx_workflows *wfs;
	fx_inv	   *inv;
	bool		loaded;
	bool		loading;
	rec		   *recs;
	int			nrecs;
	deferred   *deferred;
	deferred  **deferred_tail;
	int			last;			/* highest step reached by this attempt */
	int			open;			/* the inline step begun, not yet done; 0: none */
	char	   *open_name;
	int64_t		open_ms;		/* when it began */

	/* the wait in progress (wait_seq != NULL) */
	cJSON	   *wait_seq;
	int			wait_step;
	char		wait_kind[16];	/* sleep, recv, call, await */
	int64_t		wait_child;
	char	   *wait_topic;
	int64_t		wait_until;		/* ms: wake-up or timeout; 0: none */
	int64_t		grace_until;
	bool		busy;			/* a query for the wait is in flight */
	bool		again;			/* something happened meanwhile: look again */
	uv_timer_t *timer;
	struct fx_wf *next_waiting;

	bool		evicting;
	bool		evicted;
	char	   *fatal;
};

/* The attempts waiting on something, for notifications. */
static fx_wf *waiting;

static void poll_wait(fx_wf *wf);
static void dispatch(fx_wf *wf, const char *type, const cJSON *msg, const char *body, size_t n);

bool
fx_wf_is_request(const char *type)
{
	static const char *const types[] = {"step", "step.done", "call", "start", "await",
	"sleep", "recv", "send", "set_event", NULL};

	for (int i = 0; types[i]; i++)
		if (strcmp(type, types[i]) == 0)
			return true;
	return false;
}

/* ---------------------------------------------------------------------
 * Replies and database calls
 * --------------------------------------------------------------------- */

/* {"done":true,"output":...} or {"done":true,"error":...,"detail":...} */
static cJSON *
outcome(const char *output, const char *error, const char *detail)
{
	cJSON	   *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "done", true);
	if (error)
	{
		cJSON_AddStringToObject(o, "error", error);
		if (detail)
			cJSON_AddStringToObject(o, "detail", detail);
		else
			cJSON_AddNullToObject(o, "detail");
	}
	else
		cJSON_AddItemToObject(o, "output", output ? cJSON_CreateRaw(output) : cJSON_CreateNull());
	return o;
}

/* A database call made for an attempt, finding it again on return. */
typedef struct call
{
	fx_workflows *wfs;
	int64_t		id;
	int			epoch;
	cJSON	   *seq;
	int			step;
	char		kind[16];
	char	   *output;			/* step.done: the output to echo (JSON text) */
	char	   *error;			/* ... or the error */
	char	   *detail;
} call;

static call *
call_new(fx_wf *wf, const cJSON *seq, int step, const char *kind)
{
	call	   *c = fx_xcalloc(1, sizeof(*c));

	c->wfs = wf->wfs;
	c->id = wf->inv->id;
	c->epoch = wf->inv->epoch;
	c->seq = seq ? cJSON_Duplicate(seq, true) : NULL;
	c->step = step;
	snprintf(c->kind, sizeof(c->kind), "%s", kind);
	return c;
}

static void
call_free(call *c)
{
	cJSON_Delete(c->seq);
	free(c->output);
	free(c->error);
	free(c->detail);
	free(c);
}

/* The outcome a step.done call echoes once recorded. */
static call *
echo(call *c, const char *output, const char *error, const char *detail)
{
	c->output = output ? fx_xstrdup(output) : NULL;
	c->error = error ? fx_xstrdup(error) : NULL;
	c->detail = detail ? fx_xstrdup(detail) : NULL;
	return c;
}

/* The attempt's workflow state if the attempt still runs, else NULL. */
static fx_wf *
call_wf(call *c)
{
	fx_inv	   *inv = c->wfs->find(c->wfs->arg, c->id, c->epoch);

	return inv ? inv->wf : NULL;
}

/* A failed database call: the reply's error and code. */
static void
reply_db_error(fx_inv *inv, const cJSON *seq, PGresult *res)
{
	const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (res == NULL)
		fx_exec_reply(inv, seq, NULL, "the database connection was lost", "08006");
	else if (code && strcmp(code, "FXL01") == 0)
		fx_exec_reply(inv, seq, NULL, "the invocation's lease moved to another worker", "FXL01");
	else
		fx_exec_reply(inv, seq, NULL, msg ? msg : fx_db_error(res), code ? code : "XX000");
}

static bool
tuples_ok(PGresult *res)
{
	return res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
}

/*
 * SELECT cols FROM from on wfs->db (from may be NULL), committing without
 * waiting for the disk.
 */
static void
query(fx_workflows *wfs, const char *cols, const char *from, int n,
	  const char *const *params, fx_db_cb cb, void *arg)
{
	char	   *sql = fx_xasprintf("SELECT %s FROM (SELECT set_config('synchronous_commit', 'off', true)) s%s%s",
								   cols, from ? ", " : "", from ? from : "");

	fx_db_query_prepared(wfs->db, sql, n, params, cb, arg);
	free(sql);
}

static char *
ms_text(int64_t ms)
{
	return ms > 0 ? fx_xasprintf("%lld", (long long) ms) : NULL;
}

static char *
pid_text(fx_workflows *wfs)
{
	return fx_xasprintf("%d", wfs->db->conn ? PQbackendPID(wfs->db->conn) : 0);
}

/* ---------------------------------------------------------------------
 * Waiting
 * --------------------------------------------------------------------- */

static void
unlist(fx_wf *wf)
{
	for (fx_wf **p = &waiting; *p; p = &(*p)->next_waiting)
		if (*p == wf)
		{
			*p = wf->next_waiting;
			break;
		}
	wf->next_waiting = NULL;
}

/* The wait is over: answer it. */
static void
end_wait(fx_wf *wf, cJSON *value, const char *error, const char *code)
{
	cJSON	   *seq = wf->wait_seq;

	wf->wait_seq = NULL;
	wf->busy = false;
	wf->again = false;
	free(wf->wait_topic);
	wf->wait_topic = NULL;
	if (wf->timer)
		uv_timer_stop(wf->timer);
	unlist(wf);
	fx_exec_reply(wf->inv, seq, value, error, code);
	cJSON_Delete(seq);
}

/* The wait is over because a database call failed. */
static void
end_wait_failed(fx_wf *wf, PGresult *res)
{
	const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "08006";
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
		: "the database connection was lost";

	if (code && strcmp(code, "FXL01") == 0)
		msg = "the invocation's lease moved to another worker";
	end_wait(wf, NULL, msg ? msg : fx_db_error(res), code ? code : "XX000");
}

static void evict(fx_wf *wf);

static void
timer_cb(uv_timer_t *t)
{
	fx_wf	   *wf = t->data;

	if (wf->evicted)
	{
		/* evicted and still not answering: end it */
		fx_log(FX_LOG_INFO, wf->inv->id, "evicted workflow did not answer; killing it");
		fx_exec_kill(wf->inv->ex, wf->inv, "evicted");
		return;
	}
	if (wf->wait_seq == NULL || wf->busy)
		return;
	poll_wait(wf);
}

/* Arm the timer for the nearer of the wait's end and its grace. */
static void
arm(fx_wf *wf)
{
	int64_t		now = fx_now_ms();
	int64_t		at = wf->grace_until;

	if (wf->wait_until > 0 && wf->wait_until < at)
		at = wf->wait_until;
	uv_timer_start(wf->timer, timer_cb, at > now ? (uint64_t) (at - now) : 0, 0);
}

static void
recorded_cb(fx_db *db, PGresult *res, void *arg)
{
	call	   *c = arg;
	fx_wf	   *wf = call_wf(c);

	(void) db;
	if (wf && wf->wait_seq && wf->wait_step == c->step)
	{
		if (tuples_ok(res) && PQgetvalue(res, 0, 0)[0] == 't')
			end_wait(wf, outcome(NULL, NULL, NULL), NULL, NULL);
		else if (tuples_ok(res))
			end_wait(wf, NULL, "the invocation's lease moved to another worker", "FXL01");
		else
			end_wait_failed(wf, res);
	}
	call_free(c);
}

/* A sleep or a recv reached its time: record it done with output null. */
static void
time_up(fx_wf *wf)
{
	char	   *id = fx_xasprintf("%lld", (long long) wf->inv->id);
	char	   *step = fx_xasprintf("%d", wf->wait_step);
	const char *params[7] = {wf->wfs->owner, wf->inv->token, id, step, wf->wait_kind,
	wf->wait_kind, "null"};

	wf->busy = true;
	query(wf->wfs, "fx.step_done($1, $2, $3, $4, $5, $6, $7)", NULL, 7, params, recorded_cb,
		  call_new(wf, NULL, wf->wait_step, wf->wait_kind));
	free(id);
	free(step);
}

/*
 * The attempt whose wait a look (fx.await_child, fx.recv_take) answered,
 * its query no longer in flight; NULL if that wait is gone, or if the look
 * failed, which ends the wait.
 */
static fx_wf *
looked(call *c, PGresult *res)
{
	fx_wf	   *wf = call_wf(c);

	if (wf == NULL || wf->wait_seq == NULL || wf->wait_step != c->step)
		return NULL;
	wf->busy = false;
	if (tuples_ok(res))
		return wf;
	end_wait_failed(wf, res);
	return NULL;
}

/* Not over yet: look again if something happened meanwhile, else wait on. */
static void
wait_on(fx_wf *wf)
{
	if (wf->again)
		poll_wait(wf);
	else
		arm(wf);
}

static void
child_cb(fx_db *db, PGresult *res, void *arg)
{
	call	   *c = arg;
	fx_wf	   *wf = looked(c, res);

	(void) db;
	if (wf && !PQgetisnull(res, 0, 0))
		end_wait(wf, outcome(PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
							 PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2),
							 PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3)),
				 NULL, NULL);
	else if (wf)
		wait_on(wf);
	call_free(c);
}

static void
taken_cb(fx_db *db, PGresult *res, void *arg)
{
	call	   *c = arg;
	fx_wf	   *wf = looked(c, res);

	(void) db;
	if (wf && PQgetvalue(res, 0, 0)[0] == 't')
		end_wait(wf, outcome(PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1), NULL, NULL),
				 NULL, NULL);
	else if (wf && wf->wait_until > 0 && fx_now_ms() >= wf->wait_until)
		time_up(wf);			/* timed out: the step's output is null */
	else if (wf)
		wait_on(wf);
	call_free(c);
}

/* Look whether the wait is over; else wait on, or give the sandbox up. */
static void
poll_wait(fx_wf *wf)
{
	int64_t		now = fx_now_ms();
	bool		timed = wf->wait_until > 0 && now >= wf->wait_until;
	char	   *id;
	char	   *step;

	wf->again = false;
	if (strcmp(wf->wait_kind, "sleep") == 0 && timed)
	{
		time_up(wf);
		return;
	}
	if (now >= wf->grace_until && !timed)
	{
		evict(wf);
		return;
	}
	if (strcmp(wf->wait_kind, "sleep") == 0)
	{
		arm(wf);
		return;
	}
	id = fx_xasprintf("%lld", (long long) wf->inv->id);
	step = fx_xasprintf("%d", wf->wait_step);
	wf->busy = true;
	if (strcmp(wf->wait_kind, "recv") == 0)
	{
		/* taken_cb times it out if no message came by wait_until */
		char	   *until = ms_text(wf->wait_until);
		const char *params[6] = {wf->wfs->owner, wf->inv->token, id, step, wf->wait_topic, until};

		query(wf->wfs, "t.taken, t.payload",
			  "fx.recv_take($1, $2, $3, $4, $5, to_timestamp($6::float8 / 1000)) t",
			  6, params, taken_cb,
			  call_new(wf, NULL, wf->wait_step, "recv"));
		free(until);
	}
	else
	{
		char	   *child = fx_xasprintf("%lld", (long long) wf->wait_child);
		char	   *pid = pid_text(wf->wfs);
		const char *params[7] = {wf->wfs->owner, wf->inv->token, id, step, wf->wait_kind,
		child, pid};

		query(wf->wfs, "t.status, t.result, t.error, t.detail",
			  "fx.await_child($1, $2, $3, $4, $5, $6, $7) t", 7, params, child_cb,
			  call_new(wf, NULL, wf->wait_step, wf->wait_kind));
		free(child);
		free(pid);
	}
	free(id);
	free(step);
}

static void
begin_wait(fx_wf *wf, const cJSON *seq, int step, const char *kind, int64_t child,
		   const char *topic, int64_t until)
{
	wf->wait_seq = cJSON_Duplicate(seq, true);
	wf->wait_step = step;
	snprintf(wf->wait_kind, sizeof(wf->wait_kind), "%s", kind);
	wf->wait_child = child;
	wf->wait_topic = topic ? fx_xstrdup(topic) : NULL;
	wf->wait_until = until;
	wf->grace_until = fx_now_ms() + wf->wfs->grace_ms;
	if (wf->timer == NULL)
	{
		wf->timer = fx_xcalloc(1, sizeof(*wf->timer));
		uv_timer_init(wf->wfs->loop, wf->timer);
		wf->timer->data = wf;
	}
	wf->next_waiting = waiting;
	waiting = wf;
	poll_wait(wf);
}

static void
evicted_cb(fx_db *db, PGresult *res, void *arg)
{
	call	   *c = arg;
	fx_wf	   *wf = call_wf(c);

	(void) db;
	if (wf == NULL)
	{
		call_free(c);
		return;
	}
	wf->evicting = false;
	if (tuples_ok(res) && PQgetvalue(res, 0, 0)[0] == 't')
	{
		int64_t		wake = wf->wait_until > 0 ? wf->wait_until : 0;

		fx_log(FX_LOG_DEBUG, wf->inv->id, "waiting in %s (step %d): evicted", wf->wait_kind,
			   wf->wait_step);
		wf->evicted = true;
		end_wait(wf, NULL, "workflow evicted while waiting", "FXW02");
		/* whatever it answers is ignored; one that does not answer is killed */
		uv_timer_start(wf->timer, timer_cb, 1000, 0);
		if (wf->wfs->evicted)
			wf->wfs->evicted(wf->wfs->arg, wf->inv, wake);
	}
	else if (tuples_ok(res))
		end_wait(wf, NULL, "the invocation's lease moved to another worker", "FXL01");
	else
		end_wait_failed(wf, res);
	call_free(c);
}

/* Give the sandbox up: the workflow replays when its wait is over. */
static void
evict(fx_wf *wf)
{
	fx_inv	   *inv = wf->inv;
	char	   *id = fx_xasprintf("%lld", (long long) inv->id);
	char	   *wake = ms_text(wf->wait_until);
	char	   *child = NULL;
	cJSON	   *rest = cJSON_CreateArray();	/* the lines not yet in fx.log */
	char	   *logs;
	char	   *seq = fx_xasprintf("%d", inv->logs_sent);
	const char *topic = strcmp(wf->wait_kind, "recv") == 0 ? wf->wait_topic : NULL;
	const char *params[8];

	if (strcmp(wf->wait_kind, "call") == 0 || strcmp(wf->wait_kind, "await") == 0)
		child = fx_xasprintf("%lld", (long long) wf->wait_child);
	params[0] = wf->wfs->owner;
	params[1] = inv->token;
	params[2] = id;
	params[3] = wake;
	params[4] = topic;
	for (int i = inv->logs_sent; i < cJSON_GetArraySize(inv->logs); i++)
		cJSON_AddItemReferenceToArray(rest, cJSON_GetArrayItem(inv->logs, i));
	logs = cJSON_PrintUnformatted(rest);
	cJSON_Delete(rest);
	params[5] = child;
	params[6] = logs;
	params[7] = seq;
	wf->evicting = true;
	wf->busy = true;
	query(wf->wfs, "fx.evict($1, $2, $3, to_timestamp($4::float8 / 1000), $5, $6, $7::jsonb,"
		  " $8::int)", NULL, 8, params, evicted_cb, call_new(wf, NULL, wf->wait_step, wf->wait_kind));
	free(id);
	free(wake);
	free(child);
	free(seq);
	cJSON_free(logs);
}

void
fx_wf_notify(fx_workflows *wfs, const char *channel, const char *payload)
{
	int64_t		n = strtoll(payload, NULL, 10);
	bool		msg = strcmp(channel, "fx_msg") == 0;

	(void) wfs;
	for (fx_wf *wf = waiting; wf; wf = wf->next_waiting)
	{
		bool		hit = msg ? strcmp(wf->wait_kind, "recv") == 0 && wf->inv->id == n
			: (strcmp(wf->wait_kind, "call") == 0 || strcmp(wf->wait_kind, "await") == 0) &&
			wf->wait_child == n;

		if (!hit || wf->evicting)
			continue;
		if (wf->busy)
			wf->again = true;
		else
		{
			poll_wait(wf);
			return;				/* the list may have changed */
		}
	}
}

char *
fx_wf_listen_sql(fx_workflows *wfs)
{
	return fx_xasprintf("LISTEN fx_msg; LISTEN fx_done_%d", PQbackendPID(wfs->db->conn));
}

/* ---------------------------------------------------------------------
 * Loading the recorded steps
 * --------------------------------------------------------------------- */

static char *
opt_field(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : fx_xstrdup(PQgetvalue(res, row, col));
}

static void
loaded_cb(fx_db *db, PGresult *res, void *arg)
{
	call	   *c = arg;
	fx_wf	   *wf = call_wf(c);
	deferred   *d;

	(void) db;
	call_free(c);
	if (wf == NULL)
		return;
	wf->loading = false;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		/* answer them all with the error; the attempt cannot go on */
		while ((d = wf->deferred) != NULL)
		{
			wf->deferred = d->next;
			reply_db_error(wf->inv, cJSON_GetObjectItem(d->msg, "seq"), res);
			free(d->type);
			cJSON_Delete(d->msg);
			free(d->body);
			free(d);
		}
		return;
	}
	wf->nrecs = PQntuples(res);
	wf->recs = fx_xcalloc(wf->nrecs > 0 ? wf->nrecs : 1, sizeof(rec));
	for (int i = 0; i < wf->nrecs; i++)
	{
		rec		   *r = &wf->recs[i];

		r->step = atoi(PQgetvalue(res, i, 0));
		r->name = fx_xstrdup(PQgetvalue(res, i, 1));
		r->kind = fx_xstrdup(PQgetvalue(res, i, 2));
		r->done = PQgetvalue(res, i, 3)[0] == 't';
		r->output = opt_field(res, i, 4);
		r->error = opt_field(res, i, 5);
		r->detail = opt_field(res, i, 6);
		r->child = PQgetisnull(res, i, 7) ? 0 : strtoll(PQgetvalue(res, i, 7), NULL, 10);
		r->wake_ms = PQgetisnull(res, i, 8) ? 0 : strtoll(PQgetvalue(res, i, 8), NULL, 10);
	}
	wf->loaded = true;
	while ((d = wf->deferred) != NULL && wf->inv && !wf->evicted)
	{
		wf->deferred = d->next;
		dispatch(wf, d->type, d->msg, d->body, d->n);
		free(d->type);
		cJSON_Delete(d->msg);
		free(d->body);
		free(d);
	}
}

static const rec *
recorded(fx_wf *wf, int step)
{
	for (int i = 0; i < wf->nrecs; i++)
		if (wf->recs[i].step == step)
			return &wf->recs[i];
	return NULL;
}

/* ---------------------------------------------------------------------
 * Steps
 * --------------------------------------------------------------------- */

static void
done_cb(fx_db *db, PGresult *res, void *arg)
{
	call	   *c = arg;
	fx_wf	   *wf = call_wf(c);

	(void) db;
	if (wf)
	{
		if (tuples_ok(res) && PQgetvalue(res, 0, 0)[0] == 't')
			fx_exec_reply(wf->inv, c->seq, outcome(c->output, c->error, c->detail), NULL, NULL);
		else if (tuples_ok(res))
			fx_exec_reply(wf->inv, c->seq, NULL, "the invocation's lease moved to another worker",
						  "FXL01");
		else
			reply_db_error(wf->inv, c->seq, res);
	}
	call_free(c);
}

/* After an inline step's sql committed with its record. */
static void
step_committed_cb(void *arg, fx_txn_outcome outcome_, const char *why)
{
	call	   *c = arg;
	fx_wf	   *wf = call_wf(c);

	if (wf)
	{
		if (outcome_ == FX_TXN_COMMITTED)
			fx_exec_reply(wf->inv, c->seq, outcome(c->output, NULL, NULL), NULL, NULL);
		else
			fx_exec_reply(wf->inv, c->seq, NULL, why ? why : "committing the step failed",
						  outcome_ == FX_TXN_REFUSED ? "FXL01" : "XX000");
	}
	call_free(c);
}

static char *
member_text(const char *body, size_t n, const char *key, const char *dflt)
{
	size_t		len;
	const char *v = fx_json_member(body, n, key, &len);
	char	   *copy;

	if (v == NULL)
		return fx_xstrdup(dflt);
	copy = fx_xmalloc(len + 1);
	memcpy(copy, v, len);
	copy[len] = '\0';
	return copy;
}

static void
step_done(fx_wf *wf, const cJSON *seq, int step, const cJSON *msg, const char *body, size_t n)
{
	fx_inv	   *inv = wf->inv;
	const cJSON *error = cJSON_GetObjectItem(msg, "error");
	const cJSON *detail = cJSON_GetObjectItem(msg, "detail");
	char	   *output = member_text(body, n, "output", "null");
	char	   *name = wf->open_name;

	wf->open = 0;
	wf->open_name = NULL;
	if (error && !cJSON_IsNull(error) && !cJSON_IsString(error))
	{
		fx_exec_reply(inv, seq, NULL, "\"error\" must be a string", "22023");
	}
	else if (!cJSON_IsString(error) && strlen(output) > wf->wfs->max_output)
	{
		char	   *why = fx_xasprintf("step output of %zu bytes exceeds the limit of %zu bytes",
									   strlen(output), wf->wfs->max_output);

		fx_exec_reply(inv, seq, NULL, why, "54000");
		free(why);
	}
	else if (!cJSON_IsString(error) && inv->txn)
	{
		/* its sql commits with its record */
		fx_txn	   *t = inv->txn;

		inv->txn = NULL;
		fx_txn_commit_step(t, wf->wfs->owner, inv->token, inv->id, step, wf->open_ms, name, output,
						   step_committed_cb, echo(call_new(wf, seq, step, "run"), output, NULL, NULL));
	}
	else
	{
		char	   *id = fx_xasprintf("%lld", (long long) inv->id);
		char	   *stepno = fx_xasprintf("%d", step);
		char	   *began = fx_xasprintf("%lld", (long long) wf->open_ms);
		const char *params[10] = {wf->wfs->owner, inv->token, id, stepno, name, "run",
			cJSON_IsString(error) ? NULL : output,
			cJSON_IsString(error) ? error->valuestring : NULL,
		cJSON_IsString(detail) ? detail->valuestring : NULL, began};

		if (inv->txn && cJSON_IsString(error))
		{
			fx_txn_abort(inv->txn);	/* a failed step's sql is undone */
			inv->txn = NULL;
		}
		query(wf->wfs, "fx.step_done($1, $2, $3, $4, $5, $6, $7, $8, $9,"
			  " to_timestamp($10::float8 / 1000))", NULL, 10, params, done_cb,
			  echo(call_new(wf, seq, step, "run"), params[6], params[7], params[8]));
		free(id);
		free(stepno);
		free(began);
	}
	free(output);
	free(name);
}

static void
started_cb(fx_db *db, PGresult *res, void *arg)
{
	call	   *c = arg;
	fx_wf	   *wf = call_wf(c);

	(void) db;
	if (wf == NULL)
	{
		call_free(c);
		return;
	}
	if (!tuples_ok(res))
		reply_db_error(wf->inv, c->seq, res);
	else if (PQgetisnull(res, 0, 0))
		fx_exec_reply(wf->inv, c->seq, NULL, "the invocation's lease moved to another worker",
					  "FXL01");
	else if (strcmp(c->kind, "start") == 0)
		fx_exec_reply(wf->inv, c->seq, outcome(PQgetvalue(res, 0, 0), NULL, NULL), NULL, NULL);
	else
		begin_wait(wf, c->seq, c->step, "call", strtoll(PQgetvalue(res, 0, 0), NULL, 10),
				   NULL, 0);
	call_free(c);
}

static void
slept_cb(fx_db *db, PGresult *res, void *arg)
{
	call	   *c = arg;
	fx_wf	   *wf = call_wf(c);
	int64_t		until;

	(void) db;
	if (wf == NULL)
	{
		call_free(c);
		return;
	}
	if (!tuples_ok(res))
		reply_db_error(wf->inv, c->seq, res);
	else if (PQgetvalue(res, 0, 0)[0] != 't')
		fx_exec_reply(wf->inv, c->seq, NULL, "the invocation's lease moved to another worker",
					  "FXL01");
	else
	{
		until = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		begin_wait(wf, c->seq, c->step, "sleep", 0, NULL, until);
	}
	call_free(c);
}

/* The name a request gives its step (what a replay must match). */
static const char *
step_name(const char *type, const cJSON *msg)
{
	const cJSON *v = NULL;

	if (strcmp(type, "step") == 0)
		v = cJSON_GetObjectItem(msg, "name");
	else if (strcmp(type, "call") == 0 || strcmp(type, "start") == 0)
		v = cJSON_GetObjectItem(msg, "fn");
	else
		return type;
	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static void
dispatch(fx_wf *wf, const char *type, const cJSON *msg, const char *body, size_t n)
{
	fx_workflows *wfs = wf->wfs;
	fx_inv	   *inv = wf->inv;
	const cJSON *seq = cJSON_GetObjectItem(msg, "seq");
	const cJSON *stepv = cJSON_GetObjectItem(msg, "step");
	const char *name = step_name(type, msg);
	const rec  *r;
	int			step;
	char	   *id;
	char	   *stepno;

	if (!cJSON_IsNumber(stepv) || stepv->valuedouble < 1 || stepv->valuedouble > 1e9)
	{
		fx_exec_reply(inv, seq, NULL, "a workflow request needs a \"step\" number of 1 or more",
					  "22023");
		return;
	}
	step = (int) stepv->valuedouble;
	if (strcmp(type, "step.done") == 0)
	{
		if (wf->open == 0 || step != wf->open)
		{
			char	   *why = wf->open ? fx_xasprintf("step.done for step %d, but step %d is the open one", step, wf->open)
				: fx_xasprintf("step.done for step %d, but no step is open", step);

			fx_exec_reply(inv, seq, NULL, why, "22023");
			free(why);
			return;
		}
		step_done(wf, seq, step, msg, body, n);
		return;
	}
	if (wf->open)
	{
		char	   *why = fx_xasprintf("step %d (\"%s\") is still open: send step.done first",
									   wf->open, wf->open_name);

		fx_exec_reply(inv, seq, NULL, why, "22023");
		free(why);
		return;
	}
	if (wf->wait_seq)
	{
		fx_exec_reply(inv, seq, NULL, "a step is already waiting", "22023");
		return;
	}
	if (step != wf->last + 1)
	{
		char	   *why = fx_xasprintf("step %d is out of order: the next step is %d", step,
									   wf->last + 1);

		fx_exec_reply(inv, seq, NULL, why, "22023");
		free(why);
		return;
	}
	if (name == NULL)
	{
		char	   *why = fx_xasprintf("%s needs a%s", type,
									   strcmp(type, "step") == 0 ? " \"name\"" : " \"fn\"");

		fx_exec_reply(inv, seq, NULL, why, "22023");
		free(why);
		return;
	}
	wf->last = step;
	r = recorded(wf, step);
	if (r && (strcmp(r->kind, strcmp(type, "step") == 0 ? "run" : type) != 0 ||
			  strcmp(r->name, name) != 0))
	{
		free(wf->fatal);
		wf->fatal = fx_xasprintf("nondeterministic workflow: step %d is \"%s\" (%s) now but was recorded as \"%s\" (%s)",
								 step, name, strcmp(type, "step") == 0 ? "run" : type,
								 r->name, r->kind);
		fx_log(FX_LOG_WARN, inv->id, "%s", wf->fatal);
		fx_exec_reply(inv, seq, NULL, wf->fatal, "FXW01");
		return;
	}
	if (r && r->done)
	{
		fx_exec_reply(inv, seq, outcome(r->output, r->error, r->detail), NULL, NULL);
		return;
	}
	if (r)
	{
		/* recorded as waiting: wait on (sleep, recv, call, await) */
		const cJSON *topic = cJSON_GetObjectItem(msg, "topic");

		begin_wait(wf, seq, step, r->kind, r->child,
				   cJSON_IsString(topic) ? topic->valuestring : NULL, r->wake_ms);
		return;
	}
	id = fx_xasprintf("%lld", (long long) inv->id);
	stepno = fx_xasprintf("%d", step);
	if (strcmp(type, "step") == 0)
	{
		cJSON	   *v = cJSON_CreateObject();

		cJSON_AddBoolToObject(v, "done", false);
		if (inv->txn)
		{
			/* its sql would commit with the step, ours with the completion */
			fx_exec_reply(inv, seq, NULL,
						  "a step cannot begin while sql run outside steps is uncommitted: in a workflow, run sql inside steps",
						  "25000");
			cJSON_Delete(v);
		}
		else
		{
			wf->open = step;
			wf->open_name = fx_xstrdup(name);
			wf->open_ms = fx_now_ms();
			fx_exec_reply(inv, seq, v, NULL, NULL);
		}
	}
	else if (strcmp(type, "call") == 0 || strcmp(type, "start") == 0)
	{
		char	   *args = member_text(body, n, "args", "{}");
		char	   *pid = pid_text(wfs);
		const char *params[8] = {wfs->owner, inv->token, id, stepno, type, name, args, pid};

		query(wfs, "fx.start_child($1, $2, $3, $4, $5, $6, $7::jsonb, $8)", NULL, 8, params,
			  started_cb, call_new(wf, seq, step, type));
		free(args);
		free(pid);
	}
	else if (strcmp(type, "await") == 0)
	{
		const cJSON *child = cJSON_GetObjectItem(msg, "child");

		if (!cJSON_IsNumber(child))
			fx_exec_reply(inv, seq, NULL, "await needs a \"child\" invocation id", "22023");
		else
			begin_wait(wf, seq, step, "await", (int64_t) child->valuedouble, NULL, 0);
	}
	else if (strcmp(type, "sleep") == 0)
	{
		const cJSON *ms = cJSON_GetObjectItem(msg, "ms");

		if (!cJSON_IsNumber(ms) || ms->valuedouble < 0)
			fx_exec_reply(inv, seq, NULL, "sleep needs \"ms\", a number of 0 or more", "22023");
		else
		{
			char	   *wake = fx_xasprintf("%lld", (long long) (fx_now_ms() + (int64_t) ms->valuedouble));
			const char *params[6] = {wfs->owner, inv->token, id, stepno, "sleep", wake};

			/* the wake-up time is recorded first, so a replay sleeps only what is left */
			query(wfs, "fx.step_wait($1, $2, $3, $4, $5, to_timestamp($6::float8 / 1000)),"
				  " $6::bigint", NULL, 6, params, slept_cb, call_new(wf, seq, step, "sleep"));
			free(wake);
		}
	}
	else if (strcmp(type, "recv") == 0)
	{
		const cJSON *topic = cJSON_GetObjectItem(msg, "topic");
		const cJSON *timeout = cJSON_GetObjectItem(msg, "timeout_ms");

		if (!cJSON_IsString(topic))
			fx_exec_reply(inv, seq, NULL, "recv needs a \"topic\" string", "22023");
		else if (timeout && !cJSON_IsNull(timeout) &&
				 (!cJSON_IsNumber(timeout) || timeout->valuedouble < 0))
			fx_exec_reply(inv, seq, NULL, "\"timeout_ms\" must be a number of 0 or more, or null",
						  "22023");
		else
			begin_wait(wf, seq, step, "recv", 0, topic->valuestring,
					   cJSON_IsNumber(timeout) ? fx_now_ms() + (int64_t) timeout->valuedouble : 0);
	}
	else if (strcmp(type, "send") == 0)
	{
		const cJSON *to = cJSON_GetObjectItem(msg, "to");
		const cJSON *topic = cJSON_GetObjectItem(msg, "topic");

		if (!cJSON_IsNumber(to) || !cJSON_IsString(topic))
			fx_exec_reply(inv, seq, NULL, "send needs \"to\", a workflow id, and a \"topic\" string",
						  "22023");
		else
		{
			char	   *dest = fx_xasprintf("%lld", (long long) to->valuedouble);
			char	   *payload = member_text(body, n, "payload", "null");
			const char *params[7] = {wfs->owner, inv->token, id, stepno, dest,
			topic->valuestring, payload};

			query(wfs, "fx.send_step($1, $2, $3, $4, $5, $6, $7::jsonb)", NULL, 7, params, done_cb,
				  call_new(wf, seq, step, "send"));
			free(dest);
			free(payload);
		}
	}
	else if (strcmp(type, "set_event") == 0)
	{
		const cJSON *key = cJSON_GetObjectItem(msg, "key");

		if (!cJSON_IsString(key))
			fx_exec_reply(inv, seq, NULL, "set_event needs a \"key\" string", "22023");
		else
		{
			char	   *value = member_text(body, n, "value", "null");
			const char *params[6] = {wfs->owner, inv->token, id, stepno, key->valuestring, value};

			query(wfs, "fx.set_event_step($1, $2, $3, $4, $5, $6::jsonb)", NULL, 6, params,
				  done_cb,
				  call_new(wf, seq, step, "set_event"));
			free(value);
		}
	}
	free(id);
	free(stepno);
}

void
fx_wf_handle(fx_workflows *wfs, fx_inv *inv, const char *type, const cJSON *msg,
			 const char *body, size_t n)
{
	fx_wf	   *wf = inv->wf;

	if (wf == NULL)
	{
		wf = inv->wf = fx_xcalloc(1, sizeof(*wf));
		wf->wfs = wfs;
		wf->inv = inv;
		wf->deferred_tail = &wf->deferred;
		wf->loaded = !inv->replay;	/* a first run has nothing recorded */
	}
	if (wf->evicted || wf->evicting)
	{
		fx_exec_reply(inv, cJSON_GetObjectItem(msg, "seq"), NULL,
					  "workflow evicted while waiting", "FXW02");
		return;
	}
	if (!wf->loaded)
	{
		deferred   *d = fx_xcalloc(1, sizeof(*d));

		d->type = fx_xstrdup(type);
		d->msg = cJSON_Duplicate(msg, true);
		d->body = fx_xmalloc(n + 1);
		memcpy(d->body, body, n);
		d->body[n] = '\0';
		d->n = n;
		*wf->deferred_tail = d;
		wf->deferred_tail = &d->next;
		if (!wf->loading)
		{
			char	   *id = fx_xasprintf("%lld", (long long) inv->id);
			const char *params[1] = {id};

			wf->loading = true;
			fx_db_query_prepared(wfs->db,
								 "SELECT step, name, kind, done, output, error, detail, child,"
								 " (extract(epoch FROM wake_at) * 1000)::bigint"
								 " FROM fx.step WHERE invocation_id = $1 ORDER BY step",
								 1, params, loaded_cb, call_new(wf, NULL, 0, "load"));
			free(id);
		}
		return;
	}
	dispatch(wf, type, msg, body, n);
}

const char *
fx_wf_fatal(const fx_inv *inv)
{
	return inv->wf ? inv->wf->fatal : NULL;
}

bool
fx_wf_evicted(const fx_inv *inv)
{
	return inv->wf && (inv->wf->evicted || inv->wf->evicting);
}

static void
timer_closed(uv_handle_t *h)
{
	free(h);
}

void
fx_wf_free(fx_wf *wf)
{
	deferred   *d;

	if (wf == NULL)
		return;
	unlist(wf);
	if (wf->timer)
		uv_close((uv_handle_t *) wf->timer, timer_closed);
	while ((d = wf->deferred) != NULL)
	{
		wf->deferred = d->next;
		free(d->type);
		cJSON_Delete(d->msg);
		free(d->body);
		free(d);
	}
	for (int i = 0; i < wf->nrecs; i++)
	{
		free(wf->recs[i].name);
		free(wf->recs[i].kind);
		free(wf->recs[i].output);
		free(wf->recs[i].error);
		free(wf->recs[i].detail);
	}
	free(wf->recs);
	cJSON_Delete(wf->wait_seq);
	free(wf->wait_topic);
	free(wf->open_name);
	free(wf->fatal);
	free(wf);
}
