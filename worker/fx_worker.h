/*
 * fx_worker.h: the `fx worker` daemon.
 */
#ifndef FX_WORKER_H
#define FX_WORKER_H

#include "fx_exec.h"

typedef struct fx_worker_config
{
	const char *conninfo;		/* libpq conninfo; "" = PG* variables */
	int			concurrency;	/* attempts running at once */
	int			prefetch;		/* claimed ahead, waiting for a slot */
	int			batch;			/* most invocations claimed per round trip */
	const char *cache_dir;		/* unpacked bundles */
	int			poll_ms;		/* reap tick */
	int			claim_every;	/* a claim from the start waits at most N ticks */
	int			lease_slack_ms; /* a lease lasts timeout + this */
	int			wait_grace_ms;	/* a workflow's wait keeps its sandbox this long */
	int			backoff_ms;		/* first retry delay, doubled per attempt */
	const char *stage_dir;		/* where sandboxes build their roots */
	int			prewarm;		/* sandboxes kept ready */
	const char *http_addr;		/* --http: serve function URLs (NULL: off) */
	fx_exec_config exec;
} fx_worker_config;

/* Run until SIGTERM/SIGINT drains it; returns the process exit status. */
int			fx_worker_run(const fx_worker_config *cfg);

#endif							/* FX_WORKER_H */
