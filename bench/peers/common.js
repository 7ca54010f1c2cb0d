// bench/peers/common.js: what the harness scripts share.
//
// Connections come from the PG* environment variables that bench/run.sh
// sets (the private server's Unix socket), with the database named by the
// caller.  Times are wall-clock microseconds since the epoch, the clock the
// fx no-op function reads inside its sandbox (CLOCK_REALTIME), so a start
// time taken in another process can be compared with one taken here.
'use strict';

const { performance } = require('node:perf_hooks');

// The wall clock in microseconds, read through the monotonic clock so that
// two readings in one process are never out of order.
function nowUs() {
  return (performance.timeOrigin + performance.now()) * 1000;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// The pause between two latency samples: random, 1/3 to 5/3 of the mean
// (default 15 ms), so that samples do not fall into step with a poll loop
// or a worker's timers.
function gap(meanMs) {
  const mean = meanMs === undefined ? 15 : meanMs;
  return sleep(mean * (1 / 3 + (Math.random() * 4) / 3));
}

async function connect(database, applicationName) {
  const pg = require('pg');	// loaded here: report.js rerender runs without node_modules
  const client = new pg.Client({ database, application_name: applicationName || 'fx-bench' });
  await client.connect();
  return client;
}

// A connection string for libraries that want one: the Unix socket
// directory goes in the host parameter.
function connectionString(database) {
  const host = encodeURIComponent(process.env.PGHOST || '/var/run/postgresql');
  const port = process.env.PGPORT || '5432';
  const user = encodeURIComponent(process.env.PGUSER || 'postgres');
  return `postgresql://${user}@localhost:${port}/${database}?host=${host}`;
}

// A progress line on stderr at most every 5 s: progress(label)(i, n).
function progress(label) {
  let last = nowUs();
  return (i, n) => {
    const t = nowUs();
    if (t - last > 5e6) {
      process.stderr.write(`  ${label}: ${i}/${n}\n`);
      last = t;
    }
  };
}

// Nearest-rank percentile of an array of numbers.
function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

// {n, p50, p99, mean, min, max} in milliseconds from microsecond samples.
function summary(samplesUs) {
  const ms = samplesUs.map((v) => v / 1000);
  const round = (v) => (v === null ? null : Math.round(v * 1000) / 1000);
  return {
    n: ms.length,
    p50: round(percentile(ms, 50)),
    p99: round(percentile(ms, 99)),
    mean: round(ms.reduce((a, b) => a + b, 0) / (ms.length || 1)),
    min: round(Math.min(...ms)),
    max: round(Math.max(...ms)),
  };
}

// Options "--key value" into an object (numbers converted).
function args(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) {
      const v = argv[i + 1];
      out[argv[i].slice(2)] = v !== undefined && v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
      i++;
    } else {
      out._.push(argv[i]);
    }
  }
  return out;
}

// Run main(), print its result as one JSON line, exit non-zero on error.
function runMain(main) {
  main()
    .then((result) => {
      if (result !== undefined) process.stdout.write(JSON.stringify(result) + '\n');
      process.exit(0);
    })
    .catch((err) => {
      process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
      process.exit(1);
    });
}

// On SIGTERM/SIGINT call stop() once (the caller's main then returns and the
// process exits); a second signal exits at once.
function onStop(stop) {
  let stopping = false;
  const handler = () => {
    if (stopping) process.exit(1);
    stopping = true;
    Promise.resolve()
      .then(stop)
      .catch((err) => {
        process.stderr.write(`stopping: ${err}\n`);
        process.exit(1);
      });
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

module.exports = { nowUs, sleep, gap, progress, connect, connectionString, percentile, summary, args, runMain, onStop };
