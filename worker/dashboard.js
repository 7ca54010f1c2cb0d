/*
 * dashboard.js: fills the page at GET / (dashboard.html) from the worker's
 * GET /api/... and keeps it current.
 *
 * The overview polls functions, invocations, workflows and workers every
 * 2 s and the throughput chart every second; #inv=ID shows one invocation
 * (polled until it ends), #fn=NAME lists only that function's invocations.
 * Every request carries "Authorization: Bearer SECRET"; the secret comes
 * from #token=SECRET (then dropped from the address bar) or the sign-in
 * form and is kept in sessionStorage, i.e. for this tab only.  Text from
 * the database only ever reaches the page as text nodes, never as HTML.
 */
'use strict';

(function () {
	const TOKEN_KEY = 'fx-dashboard-token';
	const OVERVIEW_MS = 2000;
	const CHART_MS = 1000;
	const DETAIL_MS = 2000;
	const ENDED = ['succeeded', 'failed', 'dead', 'cancelled'];

	let token = null;
	let memoryToken = null;		/* when sessionStorage is unavailable */
	let generation = 0;			/* bumped to stop the polls of a view */
	let lastChart = null;

	class AuthError extends Error {}

	const $ = (id) => document.getElementById(id);

	/* el('td', {className: 'num'}, 'text', child, ...): an element. */
	function el(tag, props, ...kids) {
		const e = document.createElement(tag);

		Object.assign(e, props || {});
		for (const k of kids) {
			if (k === null || k === undefined)
				continue;
			e.append(k instanceof Node ? k : String(k));
		}
		return e;
	}

	function storeToken(t) {
		memoryToken = t;
		try {
			if (t === null)
				sessionStorage.removeItem(TOKEN_KEY);
			else
				sessionStorage.setItem(TOKEN_KEY, t);
		} catch (e) {
			/* private mode or file: the variable keeps it */
		}
	}

	function loadToken() {
		try {
			return sessionStorage.getItem(TOKEN_KEY) || memoryToken;
		} catch (e) {
			return memoryToken;
		}
	}

	async function api(path) {
		let res;
		let body = null;

		try {
			res = await fetch('api/' + path, {
				headers: {Authorization: 'Bearer ' + token},
				cache: 'no-store',
			});
		} catch (e) {
			throw new Error('the worker does not answer (' + e.message + ')');
		}
		try {
			body = await res.json();
		} catch (e) {
			/* not JSON: the status says enough */
		}
		if (res.status === 401)
			throw new AuthError((body && body.error) || 'invalid token');
		if (!res.ok)
			throw new Error((body && body.error) || res.status + ' ' + res.statusText);
		return body;
	}

	/* ---- formatting */

	function ms(v) {
		if (v === null || v === undefined)
			return '';
		if (v < 10)
			return v.toFixed(2) + ' ms';
		if (v < 1000)
			return v.toFixed(1) + ' ms';
		if (v < 60000)
			return (v / 1000).toFixed(2) + ' s';
		return (v / 60000).toFixed(1) + ' min';
	}

	/* 75 -> "1 min", 7200 -> "2 h" */
	function span(s) {
		if (s < 60)
			return s + ' s';
		if (s < 3600)
			return Math.floor(s / 60) + ' min';
		if (s < 86400)
			return Math.floor(s / 3600) + ' h';
		return Math.floor(s / 86400) + ' d';
	}

	function ago(ts) {
		if (!ts)
			return '';
		const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);

		return s < 0 ? 'in ' + span(-s) : span(s) + ' ago';
	}

	/* A time as "12 s ago", the exact time in its tooltip. */
	function when(ts) {
		return el('span', {title: ts ? new Date(ts).toLocaleString() : ''}, ago(ts));
	}

	function clock(ts) {
		const d = new Date(ts);
		const pad = (n, w) => String(n).padStart(w || 2, '0');

		return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) +
			'.' + pad(d.getMilliseconds(), 3);
	}

	function badge(status) {
		return el('span', {className: 'status s-' + status}, status);
	}

	function json(v) {
		return v === undefined ? '' : JSON.stringify(v, null, 2);
	}

	function invLink(id) {
		return el('a', {href: '#inv=' + id}, String(id));
	}

	function td(content, className) {
		return el('td', {className: className || ''}, content);
	}

	/* Put rows into table id's body; show "#id-empty" when there are none. */
	function fill(id, rows) {
		$(id).tBodies[0].replaceChildren(...rows);
		const empty = $(id + '-empty');

		if (empty)
			empty.hidden = rows.length > 0;
	}

	/* ---- the overview */

	function functionRow(f) {
		const name = el('a', {href: '#fn=' + encodeURIComponent(f.name)}, f.name);

		return el('tr', {},
			td(name), td(f.version === null ? '' : String(f.version)), td(f.mode || ''),
			td(f.invocations, 'num'), td(f.errors, 'num' + (f.errors > 0 ? ' error' : '')),
			td(ms(f.p50_ms), 'num'), td(ms(f.p95_ms), 'num'), td(when(f.last_invoked)));
	}

	function duration(i) {
		if (i.duration_ms !== null)
			return ms(i.duration_ms);
		if (i.status === 'running' && i.started_at)
			return ms(Date.now() - new Date(i.started_at).getTime()) + '\u2026';
		return '';
	}

	function invocationRow(i) {
		const row = el('tr', {title: 'invocation ' + i.id},
			td(invLink(i.id), 'num'), td(i.fn + ':' + i.version), td(badge(i.status)),
			td(i.attempts, 'num'), td(when(i.created_at)), td(duration(i), 'num'),
			td(i.start_kind || ''), td(i.worker || ''), td(i.error || '', 'clip error'));

		row.addEventListener('click', () => { location.hash = 'inv=' + i.id; });
		return row;
	}

	function workflowRow(w) {
		let waiting = w.waiting || (w.status === 'running' ? 'running' : 'a worker');

		if (w.wake_at)
			waiting += ' until ' + new Date(w.wake_at).toLocaleTimeString();
		return el('tr', {},
			td(invLink(w.id), 'num'), td(w.fn), td(badge(w.status)),
			td(w.done + ' / ' + w.steps, 'num'), td(w.last_step || ''), td(waiting));
	}

	function workerRow(w) {
		const name = w.self ? [w.name, ' (this worker)'] : [w.name];

		return el('tr', {},
			td(el('span', {}, ...name)), td(w.client), td(when(w.backend_start)),
			td(w.state || ''), td(w.running, 'num'), td(w.http ? 'yes' : ''));
	}

	function showWorkers(d) {
		const s = d.self;
		const r = s.responses;

		$('where').textContent = 'worker ' + s.name + ' \u00b7 database ' + d.database +
			' \u00b7 PostgreSQL ' + d.server_version;
		$('queue').textContent = d.queue_depth + ' queued';
		fill('workers', d.workers.map(workerRow));
		$('self').textContent = 'This worker (HTTP on ' + s.http + '): ' + s.running + ' running, ' +
			s.claimed + ' claimed, ' + s.warm + ' warm ' + (s.warm === 1 ? 'sandbox' : 'sandboxes') +
			'; HTTP answers 2xx ' + r['2xx'] + ', 4xx ' + r['4xx'] + ', 5xx ' + r['5xx'] + '.';
	}

	async function loadOverview(fn) {
		const q = 'invocations?limit=50' + (fn ? '&fn=' + encodeURIComponent(fn) : '');
		const [fns, invs, wfs, workers] = await Promise.all([
			api('functions'), api(q), api('workflows'), api('workers')]);

		fill('functions', fns.map(functionRow));
		fill('invocations', invs.map(invocationRow));
		fill('workflows', wfs.map(workflowRow));
		showWorkers(workers);
		$('filter').replaceChildren(...(fn
			? ['of ' + fn + ' \u00b7 ', el('a', {href: '#'}, 'all functions')]
			: ['the newest 50']));
	}

	/* The smallest of 1, 2, 4, 6, 8 x 10^k that is at least v (v >= 1). */
	function niceCeil(v) {
		const p = Math.pow(10, Math.floor(Math.log10(v)));

		for (const m of [1, 2, 4, 6, 8, 10])
			if (m * p >= v)
				return m * p;
		return 10 * p;
	}

	function drawChart(t) {
		const c = $('chart');
		const dpr = window.devicePixelRatio || 1;
		const w = c.clientWidth;
		const h = c.clientHeight;
		const g = c.getContext('2d');
		const css = getComputedStyle(document.documentElement);
		const n = t.seconds;
		const pad = {l: 44, r: 8, t: 8, b: 20};
		const plotW = w - pad.l - pad.r;
		const plotH = h - pad.t - pad.b;
		let max = 0;

		if (w === 0 || h === 0)
			return;
		c.width = Math.round(w * dpr);
		c.height = Math.round(h * dpr);
		g.setTransform(dpr, 0, 0, dpr, 0, 0);
		g.clearRect(0, 0, w, h);
		for (let i = 0; i < n; i++)
			max = Math.max(max, t.succeeded[i] + t.failed[i]);
		const top = niceCeil(Math.max(max, 1));
		const y = (v) => pad.t + plotH - v / top * plotH;

		g.font = '11px system-ui, "DejaVu Sans", sans-serif';
		g.fillStyle = css.getPropertyValue('--muted').trim() || '#666';
		g.strokeStyle = css.getPropertyValue('--line').trim() || '#ddd';
		g.textAlign = 'right';
		g.textBaseline = 'middle';
		for (const v of top > 1 ? [0, top / 2, top] : [0, top]) {
			g.beginPath();
			g.moveTo(pad.l, Math.round(y(v)) + 0.5);
			g.lineTo(w - pad.r, Math.round(y(v)) + 0.5);
			g.stroke();
			g.fillText(String(v), pad.l - 6, y(v));
		}
		g.textBaseline = 'top';
		g.textAlign = 'left';
		g.fillText('-' + n + ' s', pad.l, h - pad.b + 6);
		g.textAlign = 'right';
		g.fillText('now', w - pad.r, h - pad.b + 6);

		const bw = plotW / n;
		const ok = css.getPropertyValue('--ok').trim() || 'green';
		const bad = css.getPropertyValue('--bad').trim() || 'red';

		for (let i = 0; i < n; i++) {
			const x = pad.l + i * bw + 1;
			const bwi = Math.max(bw - 2, 1);
			const s = t.succeeded[i];
			const f = t.failed[i];

			g.fillStyle = ok;
			g.fillRect(x, y(s), bwi, y(0) - y(s));
			g.fillStyle = bad;
			g.fillRect(x, y(s + f), bwi, y(s) - y(s + f));
		}
	}

	async function loadChart() {
		const t = await api('throughput?seconds=60');
		const sum = (a) => a.reduce((x, v) => x + v, 0);
		const n = t.seconds;

		lastChart = t;
		drawChart(t);
		$('rate').textContent = (t.succeeded[n - 1] + t.failed[n - 1]) + '/s in the last second \u00b7 ' +
			(sum(t.succeeded) + sum(t.failed)) + ' in the last ' + n + ' s, ' + sum(t.failed) + ' failed';
	}

	/* ---- one invocation */

	function field(dl, name, value) {
		if (value === null || value === undefined || value === '')
			return;
		dl.append(el('dt', {}, name), el('dd', {}, value));
	}

	function showFields(i) {
		const dl = $('detail-fields');

		dl.replaceChildren();
		field(dl, 'Status', badge(i.status));
		field(dl, 'Function', el('a', {href: '#fn=' + encodeURIComponent(i.fn)}, i.fn + ':' + i.version));
		field(dl, 'Attempts', i.attempts + ' of ' + i.max_attempts);
		field(dl, 'Key', i.key);
		field(dl, 'Queue', i.queue);
		field(dl, 'Parent workflow', i.parent ? invLink(i.parent) : null);
		field(dl, 'Created', new Date(i.created_at).toLocaleString());
		if (i.not_before && new Date(i.not_before) - new Date(i.created_at) >= 1000)
			field(dl, 'Not before', new Date(i.not_before).toLocaleString());
		field(dl, 'Started', i.started_at ? new Date(i.started_at).toLocaleString() : null);
		field(dl, 'Finished', i.finished_at ? new Date(i.finished_at).toLocaleString() : null);
		field(dl, 'Duration', ms(i.duration_ms));
		field(dl, 'CPU', ms(i.cpu_ms));
		field(dl, 'Peak memory', i.max_rss_kb ? (i.max_rss_kb / 1024).toFixed(1) + ' MB' : null);
		field(dl, 'Start', i.start_kind);
		field(dl, 'Worker', i.worker);
		field(dl, 'Deadline', i.deadline ? new Date(i.deadline).toLocaleString() : null);
	}

	function showOutcome(i) {
		const title = $('detail-outcome-title');
		const out = $('detail-outcome');

		out.className = '';
		if (i.status === 'succeeded') {
			title.textContent = 'Result';
			out.textContent = json(i.result);
		} else if (i.error) {
			title.textContent = 'Error';
			out.className = 'error';
			out.textContent = i.error + (i.detail ? '\n\n' + i.detail : '');
		} else if (ENDED.includes(i.status)) {
			title.textContent = 'Outcome';
			out.textContent = i.status;
		} else {
			title.textContent = 'Result';
			out.textContent = 'not finished yet (' + i.status + ')';
		}
	}

	function showLogs(i) {
		const pre = $('detail-logs');
		const many = new Set(i.logs.map((l) => l.attempt)).size > 1;

		pre.replaceChildren(...i.logs.map((l) => el('div', {className: l.stream},
			el('span', {className: 'at'}, (many ? '#' + l.attempt + ' ' : '') + clock(l.at) + ' '),
			l.line)));
		if (i.logs.length === 0)
			pre.textContent = 'No log lines.';
		$('detail-log-note').textContent = i.log_lines > i.logs.length
			? 'the first ' + i.logs.length + ' of ' + i.log_lines + ' lines; fx logs ' + i.id + ' shows all'
			: '';
	}

	function stepRow(s) {
		const outcome = s.error ? el('span', {className: 'error'}, s.error) : json(s.output);

		return el('tr', {},
			td(s.step, 'num'), td(s.name), td(s.kind), td(s.done ? 'yes' : 'waiting'),
			td(ms(s.ms), 'num'), td(outcome, 'clip mono'), td(s.child ? invLink(s.child) : ''));
	}

	async function loadDetail(id) {
		const [i, workers] = await Promise.all([api('invocations/' + id), api('workers')]);

		showWorkers(workers);
		document.title = 'fx: invocation ' + i.id;
		$('detail-title').replaceChildren('Invocation ' + i.id + ' \u00b7 ' + i.fn + ':' + i.version + ' ',
			badge(i.status));
		showFields(i);
		$('detail-args').textContent = json(i.args);
		showOutcome(i);
		showLogs(i);
		$('detail-steps-box').hidden = i.steps.length === 0;
		$('detail-steps').tBodies[0].replaceChildren(...i.steps.map(stepRow));
		$('detail-children-box').hidden = i.children.length === 0;
		$('detail-children').replaceChildren(...i.children.map((c) =>
			el('li', {}, invLink(c.id), ' ' + c.fn + ' ', badge(c.status))));
		return ENDED.includes(i.status);
	}

	/* ---- views and polling */

	function connected(ok, why) {
		$('conn').textContent = ok ? 'live' : 'disconnected';
		$('conn').className = 'conn ' + (ok ? 'live' : 'down');
		$('problem').hidden = ok;
		$('problem').textContent = ok ? '' : why;
	}

	const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t));

	/* Run load every period until the view changes or load returns true. */
	async function poll(gen, period, load) {
		while (gen === generation) {
			try {
				const done = await load();

				if (gen !== generation)
					return;
				connected(true);
				if (done)
					return;
			} catch (e) {
				if (gen !== generation)
					return;
				if (e instanceof AuthError) {
					signIn('The token was refused: ' + e.message + '.');
					return;
				}
				connected(false, e.message);
			}
			await sleep(period);
		}
	}

	function signIn(why) {
		generation++;
		token = null;
		storeToken(null);
		$('overview').hidden = true;
		$('detail').hidden = true;
		$('logout').hidden = true;
		$('login').hidden = false;
		$('login-error').hidden = !why;
		$('login-error').textContent = why || '';
		$('conn').textContent = 'signed out';
		$('conn').className = 'conn down';
		$('token').focus();
	}

	function route() {
		const p = new URLSearchParams(location.hash.slice(1));
		const inv = p.get('inv');

		return {inv: inv && /^[0-9]+$/.test(inv) ? inv : null, fn: p.get('fn')};
	}

	function show() {
		const r = route();
		const gen = ++generation;

		if (!token) {
			signIn(null);
			return;
		}
		$('login').hidden = true;
		$('logout').hidden = false;
		$('overview').hidden = r.inv !== null;
		$('detail').hidden = r.inv === null;
		if (r.inv !== null) {
			poll(gen, DETAIL_MS, () => loadDetail(r.inv));
			return;
		}
		document.title = 'fx dashboard';
		poll(gen, OVERVIEW_MS, () => loadOverview(r.fn));
		poll(gen, CHART_MS, loadChart);
	}

	/* #token=SECRET: keep it for this tab, and out of the address bar. */
	function takeToken() {
		const p = new URLSearchParams(location.hash.slice(1));

		if (p.has('token')) {
			storeToken(p.get('token'));
			p.delete('token');
			const rest = p.toString();

			history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
		}
		token = loadToken();
	}

	function init() {
		takeToken();
		$('login-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			token = $('token').value.trim();
			$('token').value = '';
			storeToken(token);
			show();
		});
		$('logout').addEventListener('click', () => signIn(null));
		window.addEventListener('hashchange', show);
		window.addEventListener('resize', () => { if (lastChart) drawChart(lastChart); });
		show();
	}

	init();
})();
