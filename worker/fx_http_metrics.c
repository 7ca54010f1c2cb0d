/*
 * fx_http_metrics.c: GET /metrics, in Prometheus text format, without a
 * token.
 *
 * Metrics are counted here from the worker's attempt_done (per attempt of
 * this worker, since it started): by function, outcomes, start kinds and a
 * histogram of wall time, for at most MAX_FNS functions (the rest count
 * together as "_other").  A scrape adds gauges the worker reports, the
 * responses of this server by status class, and the queue depth, asked of
 * the database on each scrape (the last value is served if it does not
 * answer within SCRAPE_WAIT_MS; scrapes that come meanwhile share one
 * question).
 */
#include "fx_http_int.h"

#define SCRAPE_WAIT_MS 1000
#define MAX_FNS 1000			/* functions with metrics of their own */
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Upper bounds of the duration histogram, seconds. */
static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30};
#define NBUCKETS (int) (sizeof(buckets) / sizeof(buckets[0]))

static const char *const start_kinds[] = {"cold", "prewarmed", "warm"};

struct fn_stats
{
	char	   *fn;
	uint64_t	succeeded;
	uint64_t	failed;
	uint64_t	starts[3];		/* by fx_start_kind */
	uint64_t	in_bucket[NBUCKETS + 1];	/* not cumulative; last: +Inf */
	double		sum;			/* seconds */
	uint64_t	count;
	struct fn_stats *next;
};

/* ---------------------------------------------------------------------
 * Counting
 * --------------------------------------------------------------------- */

static fn_stats *
stats_for(fx_http *h, const char *fn)
{
	fn_stats   *s;

	for (s = h->fns; s; s = s->next)
		if (strcmp(s->fn, fn) == 0)
			return s;
	if (h->nfns >= MAX_FNS)
	{
		if (h->other == NULL)
		{
			h->other = fx_xcalloc(1, sizeof(*s));
			h->other->fn = fx_xstrdup("_other");
		}
		return h->other;
	}
	s = fx_xcalloc(1, sizeof(*s));
	s->fn = fx_xstrdup(fn);
	s->next = h->fns;
	h->fns = s;
	h->nfns++;
	return s;
}

void
fx_http_observe(fx_http *h, const fx_inv *inv)
{
	fn_stats   *s = stats_for(h, inv->fn ? inv->fn : "?");
	double		secs = inv->wall_ms / 1000.0;
	int			b = 0;

	if (inv->ok)
		s->succeeded++;
	else
		s->failed++;
	if (!inv->started_ns)
		return;					/* it never ran: no start, no duration */
	if (inv->start >= FX_START_COLD && inv->start <= FX_START_WARM)
		s->starts[inv->start]++;
	while (b < NBUCKETS && secs > buckets[b])
		b++;
	s->in_bucket[b]++;
	s->sum += secs;
	s->count++;
}

void
fx_http_metrics_free(fx_http *h)
{
	while (h->fns)
	{
		fn_stats   *s = h->fns;

		h->fns = s->next;
		free(s->fn);
		free(s);
	}
	if (h->other)
		free(h->other->fn);
	free(h->other);
	h->other = NULL;
}

/* ---------------------------------------------------------------------
 * Rendering
 * --------------------------------------------------------------------- */

/* fn as a label value: backslash, quote and newline escaped. */
static void
sb_label(strbuf *b, const char *v)
{
	for (; *v; v++)
	{
		if (*v == '\\' || *v == '"')
			sb_printf(b, "\\%c", *v);
		else if (*v == '\n')
			sb_add(b, "\\n", 2);
		else
			sb_add(b, v, 1);
	}
}

static void
sb_help(strbuf *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
sb_fn(strbuf *b, const char *name, const fn_stats *s)
{
	sb_printf(b, "%s{fn=\"", name);
	sb_label(b, s->fn);
	sb_add(b, "\"", 1);
}

static void
render_counters(strbuf *b, fn_stats *all)
{
	sb_help(b, "fx_invocations_total", "counter",
			"Attempts this worker finished, by function and outcome.");
	for (fn_stats *s = all; s; s = s->next)
	{
		sb_fn(b, "fx_invocations_total", s);
		sb_printf(b, ",outcome=\"succeeded\"} %llu\n", (unsigned long long) s->succeeded);
		sb_fn(b, "fx_invocations_total", s);
		sb_printf(b, ",outcome=\"failed\"} %llu\n", (unsigned long long) s->failed);
	}
	sb_help(b, "fx_cold_starts_total", "counter",
			"Attempts that started a new process (cold or prewarmed sandbox), not a warm one.");
	for (fn_stats *s = all; s; s = s->next)
	{
		sb_fn(b, "fx_cold_starts_total", s);
		sb_printf(b, "} %llu\n", (unsigned long long) (s->starts[FX_START_COLD] +
													  s->starts[FX_START_PREWARMED]));
	}
	sb_help(b, "fx_starts_total", "counter", "Attempts started, by function and start kind.");
	for (fn_stats *s = all; s; s = s->next)
		for (int k = 0; k < 3; k++)
		{
			sb_fn(b, "fx_starts_total", s);
			sb_printf(b, ",kind=\"%s\"} %llu\n", start_kinds[k],
					  (unsigned long long) s->starts[k]);
		}
}

static void
render_histogram(strbuf *b, fn_stats *all)
{
	sb_help(b, "fx_invocation_duration_seconds", "histogram",
			"Wall time of the attempts this worker ran, by function.");
	for (fn_stats *s = all; s; s = s->next)
	{
		uint64_t	cum = 0;

		for (int i = 0; i <= NBUCKETS; i++)
		{
			cum += s->in_bucket[i];
			sb_fn(b, "fx_invocation_duration_seconds_bucket", s);
			if (i < NBUCKETS)
				sb_printf(b, ",le=\"%g\"} %llu\n", buckets[i], (unsigned long long) cum);
			else
				sb_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long) cum);
		}
		sb_fn(b, "fx_invocation_duration_seconds_sum", s);
		sb_printf(b, "} %.6f\n", s->sum);
		sb_fn(b, "fx_invocation_duration_seconds_count", s);
		sb_printf(b, "} %llu\n", (unsigned long long) s->count);
	}
}

static void
render_gauges(fx_http *h, strbuf *b)
{
	fx_http_gauges g = {0, 0, 0};

	if (h->gauges)
		h->gauges(h->arg, &g);
	sb_help(b, "fx_running", "gauge", "Attempts executing on this worker.");
	sb_printf(b, "fx_running %d\n", g.running);
	sb_help(b, "fx_claimed", "gauge", "Invocations this worker holds: running or waiting for a slot.");
	sb_printf(b, "fx_claimed %d\n", g.claimed);
	sb_help(b, "fx_warm_sandboxes", "gauge", "Warm session processes kept by this worker.");
	sb_printf(b, "fx_warm_sandboxes %d\n", g.warm);
	if (h->queue_depth >= 0)
	{
		sb_help(b, "fx_queue_depth", "gauge",
				"Queued invocations in the database (all workers), at the last scrape that could ask.");
		sb_printf(b, "fx_queue_depth %lld\n", h->queue_depth);
	}
	sb_help(b, "fx_http_responses_total", "counter", "HTTP responses of this worker, by status class.");
	for (int i = 1; i < 6; i++)
		sb_printf(b, "fx_http_responses_total{code=\"%dxx\"} %llu\n", i,
				  (unsigned long long) h->responses[i]);
}

static void
render(http_req *r)
{
	fx_http    *h = r->h;
	strbuf		b = {0};
	fn_stats   *all = h->fns;

	if (h->other)
	{
		h->other->next = h->fns;	/* listed too, for this render */
		all = h->other;
	}
	render_counters(&b, all);
	render_histogram(&b, all);
	render_gauges(h, &b);
	if (h->other)
		h->other->next = NULL;
	fx_http_reply(fx_http_req_done(r), 200, METRICS_TYPE, NULL, b.s, b.len);
	free(b.s);
}

/* ---------------------------------------------------------------------
 * GET /metrics
 * --------------------------------------------------------------------- */

static void
depth_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_http    *h = arg;

	(void) db;
	h->depth_asked = false;
	if (h->stopping)
		return;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		h->queue_depth = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else if (res)
		fx_warn("http: reading the queue depth failed: %s", fx_db_error(res));
	while (h->scrapes)
		render(h->scrapes);
}

static void
scrape_timeout(uv_timer_t *t)
{
	render(t->data);
}

void
fx_http_scrape(http_conn *c)
{
	fx_http    *h = c->h;
	http_req   *r = fx_http_req_new(c, REQ_SCRAPE);

	if (h->db.state != FX_DB_READY)
	{
		render(r);				/* the last queue depth known */
		return;
	}
	r->next = h->scrapes;
	h->scrapes = r;
	r->listed = true;
	uv_timer_start(&r->timer, scrape_timeout, SCRAPE_WAIT_MS, 0);
	if (!h->depth_asked)
	{
		h->depth_asked = true;
		fx_db_query_prepared(&h->db, "SELECT fx.queue_depth()", 0, NULL, depth_cb, h);
	}
}
