// bench/peers/fxclient.js: fx's latencies, timed by the same client code as
// the peers' (node-postgres, this machine's wall clock in microseconds).
// The database is $FX_DB_NAME (default "fx").
//
//   node fxclient.js call --n N [--fn noop]
//       round trip of SELECT fx_call(fn, '{"t":true}') against a warm function
//   node fxclient.js invoke --n N [--fn noop]
//       SELECT fx_invoke(fn, '{"t":true}') sent -> the function's handler
//       starts (the no-op returns its own clock reading)
//   Both also split each sample at the times the database recorded and the
//   handler's start (see segments), so the output says where it went.
//   node fxclient.js cold --fns a,b,c
//       round trip of the first fx_call of each (newly deployed) function,
//       with the start kind the worker recorded
//
// Samples are spaced by a random 5-25 ms (--gap-ms sets the mean) so that
// they do not fall into step with a worker's timers; the first 5 of call
// and invoke are warm-up and not counted.
'use strict';

const { nowUs, gap, progress, connect, summary, args, runMain } = require('./common');

const DB = process.env.FX_DB_NAME || 'fx';
const WARMUP = 5;

// Where the time of one sample went, in microseconds, from the client's
// clock (sent, and received for a call), the invocation's row (created_at:
// the enqueue transaction began; started_at: the claim transaction began;
// finished_at: fx.finish stored the outcome, before its commit) and the
// handler's own clock reading.  All are this machine's wall clock.
const SEGMENTS = [
  ['sent', 'created', 'client sent -> enqueue transaction began'],
  ['created', 'started', 'enqueue began -> claim transaction began (commit, NOTIFY, worker wakes)'],
  ['started', 'handler', 'claim began -> handler starts (claim, reply, hand-over to the sandbox)'],
  ['handler', 'finished', 'handler starts -> outcome stored (run, reply, fx.finish sent)'],
  ['finished', 'received', 'outcome stored -> client has the result (commit, NOTIFY, reply)'],
];

// Marks each run's invocations apart from earlier runs' in the same table.
const RUN = String(process.pid) + '-' + String(Date.now());

// The summary of samples, with where their time went (segments) and how
// their invocations started.
async function summarize(client, fn, samples, marks) {
  const out = summary(samples);
  const { rows } = await client.query(
    `SELECT (args->>'i')::int AS i, extract(epoch FROM created_at) * 1e6 AS created,
            extract(epoch FROM started_at) * 1e6 AS started,
            extract(epoch FROM finished_at) * 1e6 AS finished, start_kind
       FROM fx.invocation WHERE fn = $1 AND (args->>'run') = $2`, [fn, RUN]);
  for (const row of rows) Object.assign(marks[row.i] || {}, {
    created: Number(row.created), started: Number(row.started), finished: Number(row.finished),
  });
  out.segments = {};
  for (const [from, to, what] of SEGMENTS) {
    const v = marks.filter((m) => m && m[from] !== undefined && m[to] !== undefined)
      .map((m) => m[to] - m[from]);
    if (v.length) out.segments[`${from}-${to}`] = Object.assign(summary(v), { what });
  }
  out.start_kinds = kinds(rows.filter((row) => marks[row.i]));
  return out;
}

async function call(client, a) {
  const fn = a.fn || 'noop';
  const samples = [];
  const marks = [];
  const tick = progress('fx_call latency');
  for (let i = 0; i < a.n + WARMUP; i++) {
    tick(i, a.n + WARMUP);
    const t0 = nowUs();
    const { rows } = await client.query('SELECT fx_call($1, $2) AS r',
      [fn, JSON.stringify({ t: true, i, run: RUN })]);
    const t1 = nowUs();
    if (i >= WARMUP) {
      samples.push(t1 - t0);
      marks[i] = { sent: t0, handler: rows[0].r.t, received: t1 };
    }
    await gap(a['gap-ms']);
  }
  return summarize(client, fn, samples, marks);
}

async function invoke(client, a) {
  const fn = a.fn || 'noop';
  const samples = [];
  const marks = [];
  const tick = progress('fx_invoke latency');
  for (let i = 0; i < a.n + WARMUP; i++) {
    tick(i, a.n + WARMUP);
    const t0 = nowUs();
    const { rows } = await client.query('SELECT fx_invoke($1, $2) AS id',
      [fn, JSON.stringify({ t: true, i, run: RUN })]);
    const id = rows[0].id;
    const r = await client.query("SELECT fx_result($1, '30s') AS r", [id]);
    if (!r.rows[0].r) throw new Error(`invocation ${id} did not finish in 30 s`);
    if (i >= WARMUP) {
      samples.push(r.rows[0].r.t - t0);
      marks[i] = { sent: t0, handler: r.rows[0].r.t };
    }
    await gap(a['gap-ms']);
  }
  return summarize(client, fn, samples, marks);
}

async function cold(client, a) {
  const fns = String(a.fns).split(',');
  const samples = [];
  for (const fn of fns) {
    const t0 = nowUs();
    await client.query("SELECT fx_call($1, '{}')", [fn]);
    samples.push(nowUs() - t0);
    await gap(a['gap-ms']);
  }
  const { rows } = await client.query(
    'SELECT start_kind FROM fx.invocation WHERE fn = ANY($1::text[])', [fns]);
  const out = summary(samples);
  out.start_kinds = kinds(rows);
  return out;
}

function kinds(rows) {
  const count = {};
  for (const row of rows) count[row.start_kind] = (count[row.start_kind] || 0) + 1;
  return count;
}

runMain(async () => {
  const a = args(process.argv.slice(2));
  a.n = a.n || 100;
  const client = await connect(DB, 'fx-bench-client');
  try {
    switch (a._[0]) {
      case 'call': return await call(client, a);
      case 'invoke': return await invoke(client, a);
      case 'cold': return await cold(client, a);
      default: throw new Error('usage: node fxclient.js call|invoke|cold');
    }
  } finally {
    await client.end();
  }
});
