/*
 * fx.c: module entry point and configuration (GUCs fx.*).
 *
 * Everything a session can set is validated here once; the rest of the
 * extension reads the globals.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "fx.h"

PG_MODULE_MAGIC;

int			fx_max_payload_size = 6 * 1024 * 1024;
int			fx_max_bundle_size = 64 * 1024 * 1024;
char	   *fx_loopback_conninfo = NULL;
bool		fx_sync_waiter = false;
char	   *fx_invoke_as = NULL;
int			fx_max_state_size = 1024 * 1024;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(fx_max_state_size_fn);
PG_FUNCTION_INFO_V1(fx_caller);

/* fx.max_state_size(): the limit, in bytes, for workers to check against. */
Datum
fx_max_state_size_fn(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_INT32(fx_max_state_size);
}

/*
 * fx.caller(): the role the session acts as (current_user outside any
 * SECURITY DEFINER function), which fx's SECURITY DEFINER functions check
 * rights against: inside them current_user is fx's owner.
 */
Datum
fx_caller(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	PG_RETURN_OID(GetOuterUserId());
}

void
_PG_init(void)
{
	DefineCustomIntVariable("fx.max_payload_size",
							"Largest args JSON fx_invoke and fx_call accept.",
							"The default is 6 MB, as for AWS Lambda's synchronous invocations.",
							&fx_max_payload_size,
							6 * 1024 * 1024, 1024, MaxAllocSize,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("fx.max_bundle_size",
							"Largest code bundle fx_deploy accepts.",
							NULL,
							&fx_max_bundle_size,
							64 * 1024 * 1024, 1024, MaxAllocSize,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("fx.max_state_size",
							"Largest per-key state value (as JSON text) a function may set.",
							NULL,
							&fx_max_state_size,
							1024 * 1024, 16, MaxAllocSize,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomStringVariable("fx.loopback_conninfo",
							   "Connection string fx_call and fx_result use to reach this server.",
							   "Empty means this server's first Unix socket, as the current user, in the current database.",
							   &fx_loopback_conninfo,
							   "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("fx.sync_waiter",
							 "Internal: marks the session fx_call enqueues through.",
							 NULL,
							 &fx_sync_waiter,
							 false,
							 PGC_USERSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("fx.invoke_as",
							   "Internal: the role fx's own code enqueues for (a schedule's, a token's, a workflow's).",
							   "Honoured only for workers, administrators and superusers.",
							   &fx_invoke_as,
							   "",
							   PGC_USERSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("fx");
}
