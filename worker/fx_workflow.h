/*
 * fx_workflow.h: a session function's workflow steps (step, step.done,
 * call, start, await, sleep, recv, send, set_event; docs/protocol.md,
 * "Workflows").
 *
 * The worker answers each step from the steps the workflow recorded
 * (loaded once per attempt, when the attempt is a replay) or records it in
 * fx.step, with an asynchronous commit.  A step that waits (sleep, recv,
 * call, await) waits in the sandbox for at most grace_ms; then the
 * workflow is evicted: queued again to replay when its wait is over
 * (fx.evict), and the sandbox is given up.
 */
#ifndef FX_WORKFLOW_H
#define FX_WORKFLOW_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "fx_db.h"
#include "fx_exec.h"
#include "fx_txn.h"

typedef struct fx_wf fx_wf;

typedef struct fx_workflows
{
	uv_loop_t  *loop;
	fx_db	   *db;				/* step records; LISTENs for messages and children */
	const char *owner;			/* the worker's lease owner name */
	int			grace_ms;		/* longest wait in the sandbox */
	size_t		max_output;		/* bytes of a step's output */
	/* the running attempt (id, epoch), or with epoch -1 any attempt of id */
	fx_inv	   *(*find) (void *arg, int64_t id, int epoch);
	/* inv was evicted and will be queued again at wake_ms (0: on an event) */
	void		(*evicted) (void *arg, fx_inv *inv, int64_t wake_ms);
	void	   *arg;
} fx_workflows;

/* Whether type is a workflow request. */
bool		fx_wf_is_request(const char *type);

/* msg is the request parsed, body[0..n) its text (fx_exec's on_request). */
void		fx_wf_handle(fx_workflows *wfs, fx_inv *inv, const char *type,
						 const cJSON *msg, const char *body, size_t n);

/* A notification on wfs->db: a message (fx_msg) or a child's end (fx_done_*). */
void		fx_wf_notify(fx_workflows *wfs, const char *channel, const char *payload);

/* The statements to send on wfs->db after each (re)connect. */
char	   *fx_wf_listen_sql(fx_workflows *wfs);

/* The attempt ended: why it must fail (nondeterminism), or NULL. */
const char *fx_wf_fatal(const fx_inv *inv);

/* Whether the attempt was evicted (its answer is to be ignored). */
bool		fx_wf_evicted(const fx_inv *inv);

/* Forget the attempt's workflow state (fx_inv_free). */
void		fx_wf_free(fx_wf *wf);

#endif							/* FX_WORKFLOW_H */
