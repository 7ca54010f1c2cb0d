/*
 * fx_request.h: answering a session function's requests (state.get,
 * state.set, state.delete, sql; docs/protocol.md, "State and SQL").
 *
 * State is kept on the attempt (fx_inv) until it finishes: the first
 * state.get reads the committed value, writes stay in memory and go to the
 * database with the attempt's completion (fx.finish or fx.finish_tx), in
 * the same transaction.  That is correct because a key has one writer at a
 * time.  sql runs in the attempt's own transaction (fx_txn).
 */
#ifndef FX_REQUEST_H
#define FX_REQUEST_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "fx_db.h"
#include "fx_exec.h"
#include "fx_txn.h"

typedef struct fx_requests
{
	fx_db	   *db;				/* the worker's connection, for state reads */
	fx_txn_pool *txns;
	int			max_state_size; /* bytes of JSON text */
	/* the attempt (id, epoch) if it is still running, else NULL */
	fx_inv	   *(*find) (void *arg, int64_t id, int epoch);
	void	   *arg;
} fx_requests;

/* msg is the request parsed, body[0..n) its text (fx_exec's on_request). */
void		fx_request_handle(fx_requests *r, fx_inv *inv, const char *type,
							  const cJSON *msg, const char *body, size_t n);

#endif							/* FX_REQUEST_H */
