/*
 * fx_worker_int.h: what the parts of the worker daemon share; main.c sees
 * only fx_worker.h.
 *
 *   fx_worker.c   the loop: claiming (fx.cycle), finishing, ticks, signals,
 *                 connections, stopping
 *   fx_start.c    from a claimed row to a running attempt: its secrets, its
 *                 bundle or image (fetched once for all who wait for it),
 *                 a free slot
 */
#ifndef FX_WORKER_INT_H
#define FX_WORKER_INT_H

#include <libpq-fe.h>
#include <uv.h>

#include "fx_db.h"
#include "fx_exec.h"
#include "fx_http.h"
#include "fx_request.h"
#include "fx_secret.h"
#include "fx_txn.h"
#include "fx_worker.h"
#include "fx_workflow.h"

/* A code bundle being fetched, and the attempts waiting for it. */
typedef struct fx_fetch
{
	char	   *hash;
	char	   *fn;
	int			version;
	bool		image;			/* a container image, unpacked off the loop */
	bool		sent;			/* the query is in flight */
	fx_inv	   *waiting;		/* linked through next_waiting */
	struct fx_fetch *next;
} fx_fetch;

typedef struct fx_worker
{
	uv_loop_t	loop;
	fx_worker_config cfg;
	char		owner[64];
	fx_db		db;
	fx_exec		ex;
	fx_txn_pool txns;			/* connections for the functions' sql */
	fx_db		sdb;			/* state reads, not queued behind db's cycles */
	fx_db		fdb;			/* finishes, beside db's claims (send_finish) */
	fx_requests requests;
	fx_secret_cache secrets;	/* functions' secrets, by NOTIFY fx_secret */
	fx_workflows workflows;
	fx_http    *http;			/* --http server, or NULL */
	int			committing;		/* completions in their own transaction */
	uv_timer_t	tick;
	uv_timer_t	due;
	uv_timer_t	logs;			/* sends running attempts' new log lines */
	uv_timer_t	rescan;			/* a wanted claim from the start, once allowed */
	uv_signal_t sigterm;
	uv_signal_t sigint;
	fx_inv	   *active;			/* claimed and not yet finished */
	fx_fetch   *fetches;		/* bundles being fetched */
	int			nactive;
	fx_inv	   *done;			/* finished, waiting to be sent */
	fx_inv	   *sending;		/* finished ones in the fx.cycle in flight */
	fx_inv	   *finishing;		/* finished ones in the fx.finish in flight */
	fx_inv	   *ready;			/* claimed and ready, waiting for a slot */
	fx_inv	  **ready_tail;
	int			nrunning;		/* attempts executing */
	bool		cycling;		/* an fx.cycle is in flight */
	bool		want_claim;		/* there may be more to claim */
	bool		cursor;			/* claim after (cursor_priority, cursor_id) */
	int			cursor_priority;
	int64_t		cursor_id;
	bool		rescan_wanted;	/* a claim from the start of the queue */
	uint64_t	rescan_after;	/* fx_mono_ns: not before then (rescanned) */
	uint64_t	rescan_gap;		/* ns from one to the next */
	uint64_t	cycle_sent;		/* fx_mono_ns: the fx.cycle in flight was sent */
	bool		cycle_timed;	/* ... on an idle connection: its round trip */
	uint64_t	claim_ns;		/* a claim's usual round trip, averaged */
	bool		due_unknown;	/* ask for the next due time once idle */
	bool		reaping;
	int			quiet_ticks;	/* ticks in a row that found nothing to do */
	uint64_t	tick_ms;		/* poll_ms, or twice that once quiet */
	bool		draining;
	bool		stopping;		/* closing handles */
	bool		db_closed;
	int			exit_code;
} fx_worker;

/* fx_worker.c */
fx_worker  *fx_worker_of(fx_db *db);
/* An attempt is over (exec's on_done, or failed before it ran). */
void		fx_worker_attempt_done(fx_inv *inv);
/* Take inv out of the active list, if it is there. */
void		fx_worker_unlink(fx_worker *w, fx_inv *inv);
/* Once stopping: exit when nothing is left to wait for. */
void		fx_worker_maybe_stop(fx_worker *w);

/* fx_start.c */
/* An invocation from a row of fx.cycle's claims (fx_worker.c's order). */
fx_inv	   *fx_inv_from_row(PGresult *res, int row);
/* Start a claimed invocation, already in the active list. */
void		fx_start_claimed(fx_worker *w, fx_inv *inv);
/* Run inv once its secrets are current: now, or when a slot frees. */
void		fx_start_run(fx_worker *w, fx_inv *inv);
/* Reconnected: ask again for the bundles being fetched. */
void		fx_start_refetch(fx_worker *w);
/* Stopping: free the attempts waiting for a bundle or their secrets. */
void		fx_start_drop_waiting(fx_worker *w);

#endif							/* FX_WORKER_INT_H */
