/*
 * fx_home.c: the embedded default, `fx up` and `fx down`.
 *
 * `fx up` keeps a private PostgreSQL cluster in FX_HOME (default
 * ~/.local/share/fx, or /var/lib/fx for root): data/ is the cluster, run/
 * holds its only socket (no TCP), log/ its server log, database "fx" has
 * the extension, and one `fx worker` runs in the background (worker.pid,
 * worker.log), logged in as fx_embedded_worker: a member of fx_worker, not a
 * superuser, as README.md's security model asks of every worker.  The socket
 * directory is private to the owner, so the cluster trusts local
 * connections.  As root, PostgreSQL runs as the "postgres" user, since it
 * refuses to run as root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "fx_bundle.h"
#include "fx_cli.h"
#include "fx_log.h"

#define FX_PORT "5432"
#define WORKER_ROLE "fx_embedded_worker"

char *
fx_home(void)
{
	const char *env = getenv("FX_HOME");
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");

	if (env && env[0])
		return fx_xstrdup(env);
	if (geteuid() == 0)
		return fx_xstrdup("/var/lib/fx");
	if (xdg && xdg[0])
		return fx_xasprintf("%s/fx", xdg);
	return fx_xasprintf("%s/.local/share/fx", home ? home : "/tmp");
}

static char *
embedded_conninfo_as(const char *home, const char *dbname, const char *user)
{
	return fx_xasprintf("host=%s/run port=" FX_PORT " dbname=%s user=%s", home, dbname, user);
}

static char *
embedded_conninfo(const char *home, const char *dbname)
{
	return embedded_conninfo_as(home, dbname, "postgres");
}

char *
fx_cli_conninfo(const char *db_opt)
{
	static const char *const pgvars[] = {"PGHOST", "PGDATABASE", "PGPORT", "PGSERVICE", "PGUSER", NULL};
	const char *env = getenv("FX_DB");
	char	   *home;
	char	   *sock;
	struct stat st;

	if (db_opt)
		return fx_xstrdup(db_opt);
	if (env && env[0])
		return fx_xstrdup(env);
	for (int i = 0; pgvars[i]; i++)
		if (getenv(pgvars[i]))
			return fx_xstrdup("");
	home = fx_home();
	sock = fx_xasprintf("%s/run/.s.PGSQL." FX_PORT, home);
	if (stat(sock, &st) == 0)
	{
		char	   *c = embedded_conninfo(home, "fx");

		free(sock);
		free(home);
		return c;
	}
	free(sock);
	free(home);
	return fx_xstrdup("");
}

static char *
pg_bindir(void)
{
	const char *env = getenv("FX_PG_BINDIR");
	FILE	   *p;
	char		buf[1024] = "";

	if (env && env[0])
		return fx_xstrdup(env);
	p = popen("pg_config --bindir 2>/dev/null", "r");
	if (p)
	{
		if (fgets(buf, sizeof(buf), p) == NULL)
			buf[0] = '\0';
		pclose(p);
	}
	buf[strcspn(buf, "\n")] = '\0';
	return fx_xstrdup(buf[0] ? buf : "/usr/lib/postgresql/15/bin");
}

/* As root, PostgreSQL's programs run as the "postgres" user. */
static struct passwd *
server_user(void)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return NULL;
	pw = getpwnam("postgres");
	if (pw == NULL)
	{
		fprintf(stderr, "fx: running as root needs a \"postgres\" user to run PostgreSQL as\n");
		exit(1);
	}
	return pw;
}

/* Run argv (as the server user when root); returns its exit status. */
static int
run(char *const argv[], const char *log_path)
{
	struct passwd *pw = server_user();
	pid_t		pid;
	int			status;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0)
	{
		if (pw && (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0))
			_exit(126);
		if (log_path)
		{
			int			fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0640);

			if (fd >= 0)
			{
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
give_to_server(const char *path)
{
	struct passwd *pw = server_user();

	if (pw && chown(path, pw->pw_uid, pw->pw_gid) < 0)
		fprintf(stderr, "fx: cannot give \"%s\" to postgres: %s\n", path, strerror(errno));
}

static int
ensure_cluster(const char *home, const char *bindir)
{
	char	   *data = fx_xasprintf("%s/data", home);
	char	   *run_dir = fx_xasprintf("%s/run", home);
	char	   *version = fx_xasprintf("%s/PG_VERSION", data);
	char	   *log_dir = fx_xasprintf("%s/log", home);
	char	   *log = fx_xasprintf("%s/log/postgresql.log", home);
	char	   *pg_ctl = fx_xasprintf("%s/pg_ctl", bindir);
	char	   *opts = fx_xasprintf("-k %s -c listen_addresses= -p " FX_PORT, run_dir);
	int			rc = 0;

	fx_mkdirs(home, 0755);
	chmod(home, 0755);
	fx_mkdirs(run_dir, 0700);
	give_to_server(run_dir);
	fx_mkdirs(log_dir, 0755);
	give_to_server(log_dir);
	if (access(version, F_OK) != 0)
	{
		char	   *initdb = fx_xasprintf("%s/initdb", bindir);
		char	   *args[] = {initdb, "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-instructions", NULL};

		printf("fx: creating a PostgreSQL cluster in %s\n", data);
		fx_mkdirs(data, 0700);
		give_to_server(data);
		if (run(args, log) != 0)
		{
			fprintf(stderr, "fx: initdb failed; see %s\n", log);
			rc = 1;
		}
		free(initdb);
	}
	if (rc == 0)
	{
		char	   *status[] = {pg_ctl, "-D", data, "status", NULL};
		char	   *start[] = {pg_ctl, "-D", data, "-l", log, "-w", "-t", "60", "-o", opts, "start", NULL};

		if (run(status, "/dev/null") != 0 && run(start, "/dev/null") != 0)
		{
			fprintf(stderr, "fx: PostgreSQL did not start; see %s\n", log);
			rc = 1;
		}
	}
	free(data);
	free(run_dir);
	free(version);
	free(log);
	free(log_dir);
	free(pg_ctl);
	free(opts);
	return rc;
}

static int
exec_ok(PGconn *conn, const char *sql)
{
	PGresult   *res = PQexec(conn, sql);
	int			ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
		PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
	{
		const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);

		fprintf(stderr, "fx: %s", PQresultErrorMessage(res));
		if (strstr(PQresultErrorMessage(res), "extension \"fx\" is not available"))
			fprintf(stderr, "HINT: install it into this PostgreSQL with \"make install\".\n");
		else if (hint)
			fprintf(stderr, "HINT: %s\n", hint);
	}
	PQclear(res);
	return ok;
}

static int
ensure_database(const char *home)
{
	char	   *ci = embedded_conninfo(home, "postgres");
	PGconn	   *conn = PQconnectdb(ci);
	PGresult   *res;
	int			ok;

	free(ci);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "fx: cannot connect to the embedded cluster: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}
	res = PQexec(conn, "SELECT 1 FROM pg_database WHERE datname = 'fx'");
	ok = PQresultStatus(res) == PGRES_TUPLES_OK &&
		(PQntuples(res) == 1 || exec_ok(conn, "CREATE DATABASE fx"));
	PQclear(res);
	PQfinish(conn);
	if (!ok)
		return 1;
	ci = embedded_conninfo(home, "fx");
	conn = PQconnectdb(ci);
	free(ci);
	ok = PQstatus(conn) == CONNECTION_OK &&
		exec_ok(conn, "SET client_min_messages = warning") &&
		exec_ok(conn, "CREATE EXTENSION IF NOT EXISTS fx") &&
		exec_ok(conn, "DO $$ BEGIN IF to_regrole('" WORKER_ROLE "') IS NULL THEN "
				"CREATE ROLE " WORKER_ROLE " LOGIN IN ROLE fx_worker; END IF; END $$");
	PQfinish(conn);
	return ok ? 0 : 1;
}

static pid_t
read_pid(const char *path)
{
	FILE	   *f = fopen(path, "r");
	long		pid = 0;

	if (f)
	{
		if (fscanf(f, "%ld", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid > 0 && kill((pid_t) pid, 0) == 0 ? (pid_t) pid : 0;
}

static int
ensure_worker(const char *home, pid_t *out)
{
	char	   *pidfile = fx_xasprintf("%s/worker.pid", home);
	char	   *log = fx_xasprintf("%s/worker.log", home);
	char	   *cache = fx_xasprintf("%s/cache", home);
	char	   *ci = embedded_conninfo_as(home, "fx", WORKER_ROLE);
	pid_t		pid = read_pid(pidfile);
	FILE	   *f;

	if (pid == 0)
	{
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		if (pid == 0)
		{
			int			fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
			int			nul = open("/dev/null", O_RDONLY);

			setsid();
			dup2(nul, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			execl("/proc/self/exe", "fx", "worker", "--db", ci, "--cache", cache, (char *) NULL);
			_exit(127);
		}
		f = fopen(pidfile, "w");
		if (f)
		{
			fprintf(f, "%d\n", (int) pid);
			fclose(f);
		}
		usleep(300 * 1000);
		if (waitpid(pid, NULL, WNOHANG) != 0)
		{
			fprintf(stderr, "fx: the worker exited at once; see %s\n", log);
			pid = 0;
		}
	}
	*out = pid;
	free(pidfile);
	free(log);
	free(cache);
	free(ci);
	return pid ? 0 : 1;
}

int
fx_cli_up(int argc, char **argv)
{
	char	   *home = fx_home();
	char	   *bindir = pg_bindir();
	pid_t		worker = 0;
	int			rc;

	if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
	{
		printf("usage: fx up\nStarts the embedded default: a private PostgreSQL in $FX_HOME\n"
			   "(%s) with database fx and the extension, and a worker.\n", home);
		free(home);
		free(bindir);
		return 0;
	}
	rc = ensure_cluster(home, bindir);
	if (rc == 0)
		rc = ensure_database(home);
	if (rc == 0)
		rc = ensure_worker(home, &worker);
	if (rc == 0)
	{
		char	   *ci = embedded_conninfo(home, "fx");

		printf("fx is up\n"
			   "  database: %s\n"
			   "  worker:   pid %d, logged in as " WORKER_ROLE " (a member of fx_worker), log %s/worker.log\n"
			   "try:\n"
			   "  fx deploy hello examples/hello && fx invoke hello '{\"name\":\"you\"}'\n"
			   "  fx psql -c \"SELECT fx_call('hello', '{}')\"\n", ci, (int) worker, home);
		free(ci);
	}
	free(home);
	free(bindir);
	return rc;
}

int
fx_cli_down(int argc, char **argv)
{
	char	   *home = fx_home();
	char	   *bindir = pg_bindir();
	char	   *pidfile = fx_xasprintf("%s/worker.pid", home);
	char	   *data = fx_xasprintf("%s/data", home);
	char	   *pg_ctl = fx_xasprintf("%s/pg_ctl", bindir);
	char	   *stop[] = {pg_ctl, "-D", data, "-m", "fast", "-w", "stop", NULL};
	pid_t		pid = read_pid(pidfile);
	int			rc = 0;

	(void) argc;
	(void) argv;
	if (pid)
	{
		kill(pid, SIGTERM);
		for (int i = 0; i < 150 && kill(pid, 0) == 0; i++)
		{
			waitpid(pid, NULL, WNOHANG);
			usleep(100 * 1000);
		}
		if (kill(pid, 0) == 0)
			kill(pid, SIGKILL);
		printf("fx: worker %d stopped\n", (int) pid);
	}
	unlink(pidfile);
	if (access(data, F_OK) == 0)
	{
		if (run(stop, "/dev/null") == 0)
			printf("fx: PostgreSQL in %s stopped\n", data);
		else
			printf("fx: PostgreSQL in %s was not running\n", data);
	}
	else
	{
		fprintf(stderr, "fx: nothing to stop: no cluster in %s\n", data);
		rc = 1;
	}
	free(home);
	free(bindir);
	free(pidfile);
	free(data);
	free(pg_ctl);
	return rc;
}
