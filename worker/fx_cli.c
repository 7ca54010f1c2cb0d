/*
 * fx_cli.c: deploy, invoke, logs, ls, ps, wf and psql, over blocking libpq.
 *
 * Every command talks to the database named by --db, else FX_DB, else the
 * PG* environment variables, else the embedded cluster of `fx up` when it
 * is running (fx_home.c).  Errors go to stderr with the server's detail and
 * hint, and the exit status is 1 (2 for a usage error).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "fx_cli.h"
#include "fx_log.h"

#define USAGE_ERROR 2

static int
usage(const char *text)
{
	fprintf(stderr, "%s", text);
	return USAGE_ERROR;
}

long
fx_parse_duration_ms(const char *s)
{
	char	   *end;
	double		v = strtod(s, &end);

	if (end == s || v < 0)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		return (long) (v * 1000);
	if (strcmp(end, "ms") == 0)
		return (long) v;
	if (strcmp(end, "m") == 0)
		return (long) (v * 60000);
	if (strcmp(end, "h") == 0)
		return (long) (v * 3600000);
	return -1;
}

/* ---------------------------------------------------------------------
 * Connection strings and passwords
 * --------------------------------------------------------------------- */

/*
 * Where conninfo cannot be parsed: whether it looks as if it held a
 * password, "password" anywhere or a URI with user:password@.
 */
static bool
looks_like_password(const char *conninfo)
{
	const char *auth = strstr(conninfo, "://");
	size_t		len;
	const char *at;

	if (strcasestr(conninfo, "password") != NULL)
		return true;
	if (auth == NULL)
		return false;
	auth += 3;
	len = strcspn(auth, "/?");
	at = memrchr(auth, '@', len);
	return at != NULL && memchr(auth, ':', (size_t) (at - auth)) != NULL;
}

/* The password conninfo (key=value or URI) holds, or NULL; allocated. */
static char *
conninfo_password(const char *conninfo)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	char	   *pw = NULL;

	if (opts == NULL)
	{
		PQfreemem(err);
		return looks_like_password(conninfo) ? fx_xstrdup("?") : NULL;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
			pw = fx_xstrdup(o->val);
	PQconninfoFree(opts);
	return pw;
}

static const char password_hint[] =
"HINT: give the password in PGPASSWORD, in ~/.pgpass (or the file PGPASSFILE names) or in\n"
"$FX_DB, or put the connection string in a file only you can read and use\n"
"\"fx worker --db-file FILE\".\n";

void
fx_cli_check_db(const char *db_opt)
{
	char	   *pw;

	if (db_opt == NULL || (pw = conninfo_password(db_opt)) == NULL)
		return;
	explicit_bzero(pw, strlen(pw));
	free(pw);
	fprintf(stderr, "fx: --db must not contain a password: every user of this host can read "
			"command lines (ps)\n%s", password_hint);
	exit(USAGE_ERROR);
}

char *
fx_cli_db_file(const char *path)
{
	int			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char	   *text;
	ssize_t		n;
	char	   *pw;

	if (fd < 0 || fstat(fd, &st) < 0)
	{
		fprintf(stderr, "fx: cannot read --db-file \"%s\": %s\n", path, strerror(errno));
		exit(USAGE_ERROR);
	}
	if (!S_ISREG(st.st_mode) || st.st_size > 65536)
	{
		fprintf(stderr, "fx: --db-file \"%s\" is not a regular file of at most 64 KiB\n", path);
		exit(USAGE_ERROR);
	}
	text = fx_xcalloc(1, (size_t) st.st_size + 1);
	n = read(fd, text, (size_t) st.st_size);
	close(fd);
	if (n < 0)
	{
		fprintf(stderr, "fx: cannot read --db-file \"%s\": %s\n", path, strerror(errno));
		exit(USAGE_ERROR);
	}
	text[n] = '\0';
	while (n > 0 && strchr(" \t\r\n", text[n - 1]))
		text[--n] = '\0';		/* the file's last newline */
	pw = conninfo_password(text);
	if (pw && (st.st_mode & (S_IRWXG | S_IRWXO)))
	{
		explicit_bzero(text, strlen(text));
		fprintf(stderr, "fx: --db-file \"%s\" holds a password but its mode is %04o: other users "
				"can read it\nHINT: chmod 600 %s\n", path, (unsigned) (st.st_mode & 07777), path);
		exit(USAGE_ERROR);
	}
	if (pw)
		explicit_bzero(pw, strlen(pw));
	free(pw);
	return text;
}

/* conninfo "key='value' ..." from opts, less its password. */
static char *
conninfo_without_password(PQconninfoOption *opts)
{
	char	   *out = fx_xstrdup("");

	for (PQconninfoOption *o = opts; o->keyword; o++)
	{
		char	   *q;
		char	   *more;
		size_t		k = 0;

		if (o->val == NULL || strcmp(o->keyword, "password") == 0)
			continue;
		q = fx_xmalloc(2 * strlen(o->val) + 1);
		for (const char *v = o->val; *v; v++)
		{
			if (*v == '\'' || *v == '\\')
				q[k++] = '\\';
			q[k++] = *v;
		}
		q[k] = '\0';
		more = fx_xasprintf("%s%s%s='%s'", out, out[0] ? " " : "", o->keyword, q);
		free(q);
		free(out);
		out = more;
	}
	return out;
}

static PGconn *
connect_db(const char *db_opt)
{
	char	   *conninfo;
	const char *keys[] = {"dbname", "application_name", NULL};
	const char *vals[] = {NULL, "fx", NULL};
	PGconn	   *conn;

	fx_cli_check_db(db_opt);
	conninfo = fx_cli_conninfo(db_opt);
	vals[0] = conninfo;
	conn = PQconnectdbParams(keys, vals, 1);
	free(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "fx: cannot connect to the database: %s", PQerrorMessage(conn));
		fprintf(stderr, "HINT: start the embedded default with \"fx up\", or name a database with --db or the PG* variables.\n");
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* Print a failed result's message, detail and hint; returns 1. */
static int
report(PGresult *res)
{
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);

	fprintf(stderr, "fx: %s\n", msg ? msg : PQresultErrorMessage(res));
	if (detail)
		fprintf(stderr, "DETAIL: %s\n", detail);
	if (hint)
		fprintf(stderr, "HINT: %s\n", hint);
	return 1;
}

static PGresult *
exec_params(PGconn *conn, const char *sql, int n, const char *const *params)
{
	return PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
}

/* Print a result as an aligned table, as psql does. */
static void
print_table(PGresult *res)
{
	int			nf = PQnfields(res);
	int			nr = PQntuples(res);
	int		   *w = fx_xcalloc(nf, sizeof(int));

	for (int c = 0; c < nf; c++)
	{
		w[c] = strlen(PQfname(res, c));
		for (int r = 0; r < nr; r++)
			if (PQgetlength(res, r, c) > w[c])
				w[c] = PQgetlength(res, r, c);
	}
	for (int c = 0; c < nf; c++)
		printf("%s%-*s", c ? "  " : "", c == nf - 1 ? 0 : w[c], PQfname(res, c));
	printf("\n");
	for (int r = 0; r < nr; r++)
	{
		for (int c = 0; c < nf; c++)
			printf("%s%-*s", c ? "  " : "", c == nf - 1 ? 0 : w[c], PQgetvalue(res, r, c));
		printf("\n");
	}
	free(w);
}

/* ---------------------------------------------------------------------
 * fx deploy: pack the directory into a tar and call fx_deploy()
 * --------------------------------------------------------------------- */

typedef struct buffer
{
	char	   *data;
	size_t		len;
} buffer;

static char **walk_paths;
static size_t walk_n;

static int
walk_add(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void) st;
	(void) flag;
	if (ftw->level == 0)
		return FTW_CONTINUE;
	if (strcmp(path + ftw->base, ".git") == 0)
		return FTW_SKIP_SUBTREE;
	walk_paths = fx_xrealloc(walk_paths, (walk_n + 1) * sizeof(char *));
	walk_paths[walk_n++] = fx_xstrdup(path);
	return FTW_CONTINUE;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static la_ssize_t
buf_write(struct archive *a, void *arg, const void *data, size_t n)
{
	buffer	   *b = arg;

	(void) a;
	b->data = fx_xrealloc(b->data, b->len + n);
	memcpy(b->data + b->len, data, n);
	b->len += n;
	return n;
}

static int
add_member(struct archive *a, const char *dir, const char *path)
{
	struct archive_entry *e = archive_entry_new();
	struct stat st;
	char	   *rel = (char *) path + strlen(dir) + 1;
	int			rc = 0;

	if (lstat(path, &st) < 0)
	{
		fprintf(stderr, "fx: cannot read \"%s\": %s\n", path, strerror(errno));
		archive_entry_free(e);
		return -1;
	}
	archive_entry_set_pathname(e, rel);
	archive_entry_set_perm(e, st.st_mode & 0777);
	/* No owners or times: unchanged code packs to the same bytes. */
	if (S_ISDIR(st.st_mode))
		archive_entry_set_filetype(e, AE_IFDIR);
	else if (S_ISLNK(st.st_mode))
	{
		char		target[4096];
		ssize_t		n = readlink(path, target, sizeof(target) - 1);

		target[n < 0 ? 0 : n] = '\0';
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, target);
	}
	else if (S_ISREG(st.st_mode))
	{
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, st.st_size);
	}
	else
	{
		fprintf(stderr, "fx: \"%s\" is not a file, directory or symbolic link\n", path);
		archive_entry_free(e);
		return -1;
	}
	if (archive_write_header(a, e) != ARCHIVE_OK)
		rc = -1;
	if (rc == 0 && S_ISREG(st.st_mode))
	{
		FILE	   *f = fopen(path, "rb");
		char		chunk[65536];
		size_t		n;

		if (f == NULL)
		{
			fprintf(stderr, "fx: cannot read \"%s\": %s\n", path, strerror(errno));
			rc = -1;
		}
		while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			if (archive_write_data(a, chunk, n) != (la_ssize_t) n)
				rc = -1;
		if (f)
			fclose(f);
	}
	archive_entry_free(e);
	return rc;
}

static int
pack_dir(const char *dir, buffer *out)
{
	struct archive *a = archive_write_new();
	int			rc = 0;
	struct stat st;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
	{
		fprintf(stderr, "fx: \"%s\" is not a directory\n", dir);
		archive_write_free(a);
		return -1;
	}
	walk_paths = NULL;
	walk_n = 0;
	if (nftw(dir, walk_add, 32, FTW_PHYS | FTW_ACTIONRETVAL) < 0)
	{
		fprintf(stderr, "fx: cannot read \"%s\": %s\n", dir, strerror(errno));
		rc = -1;
	}
	qsort(walk_paths, walk_n, sizeof(char *), cmp_str);
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_gzip(a);
	archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
	archive_write_open(a, out, NULL, buf_write, NULL);
	for (size_t i = 0; rc == 0 && i < walk_n; i++)
		rc = add_member(a, dir, walk_paths[i]);
	if (archive_write_close(a) != ARCHIVE_OK && rc == 0)
	{
		fprintf(stderr, "fx: cannot pack \"%s\": %s\n", dir, archive_error_string(a));
		rc = -1;
	}
	archive_write_free(a);
	for (size_t i = 0; i < walk_n; i++)
		free(walk_paths[i]);
	free(walk_paths);
	return rc;
}

static int
read_file(const char *path, buffer *out)
{
	FILE	   *f = fopen(path, "rb");
	char		chunk[65536];
	size_t		n;

	if (f == NULL)
	{
		fprintf(stderr, "fx: cannot read \"%s\": %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
	{
		out->data = fx_xrealloc(out->data, out->len + n);
		memcpy(out->data + out->len, chunk, n);
		out->len += n;
	}
	fclose(f);
	if (out->len == 0)
	{
		fprintf(stderr, "fx: \"%s\" is empty\n", path);
		return -1;
	}
	return 0;
}

/* A PostgreSQL text[] literal of the words of cmd. */
static char *
command_array(const char *cmd)
{
	size_t		n = strlen(cmd);
	char	   *out = fx_xmalloc(n * 2 + 8);
	char	   *o = out;
	bool		in_word = false;

	*o++ = '{';
	for (const char *p = cmd; *p; p++)
	{
		if (*p == ' ' || *p == '\t')
		{
			if (in_word)
				*o++ = '"';
			in_word = false;
			continue;
		}
		if (!in_word)
		{
			if (o > out + 1)
				*o++ = ',';
			*o++ = '"';
			in_word = true;
		}
		if (*p == '"' || *p == '\\')
			*o++ = '\\';
		*o++ = *p;
	}
	if (in_word)
		*o++ = '"';
	*o++ = '}';
	*o = '\0';
	return out;
}

static const char deploy_usage[] =
"usage: fx deploy NAME DIR [--cmd \"PROGRAM ARGS\"] [--mode simple|session]\n"
"       fx deploy NAME --image FILE [--cmd \"PROGRAM ARGS\"] [options]\n"
"                 [--memory MB] [--timeout DURATION] [--retries N] [--cpu N]\n"
"                 [--net] [--env KEY=VALUE]... [--role ROLE] [--db CONNINFO]\n"
"Packs DIR (or takes the container image FILE: `docker save` output or an\n"
"OCI image layout tar) and stores it as a new version of function NAME.\n"
"  --cmd      program and arguments, run in the bundle directory (default ./main;\n"
"             for an image, its entrypoint and cmd)\n"
"  --mode     simple: one process per invocation, args on stdin, result on stdout;\n"
"             session: a warm process speaking the fx protocol (default simple)\n"
"  --timeout  e.g. 30s, 500ms, 2m (default 30s)\n"
"  --role     the role the function's sql runs as (session mode; it must be able\n"
"             to log in and not be a superuser)\n";

int
fx_cli_deploy(int argc, char **argv)
{
	static struct option opts[] = {
		{"cmd", required_argument, NULL, 'c'}, {"mode", required_argument, NULL, 'm'},
		{"memory", required_argument, NULL, 'M'}, {"timeout", required_argument, NULL, 't'},
		{"retries", required_argument, NULL, 'r'}, {"cpu", required_argument, NULL, 'C'},
		{"net", no_argument, NULL, 'n'}, {"env", required_argument, NULL, 'e'},
		{"db", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'},
		{"image", required_argument, NULL, 'I'}, {"role", required_argument, NULL, 'R'}, {0}
	};
	cJSON	   *options = cJSON_CreateObject();
	const char *image = NULL;
	cJSON	   *env = NULL;
	const char *cmd = NULL;
	const char *db = NULL;
	buffer		bundle = {0};
	PGconn	   *conn;
	PGresult   *res;
	int			c;
	int			rc = 1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				cmd = optarg;
				break;
			case 'm':
				cJSON_AddStringToObject(options, "mode", optarg);
				break;
			case 'M':
				cJSON_AddNumberToObject(options, "memory_mb", atof(optarg));
				break;
			case 't':
				if (fx_parse_duration_ms(optarg) < 0)
				{
					fprintf(stderr, "fx: invalid timeout \"%s\": use e.g. 30s, 500ms or 2m\n", optarg);
					cJSON_Delete(options);
					return USAGE_ERROR;
				}
				cJSON_AddNumberToObject(options, "timeout_ms", fx_parse_duration_ms(optarg));
				break;
			case 'r':
				cJSON_AddNumberToObject(options, "retries", atof(optarg));
				break;
			case 'C':
				cJSON_AddNumberToObject(options, "cpu", atof(optarg));
				break;
			case 'n':
				cJSON_AddTrueToObject(options, "net");
				break;
			case 'R':
				cJSON_AddStringToObject(options, "role", optarg);
				break;
			case 'e':
				if (strchr(optarg, '=') == NULL)
				{
					fprintf(stderr, "fx: --env takes KEY=VALUE, not \"%s\"\n", optarg);
					cJSON_Delete(options);
					return USAGE_ERROR;
				}
				if (env == NULL)
					env = cJSON_AddObjectToObject(options, "env");
				{
					char	   *k = strndup(optarg, strcspn(optarg, "="));

					cJSON_AddStringToObject(env, k, strchr(optarg, '=') + 1);
					free(k);
				}
				break;
			case 'd':
				db = optarg;
				break;
			case 'I':
				image = optarg;
				cJSON_AddTrueToObject(options, "image");
				break;
			case 'h':
				cJSON_Delete(options);
				printf("%s", deploy_usage);
				return 0;
			default:
				cJSON_Delete(options);
				return usage(deploy_usage);
		}
	}
	if (argc - optind != (image ? 1 : 2))
	{
		cJSON_Delete(options);
		return usage(deploy_usage);
	}
	if ((image ? read_file(image, &bundle) : pack_dir(argv[optind + 1], &bundle)) == 0 &&
		(conn = connect_db(db)) != NULL)
	{
		char	   *cmdarr = cmd ? command_array(cmd) : NULL;
		char	   *opts_json = cJSON_PrintUnformatted(options);
		const char *params[4] = {argv[optind], bundle.data, cmdarr, opts_json};
		int			lengths[4] = {0, (int) bundle.len, 0, 0};
		int			formats[4] = {0, 1, 0, 0};

		res = PQexecParams(conn, "SELECT fx_deploy($1, $2::bytea, $3::text[], $4::jsonb)",
						   4, NULL, params, lengths, formats, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			rc = report(res);
		else
		{
			const char *p2[2] = {argv[optind], PQgetvalue(res, 0, 0)};
			PGresult   *h = exec_params(conn, "SELECT hash FROM fx.version"
										" WHERE fn = $1 AND version = $2::int", 2, p2);

			printf("deployed %s version %s (sha256 %.12s)\n", argv[optind],
				   p2[1], PQntuples(h) == 1 ? PQgetvalue(h, 0, 0) : "?");
			PQclear(h);
			rc = 0;
		}
		PQclear(res);
		PQfinish(conn);
		free(cmdarr);
		cJSON_free(opts_json);
	}
	free(bundle.data);
	cJSON_Delete(options);
	return rc;
}

/* ---------------------------------------------------------------------
 * fx invoke
 * --------------------------------------------------------------------- */

static const char invoke_usage[] =
"usage: fx invoke NAME [JSON] [--async] [--key KEY] [--idempotency-key K]\n"
"                 [--timeout DURATION] [--db CONNINFO]\n"
"Runs function NAME (NAME:VERSION or NAME:ALIAS) with JSON args (default {}; - reads stdin)\n"
"and prints its result; with --async, enqueues it and prints the invocation id.\n";

static char *
read_stdin(void)
{
	buffer		b = {0};
	char		chunk[65536];
	size_t		n;

	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
	{
		b.data = fx_xrealloc(b.data, b.len + n + 1);
		memcpy(b.data + b.len, chunk, n);
		b.len += n;
	}
	if (b.data == NULL)
		return fx_xstrdup("");
	b.data[b.len] = '\0';
	return b.data;
}

int
fx_cli_invoke(int argc, char **argv)
{
	static struct option opts[] = {
		{"async", no_argument, NULL, 'a'}, {"key", required_argument, NULL, 'k'},
		{"idempotency-key", required_argument, NULL, 'i'},
		{"timeout", required_argument, NULL, 't'},
		{"db", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {0}
	};
	bool		async = false;
	const char *key = NULL;
	const char *idem = NULL;
	const char *db = NULL;
	char	   *timeout = NULL;
	char	   *args;
	PGconn	   *conn;
	PGresult   *res;
	int			c;
	int			rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'a':
				async = true;
				break;
			case 'k':
				key = optarg;
				break;
			case 'i':
				idem = optarg;
				break;
			case 't':
				if (fx_parse_duration_ms(optarg) < 0)
				{
					fprintf(stderr, "fx: invalid timeout \"%s\": use e.g. 30s, 500ms or 2m\n", optarg);
					free(timeout);
					return USAGE_ERROR;
				}
				free(timeout);
				timeout = fx_xasprintf("%ld ms", fx_parse_duration_ms(optarg));
				break;
			case 'd':
				db = optarg;
				break;
			case 'h':
				printf("%s", invoke_usage);
				return 0;
			default:
				return usage(invoke_usage);
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
	{
		free(timeout);
		return usage(invoke_usage);
	}
	args = argc - optind == 2 ? (strcmp(argv[optind + 1], "-") == 0 ? read_stdin()
								 : fx_xstrdup(argv[optind + 1])) : fx_xstrdup("{}");
	if ((conn = connect_db(db)) == NULL)
	{
		free(args);
		free(timeout);
		return 1;
	}
	if (async)
	{
		const char *params[4] = {argv[optind], args, key, idem};

		res = exec_params(conn, "SELECT fx_invoke($1, $2::jsonb, key => $3,"
						  " idempotency_key => $4)", 4, params);
	}
	else
	{
		const char *params[4] = {argv[optind], args, timeout ? timeout : "30s", key};

		if (idem)
			fprintf(stderr, "fx: note: --idempotency-key applies to --async invocations only\n");
		res = exec_params(conn, "SELECT fx_call($1, $2::jsonb, $3::interval, $4)", 4, params);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = report(res);
	else
	{
		printf("%s\n", PQgetisnull(res, 0, 0) ? "null" : PQgetvalue(res, 0, 0));
		rc = 0;
	}
	PQclear(res);
	PQfinish(conn);
	free(args);
	free(timeout);
	return rc;
}

/* ---------------------------------------------------------------------
 * fx logs, ls, ps, psql
 * --------------------------------------------------------------------- */

static const char logs_usage[] =
"usage: fx logs ID [-f] [--db CONNINFO]\n"
"       fx logs --fn NAME [--since DURATION] [--db CONNINFO]\n"
"Prints the log lines of invocation ID; -f follows a running one (lines\n"
"arrive about every half second) until it has finished.  With --fn, the\n"
"lines of every invocation of function NAME since DURATION ago (an interval\n"
"such as 10m, 2h, 1d or '30 seconds'; default 1h), oldest first.\n";

/* "10m" -> "10 min": PostgreSQL's intervals with the short units people type. */
static char *
interval_text(const char *s)
{
	size_t		n = strlen(s);

	if (n > 1 && strspn(s, "0123456789") == n - 1)
	{
		const char *unit = s[n - 1] == 's' ? "sec" : s[n - 1] == 'm' ? "min" :
			s[n - 1] == 'h' ? "hour" : s[n - 1] == 'd' ? "day" : NULL;

		if (unit)
			return fx_xasprintf("%.*s %s", (int) (n - 1), s, unit);
	}
	return fx_xstrdup(s);
}

/* fx logs --fn NAME --since DURATION */
static int
fn_logs(PGconn *conn, const char *fn, const char *since)
{
	char	   *iv = interval_text(since ? since : "1h");
	const char *params[2] = {fn, iv};
	PGresult   *res;
	int			rc = 0;

	res = exec_params(conn,
					  "SELECT l.invocation_id, l.attempt, to_char(l.at, 'YYYY-MM-DD HH24:MI:SS.MS'),"
					  " l.stream, l.line, EXISTS (SELECT 1 FROM fx.function f WHERE f.name = $1)"
					  " FROM (SELECT 1) one LEFT JOIN fx.invocation i ON i.fn = $1"
					  " AND i.created_at >= now() - $2::interval"
					  " LEFT JOIN fx.log l ON l.invocation_id = i.id"
					  " ORDER BY l.at, l.invocation_id, l.attempt, l.seq", 2, params);
	free(iv);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = report(res);
	else if (PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 5), "t") != 0)
	{
		fprintf(stderr, "fx: function \"%s\" is not deployed\n", fn);
		rc = 1;
	}
	else
		for (int i = 0; i < PQntuples(res); i++)
			if (!PQgetisnull(res, i, 0))
				printf("%s [invocation %s attempt %s] %s: %s\n", PQgetvalue(res, i, 2),
					   PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 3),
					   PQgetvalue(res, i, 4));
	PQclear(res);
	return rc;
}

static bool
finished(PGconn *conn, const char *id)
{
	const char *params[1] = {id};
	PGresult   *res = exec_params(conn, "SELECT fx_status($1::bigint)", 1, params);
	bool		done = PQresultStatus(res) != PGRES_TUPLES_OK ||
		(strcmp(PQgetvalue(res, 0, 0), "queued") != 0 &&
		 strcmp(PQgetvalue(res, 0, 0), "running") != 0);

	PQclear(res);
	return done;
}

int
fx_cli_logs(int argc, char **argv)
{
	static struct option opts[] = {
		{"follow", no_argument, NULL, 'f'}, {"db", required_argument, NULL, 'd'},
		{"fn", required_argument, NULL, 'F'}, {"since", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'}, {0}
	};
	bool		follow = false;
	const char *db = NULL;
	const char *fn = NULL;
	const char *since = NULL;
	PGconn	   *conn;
	int			c;
	int			shown = 0;
	int			rc = 0;

	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1)
	{
		if (c == 'f')
			follow = true;
		else if (c == 'd')
			db = optarg;
		else if (c == 'F')
			fn = optarg;
		else if (c == 's')
			since = optarg;
		else if (c == 'h')
		{
			printf("%s", logs_usage);
			return 0;
		}
		else
			return usage(logs_usage);
	}
	if (fn != NULL)
	{
		if (argc - optind != 0 || follow)
			return usage(logs_usage);
		if ((conn = connect_db(db)) == NULL)
			return 1;
		rc = fn_logs(conn, fn, since);
		PQfinish(conn);
		return rc;
	}
	if (argc - optind != 1 || since)
		return usage(logs_usage);
	if ((conn = connect_db(db)) == NULL)
		return 1;
	for (;;)
	{
		const char *params[1] = {argv[optind]};
		bool		done = !follow || finished(conn, argv[optind]);
		PGresult   *res = exec_params(conn,
									  "SELECT attempt, to_char(at, 'YYYY-MM-DD HH24:MI:SS.MS'), stream, line"
									  " FROM fx_logs($1::bigint)", 1, params);

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			rc = report(res);
			PQclear(res);
			break;
		}
		for (; shown < PQntuples(res); shown++)
			printf("%s [attempt %s] %s: %s\n", PQgetvalue(res, shown, 1),
				   PQgetvalue(res, shown, 0), PQgetvalue(res, shown, 2),
				   PQgetvalue(res, shown, 3));
		PQclear(res);
		fflush(stdout);
		if (done)
			break;
		usleep(200 * 1000);
	}
	PQfinish(conn);
	return rc;
}

static int
query_table(int argc, char **argv, const char *help, const char *sql)
{
	static struct option opts[] = {
		{"db", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {0}
	};
	const char *db = NULL;
	PGconn	   *conn;
	PGresult   *res;
	int			c;
	int			rc = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
	{
		if (c == 'd')
			db = optarg;
		else if (c == 'h')
		{
			printf("%s", help);
			return 0;
		}
		else
			return usage(help);
	}
	if (argc != optind)
		return usage(help);
	if ((conn = connect_db(db)) == NULL)
		return 1;
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = report(res);
	else
		print_table(res);
	PQclear(res);
	PQfinish(conn);
	return rc;
}

int
fx_cli_ls(int argc, char **argv)
{
	return query_table(argc, argv,
					   "usage: fx ls [--db CONNINFO]\nLists the deployed functions.\n",
					   "SELECT f.name AS function, a.version AS live, v.mode,"
					   " v.timeout_ms, v.memory_mb, v.retries,"
					   " (SELECT count(*) FROM fx.version x WHERE x.fn = f.name) AS versions,"
					   " to_char(v.created_at, 'YYYY-MM-DD HH24:MI:SS') AS deployed"
					   " FROM fx.function f"
					   " LEFT JOIN fx.alias a ON a.fn = f.name AND a.alias = 'live'"
					   " LEFT JOIN fx.version v ON v.fn = a.fn AND v.version = a.version"
					   " ORDER BY f.name");
}

int
fx_cli_ps(int argc, char **argv)
{
	return query_table(argc, argv,
					   "usage: fx ps [--db CONNINFO]\n"
					   "Lists queued and running invocations, then the 20 newest finished ones.\n",
					   "(SELECT id, fn || ':' || version AS function, status, attempts,"
					   " coalesce(worker, '') AS worker,"
					   " round(extract(epoch FROM now() - created_at))::text || 's' AS age,"
					   " coalesce(round(wall_ms::numeric, 1)::text, '') AS wall_ms,"
					   " coalesce(left(error, 60), '') AS error"
					   " FROM fx.invocation WHERE status IN ('queued', 'running')"
					   " ORDER BY id LIMIT 200)"
					   " UNION ALL "
					   "(SELECT id, fn || ':' || version, status, attempts, coalesce(worker, ''),"
					   " round(extract(epoch FROM now() - created_at))::text || 's',"
					   " coalesce(round(wall_ms::numeric, 1)::text, ''), coalesce(left(error, 60), '')"
					   " FROM fx.invocation WHERE status NOT IN ('queued', 'running')"
					   " ORDER BY id DESC LIMIT 20)");
}

int
fx_cli_psql(int argc, char **argv)
{
	const char *db = NULL;
	char	  **args = fx_xcalloc(argc + 4, sizeof(char *));
	int			n = 0;
	char	   *conninfo;

	/* Only --db is ours; everything else goes to psql as it is. */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
			db = argv[++i];
	fx_cli_check_db(db);
	conninfo = fx_cli_conninfo(db);
	{
		/* $FX_DB's password goes to psql in its environment, not its argv */
		char	   *pw = conninfo_password(conninfo);
		PQconninfoOption *opts = pw ? PQconninfoParse(conninfo, NULL) : NULL;

		if (opts)
		{
			setenv("PGPASSWORD", pw, 1);
			free(conninfo);
			conninfo = conninfo_without_password(opts);
			PQconninfoFree(opts);
		}
		free(pw);
	}
	args[n++] = "psql";
	if (conninfo[0])
	{
		args[n++] = "-d";
		args[n++] = conninfo;
	}
	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
		{
			i++;
			continue;
		}
		args[n++] = argv[i];
	}
	args[n] = NULL;
	execvp("psql", args);
	fprintf(stderr, "fx: cannot run psql: %s\n", strerror(errno));
	return 1;
}

/* ---------------------------------------------------------------------
 * fx wf: list, show, cancel, resume and fork workflows
 * --------------------------------------------------------------------- */

static const char wf_usage[] =
"usage: fx wf ls [--fn NAME] [--status STATUS] [--limit N] [--db CONNINFO]\n"
"       fx wf show ID [--db CONNINFO]\n"
"       fx wf cancel ID [--db CONNINFO]\n"
"       fx wf resume ID [--db CONNINFO]\n"
"       fx wf fork ID --from-step N [--version V] [--db CONNINFO]\n"
"Workflows are the invocations that recorded steps (docs/protocol.md, \"Workflows\").\n"
"  ls      the newest workflows, newest first (--limit, default 20); STATUS is\n"
"          queued, waiting (evicted, queued to replay when its wait is over),\n"
"          running, succeeded, failed, dead or cancelled\n"
"  show    a workflow and its steps, with their timings and outputs\n"
"  cancel  cancels the workflow and its children that have not ended\n"
"  resume  queues a cancelled, failed or dead workflow again from its last step\n"
"  fork    starts a new workflow with the outcomes of steps 1 to N-1 copied,\n"
"          on the live version or version V, and prints its id\n";

static const char *const wf_statuses[] = {
	"queued", "waiting", "running", "succeeded", "failed", "dead", "cancelled", NULL
};

/* An invocation's status as fx wf shows it: a queued replay not yet due waits. */
#define WF_STATUS \
	"CASE WHEN i.status = 'queued' AND i.replay AND i.not_before > now() THEN 'waiting'" \
	" ELSE i.status::text END"

/* Seconds (numeric; NULL: '') as 850ms, 4.2s, 12m05s, 3h07m or 2d04h. */
#define WF_DURATION(e) \
	"CASE WHEN " e " IS NULL THEN ''" \
	" WHEN " e " < 1 THEN round(" e " * 1000) || 'ms'" \
	" WHEN " e " < 60 THEN round(" e ", 1) || 's'" \
	" WHEN " e " < 3600 THEN floor(" e " / 60) || 'm'" \
	"  || lpad((floor(" e ") % 60)::text, 2, '0') || 's'" \
	" WHEN " e " < 86400 THEN floor(" e " / 3600) || 'h'" \
	"  || lpad((floor(" e " / 60) % 60)::text, 2, '0') || 'm'" \
	" ELSE floor(" e " / 86400) || 'd'" \
	"  || lpad((floor(" e " / 3600) % 24)::text, 2, '0') || 'h' END"

typedef struct wf_args
{
	const char *db;
	const char *id;
	const char *fn;				/* ls */
	const char *status;
	const char *limit;
	const char *from_step;		/* fork */
	const char *version;
} wf_args;

/* s is a whole number from min to max, digits only (and a leading '-'). */
static bool
whole_number(const char *s, long long min, long long max)
{
	char	   *end;
	long long	v;

	if (!(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0' && v >= min && v <= max;
}

static int
wf_ls(PGconn *conn, const wf_args *a)
{
	const char *params[3] = {a->fn, a->status, a->limit ? a->limit : "20"};
	PGresult   *res;
	int			rc = 0;

	res = exec_params(conn,
					  "SELECT i.id, i.fn || ':' || i.version AS function, t.status,"
					  " s.done || '/' || s.total AS steps,"
					  " " WF_DURATION("t.age") " AS age,"
					  " " WF_DURATION("t.took") " AS took"
					  " FROM fx.invocation i"
					  " CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE x.done) AS done,"
					  "  count(*) AS total FROM fx.step x WHERE x.invocation_id = i.id) s"
					  " CROSS JOIN LATERAL (SELECT " WF_STATUS " AS status,"
					  "  extract(epoch FROM now() - i.created_at)::numeric AS age,"
					  "  extract(epoch FROM i.finished_at - i.created_at)::numeric AS took) t"
					  " WHERE s.total > 0 AND ($1::text IS NULL OR i.fn = $1)"
					  " AND ($2::text IS NULL OR t.status = $2)"
					  " ORDER BY i.id DESC LIMIT $3::int", 3, params);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = report(res);
	else
		print_table(res);
	PQclear(res);
	return rc;
}

/* One "label  value" line of fx wf show's header. */
static void
wf_line(const char *label, const char *value)
{
	printf("%-10s%s\n", label, value);
}

static int
wf_show(PGconn *conn, const wf_args *a)
{
	const char *params[1] = {a->id};
	PGresult   *steps;
	PGresult   *res;
	char	   *line;

	/* The steps first: for an unknown id, fx_workflow_steps says so. */
	steps = exec_params(conn,
						"SELECT s.step, s.kind, s.name,"
						" CASE WHEN NOT s.done THEN 'waiting' WHEN s.error IS NOT NULL THEN 'failed'"
						"  ELSE 'done' END AS state,"
						" CASE WHEN s.done THEN coalesce(round(s.ms::numeric, 1)::text, '')"
						"  ELSE '' END AS ms,"
						" coalesce(s.child::text, '') AS child,"
						" CASE WHEN length(o.text) > 60 THEN left(o.text, 57) || '...'"
						"  ELSE o.text END AS output"
						" FROM fx_workflow_steps($1::bigint) s"
						" CROSS JOIN LATERAL (SELECT translate(CASE WHEN s.error IS NOT NULL"
						"  THEN 'error: ' || s.error ELSE coalesce(s.output::text, '') END,"
						"  E'\\n\\r\\t', '   ') AS text) o"
						" ORDER BY s.step", 1, params);
	if (PQresultStatus(steps) != PGRES_TUPLES_OK)
	{
		report(steps);
		PQclear(steps);
		return 1;
	}
	res = exec_params(conn,
					  "SELECT i.id, i.fn || ':' || i.version, t.status,"
					  " i.attempts || ' of ' || i.max_attempts,"
					  " to_char(i.created_at, 'YYYY-MM-DD HH24:MI:SS'),"
					  " to_char(i.finished_at, 'YYYY-MM-DD HH24:MI:SS'),"
					  " " WF_DURATION("t.took") ","
					  " CASE WHEN t.status <> 'waiting' THEN NULL"
					  "  WHEN i.not_before = 'infinity' THEN 'until a message or a child wakes it'"
					  "  ELSE 'until ' || to_char(i.not_before, 'YYYY-MM-DD HH24:MI:SS') END,"
					  " CASE WHEN length(i.result::text) > 200 THEN left(i.result::text, 197) || '...'"
					  "  ELSE i.result::text END,"
					  " i.error, i.error_detail, i.parent, i.key"
					  " FROM fx.invocation i"
					  " CROSS JOIN LATERAL (SELECT " WF_STATUS " AS status,"
					  "  extract(epoch FROM i.finished_at - i.created_at)::numeric AS took) t"
					  " WHERE i.id = $1::bigint", 1, params);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			report(res);
		else
			fprintf(stderr, "fx: invocation %s does not exist\n", a->id);
		PQclear(res);
		PQclear(steps);
		return 1;
	}
	wf_line("workflow", PQgetvalue(res, 0, 0));
	wf_line("function", PQgetvalue(res, 0, 1));
	line = PQgetisnull(res, 0, 7) ? fx_xstrdup(PQgetvalue(res, 0, 2))
		: fx_xasprintf("%s (%s)", PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 7));
	wf_line("status", line);
	free(line);
	wf_line("attempts", PQgetvalue(res, 0, 3));
	if (!PQgetisnull(res, 0, 11))
		wf_line("parent", PQgetvalue(res, 0, 11));
	if (!PQgetisnull(res, 0, 12))
		wf_line("key", PQgetvalue(res, 0, 12));
	wf_line("created", PQgetvalue(res, 0, 4));
	if (!PQgetisnull(res, 0, 5))
	{
		line = fx_xasprintf("%s (took %s)", PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6));
		wf_line("finished", line);
		free(line);
	}
	if (!PQgetisnull(res, 0, 8))
		wf_line("result", PQgetvalue(res, 0, 8));
	if (!PQgetisnull(res, 0, 9))
		wf_line("error", PQgetvalue(res, 0, 9));
	if (!PQgetisnull(res, 0, 10))
		wf_line("detail", PQgetvalue(res, 0, 10));
	printf("\n");
	if (PQntuples(steps) == 0)
		printf("no steps recorded\n");
	else
		print_table(steps);
	PQclear(res);
	PQclear(steps);
	return 0;
}

/* Run a statement returning one value; print it between before and after. */
static int
wf_call(PGconn *conn, const char *sql, int n, const char *const *params,
		const char *before, const char *after)
{
	PGresult   *res = exec_params(conn, sql, n, params);
	int			rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = report(res);
	else
		printf("%s%s%s\n", before, PQgetvalue(res, 0, 0), after);
	PQclear(res);
	return rc;
}

static int
wf_cancel(PGconn *conn, const wf_args *a)
{
	const char *params[1] = {a->id};

	return wf_call(conn, "SELECT fx_workflow_cancel($1::bigint)", 1, params,
				   "cancelled ", " invocation(s)");
}

static int
wf_resume(PGconn *conn, const wf_args *a)
{
	const char *params[1] = {a->id};

	return wf_call(conn, "SELECT fx_workflow_resume($1::bigint)", 1, params,
				   "resumed workflow ", "");
}

static int
wf_fork(PGconn *conn, const wf_args *a)
{
	const char *params[3] = {a->id, a->from_step, a->version};

	return wf_call(conn, "SELECT fx_workflow_fork($1::bigint, $2::int, $3::int)", 3, params,
				   "", "");
}

int
fx_cli_wf(int argc, char **argv)
{
	static struct option opts[] = {
		{"fn", required_argument, NULL, 'f'}, {"status", required_argument, NULL, 's'},
		{"limit", required_argument, NULL, 'l'}, {"from-step", required_argument, NULL, 'F'},
		{"version", required_argument, NULL, 'v'}, {"db", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'}, {0}
	};
	/* Each subcommand: whether it takes an ID, and the options it takes besides --db. */
	static const struct
	{
		const char *name;
		bool		id;
		const char *options;
		int			(*run) (PGconn *conn, const wf_args *a);
	}			cmds[] = {
		{"ls", false, "fsl", wf_ls}, {"show", true, "", wf_show},
		{"cancel", true, "", wf_cancel}, {"resume", true, "", wf_resume},
		{"fork", true, "Fv", wf_fork},
	};
	wf_args		a = {0};
	char		given[8] = "";
	int			cmd = -1;
	PGconn	   *conn;
	int			c;
	int			rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'f':
				a.fn = optarg;
				break;
			case 's':
				a.status = optarg;
				break;
			case 'l':
				a.limit = optarg;
				break;
			case 'F':
				a.from_step = optarg;
				break;
			case 'v':
				a.version = optarg;
				break;
			case 'd':
				a.db = optarg;
				continue;
			case 'h':
				printf("%s", wf_usage);
				return 0;
			default:
				return usage(wf_usage);
		}
		if (strchr(given, c) == NULL)
			given[strlen(given)] = (char) c;
	}
	/* getopt_long has moved the words that are not options to the end. */
	if (argc - optind >= 1)
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			if (strcmp(argv[optind], cmds[i].name) == 0)
				cmd = (int) i;
	if (cmd < 0)
	{
		if (argc - optind >= 1)
			fprintf(stderr, "fx: unknown wf command \"%s\"\n", argv[optind]);
		return usage(wf_usage);
	}
	if (argc - optind != (cmds[cmd].id ? 2 : 1))
		return usage(wf_usage);
	for (const char *g = given; *g; g++)
		if (strchr(cmds[cmd].options, *g) == NULL)
		{
			int			k = 0;

			while (opts[k].val != *g)
				k++;
			fprintf(stderr, "fx: fx wf %s takes no --%s\n", cmds[cmd].name, opts[k].name);
			return usage(wf_usage);
		}
	if (cmds[cmd].id)
	{
		a.id = argv[optind + 1];
		if (!whole_number(a.id, 0, 9223372036854775807LL))
		{
			fprintf(stderr, "fx: a workflow id is a number, not \"%s\"\n", a.id);
			return usage(wf_usage);
		}
	}
	if (a.status)
	{
		int			i = 0;

		while (wf_statuses[i] && strcmp(wf_statuses[i], a.status) != 0)
			i++;
		if (wf_statuses[i] == NULL)
		{
			fprintf(stderr, "fx: unknown status \"%s\"\n", a.status);
			return usage(wf_usage);
		}
	}
	if (a.limit && !whole_number(a.limit, 1, 1000000000))
	{
		fprintf(stderr, "fx: --limit must be a positive whole number, not \"%s\"\n", a.limit);
		return usage(wf_usage);
	}
	if (strcmp(cmds[cmd].name, "fork") == 0 && a.from_step == NULL)
	{
		fprintf(stderr, "fx: fx wf fork needs --from-step N\n");
		return usage(wf_usage);
	}
	if (a.from_step && !whole_number(a.from_step, -2147483647LL - 1, 2147483647))
	{
		fprintf(stderr, "fx: --from-step must be a whole number, not \"%s\"\n", a.from_step);
		return usage(wf_usage);
	}
	if (a.version && !whole_number(a.version, 1, 2147483647))
	{
		fprintf(stderr, "fx: --version must be a version number, not \"%s\"\n", a.version);
		return usage(wf_usage);
	}
	if ((conn = connect_db(a.db)) == NULL)
		return 1;
	rc = cmds[cmd].run(conn, &a);
	PQfinish(conn);
	return rc;
}
