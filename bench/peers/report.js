// bench/peers/report.js: the machine and versions, and the markdown tables
// of bench/run.sh.
//
//   node report.js meta --key value ...            JSON: machine, versions, knobs
//   node report.js render META RESULTS.jsonl COMMANDS   markdown on stdout
//   node report.js rerender RESULTS.md             the same again from a written
//                                                  file (its commands and raw data)
//
// RESULTS.jsonl holds one JSON object per measurement, written by run.sh
// (fields: s = scenario, sys = fx | graphile | dbos | pgbench, and the
// numbers; r = what drain.js or a latency client printed).
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { connect, args, percentile } = require('./common');

function sh(cmd, argv) {
  try {
    return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '?';
  }
}

function pkgVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return '?';
  }
}

async function meta(a) {
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m) || [])[1] || '?';
  const osName = (fs.readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)"?/m) || [])[1] || '?';
  const client = await connect('postgres');
  const version = (await client.query('SELECT version()')).rows[0].version;
  const settings = {};
  for (const name of ['fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes', 'shared_buffers',
    'max_connections', 'checkpoint_timeout', 'max_wal_size', 'autovacuum', 'wal_level']) {
    settings[name] = (await client.query(`SELECT current_setting('${name}') AS v`)).rows[0].v;
  }
  const ext = (await client.query(
    "SELECT default_version FROM pg_available_extensions WHERE name = 'fx'")).rows[0];
  await client.end();
  const fxSha = sh('sha256sum', [a.fx]).split(' ')[0].slice(0, 12);
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpu,
    cpus: os.cpus().length,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    os: osName,
    postgres: version,
    settings,
    fx_git: sh('git', ['-C', a.root, 'describe', '--always', '--dirty']),
    fx_binary: `${a.fx} (sha256 ${fxSha})`,
    fx_extension: ext ? ext.default_version : '?',
    cc: sh('cc', ['--version']).split('\n')[0],
    node: process.version,
    npm: sh('npm', ['--version']),
    graphile_worker: pkgVersion('graphile-worker'),
    dbos: pkgVersion('@dbos-inc/dbos-sdk'),
    node_pg: pkgVersion('pg'),
    pgbench: sh(path.join(a.pgbin, 'pgbench'), ['--version']),
    knobs: {
      quick: a.quick, n: a.n, rounds: a.rounds, lat_n: a['lat-n'], cold_n: a['cold-n'],
      cold_proc_n: a['cold-proc-n'], idle_s: a['idle-s'], idle_windows: a['idle-windows'],
      pgb_t: a['pgb-t'], peers: a.peers, scenarios: a.scenarios,
    },
  };
}

// --- rendering -----------------------------------------------------------

const NAMES = { fx: 'fx', graphile: 'graphile-worker', dbos: 'DBOS Transact', pgbench: 'pgbench' };

function int(v) {
  if (v === undefined || v === null || v === '-' || Number.isNaN(Number(v))) return '-';
  return Math.round(Number(v)).toLocaleString('en-US');
}

function num(v, digits = 2) {
  if (v === undefined || v === null || v === '-' || Number.isNaN(Number(v))) return '-';
  const x = Number(v);
  return x >= 100 ? int(x) : x.toFixed(digits);
}

function ratio(a, b) {
  if (!a || !b || Number.isNaN(Number(a)) || Number.isNaN(Number(b))) return '-';
  const r = Number(a) / Number(b);
  return r >= 100 ? `${int(r)}×` : `${r.toFixed(2)}×`;
}

function table(head, rows) {
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) out.push(`| ${r.join(' | ')} |`);
  return out.join('\n');
}

function mean(xs) {
  return xs.length ? xs.reduce((a, b) => a + Number(b), 0) / xs.length : null;
}

// A run during which other processes used this share of the CPUs or more
// (run.sh measures it, and runs it again) is not chosen while a clean run
// of the same configuration exists.
const OTHER_MAX = 20;
const clean = (r) => !(r.other >= OTHER_MAX);

// The run with the most jobs per second among those matching f, clean ones
// first.
function best(rs, f) {
  const all = rs.filter(f);
  const pool = all.some(clean) ? all.filter(clean) : all;
  return pool.reduce((b, r) => (!b || r.r.per_s > b.r.per_s ? r : b), null);
}

function otherCell(r) {
  return r.other === undefined ? '' : `${r.other}${r.other >= OTHER_MAX ? ' (not used)' : ''}`;
}

// CPU microseconds per job: PostgreSQL + the worker processes + what runs
// under them (fx's sandboxes), from the run's cpu_ms and its job count.
function cpuCell(r, n) {
  if (!Array.isArray(r.cpu_ms) || !n) return '';
  const us = (ms) => Math.round((ms * 1000) / n);
  const [pg, w, k] = r.cpu_ms;
  return `${us(pg)} + ${us(w)}${r.sys === 'fx' ? ` + ${us(k)}` : ''} = ${us(pg + w + k)}`;
}

function render(m, rs, commands) {
  const L = [];
  const by = (s, sys) => rs.filter((r) => r.s === s && (!sys || r.sys === sys));
  const chosen = (sys) => (rs.find((r) => r.s === 'chosen' && r.sys === sys) || {}).value;
  const k = m.knobs;
  const N = Number(k.n);
  const fxC = chosen('fx');
  const dbosV = chosen('dbos');

  L.push('# fx and its peers on one PostgreSQL: throughput, latency, cold start, idle load');
  L.push('');
  L.push(`Written by \`bench/run.sh\`${k.quick === 1 || k.quick === '1' ? ' with **QUICK=1 (a smoke run: small samples, not reference numbers)**' : ''} on ${m.date}. ` +
    'One private PostgreSQL 15 server with initdb\'s defaults (fsync and synchronous_commit on) serves fx and ' +
    'every peer in turn; the client, the workers and PostgreSQL share this machine\'s ' +
    `${m.cpus} CPUs, so every figure includes their competition for them. Compare rows of one run with each ` +
    'other rather than with another day\'s: the disk and the neighbours of a virtual machine vary.');
  L.push('');
  L.push('Ratios: **throughput fx/peer** (above 1: fx does more per second); **latency, cold start, ' +
    'commits and memory peer/fx** (above 1: fx is faster or lighter). So in every table a ratio above 1 ' +
    'favours fx.');
  L.push('');

  // machine
  L.push('## Machine and versions');
  L.push('');
  const s = m.settings;
  L.push(table(['', ''], [
    ['CPU', `${m.cpu}, ${m.cpus} vCPUs, ${m.memory_gib} GiB`],
    ['system', `${m.os}, Linux ${m.kernel}`],
    ['PostgreSQL', m.postgres],
    ['settings', `fsync ${s.fsync}, synchronous_commit ${s.synchronous_commit}, wal_sync_method ${s.wal_sync_method}, ` +
      `full_page_writes ${s.full_page_writes}, shared_buffers ${s.shared_buffers}, max_connections ${s.max_connections}, ` +
      `checkpoint_timeout ${s.checkpoint_timeout}, max_wal_size ${s.max_wal_size}, autovacuum ${s.autovacuum} (all initdb defaults)`],
    ['fx', `${m.fx_git}, extension ${m.fx_extension}, ${m.fx_binary}; no-op built with ${m.cc}`],
    ['graphile-worker', `${m.graphile_worker} (npm)`],
    ['DBOS Transact', `@dbos-inc/dbos-sdk ${m.dbos} (npm)`],
    ['clients', `Node.js ${m.node}, npm ${m.npm}, node-postgres ${m.node_pg}; ${m.pgbench}`],
    ['sizes', `N = ${int(N)} per throughput run, ${k.rounds} round(s); ${k.lat_n} latency samples; ` +
      `${k.cold_n} new functions per cold-start mode, ${k.cold_proc_n} new processes; ` +
      `${k.idle_windows} idle window(s) of ${k.idle_s} s`],
  ]));
  L.push('');

  // ceiling
  const ceil = by('ceiling');
  let ceilBatch = null;
  let ceilSingle = null;
  if (ceil.length) {
    L.push("## PostgreSQL's ceiling: the same claim-and-complete work in raw SQL (pgbench)");
    L.push('');
    L.push(`pgbench \`-M prepared\`, ${k.pgb_t} s per run, on a queue table shaped like \`fx.invocation\`'s hot path ` +
      '(`bench/pgbench/schema.sql`: status, jsonb args and result, timestamps, a partial index on queued rows), ' +
      'refilled before every run. Jobs per second; every job is claimed with `FOR UPDATE SKIP LOCKED` and ' +
      'marked succeeded, and rows are kept, as fx keeps them.');
    L.push('');
    const clients = [...new Set(ceil.map((r) => r.clients))].sort((a, b) => a - b);
    const labels = {
      'claim1-one-tx': 'claim 1 and complete it in the same transaction (`claim1-one-tx.sql`)',
      'claim1-complete1': 'claim 1, complete it in a second transaction (`claim1-complete1.sql`)',
      'claimN-completeN': 'claim 100 in one statement, complete the 100 in a second (`claimN-completeN.sql`)',
      enqueue1: 'insert 1 job per transaction: sync commits/s (`enqueue1.sql`)',
    };
    const rows = [];
    for (const script of ['claim1-one-tx', 'claim1-complete1', 'claimN-completeN', 'enqueue1']) {
      const row = [labels[script]];
      let any = false;
      for (const c of clients) {
        const r = ceil.find((x) => x.script === script && x.clients === c);
        if (r) any = true;
        row.push(r ? `${int(r.per_s)}${r.left === 0 && script !== 'enqueue1' ? ' (ran out of rows)' : ''}` : '-');
      }
      if (any) rows.push(row);
    }
    L.push(table(['work', ...clients.map((c) => `${c} client${c > 1 ? 's' : ''}`)], rows));
    L.push('');
    const maxOf = (script) => Math.max(...ceil.filter((r) => r.script === script).map((r) => r.per_s), 0);
    ceilBatch = maxOf('claimN-completeN');
    ceilSingle = Math.max(maxOf('claim1-one-tx'), maxOf('claim1-complete1'));
  }

  // 1. throughput
  const tp = by('throughput');
  const fxBest = best(tp, (r) => r.sys === 'fx' && !r.rows);
  const fxRowsBest = best(tp, (r) => r.sys === 'fx' && r.rows);
  const peerBest = {
    graphile: best(tp, (r) => r.sys === 'graphile'),
    dbos: best(tp, (r) => r.sys === 'dbos' && (!dbosV || r.variant === dbosV)),
  };
  if (tp.length) {
    L.push(`## 1. Throughput: ${int(N)} no-op invocations enqueued in one statement, until all succeeded`);
    L.push('');
    L.push('One SQL statement enqueues all of them (fx: `SELECT cardinality(fx_invoke_all(\'noop\', ' +
      'array_fill(\'{}\'::jsonb, ARRAY[N])))`, one INSERT, and also, on the row "fx_invoke per row", ' +
      '`SELECT count(fx_invoke(\'noop\', \'{}\')) FROM generate_series(1, N)`; graphile-worker: one ' +
      '`add_jobs(array(...))`; DBOS: `dbos.enqueue_workflow(...)` ' +
      'over `generate_series`), after a warm-up (the peers: 200 jobs; fx: rounds of ten times its slots ' +
      'until one starts no new sandbox, so that every worker\'s sandboxes are warm); the client then polls every 50 ms until all ' +
      'have succeeded. **jobs/s = N / (enqueue statement sent → the poll that saw all done)**. "database" is ' +
      'N / (last finished − first created) from the rows themselves (fx, DBOS; graphile-worker deletes its ' +
      'jobs). Commits and WAL are per job, from `pg_stat_database` and the WAL position, warm-up excluded; ' +
      'commits are read once the workers\' backends have exited, since a busy backend reports them late. ' +
      `Best of ${k.rounds} round(s) per configuration; ratio **fx/peer**.`);
    L.push('');
    const rows = [];
    const line = (r, name, ratioCell) => [name, r.cfg, `**${int(r.r.per_s)}**`, int(r.db_per_s),
      num(r.r.enqueue_ms / 1000), num(r.commits_per_job, 3), int(r.wal_per_job), cpuCell(r, N), ratioCell];
    if (fxBest) rows.push(line(fxBest, 'fx', ''));
    if (fxRowsBest) rows.push(line(fxRowsBest, 'fx', ''));
    for (const sys of ['graphile', 'dbos']) {
      const r = peerBest[sys];
      if (r) rows.push(line(r, NAMES[sys], fxBest ? ratio(fxBest.r.per_s, r.r.per_s) : '-'));
    }
    if (fxBest && ceilBatch) {
      rows.push(['PostgreSQL ceiling, batched', `pgbench, claim/complete ${'100'} per statement, best client count`,
        int(ceilBatch), '', '', '', '', '', ratio(fxBest.r.per_s, ceilBatch)]);
      rows.push(['PostgreSQL ceiling, single-row', 'pgbench, best of the single-row scripts and client counts',
        int(ceilSingle), '', '', '', '', '', ratio(fxBest.r.per_s, ceilSingle)]);
    }
    L.push(table(['system', 'configuration', 'jobs/s', 'database jobs/s', 'enqueue s', 'commits/job',
      'WAL bytes/job', 'CPU µs/job', 'fx/peer'], rows));
    L.push('');
    L.push('**CPU µs/job**: where the CPU time of the run went, per job: PostgreSQL\'s processes + the worker ' +
      'process(es) + (fx) the sandboxes under them, read from `/proc` (user and system time, with what each ' +
      'reaped) before and after the run; the kernel\'s own threads are not in it. On two CPUs, 1,000,000 / ' +
      'this sum × 2 bounds the jobs/s that the same work could reach with both CPUs busy.');
    L.push('');
    if (fxBest && ceilBatch)
      L.push(`fx's best is **${(100 * fxBest.r.per_s / ceilBatch).toFixed(0)}%** of what this PostgreSQL does ` +
        `with raw batched claim-and-complete (${int(ceilBatch)} jobs/s) and ` +
        `**${ratio(fxBest.r.per_s, ceilSingle)}** its single-row ceiling (${int(ceilSingle)} jobs/s).`);
    L.push('');
    L.push(`Every run (fx's \`--concurrency\` values tried; the best, ${fxC || '?'}, is used in the later scenarios` +
      `${dbosV ? `, and DBOS's best variant, ${dbosV}` : ''}):`);
    L.push('');
    L.push(table(['system', 'configuration', 'round', 'jobs/s', 'database jobs/s', 'enqueue s', 'drain after commit s',
      'commits/job', 'WAL bytes/job', 'CPU µs/job', 'sandboxes started', 'CPU busy before %', 'other load %'],
    tp.map((r) => [NAMES[r.sys], r.cfg, r.round, int(r.r.per_s), int(r.db_per_s), num(r.r.enqueue_ms / 1000),
      num(r.r.drain_ms / 1000), num(r.commits_per_job, 3), int(r.wal_per_job), cpuCell(r, N),
      r.started === undefined ? '' : r.started, r.busy, otherCell(r)])));
    L.push('');
  }

  // 2. latency
  const lat = by('latency');
  if (lat.length) {
    L.push('## 2. Single invocation latency');
    L.push('');
    L.push('With idle workers, one at a time, a random 5–25 ms apart, from a Node.js client (node-postgres) ' +
      'on the Unix socket. **enqueue → start**: from just before the enqueue statement is sent (autocommit, so ' +
      'the commit is included) to the handler\'s first instruction, both read from this machine\'s wall clock ' +
      '(fx: the no-op returns `clock_gettime(CLOCK_REALTIME)` from inside its sandbox; the peers\' handlers run ' +
      'in the client\'s process). **fx_call round trip**: `SELECT fx_call(\'noop\', \'{"t":true,...}\')` sent → result ' +
      'received, for a warm session function. Milliseconds; ratio **peer/fx**.');
    L.push('');
    const fxStart = lat.find((r) => r.sys === 'fx' && r.what === 'start');
    const fxCall = lat.find((r) => r.sys === 'fx' && r.what === 'call');
    const rows = [];
    if (fxCall)
      rows.push(['`fx_call` round trip (warm)', 'fx', num(fxCall.r.p50), num(fxCall.r.p99), num(fxCall.r.mean), fxCall.r.n, '', '', otherCell(fxCall)]);
    if (fxStart)
      rows.push(['enqueue → start: `fx_invoke`', 'fx', num(fxStart.r.p50), num(fxStart.r.p99), num(fxStart.r.mean), fxStart.r.n, '', '', otherCell(fxStart)]);
    for (const r of lat.filter((x) => x.sys !== 'fx')) {
      const what = r.sys === 'graphile' ? 'enqueue → start: SQL `graphile_worker.add_job`' :
        `enqueue → start: SQL \`dbos.enqueue_workflow\` (${r.variant})`;
      rows.push([what, NAMES[r.sys], num(r.r.p50), num(r.r.p99), num(r.r.mean), r.r.n,
        fxStart ? ratio(r.r.p50, fxStart.r.p50) : '-', fxStart ? ratio(r.r.p99, fxStart.r.p99) : '-', otherCell(r)]);
    }
    L.push(table(['measure', 'system', 'p50 ms', 'p99 ms', 'mean ms', 'n', 'peer/fx p50', 'peer/fx p99', 'other load %'], rows));
    L.push('');
    const segs = [fxCall, fxStart].filter((r) => r && r.r.segments);
    if (segs.length) {
      L.push('Where fx\'s time goes: each sample cut at the times the invocation\'s row records (`created_at`, ' +
        'the enqueue transaction\'s start; `started_at`, the claim transaction\'s start; `finished_at`, when ' +
        '`fx.finish` stored the outcome, before its commit) and the handler\'s own clock reading, all this ' +
        'machine\'s wall clock. Means add up to the mean above; p50s need not. Milliseconds.');
      L.push('');
      const names = Object.keys(segs[0].r.segments);
      const srows = [];
      for (const k of names) {
        const row = [segs[0].r.segments[k].what];
        for (const r of segs) {
          const v = r.r.segments[k];
          row.push(v ? num(v.p50) : '-', v ? num(v.mean) : '-');
        }
        srows.push(row);
      }
      const head = ['segment'];
      for (const r of segs) {
        const w = r === fxCall ? '`fx_call`' : '`fx_invoke` → start';
        head.push(`${w} p50`, `${w} mean`);
      }
      L.push(table(head, srows));
      L.push('');
    }
  }

  // 3. cold start
  const cold = by('cold');
  if (cold.length) {
    L.push('## 3. Cold start');
    L.push('');
    L.push('**fx, new function**: the first `fx_call` (round trip) of a function deployed just before, each with a ' +
      'bundle of its own, so the worker fetches it from the database, unpacks it, and starts it in a ' +
      'sandbox (session mode: the process starts and says ready; simple mode: one process for the call). ' +
      '**new process**: the time from starting a new worker process, with one invocation already queued, to that ' +
      'invocation\'s handler starting: for the peers, whose functions are code inside the worker process, that is ' +
      'what deploying new code costs; for fx it is a worker restart (bundle cache kept). ' +
      'Milliseconds; ratios **peer/fx**, against fx\'s new session function and against fx\'s new worker process.');
    L.push('');
    const sumOf = (r) => (r.r ? r.r : summaryUs(r.us));
    const fxFn = cold.find((r) => r.sys === 'fx' && r.what === 'new_fn_session');
    const fxProc = cold.find((r) => r.sys === 'fx' && r.what === 'new_process');
    const labels = {
      new_fn_session: 'new session function, first `fx_call`',
      new_fn_simple: 'new simple function, first `fx_call`',
      new_process: 'new worker process, first invocation starts',
    };
    const rows = cold.map((r) => {
      const x = sumOf(r);
      const kinds = r.r && r.r.start_kinds ? Object.entries(r.r.start_kinds).map(([a, b]) => `${a} ${b}`).join(', ') : '';
      const peerish = r.sys !== 'fx';
      return [NAMES[r.sys], labels[r.what] || r.what, x.n, num(x.p50), num(x.max), kinds,
        peerish && fxFn ? ratio(x.p50, sumOf(fxFn).p50) : '',
        peerish && fxProc ? ratio(x.p50, sumOf(fxProc).p50) : ''];
    });
    L.push(table(['system', 'what', 'n', 'p50 ms', 'max ms', 'start kinds (fx)', 'peer/fx new function',
      'peer/fx new process'], rows));
    L.push('');
  }

  // 4. idle
  const idle = by('idle');
  if (idle.length) {
    L.push('## 4. Idle load and memory');
    L.push('');
    L.push(`Commits per second that each system's idle worker causes on its database (\`pg_stat_database.xact_commit\`, ` +
      `read from another database, ${k.idle_windows} window(s) of ${k.idle_s} s after ${''}a settling pause), and ` +
      'resident memory (`VmRSS`, and `Pss` from `smaps_rollup`) of the worker process. fx\'s sandboxes are separate ' +
      'processes under the worker (each sandbox: a small init and the function); their sum is given apart (RSS ' +
      'counts shared pages once per process, PSS shares them out). "warm" = after deploying ' +
      `${(idle.find((r) => r.state === 'warm') || {}).warm_fns || 100} distinct session functions (one bundle, different names) ` +
      'and invoking each once. Ratio **peer/fx** against fx idle.');
    L.push('');
    const fxIdle = idle.find((r) => r.sys === 'fx' && r.state === 'idle');
    const rows = idle.map((r) => {
      const rates = r.rates || [];
      const avg = mean(rates);
      const state = r.sys === 'fx' ? (r.state === 'warm' ? `${r.warm_fns} warm session sandboxes` : 'idle, prewarmed stems') :
        r.sys === 'dbos' ? `idle, ${r.cfg}` : 'idle';
      return [NAMES[r.sys], state, rates.map((x) => num(x, 1)).join(', '), num(avg, 1), num(r.rss_kb / 1024, 1), num(r.pss_kb / 1024, 1),
        r.procs !== undefined ? `${r.procs} processes, RSS ${num(r.tree_rss_kb / 1024, 1)} MB, PSS ${num(r.tree_pss_kb / 1024, 1)} MB` : '',
        r.sys !== 'fx' && fxIdle ? ratio(avg, mean(fxIdle.rates)) : '',
        r.sys !== 'fx' && fxIdle ? ratio(r.rss_kb, fxIdle.rss_kb) : ''];
    });
    L.push(table(['system', 'state', 'commits/s per window', 'commits/s', 'worker RSS MB', 'worker PSS MB',
      'sandboxes (fx)', 'peer/fx commits', 'peer/fx RSS'], rows));
    L.push('');
  }

  // 5. scaling
  const sc = by('scaling');
  if (sc.length) {
    L.push('## 5. Scaling: throughput with more worker processes');
    L.push('');
    L.push(`The throughput run (N = ${int(N)}, one-statement enqueue) with 1, 2 and 4 worker processes on this one ` +
      `machine: fx workers each with \`--concurrency ${fxC || '?'}\`, graphile-worker processes each with concurrency 10 and ` +
      `a local queue of 50, DBOS processes each with its own executor id${dbosV ? ` (${dbosV})` : ''}. ` +
      `Best of ${k.rounds} round(s); jobs per second; ratio **fx/peer**.`);
    L.push('');
    const ws = [...new Set(sc.map((r) => r.workers))].sort((a, b) => a - b);
    const rows = ws.map((w) => {
      const f = best(sc, (r) => r.sys === 'fx' && r.workers === w);
      const g = best(sc, (r) => r.sys === 'graphile' && r.workers === w);
      const d = best(sc, (r) => r.sys === 'dbos' && r.workers === w);
      return [w, f ? int(f.r.per_s) : '-', g ? int(g.r.per_s) : '-', f && g ? ratio(f.r.per_s, g.r.per_s) : '-',
        d ? int(d.r.per_s) : '-', f && d ? ratio(f.r.per_s, d.r.per_s) : '-',
        f ? cpuCell(f, N) : '-', g ? cpuCell(g, N) : '-'];
    });
    L.push(table(['worker processes', 'fx jobs/s', 'graphile-worker jobs/s', 'fx/graphile-worker', 'DBOS jobs/s', 'fx/DBOS',
      'fx CPU µs/job', 'graphile-worker CPU µs/job'], rows));
    L.push('');
  }

  // 6. held snapshot
  const sn = by('snapshot');
  if (sn.length) {
    L.push('## 6. Throughput under a held snapshot');
    L.push('');
    L.push('The throughput run while another session of the same database (psql) holds `BEGIN ISOLATION LEVEL ' +
      'REPEATABLE READ; SELECT 1;` open from before the enqueue until all are done, so no row version that run ' +
      'makes dead can be removed. "without" is the best scenario-1 run of the same configuration. Jobs per second; ' +
      'ratio **fx/peer** under the snapshot.');
    L.push('');
    const fxHeld = sn.find((r) => r.sys === 'fx');
    const rows = sn.map((r) => {
      const base = r.sys === 'fx' ? best(tp, (x) => x.sys === 'fx' && x.cfg === r.cfg) : peerBest[r.sys];
      return [NAMES[r.sys], r.cfg, base ? int(base.r.per_s) : '-', int(r.r.per_s), base ? ratio(r.r.per_s, base.r.per_s) : '-',
        num(r.commits_per_job, 3), int(r.wal_per_job), r.sys !== 'fx' && fxHeld ? ratio(fxHeld.r.per_s, r.r.per_s) : ''];
    });
    L.push(table(['system', 'configuration', 'jobs/s without', 'jobs/s with the snapshot held', 'with/without',
      'commits/job', 'WAL bytes/job', 'fx/peer'], rows));
    L.push('');
  }

  const later = rs.filter((r) => r.s === 'scaling' || r.s === 'snapshot');
  if (later.length) {
    L.push('Every run of scenarios 5 and 6:');
    L.push('');
    L.push(table(['scenario', 'system', 'workers', 'round', 'jobs/s', 'database jobs/s', 'commits/job', 'WAL bytes/job',
      'CPU µs/job', 'sandboxes started', 'CPU busy before %', 'other load %'],
    later.map((r) => [r.s, NAMES[r.sys], r.workers, r.round, int(r.r.per_s), int(r.db_per_s), num(r.commits_per_job, 3),
      int(r.wal_per_job), cpuCell(r, N), r.started === undefined ? '' : r.started, r.busy, otherCell(r)])));
    L.push('');
  }

  L.push('## Notes');
  L.push('');
  L.push('- fx runs its no-op (`bench/noop/noop.c`, C with `include/fx.h`) as a session function in its sandboxes ' +
    '(namespaces, cgroups, seccomp), one warm process per concurrent slot; the peers run a no-op JavaScript ' +
    'function inside their own Node.js process. fx\'s figures include crossing a process boundary per ' +
    'invocation, the peers\' do not.');
  L.push('- Statistics: fx\'s and graphile-worker\'s queue tables are analyzed once, before the first measured run, ' +
    'while N jobs wait (then emptied), as autovacuum does for a queue in use; every run then starts from an empty ' +
    'queue. Without that, graphile-worker\'s claims run at about half speed (12,000/s against 19,000-22,000/s here), ' +
    'and which runs of a benchmark had the good statistics depended on when autovacuum came by. DBOS\'s tables are ' +
    'left as they are (a fresh system database per run).');
  L.push('- graphile-worker: jobs are added with one `add_jobs(array)` call, not `add_job` per row (which can fall ' +
    'into sequential scans of a fresh jobs table); concurrency 10, `localQueue.size` 50 and ' +
    '`completeJobBatchDelay`/`failJobBatchDelay` 0, as in `shared/research/queues-measured.md`.');
  L.push('- DBOS: a fresh system database for every run (a queue row left by an earlier run keeps being polled, and ' +
    'an application version that is not the latest registered one is never dequeued), the application version ' +
    'fixed to `fx-bench` and passed to `enqueue_workflow`, and a distinct executor id (`DBOS__VMID`) per process. ' +
    'With a global concurrency limit DBOS dequeues under REPEATABLE READ with `FOR UPDATE NOWAIT`, so several ' +
    'processes contend rather than add up.');
  L.push('- Before every measured run the script waits (a bounded time) until less than 25% of the CPUs are busy: ' +
    'autovacuum after a run, and the kernel tearing down namespaces of stopped sandboxes, take a few seconds. ' +
    'The reading is in the "CPU busy before" column. "other load" is the share of all CPUs that processes other ' +
    'than the benchmark\'s own (its process tree and the PostgreSQL server\'s) used during a measurement; a run with ' +
    `${OTHER_MAX}% or more is run again (twice at most) and not used while a cleaner run of the same configuration exists. ` +
    'Kernel threads count as other load, and some of their work (namespaces and cgroups) is done for fx\'s sandboxes.');
  L.push('- All workers share the same two CPUs with PostgreSQL and the client, so "scaling" shows what more ' +
    'processes cost or gain on one machine, not across machines.');
  L.push('- DBOS\'s runs of one configuration can differ by 3× (about 2,500 or 700 workflows/s here, the slow ones ' +
    'with more commits per workflow); the tables take the best of the rounds.');
  L.push('');
  L.push('## Commands');
  L.push('');
  L.push('`make bench` (or `bench/run.sh`; `QUICK=1` for the smoke run) ran, in order:');
  L.push('');
  L.push('```');
  L.push(commands.trim());
  L.push('```');
  L.push('');
  L.push('Harness code: `bench/run.sh`, `bench/lib.sh`, `bench/peers/*.js` (drain.js polls; fxclient.js, ' +
    'graphile.js and dbos.js time latencies and cold starts), `bench/pgbench/*.sql`, `bench/noop/noop.c`. ' +
    'Peers come from the npm registry at the versions in `bench/peers/package-lock.json`.');
  L.push('');
  L.push('<details><summary>Raw measurements (one JSON object per run)</summary>');
  L.push('');
  L.push('```');
  L.push(JSON.stringify({ s: 'meta', ...m }));
  for (const r of rs) L.push(JSON.stringify(r));
  L.push('```');
  L.push('');
  L.push('</details>');
  return L.join('\n') + '\n';
}

function summaryUs(us) {
  const ms = (us || []).map((v) => v / 1000);
  return { n: ms.length, p50: percentile(ms, 50), p99: percentile(ms, 99), max: Math.max(...ms) };
}

async function main() {
  const a = args(process.argv.slice(2));
  if (a._[0] === 'meta') {
    process.stdout.write(JSON.stringify(await meta(a), null, 1) + '\n');
  } else if (a._[0] === 'render') {
    const m = JSON.parse(fs.readFileSync(a._[1], 'utf8'));
    const rs = fs.readFileSync(a._[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const commands = fs.readFileSync(a._[3], 'utf8');
    process.stdout.write(render(m, rs, commands));
  } else if (a._[0] === 'rerender') {
    const md = fs.readFileSync(a._[1], 'utf8');
    const block = (after) => {
      const start = md.indexOf('```\n', md.indexOf(after)) + 4;
      return md.slice(start, md.indexOf('\n```', start));
    };
    const lines = block('<summary>Raw measurements').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const { s: _, ...m } = lines.find((r) => r.s === 'meta');
    process.stdout.write(render(m, lines.filter((r) => r.s !== 'meta'), block('## Commands')));
  } else {
    throw new Error('usage: node report.js meta ... | render META RESULTS COMMANDS | rerender RESULTS.md');
  }
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
