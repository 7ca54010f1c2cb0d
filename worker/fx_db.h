/*
 * fx_db.h: one libpq connection driven by the libuv loop.
 *
 * Queries are queued and sent one at a time in non-blocking mode; each
 * result reaches its callback.  A query made while not connected fails at
 * once (its callback gets res == NULL).  When the connection is lost every queued
 * query's callback gets res == NULL, and the connection is re-established
 * with backoff; on_ready runs after every (re)connect, before any queued
 * query is sent.  Notifications (LISTEN) go to on_notify.
 *
 * fx_db_query_prepared is for the few statements a connection sends over
 * and over: each is parsed once per session (prepared on its first use, in
 * the round trip before it) instead of on every call.
 */
#ifndef FX_DB_H
#define FX_DB_H

#include <stdbool.h>

#include <libpq-fe.h>
#include <uv.h>

typedef struct fx_db fx_db;

#define FX_DB_MAX_STMTS 16

/* res is NULL if the connection was lost; it is freed after the callback. */
typedef void (*fx_db_cb) (fx_db *db, PGresult *res, void *arg);

typedef struct fx_db_query
{
	char	   *sql;
	int			nparams;		/* -1: simple protocol */
	char	  **params;
	int			binary;			/* ask for the result in binary format */
	int			stmt;			/* index into fx_db.stmts, or -1 */
	bool		preparing;		/* its PQsendPrepare is on the wire */
	fx_db_cb	cb;
	void	   *arg;
	struct fx_db_query *next;
} fx_db_query;

typedef enum fx_db_state
{
	FX_DB_DOWN,					/* waiting to reconnect */
	FX_DB_CONNECTING,
	FX_DB_READY,
	FX_DB_CLOSED				/* fx_db_close called */
} fx_db_state;

struct fx_db
{
	uv_loop_t  *loop;
	char	   *conninfo;
	char	   *appname;
	char	   *user;			/* log in as this role (NULL: the conninfo's) */
	bool		reconnect;		/* after a loss (default); else stay DOWN */
	PGconn	   *conn;
	uv_poll_t  *poll;			/* on PQsocket(conn); replaced per connection */
	int			poll_fd;
	uv_timer_t	retry;
	unsigned	backoff_ms;
	fx_db_state state;
	bool		sent;			/* head query is on the wire */
	bool		ready_done;		/* on_ready ran for this connection */
	PGresult   *last;			/* newest result of the query on the wire */
	fx_db_query *head;
	fx_db_query *tail;
	char	   *stmts[FX_DB_MAX_STMTS];	/* SQL of prepared statements "fxN" */
	bool		prepared[FX_DB_MAX_STMTS];	/* ... on this connection */
	int			nstmts;
	void	   *data;
	void		(*on_ready) (fx_db *db);
	void		(*on_notify) (fx_db *db, const char *channel, const char *payload);
	void		(*on_lost) (fx_db *db);
	void		(*on_closed) (fx_db *db);
};

void		fx_db_init(fx_db *db, uv_loop_t *loop, const char *conninfo,
					   const char *appname);
void		fx_db_start(fx_db *db);
void		fx_db_query_params(fx_db *db, const char *sql, int nparams,
							   const char *const *params, fx_db_cb cb, void *arg);
void		fx_db_query_binary(fx_db *db, const char *sql, int nparams,
							   const char *const *params, fx_db_cb cb, void *arg);
/* The same as fx_db_query_params, as a statement prepared once per session. */
void		fx_db_query_prepared(fx_db *db, const char *sql, int nparams,
								 const char *const *params, fx_db_cb cb, void *arg);
/* A simple-protocol query: several statements, no parameters. */
void		fx_db_query_simple(fx_db *db, const char *sql, fx_db_cb cb, void *arg);
bool		fx_db_idle(fx_db *db);
void		fx_db_close(fx_db *db);

/* The SQLSTATE and message of a failed result, for logs. */
const char *fx_db_error(PGresult *res);

#endif							/* FX_DB_H */
