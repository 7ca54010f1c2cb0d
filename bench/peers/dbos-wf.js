// bench/peers/dbos-wf.js: DBOS Transact's durable-workflow primitives, one
// at a time in one process, for the workflow benchmark.  The system database
// is $DBOS_DB (default "dbos_wf"); give it a new, empty database for every
// run, so that no workflow of an earlier run is recovered meanwhile.
//
//   node dbos-wf.js [--n 200] [--warmup 20] [--sleep-n 50] [--sleep-ms 100]
//                   [--sleep-warmup 2] [--long-sleep-ms 0] [--gap-ms 0]
//                   [--only wf0,event,...]
//
// Measures (each --n samples after --warmup unmeasured ones; the sleeps
// --sleep-n after --sleep-warmup, at most 2 by default):
//
//   wf0, wf0-direct          a workflow with no step: DBOS.startWorkflow(wf)()
//                            then handle.getResult(); "-direct" is await wf()
//   wf10, wf10-direct        the same with 10 no-op steps, DBOS.runStep(...)
//   wf10-child               10 steps that are each a no-op child workflow,
//                            DBOS.startWorkflow(child)() then getResult()
//   send-recv                DBOS.send(id, msg, topic) here at t0 -> DBOS.recv
//                            returns inside the workflow (which set an event
//                            "waiting" first; we wait for it, then 5-25 ms)
//   event                    DBOS.setEvent inside the workflow at t0 -> the
//                            DBOS.getEvent already waiting here resolves
//   sleep                    DBOS.sleep(--sleep-ms) inside a workflow: time
//                            asleep, measured in the workflow, minus the request
//   sleep-long               the same with --long-sleep-ms (only when given,
//                            and not 0: fx's sleep that outlives the worker's
//                            wait grace, bench/workflow.sh)
//
// One JSON line per measure on stdout, as each finishes:
//   {"measure": "wf0", "n": 200, "mean_ms": .., "p50_ms": .., "p99_ms": ..}
// then the derived per-step costs, (wf10 - wf0) / 10 of the means and of the
// p50s: "per-step", "per-step-direct" and "per-child" (p99_ms null).
// Progress goes to stderr.  SIGINT/SIGTERM: DBOS.shutdown(), exit 130.
//
// Environment: DBOS_DB, PG* (as bench/run.sh sets them), DBOS__VMID (the
// executor id, "local" by default), DBOS_COALESCE_MS (notificationCoalesceMs,
// how long DBOS gathers event notifications before one NOTIFY; the
// library's default, 10, unless set).
'use strict';

// DBOS 5.3 issues concurrent queries on one node-postgres client, which
// node-postgres 8.x reports once as deprecated: keep it off the output.
process.noDeprecation = true;

const { DBOS } = require('@dbos-inc/dbos-sdk');
const { nowUs, sleep, gap, progress, connect, connectionString, summary, args, runMain, onStop } = require('./common');

const DB = process.env.DBOS_DB || 'dbos_wf';
const APP_VERSION = 'fx-bench-wf';
const STEPS = 10;
const WAIT_S = 60;	// recv/getEvent timeout: a lost wake-up fails the run instead of hanging it
const MEASURES = ['wf0', 'wf0-direct', 'wf10', 'wf10-direct', 'wf10-child', 'send-recv', 'event', 'sleep', 'sleep-long'];

// --- workflows -----------------------------------------------------------

const wf0 = DBOS.registerWorkflow(async function wf0() {
  return null;
}, { name: 'wf0' });

const wf10 = DBOS.registerWorkflow(async function wf10() {
  for (let i = 0; i < STEPS; i++) await DBOS.runStep(async () => null, { name: 'noop' });
  return null;
}, { name: 'wf10' });

const child = DBOS.registerWorkflow(async function child() {
  return null;
}, { name: 'child' });

const wf10child = DBOS.registerWorkflow(async function wf10child() {
  for (let i = 0; i < STEPS; i++) {
    const h = await DBOS.startWorkflow(child)();
    await h.getResult();
  }
  return null;
}, { name: 'wf10child' });

// Says it is about to wait, waits for one message, returns when it got it.
const receiver = DBOS.registerWorkflow(async function receiver() {
  await DBOS.setEvent('waiting', true);
  const msg = await DBOS.recv('msg', WAIT_S);
  const t = nowUs();
  if (msg === null) throw new Error('receiver: no message within the timeout');
  return t;
}, { name: 'receiver' });

// Waits for "go", then sets the event "ev" to the time it sets it.
const announcer = DBOS.registerWorkflow(async function announcer() {
  const go = await DBOS.recv('go', WAIT_S);
  if (go === null) throw new Error('announcer: no "go" within the timeout');
  const t0 = nowUs();
  await DBOS.setEvent('ev', t0);
  return t0;
}, { name: 'announcer' });

const sleeper = DBOS.registerWorkflow(async function sleeper(ms) {
  const t = nowUs();
  await DBOS.sleep(ms);
  return nowUs() - t;
}, { name: 'sleeper' });

// --- one sample of each measure, in microseconds ----------------------------

async function viaStart(wf) {
  const t0 = nowUs();
  const h = await DBOS.startWorkflow(wf)();
  await h.getResult();
  return { us: nowUs() - t0, id: h.workflowID };
}

async function direct(wf) {
  const t0 = nowUs();
  await wf();
  return { us: nowUs() - t0 };
}

const between = () => sleep(5 + Math.random() * 20);

async function sendRecv(i) {
  const h = await DBOS.startWorkflow(receiver)();
  if ((await DBOS.getEvent(h.workflowID, 'waiting', WAIT_S)) === null) throw new Error('receiver never said it was waiting');
  await between();
  const t0 = nowUs();
  await DBOS.send(h.workflowID, { i }, 'msg');
  const t = await h.getResult();
  return { us: t - t0 };
}

async function event() {
  const h = await DBOS.startWorkflow(announcer)();
  const got = DBOS.getEvent(h.workflowID, 'ev', WAIT_S).then((v) => ({ v, t: nowUs() }));
  await between();	// the getEvent has registered for the wake-up and found no row by now
  await DBOS.send(h.workflowID, 'go', 'go');
  const { v, t } = await got;
  if (v === null) throw new Error('no event within the timeout');
  await h.getResult();
  return { us: t - v };
}

async function sleepOvershoot(ms) {
  const h = await DBOS.startWorkflow(sleeper)(ms);
  return { us: (await h.getResult()) - ms * 1000 };
}

// --- the run -----------------------------------------------------------------

let stopping = null;	// DBOS.shutdown() once a signal came

function line(measure, s) {
  const out = { measure, n: s.n, mean_ms: s.mean, p50_ms: s.p50, p99_ms: s.p99 };
  process.stdout.write(JSON.stringify(out) + '\n');
  return out;
}

// sample() warmup + n times, one at a time; returns the summary and the
// last sample's result (for the checks below).
async function measure(name, n, warmup, gapMs, sample) {
  const samples = [];
  const tick = progress(`DBOS ${name}`);
  let last;
  process.stderr.write(`DBOS ${name}: ${warmup} + ${n}\n`);
  for (let i = 0; i < warmup + n && !stopping; i++) {
    tick(i, warmup + n);
    last = await sample(i);
    if (i >= warmup) samples.push(last.us);
    if (gapMs) await gap(gapMs);
  }
  return { s: summary(samples), last };
}

// Rows DBOS recorded for one workflow: what a "step" costs in writes.
async function recorded(client, id) {
  const r = await client.query(
    `SELECT function_name, count(*)::int AS n FROM dbos.operation_outputs
     WHERE workflow_uuid = $1 GROUP BY 1 ORDER BY 1`, [id]);
  return r.rows.map((row) => `${row.n} x ${row.function_name}`).join(', ') || 'none';
}

async function run(a) {
  const n = a.n || 200;
  const warmup = a.warmup !== undefined ? a.warmup : 20;
  const sleepN = a['sleep-n'] || 50;
  const sleepMs = a['sleep-ms'] || 100;
  const longMs = a['long-sleep-ms'] || 0;
  const sleepWarmup = a['sleep-warmup'] !== undefined ? a['sleep-warmup'] : Math.min(warmup, 2);
  const gapMs = a['gap-ms'] || 0;
  const only = a.only ? String(a.only).split(',') : MEASURES.filter((m) => m !== 'sleep-long' || longMs);
  if (only.includes('sleep-long') && !longMs) throw new Error('sleep-long needs --long-sleep-ms');
  for (const m of only) if (!MEASURES.includes(m)) throw new Error(`unknown measure ${m}: ${MEASURES.join(', ')}`);

  const config = {
    name: 'fx-bench-wf',
    systemDatabaseUrl: connectionString(DB),
    applicationVersion: APP_VERSION,
    logLevel: 'warn',
  };
  if (process.env.DBOS_COALESCE_MS) config.notificationCoalesceMs = Number(process.env.DBOS_COALESCE_MS);
  DBOS.setConfig(config);
  await DBOS.launch();
  const client = await connect(DB, 'fx-bench-wf-check');

  const res = {};
  const sampleOf = {
    wf0: () => viaStart(wf0),
    'wf0-direct': () => direct(wf0),
    wf10: () => viaStart(wf10),
    'wf10-direct': () => direct(wf10),
    'wf10-child': () => viaStart(wf10child),
    'send-recv': sendRecv,
    event,
    sleep: () => sleepOvershoot(sleepMs),
    'sleep-long': () => sleepOvershoot(longMs),
  };
  for (const m of MEASURES) {
    if (!only.includes(m) || stopping) continue;
    const isSleep = m.startsWith('sleep');
    const { s, last } = await measure(m, isSleep ? sleepN : n, isSleep ? sleepWarmup : warmup,
      isSleep ? 0 : gapMs, sampleOf[m]);
    if (stopping) break;
    res[m] = line(m, s);
    if (last && last.id) process.stderr.write(`  recorded for one ${m} workflow: ${await recorded(client, last.id)}\n`);
  }

  // (x - wf0) / 10 of the means and of the p50s.
  const per = (name, x, base) => {
    if (!res[x] || !res[base]) return;
    const d = (k) => Math.round(((res[x][k] - res[base][k]) / STEPS) * 1000) / 1000;
    process.stdout.write(JSON.stringify({
      measure: name, n: Math.min(res[x].n, res[base].n), mean_ms: d('mean_ms'), p50_ms: d('p50_ms'), p99_ms: null,
      from: `(${x} - ${base}) / ${STEPS}`,
    }) + '\n');
  };
  if (!stopping) {
    per('per-step', 'wf10', 'wf0');
    per('per-step-direct', 'wf10-direct', 'wf0-direct');
    per('per-child', 'wf10-child', 'wf0');
  }

  await client.end();
  if (!stopping) await DBOS.shutdown();
}

runMain(async () => {
  const a = args(process.argv.slice(2));
  if (a._.length) throw new Error('usage: node dbos-wf.js [--n N] [--warmup N] [--sleep-n N] [--sleep-ms MS] [--gap-ms MS] [--only LIST]');
  onStop(async () => {
    process.stderr.write('dbos-wf: stopping\n');
    stopping = stopping || DBOS.shutdown();
    await stopping;
    process.exit(130);
  });
  try {
    await run(a);
  } catch (err) {
    if (!stopping) throw err;	// a sample cut short by the shutdown
  }
  if (stopping) {
    await stopping;
    process.exit(130);
  }
});
