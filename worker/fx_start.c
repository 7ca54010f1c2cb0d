/*
 * fx_start.c: from a claimed row to a running attempt (fx_worker_int.h).
 *
 * A claimed invocation needs its function's current secrets (from the
 * worker's cache, fx_secret.h), its code (a bundle unpacked in the cache, or
 * a container image unpacked off the loop; fetched once for every attempt
 * that waits for it) and a free slot; an attempt that cannot have them
 * fails at once with the reason.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fx_bundle.h"
#include "fx_log.h"
#include "fx_sandbox.h"
#include "fx_worker_int.h"

static char *
field(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : fx_xstrdup(PQgetvalue(res, row, col));
}

static char **
parse_command(const char *json)
{
	cJSON	   *arr = cJSON_Parse(json);
	int			n = cJSON_GetArraySize(arr);
	char	  **argv = fx_xcalloc(n + 1, sizeof(char *));
	int			i = 0;
	cJSON	   *e;

	cJSON_ArrayForEach(e, arr)
		argv[i++] = fx_xstrdup(cJSON_IsString(e) ? e->valuestring : "");
	cJSON_Delete(arr);
	return argv;
}

fx_inv *
fx_inv_from_row(PGresult *res, int row)
{
	fx_inv	   *inv = fx_xcalloc(1, sizeof(*inv));
	char	   *mode;
	cJSON	   *role;

	inv->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
	inv->epoch = atoi(PQgetvalue(res, row, 1));
	inv->fn = field(res, row, 2);
	inv->version = atoi(PQgetvalue(res, row, 3));
	inv->args = field(res, row, 4);
	inv->key = field(res, row, 5);
	inv->attempt = atoi(PQgetvalue(res, row, 6));
	inv->idem = field(res, row, 7);
	inv->hash = field(res, row, 8);
	inv->argv = parse_command(PQgetvalue(res, row, 9));
	mode = PQgetvalue(res, row, 10);
	inv->session = strcmp(mode, "session") == 0;
	inv->memory_mb = atoi(PQgetvalue(res, row, 11));
	inv->timeout_ms = atoi(PQgetvalue(res, row, 12));
	inv->options = cJSON_Parse(PQgetvalue(res, row, 13));
	inv->token = field(res, row, 14);
	inv->replay = PQgetvalue(res, row, 16)[0] == 't';
	if (!PQgetisnull(res, row, 17))
	{
		/* fx_invoke's timeout: the attempt ends by the invocation's deadline */
		int64_t		left = strtoll(PQgetvalue(res, row, 17), NULL, 10) - fx_now_ms();

		if (left < inv->timeout_ms)
			inv->timeout_ms = left > 1 ? (int) left : 1;
	}
	role = cJSON_GetObjectItem(inv->options, "role");
	inv->role = cJSON_IsString(role) ? role->valuestring : NULL;
	return inv;
}

static void
fail_now(fx_worker *w, fx_inv *inv, const char *why)
{
	fx_log(FX_LOG_WARN, inv->id, "cannot run: %s", why);
	fx_inv_fail(inv, true, why, NULL);
	inv->ex = &w->ex;
	fx_worker_attempt_done(inv);
}

/* inv's secrets came, or could not be read: run it again, or fail it. */
static void
secrets_cb(void *arg, fx_secrets *set, const char *why)
{
	fx_inv	   *inv = arg;
	fx_worker  *w = inv->ex->data;

	if (set == NULL)
	{
		fail_now(w, inv, why);
		return;
	}
	inv->secrets = set;
	fx_secret_bind(inv->id, set);
	if (fx_secrets_count(set) > 0 && !w->cfg.exec.sandbox)
	{
		fail_now(w, inv, "secrets are given only to sandboxed functions "
				 "(the worker runs with --no-sandbox)");
		return;
	}
	fx_start_run(w, inv);
}

/*
 * Whether inv holds its function's current secrets (fx_secret.h); if not,
 * they are fetched (or taken from the cache) and run() comes again.
 */
static bool
has_secrets(fx_worker *w, fx_inv *inv)
{
	if (inv->secrets && !fx_secrets_stale(inv->secrets))
		return true;
	if (inv->secrets)
	{
		fx_secret_unbind(inv->id, inv->secrets);
		fx_secrets_unref(inv->secrets);
		inv->secrets = NULL;
	}
	fx_secret_cache_get(&w->secrets, inv->fn, secrets_cb, inv);
	return false;
}

/* Stopping: an attempt that waited for its secrets goes with fx.release. */
static void
drop_waiting(void *arg)
{
	fx_inv	   *inv = arg;

	fx_worker_unlink(inv->ex->data, inv);
	fx_inv_free(inv);
}

void
fx_start_run(fx_worker *w, fx_inv *inv)
{
	if (w->stopping)
	{
		fx_worker_unlink(w, inv);
		fx_inv_free(inv);
		fx_worker_maybe_stop(w);
		return;
	}
	if (!has_secrets(w, inv))
		return;
	fx_log(FX_LOG_DEBUG, inv->id, "running %s:%d attempt %d", inv->fn,
		   inv->version, inv->attempt);
	if (w->nrunning >= w->cfg.concurrency)
	{
		*w->ready_tail = inv;	/* runs when a slot frees */
		w->ready_tail = &inv->next_waiting;
		return;
	}
	w->nrunning++;
	fx_exec_start(&w->ex, inv);
}

static void send_fetch(fx_worker *w, fx_fetch *f);

static bool
is_image(fx_inv *inv)
{
	return cJSON_IsTrue(cJSON_GetObjectItem(inv->options, "image"));
}

static char *
images_dir(fx_worker *w)
{
	return fx_xasprintf("%s/images", w->cfg.cache_dir);
}

static void
free_fetch(fx_worker *w, fx_fetch *f)
{
	for (fx_fetch **pp = &w->fetches; *pp; pp = &(*pp)->next)
		if (*pp == f)
		{
			*pp = f->next;
			break;
		}
	free(f->hash);
	free(f->fn);
	free(f);
}

static char **
concat_argv(char **a, char **b)
{
	int			n = 0;
	char	  **v;

	for (char **p = a; p && *p; p++)
		n++;
	for (char **p = b; p && *p; p++)
		n++;
	v = fx_xcalloc(n + 1, sizeof(char *));
	n = 0;
	for (char **p = a; p && *p; p++)
		v[n++] = fx_xstrdup(*p);
	for (char **p = b; p && *p; p++)
		v[n++] = fx_xstrdup(*p);
	return v;
}

/*
 * Load the unpacked image of inv (it must be in the cache) and make its
 * command: the deploy's --cmd if given, else the image's entrypoint + cmd.
 */
static const char *
load_image(fx_worker *w, fx_inv *inv, char **why)
{
	char	   *dir = images_dir(w);
	fx_image   *img = fx_xcalloc(1, sizeof(*img));
	int			rc = fx_image_prepare(dir, inv->hash, NULL, 0, img, why);

	free(dir);
	if (rc < 0)
	{
		free(img);
		return *why;
	}
	inv->image = img;
	if (inv->argv[0] == NULL)
	{
		free(inv->argv);
		inv->argv = concat_argv(img->entrypoint, img->cmd);
		if (inv->argv[0] == NULL)
			return *why = fx_xstrdup("the image has no entrypoint or cmd; deploy it with --cmd");
	}
	return NULL;
}

/* Run inv if its code is ready; true if it was (or failed for good). */
static bool
run_if_ready(fx_worker *w, fx_inv *inv)
{
	char	   *why = NULL;

	if (is_image(inv))
	{
		char	   *dir = images_dir(w);
		char	   *rootfs = fx_xasprintf("%s/%s/rootfs", dir, inv->hash);
		bool		cached = access(rootfs, F_OK) == 0;

		free(dir);
		free(rootfs);
		if (!cached)
			return false;
		if (load_image(w, inv, &why))
		{
			fail_now(w, inv, why);
			free(why);
		}
		else
			fx_start_run(w, inv);
		return true;
	}
	inv->bundle_dir = fx_bundle_path(w->cfg.cache_dir, inv->hash);
	if (inv->bundle_dir == NULL)
		return false;
	fx_start_run(w, inv);
	return true;
}

/* The fetched bundle is in place (or could not be): run who waited for it. */
static void
fetched(fx_worker *w, fx_fetch *f, char *why)
{
	fx_inv	   *waiting = f->waiting;

	free_fetch(w, f);
	while (waiting)
	{
		fx_inv	   *inv = waiting;

		waiting = inv->next_waiting;
		inv->next_waiting = NULL;
		if (why || !run_if_ready(w, inv))
			fail_now(w, inv, why ? why : "the code bundle vanished from the cache");
	}
	free(why);
}

/* Images are unpacked on the thread pool. */
typedef struct unpack_req
{
	uv_work_t	req;
	fx_worker  *w;
	fx_fetch   *f;
	char	   *dir;
	char	   *data;
	size_t		len;
	char	   *why;
} unpack_req;

static void
unpack_work(uv_work_t *req)
{
	unpack_req *u = (unpack_req *) req;
	fx_image	img;

	memset(&img, 0, sizeof(img));
	if (fx_image_prepare(u->dir, u->f->hash, u->data, u->len, &img, &u->why) == 0)
	{
		/* Mount points the sandbox needs, in a read-only image root. */
		static const char *const dirs[] = {"tmp", "proc", "dev", NULL};

		for (int i = 0; dirs[i]; i++)
		{
			char	   *p = fx_xasprintf("%s/%s", img.rootfs, dirs[i]);

			mkdir(p, 0755);
			free(p);
		}
		fx_image_free(&img);
	}
}

static void
unpack_done(uv_work_t *req, int status)
{
	unpack_req *u = (unpack_req *) req;

	(void) status;
	fetched(u->w, u->f, u->why);
	free(u->dir);
	free(u->data);
	free(u);
}

static void
bundle_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_worker  *w = fx_worker_of(db);
	fx_fetch   *f = arg;
	char	   *why = NULL;

	f->sent = false;
	if (res == NULL)
		return;					/* connection lost: fetched again on reconnect */
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
		PQgetisnull(res, 0, 0))
		why = fx_xasprintf("cannot fetch the code bundle: %s", fx_db_error(res));
	else if (f->image)
	{
		unpack_req *u = fx_xcalloc(1, sizeof(*u));

		u->w = w;
		u->f = f;
		u->dir = images_dir(w);
		u->len = PQgetlength(res, 0, 0);
		u->data = fx_xmalloc(u->len);
		memcpy(u->data, PQgetvalue(res, 0, 0), u->len);
		f->sent = true;			/* not again on a reconnect */
		uv_queue_work(&w->loop, &u->req, unpack_work, unpack_done);
		return;
	}
	else if (fx_bundle_unpack(w->cfg.cache_dir, f->hash, PQgetvalue(res, 0, 0),
							  PQgetlength(res, 0, 0), &why) == 0)
		why = NULL;
	fetched(w, f, why);
}

static void
send_fetch(fx_worker *w, fx_fetch *f)
{
	char		version[16];
	const char *params[2];

	if (f->sent || w->db.state != FX_DB_READY)
		return;
	f->sent = true;
	snprintf(version, sizeof(version), "%d", f->version);
	params[0] = f->fn;
	params[1] = version;
	fx_db_query_binary(&w->db, "SELECT fx.bundle($1, $2::int)", 2, params, bundle_cb, f);
}

/* Start a claimed invocation (active already): find its code, fetching it if needed. */
void
fx_start_claimed(fx_worker *w, fx_inv *inv)
{
	fx_fetch   *f;

	if (is_image(inv) && !w->cfg.exec.sandbox)
	{
		fail_now(w, inv, "container images run only in sandboxes (the worker runs with --no-sandbox)");
		return;
	}
	if (run_if_ready(w, inv))
		return;
	for (f = w->fetches; f; f = f->next)
		if (strcmp(f->hash, inv->hash) == 0)
			break;
	if (f == NULL)
	{
		f = fx_xcalloc(1, sizeof(*f));
		f->hash = fx_xstrdup(inv->hash);
		f->fn = fx_xstrdup(inv->fn);
		f->version = inv->version;
		f->image = is_image(inv);
		f->next = w->fetches;
		w->fetches = f;
	}
	inv->next_waiting = f->waiting;
	f->waiting = inv;
	send_fetch(w, f);
}

void
fx_start_refetch(fx_worker *w)
{
	for (fx_fetch *f = w->fetches; f; f = f->next)
		send_fetch(w, f);
}

void
fx_start_drop_waiting(fx_worker *w)
{
	while (w->fetches)
	{
		fx_fetch   *f = w->fetches;

		for (fx_inv *i = f->waiting, *next; i; i = next)
		{
			next = i->next_waiting;
			fx_worker_unlink(w, i);
			fx_inv_free(i);
		}
		free_fetch(w, f);
	}
	fx_secret_cache_drop_waiters(&w->secrets, drop_waiting);
}
