/*
 * fx.h: declarations shared by the files of the fx extension.
 */
#ifndef FX_EXT_H
#define FX_EXT_H

#include "postgres.h"
#include "fmgr.h"
#include "utils/jsonb.h"

/* GUCs, defined in fx.c */
extern int	fx_max_payload_size;	/* bytes of args JSON */
extern int	fx_max_bundle_size;		/* bytes of a code bundle */
extern char *fx_invoke_as;		/* fx.invoke_as: who fx's own code enqueues for */
extern char *fx_loopback_conninfo;	/* how fx_call reaches this server */
extern bool fx_sync_waiter;			/* internal: set on fx_call's own session */
extern int	fx_max_state_size;

/* A resolved function version (fx_invoke.c). */
typedef struct FxTarget
{
	char	   *fn;					/* function name, without qualifier */
	int			version;
	int			retries;
	int			timeout_ms;
} FxTarget;

extern void fx_resolve(const char *ref, FxTarget *target);
extern uint64 fx_deploy_count;	/* deploys by this backend */
extern void fx_check_payload(Jsonb *args, const char *what);
extern void fx_require_args(FunctionCallInfo fcinfo, const char *what);
extern Oid	fx_owner(void);		/* owner of schema fx and its tables */
extern bool fx_is_admin(Oid role, bool or_worker);

#endif							/* FX_EXT_H */
