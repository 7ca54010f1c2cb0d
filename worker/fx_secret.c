/*
 * fx_secret.c: secret sets, their redaction, and the worker's cache of
 * them (fx_secret.h).
 *
 * Redaction looks for "needles": each value of FX_SECRET_MIN_REDACT bytes
 * or more and, since the log is stored line by line, each such line of a
 * value that has several.  Whole occurrences are found with memmem; the
 * start of a value at the end of a text (a piece of a long line, an error
 * cut short) with the value's KMP failure table, in time linear in the
 * text.  Values live only in the worker's memory and are wiped when the
 * last reference to their set goes.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "fx_log.h"
#include "fx_secret.h"

#define REDACTED "[redacted]"
#define REDACTED_LEN (sizeof(REDACTED) - 1)
#define MAX_ENTRIES 1024		/* functions whose sets are cached */

typedef struct needle
{
	const char *p;				/* into a value of the set */
	size_t		len;
	uint32_t   *fail;			/* KMP failure table */
} needle;

struct fx_secrets
{
	int			refs;
	bool		stale;
	int			n;
	fx_secret  *items;
	int			nneedles;
	needle	   *needles;
};

/* ---------------------------------------------------------------------
 * Sets
 * --------------------------------------------------------------------- */

static uint32_t *
failure_table(const char *p, size_t m)
{
	uint32_t   *f = fx_xmalloc(m * sizeof(uint32_t));
	size_t		k = 0;

	f[0] = 0;
	for (size_t i = 1; i < m; i++)
	{
		while (k > 0 && p[i] != p[k])
			k = f[k - 1];
		if (p[i] == p[k])
			k++;
		f[i] = (uint32_t) k;
	}
	return f;
}

static void
add_needle(fx_secrets *s, const char *p, size_t len)
{
	needle	   *nd;

	if (len < FX_SECRET_MIN_REDACT)
		return;
	s->needles = fx_xrealloc(s->needles, (s->nneedles + 1) * sizeof(needle));
	nd = &s->needles[s->nneedles++];
	nd->p = p;
	nd->len = len;
	nd->fail = failure_table(p, len);
}

/*
 * The value itself and, if it has several lines, each of them (less a
 * trailing CR): the log is stored by line, so a value printed whole is
 * found line by line.
 */
static void
add_needles(fx_secrets *s, const char *v, size_t len)
{
	add_needle(s, v, len);
	if (memchr(v, '\n', len) == NULL)
		return;
	while (len > 0)
	{
		const char *nl = memchr(v, '\n', len);
		size_t		line = nl ? (size_t) (nl - v) : len;
		size_t		l = line;

		if (l > 0 && v[l - 1] == '\r')
			l--;
		add_needle(s, v, l);
		if (line == len)
			break;
		v += line + 1;
		len -= line + 1;
	}
}

fx_secrets *
fx_secrets_new(int n, const char *const *names, const char *const *values,
			   const size_t *lens)
{
	fx_secrets *s = fx_xcalloc(1, sizeof(*s));

	s->refs = 1;
	s->n = n;
	s->items = fx_xcalloc(n > 0 ? n : 1, sizeof(fx_secret));
	for (int i = 0; i < n; i++)
	{
		s->items[i].name = fx_xstrdup(names[i]);
		s->items[i].value = fx_xmalloc(lens[i] + 1);
		memcpy(s->items[i].value, values[i], lens[i]);
		s->items[i].value[lens[i]] = '\0';
		s->items[i].len = lens[i];
	}
	for (int i = 0; i < n; i++)
		add_needles(s, s->items[i].value, s->items[i].len);
	return s;
}

fx_secrets *
fx_secrets_ref(fx_secrets *s)
{
	if (s)
		s->refs++;
	return s;
}

void
fx_secrets_unref(fx_secrets *s)
{
	if (s == NULL || --s->refs > 0)
		return;
	for (int i = 0; i < s->nneedles; i++)
		free(s->needles[i].fail);
	free(s->needles);
	for (int i = 0; i < s->n; i++)
	{
		explicit_bzero(s->items[i].value, s->items[i].len);
		free(s->items[i].value);
		free(s->items[i].name);
	}
	free(s->items);
	free(s);
}

int
fx_secrets_count(const fx_secrets *s)
{
	return s ? s->n : 0;
}

const fx_secret *
fx_secrets_get(const fx_secrets *s, int i)
{
	return &s->items[i];
}

bool
fx_secrets_equal(const fx_secrets *a, const fx_secrets *b)
{
	if (a == b)
		return true;
	if (fx_secrets_count(a) != fx_secrets_count(b))
		return false;
	for (int i = 0; i < fx_secrets_count(a); i++)
		if (strcmp(a->items[i].name, b->items[i].name) != 0 ||
			a->items[i].len != b->items[i].len ||
			memcmp(a->items[i].value, b->items[i].value, a->items[i].len) != 0)
			return false;
	return true;
}

bool
fx_secrets_stale(const fx_secrets *s)
{
	return s && s->stale;
}

bool
fx_secret_name_ok(const char *name)
{
	size_t		n = strlen(name);

	if (n == 0 || n > FX_SECRET_MAX_NAME ||
		!(name[0] == '_' || (name[0] >= 'A' && name[0] <= 'Z') ||
		  (name[0] >= 'a' && name[0] <= 'z')))
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				  "0123456789_.-") == n;
}

/* ---------------------------------------------------------------------
 * Redaction
 * --------------------------------------------------------------------- */

/* The longest suffix of text[0..n) that is a proper prefix of nd. */
static size_t
partial_at_end(const needle *nd, const char *text, size_t n)
{
	size_t		k = 0;

	for (size_t i = 0; i < n; i++)
	{
		while (k > 0 && text[i] != nd->p[k])
			k = nd->fail[k - 1];
		if (text[i] == nd->p[k])
			k++;
		if (k == nd->len)
			k = nd->fail[k - 1];
	}
	return k;
}

static void
mark(char *marks, size_t from, size_t to)
{
	memset(marks + from, 1, to - from);
}

/* Mark every whole occurrence of every needle. */
static void
mark_whole(const fx_secrets *s, const char *text, size_t n, char *marks)
{
	for (int i = 0; i < s->nneedles; i++)
	{
		const needle *nd = &s->needles[i];
		size_t		pos = 0;
		size_t		done = 0;	/* marked up to here for this needle */
		const char *hit;

		while (pos + nd->len <= n && (hit = memmem(text + pos, n - pos, nd->p, nd->len)))
		{
			size_t		at = (size_t) (hit - text);

			mark(marks, at > done ? at : done, at + nd->len);
			done = at + nd->len;
			pos = at + 1;
		}
	}
}

/* Build the text with each run of marked bytes replaced. */
static void
build(const char *text, size_t n, const char *marks, char **out, size_t *outn)
{
	char	   *o = fx_xmalloc(n + (n / FX_SECRET_MIN_REDACT + 1) * REDACTED_LEN + 1);
	size_t		len = 0;

	for (size_t i = 0; i < n;)
	{
		if (!marks[i])
		{
			o[len++] = text[i++];
			continue;
		}
		memcpy(o + len, REDACTED, REDACTED_LEN);
		len += REDACTED_LEN;
		while (i < n && marks[i])
			i++;
	}
	o[len] = '\0';
	*out = o;
	*outn = len;
}

static bool
finish(const char *text, size_t n, char *marks, char **out, size_t *outn)
{
	bool		any = memchr(marks, 1, n) != NULL;

	if (any)
		build(text, n, marks, out, outn);
	free(marks);
	return any;
}

bool
fx_secrets_redact(const fx_secrets *s, const char *text, size_t n, char **out,
				  size_t *outn)
{
	char	   *marks;
	size_t		tail = 0;

	if (s == NULL || s->nneedles == 0 || n == 0)
		return false;
	marks = fx_xcalloc(n, 1);
	mark_whole(s, text, n, marks);
	/* A text that ends in the start of a value may have been cut short. */
	for (int i = 0; i < s->nneedles; i++)
	{
		size_t		k = partial_at_end(&s->needles[i], text, n);

		if (k >= FX_SECRET_MIN_REDACT && k > tail)
			tail = k;
	}
	if (tail > 0)
		mark(marks, n - tail, n);
	return finish(text, n, marks, out, outn);
}

char *
fx_secrets_redact_str(const fx_secrets *s, const char *text)
{
	char	   *out;
	size_t		n;

	return text && fx_secrets_redact(s, text, strlen(text), &out, &n) ? out : NULL;
}

size_t
fx_secrets_keep(const fx_secrets *s, const char *buf, size_t len)
{
	size_t		keep = 0;

	if (s == NULL)
		return 0;
	/*
	 * The start of any value, if it is short enough: then a value of up
	 * to FX_SECRET_KEEP_MAX bytes is never cut, and a longer one is cut
	 * only after FX_SECRET_KEEP_MAX bytes (fx_secrets_redact_piece).
	 */
	for (int i = 0; i < s->nneedles; i++)
	{
		size_t		k = partial_at_end(&s->needles[i], buf, len);

		if (k > keep && k <= FX_SECRET_KEEP_MAX)
			keep = k;
	}
	return keep <= len / 2 ? keep : len / 2;
}

bool
fx_secrets_redact_piece(const fx_secrets *s, const char *text, size_t n,
						fx_redact_carry *carry, bool cut_after, char **out, size_t *outn)
{
	fx_redact_carry next = {0, 0};
	char	   *marks;
	bool		inside = false; /* the whole piece continues a value */

	if (s == NULL || s->nneedles == 0 || n == 0)
	{
		*carry = next;
		return false;
	}
	marks = fx_xcalloc(n, 1);
	if (carry->state > 0 && carry->needle < s->nneedles)
	{
		/* the previous piece ended in the start of a long value */
		const needle *nd = &s->needles[carry->needle];
		size_t		st = carry->state;
		size_t		j = 0;

		while (j < n && st < nd->len && text[j] == nd->p[st])
			j++, st++;
		mark(marks, 0, j);
		if (j == n && st < nd->len)
		{
			inside = true;
			next.needle = carry->needle;
			next.state = st;
		}
	}
	mark_whole(s, text, n, marks);
	for (int i = 0; cut_after && !inside && i < s->nneedles; i++)
	{
		size_t		k;

		if (s->needles[i].len <= FX_SECRET_KEEP_MAX)
			continue;			/* kept back whole: fx_secrets_keep */
		k = partial_at_end(&s->needles[i], text, n);
		if (k >= FX_SECRET_MIN_REDACT && k > next.state)
		{
			next.needle = i;
			next.state = k;
		}
	}
	if (next.state > 0 && !inside)
		mark(marks, n - next.state, n);
	*carry = cut_after ? next : (fx_redact_carry) {0, 0};
	return finish(text, n, marks, out, outn);
}

/* ---------------------------------------------------------------------
 * The attempts alive and their sets, for fx_log
 * --------------------------------------------------------------------- */

typedef struct bound
{
	int64_t		id;
	fx_secrets *set;
	struct bound *next;
} bound;

static bound *bounds;

static char *
log_redact(int64_t invocation, const char *msg)
{
	for (bound *b = bounds; b; b = b->next)
		if (b->id == invocation)
			return fx_secrets_redact_str(b->set, msg);
	return NULL;
}

void
fx_secret_bind(int64_t invocation, fx_secrets *s)
{
	bound	   *b;

	if (fx_secrets_count(s) == 0)
		return;
	b = fx_xmalloc(sizeof(*b));
	b->id = invocation;
	b->set = fx_secrets_ref(s);
	b->next = bounds;
	bounds = b;
	fx_log_redact = log_redact;
}

void
fx_secret_unbind(int64_t invocation, fx_secrets *s)
{
	for (bound **pp = &bounds; *pp; pp = &(*pp)->next)
		if ((*pp)->id == invocation && (*pp)->set == s)
		{
			bound	   *b = *pp;

			*pp = b->next;
			fx_secrets_unref(b->set);
			free(b);
			return;
		}
}

/* ---------------------------------------------------------------------
 * The cache
 * --------------------------------------------------------------------- */

typedef struct waiter
{
	fx_secret_cb cb;
	void	   *arg;
	struct waiter *next;
} waiter;

struct fx_secret_entry
{
	fx_secret_cache *cache;
	char	   *fn;
	fx_secrets *set;			/* NULL until fetched */
	unsigned	gen;			/* bumped when it is forgotten */
	unsigned	gen_sent;		/* gen when the fetch in flight was sent */
	bool		sent;			/* a fetch is in flight */
	waiter	   *waiting;
	waiter	  **waiting_tail;
	fx_secret_entry *next;
};

void
fx_secret_cache_init(fx_secret_cache *c, fx_db *db)
{
	memset(c, 0, sizeof(*c));
	c->db = db;
}

static void
entry_free(fx_secret_cache *c, fx_secret_entry *e)
{
	for (fx_secret_entry **pp = &c->entries; *pp; pp = &(*pp)->next)
		if (*pp == e)
		{
			*pp = e->next;
			c->nentries--;
			break;
		}
	if (e->set)
		e->set->stale = true;
	fx_secrets_unref(e->set);
	free(e->fn);
	free(e);
}

static bool
entry_idle(fx_secret_entry *e)
{
	return e->waiting == NULL && !e->sent;
}

/* Full: drop every cached set nobody waits for (fetched again when needed). */
static void
trim(fx_secret_cache *c)
{
	fx_secret_entry *e = c->entries;

	if (c->nentries < MAX_ENTRIES)
		return;
	while (e)
	{
		fx_secret_entry *next = e->next;

		if (entry_idle(e))
			entry_free(c, e);
		e = next;
	}
}

static fx_secret_entry *
entry_find(fx_secret_cache *c, const char *fn, bool create)
{
	fx_secret_entry *e;

	for (e = c->entries; e; e = e->next)
		if (strcmp(e->fn, fn) == 0)
			return e;
	if (!create)
		return NULL;
	trim(c);
	e = fx_xcalloc(1, sizeof(*e));
	e->cache = c;
	e->fn = fx_xstrdup(fn);
	e->waiting_tail = &e->waiting;
	e->next = c->entries;
	c->entries = e;
	c->nentries++;
	return e;
}

/* Call every waiter with set (a reference each) or why. */
static void
answer(fx_secret_entry *e, fx_secrets *set, const char *why)
{
	waiter	   *w = e->waiting;

	e->waiting = NULL;
	e->waiting_tail = &e->waiting;
	while (w)
	{
		waiter	   *next = w->next;

		w->cb(w->arg, fx_secrets_ref(set), why);
		free(w);
		w = next;
	}
}

static fx_secrets *
set_from_rows(fx_secret_entry *e, PGresult *res)
{
	int			rows = PQntuples(res);
	const char **names = fx_xcalloc(rows + 1, sizeof(char *));
	const char **values = fx_xcalloc(rows + 1, sizeof(char *));
	size_t	   *lens = fx_xcalloc(rows + 1, sizeof(size_t));
	int			n = 0;
	fx_secrets *set;

	for (int r = 0; r < rows; r++)
	{
		const char *name = PQgetvalue(res, r, 0);
		size_t		len = PQgetlength(res, r, 1);

		if (!fx_secret_name_ok(name) || len > FX_SECRET_MAX_VALUE)
		{
			fx_warn("function %s: secret \"%.*s\" skipped: bad name or larger than 64 KiB",
					e->fn, FX_SECRET_MAX_NAME, name);
			continue;
		}
		names[n] = name;
		values[n] = PQgetvalue(res, r, 1);
		lens[n++] = len;
	}
	set = fx_secrets_new(n, names, values, lens);
	free(names);
	free(values);
	free(lens);
	return set;
}

static void send_fetch(fx_secret_entry *e);

static void
fetched_cb(fx_db *db, PGresult *res, void *arg)
{
	fx_secret_entry *e = arg;
	char	   *why;

	(void) db;
	e->sent = false;
	if (res == NULL)
		return;					/* connection lost: sent again on reconnect */
	if (e->gen != e->gen_sent)
	{
		send_fetch(e);			/* forgotten meanwhile: it may be old */
		return;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 2)
	{
		why = fx_xasprintf("cannot read the function's secrets: %s", fx_db_error(res));
		answer(e, NULL, why);
		free(why);
		return;
	}
	fx_secrets_unref(e->set);
	e->set = set_from_rows(e, res);
	answer(e, e->set, NULL);
}

static void
send_fetch(fx_secret_entry *e)
{
	const char *params[1] = {e->fn};

	if (e->sent || e->waiting == NULL)
		return;
	e->sent = true;
	e->gen_sent = e->gen;
	fx_db_query_prepared(e->cache->db, "SELECT name, value FROM fx.secrets_for($1)",
						 1, params, fetched_cb, e);
}

void
fx_secret_cache_get(fx_secret_cache *c, const char *fn, fx_secret_cb cb, void *arg)
{
	fx_secret_entry *e = entry_find(c, fn, true);
	waiter	   *w;

	if (e->set && !e->set->stale)
	{
		cb(arg, fx_secrets_ref(e->set), NULL);
		return;
	}
	w = fx_xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	*e->waiting_tail = w;
	e->waiting_tail = &w->next;
	send_fetch(e);
}

/* Drop e's set; drop e too unless someone waits for it. */
static void
forget(fx_secret_cache *c, fx_secret_entry *e)
{
	e->gen++;
	if (e->set)
	{
		e->set->stale = true;
		fx_secrets_unref(e->set);
		e->set = NULL;
	}
	if (entry_idle(e))
		entry_free(c, e);
}

void
fx_secret_cache_forget(fx_secret_cache *c, const char *fn)
{
	fx_secret_entry *e = entry_find(c, fn, false);

	if (e)
		forget(c, e);
}

void
fx_secret_cache_reconnected(fx_secret_cache *c)
{
	fx_secret_entry *e = c->entries;

	while (e)
	{
		fx_secret_entry *next = e->next;

		forget(c, e);
		e = next;
	}
	for (e = c->entries; e; e = e->next)
		send_fetch(e);
}

void
fx_secret_cache_drop_waiters(fx_secret_cache *c, void (*drop) (void *arg))
{
	for (fx_secret_entry *e = c->entries; e; e = e->next)
	{
		waiter	   *w = e->waiting;

		e->waiting = NULL;
		e->waiting_tail = &e->waiting;
		while (w)
		{
			waiter	   *next = w->next;

			drop(w->arg);
			free(w);
			w = next;
		}
	}
}

void
fx_secret_cache_free(fx_secret_cache *c)
{
	while (c->entries)
	{
		fx_secret_entry *e = c->entries;
		waiter	   *w = e->waiting;

		while (w)
		{
			waiter	   *next = w->next;

			free(w);
			w = next;
		}
		entry_free(c, e);
	}
}
