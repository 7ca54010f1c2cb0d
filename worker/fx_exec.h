/*
 * fx_exec.h: running one attempt of an invocation.
 *
 * An attempt runs either in a process of its own (simple mode) or in a warm
 * session process taken from the pool (session mode).  Either way the
 * attempt ends exactly once, through the exec's on_done callback, with its
 * outcome filled in; the process side is cleaned up independently.
 */
#ifndef FX_EXEC_H
#define FX_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "fx_image.h"

typedef struct fx_exec fx_exec;
typedef struct fx_session fx_session;
typedef struct fx_simple fx_simple;

typedef enum fx_start_kind
{
	FX_START_COLD,				/* a new process in a new sandbox */
	FX_START_PREWARMED,			/* a new process in a prewarmed sandbox */
	FX_START_WARM				/* a warm session process */
} fx_start_kind;

enum
{
	FX_STATE_NONE,
	FX_STATE_SET,
	FX_STATE_DELETE
};

typedef struct fx_inv
{
	/* from the claim */
	int64_t		id;
	int			epoch;
	int			attempt;
	char	   *fn;
	int			version;
	char	   *args;			/* JSON text */
	char	   *key;			/* NULL if unkeyed */
	char	   *idem;			/* idempotency key */
	char	   *hash;			/* bundle hash */
	char	  **argv;			/* NULL-terminated command */
	bool		session;		/* protocol mode */
	int			timeout_ms;
	int			memory_mb;
	cJSON	   *options;		/* normalised deploy options */
	char	   *token;			/* the lease's secret: finishes carry it */
	bool		replay;			/* steps may be recorded from an earlier run */
	const char *role;			/* options.role: its sql runs as this */
	struct fx_secrets *secrets; /* its /run/secrets (a reference); NULL until
								 * fetched (fx_secret.h) */

	/* workflow steps (session mode): fx_workflow.h */
	struct fx_wf *wf;

	/* state and sql (session mode) */
	struct fx_txn *txn;			/* open at the first sql request */
	bool		state_loaded;	/* state holds the current value */
	int			state_op;		/* FX_STATE_NONE, _SET or _DELETE */
	cJSON	   *state;			/* the value this attempt sees */

	/* while running */
	fx_exec    *ex;
	char	   *bundle_dir;		/* unpacked bundle (not for images) */
	fx_image   *image;			/* the container image, if it is one */
	int64_t		deadline_ms;
	uint64_t	started_ns;
	uv_timer_t	timer;
	bool		timer_open;
	bool		timed_out;
	bool		cancelled;
	fx_start_kind start;
	fx_simple  *simple;
	fx_session *sess;

	/* outcome */
	bool		finished;
	bool		ok;
	cJSON	   *result;
	char	   *error;
	char	   *detail;
	bool		retryable;
	bool		lost;			/* failed with its sql's connection: not counted */
	double		wall_ms;
	double		cpu_ms;
	long		max_rss_kb;
	cJSON	   *logs;			/* [[ms, stream, line], ...] */
	int			logs_sent;		/* the first ones, sent to fx.log */
	int			logs_stored;	/* the first ones, known to be in fx.log */
	size_t		log_bytes;
	bool		log_truncated;

	struct fx_inv *next;		/* the worker's list */
	struct fx_inv *prev;		/* in the worker's active list, or NULL */
	bool		active;			/* in the worker's active list */
	struct fx_inv *next_waiting;	/* waiting for the same bundle */
	void	   *data;
} fx_inv;

typedef struct fx_exec_config
{
	size_t		max_log_bytes;	/* per attempt */
	size_t		max_result_bytes;
	int			warm_ttl_ms;	/* idle session processes live this long */
	int			max_sessions;	/* warm processes in total */
	const char *python_path;	/* directory of fx.py */
	bool		sandbox;		/* run functions in sandboxes (fx_sandbox.h) */
} fx_exec_config;

struct fx_exec
{
	uv_loop_t  *loop;
	fx_exec_config cfg;
	fx_session *sessions;		/* pool, most recently used first */
	int			nsessions;
	int			closing;		/* session processes still being closed */
	void		(*on_done) (fx_inv *inv);

	/*
	 * A request (state.get, sql, ...) from the session function running
	 * inv: msg parsed, and its text body[0..n); both valid only during the
	 * call.  Answer with fx_exec_reply,
	 * now or later: a reply after the attempt ended is dropped.
	 */
	void		(*on_request) (fx_inv *inv, const char *type, const cJSON *msg,
								   const char *body, size_t n);
	void	   *data;
};

void		fx_exec_init(fx_exec *ex, uv_loop_t *loop, const fx_exec_config *cfg);

/* Run the attempt; inv->bundle_dir must be set.  Ends in ex->on_done. */
void		fx_exec_start(fx_exec *ex, fx_inv *inv);

/* End a running attempt early (cancelled, or the worker is stopping). */
void		fx_exec_kill(fx_exec *ex, fx_inv *inv, const char *why);

/* Answer request seq of inv with value (taken) or an error and SQLSTATE. */
void		fx_exec_reply(fx_inv *inv, const cJSON *seq, cJSON *value,
						  const char *error, const char *code);

/*
 * A simple-mode result: stdout out[0..len) (NUL-terminated) as a raw
 * cJSON item, null if it is empty or blank.  NULL if it is not JSON that
 * PostgreSQL's jsonb takes, and *why (allocated) says so: "is not valid
 * JSON for PostgreSQL: \u0000 in a string at byte 9".
 */
cJSON	   *fx_exec_result(const char *out, size_t len, char **why);

/*
 * Session framing (docs/protocol.md): the message at the start of
 * buf[0..len).  1 with its body in (*body)[0..*n), which takes 4 + *n
 * bytes of buf; 0 if it is not all there yet; -EMSGSIZE if it announces
 * more than FX_MAX_MESSAGE bytes.
 */
int			fx_frame_next(const char *buf, size_t len, const char **body, size_t *n);

/*
 * A message body parsed (fx_json_parse_message): a JSON object with a
 * string "type", else NULL.  *why (allocated) is NULL if the body is JSON
 * that PostgreSQL takes (fx_json_check), else says why not ("is not valid
 * JSON for PostgreSQL: ...", "has more than 65535 elements in
 * \"params\""); the message then holds only its "type", "id" and "seq",
 * for the answer.  The caller frees *why.
 */
cJSON	   *fx_message_parse(const char *body, size_t n, char **why);

/* Close every warm session process. */
void		fx_exec_shutdown(fx_exec *ex);

/*
 * fn's secrets changed: end its warm session processes, the idle ones now
 * and the busy ones after their attempt (which goes on with the old values).
 */
void		fx_exec_retire(fx_exec *ex, const char *fn);

/* Failing an attempt that never started (e.g. its bundle is missing). */
void		fx_inv_fail(fx_inv *inv, bool retryable, const char *error,
						const char *detail);
void		fx_inv_free(fx_inv *inv);

/* Keep a log line of the attempt (bounded). */
void		fx_inv_log(fx_inv *inv, const char *stream, const char *line, size_t n);

#endif							/* FX_EXEC_H */
