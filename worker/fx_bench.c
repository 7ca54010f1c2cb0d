/*
 * fx_bench.c: `fx bench-sandbox`, timing the sandbox path of the worker.
 *
 * Every launch goes through the code the worker uses: fx_proc_start() with
 * an fx_launch (fx_sandbox underneath) on a libuv loop, timed from the call
 * to on_exit (the process exited, was reaped, its stdout and stderr reached
 * end of file).  Modes:
 *
 *	latency (default)	N launches one after the other.  --prewarm 0: each
 *						launch creates its sandbox on the spot (cold);
 *						--prewarm K: after each launch the loop runs until
 *						the thread pool has refilled the pool of stems, so
 *						that every launch takes a prewarmed one.  The refill
 *						starts during the launch, as in the worker, unless
 *						--defer-refill holds the thread pool meanwhile.
 *	--rate SECONDS		as many launches as possible, C at a time.
 *	--roundtrip N		one session-mode process echoing protocol messages:
 *						N invoke/result round trips with it in a sandbox,
 *						N with it as a plain process, per CPU placement.
 *
 * --no-sandbox runs the command as a plain process through the same code,
 * to time a bare exec, or a bwrap or runc command line, with the same clock.
 * Lines beginning with "result " are key=value pairs for scripts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "fx_bench.h"
#include "fx_cgroup.h"
#include "fx_log.h"
#include "fx_proc.h"
#include "fx_sandbox.h"

#define MAX_CONCURRENCY 256
#define RT_WARMUP 100			/* round trips not recorded */

static const char usage_text[] =
"usage: fx bench-sandbox [OPTIONS] [--] [PROGRAM [ARGS...]]\n"
"Times launches of PROGRAM (default /usr/bin/true) in fx sandboxes; run as root.\n"
"  -n, --runs N          launches to time (default 300)\n"
"      --warmup N        launches before timing (default 5)\n"
"      --prewarm K       stems kept ready; 0 = cold launches (default 0)\n"
"      --settle MS       idle time between launches (default 0)\n"
"      --defer-refill    hold the thread pool while a launch is timed, so that\n"
"                        the refill of the pool runs after it, not beside it\n"
"      --rate SECONDS    throughput: launch for SECONDS, C at a time\n"
"  -c, --concurrency C   launches in flight with --rate (default 2)\n"
"      --roundtrip N     warm round trips with PROGRAM, a session-mode echo\n"
"      --bundle DIR      mounted at /fn (default: an empty directory)\n"
"      --no-sandbox      run PROGRAM as a plain process (a bundle's /fn/X is\n"
"                        run as DIR/X)\n"
"      --label NAME      names the variant in the result lines\n"
"Sandboxes get 128 MB, 256 pids, 1 CPU and a 64 MB /tmp, as the worker's default.\n";

typedef struct bench_opts
{
	int			runs;
	int			warmup;
	int			prewarm;
	int			settle_ms;
	double		rate_s;			/* > 0: throughput mode */
	int			concurrency;
	int			roundtrips;		/* > 0: round-trip mode */
	bool		sandbox;
	bool		defer_refill;	/* hold the thread pool while timing */
	const char *label;
	const char *bundle;
	char	  **argv;
} bench_opts;

typedef struct samples
{
	double	   *v;
	int			n;
	int			cap;
} samples;

typedef struct bench bench;

/* One launch in flight. */
typedef struct slot
{
	fx_proc		proc;
	bench	   *b;
	uint64_t	t0;
	uint64_t	t_exec;			/* fx_proc_start returned: it is running */
} slot;

struct bench
{
	uv_loop_t	loop;
	bench_opts	o;
	fx_launch	launch;
	fx_proc_spec spec;
	char	   *env[5];
	char	   *tmpdir;			/* stage and default bundle */
	char	   *bundle;			/* absolute */
	char	   *host_prog;		/* argv[0] as a plain process sees it */
	bool		sandbox_up;
	samples		ms;
	samples		exec_ms;		/* the part until the program runs */
	bool		recording;
	int			failures;
	int			prewarmed;
	bool		reported_error;
	int			held;			/* thread-pool threads held (--defer-refill) */
	uint64_t	deadline_ns;	/* --rate: stop launching after it */
	uint64_t	last_end_ns;
};

/* The session-mode echo of --roundtrip. */
typedef struct echo
{
	fx_proc		proc;
	bench	   *b;
	char	   *buf;			/* bytes from the socket, not yet a message */
	size_t		len;
	size_t		cap;
	int			sent;
	int			total;
	uint64_t	t0;
	bool		ready;
	bool		failed;
	int			cpu_fn;			/* -1: anywhere */
	int			cpu_me;
	samples		us;
} echo;

static void
samples_add(samples *s, double v)
{
	if (s->n == s->cap)
	{
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = fx_xrealloc(s->v, s->cap * sizeof(double));
	}
	s->v[s->n++] = v;
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples. */
static double
pct(const samples *s, double p)
{
	int			rank = (int) (p * s->n);

	if (rank < p * s->n)
		rank++;
	return s->v[rank < 1 ? 0 : rank - 1];
}

static double
mean(const samples *s)
{
	double		sum = 0;

	for (int i = 0; i < s->n; i++)
		sum += s->v[i];
	return s->n ? sum / s->n : 0;
}

/* " exec_p50_ms=.. exec_p99_ms=..": launch call to running program */
static void
print_exec(samples *s)
{
	if (s->n == 0)
		return;
	qsort(s->v, s->n, sizeof(double), cmp_double);
	printf(" exec_p50_ms=%.3f exec_p99_ms=%.3f", pct(s, 0.5), pct(s, 0.99));
}

/* "n=.. p50_ms=.. p99_ms=.. mean_ms=.. min_ms=.. max_ms=.." (sorts s) */
static void
print_stats(samples *s, const char *unit)
{
	if (s->n == 0)
	{
		printf(" n=0");
		return;
	}
	qsort(s->v, s->n, sizeof(double), cmp_double);
	printf(" n=%d p50_%s=%.3f p99_%s=%.3f mean_%s=%.3f min_%s=%.3f max_%s=%.3f",
		   s->n, unit, pct(s, 0.5), unit, pct(s, 0.99), unit, mean(s), unit,
		   s->v[0], unit, s->v[s->n - 1]);
}

/* "v1", "v2", "none" (the sandboxes' limits), or "n/a" without sandboxes. */
static const char *
cgroups_used(bool sandbox)
{
	const char *name = fx_cgroup_mode_name();

	if (!sandbox)
		return "n/a";
	if (strcmp(name, "cgroup v1") == 0)
		return "v1";
	return strcmp(name, "cgroup v2") == 0 ? "v2" : "none";
}

/* ---------------------------------------------------------------------
 * Launches: latency and throughput
 * --------------------------------------------------------------------- */

static void slot_closed(fx_proc *p);

/*
 * --defer-refill: one blocking job per thread-pool thread, queued before
 * the launch (the queue is first in, first out), so that the refill the
 * launch queues runs only after the launch has been timed.
 */
static uv_sem_t hold_sem;

static void
hold_work(uv_work_t *req)
{
	uv_sem_wait(&hold_sem);
}

static void
hold_done(uv_work_t *req, int status)
{
	free(req);
}

static void
hold_pool(bench *b)
{
	const char *v = getenv("UV_THREADPOOL_SIZE");
	int			n = v && atoi(v) > 0 ? atoi(v) : 4;	/* libuv's default */

	for (b->held = 0; b->held < n && b->held < 1024; b->held++)
		uv_queue_work(&b->loop, fx_xcalloc(1, sizeof(uv_work_t)), hold_work, hold_done);
}

static void
release_pool(bench *b)
{
	for (; b->held > 0; b->held--)
		uv_sem_post(&hold_sem);
}

static void
slot_exited(fx_proc *p)
{
	slot	   *s = p->owner;
	bench	   *b = s->b;

	b->last_end_ns = fx_mono_ns();
	release_pool(b);
	if (b->recording)
	{
		samples_add(&b->ms, (b->last_end_ns - s->t0) / 1e6);
		samples_add(&b->exec_ms, (s->t_exec - s->t0) / 1e6);
		b->prewarmed += p->prewarmed;
		if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0)
		{
			char	   *d = fx_proc_describe(p->status);

			if (!b->reported_error)
				fprintf(stderr, "fx bench-sandbox: %s: %s\n", b->spec.argv[0], d);
			b->reported_error = true;
			b->failures++;
			free(d);
		}
	}
	fx_proc_close(p);
}

static int
slot_start(slot *s)
{
	bench	   *b = s->b;
	char	   *why = NULL;
	int			rc;

	memset(&s->proc, 0, sizeof(s->proc));
	s->proc.owner = s;
	s->proc.on_exit = slot_exited;
	s->proc.on_closed = slot_closed;
	s->t0 = fx_mono_ns();
	rc = fx_proc_start(&b->loop, &b->spec, &s->proc, &why);
	if (rc < 0)
	{
		if (!b->reported_error)
			fprintf(stderr, "fx bench-sandbox: %s\n", why);
		b->reported_error = true;
		b->failures++;
		free(why);
		return rc;
	}
	s->t_exec = fx_mono_ns();
	fx_proc_write_stdin(&s->proc, NULL, 0);
	return 0;
}

/* --rate: the slot starts again until the deadline. */
static void
slot_closed(fx_proc *p)
{
	slot	   *s = p->owner;

	if (s->b->deadline_ns && fx_mono_ns() < s->b->deadline_ns)
		slot_start(s);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * One launch per uv_run: it returns when the process is closed and no
 * thread-pool work is left, i.e. the pool of stems is full again.
 */
static int
run_latency(bench *b)
{
	slot		s = {.b = b};
	const char *mode = !b->o.sandbox ? "plain" : b->o.prewarm > 0 ? "prewarmed" : "cold";
	const char *refill = strcmp(mode, "prewarmed") != 0 ? "n/a"
		: b->o.defer_refill ? "deferred" : "concurrent";

	for (int i = 0; i < b->o.warmup + b->o.runs; i++)
	{
		b->recording = i >= b->o.warmup;
		if (b->o.defer_refill)
			hold_pool(b);
		if (slot_start(&s) < 0)
			release_pool(b);
		uv_run(&b->loop, UV_RUN_DEFAULT);
		if (b->o.settle_ms > 0)
			sleep_ms(b->o.settle_ms);
		if (b->failures > 0 && b->ms.n == 0 && i >= b->o.warmup + 2)
			break;				/* it never works: do not try 300 times */
	}
	printf("result mode=%s variant=%s", mode, b->o.label);
	print_stats(&b->ms, "ms");
	print_exec(&b->exec_ms);
	printf(" prewarmed=%d failures=%d cgroups=%s refill=%s\n", b->prewarmed, b->failures,
		   cgroups_used(b->o.sandbox), refill);
	return b->failures > 0 ? 1 : 0;
}

static int
run_rate(bench *b)
{
	int			c = b->o.concurrency;
	slot	   *slots = fx_xcalloc(c, sizeof(slot));
	uint64_t	start = fx_mono_ns();
	double		secs;

	b->recording = true;
	b->deadline_ns = start + (uint64_t) (b->o.rate_s * 1e9);
	for (int i = 0; i < c; i++)
	{
		slots[i].b = b;
		slot_start(&slots[i]);
	}
	uv_run(&b->loop, UV_RUN_DEFAULT);
	secs = b->ms.n ? (b->last_end_ns - start) / 1e9 : b->o.rate_s;
	printf("result mode=rate variant=%s concurrency=%d prewarm=%d seconds=%.2f "
		   "per_second=%.1f", b->o.label, c, b->o.prewarm, secs, b->ms.n / secs);
	print_stats(&b->ms, "ms");
	printf(" prewarmed=%d failures=%d cgroups=%s\n", b->prewarmed, b->failures,
		   cgroups_used(b->o.sandbox));
	free(slots);
	return b->failures > 0 ? 1 : 0;
}

/* ---------------------------------------------------------------------
 * Warm round trips over the protocol socket
 * --------------------------------------------------------------------- */

static void
set_cpu(pid_t pid, int cpu)
{
	cpu_set_t	set;
	long		n = sysconf(_SC_NPROCESSORS_ONLN);

	CPU_ZERO(&set);
	for (int i = 0; i < n; i++)
		if (cpu < 0 || i == cpu)
			CPU_SET(i, &set);
	if (sched_setaffinity(pid, sizeof(set), &set) < 0)
		fprintf(stderr, "fx bench-sandbox: cannot pin %d: %s\n", (int) pid, strerror(errno));
}

/* The function's host pid: the sandbox's PID 1 has it as its only child. */
static pid_t
function_pid(const echo *e)
{
	char		path[64];
	FILE	   *f;
	int			pid = -1;

	if (e->proc.stem == NULL)
		return e->proc.pid;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int) e->proc.pid,
			 (int) e->proc.pid);
	f = fopen(path, "re");
	if (f == NULL || fscanf(f, "%d", &pid) != 1)
		pid = -1;
	if (f)
		fclose(f);
	return pid;
}

static void
echo_send(echo *e)
{
	char		msg[128];
	int			len = snprintf(msg + 4, sizeof(msg) - 4,
							   "{\"type\":\"invoke\",\"id\":%d,\"args\":{\"i\":%d}}",
							   e->sent + 1, e->sent + 1);

	msg[0] = (char) (len >> 24);
	msg[1] = (char) (len >> 16);
	msg[2] = (char) (len >> 8);
	msg[3] = (char) len;
	e->sent++;
	e->t0 = fx_mono_ns();
	if (fx_proc_send(&e->proc, msg, len + 4) < 0)
	{
		e->failed = true;
		fx_proc_close(&e->proc);
	}
}

static void
echo_ready(echo *e)
{
	pid_t		fn = function_pid(e);

	e->ready = true;
	if (fn > 0)
		set_cpu(fn, e->cpu_fn);
	set_cpu(0, e->cpu_me);
	echo_send(e);
}

/* One whole message: "ready" first, then one "result" per invoke. */
static void
echo_message(echo *e, const char *body, size_t len)
{
	bool		result = memmem(body, len, "\"result\"", 8) != NULL;

	if (!e->ready)
	{
		if (memmem(body, len, "\"ready\"", 7) == NULL)
			e->failed = true;
		echo_ready(e);
		return;
	}
	if (!result)
		e->failed = true;
	if (e->sent > RT_WARMUP)
		samples_add(&e->us, (fx_mono_ns() - e->t0) / 1e3);
	if (e->sent == e->total + RT_WARMUP || e->failed)
		fx_proc_close(&e->proc);
	else
		echo_send(e);
}

static void
echo_bytes(fx_proc *p, const char *buf, size_t n)
{
	echo	   *e = p->owner;
	size_t		off = 0;

	if (e->len + n > e->cap)
	{
		e->cap = (e->len + n) * 2;
		e->buf = fx_xrealloc(e->buf, e->cap);
	}
	memcpy(e->buf + e->len, buf, n);
	e->len += n;
	while (!p->closing && e->len - off >= 4)
	{
		const unsigned char *h = (const unsigned char *) e->buf + off;
		size_t		len = ((size_t) h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3];

		if (e->len - off - 4 < len)
			break;
		echo_message(e, e->buf + off + 4, len);
		off += 4 + len;
	}
	memmove(e->buf, e->buf + off, e->len - off);
	e->len -= off;
}

/* The echo went away before its last answer. */
static void
echo_lost(fx_proc *p)
{
	echo	   *e = p->owner;

	if (!p->closing)
	{
		char	   *d = fx_proc_describe(p->status);

		fprintf(stderr, "fx bench-sandbox: the echo ended early%s%s\n",
				p->exited ? ": " : "", p->exited ? d : "");
		free(d);
		e->failed = true;
		fx_proc_close(p);
	}
}

static void
echo_stderr(fx_proc *p, const char *buf, size_t n)
{
	fwrite(buf, 1, n, stderr);
}

/* N round trips with the echo sandboxed or not; 0 or -1. */
static int
echo_run(bench *b, bool sandboxed, int cpu_fn, int cpu_me, samples *us)
{
	echo		e;
	char	   *why = NULL;
	char	   *argv0 = b->spec.argv[0];

	memset(&e, 0, sizeof(e));
	e.b = b;
	e.total = b->o.roundtrips;
	e.cpu_fn = cpu_fn;
	e.cpu_me = cpu_me;
	e.proc.owner = &e;
	e.proc.on_sock = echo_bytes;
	e.proc.on_sock_eof = echo_lost;
	e.proc.on_exit = echo_lost;
	e.proc.on_err = echo_stderr;
	b->spec.session = b->launch.session = true;
	b->spec.sandbox = sandboxed ? &b->launch : NULL;
	b->spec.cwd = sandboxed ? NULL : b->o.bundle;
	if (!sandboxed)
		b->spec.argv[0] = b->host_prog;
	if (fx_proc_start(&b->loop, &b->spec, &e.proc, &why) < 0)
	{
		fprintf(stderr, "fx bench-sandbox: %s\n", why);
		free(why);
		b->spec.argv[0] = argv0;
		return -1;
	}
	b->spec.argv[0] = argv0;
	uv_run(&b->loop, UV_RUN_DEFAULT);
	set_cpu(0, -1);
	free(e.buf);
	*us = e.us;
	return e.failed || e.us.n != e.total ? -1 : 0;
}

static int
run_roundtrip(bench *b)
{
	static const struct
	{
		const char *name;
		int			fn;
		int			me;
	}			placements[] = {{"any", -1, -1}, {"same", 0, 0}, {"cross", 1, 0}};
	int			nplace = sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 3 : 1;
	int			rc = 0;

	for (int i = 0; i < nplace; i++)
	{
		samples		bare = {0},
					sbx = {0};
		double		bare_mean,
					bare_p50;

		if (echo_run(b, false, placements[i].fn, placements[i].me, &bare) < 0 ||
			echo_run(b, true, placements[i].fn, placements[i].me, &sbx) < 0)
			rc = 1;
		bare_mean = mean(&bare);
		printf("result mode=roundtrip variant=bare cpu=%s", placements[i].name);
		print_stats(&bare, "us");
		bare_p50 = bare.n ? pct(&bare, 0.5) : 0;
		printf("\nresult mode=roundtrip variant=%s cpu=%s", b->o.label, placements[i].name);
		print_stats(&sbx, "us");
		printf(" cgroups=%s\n", cgroups_used(true));
		if (bare.n && sbx.n)
			printf("result mode=roundtrip-overhead variant=%s cpu=%s "
				   "mean_us=%.3f p50_us=%.3f\n",
				   b->o.label, placements[i].name, mean(&sbx) - bare_mean,
				   pct(&sbx, 0.5) - bare_p50);
		free(bare.v);
		free(sbx.v);
	}
	return rc;
}

/* ---------------------------------------------------------------------
 * Set-up and clean-up
 * --------------------------------------------------------------------- */

static int
positive_arg(const char *opt, const char *v, int min)
{
	char	   *end;
	long		n = strtol(v, &end, 10);

	if (*end || n < min || n > 100000000)
	{
		fprintf(stderr, "fx bench-sandbox: %s must be a whole number >= %d, not \"%s\"\n",
				opt, min, v);
		exit(2);
	}
	return (int) n;
}

/* 0, or 2 after a usage error, or -1 after --help. */
static int
parse_args(int argc, char **argv, bench_opts *o)
{
	static struct option opts[] = {
		{"runs", required_argument, NULL, 'n'}, {"warmup", required_argument, NULL, 'w'},
		{"prewarm", required_argument, NULL, 'P'}, {"settle", required_argument, NULL, 's'},
		{"rate", required_argument, NULL, 'r'}, {"concurrency", required_argument, NULL, 'c'},
		{"roundtrip", required_argument, NULL, 'R'}, {"bundle", required_argument, NULL, 'b'},
		{"no-sandbox", no_argument, NULL, 'N'}, {"label", required_argument, NULL, 'l'},
		{"defer-refill", no_argument, NULL, 'D'}, {"help", no_argument, NULL, 'h'}, {0}
	};
	int			c;

	while ((c = getopt_long(argc, argv, "+hn:c:", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'n':
				o->runs = positive_arg("--runs", optarg, 1);
				break;
			case 'w':
				o->warmup = positive_arg("--warmup", optarg, 0);
				break;
			case 'P':
				o->prewarm = positive_arg("--prewarm", optarg, 0);
				break;
			case 's':
				o->settle_ms = positive_arg("--settle", optarg, 0);
				break;
			case 'r':
				o->rate_s = positive_arg("--rate", optarg, 1);
				break;
			case 'c':
				o->concurrency = positive_arg("--concurrency", optarg, 1);
				break;
			case 'R':
				o->roundtrips = positive_arg("--roundtrip", optarg, 1);
				break;
			case 'b':
				o->bundle = optarg;
				break;
			case 'N':
				o->sandbox = false;
				break;
			case 'l':
				o->label = optarg;
				break;
			case 'D':
				o->defer_refill = true;
				break;
			case 'h':
				printf("%s", usage_text);
				return -1;
			default:
				fprintf(stderr, "%s", usage_text);
				return 2;
		}
	}
	if (o->concurrency > MAX_CONCURRENCY)
	{
		fprintf(stderr, "fx bench-sandbox: --concurrency is at most %d\n", MAX_CONCURRENCY);
		return 2;
	}
	if (o->roundtrips && !o->sandbox)
	{
		fprintf(stderr, "fx bench-sandbox: --roundtrip compares with and without a sandbox;"
				" leave out --no-sandbox\n");
		return 2;
	}
	o->argv = argv + optind;
	return 0;
}

/* A directory the sandbox's users may enter (mkdtemp makes 0700). */
static char *
make_tmpdir(void)
{
	char	   *dir = fx_xstrdup("/tmp/fx-bench-XXXXXX");

	if (mkdtemp(dir) == NULL || chmod(dir, 0755) < 0)
	{
		fprintf(stderr, "fx bench-sandbox: cannot create %s: %s\n", dir, strerror(errno));
		free(dir);
		return NULL;
	}
	return dir;
}

/* Program, bundle, environment and limits, as the worker would set them. */
static int
setup(bench *b)
{
	static char *default_argv[] = {"/usr/bin/true", NULL};
	const char *prog;
	int			argc = 0;

	if ((b->tmpdir = make_tmpdir()) == NULL)
		return -1;
	if (b->o.bundle == NULL)
	{
		b->bundle = fx_xasprintf("%s/bundle", b->tmpdir);
		mkdir(b->bundle, 0755);
	}
	else if ((b->bundle = realpath(b->o.bundle, NULL)) == NULL)
	{
		fprintf(stderr, "fx bench-sandbox: %s: %s\n", b->o.bundle, strerror(errno));
		return -1;
	}
	b->o.bundle = b->bundle;
	if (b->o.argv[0] == NULL)
		b->o.argv = default_argv;
	prog = b->o.argv[0];
	b->host_prog = strncmp(prog, "/fn/", 4) == 0
		? fx_xasprintf("%s/%s", b->o.bundle, prog + 4) : fx_xstrdup(prog);
	b->env[0] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	b->env[1] = b->o.roundtrips ? "FX_MODE=session" : "FX_MODE=simple";
	b->env[2] = "FX_SOCKET_FD=3";
	b->env[3] = b->o.roundtrips ? "FX_FN=echo" : NULL;
	b->launch.bundle_dir = b->o.bundle;
	b->launch.argv = b->o.argv;
	b->launch.envp = b->env;
	b->launch.memory_mb = 128;
	b->launch.pids = 256;
	b->launch.tmp_mb = 64;
	b->launch.cpu = 1.0;
	b->launch.uid = b->launch.gid = -1;
	b->spec.argv = b->o.argv;
	b->spec.envp = b->env;
	b->spec.sandbox = b->o.sandbox ? &b->launch : NULL;
	if (!b->o.sandbox)
	{
		while (b->o.argv[argc])
			argc++;
		b->spec.argv = fx_xcalloc(argc + 1, sizeof(char *));
		memcpy(b->spec.argv, b->o.argv, sizeof(char *) * argc);
		b->spec.argv[0] = b->host_prog;
		b->spec.cwd = b->o.bundle;
	}
	return 0;
}

static int
start_sandboxes(bench *b)
{
	fx_sandbox_config cfg;
	char	   *stage = fx_xasprintf("%s/stage", b->tmpdir);
	char	   *why = NULL;

	cfg.stage_dir = stage;
	cfg.prewarm = b->o.prewarm;
	if (fx_sandbox_init(&b->loop, &cfg, &why) < 0)
	{
		fprintf(stderr, "fx bench-sandbox: cannot create sandboxes: %s\n", why);
		free(why);
		free(stage);
		return -1;
	}
	free(stage);
	b->sandbox_up = true;
	uv_run(&b->loop, UV_RUN_DEFAULT);	/* fill the pool */
	return 0;
}

static void
cleanup(bench *b)
{
	char	   *dir;

	if (b->sandbox_up)
	{
		fx_sandbox_shutdown();
		uv_run(&b->loop, UV_RUN_DEFAULT);
	}
	if (uv_loop_close(&b->loop) != 0)
		fprintf(stderr, "fx bench-sandbox: event loop did not close cleanly\n");
	if (b->tmpdir)
	{
		dir = fx_xasprintf("%s/stage", b->tmpdir);
		rmdir(dir);
		free(dir);
		dir = fx_xasprintf("%s/bundle", b->tmpdir);
		rmdir(dir);
		free(dir);
		rmdir(b->tmpdir);
	}
	if (b->spec.argv != b->o.argv)
		free(b->spec.argv);
	free(b->host_prog);
	free(b->bundle);
	free(b->tmpdir);
	free(b->ms.v);
	free(b->exec_ms.v);
}

int
fx_cli_bench_sandbox(int argc, char **argv)
{
	bench		b;
	int			rc;

	memset(&b, 0, sizeof(b));
	b.o.runs = 300;
	b.o.warmup = 5;
	b.o.concurrency = 2;
	b.o.sandbox = true;
	b.o.label = "fx";
	rc = parse_args(argc, argv, &b.o);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	if (geteuid() != 0)
	{
		fprintf(stderr, "fx bench-sandbox: run it as root (cgroups and uid ranges)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&b.loop);
	uv_sem_init(&hold_sem, 0);
	rc = setup(&b);
	if (rc == 0 && (b.o.sandbox || b.o.roundtrips))
		rc = start_sandboxes(&b);
	if (rc == 0)
		rc = b.o.roundtrips ? run_roundtrip(&b)
			: b.o.rate_s > 0 ? run_rate(&b) : run_latency(&b);
	else
		rc = 1;
	fflush(stdout);
	cleanup(&b);
	uv_sem_destroy(&hold_sem);
	return rc;
}
