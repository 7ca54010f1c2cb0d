/*
 * fx_worker.c: claim invocations, run them, finish them; one libuv loop.
 *
 * The worker holds one database connection (fx_db).  It claims batches of
 * runnable invocations with fx.claim() when woken by NOTIFY fx_wake, when
 * a slot frees after a full batch, when a delayed invocation comes due, and
 * when a tick finds work that no NOTIFY announced, each going on from
 * where the last one ended (a cursor: see rescan_cb).  Finished attempts
 * are sent to fx.finish() in batches: while one batch is in flight the
 * next one collects, so under load a round trip carries many completions.
 * Every finish is fenced by the lease (owner, epoch), so it is safe to
 * send again after a lost connection; a lease taken over meanwhile simply
 * refuses it.
 *
 * Liveness: the worker's session carries application_name = owner, and
 * fx.reap() (run by every worker on its tick) requeues the leases of any
 * session that is gone, so a worker killed with SIGKILL has its attempts
 * run again within about a tick.  After a reconnect the worker re-adopts
 * its leases first (fx.adopt) so that the new session owns them.
 *
 * SIGTERM or SIGINT drains: no more claims, running attempts finish and are
 * recorded, then the worker exits.  A second signal gives the running
 * invocations back (fx.release) and exits at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fx_bundle.h"
#include "fx_db.h"
#include "fx_http.h"
#include "fx_json.h"
#include "fx_log.h"
#include "fx_request.h"
#include "fx_sandbox.h"
#include "fx_secret.h"
#include "fx_worker_int.h"

/*
 * Invocations overdue by this many ms get one in eight places of a claim
 * from the start of the queue, whatever their priority (fx.claim).
 */
#define FX_OVERDUE_MS "2000"

static void claim(fx_worker *w);
static void cycle(fx_worker *w);
static void schedule_due(fx_worker *w);
static void due_in(fx_worker *w, double ms);
static void ignore_cb(fx_db *db, PGresult *res, void *arg);

fx_worker *
fx_worker_of(fx_db *db)
{
	return db->data;
}

static void tick_cb(uv_timer_t *t);

/*
 * An idle worker's tick slows down: after QUIET_TICKS ticks in a row that
 * found nothing to do (nothing active, nothing ready, reaped or fired) it
 * comes every 2 x --poll-ms, and at --poll-ms again as soon as something
 * is claimed or a tick finds something.
 */
#define QUIET_TICKS 3

static void
set_tick(fx_worker *w, uint64_t ms)
{
	if (w->tick_ms == ms)
		return;
	w->tick_ms = ms;
	uv_timer_start(&w->tick, tick_cb, ms, ms);
}

/* Put a claimed inv at the head of the active list. */
static fx_inv *
link_active(fx_worker *w, fx_inv *inv)
{
	inv->ex = &w->ex;
	inv->prev = NULL;
	inv->next = w->active;
	if (w->active)
		w->active->prev = inv;
	w->active = inv;
	inv->active = true;
	w->nactive++;
	return inv;
}

/* Take inv out of the active list, if it is there: no walk, it is long. */
void
fx_worker_unlink(fx_worker *w, fx_inv *inv)
{
	if (!inv->active)
		return;
	if (inv->prev)
		inv->prev->next = inv->next;
	else
		w->active = inv->next;
	if (inv->next)
		inv->next->prev = inv->prev;
	inv->active = false;		/* next stays: a walk of the list may be on it */
	w->nactive--;
}

/* ---------------------------------------------------------------------
 * Finishing
 * --------------------------------------------------------------------- */

static cJSON *
finish_item(fx_inv *inv)
{
	cJSON	   *it = cJSON_CreateObject();

	cJSON_AddItemToObject(it, "id", fx_json_int(inv->id));
	cJSON_AddNumberToObject(it, "epoch", inv->epoch);
	if (inv->token)
		cJSON_AddStringToObject(it, "token", inv->token);
	if (inv->key)
	{
		/* fx.cycle looks up the next invocation of the key from these */
		cJSON_AddStringToObject(it, "fn", inv->fn);
		cJSON_AddStringToObject(it, "key", inv->key);
	}
	cJSON_AddBoolToObject(it, "ok", inv->ok);
	if (inv->ok)
		cJSON_AddItemReferenceToObject(it, "result", inv->result);
	else
	{
		cJSON_AddStringToObject(it, "error", inv->error ? inv->error : "failed");
		if (inv->detail)
			cJSON_AddStringToObject(it, "detail", inv->detail);
		cJSON_AddBoolToObject(it, "retryable", inv->retryable);
		if (inv->lost)
			cJSON_AddBoolToObject(it, "lost", true);
	}
	cJSON_AddItemToObject(it, "wall_ms", fx_json_ms(inv->wall_ms));
	cJSON_AddItemToObject(it, "cpu_ms", fx_json_ms(inv->cpu_ms));
	cJSON_AddItemToObject(it, "max_rss_kb", fx_json_int(inv->max_rss_kb));
	if (inv->started_ns)
		cJSON_AddStringToObject(it, "start", inv->start == FX_START_WARM ? "warm" :
								inv->start == FX_START_PREWARMED ? "prewarmed" : "cold");
	if (inv->logs && cJSON_GetArraySize(inv->logs) > inv->logs_stored)
	{
		/*
		 * The lines not known to be stored while it ran (send_logs): a live
		 * batch still in flight stores nothing once this finish has
		 * committed, and fx.finish skips the lines one already stored.
		 */
		cJSON	   *rest = cJSON_CreateArray();

		for (cJSON *e = cJSON_GetArrayItem(inv->logs, inv->logs_stored); e; e = e->next)
			cJSON_AddItemReferenceToArray(rest, e);
		cJSON_AddItemToObject(it, "logs", rest);
		cJSON_AddNumberToObject(it, "log_seq", inv->logs_stored);
	}
	if (inv->ok && inv->state_op == FX_STATE_SET)
	{
		cJSON_AddStringToObject(it, "state_op", "set");
		cJSON_AddItemReferenceToObject(it, "state", inv->state);
	}
	else if (inv->ok && inv->state_op == FX_STATE_DELETE)
		cJSON_AddStringToObject(it, "state_op", "delete");
	return it;
}

/* The finish items of a list, as fx.finish and fx.cycle take them. */
static char *
finish_json(fx_inv *list)
{
	cJSON	   *items = cJSON_CreateArray();
	char	   *json;

	for (fx_inv *i = list; i; i = i->next)
		cJSON_AddItemToArray(items, finish_item(i));
	json = cJSON_PrintUnformatted(items);
	cJSON_Delete(items);
	return json;
}

static void
free_list(fx_inv *l)
{
	while (l)
	{
		fx_inv	   *next = l->next;

		fx_inv_free(l);
		l = next;
	}
}

/*
 * Finished attempts the database has recorded (or refused).  A failed one
 * is queued again behind the cursor: at once if it failed only with its
 * sql session, else after its backoff (fx.finish: --backoff-ms doubled
 * per attempt, less if attempts were lost), when the due timer comes back
 * for it.  Asking the database when (schedule_due) after every batch with
 * a failure took half of a retry storm's claim connection.
 */
static void
recorded(fx_worker *w, fx_inv *sent)
{
	bool		retried = false;
	uint64_t	soonest = UINT64_MAX;

	for (fx_inv *i = sent; i; i = i->next)
		if (!i->ok && (i->retryable || i->lost))
		{
			int			doublings = i->attempt > 1 ? i->attempt - 1 : 0;
			uint64_t	ms = i->lost ? 0 : doublings < 32 ?
				(uint64_t) w->cfg.backoff_ms << doublings : UINT64_MAX;

			retried = true;
			if (ms < soonest)
				soonest = ms;
		}
	if (retried)
	{
		w->rescan_wanted = true;
		due_in(w, (double) soonest);	/* a long one: a later tick tells */
	}
	free_list(sent);
}

/* A send failed with its connection: its items go with the next one. */
static void
unsent(fx_worker *w, fx_inv *sent)
{
	fx_inv	  **tail = &sent;

	while (*tail)
		tail = &(*tail)->next;
	*tail = w->done;
	w->done = sent;
}

static void
finished_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_worker  *w = fx_worker_of(db);
	fx_inv	   *sent = w->finishing;

	(void) arg;
	w->finishing = NULL;
	if (res == NULL)
		unsent(w, sent);		/* on db's next cycle, or here once back */
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fx_err("recording finished invocations failed, leaving them to lease recovery: %s",
			   fx_db_error(res));
		free_list(sent);
	}
	else
		recorded(w, sent);
	cycle(w);
	fx_worker_maybe_stop(w);
}

/*
 * Record what has finished on fdb, a connection of its own: its commit
 * waits for the disk, and meanwhile db's claims, which do not, go on, so
 * the worker's two round trips overlap instead of taking turns (the
 * database commits both connections' waits together when they meet).  A
 * keyed invocation's finish goes with db's claim instead, which takes the
 * next of its key in the same transaction (fx.cycle), and so does every
 * finish while fdb is not connected.
 */
static void
send_finish(fx_worker *w)
{
	char	   *json;
	char		backoff[16];
	const char *params[3];

	if (w->finishing || w->done == NULL || w->fdb.state != FX_DB_READY)
		return;
	for (fx_inv *i = w->done; i; i = i->next)
		if (i->key)
			return;
	json = finish_json(w->done);
	snprintf(backoff, sizeof(backoff), "%d", w->cfg.backoff_ms);
	params[0] = w->owner;
	params[1] = json;
	params[2] = backoff;
	w->finishing = w->done;
	w->done = NULL;
	fx_db_query_prepared(&w->fdb, "SELECT count(*) FROM fx.finish($1, $2::jsonb, $3::int)",
						 3, params, finished_cb, NULL);
	cJSON_free(json);
}

static void
fdb_ready(fx_db *db)
{
	cycle(fx_worker_of(db));
}

/*
 * Claims start after a cursor, the last row this worker claimed, since a
 * long-held snapshot keeps the index entries of every claimed row and a
 * scan from the start of the queue steps over all of them (fx.claim also
 * looks behind the cursor for new ones of higher priority and for the
 * next invocation of each key that finished).  What else may rank before
 * the cursor (new work committed late, a retry or a delayed invocation
 * come due, a woken or evicted workflow, rows fx.reap requeued) wants a
 * claim from the start: on a wake-up, when something comes due, after a
 * failed attempt, an eviction or a reap that requeued, and on the tick
 * (no sooner than the next claim).  Such a claim costs one scan of those
 * dead entries, so the next one waits ten times what it took beyond a
 * usual claim (at most a tenth of the connection's time), though never
 * longer than the fallback claim period.  Without a held snapshot that is
 * no wait at all.
 */
static void
rescan_cb(uv_timer_t *t)
{
	fx_worker  *w = t->data;

	if (w->rescan_wanted)
		claim(w);
}

/* A claim from the start is wanted: set the timer for when it may be. */
static void
arm_rescan(fx_worker *w)
{
	uint64_t	now = fx_mono_ns();

	if (uv_is_active((uv_handle_t *) &w->rescan))
		return;
	uv_timer_start(&w->rescan, rescan_cb,
				   w->rescan_after > now ? (w->rescan_after - now) / 1000000 + 1 : 0, 0);
}

/* A claim from the start took `took` ns (0: not timed): when may the next? */
static void
rescanned(fx_worker *w, uint64_t took)
{
	uint64_t	cap = (uint64_t) w->cfg.poll_ms * w->cfg.claim_every * 1000000;
	uint64_t	extra = took > w->claim_ns ? took - w->claim_ns : 0;

	if (took > 0)
		w->rescan_gap = extra < 1000000 ? 0 : extra < cap / 10 ? 10 * extra : cap;
	w->rescan_after = fx_mono_ns() + w->rescan_gap;
}

/*
 * Move the cursor to the last row a claim took (rows come in claim order),
 * never back: rows before it came from fx.claim's look behind the cursor,
 * and a claim that came back short has taken everything after it.  A full
 * claim from the start is the exception: its batch ended there, and the
 * next claim goes on from that row.
 */
static void
advance_cursor(fx_worker *w, PGresult *res, int n, bool restart)
{
	int			prio = atoi(PQgetvalue(res, n - 1, 15));
	int64_t		id = strtoll(PQgetvalue(res, n - 1, 0), NULL, 10);

	if (restart || !w->cursor || prio < w->cursor_priority ||
		(prio == w->cursor_priority && id > w->cursor_id))
	{
		w->cursor = true;
		w->cursor_priority = prio;
		w->cursor_id = id;
	}
}

/*
 * The fx.cycle in flight came back: the finished attempts it carried are
 * recorded (or refused: their lease moved on), and the invocations it
 * claimed start.
 */
static void
cycled_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_worker  *w = fx_worker_of(db);
	fx_inv	   *sent = w->sending;
	int			asked = (int) ((intptr_t) arg >> 1);
	bool		from_start = ((intptr_t) arg & 1) != 0;
	uint64_t	took = w->cycle_timed ? fx_mono_ns() - w->cycle_sent : 0;
	int			n;

	w->sending = NULL;
	w->cycling = false;
	if (res == NULL)
	{
		/* Lost connection: send them again after reconnecting. */
		unsent(w, sent);
		cycle(w);				/* fdb may take them meanwhile */
		fx_worker_maybe_stop(w);
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		fx_err("recording finished invocations and claiming failed, leaving them to lease recovery: %s",
			   fx_db_error(res));
		free_list(sent);
		fx_worker_maybe_stop(w);
		return;
	}
	recorded(w, sent);
	n = PQntuples(res);
	if (from_start)
		rescanned(w, took);
	else if (asked > 0 && took > 0)
		w->claim_ns = w->claim_ns ? (7 * w->claim_ns + took) / 8 : took;
	if (n > 0)
	{
		advance_cursor(w, res, n, from_start && n == asked);
		w->quiet_ticks = 0;		/* busy: tick at --poll-ms */
		set_tick(w, (uint64_t) w->cfg.poll_ms);
	}
	for (int i = 0; i < n; i++)
		fx_start_claimed(w, link_active(w, fx_inv_from_row(res, i)));
	if (asked > 0 && n < asked)
	{
		w->want_claim = false;
		/* Delayed ones may be waiting; ask when, but not on a busy path. */
		if (n == 0 && w->nactive == 0)
			schedule_due(w);
		else
			w->due_unknown = true;
	}
	if (w->rescan_wanted)
		arm_rescan(w);			/* wanted while this one was in flight */
	cycle(w);
	fx_worker_maybe_stop(w);
}

/*
 * Send one fx.cycle: a claim for as many as there is room for (running
 * slots plus a prefetch of ready ones), with the finishes send_finish left
 * (keyed ones, or all while fdb is away), in one round trip and one
 * commit.  Only one is in flight at a time; what finishes meanwhile goes
 * with the next, so a busy worker batches.  A cycle that only claims
 * commits without waiting for the disk (see fx.cycle).
 */
static void
cycle(fx_worker *w)
{
	char	   *json;
	char		backoff[16];
	char		nbuf[16];
	const char *params[8];
	char		slack[16];
	char		cprio[16];
	char		cid[24];
	int			n = 0;
	bool		from_start = false;
	fx_inv	   *carry = NULL;	/* the finishes this cycle records */

	send_finish(w);
	if (w->cycling || w->db.state != FX_DB_READY)
		return;					/* queries made in on_ready go after its own */
	if (w->want_claim && !w->draining)
	{
		n = w->cfg.concurrency + w->cfg.prefetch - w->nactive;
		if (n > w->cfg.batch)
			n = w->cfg.batch;
		if (n < 0)
			n = 0;
		/*
		 * A claim costs about as much for one row as for a hundred, so
		 * while every slot is busy and another round of work waits, claim
		 * only once half the room is free (or a whole --batch's worth of
		 * it, if that is less).  Workers that share a queue would else
		 * claim a few rows at a time, each as often as its neighbours.
		 */
		if (n < (w->cfg.concurrency + w->cfg.prefetch) / 2 && n < w->cfg.batch &&
			w->nrunning >= w->cfg.concurrency &&
			w->nactive - w->nrunning >= w->cfg.concurrency)
			n = 0;
	}
	/* what send_finish left: keyed ones, or all while fdb is away */
	for (fx_inv *i = w->done; i; i = i->next)
		if (i->key || w->fdb.state != FX_DB_READY)
		{
			carry = w->done;
			break;
		}
	if (n == 0 && carry == NULL)
		return;
	for (fx_inv *i = carry; i && !w->draining; i = i->next)
		if (i->key)
		{
			/*
			 * Its finish unblocks the next invocation of its key: claim in
			 * the same transaction, which sees it (fx.cycle names it to
			 * fx.claim, wherever it ranks).
			 */
			if (n == 0)
			{
				n = w->cfg.concurrency + w->cfg.prefetch - w->nactive;
				if (n > w->cfg.batch)
					n = w->cfg.batch;
				if (n < 0)
					n = 0;
			}
			break;
		}
	json = finish_json(carry);
	snprintf(backoff, sizeof(backoff), "%d", w->cfg.backoff_ms);
	snprintf(nbuf, sizeof(nbuf), "%d", n);
	params[0] = w->owner;
	params[1] = json;
	params[2] = nbuf;
	params[3] = backoff;
	snprintf(slack, sizeof(slack), "%d", w->cfg.lease_slack_ms);
	params[4] = slack;
	if (n > 0)
	{
		from_start = !w->cursor ||
			(w->rescan_wanted && fx_mono_ns() >= w->rescan_after);
		if (from_start)
		{
			w->rescan_wanted = false;
			uv_timer_stop(&w->rescan);
			uv_timer_stop(&w->due);	/* it looks at everything due */
		}
		else if (w->rescan_wanted)
			arm_rescan(w);
	}
	snprintf(cprio, sizeof(cprio), "%d", w->cursor_priority);
	snprintf(cid, sizeof(cid), "%lld", (long long) w->cursor_id);
	params[5] = from_start ? NULL : cprio;
	params[6] = from_start ? NULL : cid;
	params[7] = FX_OVERDUE_MS;	/* no starvation (fx.claim) */
	w->sending = carry;
	if (carry)
		w->done = NULL;
	w->cycling = true;
	w->cycle_timed = fx_db_idle(&w->db);	/* else it waits behind others */
	w->cycle_sent = fx_mono_ns();
	fx_db_query_prepared(&w->db,
					   "SELECT id, epoch, fn, version, args, key, attempt, idempotency_key,"
					   " hash, array_to_json(command), mode, memory_mb, timeout_ms, options,"
					   " token, priority, replay, (extract(epoch FROM deadline) * 1000)::bigint"
					   " FROM (SELECT set_config('synchronous_commit',"
					   "   CASE WHEN $2::jsonb = '[]' THEN 'off'"
					   "   ELSE current_setting('synchronous_commit') END, true)) s,"
					   " fx.cycle($1, $2::jsonb, $3::int, $4::int, $5::int, $6::int, $7::bigint,"
					   "   $8::int)",
					   8, params, cycled_cb, (void *) (intptr_t) (2 * n + from_start));
	cJSON_free(json);
}

/* The attempt's own transaction committed, or not. */
static void
committed_cb(void *arg, fx_txn_outcome outcome, const char *why)
{
	fx_inv	   *inv = arg;
	fx_worker  *w = inv->ex->data;

	w->committing--;
	if (outcome == FX_TXN_COMMITTED)
		fx_log(FX_LOG_DEBUG, inv->id, "committed with its sql");
	else if (outcome == FX_TXN_REFUSED)
		fx_log(FX_LOG_INFO, inv->id, "not recorded, its writes rolled back: %s", why);
	if ((outcome != FX_TXN_FAILED && outcome != FX_TXN_LOST) || w->db_closed ||
		w->db.state == FX_DB_CLOSED)
	{
		fx_inv_free(inv);
		fx_worker_maybe_stop(w);
		return;
	}
	/*
	 * Record the failure the usual way (refused too if the lease moved); a
	 * lost connection is the worker's failure, not the function's.
	 */
	fx_log(FX_LOG_WARN, inv->id, "its transaction failed: %s", why);
	cJSON_Delete(inv->result);
	inv->result = NULL;
	fx_inv_fail(inv, true, "the invocation's transaction failed", why);
	inv->lost = outcome == FX_TXN_LOST;
	inv->next = w->done;
	w->done = inv;
	cycle(w);
	fx_worker_maybe_stop(w);
}

static void
commit_own(fx_worker *w, fx_inv *inv)
{
	cJSON	   *item = finish_item(inv);
	char	   *json = cJSON_PrintUnformatted(item);
	fx_txn	   *t = inv->txn;

	cJSON_Delete(item);
	inv->txn = NULL;
	w->committing++;
	fx_txn_commit(t, w->owner, inv->token, json, w->cfg.backoff_ms, committed_cb, inv);
	cJSON_free(json);
}

/* Start claimed attempts waiting for a slot while there are free slots. */
static void
start_ready(fx_worker *w)
{
	while (w->ready && w->nrunning < w->cfg.concurrency)
	{
		fx_inv	   *next = w->ready;

		w->ready = next->next_waiting;
		if (w->ready == NULL)
			w->ready_tail = &w->ready;
		next->next_waiting = NULL;
		if (fx_secrets_stale(next->secrets))
		{
			fx_start_run(w, next);		/* its secrets changed while it waited */
			continue;
		}
		w->nrunning++;
		fx_exec_start(&w->ex, next);
	}
}

/* An attempt is over (exec's on_done): queue its finish, free its slot. */
void
fx_worker_attempt_done(fx_inv *inv)
{
	fx_worker  *w = inv->ex->data;

	fx_worker_unlink(w, inv);
	if (inv->started_ns)
		w->nrunning--;
	if (fx_wf_evicted(inv))
	{
		/* queued again by fx.evict: its answer is not an outcome */
		if (inv->txn)
			fx_txn_abort(inv->txn);
		inv->txn = NULL;
		fx_inv_free(inv);
		start_ready(w);
		cycle(w);
		fx_worker_maybe_stop(w);
		return;
	}
	if (fx_wf_fatal(inv))
	{
		/* a replay that does not match its record: not retried */
		inv->ok = false;
		inv->retryable = false;
		free(inv->error);
		inv->error = fx_xstrdup(fx_wf_fatal(inv));
		free(inv->detail);
		inv->detail = NULL;
	}
	if (w->http)
		fx_http_observe(w->http, inv);	/* metrics */
	if (inv->ok)
		fx_log(FX_LOG_DEBUG, inv->id, "succeeded in %.1f ms", inv->wall_ms);
	else
		fx_log(FX_LOG_INFO, inv->id, "attempt %d failed: %s", inv->attempt,
			   inv->error ? inv->error : "?");
	if (inv->txn && !inv->ok)
	{
		/* its sql's session died under it: queued again, not counted */
		inv->lost = fx_txn_lost(inv->txn);
		fx_txn_abort(inv->txn);
		inv->txn = NULL;
	}
	if (w->stopping)
	{
		if (inv->txn)
			fx_txn_abort(inv->txn);
		fx_inv_free(inv);		/* given back with fx.release */
		fx_worker_maybe_stop(w);
		return;
	}
	if (inv->txn)
		commit_own(w, inv);		/* its sql ran: finish in that transaction */
	else
	{
		inv->next = w->done;
		w->done = inv;
	}
	start_ready(w);
	cycle(w);
	/* Behind the finish on the connection, not ahead of it. */
	if (w->due_unknown && w->nactive == 0)
	{
		w->due_unknown = false;
		schedule_due(w);
	}
	fx_worker_maybe_stop(w);
}

/* ---------------------------------------------------------------------
 * Live logs: what running attempts write reaches fx.log every half second,
 * so that fx logs -f can follow them; their completion sends the rest.
 * --------------------------------------------------------------------- */

typedef struct log_batch
{
	fx_worker  *w;
	int64_t		id;
	int			epoch;
	int			from;			/* logs_sent before this batch */
	int			to;				/* and after it */
} log_batch;

static void
logs_sent_cb(fx_db *db, PGresult *res, void *arg)
{
	log_batch  *b = arg;

	(void) db;
	for (fx_inv *i = b->w->active; i; i = i->next)
	{
		if (i->id != b->id || i->epoch != b->epoch)
			continue;
		if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			/* not stored: sent again, or with the completion */
			if (i->logs_sent > b->from)
				i->logs_sent = b->from;
		}
		else if (atoi(PQgetvalue(res, 0, 0)) == b->to - b->from && i->logs_stored == b->from)
			i->logs_stored = b->to;
	}
	free(b);
}

static void
send_logs(fx_worker *w, fx_inv *inv)
{
	int			n = cJSON_GetArraySize(inv->logs);
	cJSON	   *lines = cJSON_CreateArray();
	char	   *json;
	char		id[24];
	char		attempt[16];
	char		from[16];
	const char *params[6];
	log_batch  *b = fx_xcalloc(1, sizeof(*b));

	for (cJSON *e = cJSON_GetArrayItem(inv->logs, inv->logs_sent); e; e = e->next)
		cJSON_AddItemReferenceToArray(lines, e);
	json = cJSON_PrintUnformatted(lines);
	cJSON_Delete(lines);
	snprintf(id, sizeof(id), "%lld", (long long) inv->id);
	snprintf(attempt, sizeof(attempt), "%d", inv->attempt);
	snprintf(from, sizeof(from), "%d", inv->logs_sent);
	params[0] = w->owner;
	params[1] = inv->token;
	params[2] = id;
	params[3] = attempt;
	params[4] = from;
	params[5] = json;
	b->w = w;
	b->id = inv->id;
	b->epoch = inv->epoch;
	b->from = inv->logs_sent;
	b->to = n;
	inv->logs_sent = n;
	fx_db_query_prepared(&w->sdb,
						 "SELECT fx.log_append($1, $2, $3, $4, $5, $6::jsonb)"
						 " FROM (SELECT set_config('synchronous_commit', 'off', true)) s",
						 6, params, logs_sent_cb, b);
	cJSON_free(json);
}

static void
logs_cb(uv_timer_t *t)
{
	fx_worker  *w = t->data;

	if (w->sdb.state != FX_DB_READY)
		return;
	for (fx_inv *i = w->active; i; i = i->next)
		if (i->started_ns && !i->finished && i->logs &&
			cJSON_GetArraySize(i->logs) > i->logs_sent)
			send_logs(w, i);
}

/* ---------------------------------------------------------------------
 * Requests from running functions (fx_request.c)
 * --------------------------------------------------------------------- */

static fx_inv *
find_running(void *arg, int64_t id, int epoch)
{
	fx_worker  *w = arg;

	for (fx_inv *i = w->active; i; i = i->next)
		if (i->id == id && (i->epoch == epoch || epoch < 0) && i->started_ns)
			return i;
	return NULL;
}

static void
on_request(fx_inv *inv, const char *type, const cJSON *msg, const char *body, size_t n)
{
	fx_worker  *w = inv->ex->data;

	if (fx_wf_is_request(type))
		fx_wf_handle(&w->workflows, inv, type, msg, body, n);
	else
		fx_request_handle(&w->requests, inv, type, msg, body, n);
}

/* A workflow gave its sandbox up; it is queued again, due at wake_ms. */
static void
wf_evicted(void *arg, fx_inv *inv, int64_t wake_ms)
{
	fx_worker  *w = arg;

	(void) inv;
	/* queued again behind the cursor, and ready at once if its wait ended */
	w->rescan_wanted = true;
	claim(w);
	if (wake_ms > 0)
		schedule_due(w);		/* this worker comes back for it on time */
}

/* The state connection also hears of messages and children for workflows. */
static void
sdb_ready(fx_db *db)
{
	fx_worker  *w = db->data;
	char	   *sql = fx_wf_listen_sql(&w->workflows);

	fx_db_query_simple(db, sql, ignore_cb, "LISTEN");
	free(sql);
}

static void
sdb_notify(fx_db *db, const char *channel, const char *payload)
{
	fx_worker  *w = db->data;

	fx_wf_notify(&w->workflows, channel, payload);
}

static void
due_cb(uv_timer_t *t)
{
	fx_worker  *w = t->data;

	w->rescan_wanted = true;	/* it may rank before the cursor */
	claim(w);
}

/* Something behind the cursor comes due in ms: claim from the start then. */
static void
due_in(fx_worker *w, double ms)
{
	if (ms < 5)
		ms = 5;
	if (ms > w->cfg.poll_ms * w->cfg.claim_every)
		return;					/* a later tick tells again */
	if (uv_is_active((uv_handle_t *) &w->due) &&
		uv_timer_get_due_in(&w->due) <= (uint64_t) ms)
		return;					/* set for one as soon */
	uv_timer_start(&w->due, due_cb, (uint64_t) ms, 0);
}

/* The earliest delayed invocation comes due in column col of res (ms). */
static void
arm_due(fx_worker *w, PGresult *res, int col)
{
	if (!PQgetisnull(res, 0, col))
		due_in(w, atof(PQgetvalue(res, 0, col)));
}

static void
next_due_cb(fx_db *db, PGresult *res, void *arg)
{
	(void) arg;
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
		arm_due(fx_worker_of(db), res, 0);
}

/*
 * Set the due timer for the earliest delayed invocation still to come.
 * (Not fx.next_due(), which also counts those due already: under a
 * long-held snapshot it steps over the index entries of every row ever
 * queued to find them.  One due already waits for another worker or
 * behind the cursor, where the claim from the start that its due time or
 * the tick asked for finds it.)
 */
#define NEXT_DUE_SQL \
	"SELECT extract(epoch FROM min(q.not_before) - now()) * 1000" \
	" FROM fx.invocation q" \
	" WHERE q.status = 'queued' AND NOT q.blocked AND q.not_before > now()"

static void
schedule_due(fx_worker *w)
{
	fx_db_query_prepared(&w->db, NEXT_DUE_SQL, 0, NULL, next_due_cb, NULL);
}

static void
claim(fx_worker *w)
{
	w->want_claim = true;
	cycle(w);
}

/* ---------------------------------------------------------------------
 * Database events
 * --------------------------------------------------------------------- */

static void
ignore_cb(fx_db *db, PGresult *res, void *arg)
{
	(void) db;
	if (res && PQresultStatus(res) != PGRES_COMMAND_OK &&
		PQresultStatus(res) != PGRES_TUPLES_OK)
		fx_err("%s failed: %s", (const char *) arg, fx_db_error(res));
}

static void
limits_cb(fx_db *db, PGresult *res, void *arg)
{
	(void) arg;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		fx_worker_of(db)->requests.max_state_size = atoi(PQgetvalue(res, 0, 0));
}

static void
on_ready(fx_db *db)
{
	fx_worker  *w = fx_worker_of(db);
	const char *params[1] = {w->owner};

	fx_db_query_params(db, "LISTEN fx_wake", 0, NULL, ignore_cb, "LISTEN");
	fx_db_query_params(db, "LISTEN fx_cancel", 0, NULL, ignore_cb, "LISTEN");
	fx_db_query_params(db, "LISTEN fx_secret", 0, NULL, ignore_cb, "LISTEN");
	fx_secret_cache_reconnected(&w->secrets);	/* changes may have been missed */
	fx_db_query_params(db, "SELECT fx.max_state_size()", 0, NULL, limits_cb, NULL);
	if (w->nactive > 0 || w->done)
		fx_db_query_params(db, "SELECT fx.adopt($1)", 1, params, ignore_cb, "adopting leases");
	fx_start_refetch(w);
	w->rescan_wanted = true;	/* what happened while it was away */
	w->want_claim = true;
	cycle(w);
}

static void
on_notify(fx_db *db, const char *channel, const char *payload)
{
	fx_worker  *w = fx_worker_of(db);

	if (strcmp(channel, "fx_wake") == 0)
	{
		/* new work: mostly after the cursor, but some may rank before it */
		w->rescan_wanted = true;
		claim(w);
	}
	else if (strcmp(channel, "fx_cancel") == 0)
	{
		int64_t		id = strtoll(payload, NULL, 10);

		for (fx_inv *i = w->active; i; i = i->next)
			if (i->id == id && i->started_ns)
			{
				fx_log(FX_LOG_INFO, id, "cancelled, killing it");
				fx_exec_kill(&w->ex, i, "cancelled");
			}
	}
	else if (strcmp(channel, "fx_secret") == 0)
	{
		/* payload: the function whose secrets changed */
		fx_secret_cache_forget(&w->secrets, payload);
		fx_exec_retire(&w->ex, payload);
	}
}

static void
on_lost(fx_db *db)
{
	fx_worker  *w = fx_worker_of(db);

	w->cycling = false;
	w->reaping = false;
}

static void
reaped_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_worker  *w = fx_worker_of(db);

	(void) arg;
	w->reaping = false;
	if (res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fx_err("reaping lost leases failed: %s", fx_db_error(res));
	else if (atoi(PQgetvalue(res, 0, 0)) > 0)
	{
		fx_info("requeued %s invocation(s) whose worker was lost", PQgetvalue(res, 0, 0));
		w->rescan_wanted = true;	/* they rank before the cursor */
		claim(w);
	}
}

/*
 * The tick's one statement reaps and fires the schedules due (fx.reap(),
 * fx.fire_schedules()), and that of a worker with a free slot and no
 * claim under way also asks whether anything is ready that no NOTIFY
 * announced and when the next delayed invocation comes due: one
 * transaction a tick is all an idle worker costs the database.
 */
static void
reaped_fired_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_worker  *w = fx_worker_of(db);
	bool		ok = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (ok && atoi(PQgetvalue(res, 0, 1)) > 0)
		fx_debug("enqueued %s scheduled invocation(s)", PQgetvalue(res, 0, 1));
	if (ok && PQnfields(res) == 4)
	{
		if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
		{
			fx_debug("found ready invocations no NOTIFY announced");
			claim(w);			/* from the start: the tick wanted it */
		}
		arm_due(w, res, 3);
	}
	if (ok && PQnfields(res) == 4 && w->nactive == 0 && w->done == NULL &&
		strcmp(PQgetvalue(res, 0, 0), "0") == 0 && strcmp(PQgetvalue(res, 0, 1), "0") == 0 &&
		strcmp(PQgetvalue(res, 0, 2), "f") == 0)
		w->quiet_ticks++;
	else
		w->quiet_ticks = 0;
	set_tick(w, (uint64_t) w->cfg.poll_ms * (w->quiet_ticks >= QUIET_TICKS ? 2 : 1));
	reaped_cb(db, res, arg);
}

static void
tick_cb(uv_timer_t *t)
{
	fx_worker  *w = t->data;

	if (w->db.state != FX_DB_READY || w->draining)
		return;
	if (!w->db.ready_done)
		return;
	w->rescan_wanted = true;	/* what may have come behind the cursor */
	if (!w->reaping)
	{
		/* schedules' ticks up to two ticks ahead, so that they start on time */
		char		horizon[32];
		const char *params[1] = {horizon};
		bool		look = w->nrunning < w->cfg.concurrency && !w->cycling && !w->want_claim;

		snprintf(horizon, sizeof(horizon), "%llu milliseconds",
				 2 * (unsigned long long) w->tick_ms);
		w->reaping = true;
		/*
		 * A worker that is claiming goes on from the start now and then
		 * (the rescan above), and one whose slots are all busy has no room
		 * to claim into; any other looks for work no NOTIFY announced.
		 */
		fx_db_query_params(&w->db, look ?
						   "SELECT fx.reap(), fx.fire_schedules($1),"
						   " EXISTS (SELECT FROM fx.invocation q WHERE q.status = 'queued'"
						   "   AND NOT q.blocked AND q.not_before <= now()),"
						   " (" NEXT_DUE_SQL ")"
						   : "SELECT fx.reap(), fx.fire_schedules($1)",
						   1, params, reaped_fired_cb, NULL);
	}
}

/* ---------------------------------------------------------------------
 * Stopping
 * --------------------------------------------------------------------- */

static void
walk_close(uv_handle_t *h, void *arg)
{
	(void) arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
db_closed(fx_db *db)
{
	fx_worker_of(db)->db_closed = true;
}

/* When drained (or stopping), close everything so that uv_run returns. */
void
fx_worker_maybe_stop(fx_worker *w)
{
	if (!w->draining || w->db_closed || w->db.state == FX_DB_CLOSED)
		return;
	if (!w->stopping && (w->nactive > 0 || w->cycling || w->finishing || w->committing > 0 ||
						 (w->done && w->db.state == FX_DB_READY)))
		return;
	if (w->stopping && w->nactive > 0)
		return;
	if (w->done)
		fx_warn("stopping with %s unrecorded finished invocation(s); lease recovery will run them again",
				"some");
	free_list(w->done);
	w->done = NULL;
	fx_info("worker %s stopped", w->owner);
	if (w->http)
		fx_http_stop(w->http);
	w->http = NULL;
	fx_exec_shutdown(&w->ex);
	fx_txn_pool_shutdown(&w->txns);
	fx_db_close(&w->sdb);
	fx_db_close(&w->fdb);
	if (w->cfg.exec.sandbox)
		fx_sandbox_shutdown();
	fx_db_close(&w->db);
	uv_close((uv_handle_t *) &w->tick, NULL);
	uv_close((uv_handle_t *) &w->due, NULL);
	uv_close((uv_handle_t *) &w->rescan, NULL);
	uv_close((uv_handle_t *) &w->logs, NULL);
	uv_close((uv_handle_t *) &w->sigterm, NULL);
	uv_close((uv_handle_t *) &w->sigint, NULL);
}

static void
released_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_worker  *w = fx_worker_of(db);

	(void) arg;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
		fx_info("gave back %s running invocation(s)", PQgetvalue(res, 0, 0));
	while (w->ready)
	{
		fx_inv	   *i = w->ready;

		w->ready = i->next_waiting;
		fx_worker_unlink(w, i);
		fx_inv_free(i);
	}
	w->ready_tail = &w->ready;
	fx_start_drop_waiting(w);
	for (fx_inv *i = w->active; i; i = i->next)
		if (i->bundle_dir)
			fx_exec_kill(&w->ex, i, "worker stopping");
	fx_worker_maybe_stop(w);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	fx_worker  *w = h->data;

	if (!w->draining)
	{
		fx_info("received %s: finishing %d running invocation(s), then stopping",
				strsignal(signum), w->nactive);
		w->draining = true;
		if (w->http)
			fx_http_drain(w->http);	/* no new connections */
		uv_timer_stop(&w->due);
		uv_timer_stop(&w->rescan);
		fx_worker_maybe_stop(w);
		return;
	}
	if (!w->stopping)
	{
		char	   *ids = fx_xstrdup("{");
		char	   *epochs = fx_xstrdup("{");
		const char *params[3];

		fx_info("received %s again: giving back running invocations", strsignal(signum));
		w->stopping = true;
		for (fx_inv *i = w->active; i; i = i->next)
		{
			char	   *a = fx_xasprintf("%s%s%lld", ids, ids[1] ? "," : "", (long long) i->id);
			char	   *b = fx_xasprintf("%s%s%d", epochs, epochs[1] ? "," : "", i->epoch);

			free(ids);
			free(epochs);
			ids = a;
			epochs = b;
		}
		params[0] = w->owner;
		params[1] = ids = fx_xasprintf("%s}", ids);
		params[2] = epochs = fx_xasprintf("%s}", epochs);
		fx_db_query_params(&w->db, "SELECT fx.release($1, $2::bigint[], $3::int[])", 3, params,
						   released_cb, NULL);
		free((char *) params[1]);
		free((char *) params[2]);
	}
}

/* ---------------------------------------------------------------------
 * Entry
 * --------------------------------------------------------------------- */

static void
make_owner(char *buf, size_t len)
{
	char		host[64] = "host";
	unsigned	r;

	gethostname(host, sizeof(host) - 1);
	host[16] = '\0';
	r = (unsigned) (fx_mono_ns() ^ (uint64_t) getpid() << 16);
	snprintf(buf, len, "fx-%s-%d-%04x", host, (int) getpid(), r & 0xffff);
}

/* What fx_http reports on each /metrics scrape. */
static void
http_gauges(void *arg, fx_http_gauges *g)
{
	fx_worker  *w = arg;

	g->running = w->nrunning;
	g->claimed = w->nactive;
	g->warm = w->ex.nsessions;
}

/* --http ADDR; false if it cannot listen there (the worker then stops). */
static bool
start_http(fx_worker *w)
{
	char		name[96];
	char	   *why = NULL;
	fx_http_config hc;

	snprintf(name, sizeof(name), "http/%s", w->owner);
	hc.addr = w->cfg.http_addr;
	hc.conninfo = w->cfg.conninfo;
	hc.appname = name;
	hc.gauges = http_gauges;
	hc.arg = w;
	w->http = fx_http_start(&w->loop, &hc, &why);
	if (w->http)
		return true;
	fx_err("%s", why);
	free(why);
	w->exit_code = 1;
	w->draining = true;
	return false;
}

int
fx_worker_run(const fx_worker_config *cfg)
{
	fx_worker  *w = fx_xcalloc(1, sizeof(*w));
	char		name[96];
	int			rc;

	w->cfg = *cfg;
	w->ready_tail = &w->ready;
	if (fx_mkdirs(cfg->cache_dir, 0755) < 0)
	{
		fx_err("cannot create cache directory \"%s\": %s", cfg->cache_dir, strerror(errno));
		free(w);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&w->loop);
	make_owner(w->owner, sizeof(w->owner));
	if (cfg->exec.sandbox)
	{
		fx_sandbox_config sc = {cfg->stage_dir, cfg->prewarm};
		char	   *why = NULL;

		if (fx_sandbox_init(&w->loop, &sc, &why) < 0)
		{
			fx_err("cannot create sandboxes: %s", why);
			fx_err("functions need user, PID, mount and network namespaces; \"fx worker --no-sandbox\" runs them unconfined instead");
			free(why);
			uv_loop_close(&w->loop);
			free(w);
			return 1;
		}
	}
	else
		fx_warn("sandboxes are off (--no-sandbox): functions run as plain processes of this user");
	fx_exec_init(&w->ex, &w->loop, &cfg->exec);
	w->ex.on_done = fx_worker_attempt_done;
	w->ex.on_request = on_request;
	w->ex.data = w;
	/* Its other sessions are named after it, but are not it (fx.reap). */
	snprintf(name, sizeof(name), "sql/%s", w->owner);
	fx_txn_pool_init(&w->txns, &w->loop, cfg->conninfo, name);
	/* a slot frees while its transaction still commits: up to two each */
	w->txns.max_idle = 2 * cfg->concurrency;
	snprintf(name, sizeof(name), "state/%s", w->owner);
	fx_db_init(&w->sdb, &w->loop, cfg->conninfo, name);
	w->requests.db = &w->sdb;
	w->requests.txns = &w->txns;
	w->requests.max_state_size = 1024 * 1024;
	w->requests.find = find_running;
	w->requests.arg = w;
	w->sdb.data = w;
	w->sdb.on_ready = sdb_ready;
	w->sdb.on_notify = sdb_notify;
	w->workflows.loop = &w->loop;
	w->workflows.db = &w->sdb;
	w->workflows.owner = w->owner;
	snprintf(name, sizeof(name), "finish/%s", w->owner);
	fx_db_init(&w->fdb, &w->loop, cfg->conninfo, name);
	w->fdb.data = w;
	w->fdb.on_ready = fdb_ready;
	w->workflows.grace_ms = cfg->wait_grace_ms;
	w->workflows.max_output = cfg->exec.max_result_bytes;
	w->workflows.find = find_running;
	w->workflows.evicted = wf_evicted;
	w->workflows.arg = w;
	fx_db_init(&w->db, &w->loop, cfg->conninfo, w->owner);
	w->db.data = w;
	w->db.on_ready = on_ready;
	w->db.on_notify = on_notify;
	w->db.on_lost = on_lost;
	w->db.on_closed = db_closed;
	fx_secret_cache_init(&w->secrets, &w->db);
	uv_timer_init(&w->loop, &w->tick);
	w->tick.data = w;
	uv_timer_init(&w->loop, &w->due);
	w->due.data = w;
	uv_timer_init(&w->loop, &w->rescan);
	w->rescan.data = w;
	uv_timer_init(&w->loop, &w->logs);
	w->logs.data = w;
	uv_timer_start(&w->logs, logs_cb, 500, 500);
	uv_signal_init(&w->loop, &w->sigterm);
	w->sigterm.data = w;
	uv_signal_start(&w->sigterm, on_signal, SIGTERM);
	uv_signal_init(&w->loop, &w->sigint);
	w->sigint.data = w;
	uv_signal_start(&w->sigint, on_signal, SIGINT);
	set_tick(w, (uint64_t) cfg->poll_ms);

	fx_info("worker %s starting: concurrency %d, bundle cache %s, %s", w->owner,
			cfg->concurrency, cfg->cache_dir,
			cfg->exec.sandbox ? "sandboxed" : "not sandboxed");
	if (cfg->http_addr && !start_http(w))
		fx_worker_maybe_stop(w);	/* closes everything: uv_run returns */
	fx_db_start(&w->db);
	fx_db_start(&w->sdb);
	fx_db_start(&w->fdb);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_walk(&w->loop, walk_close, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&w->loop);
	if (rc != 0)
		fx_err("event loop did not close cleanly: %s", uv_strerror(rc));
	rc = w->exit_code;
	fx_txn_pool_free(&w->txns);
	fx_secret_cache_free(&w->secrets);
	free(w);
	return rc;
}
