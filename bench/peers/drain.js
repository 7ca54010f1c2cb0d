// bench/peers/drain.js: enqueue N jobs in one SQL statement, then poll until
// all of them are done; the same client for fx and every peer.
//
//   node drain.js --db DB --target N --enqueue SQL --count SQL [--label L]
//                 [--poll-ms 50] [--timeout-s 900]
//
// --enqueue runs once, in autocommit, and must enqueue exactly N jobs.
// --count returns one number, the jobs done so far (for a queue that deletes
// finished jobs, N minus what is left).  Prints one JSON line:
//   {"n", "enqueue_ms", "drain_ms", "wall_ms", "per_s", "polls"}
// wall = enqueue statement sent -> the poll that saw all N done;
// drain = enqueue committed -> that poll; per_s = n / wall.  Progress goes
// to stderr every few seconds.
'use strict';

const { nowUs, sleep, connect, args, runMain } = require('./common');

runMain(async () => {
  const a = args(process.argv.slice(2));
  const target = a.target;
  const pollMs = a['poll-ms'] || 50;
  const timeoutUs = (a['timeout-s'] || 900) * 1e6;
  const label = a.label || a.db;
  const client = await connect(a.db, 'fx-bench-drain');

  await client.query('SELECT 1');
  const t0 = nowUs();
  await client.query(a.enqueue);
  const t1 = nowUs();
  let done = 0;
  let polls = 0;
  let lastReport = t1;
  for (;;) {
    const { rows } = await client.query(a.count);
    polls++;
    done = Number(Object.values(rows[0])[0]);
    const t = nowUs();
    if (done >= target) {
      await client.end();
      const wallMs = (t - t0) / 1000;
      return {
        n: target,
        enqueue_ms: Math.round((t1 - t0) / 100) / 10,
        drain_ms: Math.round((t - t1) / 100) / 10,
        wall_ms: Math.round(wallMs * 10) / 10,
        per_s: Math.round((target / wallMs) * 1000 * 10) / 10,
        polls,
      };
    }
    if (t - t0 > timeoutUs)
      throw new Error(`${label}: timed out with ${done} of ${target} done after ${(t - t0) / 1e6} s`);
    if (t - lastReport > 3e6) {
      process.stderr.write(`  ${label}: ${done}/${target} done, ${((t - t0) / 1e6).toFixed(1)} s\n`);
      lastReport = t;
    }
    await sleep(pollMs);
  }
});
