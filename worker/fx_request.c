/*
 * fx_request.c: a session function's state and sql requests.
 *
 * An answer that needs the database comes back later; by then the attempt
 * may be over (timed out, killed), so a pending request remembers the
 * attempt by (id, epoch) and finds it again, and drops the answer if it is
 * gone.
 */
#include <stdlib.h>
#include <string.h>

#include "fx_json.h"
#include "fx_log.h"
#include "fx_request.h"

typedef struct pending
{
	fx_requests *r;
	int64_t		id;
	int			epoch;
	cJSON	   *seq;
} pending;

static pending *
pending_new(fx_requests *r, fx_inv *inv, const cJSON *seq)
{
	pending    *p = fx_xcalloc(1, sizeof(*p));

	p->r = r;
	p->id = inv->id;
	p->epoch = inv->epoch;
	p->seq = cJSON_Duplicate(seq, true);
	return p;
}

/* The attempt p was made for, if it is still running; frees p if not. */
static fx_inv *
pending_take(pending *p)
{
	fx_inv	   *inv = p->r->find(p->r->arg, p->id, p->epoch);

	if (inv == NULL)
	{
		cJSON_Delete(p->seq);
		free(p);
	}
	return inv;
}

static void
pending_reply(pending *p, fx_inv *inv, cJSON *value, const char *error, const char *code)
{
	fx_exec_reply(inv, p->seq, value, error, code);
	cJSON_Delete(p->seq);
	free(p);
}

/* ---------------------------------------------------------------------
 * State
 * --------------------------------------------------------------------- */

static void
state_read_cb(fx_db *db, PGresult *res, void *arg)
{
	pending    *p = arg;
	fx_inv	   *inv = pending_take(p);

	(void) db;
	if (inv == NULL)
		return;
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		pending_reply(p, inv, NULL, res ? fx_db_error(res) : "the database connection was lost",
					  res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "08006");
		return;
	}
	if (!inv->state_loaded)
	{
		inv->state = PQntuples(res) == 1 ? cJSON_CreateRaw(PQgetvalue(res, 0, 0)) : NULL;
		inv->state_loaded = true;
	}
	pending_reply(p, inv, inv->state ? cJSON_Duplicate(inv->state, true) : NULL, NULL, NULL);
}

static void
state_get(fx_requests *r, fx_inv *inv, const cJSON *seq)
{
	const char *params[2] = {inv->fn, inv->key};

	if (inv->state_loaded)
	{
		fx_exec_reply(inv, seq, inv->state ? cJSON_Duplicate(inv->state, true) : NULL,
					  NULL, NULL);
		return;
	}
	fx_db_query_prepared(r->db, "SELECT value FROM fx.state WHERE fn = $1 AND key = $2",
					   2, params, state_read_cb, pending_new(r, inv, seq));
}

static void
state_set(fx_requests *r, fx_inv *inv, const cJSON *seq, const char *body, size_t len)
{
	size_t		n;
	const char *value = fx_json_member(body, len, "value", &n);

	if (value == NULL)
	{
		fx_exec_reply(inv, seq, NULL, "state.set needs a \"value\"", "22023");
		return;
	}
	if (n > (size_t) r->max_state_size)
	{
		char	   *why = fx_xasprintf("state of %zu bytes exceeds the limit of %d bytes (fx.max_state_size)",
									   n, r->max_state_size);

		fx_exec_reply(inv, seq, NULL, why, "54000");
		free(why);
		return;
	}
	cJSON_Delete(inv->state);
	inv->state = fx_json_raw(value, n);		/* as written: see fx_json.h */
	inv->state_loaded = true;
	inv->state_op = FX_STATE_SET;
	fx_exec_reply(inv, seq, NULL, NULL, NULL);
}

static void
state_delete(fx_inv *inv, const cJSON *seq)
{
	cJSON_Delete(inv->state);
	inv->state = NULL;
	inv->state_loaded = true;
	inv->state_op = FX_STATE_DELETE;
	fx_exec_reply(inv, seq, NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * SQL
 * --------------------------------------------------------------------- */

/* One column value as JSON, by its type. */
static cJSON *
column_value(PGresult *res, int row, int col)
{
	const char *v = PQgetvalue(res, row, col);

	if (PQgetisnull(res, row, col))
		return cJSON_CreateNull();
	switch (PQftype(res, col))
	{
		case 16:				/* bool */
			return cJSON_CreateBool(v[0] == 't');
		case 20:				/* int8 */
		case 21:				/* int2 */
		case 23:				/* int4 */
		case 26:				/* oid */
		case 700:				/* float4 */
		case 701:				/* float8 */
		case 1700:				/* numeric */
			if (strspn(v, "0123456789+-.eE") == strlen(v))	/* not NaN, Infinity */
				return cJSON_CreateRaw(v);
			return cJSON_CreateString(v);
		case 114:				/* json */
		case 3802:				/* jsonb */
			return cJSON_CreateRaw(v);
		default:
			return cJSON_CreateString(v);
	}
}

static cJSON *
rows_value(PGresult *res)
{
	cJSON	   *value = cJSON_CreateObject();
	cJSON	   *rows = cJSON_AddArrayToObject(value, "rows");
	const char *tuples = PQcmdTuples(res);
	char		command[32];
	int			nrows = PQntuples(res);
	int			ncols = PQnfields(res);

	for (int i = 0; i < nrows; i++)
	{
		cJSON	   *row = cJSON_CreateObject();

		for (int j = 0; j < ncols; j++)
			cJSON_AddItemToObject(row, PQfname(res, j), column_value(res, i, j));
		cJSON_AddItemToArray(rows, row);
	}
	cJSON_AddNumberToObject(value, "count", tuples[0] ? atof(tuples) : nrows);
	snprintf(command, sizeof(command), "%s", PQcmdStatus(res));
	command[strcspn(command, " ")] = '\0';
	cJSON_AddStringToObject(value, "command", command);
	return value;
}

static void
sql_cb(void *arg, PGresult *res, const char *why)
{
	pending    *p = arg;
	fx_inv	   *inv = pending_take(p);
	const char *msg;
	const char *code;

	if (inv == NULL)
		return;
	if (res == NULL)
	{
		pending_reply(p, inv, NULL, why, "08006");
		return;
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
	{
		pending_reply(p, inv, rows_value(res), NULL, NULL);
		return;
	}
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	pending_reply(p, inv, NULL, msg ? msg : PQresultErrorMessage(res), code ? code : "XX000");
}

/*
 * A JSON parameter as text: a string as its characters, null as NULL, the
 * rest (numbers above all) as the function wrote them.
 */
static char *
param_text(const cJSON *v, const char *text, size_t len)
{
	char	   *copy;

	if (cJSON_IsNull(v))
		return NULL;
	if (cJSON_IsString(v))
		return fx_xstrdup(v->valuestring);
	copy = fx_xmalloc(len + 1);
	memcpy(copy, text, len);
	copy[len] = '\0';
	return copy;
}

static void
sql(fx_requests *r, fx_inv *inv, const cJSON *msg, const cJSON *seq, const char *body,
	size_t len)
{
	const cJSON *query = cJSON_GetObjectItem(msg, "query");
	const cJSON *params = cJSON_GetObjectItem(msg, "params");
	const char *refused;
	int			n;
	char	  **values;

	if (inv->role == NULL)
	{
		fx_exec_reply(inv, seq, NULL,
					  "sql needs a role: deploy the function with the option \"role\" naming the role its sql runs as",
					  "42501");
		return;
	}
	if (!cJSON_IsString(query))
	{
		fx_exec_reply(inv, seq, NULL, "sql needs a \"query\" string", "22023");
		return;
	}
	if (params && !cJSON_IsNull(params) && !cJSON_IsArray(params))
	{
		fx_exec_reply(inv, seq, NULL, "\"params\" must be an array", "22023");
		return;
	}
	if ((refused = fx_txn_refuse(query->valuestring)) != NULL)
	{
		fx_exec_reply(inv, seq, NULL, refused, "25000");
		return;
	}
	n = cJSON_GetArraySize(params);
	values = fx_xcalloc(n > 0 ? n : 1, sizeof(char *));
	if (n > 0)
	{
		size_t		plen;
		const char *ptext = fx_json_member(body, len, "params", &plen);
		const char **starts = fx_xcalloc(n, sizeof(char *));
		size_t	   *lens = fx_xcalloc(n, sizeof(size_t));

		/* cJSON validated the text, so this finds the same n elements */
		if (ptext != NULL && fx_json_elements(ptext, plen, starts, lens, n) == n)
		{
			const cJSON *p = params->child;		/* walked: indexing is O(n) */

			for (int i = 0; i < n && p; i++, p = p->next)
				values[i] = param_text(p, starts[i], lens[i]);
		}
		free(starts);
		free(lens);
	}
	if (inv->txn == NULL)
	{
		int64_t		left = inv->deadline_ms - fx_now_ms();

		inv->txn = fx_txn_open(r->txns, inv->role, left > 0 ? (int) left : 1);
	}
	fx_txn_sql(inv->txn, query->valuestring, n, (const char *const *) values, sql_cb,
			   pending_new(r, inv, seq));
	for (int i = 0; i < n; i++)
		free(values[i]);
	free(values);
}

void
fx_request_handle(fx_requests *r, fx_inv *inv, const char *type, const cJSON *msg,
				  const char *body, size_t n)
{
	const cJSON *seq = cJSON_GetObjectItem(msg, "seq");

	if (strncmp(type, "state.", 6) == 0 && inv->key == NULL)
		fx_exec_reply(inv, seq, NULL, "state needs a keyed invocation: fx_invoke(fn, args, key => ...)",
					  "55000");
	else if (strcmp(type, "state.get") == 0)
		state_get(r, inv, seq);
	else if (strcmp(type, "state.set") == 0)
		state_set(r, inv, seq, body, n);
	else if (strcmp(type, "state.delete") == 0)
		state_delete(inv, seq);
	else if (strcmp(type, "sql") == 0)
		sql(r, inv, msg, seq, body, n);
	else
	{
		char	   *why = fx_xasprintf("unsupported request \"%s\"", type);

		fx_exec_reply(inv, seq, NULL, why, "0A000");
		free(why);
	}
}
