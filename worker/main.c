/*
 * main.c: the `fx` command: dispatch to subcommands.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fx_bench.h"
#include "fx_cli.h"
#include "fx_log.h"
#include "fx_worker.h"

#ifndef FX_PYTHON_DIR
#define FX_PYTHON_DIR "/usr/local/lib/fx/python"
#endif

static const char usage_text[] =
"fx: serverless functions inside PostgreSQL\n"
"\n"
"usage: fx COMMAND [ARGS]\n"
"  up                         start the embedded default (private PostgreSQL + worker)\n"
"  down                       stop it\n"
"  deploy NAME DIR [--cmd ..] store DIR as a new version of function NAME\n"
"  invoke NAME [JSON]         run NAME and print its result (--async: enqueue, print id)\n"
"  logs ID [-f]               print an invocation's log lines\n"
"  ls                         list functions\n"
"  ps                         list queued, running and recent invocations\n"
"  wf COMMAND [ID]            workflows: ls, show, cancel, resume, fork\n"
"  worker                     run a worker in the foreground\n"
"  psql [ARGS]                psql against the database fx is using\n"
"\n"
"The database is --db CONNINFO, else $FX_DB, else the PG* variables, else the\n"
"embedded default of \"fx up\".  \"fx COMMAND --help\" describes a command.\n";

static const char worker_usage[] =
"usage: fx worker [--db CONNINFO | --db-file FILE] [--concurrency N] [--cache DIR]\n"
"                 [--poll-ms N] [--backoff-ms N] [--warm-ttl SECONDS] [--max-sessions N]\n"
"                 [--max-log-bytes N] [--log-level debug|info|warning|error]\n"
"                 [--prewarm N] [--stage DIR] [--no-sandbox]\n"
"                 [--prefetch N] [--batch N] [--lease-slack-ms N] [--wait-grace-ms N]\n"
"                 [--http ADDR]\n"
"Claims queued invocations and runs them until SIGTERM (drain) or a second\n"
"SIGTERM/SIGINT (give back running invocations and exit).  Functions run in\n"
"sandboxes the worker builds (namespaces, cgroups, seccomp); --prewarm keeps N\n"
"of them ready (default 2); --no-sandbox runs functions as plain processes.\n"
"Each round trip records what finished and claims up to --batch (256) more,\n"
"keeping up to --prefetch (4 x concurrency) claimed ahead of free slots; while\n"
"all slots are busy and a round waits claimed, it claims once half that room\n"
"is free.\n"
"Every --poll-ms (2000) it requeues the invocations of lost workers and, with a\n"
"free slot, looks in the same statement for work that no NOTIFY announced: an\n"
"idle worker costs the database one transaction a tick, and after three ticks\n"
"that found nothing it ticks every 2 x --poll-ms.  A lease lasts the\n"
"function's timeout plus --lease-slack-ms (30000); then another worker may take\n"
"over.\n"
"A workflow step that waits (sleep, recv, a child) keeps its sandbox for at\n"
"most --wait-grace-ms (1000); then the workflow is queued to replay later.\n"
"--http ADDR (127.0.0.1:8080, :8080 for all addresses, [::1]:8080) serves\n"
"POST /fn/NAME, GET /invocations/ID (bearer tokens from fx_token_create) and\n"
"GET /metrics (Prometheus).\n"
"--db refuses a connection string with a password (other users of the host\n"
"see command lines): use PGPASSWORD, ~/.pgpass (PGPASSFILE), $FX_DB, or\n"
"--db-file FILE, a file holding the connection string, which only its owner\n"
"may read if it holds a password.\n";

static char *
default_cache(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");

	if (geteuid() == 0)
		return fx_xstrdup("/var/cache/fx/bundles");
	if (xdg && xdg[0])
		return fx_xasprintf("%s/fx/bundles", xdg);
	return fx_xasprintf("%s/.cache/fx/bundles", home ? home : "/tmp");
}

/*
 * path, made absolute against the working directory (freed): the sandbox
 * mounts bundles from the cache and stage directories after it has left
 * the worker's working directory, so a relative --cache failed every
 * sandboxed attempt ("cannot mount the bundle at /fn").
 */
static char *
absolute(char *path)
{
	char	   *cwd;
	char	   *abs;

	if (path[0] == '/' || (cwd = getcwd(NULL, 0)) == NULL)
		return path;
	abs = fx_xasprintf("%s/%s", cwd, path);
	free(cwd);
	free(path);
	return abs;
}

static int
positive(const char *opt, const char *v)
{
	char	   *end;
	long		n = strtol(v, &end, 10);

	if (*end || n <= 0 || n > 1000000000)
	{
		fprintf(stderr, "fx: %s must be a positive whole number, not \"%s\"\n", opt, v);
		exit(2);
	}
	return (int) n;
}

static int
cmd_worker(int argc, char **argv)
{
	static struct option opts[] = {
		{"db", required_argument, NULL, 'd'}, {"db-file", required_argument, NULL, 'K'},
		{"concurrency", required_argument, NULL, 'c'},
		{"cache", required_argument, NULL, 'C'}, {"poll-ms", required_argument, NULL, 'p'},
		{"backoff-ms", required_argument, NULL, 'b'}, {"warm-ttl", required_argument, NULL, 'w'},
		{"max-sessions", required_argument, NULL, 's'},
		{"max-log-bytes", required_argument, NULL, 'l'},
		{"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
		{"no-sandbox", no_argument, NULL, 'N'}, {"prewarm", required_argument, NULL, 'P'},
		{"stage", required_argument, NULL, 'S'}, {"prefetch", required_argument, NULL, 'F'},
		{"batch", required_argument, NULL, 'B'},
		{"lease-slack-ms", required_argument, NULL, 'E'},
		{"wait-grace-ms", required_argument, NULL, 'G'},
		{"http", required_argument, NULL, 'H'}, {0}
	};
	fx_worker_config cfg;
	char	   *stage = NULL;
	const char *db = NULL;
	const char *db_file = NULL;
	char	   *cache = NULL;
	char	   *conninfo;
	int			c;
	int			rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.concurrency = 16;
	cfg.prefetch = -1;
	cfg.batch = 256;
	cfg.poll_ms = 2000;
	cfg.claim_every = 3;
	cfg.lease_slack_ms = 30000;
	cfg.wait_grace_ms = 1000;
	cfg.backoff_ms = 1000;
	cfg.exec.max_log_bytes = 64 * 1024;
	cfg.exec.max_result_bytes = 6 * 1024 * 1024;
	cfg.exec.warm_ttl_ms = 300 * 1000;
	cfg.exec.max_sessions = 64;
	cfg.exec.sandbox = true;
	cfg.prewarm = 2;
	cfg.exec.python_path = access(FX_PYTHON_DIR "/fx.py", R_OK) == 0 ? FX_PYTHON_DIR
		: FX_SOURCE_PYTHON_DIR;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				db = optarg;
				break;
			case 'K':
				db_file = optarg;
				break;
			case 'c':
				cfg.concurrency = positive("--concurrency", optarg);
				break;
			case 'C':
				free(cache);
				cache = fx_xstrdup(optarg);
				break;
			case 'p':
				cfg.poll_ms = positive("--poll-ms", optarg);
				break;
			case 'E':
				cfg.lease_slack_ms = positive("--lease-slack-ms", optarg);
				break;
			case 'G':
				cfg.wait_grace_ms = positive("--wait-grace-ms", optarg);
				break;
			case 'b':
				cfg.backoff_ms = positive("--backoff-ms", optarg);
				break;
			case 'w':
				cfg.exec.warm_ttl_ms = positive("--warm-ttl", optarg) * 1000;
				break;
			case 's':
				cfg.exec.max_sessions = positive("--max-sessions", optarg);
				break;
			case 'l':
				cfg.exec.max_log_bytes = positive("--max-log-bytes", optarg);
				break;
			case 'L':
				if (strcmp(optarg, "debug") == 0)
					fx_log_min = FX_LOG_DEBUG;
				else if (strcmp(optarg, "info") == 0)
					fx_log_min = FX_LOG_INFO;
				else if (strcmp(optarg, "warning") == 0)
					fx_log_min = FX_LOG_WARN;
				else if (strcmp(optarg, "error") == 0)
					fx_log_min = FX_LOG_ERROR;
				else
				{
					fprintf(stderr, "fx: unknown log level \"%s\"\n", optarg);
					return 2;
				}
				break;
			case 'N':
				cfg.exec.sandbox = false;
				break;
			case 'P':
				cfg.prewarm = atoi(optarg);
				if (cfg.prewarm < 0 || cfg.prewarm > 1000)
				{
					fprintf(stderr, "fx: --prewarm must be from 0 to 1000, not \"%s\"\n", optarg);
					return 2;
				}
				break;
			case 'F':
				cfg.prefetch = atoi(optarg);
				if (cfg.prefetch < 0 || cfg.prefetch > 100000)
				{
					fprintf(stderr, "fx: --prefetch must be from 0 to 100000, not \"%s\"\n", optarg);
					return 2;
				}
				break;
			case 'B':
				cfg.batch = positive("--batch", optarg);
				break;
			case 'H':
				cfg.http_addr = optarg;
				break;
			case 'S':
				free(stage);
				stage = fx_xstrdup(optarg);
				break;
			case 'h':
				printf("%s", worker_usage);
				return 0;
			default:
				fprintf(stderr, "%s", worker_usage);
				return 2;
		}
	}
	if (optind != argc)
	{
		fprintf(stderr, "%s", worker_usage);
		return 2;
	}
	if (db && db_file)
	{
		fprintf(stderr, "fx: give --db or --db-file, not both\n");
		return 2;
	}
	fx_cli_check_db(db);
	conninfo = db_file ? fx_cli_db_file(db_file) : fx_cli_conninfo(db);
	if (cache == NULL)
		cache = default_cache();
	cache = absolute(cache);
	if (stage)
		stage = absolute(stage);
	if (cfg.prefetch < 0)
		cfg.prefetch = 4 * cfg.concurrency;
	if (stage == NULL)
	{
		char	   *slash;

		stage = fx_xasprintf("%s", cache);
		slash = strrchr(stage, '/');
		if (slash && slash != stage)
			*slash = '\0';
		{
			char	   *s = fx_xasprintf("%s/stage", stage);

			free(stage);
			stage = s;
		}
	}
	cfg.conninfo = conninfo;
	cfg.cache_dir = cache;
	cfg.stage_dir = stage;
	rc = fx_worker_run(&cfg);
	free(conninfo);
	free(cache);
	free(stage);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct
	{
		const char *name;
		int			(*fn) (int argc, char **argv);
	}			cmds[] = {
		{"up", fx_cli_up}, {"down", fx_cli_down}, {"deploy", fx_cli_deploy},
		{"invoke", fx_cli_invoke}, {"logs", fx_cli_logs}, {"ls", fx_cli_ls},
		{"ps", fx_cli_ps}, {"wf", fx_cli_wf}, {"worker", cmd_worker}, {"psql", fx_cli_psql},
		{"bench-sandbox", fx_cli_bench_sandbox},	/* bench/sandbox.sh */
	};

	setvbuf(stderr, NULL, _IOLBF, 0);
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
		strcmp(argv[1], "help") == 0)
	{
		printf("%s", usage_text);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "fx: unknown command \"%s\"\n\n%s", argv[1], usage_text);
	return 2;
}
