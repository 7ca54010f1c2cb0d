/*
 * fx_txn.h: an invocation's own transaction, for the function's sql.
 *
 * The transaction opens at the function's first sql request, in a session
 * logged in as the role named at deploy (connections are pooled per role),
 * and ends with the invocation: fx_txn_commit records the completion with
 * fx.finish_tx() and commits only if the lease still holds; fx_txn_abort
 * rolls back.  Each statement runs under a savepoint, so a failing one is
 * undone alone and the function may go on.  The transaction is bounded by
 * the function's timeout (statement_timeout and
 * idle_in_transaction_session_timeout), so a worker that stalls holds no
 * locks for long.
 */
#ifndef FX_TXN_H
#define FX_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

typedef struct fx_txn fx_txn;
typedef struct fx_txn_conn fx_txn_conn;

typedef struct fx_txn_pool
{
	uv_loop_t  *loop;
	char	   *conninfo;
	char	   *appname;
	fx_txn_conn *idle;			/* connected, no transaction */
	int			nidle;
	int			nopen;			/* connections in all */
	int			max_idle;		/* keep at most this many idle */
	bool		closing;		/* shut down: no more idle connections */
	void		(*on_closed) (struct fx_txn_pool *pool);	/* all closed after shutdown */
} fx_txn_pool;

/*
 * A statement's outcome: res is NULL if it could not run, with why: the
 * connection was lost, or the transaction could not begin.
 */
typedef void (*fx_txn_sql_cb) (void *arg, PGresult *res, const char *why);

typedef enum fx_txn_outcome
{
	FX_TXN_COMMITTED,			/* completion and writes committed */
	FX_TXN_REFUSED,				/* the lease moved: nothing committed */
	FX_TXN_FAILED,				/* error: nothing committed, or unknown */
	FX_TXN_LOST					/* the connection was lost: nothing committed, or unknown */
} fx_txn_outcome;

typedef void (*fx_txn_commit_cb) (void *arg, fx_txn_outcome outcome, const char *why);

void		fx_txn_pool_init(fx_txn_pool *pool, uv_loop_t *loop, const char *conninfo,
							 const char *appname);
/* Close idle connections now, the others when their transaction ends. */
void		fx_txn_pool_shutdown(fx_txn_pool *pool);
void		fx_txn_pool_free(fx_txn_pool *pool);

/* Open a transaction as role, bounded by timeout_ms. */
fx_txn	   *fx_txn_open(fx_txn_pool *pool, const char *role, int timeout_ms);

/* Run one statement under a savepoint; its result goes to cb. */
void		fx_txn_sql(fx_txn *t, const char *query, int nparams,
					   const char *const *params, fx_txn_sql_cb cb, void *arg);

/*
 * Record the completion item (fx.finish_tx's JSON) and commit if the lease
 * (owner, token) still holds; then the transaction is gone.
 */
void		fx_txn_commit(fx_txn *t, const char *owner, const char *token,
						  const char *item, int backoff_ms, fx_txn_commit_cb cb, void *arg);

/*
 * The same for an inline step of a workflow: record step (when it began,
 * its name and output, JSON text) with fx.step_tx() and commit, without waiting for the
 * disk (docs/protocol.md, "Workflows").
 */
void		fx_txn_commit_step(fx_txn *t, const char *owner, const char *token,
							   int64_t id, int step, int64_t began_ms, const char *name,
							   const char *output, fx_txn_commit_cb cb, void *arg);
/* Whether the transaction's connection was lost (not the function's doing). */
bool		fx_txn_lost(const fx_txn *t);

/* Roll back and forget the transaction; pending callbacks still run. */
void		fx_txn_abort(fx_txn *t);

/* NULL if query may run in the transaction, else why not. */
const char *fx_txn_refuse(const char *query);

#endif							/* FX_TXN_H */
