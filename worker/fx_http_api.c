/*
 * fx_http_api.c: the dashboard: GET / serves a page (dashboard.html, .js
 * and .css, built into the binary as arrays by the Makefile) that polls the
 * JSON of GET /api/... with the same bearer tokens as /fn: a token sees the
 * functions it may invoke and their invocations.
 *
 * Those reads run on a database session of their own ("dash/OWNER"),
 * opened on the first /api request, read-only and with a statement
 * timeout, so that a slow aggregate never holds up a call queued behind it
 * on the server's session.  A request waits DASH_CONNECT_MS at most for the
 * session, and is sent once more if the session is lost under it.
 *
 * Every /api statement returns one row: the token's verdict, then the
 * answer as JSON text.  The verdict is fx.token_allows() of the token:
 * 'unknown' is a 401; lists hold only the functions it may invoke ('ok'
 * for them), and one invocation is 'missing' (404), 'forbidden' (403) or
 * 'ok'.
 */
#include <cjson/cJSON.h>

#include "fx_dashboard.h"		/* generated from dashboard.* (Makefile) */
#include "fx_http_int.h"

#define DASH_CONNECT_MS 5000	/* an /api request waits this long for the session */
#define DASH_STATEMENT_TIMEOUT "10s"
#define MAX_LIST 200			/* /api/invocations?limit= */
#define MAX_THROUGHPUT_S 600	/* /api/throughput?seconds= */

static void dash_ready(fx_db *db);
static void api_send(http_req *r);

/* ---------------------------------------------------------------------
 * The page's headers and the /api statements
 * --------------------------------------------------------------------- */

/* The page may load its own script and style and fetch /api: nothing else. */
#define PAGE_HEADERS \
	"Cache-Control: no-cache\r\n" \
	"X-Content-Type-Options: nosniff\r\n" \
	"Referrer-Policy: no-referrer\r\n" \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self';" \
	" connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none';" \
	" frame-ancestors 'none'\r\n"

/* The token's verdict and the functions it sees: "WITH tok, fns". */
#define API_SCOPE \
	"WITH tok AS (SELECT fx.token_allows($1, '') AS verdict)," \
	" fns AS (SELECT f.name FROM fx.function f, tok" \
	"          WHERE tok.verdict <> 'unknown' AND fx.token_allows($1, f.name) = 'ok')"

/*
 * Functions: the live version, and the numbers of fx.stats (errors: failed
 * or dead; percentiles of the wall time) over each function's newest
 * 10 000 invocations (fx.stats reads all of them: a second per million).
 */
static const char sql_functions[] =
API_SCOPE
" SELECT tok.verdict, coalesce((SELECT jsonb_agg(jsonb_build_object("
"     'name', f.name, 'version', v.version, 'mode', v.mode,"
"     'invocations', s.invocations, 'errors', s.errors,"
"     'p50_ms', round(s.p50_ms::numeric, 2), 'p95_ms', round(s.p95_ms::numeric, 2),"
"     'last_invoked', s.last_invoked) ORDER BY f.name)"
"   FROM fns f"
"   LEFT JOIN fx.alias a ON a.fn = f.name AND a.alias = 'live'"
"   LEFT JOIN fx.version v ON v.fn = a.fn AND v.version = a.version"
"   CROSS JOIN LATERAL (SELECT count(*) AS invocations,"
"          count(*) FILTER (WHERE r.status IN ('failed', 'dead')) AS errors,"
"          percentile_cont(0.5) WITHIN GROUP (ORDER BY r.wall_ms)"
"              FILTER (WHERE r.finished_at IS NOT NULL) AS p50_ms,"
"          percentile_cont(0.95) WITHIN GROUP (ORDER BY r.wall_ms)"
"              FILTER (WHERE r.finished_at IS NOT NULL) AS p95_ms,"
"          max(r.created_at) AS last_invoked"
"        FROM (SELECT i.status, i.wall_ms, i.finished_at, i.created_at"
"                FROM fx.invocation i WHERE i.fn = f.name"
"               ORDER BY i.id DESC LIMIT 10000) r) s),"
"  '[]')::text"
" FROM tok";

/* The newest invocations ($2: of one function, or NULL; $3: how many). */
static const char sql_invocations[] =
API_SCOPE
" SELECT tok.verdict, coalesce((SELECT jsonb_agg(to_jsonb(x) ORDER BY x.id DESC) FROM ("
"   SELECT i.id, i.fn, i.version, i.status, i.attempts, i.created_at, i.started_at,"
"          i.finished_at, round(i.wall_ms::numeric, 2) AS duration_ms, i.start_kind,"
"          i.worker, i.parent, left(i.error, 200) AS error"
"     FROM fx.invocation i"
"    WHERE i.fn IN (SELECT name FROM fns) AND ($2::text IS NULL OR i.fn = $2)"
"    ORDER BY i.id DESC LIMIT $3::int) x), '[]')::text"
" FROM tok";

/* One invocation ($2) with its logs (the first 2000 lines), steps and children. */
static const char sql_invocation[] =
"WITH i AS (SELECT * FROM fx.invocation v WHERE v.id = $2::bigint),"
" tok AS (SELECT fx.token_allows($1, coalesce((SELECT i.fn FROM i), '')) AS verdict)"
" SELECT CASE WHEN tok.verdict = 'unknown' THEN 'unknown'"
"             WHEN NOT EXISTS (SELECT 1 FROM i) THEN 'missing' ELSE tok.verdict END,"
"  (SELECT jsonb_build_object("
"     'id', i.id, 'fn', i.fn, 'version', i.version, 'key', i.key, 'queue', i.queue,"
"     'status', i.status, 'attempts', i.attempts, 'max_attempts', i.max_attempts,"
"     'args', i.args, 'result', i.result, 'error', i.error, 'detail', i.error_detail,"
"     'worker', i.worker, 'parent', i.parent, 'created_at', i.created_at,"
"     'not_before', i.not_before, 'started_at', i.started_at, 'finished_at', i.finished_at,"
"     'duration_ms', round(i.wall_ms::numeric, 2), 'cpu_ms', round(i.cpu_ms::numeric, 2),"
"     'max_rss_kb', i.max_rss_kb, 'start_kind', i.start_kind, 'deadline', i.deadline,"
"     'log_lines', (SELECT count(*) FROM fx.log l WHERE l.invocation_id = i.id),"
"     'logs', (SELECT coalesce(jsonb_agg(jsonb_build_object("
"                'attempt', l.attempt, 'at', l.at, 'stream', l.stream, 'line', l.line)"
"                ORDER BY l.attempt, l.seq), '[]')"
"              FROM (SELECT * FROM fx.log l WHERE l.invocation_id = i.id"
"                     ORDER BY l.attempt, l.seq LIMIT 2000) l),"
"     'steps', (SELECT coalesce(jsonb_agg(jsonb_build_object("
"                 'step', s.step, 'name', s.name, 'kind', s.kind, 'done', s.done,"
"                 'output', s.output, 'error', s.error, 'child', s.child,"
"                 'wake_at', s.wake_at, 'started_at', s.started_at,"
"                 'ms', round((extract(epoch FROM s.finished_at - s.started_at) * 1000)::numeric, 2))"
"                 ORDER BY s.step), '[]')"
"               FROM fx.step s WHERE s.invocation_id = i.id),"
"     'children', (SELECT coalesce(jsonb_agg(jsonb_build_object("
"                    'id', c.id, 'fn', c.fn, 'status', c.status) ORDER BY c.id), '[]')"
"                  FROM (SELECT * FROM fx.invocation c WHERE c.parent = i.id"
"                         ORDER BY c.id LIMIT 200) c)"
"   )::text FROM i WHERE tok.verdict = 'ok')"
" FROM tok";

/* Workflows not ended: queued or running invocations that recorded steps. */
static const char sql_workflows[] =
API_SCOPE
" SELECT tok.verdict, coalesce((SELECT jsonb_agg(to_jsonb(w) ORDER BY w.id DESC) FROM ("
"   SELECT i.id, i.fn, i.status, i.created_at, i.started_at, i.not_before,"
"          st.steps, st.done, st.last_step, st.waiting, st.wake_at"
"     FROM (SELECT * FROM fx.invocation i"
"            WHERE i.status IN ('queued', 'running') AND i.fn IN (SELECT name FROM fns)"
"              AND EXISTS (SELECT 1 FROM fx.step s WHERE s.invocation_id = i.id)"
"            ORDER BY i.id DESC LIMIT 100) i"
"     CROSS JOIN LATERAL (SELECT count(*) AS steps, count(*) FILTER (WHERE s.done) AS done,"
"          (array_agg(s.name || ' (' || s.kind || ')' ORDER BY s.step DESC))[1] AS last_step,"
"          (array_agg(s.kind ORDER BY s.step) FILTER (WHERE NOT s.done))[1] AS waiting,"
"          min(s.wake_at) FILTER (WHERE NOT s.done) AS wake_at"
"        FROM fx.step s WHERE s.invocation_id = i.id) st) w), '[]')::text"
" FROM tok";

/*
 * Workers: the sessions named like a worker's ("fx-HOST-PID-XXXX"; their
 * other sessions are "sql/...", "state/...", "http/...", "dash/..."), with
 * the attempts each holds; $2: this worker's own gauges, $3: its name.
 */
static const char sql_workers[] =
"WITH tok AS (SELECT fx.token_allows($1, '') AS verdict)"
" SELECT tok.verdict, CASE WHEN tok.verdict <> 'unknown' THEN jsonb_build_object("
"   'database', current_database(), 'server_version', current_setting('server_version'),"
"   'now', now(), 'queue_depth', fx.queue_depth(), 'self', $2::jsonb,"
"   'workers', coalesce((SELECT jsonb_agg(jsonb_build_object("
"       'name', a.application_name, 'pid', a.pid,"
"       'client', coalesce(host(a.client_addr), 'local'),"
"       'backend_start', a.backend_start, 'state', a.state, 'state_change', a.state_change,"
"       'running', (SELECT count(*) FROM fx.invocation i"
"                    WHERE i.status = 'running' AND i.lease_owner = a.application_name),"
"       'http', EXISTS (SELECT 1 FROM pg_stat_activity h"
"                        WHERE h.application_name = 'http/' || a.application_name),"
"       'self', a.application_name = $3) ORDER BY a.backend_start)"
"     FROM pg_stat_activity a"
"    WHERE a.application_name LIKE 'fx-%' AND a.datname = current_database()), '[]')"
"  )::text END"
" FROM tok";

/*
 * Invocations finished in each of the last $2 whole seconds, oldest first.
 * fx.invocation has no index on finished_at: the scan is bounded to the
 * newest 100 000 invocations (by id, the primary key).
 */
static const char sql_throughput[] =
API_SCOPE ","
" win AS (SELECT date_trunc('second', now()) AS hi, $2::int AS n),"
" fin AS (SELECT win.n - 1 - floor(extract(epoch FROM win.hi - i.finished_at))::int AS k,"
"                i.status"
"           FROM fx.invocation i, win"
"          WHERE i.id > (SELECT coalesce(max(m.id), 0) FROM fx.invocation m) - 100000"
"            AND i.finished_at >= win.hi - make_interval(secs => win.n)"
"            AND i.finished_at < win.hi AND i.fn IN (SELECT name FROM fns)),"
" per AS (SELECT fin.k, count(*) FILTER (WHERE fin.status = 'succeeded') AS ok,"
"                count(*) FILTER (WHERE fin.status IN ('failed', 'dead')) AS bad"
"           FROM fin GROUP BY fin.k)"
" SELECT tok.verdict, CASE WHEN tok.verdict <> 'unknown' THEN jsonb_build_object("
"   'end', win.hi, 'seconds', win.n,"
"   'succeeded', (SELECT jsonb_agg(coalesce(per.ok, 0) ORDER BY g)"
"                   FROM generate_series(0, win.n - 1) g LEFT JOIN per ON per.k = g),"
"   'failed', (SELECT jsonb_agg(coalesce(per.bad, 0) ORDER BY g)"
"                FROM generate_series(0, win.n - 1) g LEFT JOIN per ON per.k = g)"
"  )::text END"
" FROM tok, win";

/* ---------------------------------------------------------------------
 * GET / and its files
 * --------------------------------------------------------------------- */

static void
serve_file(http_conn *c, const char *ctype, const char *body, size_t len)
{
	if (c->parser.method != HTTP_GET)
	{
		fx_http_method_not_allowed(c, "GET");
		return;
	}
	fx_http_reply(c, 200, ctype, PAGE_HEADERS, body, len);
}

bool
fx_http_serve_page(http_conn *c, const char *path)
{
	if (strcmp(path, "/") == 0)
		serve_file(c, "text/html; charset=utf-8", fx_dashboard_html, sizeof(fx_dashboard_html) - 1);
	else if (strcmp(path, "/dashboard.js") == 0)
		serve_file(c, "text/javascript; charset=utf-8", fx_dashboard_js, sizeof(fx_dashboard_js) - 1);
	else if (strcmp(path, "/dashboard.css") == 0)
		serve_file(c, "text/css; charset=utf-8", fx_dashboard_css, sizeof(fx_dashboard_css) - 1);
	else
		return false;
	return true;
}

/* ---------------------------------------------------------------------
 * The /api reads, on the dashboard's session
 * --------------------------------------------------------------------- */

static void
api_cb(fx_db *db, PGresult *res, void *arg)
{
	http_req   *r = arg;
	const char *verdict;
	char	   *msg;

	(void) db;
	if (fx_http_gone(r))
		return;
	if (res == NULL && !r->resent)
	{
		r->resent = true;		/* a read: ask again after the reconnect */
		api_send(r);
		return;
	}
	if (!fx_http_row_or_answer(r, res))
		return;
	verdict = PQgetvalue(res, 0, 0);
	if (strcmp(verdict, "unknown") == 0)
		fx_http_reply_error(fx_http_req_done(r), 401, NULL, "invalid token", NULL, 0);
	else if (strcmp(verdict, "missing") == 0)
	{
		msg = fx_xasprintf("invocation %s does not exist", r->params[1]);
		fx_http_reply_error(fx_http_req_done(r), 404, NULL, msg, NULL, 0);
		free(msg);
	}
	else if (PQgetisnull(res, 0, 1))	/* forbidden, of one invocation */
		fx_http_reply_error(fx_http_req_done(r), 403, NULL,
							"this token may not see invocations of this function", NULL, 0);
	else
		fx_http_reply(fx_http_req_done(r), 200, JSON_TYPE, "Cache-Control: no-store\r\n",
					  PQgetvalue(res, 0, 1), PQgetlength(res, 0, 1));
}

static void
api_connect_timeout(uv_timer_t *t)
{
	http_req   *r = t->data;

	fx_http_unlist(r);
	fx_http_reply_error(fx_http_req_done(r), 503, NULL, "the database connection is down", NULL, 0);
}

/* Open the dashboard's session: read-only, with a statement timeout. */
static void
dash_start(fx_http *h)
{
	char	   *name = fx_xasprintf("dash/%s", h->owner);

	fx_db_init(&h->dash, h->loop, h->db.conninfo, name);
	free(name);
	h->dash_started = true;
	h->open++;
	h->dash.data = h;
	h->dash.on_ready = dash_ready;
	h->dash.on_closed = fx_http_db_closed;
	fx_db_start(&h->dash);
}

/* Send r's statement, or wait for the session (at most DASH_CONNECT_MS). */
static void
api_send(http_req *r)
{
	fx_http    *h = r->h;

	if (!h->dash_started)
		dash_start(h);
	if (h->dash.state != FX_DB_READY)
	{
		r->next = h->dash_waiting;
		h->dash_waiting = r;
		r->listed = true;
		uv_timer_start(&r->timer, api_connect_timeout, DASH_CONNECT_MS, 0);
		return;
	}
	r->in_db = true;
	fx_db_query_prepared(&h->dash, r->sql, r->nparams,
						 (const char *const *) r->params, api_cb, r);
}

static void
dash_ready(fx_db *db)
{
	fx_http    *h = db->data;

	fx_db_query_simple(db, "SET statement_timeout = '" DASH_STATEMENT_TIMEOUT "';"
					   " SET default_transaction_read_only = on",
					   fx_http_ignore_cb, "setting up the dashboard's session");
	while (h->dash_waiting)
	{
		http_req   *r = h->dash_waiting;

		fx_http_unlist(r);
		api_send(r);
	}
}

/* ---------------------------------------------------------------------
 * GET /api/...: parameters and routing
 * --------------------------------------------------------------------- */

/* The value of key in a query string, decoded; NULL if absent or malformed. */
static char *
query_value(const char *q, const char *key)
{
	size_t		klen = strlen(key);

	while (q && *q)
	{
		size_t		len = strcspn(q, "&");

		if (len > klen && strncmp(q, key, klen) == 0 && q[klen] == '=')
			return fx_http_decode(q + klen + 1, len - klen - 1, true);
		q += len;
		if (*q == '&')
			q++;
	}
	return NULL;
}

/* An integer query parameter from lo to hi, def if absent; -1 if bad. */
static long
query_int(const char *q, const char *key, long def, long lo, long hi)
{
	char	   *v = query_value(q, key);
	char	   *end;
	long		n;

	if (v == NULL)
		return def;
	n = strtol(v, &end, 10);
	if (*end || end == v || n < lo || n > hi)
		n = -1;
	free(v);
	return n;
}

/* The parameters of each /api statement after the secret: NULL, or why not. */
static const char *
params_none(http_req *r, const char *id, const char *query)
{
	return NULL;
}

static const char *
params_invocations(http_req *r, const char *id, const char *query)
{
	long		limit = query_int(query, "limit", 50, 1, MAX_LIST);

	if (limit < 0)
		return "limit must be a whole number from 1 to 200";
	r->params[1] = query_value(query, "fn");	/* NULL: every function */
	r->params[2] = fx_xasprintf("%ld", limit);
	r->nparams = 3;
	return NULL;
}

static const char *
params_invocation(http_req *r, const char *id, const char *query)
{
	r->params[1] = fx_xstrdup(id);
	r->nparams = 2;
	return NULL;
}

static const char *
params_workers(http_req *r, const char *id, const char *query)
{
	fx_http    *h = r->h;
	fx_http_gauges g = {0, 0, 0};
	cJSON	   *self = cJSON_CreateObject();
	cJSON	   *resp = cJSON_AddObjectToObject(self, "responses");
	char	   *printed;
	char		name[8];

	if (h->gauges)
		h->gauges(h->arg, &g);
	cJSON_AddStringToObject(self, "name", h->owner);
	cJSON_AddStringToObject(self, "http", h->addr);
	cJSON_AddNumberToObject(self, "running", g.running);
	cJSON_AddNumberToObject(self, "claimed", g.claimed);
	cJSON_AddNumberToObject(self, "warm", g.warm);
	for (int i = 1; i < 6; i++)
	{
		snprintf(name, sizeof(name), "%dxx", i);
		cJSON_AddNumberToObject(resp, name, (double) h->responses[i]);
	}
	printed = cJSON_PrintUnformatted(self);
	r->params[1] = fx_xstrdup(printed);
	r->params[2] = fx_xstrdup(h->owner);
	r->nparams = 3;
	cJSON_free(printed);
	cJSON_Delete(self);
	return NULL;
}

static const char *
params_throughput(http_req *r, const char *id, const char *query)
{
	long		secs = query_int(query, "seconds", 60, 10, MAX_THROUGHPUT_S);

	if (secs < 0)
		return "seconds must be a whole number from 10 to 600";
	r->params[1] = fx_xasprintf("%ld", secs);
	r->nparams = 2;
	return NULL;
}

typedef struct api_endpoint
{
	const char *path;			/* after /api/; ending in '/': an ID follows */
	const char *sql;
	const char *(*params) (http_req *r, const char *id, const char *query);
} api_endpoint;

static const api_endpoint endpoints[] = {
	{"functions", sql_functions, params_none},
	{"invocations", sql_invocations, params_invocations},
	{"invocations/", sql_invocation, params_invocation},
	{"workflows", sql_workflows, params_none},
	{"workers", sql_workers, params_workers},
	{"throughput", sql_throughput, params_throughput},
};

/* Answer GET /api/... with e's statement; secret is the bearer token's. */
static void
api_request(http_conn *c, const api_endpoint *e, const char *id, const char *query,
			const char *secret)
{
	http_req   *r = fx_http_req_new(c, REQ_API);
	const char *err;

	r->sql = e->sql;
	r->params[0] = fx_xstrdup(secret);
	r->nparams = 1;
	err = e->params(r, id, query);
	if (err)
	{
		fx_http_reply_error(fx_http_req_done(r), 400, NULL, err, NULL, 0);
		return;
	}
	api_send(r);
}

/* The endpoint of path (after "/api/") and its ID, or NULL. */
static const api_endpoint *
api_find(const char *path, const char **id)
{
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
	{
		const api_endpoint *e = &endpoints[i];
		size_t		n = strlen(e->path);

		*id = NULL;
		if (e->path[n - 1] != '/' ? strcmp(path, e->path) == 0
			: strncmp(path, e->path, n) == 0 && fx_http_all_digits(path + n))
		{
			*id = e->path[n - 1] == '/' ? path + n : NULL;
			return e;
		}
	}
	return NULL;
}

void
fx_http_route_dash(http_conn *c, const char *path, const char *query)
{
	const char *id;
	const api_endpoint *e = api_find(path + 5, &id);
	char	   *secret;

	if (e == NULL)
	{
		fx_http_reply_error(c, 404, NULL, "not found",
							"Paths: /api/functions, /api/invocations, /api/invocations/ID,"
							" /api/workflows, /api/workers, /api/throughput.", 0);
		return;
	}
	if (c->parser.method != HTTP_GET)
	{
		fx_http_method_not_allowed(c, "GET");
		return;
	}
	secret = fx_http_token(c);
	if (secret == NULL)
		return;
	api_request(c, e, id, query, secret);
	free(secret);
}
