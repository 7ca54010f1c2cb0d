/*
 * fx_function.c: fx_deploy(), the handler store.
 *
 * A deploy validates the name, command, options and bundle, then stores an
 * immutable version and points the alias "live" at it.  Deploying exactly
 * what the newest version already holds (same bundle hash, command and
 * options) returns that version instead of making a new one, so that
 * repeated deploys of unchanged code are idempotent.
 *
 * The bundle is a tar archive (optionally compressed); every member must be
 * a regular file, directory or symbolic link with a relative path that stays
 * inside the bundle.  fx_deploy(name, source text, ...) wraps source as the
 * single executable file "main".
 */
#include "postgres.h"

#include <archive.h>
#include <archive_entry.h>

#include "access/genam.h"
#include "access/table.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "fx.h"

PG_FUNCTION_INFO_V1(fx_deploy_bundle);
PG_FUNCTION_INFO_V1(fx_deploy_source);

/* Options a deploy accepts, with their defaults (also in README.md). */
typedef struct FxOptions
{
	const char *mode;
	int			memory_mb;
	int			timeout_ms;
	int			retries;
	double		cpu;
	int			pids;
	int			tmp_mb;
	bool		net;
	bool		image;			/* the bundle is a container image */
	char	   *env_json;		/* normalised JSON object */
	char	   *role;			/* the role its sql runs as, or NULL */
} FxOptions;

#define FX_OPTION_NAMES "mode, memory_mb, timeout_ms, retries, cpu, pids, tmp_mb, net, image, env, role"

static void
check_name(const char *name)
{
	const char *p;
	size_t		len = strlen(name);
	bool		ok = len >= 1 && len <= 63 && name[0] >= 'a' && name[0] <= 'z';

	for (p = name; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			*p == '_' || *p == '-';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid function name \"%s\"", name),
				 errdetail("A function name starts with a lower-case letter and has at most 63 lower-case letters, digits, \"_\" and \"-\".")));
}

static ArrayType *
check_command(ArrayType *command, bool image)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (command == NULL && image)	/* the image's entrypoint and cmd */
		return construct_empty_array(TEXTOID);
	if (command == NULL)
	{
		Datum		d = CStringGetTextDatum("./main");

		return construct_array(&d, 1, TEXTOID, -1, false, TYPALIGN_INT);
	}
	if (ARR_NDIM(command) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("command must be a one-dimensional array")));
	deconstruct_array(command, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0 || nulls[0] || VARSIZE_ANY_EXHDR(DatumGetPointer(elems[0])) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("command must name a program"),
				 errhint("For example ARRAY['./main'] or ARRAY['python3', 'main.py'].")));
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("command must not contain null elements")));
	return command;
}

static void
option_error(const char *key, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for option \"%s\"", key),
			 errdetail("%s", detail)));
}

static int
option_int(const char *key, JsonbValue *v, int min, int max)
{
	double		d;

	if (v->type != jbvNumeric)
		option_error(key, "The value must be a number.");
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
										   NumericGetDatum(v->val.numeric)));
	if (!(d >= min && d <= max) || d != (double) (int) d)
		option_error(key, psprintf("The value must be a whole number from %d to %d.", min, max));
	return (int) d;
}

static void
option_env(FxOptions *o, JsonbValue *v)
{
	JsonbIterator *it;
	JsonbValue	k,
				val;
	JsonbIteratorToken tok;
	StringInfoData buf;

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		option_error("env", "The value must be an object of strings.");
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		if (*name == '\0')
			option_error("env", "\"\" is not a valid environment variable name.");
		for (char *p = name; *p; p++)
			if (!(isalnum((unsigned char) *p) || *p == '_') || (p == name && isdigit((unsigned char) *p)))
				option_error("env", psprintf("\"%s\" is not a valid environment variable name.", name));
		if (strncmp(name, "FX_", 3) == 0)
			option_error("env", psprintf("\"%s\": names starting with FX_ are reserved.", name));
		tok = JsonbIteratorNext(&it, &val, true);
		if (val.type != jbvString)
			option_error("env", psprintf("The value of \"%s\" must be a string.", name));
		if (buf.len > 1)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, name);
		appendStringInfoChar(&buf, ':');
		escape_json(&buf, pnstrdup(val.val.string.val, val.val.string.len));
	}
	appendStringInfoChar(&buf, '}');
	if (buf.len > 4096)
		option_error("env", "The variables must fit in 4 KB, as on AWS Lambda.");
	o->env_json = buf.data;
}

/* Whether role is a member, directly or not, of a superuser role. */
static bool
has_superuser_role(Oid role)
{
	Relation	rel = table_open(AuthIdRelationId, AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	HeapTuple	tup;
	bool		found = false;

	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_authid r = (Form_pg_authid) GETSTRUCT(tup);

		found = r->rolsuper && is_member_of_role(role, r->oid);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The role a function's sql runs as: the worker logs in as it, so it must
 * exist, be able to log in, and not be a superuser.
 */
static void
option_role(FxOptions *o, JsonbValue *v)
{
	HeapTuple	tup;
	Form_pg_authid role;
	char	   *name;

	if (v->type != jbvString || v->val.string.len == 0)
		option_error("role", "The value must be the name of a role.");
	name = pnstrdup(v->val.string.val, v->val.string.len);
	tup = SearchSysCache1(AUTHNAME, CStringGetDatum(name));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" does not exist", name),
				 errhint("Create it first: CREATE ROLE %s LOGIN, and grant it what the function's sql needs.",
						 quote_identifier(name))));
	role = (Form_pg_authid) GETSTRUCT(tup);
	if (role->rolsuper)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("role \"%s\" is a superuser", name),
				 errdetail("A function's sql never runs as a superuser."),
				 errhint("Create a role of its own for the function: CREATE ROLE fn_%s LOGIN.", name)));
	if (has_superuser_role(role->oid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("role \"%s\" is a member of a superuser role", name),
				 errdetail("Its sql could SET ROLE to that role; a function's sql never runs as a superuser."),
				 errhint("Give the function a role of its own that no superuser role is granted to.")));
	if (!role->rolcanlogin)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("role \"%s\" cannot log in", name),
				 errdetail("The worker runs the function's sql in a session of that role."),
				 errhint("ALTER ROLE %s LOGIN", quote_identifier(name))));
	ReleaseSysCache(tup);
	if (!is_member_of_role(GetUserId(), role->oid) && !fx_is_admin(GetUserId(), false))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to run sql as role \"%s\"", name),
				 errdetail("The deployer must be a member of the role its function's sql runs as."),
				 errhint("GRANT %s TO %s;", quote_identifier(name),
						 quote_identifier(GetUserNameFromId(GetUserId(), false)))));
	o->role = name;
}

static void
parse_option(FxOptions *o, const char *key, JsonbValue *v)
{
	if (strcmp(key, "mode") == 0)
	{
		if (v->type != jbvString)
			option_error(key, "The value must be \"simple\" or \"session\".");
		o->mode = pnstrdup(v->val.string.val, v->val.string.len);
		if (strcmp(o->mode, "simple") != 0 && strcmp(o->mode, "session") != 0)
			option_error(key, "The value must be \"simple\" or \"session\".");
	}
	else if (strcmp(key, "memory_mb") == 0)
		o->memory_mb = option_int(key, v, 16, 65536);
	else if (strcmp(key, "timeout_ms") == 0)
	{
		if (v->type == jbvNumeric &&
			DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(v->val.numeric),
											 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))))
			option_error(key, "A timeout must not be negative.");
		o->timeout_ms = option_int(key, v, 1, 86400000);
	}
	else if (strcmp(key, "retries") == 0)
		o->retries = option_int(key, v, 0, 100);
	else if (strcmp(key, "pids") == 0)
		o->pids = option_int(key, v, 1, 65536);
	else if (strcmp(key, "tmp_mb") == 0)
		o->tmp_mb = option_int(key, v, 0, 65536);
	else if (strcmp(key, "cpu") == 0)
	{
		if (v->type != jbvNumeric)
			option_error(key, "The value must be a number of CPUs, e.g. 0.5.");
		o->cpu = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
													NumericGetDatum(v->val.numeric)));
		if (!(o->cpu >= 0.01 && o->cpu <= 1024))
			option_error(key, "The value must be from 0.01 to 1024 CPUs.");
	}
	else if (strcmp(key, "net") == 0)
	{
		if (v->type != jbvBool)
			option_error(key, "The value must be true or false.");
		o->net = v->val.boolean;
	}
	else if (strcmp(key, "image") == 0)
	{
		if (v->type != jbvBool)
			option_error(key, "The value must be true or false.");
		o->image = v->val.boolean;
	}
	else if (strcmp(key, "env") == 0)
		option_env(o, v);
	else if (strcmp(key, "role") == 0)
		option_role(o, v);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown option \"%s\"", key),
				 errhint("Valid options are: " FX_OPTION_NAMES ".")));
}

static void
parse_options(FxOptions *o, Jsonb *options)
{
	JsonbIterator *it;
	JsonbValue	k,
				v;
	JsonbIteratorToken tok;

	o->mode = "simple";
	o->memory_mb = 128;
	o->timeout_ms = 30000;
	o->retries = 2;
	o->cpu = 1.0;
	o->pids = 256;
	o->tmp_mb = 64;
	o->net = false;
	o->image = false;
	o->env_json = "{}";
	o->role = NULL;
	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("For example '{\"timeout_ms\": 5000, \"mode\": \"session\"}'.")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		parse_option(o, key, &v);
	}
}

static char *
options_json(FxOptions *o)
{
	StringInfoData role;

	initStringInfo(&role);
	if (o->role)
	{
		appendStringInfoString(&role, ", \"role\": ");
		escape_json(&role, o->role);
	}
	return psprintf("{\"mode\": \"%s\", \"memory_mb\": %d, \"timeout_ms\": %d,"
					" \"retries\": %d, \"cpu\": %g, \"pids\": %d, \"tmp_mb\": %d,"
					" \"net\": %s, \"image\": %s, \"env\": %s%s}",
					o->mode, o->memory_mb, o->timeout_ms, o->retries, o->cpu,
					o->pids, o->tmp_mb, o->net ? "true" : "false",
					o->image ? "true" : "false", o->env_json, role.data);
}

static void
bundle_error(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid bundle"),
			 errdetail("%s", detail),
			 errhint("A bundle is a tar archive of the function's directory, as \"fx deploy NAME DIR\" makes.")));
}

static bool
path_escapes(const char *path)
{
	const char *p = path;

	if (*p == '/' || *p == '\0')
		return true;
	while (*p)
	{
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return true;
		p = strchr(p, '/');
		if (p == NULL)
			break;
		p++;
	}
	return false;
}

/* Check every member of the archive; reject anything unsafe to unpack. */
static void
check_bundle(bytea *bundle)
{
	struct archive *a = archive_read_new();
	struct archive_entry *entry;
	int			r;
	int			members = 0;
	char	   *problem = NULL;

	if (VARSIZE_ANY_EXHDR(bundle) > (Size) fx_max_bundle_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("bundle of %zu bytes exceeds the limit of %d bytes",
						(size_t) VARSIZE_ANY_EXHDR(bundle), fx_max_bundle_size),
				 errdetail("The limit is set by fx.max_bundle_size.")));
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_memory(a, VARDATA_ANY(bundle), VARSIZE_ANY_EXHDR(bundle)) != ARCHIVE_OK)
		problem = psprintf("It is not a tar archive: %s.", archive_error_string(a));
	while (problem == NULL && (r = archive_read_next_header(a, &entry)) == ARCHIVE_OK)
	{
		const char *path = archive_entry_pathname(entry);
		mode_t		type = archive_entry_filetype(entry);
		const char *link = archive_entry_symlink(entry);

		members++;
		if (path == NULL || path_escapes(path))
			problem = psprintf("Member \"%s\" has an empty or absolute path, or one with \"..\".", path ? path : "");
		else if (archive_entry_hardlink(entry) != NULL)
			problem = psprintf("Member \"%s\" is a hard link.", path);
		else if (type == AE_IFLNK && (link == NULL || path_escapes(link)))
			problem = psprintf("Symbolic link \"%s\" points outside the bundle.", path);
		else if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
			problem = psprintf("Member \"%s\" is not a file, directory or symbolic link.", path);
	}
	if (problem == NULL && r != ARCHIVE_EOF)
		problem = psprintf("It is not a valid tar archive: %s.", archive_error_string(a));
	if (problem == NULL && members == 0)
		problem = pstrdup("The archive is empty.");
	archive_read_free(a);
	if (problem)
		bundle_error(problem);
}

/* A tar archive holding source as the executable file "main". */
static bytea *
source_bundle(text *source)
{
	struct archive *a = archive_write_new();
	struct archive_entry *entry = archive_entry_new();
	size_t		len = VARSIZE_ANY_EXHDR(source);
	size_t		cap = len + 8192;
	size_t		used = 0;
	bytea	   *out = palloc(VARHDRSZ + cap);

	archive_write_set_format_ustar(a);
	archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open_memory(a, VARDATA(out), cap, &used) != ARCHIVE_OK)
		elog(ERROR, "could not start archive: %s", archive_error_string(a));
	archive_entry_set_pathname(entry, "main");
	archive_entry_set_filetype(entry, AE_IFREG);
	archive_entry_set_perm(entry, 0755);
	archive_entry_set_size(entry, len);
	if (archive_write_header(a, entry) != ARCHIVE_OK ||
		archive_write_data(a, VARDATA_ANY(source), len) != (la_ssize_t) len ||
		archive_write_close(a) != ARCHIVE_OK)
		elog(ERROR, "could not write archive: %s", archive_error_string(a));
	archive_entry_free(entry);
	archive_write_free(a);
	SET_VARSIZE(out, VARHDRSZ + used);
	return out;
}

static char *
sha256_hex(bytea *data)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);

	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		sprintf(hex + 2 * i, "%02x", digest[i]);
	return hex;
}

static void
spi_check(int ret, int expected, const char *what)
{
	if (ret != expected)
		elog(ERROR, "%s failed: %s", what, SPI_result_code_string(ret));
}

/*
 * Lock the function's row, creating it owned by the caller; only its owner
 * (a member of the owning role) or an administrator may deploy to it.
 */
static void
lock_function(const char *name, Oid caller)
{
	Oid			types[2] = {TEXTOID, NAMEOID};
	Datum		values[2];
	bool		isnull;
	char	   *owner;
	Oid			owner_oid;

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetDatum(GetUserNameFromId(caller, false));
	spi_check(SPI_execute_with_args("INSERT INTO fx.function (name, owner) VALUES ($1, $2)"
									" ON CONFLICT (name) DO NOTHING",
									2, types, values, NULL, false, 0),
			  SPI_OK_INSERT, "creating function");
	spi_check(SPI_execute_with_args("SELECT owner::text FROM fx.function WHERE name = $1 FOR UPDATE",
									1, types, values, NULL, false, 1),
			  SPI_OK_SELECT, "locking function");
	owner = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 1, &isnull));
	owner_oid = get_role_oid(owner, true);
	if (!(OidIsValid(owner_oid) && has_privs_of_role(caller, owner_oid)) &&
		!fx_is_admin(caller, false))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of function \"%s\"", name),
				 errdetail("Function \"%s\" belongs to role \"%s\".", name, owner)));
}

static int
store_version(const char *name, bytea *bundle, ArrayType *command, FxOptions *o, Oid caller)
{
	Oid			types[9] = {TEXTOID, BYTEAOID, TEXTOID, TEXTARRAYOID, TEXTOID,
	INT4OID, INT4OID, INT4OID, JSONBOID};
	Datum		values[9];
	bool		isnull;
	int			version;

	values[0] = CStringGetTextDatum(name);
	values[1] = PointerGetDatum(bundle);
	values[2] = CStringGetTextDatum(sha256_hex(bundle));
	values[3] = PointerGetDatum(command);
	values[4] = CStringGetTextDatum(o->mode);
	values[5] = Int32GetDatum(o->memory_mb);
	values[6] = Int32GetDatum(o->timeout_ms);
	values[7] = Int32GetDatum(o->retries);
	values[8] = DirectFunctionCall1(jsonb_in, CStringGetDatum(options_json(o)));

	lock_function(name, caller);
	spi_check(SPI_execute_with_args("SELECT version FROM fx.version WHERE fn = $1"
									" AND version = (SELECT max(version) FROM fx.version WHERE fn = $1)"
									" AND hash = $3 AND command = $4 AND options = $9",
									9, types, values, NULL, false, 1),
			  SPI_OK_SELECT, "comparing versions");
	if (SPI_processed == 0)
		spi_check(SPI_execute_with_args("INSERT INTO fx.version (fn, version, bundle, hash,"
										" command, mode, memory_mb, timeout_ms, retries, options)"
										" SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5,"
										" $6, $7, $8, $9 FROM fx.version WHERE fn = $1"
										" RETURNING version",
										9, types, values, NULL, false, 1),
				  SPI_OK_INSERT_RETURNING, "storing version");
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	values[1] = Int32GetDatum(version);
	types[1] = INT4OID;
	spi_check(SPI_execute_with_args("INSERT INTO fx.alias (fn, alias, version) VALUES ($1, 'live', $2)"
									" ON CONFLICT (fn, alias) DO UPDATE SET version = EXCLUDED.version",
									2, types, values, NULL, false, 0),
			  SPI_OK_INSERT, "moving alias live");
	return version;
}

static int
deploy(FunctionCallInfo fcinfo, bytea *bundle)
{
	char	   *name;
	ArrayType  *command;
	FxOptions	o;
	int			version;
	Oid			caller;
	int			sec;

	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_name(name);
	parse_options(&o, PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));
	command = check_command(PG_ARGISNULL(2) ? NULL : PG_GETARG_ARRAYTYPE_P(2), o.image);
	check_bundle(bundle);

	/*
	 * The rows are written as fx's owner (its tables are not the caller's),
	 * once the caller's right to deploy is checked; an error restores the
	 * caller at (sub)transaction abort.
	 */
	GetUserIdAndSecContext(&caller, &sec);
	SetUserIdAndSecContext(fx_owner(), sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	SPI_connect();
	version = store_version(name, bundle, command, &o, caller);
	SPI_finish();
	SetUserIdAndSecContext(caller, sec);
	fx_deploy_count++;			/* fx_invoke resolves names again */
	return version;
}


/* fx_deploy(name, bundle bytea, command, options) -> version */
Datum
fx_deploy_bundle(PG_FUNCTION_ARGS)
{
	fx_require_args(fcinfo, "bundle");
	PG_RETURN_INT32(deploy(fcinfo, PG_GETARG_BYTEA_PP(1)));
}

/* fx_deploy(name, source text, command, options) -> version */
Datum
fx_deploy_source(PG_FUNCTION_ARGS)
{
	fx_require_args(fcinfo, "source");
	PG_RETURN_INT32(deploy(fcinfo, source_bundle(PG_GETARG_TEXT_PP(1))));
}
