// bench/wf/client.js: fx's workflow primitives, timed from a client, for
// bench/workflow.sh; the fx side of bench/peers/dbos-wf.js, with the same
// timer (node-postgres, this machine's wall clock in microseconds) and the
// same output.  It runs from a copy of bench/peers (it needs common.js and
// pg): workflow.sh copies it there.  The database is $FX_DB_NAME ("fx"),
// where bench/wf/wf.c is deployed as "wf" and bench/noop/noop.c as "noop",
// both in session mode.
//
//   node client.js [--n 200] [--warmup 20] [--sleep-n 20] [--sleep-ms 100]
//                  [--long-sleep-ms 2000] [--gap-ms 0] [--max-failures 0]
//                  [--only wf0,event,...]
//
// Measures (each --n samples after --warmup unmeasured ones, one at a time;
// the sleeps --sleep-n after --sleep-warmup, 2):
//
//   commit          INSERT INTO fx_bench_commit VALUES (1), autocommit: one
//                   durable commit from here, the floor of fx_send
//   wf0, wf10       SELECT fx_call('wf', '{"op":"steps","n":0|10}'): a round
//                   trip from here, the workflow running 0 or 10 no-op inline
//                   steps (fx_run)
//   wf10-call       the same with 10 steps that each fx_call the warm "noop"
//                   function (a child invocation in its own sandbox)
//   send-recv       a new workflow per sample (fx_invoke) sets the event
//                   "waiting" and waits in fx_recv(ctx, "go"); we wait for
//                   the event (fx_get_event), then 5-25 ms, read t0 and run
//                   SELECT fx_send(id, 'go', ...); the workflow reads the
//                   clock when fx_recv returns and returns it: t - t0
//   event           a new workflow per sample waits in fx_recv; one
//                   connection here runs SELECT fx_get_event(id, 'k', '5s');
//                   once its backend is seen waiting (pg_stat_activity) and
//                   5-25 ms later, another connection sends "go"; the
//                   workflow reads its clock t0 and sets the event "k" to
//                   it: the time the get_event returned here - t0
//   sleep           fx_sleep(ctx, --sleep-ms) in a workflow, timed in the
//                   workflow: time asleep - the request
//   sleep-long      fx_sleep(ctx, --long-sleep-ms), longer than the worker's
//                   --wait-grace-ms, so the sandbox is given up and the
//                   workflow replays: from the start the first run recorded
//                   (an inline step before the sleep) to fx_sleep's return
//                   in the replay, minus the request; also counts the
//                   samples that were really replayed
//
// One JSON line per measure on stdout, as each finishes:
//   {"measure": "wf0", "n": 200, "mean_ms": .., "p50_ms": .., "p99_ms": ..}
// then the derived "per-step" ((wf10 - wf0) / 10) and "per-call"
// ((wf10-call - wf0) / 10) of the means and of the p50s.  Progress goes to
// stderr.  A sample that fails (an error from the server: the workflow
// failed, a timeout) is not counted and is sampled again; the line then
// has "failures" and "errors" (message -> count).  One failure more than
// --max-failures ends the measure: its line has what it measured so far,
// "failed_at" (the sample that failed, warm-up included) and "error", and
// the process exits non-zero.  SIGINT/SIGTERM: exit 130 at once.
'use strict';

const { nowUs, sleep, gap, progress, connect, summary, args, runMain, onStop } = require('./common');

const DB = process.env.FX_DB_NAME || 'fx';
const STEPS = 10;
const MEASURES = ['commit', 'wf0', 'wf10', 'wf10-call', 'send-recv', 'event', 'sleep', 'sleep-long'];

let c;	// the timed connection
let c2;	// the other one: fx_send during a get_event, pg_stat_activity
let pid;	// c's backend

const between = () => sleep(5 + Math.random() * 20);

async function invoke(wfArgs) {
  const { rows } = await c.query("SELECT fx_invoke('wf', $1::jsonb) AS id", [JSON.stringify(wfArgs)]);
  return rows[0].id;
}

async function result(id) {
  const { rows } = await c.query("SELECT fx_result($1, '60s') AS r", [id]);
  if (rows[0].r === null) throw new Error(`workflow ${id} did not finish within 60 s`);
  return rows[0].r;
}

// --- one sample of each measure, in microseconds ----------------------------

async function commit() {
  const t0 = nowUs();
  await c.query('INSERT INTO fx_bench_commit VALUES (1)');
  return { us: nowUs() - t0 };
}

async function call(wfArgs) {
  const text = JSON.stringify(wfArgs);
  const t0 = nowUs();
  await c.query("SELECT fx_call('wf', $1::jsonb)", [text]);
  return { us: nowUs() - t0 };
}

async function sendRecv(i) {
  const id = await invoke({ op: 'recv' });
  const w = await c.query("SELECT fx_get_event($1, 'waiting', '10s') AS v", [id]);
  if (w.rows[0].v === null) throw new Error(`workflow ${id} never said it was waiting`);
  await between();
  const t0 = nowUs();
  await c.query("SELECT fx_send($1, 'go', $2::jsonb)", [id, JSON.stringify({ i })]);
  const r = await result(id);
  return { us: r.t - t0, id };
}

// Until c's backend waits inside fx_get_event (wait_event Extension).
async function waiting() {
  for (let i = 0; i < 5000; i++) {
    const { rows } = await c2.query(
      'SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = $1', [pid]);
    if (rows.length && rows[0].state === 'active' && rows[0].wait_event_type === 'Extension') return;
    await sleep(1);
  }
  throw new Error('the fx_get_event never waited');
}

async function event() {
  const id = await invoke({ op: 'event' });
  const got = c.query("SELECT fx_get_event($1, 'k', '5s') AS v", [id])
    .then((r) => ({ v: r.rows[0].v, t: nowUs() }), (err) => ({ err }));
  await waiting();
  await between();
  await c2.query("SELECT fx_send($1, 'go', '{}')", [id]);
  const { v, t, err } = await got;
  if (err) throw err;
  if (v === null) throw new Error(`workflow ${id}: no event within 5 s`);
  await result(id);
  return { us: t - v, id };
}

async function sleepOvershoot(ms, long) {
  const id = await invoke({ op: 'sleep', ms });
  const r = await result(id);
  return { us: (long ? r.first : r.local) - ms * 1000, replayed: r.replayed, id };
}

// --- the run -----------------------------------------------------------------

function line(measure, s, extra) {
  const out = { measure, n: s.n, mean_ms: s.mean, p50_ms: s.p50, p99_ms: s.p99, ...extra };
  process.stdout.write(JSON.stringify(out) + '\n');
  return out;
}

// sample() until warmup + n have succeeded.  A sample that fails is not
// counted, and the measure goes on, up to maxFail failures: then it prints
// what it measured so far with "failed_at" and throws.
async function measure(name, n, warmup, gapMs, maxFail, sample) {
  const samples = [];
  const tick = progress(`fx ${name}`);
  const errors = {};
  let last;
  let replayed = 0;
  let failures = 0;
  process.stderr.write(`fx ${name}: ${warmup} + ${n}\n`);
  for (let i = 0, ok = 0; ok < warmup + n; i++) {
    tick(ok, warmup + n);
    let r;
    try {
      r = await sample(i);
    } catch (err) {
      const msg = String(err.message || err);
      failures++;
      errors[msg] = (errors[msg] || 0) + 1;
      process.stderr.write(`  fx ${name}: sample ${i + 1} failed (${failures} so far): ${msg}\n`);
      if (failures > maxFail) {
        line(name, summary(samples), { failures, errors, failed_at: i + 1, error: msg });
        throw err;
      }
      continue;
    }
    last = r;
    if (ok++ >= warmup) {
      samples.push(last.us);
      if (last.replayed) replayed++;
    }
    if (gapMs) await gap(gapMs);
  }
  return { s: summary(samples), last, replayed, failures, errors };
}

// The steps fx recorded for one workflow, e.g. "10 x run".
async function recorded(id) {
  const r = await c.query(
    'SELECT kind, count(*)::int AS n FROM fx_workflow_steps($1) GROUP BY 1 ORDER BY 1', [id]);
  return r.rows.map((row) => `${row.n} x ${row.kind}`).join(', ') || 'none';
}

async function run(a) {
  const n = a.n || 200;
  const warmup = a.warmup !== undefined ? a.warmup : 20;
  const sleepN = a['sleep-n'] || 20;
  const sleepWarmup = a['sleep-warmup'] !== undefined ? a['sleep-warmup'] : Math.min(warmup, 2);
  const sleepMs = a['sleep-ms'] || 100;
  const longMs = a['long-sleep-ms'] || 2000;
  const gapMs = a['gap-ms'] || 0;
  const maxFail = a['max-failures'] || 0;
  const only = a.only ? String(a.only).split(',') : MEASURES;
  for (const m of only) if (!MEASURES.includes(m)) throw new Error(`unknown measure ${m}: ${MEASURES.join(', ')}`);

  c = await connect(DB, 'fx-bench-wf');
  c2 = await connect(DB, 'fx-bench-wf-2');
  pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;

  const res = {};
  if (only.includes('commit')) await c.query('CREATE TABLE IF NOT EXISTS fx_bench_commit (x int)');
  const sampleOf = {
    commit,
    wf0: () => call({ op: 'steps', n: 0 }),
    wf10: () => call({ op: 'steps', n: STEPS }),
    'wf10-call': () => call({ op: 'steps', n: STEPS, call: true }),
    'send-recv': sendRecv,
    event,
    sleep: () => sleepOvershoot(sleepMs, false),
    'sleep-long': () => sleepOvershoot(longMs, true),
  };
  for (const m of MEASURES) {
    if (!only.includes(m)) continue;
    const isSleep = m.startsWith('sleep');
    const { s, last, replayed, failures, errors } = await measure(m, isSleep ? sleepN : n,
      isSleep ? sleepWarmup : warmup, isSleep ? 0 : gapMs, maxFail, sampleOf[m]);
    const extra = failures ? { failures, errors } : {};
    if (m === 'sleep') extra.sleep_ms = sleepMs;
    if (m === 'sleep-long') extra.sleep_ms = longMs;
    if (isSleep) extra.replayed = replayed;
    res[m] = line(m, s, extra);
    let id = last && last.id;
    if (!id && m.startsWith('wf')) {	// the last fx_call
      id = (await c.query("SELECT max(id) AS id FROM fx.invocation WHERE fn = 'wf'")).rows[0].id;
    }
    if (id) process.stderr.write(`  recorded for one ${m} workflow: ${await recorded(id)}\n`);
  }

  const per = (name, x, base) => {
    if (!res[x] || !res[base]) return;
    const d = (k) => Math.round(((res[x][k] - res[base][k]) / STEPS) * 1000) / 1000;
    process.stdout.write(JSON.stringify({
      measure: name, n: Math.min(res[x].n, res[base].n), mean_ms: d('mean_ms'), p50_ms: d('p50_ms'), p99_ms: null,
      from: `(${x} - ${base}) / ${STEPS}`,
    }) + '\n');
  };
  per('per-step', 'wf10', 'wf0');
  per('per-call', 'wf10-call', 'wf0');
  await c2.end();
  await c.end();
}

runMain(async () => {
  const a = args(process.argv.slice(2));
  if (a._.length) throw new Error('usage: node client.js [--n N] [--warmup N] [--sleep-n N] [--sleep-warmup N] [--sleep-ms MS] [--long-sleep-ms MS] [--gap-ms MS] [--max-failures N] [--only LIST]');
  // A sample may wait for many seconds (a timeout): stop at once; the
  // server ends our queries when PostgreSQL stops.
  onStop(() => {
    process.stderr.write('fx wf client: stopping\n');
    process.exit(130);
  });
  await run(a);
});
