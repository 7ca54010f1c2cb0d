/*
 * fx_common.h: names and limits shared by the worker, the CLI and tests.
 *
 * Includes neither postgres.h nor uv.h.  The status list mirrors the SQL
 * enum fx.status (sql/fx--0.1.sql); tests/regress/sql/status.sql checks
 * the SQL side.
 */
#ifndef FX_COMMON_H
#define FX_COMMON_H

#define FX_PROTOCOL_VERSION 1
#define FX_MAX_MESSAGE (64u * 1024 * 1024)	/* one protocol message */
#define FX_SESSION_FD 3			/* session socket inside the function */

typedef enum fx_status
{
	FX_QUEUED,
	FX_RUNNING,
	FX_SUCCEEDED,
	FX_FAILED,
	FX_DEAD,
	FX_CANCELLED
} fx_status;

#define FX_STATUS_NAMES \
	{ "queued", "running", "succeeded", "failed", "dead", "cancelled" }

#endif							/* FX_COMMON_H */
