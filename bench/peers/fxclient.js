// bench/peers/fxclient.js: fx's latencies, timed by the same client code as
// the peers' (node-postgres, this machine's wall clock in microseconds).
// The database is $FX_DB_NAME (default "fx").
//
//   node fxclient.js call --n N [--fn noop]
//       round trip of SELECT fx_call(fn, '{}') against a warm function
//   node fxclient.js invoke --n N [--fn noop]
//       SELECT fx_invoke(fn, '{"t":true}') sent -> the function's handler
//       starts (the no-op returns its own clock reading); also the claim delay
//       recorded by the database (started_at - created_at)
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

async function call(client, a) {
  const fn = a.fn || 'noop';
  const samples = [];
  const tick = progress('fx_call latency');
  for (let i = 0; i < a.n + WARMUP; i++) {
    tick(i, a.n + WARMUP);
    const t0 = nowUs();
    await client.query("SELECT fx_call($1, '{}')", [fn]);
    if (i >= WARMUP) samples.push(nowUs() - t0);
    await gap(a['gap-ms']);
  }
  return summary(samples);
}

async function invoke(client, a) {
  const fn = a.fn || 'noop';
  const samples = [];
  const ids = [];
  const tick = progress('fx_invoke latency');
  for (let i = 0; i < a.n + WARMUP; i++) {
    tick(i, a.n + WARMUP);
    const t0 = nowUs();
    const { rows } = await client.query(`SELECT fx_invoke($1, '{"t":true}') AS id`, [fn]);
    const id = rows[0].id;
    const r = await client.query("SELECT fx_result($1, '30s') AS r", [id]);
    if (!r.rows[0].r) throw new Error(`invocation ${id} did not finish in 30 s`);
    if (i >= WARMUP) {
      samples.push(r.rows[0].r.t - t0);
      ids.push(id);
    }
    await gap(a['gap-ms']);
  }
  const claim = await client.query(
    `SELECT extract(epoch FROM started_at - created_at) * 1e6 AS us, start_kind
       FROM fx.invocation WHERE id = ANY($1::bigint[])`, [ids]);
  const out = summary(samples);
  out.claim = summary(claim.rows.map((row) => Number(row.us)));
  out.start_kinds = kinds(claim.rows);
  return out;
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
