// bench/peers/graphile.js: graphile-worker with a no-op task, as bench/run.sh
// measures it.  The database is $GW_DB (default "graphile").
//
//   node graphile.js worker            run until SIGTERM; "ready" on stdout once started
//   node graphile.js latency --n N [--gap-ms 15]
//                                      add_job (SQL) -> task start, worker in this process
//   node graphile.js cold              start, run the one queued job, print "start US", exit
//
// Worker settings (environment): GW_CONCURRENCY (10), GW_LOCAL_QUEUE (50,
// 0 = off), GW_COMPLETE_BATCH_MS (0, -1 = off), GW_POLL_MS (2000, the
// library's default).  With a local queue the pool locks up to that many jobs
// per fetch; completions are batched when a batch delay is set (see
// graphile-worker's performance notes).  Jobs are added in SQL, as
// bench/run.sh does, so that the enqueue path is the same as fx's.
'use strict';

const { nowUs, sleep, gap, progress, connect, connectionString, summary, args, runMain, onStop } = require('./common');

const DB = process.env.GW_DB || 'graphile';

// graphile-worker 0.18 is an ES module: import() loads it on every Node.js
// release (require() of an ES module needs 20.19 or later).
let run;
let Logger;
async function load() {
  ({ run, Logger } = await import('graphile-worker'));
}
const envInt = (name, dflt) => (process.env[name] !== undefined ? Number(process.env[name]) : dflt);

function options(taskList) {
  const localQueue = envInt('GW_LOCAL_QUEUE', 50);
  const batch = envInt('GW_COMPLETE_BATCH_MS', 0);
  return {
    connectionString: connectionString(DB),
    concurrency: envInt('GW_CONCURRENCY', 10),
    pollInterval: envInt('GW_POLL_MS', 2000),
    noHandleSignals: true,
    taskList,
    preset: {
      worker: {
        ...(localQueue > 0 ? { localQueue: { size: localQueue } } : {}),
        completeJobBatchDelay: batch,
        failJobBatchDelay: batch,
      },
    },
    logger: quietLogger(),
  };
}

// graphile-worker logs every job at info level: keep warnings and errors.
function quietLogger() {
  return new Logger(() => (level, message) => {
    if (level === 'error' || level === 'warning') process.stderr.write(`graphile ${level}: ${message}\n`);
  });
}

async function worker() {
  let done = 0;
  const runner = await run(options({ noop: async () => { done++; } }));
  onStop(() => runner.stop());
  process.stdout.write('ready\n');
  await runner.promise;
  process.stderr.write(`graphile worker ${process.pid}: ${done} jobs\n`);
}

async function latency(a) {
  const n = a.n || 100;
  const waiting = new Map();
  const runner = await run(options({
    noop: async (payload) => {
      const t = nowUs();
      const w = waiting.get(payload.i);
      if (w) w(t);
    },
  }));
  const client = await connect(DB, 'fx-bench-client');
  await sleep(500);
  const samples = [];
  const tick = progress('graphile-worker latency');
  for (let i = 0; i < n + 5; i++) {
    tick(i, n + 5);
    const started = new Promise((resolve) => waiting.set(i, resolve));
    const t0 = nowUs();
    await client.query("SELECT graphile_worker.add_job('noop', json_build_object('i', $1::int))", [i]);
    const t = await started;
    waiting.delete(i);
    if (i >= 5) samples.push(t - t0);	// the first few warm the pool up
    await gap(a['gap-ms']);
  }
  await client.end();
  await runner.stop();
  return summary(samples);
}

async function cold() {
  const runner = await run(options({
    noop: async () => {
      process.stdout.write(`start ${nowUs()}\n`);
    },
  }));
  runner.events.on('job:complete', () => {
    runner.stop().then(() => process.exit(0));
  });
  await runner.promise;
}

runMain(async () => {
  const a = args(process.argv.slice(2));
  await load();
  switch (a._[0]) {
    case 'worker': return worker();
    case 'latency': return latency(a);
    case 'cold': return cold();
    default: throw new Error('usage: node graphile.js worker|latency|cold');
  }
});
