// bench/peers/dbos.js: DBOS Transact with a no-op queued workflow, as
// bench/run.sh measures it.  The system database is $DBOS_DB (default
// "dbos"); run.sh drops and recreates it before each run, so that no queue
// row or application version of an earlier run is polled or pinned.
//
//   node dbos.js worker            run until SIGTERM; "ready" on stdout once launched
//   node dbos.js latency --n N [--gap-ms 15]
//                                  SQL enqueue_workflow -> workflow start, in this process
//   node dbos.js cold              launch, run the one queued workflow, print "start US", exit
//
// Queue "bench" (environment): DBOS_GLOBAL_CONCURRENCY (50; 0 = none),
// DBOS_WORKER_CONCURRENCY (none), DBOS_POLL_MS (minPollingIntervalMs, 10;
// the library's default is 1000).  Workflows are enqueued in SQL with
// dbos.enqueue_workflow(..., app_version => 'fx-bench'), the version this
// process runs (DBOS's pitfall: a row whose version is not the latest
// registered one is never dequeued).  Each process needs its own executor
// id (DBOS__VMID), set by run.sh.
'use strict';

// DBOS 5.3 issues concurrent queries on one node-postgres client, which
// node-postgres 8.x reports once as deprecated: keep it off the output.
process.noDeprecation = true;

const { DBOS } = require('@dbos-inc/dbos-sdk');
const { nowUs, sleep, gap, progress, connect, connectionString, summary, args, runMain, onStop } = require('./common');

const DB = process.env.DBOS_DB || 'dbos';
const APP_VERSION = 'fx-bench';
const envInt = (name, dflt) => (process.env[name] !== undefined && process.env[name] !== '' ? Number(process.env[name]) : dflt);

let onStart = () => {};

DBOS.registerWorkflow(async function noop(i) {
  onStart(i, nowUs());
  return null;
}, { name: 'noop' });

async function launch() {
  DBOS.setConfig({
    name: 'fx-bench',
    systemDatabaseUrl: connectionString(DB),
    applicationVersion: APP_VERSION,
    runAdminServer: false,
    logLevel: 'warn',
  });
  await DBOS.launch();
  const params = { minPollingIntervalMs: envInt('DBOS_POLL_MS', 10) };
  const global = envInt('DBOS_GLOBAL_CONCURRENCY', 50);
  const worker = envInt('DBOS_WORKER_CONCURRENCY', 0);
  if (global > 0) params.globalConcurrency = global;
  if (worker > 0) params.workerConcurrency = worker;
  await DBOS.registerQueue('bench', { ...params, onConflict: 'always_update' });
}

async function worker() {
  let done = 0;
  onStart = () => { done++; };
  let stopped;
  const stopping = new Promise((resolve) => { stopped = resolve; });
  onStop(async () => {
    await DBOS.shutdown();
    stopped();
  });
  await launch();
  process.stdout.write('ready\n');
  await stopping;
  process.stderr.write(`dbos worker ${process.pid}: ${done} workflows\n`);
}

async function latency(a) {
  const n = a.n || 100;
  const waiting = new Map();
  onStart = (i, t) => {
    const w = waiting.get(i);
    if (w) w(t);
  };
  await launch();
  const client = await connect(DB, 'fx-bench-client');
  await sleep(500);
  const samples = [];
  const tick = progress('DBOS latency');
  for (let i = 0; i < n + 5; i++) {
    tick(i, n + 5);
    const started = new Promise((resolve) => waiting.set(i, resolve));
    const t0 = nowUs();
    await client.query(
      `SELECT dbos.enqueue_workflow('noop', 'bench', ARRAY[to_json($1::int)], app_version => '${APP_VERSION}')`, [i]);
    const t = await started;
    waiting.delete(i);
    if (i >= 5) samples.push(t - t0);	// the first few warm the pool up
    await gap(a['gap-ms']);
  }
  await client.end();
  await DBOS.shutdown();
  return summary(samples);
}

async function cold() {
  let first;
  const started = new Promise((resolve) => { first = resolve; });
  onStart = (i, t) => first(t);
  await launch();
  const t = await started;
  process.stdout.write(`start ${t}\n`);
  await DBOS.shutdown();
}

runMain(async () => {
  const a = args(process.argv.slice(2));
  switch (a._[0]) {
    case 'worker': return worker();
    case 'latency': return latency(a);
    case 'cold': return cold();
    default: throw new Error('usage: node dbos.js worker|latency|cold');
  }
});
