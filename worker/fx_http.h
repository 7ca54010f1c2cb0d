/*
 * fx_http.h: function URLs and Prometheus metrics, served by `fx worker
 * --http ADDR`.
 *
 *   POST /fn/NAME[?timeout=S&key=K]  run NAME now; its result is the body
 *   POST /fn/NAME?async=1            enqueue; 202 {"invocation": ID}
 *   GET  /invocations/ID             an invocation's status and outcome
 *   GET  /metrics                    Prometheus text format, no token
 *
 * /fn and /invocations need "Authorization: Bearer SECRET", a token made
 * with fx_token_create() in SQL.  Requests are parsed by the nodejs
 * http-parser library; the server has its own database connection, on
 * which synchronous calls wait for their end as fx_call does (fx_done_<pid>
 * notifications).
 */
#ifndef FX_HTTP_H
#define FX_HTTP_H

#include <uv.h>

#include "fx_exec.h"

typedef struct fx_http fx_http;

/* What the worker reports about itself on each scrape. */
typedef struct fx_http_gauges
{
	int			running;		/* attempts executing */
	int			claimed;		/* claimed, running or waiting for a slot */
	int			warm;			/* warm session processes */
} fx_http_gauges;

typedef struct fx_http_config
{
	const char *addr;			/* "HOST:PORT", ":PORT" (all), "[V6]:PORT" */
	const char *conninfo;
	const char *appname;		/* of its database session */
	void		(*gauges) (void *arg, fx_http_gauges *g);
	void	   *arg;
} fx_http_config;

/* Listen on cfg->addr; NULL with *why (malloc'd) if that is impossible. */
fx_http    *fx_http_start(uv_loop_t *loop, const fx_http_config *cfg, char **why);

/* An attempt ended (the worker's attempt_done): count it. */
void		fx_http_observe(fx_http *h, const fx_inv *inv);

/* Accept no more connections (the worker drains). */
void		fx_http_drain(fx_http *h);

/* Close everything; h is freed once its handles are closed. */
void		fx_http_stop(fx_http *h);

#endif							/* FX_HTTP_H */
