// quorumkv dashboard. Plain script, no framework or build step: it calls this
// node's HTTP API with the key the user entered and draws what it gets.
// Everything shown comes from /auth/whoami, /cluster/overview, /cluster/nodes,
// /kv/items and the /kv/watch change stream; admin actions use /cluster/leader/transfer,
// /cluster/nodes/{id} and /admin/snapshot, exactly as any client would.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const STORAGE = 'quorumkv.apiKey'; // sessionStorage: this tab only, never a cookie or the URL
  const POLL_MS = 1000;              // cluster and traffic refresh
  const KEYS_POLL_MS = 2000;         // keys view refresh while "Live" is on
  const HISTORY = 120;               // traffic samples kept per node (two minutes)
  const PAGE = 50;                   // keys per page
  const RANK = { read: 1, write: 2, admin: 3 };

  let me = null;          // {name, scope} of the key in use
  let pollTimer = 0;
  let view = 'cluster';
  const series = new Map(); // node id -> {prev, rps[], p50[], p99[], last}

  const can = (scope) => me !== null && RANK[me.scope] >= RANK[scope];

  // ---- API ---------------------------------------------------------------

  class APIError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  async function api(method, path, opts = {}) {
    const headers = { Authorization: 'Bearer ' + (sessionStorage.getItem(STORAGE) || '') };
    let body;
    if (opts.body !== undefined) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(opts.body); }
    Object.assign(headers, opts.headers || {});
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), opts.timeout || 5000);
    let res;
    try {
      res = await fetch(path, { method, headers, body, signal: ctl.signal, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      throw new APIError(0, 'unreachable', 'This node did not answer (' + (e.name === 'AbortError' ? 'timed out' : e.message) + ').');
    } finally { clearTimeout(timer); }
    if (opts.raw && res.ok) return res;
    let doc = null;
    try { doc = await res.json(); } catch (_) { /* not JSON: reported below */ }
    if (!res.ok) {
      const e = (doc && doc.error) || {};
      if (res.status === 401 && me !== null) signOut('The API key was refused: ' + (e.message || 'unauthorized'));
      throw new APIError(res.status, e.code || 'http_' + res.status, e.message || res.status + ' ' + res.statusText);
    }
    return doc ? doc.data : null;
  }

  // ---- small helpers ------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  const fmtInt = (n) => (n === null || n === undefined) ? '—' : Number(n).toLocaleString('en-US');
  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + u[i];
  }
  function fmtMs(ms) {
    if (ms === null || ms === undefined || ms < 0) return '—';
    if (ms === 0) return '< 1 ms'; // whole-millisecond measurements
    if (ms < 1) return ms.toFixed(2) + ' ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    return (ms / 1000).toFixed(1) + ' s';
  }
  function fmtTTL(ms) {
    if (ms === null) return 'none';
    if (ms <= 0) return 'expired';
    const s = Math.ceil(ms / 1000);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + r + 's';
  }
  const fmtOffset = (ms) => Math.abs(ms) < 0.05 ? '0.0' : (ms > 0 ? '+' : '−') + Math.abs(ms).toFixed(1);
  const rate = (v) => v < 10 ? v.toFixed(1) : Math.round(v).toString();

  let bannerTimer = 0;
  function banner(msg, kind) {
    const b = $('banner');
    clearTimeout(bannerTimer);
    if (!msg) { b.hidden = true; return; }
    b.textContent = msg;
    b.className = 'banner ' + (kind || '');
    b.hidden = false;
    if (kind === 'info') bannerTimer = setTimeout(() => { b.hidden = true; }, 6000);
  }

  // confirmAction shows a modal dialog; resolves true only on Confirm.
  // Cancel has the focus first, so Enter alone does nothing destructive.
  function confirmAction(title, text, okLabel) {
    const d = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    d.returnValue = '';
    d.showModal();
    $('confirm-cancel').focus();
    return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
  }

  // ---- sign in ------------------------------------------------------------

  async function signIn(key) {
    sessionStorage.setItem(STORAGE, key);
    try {
      me = await api('GET', '/auth/whoami');
    } catch (e) {
      sessionStorage.removeItem(STORAGE);
      me = null;
      throw e;
    }
    $('who-name').textContent = me.name + ' (' + me.scope + ' key)';
    document.body.dataset.scope = me.scope;
    for (const e of document.querySelectorAll('.admin-only')) e.hidden = !can('admin');
    $('login').hidden = true;
    $('tabs').hidden = false;
    $('who').hidden = false;
    select(location.hash.slice(1) || 'cluster');
    poll();
  }

  function signOut(reason) {
    sessionStorage.removeItem(STORAGE);
    me = null;
    clearTimeout(pollTimer);
    keysLive.stop();
    series.clear();
    delete document.body.dataset.scope;
    for (const id of ['tabs', 'who', 'view-cluster', 'view-traffic', 'view-keys']) $(id).hidden = true;
    $('nodes').tBodies[0].replaceChildren();
    $('traffic').replaceChildren();
    $('keys').tBodies[0].replaceChildren();
    Object.assign(keys, { prefix: '', cursors: [''], page: 0, next: null, selected: null, item: null });
    $('prefix').value = '';
    $('item').replaceChildren(el('p', { class: 'muted', text: 'Select a key to see its value.' }));
    $('login').hidden = false;
    $('login-error').textContent = reason || '';
    banner('');
    $('key').focus();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = $('key').value.trim();
    $('login-error').textContent = '';
    try {
      await signIn(key);
      $('key').value = '';
    } catch (e) {
      $('login-error').textContent = e.message;
    }
  });
  $('logout').addEventListener('click', () => signOut(''));

  // ---- tabs (arrow keys move between them, as the ARIA tabs pattern asks) --

  const tabs = ['cluster', 'traffic', 'keys'];
  function select(name) {
    if (!tabs.includes(name)) name = 'cluster';
    view = name;
    for (const t of tabs) {
      const on = t === name;
      $('tab-' + t).setAttribute('aria-selected', String(on));
      $('tab-' + t).tabIndex = on ? 0 : -1;
      $('view-' + t).hidden = !on;
    }
    window.history.replaceState(null, '', '#' + name);
    if (name === 'keys') { keysLive.start(); listKeys(); } else keysLive.stop();
    if (name === 'traffic') renderTraffic();
  }
  for (const t of tabs) $('tab-' + t).addEventListener('click', () => select(t));
  $('tabs').addEventListener('keydown', (ev) => {
    const i = tabs.indexOf(view);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[ev.key];
    if (next === undefined) return;
    ev.preventDefault();
    const t = tabs[(next + tabs.length) % tabs.length];
    select(t);
    $('tab-' + t).focus();
  });

  // ---- cluster ------------------------------------------------------------

  async function poll() {
    clearTimeout(pollTimer);
    if (me === null) return;
    const started = Date.now();
    const [ov, nodes, status] = await Promise.allSettled([
      api('GET', '/cluster/overview', { timeout: 4000 }),
      api('GET', '/cluster/nodes', { timeout: 4000 }),
      api('GET', '/cluster/status', { timeout: 4000 }),
    ]);
    if (me === null) return;
    if (ov.status === 'fulfilled') {
      banner('');
      record(ov.value);
      renderCluster(ov.value, nodes.status === 'fulfilled' ? nodes.value.nodes : [], status.status === 'fulfilled' ? status.value : {});
      if (view === 'traffic') renderTraffic();
    } else {
      banner('Cannot read the cluster from this node: ' + ov.reason.message + ' Retrying every second; open the dashboard on another node if this one is down.', 'error');
      $('nodes').classList.add('stale');
    }
    pollTimer = setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }

  // renderCluster draws the table from every node's own report (ov), the
  // leader's view of the nodes and this node's status. A version is shown
  // when /cluster/nodes (per node) or /cluster/status (this node) has one.
  function renderCluster(ov, leaderView, self) {
    const byID = new Map(leaderView.map((n) => [n.id, n]));
    const reachable = ov.nodes.filter((n) => !n.error);
    // The leader: a reachable node that says it leads, in the highest term.
    let leader = null;
    for (const n of reachable) if (n.state === 'Leader' && (!leader || n.term > leader.term)) leader = n;
    const leaderCommit = leader ? leader.commitIndex : Math.max(0, ...reachable.map((n) => n.commitIndex));
    const tbody = $('nodes').tBodies[0];
    const rows = ov.nodes.map((r) => {
      const v = byID.get(r.id) || {};
      const isLeader = leader !== null && r.id === leader.id;
      let health = 'ok', healthText = 'healthy';
      if (r.error) { health = 'down'; healthText = 'unreachable'; }
      else if (v.healthy === false && !isLeader) { health = 'down'; healthText = 'unhealthy (leader lost contact)'; }
      else if (r.ready) { health = 'degraded'; healthText = 'not ready'; }
      const lag = r.error ? null : Math.max(0, leaderCommit - r.appliedIndex);
      let contact = isLeader ? null : (v.lastContactMs ?? (r.lastContactMs >= 0 ? r.lastContactMs : null));
      if (r.error && !contact) contact = null; // not measured yet by the leader
      const clock = v.clock;
      const version = v.version || r.version || (r.id === self.nodeId && (self.version || (self.build && self.build.version))) || '—';
      const role = r.error ? '?' : r.state + (v.suffrage === 'nonvoter' ? ' (non-voter)' : '');
      const tr = el('tr', { id: 'node-' + r.id, 'data-node': r.id, 'data-role': r.error ? 'unknown' : r.state.toLowerCase(), 'data-health': health, class: (isLeader ? 'leader' : '') + (health === 'down' ? ' down' : '') },
        el('td', {}, r.id, ov.nodeId === r.id ? el('span', { class: 'muted', text: ' (this node)' }) : null,
          v.httpAddr ? el('div', { class: 'muted', text: v.httpAddr }) : null),
        el('td', {}, isLeader ? el('span', { class: 'badge ok', text: '★ Leader' }) : role),
        el('td', { class: health === 'ok' ? 'ok' : health === 'down' ? 'bad' : 'warn', title: r.error || '' },
          (health === 'ok' ? '● ' : '▲ ') + healthText, r.error ? el('div', { class: 'muted detail', text: r.error }) : null),
        el('td', { class: 'num', text: r.error ? '—' : fmtInt(r.term) }),
        el('td', { class: 'num', text: r.error ? '—' : fmtInt(r.commitIndex) }),
        el('td', { class: 'num', text: r.error ? '—' : fmtInt(r.appliedIndex) }),
        el('td', { class: 'num' + (lag > 100 ? ' warn' : ''), text: lag === null ? '—' : fmtInt(lag) }),
        el('td', { class: 'num', text: contact === null ? '—' : fmtMs(contact) }),
        el('td', { class: r.error ? '' : r.ready ? 'warn' : 'ok', text: r.error ? '—' : (r.ready ? r.ready.replace(/_/g, ' ') : 'ready') }),
        el('td', { class: 'num' + (clock && !clock.withinBound ? ' bad' : ''), text: clock ? fmtOffset(clock.offsetMs) + ' ± ' + clock.errorMs.toFixed(1) + ' ms' : '—' }),
        el('td', { text: version }),
        can('admin') ? el('td', { class: 'admin-only' },
          el('button', { type: 'button', 'data-action': 'transfer', disabled: isLeader || !!r.error || v.suffrage === 'nonvoter', onclick: () => transfer(r.id) }, 'Make leader'), ' ',
          el('button', { type: 'button', class: 'danger', 'data-action': 'remove', onclick: () => removeNode(r.id) }, 'Remove')) : null);
      return tr;
    });
    // Keep the focused action button focused across the refresh.
    const focused = document.activeElement && document.activeElement.closest('#nodes tr');
    const focusKey = focused ? [focused.dataset.node, document.activeElement.dataset.action] : null;
    tbody.replaceChildren(...rows);
    if (focusKey) {
      const b = tbody.querySelector(`tr[data-node="${CSS.escape(focusKey[0])}"] [data-action="${focusKey[1]}"]`);
      if (b) b.focus();
    }
    $('nodes').classList.remove('stale');
    const down = ov.nodes.length - reachable.length;
    $('cluster-summary').textContent = `${ov.nodes.length} nodes · leader ${leader ? leader.id : 'none'} · term ${leader ? leader.term : '—'}` + (down ? ` · ${down} unreachable` : '');
  }

  async function transfer(id) {
    if (!await confirmAction('Transfer leadership', `Make ${id} the leader? Writes pause for a moment while leadership moves.`, 'Transfer')) return;
    try {
      const r = await api('POST', '/cluster/leader/transfer', { body: { id }, timeout: 20000 });
      banner(`Leadership moved; the leader is now ${r.leaderId || 'not yet known'}.`, 'info');
    } catch (e) { banner('Transfer failed: ' + e.message, 'error'); }
    poll();
  }

  async function removeNode(id) {
    if (!await confirmAction('Remove node', `Remove ${id} from the cluster? It stops receiving the log and must be wiped before it can join again.`, 'Remove ' + id)) return;
    try {
      await api('DELETE', '/cluster/nodes/' + encodeURIComponent(id), { timeout: 20000 });
      banner(`${id} was removed from the cluster.`, 'info');
    } catch (e) { banner('Remove failed: ' + e.message, 'error'); }
    poll();
  }

  $('backup').addEventListener('click', async () => {
    if (!await confirmAction('Download backup', 'Download a consistent backup of all data? It holds every key and value: store it as securely as the cluster.', 'Download')) return;
    try {
      const res = await api('GET', '/admin/snapshot', { raw: true, timeout: 300000 });
      const name = (/filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') || '') || [])[1] || 'quorumkv.qkvbak';
      const url = URL.createObjectURL(await res.blob());
      const a = el('a', { href: url, download: name });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      banner('Backup ' + name + ' downloaded.', 'info');
    } catch (e) { banner('Backup failed: ' + e.message, 'error'); }
  });

  // ---- traffic ------------------------------------------------------------

  // record turns two successive cumulative reports of a node into rates.
  function record(ov) {
    const now = Date.now();
    for (const r of ov.nodes) {
      let h = series.get(r.id);
      if (!h) { h = { prev: null, rps: [], p50: [], p99: [], last: null, report: null }; series.set(r.id, h); }
      h.report = r;
      if (r.error) { h.last = null; h.prev = null; push(h, null, null, null); continue; }
      const t = r.traffic;
      const cur = { at: now, t };
      if (h.prev) {
        const dt = (now - h.prev.at) / 1000;
        const s = delta(h.prev.t, t, dt);
        if (s) { h.last = s; push(h, s.rps, s.p50, s.p99); }
      }
      h.prev = cur;
    }
    for (const id of series.keys()) if (!ov.nodes.some((n) => n.id === id)) series.delete(id);
  }
  function push(h, rps, p50, p99) {
    h.rps.push(rps); h.p50.push(p50); h.p99.push(p99);
    for (const a of [h.rps, h.p50, h.p99]) if (a.length > HISTORY) a.shift();
  }
  // delta is the rates between two samples, or null after a counter reset
  // (the node restarted).
  function delta(a, b, dt) {
    if (dt <= 0) return null;
    const before = new Map(a.requests.map((x) => [x.route + ' ' + x.status, x.count]));
    let total = 0;
    const routes = [];
    for (const x of b.requests) {
      const d = x.count - (before.get(x.route + ' ' + x.status) || 0);
      if (d < 0) return null;
      if (d > 0) routes.push({ route: x.route, status: x.status, rate: d / dt });
      total += d;
    }
    routes.sort((p, q) => q.rate - p.rate);
    const lat = b.latencyCounts.map((c, i) => c - (a.latencyCounts[i] || 0));
    const batches = b.writeBatches - a.writeBatches, writes = b.writeBatchWrites - a.writeBatchWrites;
    const exp = b.expirations - a.expirations;
    if (batches < 0 || exp < 0 || lat.some((c) => c < 0)) return null;
    return {
      rps: total / dt, routes,
      p50: quantile(b.latencyBounds, lat, 0.5), p99: quantile(b.latencyBounds, lat, 0.99),
      batch: batches > 0 ? writes / batches : null, expPerSec: exp / dt,
    };
  }
  // quantile estimates the q-quantile (ms) from cumulative bucket counts
  // (the last is the total), interpolating inside the bucket as Prometheus'
  // histogram_quantile does; null without observations.
  function quantile(bounds, cum, q) {
    const total = cum[cum.length - 1];
    if (!total) return null;
    const rank = q * total;
    for (let i = 0; i < bounds.length; i++) {
      if (cum[i] >= rank) {
        const lo = i ? bounds[i - 1] : 0, below = i ? cum[i - 1] : 0;
        const inBucket = cum[i] - below;
        return 1000 * (lo + (bounds[i] - lo) * (inBucket ? (rank - below) / inBucket : 1));
      }
    }
    return 1000 * bounds[bounds.length - 1]; // beyond the last bound
  }

  const SVG = 'http://www.w3.org/2000/svg';
  // chart draws up to two series as polylines scaled to their joint maximum.
  function chart(label, a, b) {
    const W = 300, H = 70, max = Math.max(1e-9, ...a.filter((v) => v !== null), ...(b || []).filter((v) => v !== null));
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('class', 'chart');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
    const axis = document.createElementNS(SVG, 'line');
    for (const [k, v] of Object.entries({ x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'axis' })) axis.setAttribute(k, v);
    svg.append(axis);
    const line = (data, cls) => {
      const pts = [];
      data.forEach((v, i) => { if (v !== null) pts.push(((W * (i + HISTORY - data.length)) / (HISTORY - 1)).toFixed(1) + ',' + (H - 2 - ((H - 14) * v) / max).toFixed(1)); });
      const p = document.createElementNS(SVG, 'polyline');
      p.setAttribute('points', pts.join(' '));
      p.setAttribute('class', cls);
      svg.append(p);
    };
    line(a, 'l1');
    if (b) line(b, 'l2');
    const t = document.createElementNS(SVG, 'text');
    t.setAttribute('x', 2); t.setAttribute('y', 10);
    t.textContent = 'max ' + (max < 10 ? max.toFixed(2) : Math.round(max));
    svg.append(t);
    return svg;
  }

  function renderTraffic() {
    const cards = [];
    for (const [id, h] of series) {
      const r = h.report, s = h.last;
      const card = el('article', { class: 'card', 'data-node': id, 'data-rps': s ? String(s.rps) : '', 'aria-labelledby': 'traffic-' + id },
        el('h3', { id: 'traffic-' + id }, id + ' ', el('span', { class: 'muted', text: r && !r.error ? r.state : 'unreachable' })));
      card.append(
        el('div', { class: 'legend', text: 'Requests/s' }), chart(`Requests per second on ${id}`, h.rps),
        el('div', { class: 'legend' }, 'Latency ', el('span', { class: 'k1', text: 'p50' }), ' / ', el('span', { class: 'k2', text: 'p99' }), ' (ms)'),
        chart(`Request latency p50 and p99 on ${id}`, h.p50, h.p99));
      const dl = el('dl');
      const item = (k, v) => dl.append(el('dt', { text: k }), el('dd', { text: v }));
      item('Requests/s', s ? rate(s.rps) : '—');
      item('Latency p50 / p99', s ? fmtMs(s.p50) + ' / ' + fmtMs(s.p99) : '—');
      item('Write batch (avg)', s && s.batch !== null ? s.batch.toFixed(1) + ' writes' : '—');
      item('Expirations/s', s ? rate(s.expPerSec) : '—');
      item('Keys', r && !r.error ? fmtInt(r.keys) : '—');
      item('Data', r && !r.error ? fmtBytes(r.dataBytes) : '—');
      card.append(dl);
      if (s && s.routes.length) {
        const tb = el('tbody');
        for (const x of s.routes.slice(0, 8)) tb.append(el('tr', {}, el('td', { text: x.route }), el('td', { text: x.status, class: x.status >= '500' ? 'bad' : x.status >= '400' ? 'warn' : '' }), el('td', { class: 'num', text: rate(x.rate) + '/s' })));
        card.append(el('table', { class: 'routes' }, el('caption', { class: 'sr', text: 'Requests per second by route and status on ' + id }),
          el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Route' }), el('th', { scope: 'col', text: 'Status' }), el('th', { scope: 'col', class: 'num', text: 'Rate' }))), tb));
      }
      cards.push(card);
    }
    $('traffic').replaceChildren(...cards);
  }

  // ---- keys ---------------------------------------------------------------

  const keys = { prefix: '', cursors: [''], page: 0, next: null, selected: null, item: null };

  // keyRow is one row of the keys table for an item of the list, or for a
  // set event of the watch stream (same key, version and expiresAt fields).
  function keyRow(it) {
    const at = it.expiresAt ? Date.parse(it.expiresAt) : null;
    return el('tr', { 'data-key': it.key, 'aria-selected': String(it.key === keys.selected) },
      el('td', {}, el('button', { type: 'button', class: 'link', onclick: () => showKey(it.key) }, it.key)),
      el('td', { class: 'num', text: fmtInt(it.version) }),
      el('td', { class: 'ttl', 'data-expires': at === null ? '' : String(at), text: fmtTTL(at === null ? null : at - Date.now()) }));
  }

  async function listKeys() {
    const q = new URLSearchParams({ prefix: keys.prefix, limit: String(PAGE) });
    if (keys.cursors[keys.page]) q.set('cursor', keys.cursors[keys.page]);
    let res;
    try {
      res = await api('GET', '/kv/items?' + q);
    } catch (e) { $('page-info').textContent = 'Listing failed: ' + e.message; return; }
    keys.next = res.cursor;
    const tbody = $('keys').tBodies[0];
    tbody.replaceChildren(...res.items.map(keyRow));
    if (!res.items.length) tbody.append(el('tr', {}, el('td', { colspan: '3', class: 'muted', text: 'No keys' + (keys.prefix ? ' under this prefix.' : '.') })));
    $('prev').disabled = keys.page === 0;
    $('next').disabled = !keys.next;
    pageInfo(res.items.length);
  }
  const pageInfo = (n) => { $('page-info').textContent = `Page ${keys.page + 1} · ${n} key${n === 1 ? '' : 's'}`; };

  $('keys-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    keys.prefix = $('prefix').value;
    keys.cursors = ['']; keys.page = 0;
    $('tail').replaceChildren();
    keysLive.start();
    listKeys();
  });
  $('next').addEventListener('click', () => { if (!keys.next) return; keys.cursors[keys.page + 1] = keys.next; keys.page++; listKeys(); });
  $('prev').addEventListener('click', () => { if (keys.page === 0) return; keys.page--; listKeys(); });

  async function showKey(key, quiet) {
    keys.selected = key;
    for (const tr of $('keys').tBodies[0].rows) tr.setAttribute('aria-selected', String(tr.dataset.key === key));
    const box = $('item');
    let it;
    try {
      it = await api('GET', '/kv/items/' + encodeURIComponent(key));
    } catch (e) {
      keys.item = null;
      box.replaceChildren(el('h3', { text: key }), el('p', { class: e.status === 404 ? 'muted' : 'error', text: e.status === 404 ? 'This key no longer exists (deleted or expired).' : e.message }));
      return;
    }
    if (quiet && keys.item && keys.item.key === key && keys.item.version === it.version) return; // unchanged
    keys.item = { key, version: it.version, expires: it.ttlRemainingMs === null ? null : Date.now() + it.ttlRemainingMs };
    box.replaceChildren(
      el('h3', { text: key }),
      el('p', {}, 'Version ', el('strong', { text: fmtInt(it.version) }), ' · TTL ',
        el('strong', { class: 'ttl', 'data-expires': keys.item.expires === null ? '' : String(keys.item.expires), text: fmtTTL(it.ttlRemainingMs) })),
      el('pre', { tabindex: '0', 'aria-label': 'Value of ' + key }, JSON.stringify(it.value, null, 2)),
      can('write') ? el('button', { type: 'button', class: 'danger', 'data-action': 'delete', onclick: () => deleteKey(key, it.version) }, 'Delete key') : null);
  }

  async function deleteKey(key, version) {
    if (!await confirmAction('Delete key', `Delete "${key}" (version ${version})? If it has changed since, nothing is deleted.`, 'Delete')) return;
    try {
      await api('DELETE', '/kv/items/' + encodeURIComponent(key), { headers: { 'If-Match': '"' + version + '"' } });
      banner(`Deleted "${key}".`, 'info');
      keys.selected = null;
      $('item').replaceChildren(el('p', { class: 'muted', text: 'Select a key to see its value.' }));
    } catch (e) { banner('Delete failed: ' + e.message, 'error'); }
    listKeys();
  }

  // TTLs count down between refreshes.
  setInterval(() => {
    for (const c of document.querySelectorAll('.ttl[data-expires]')) {
      const at = c.dataset.expires;
      c.textContent = fmtTTL(at === '' ? null : Number(at) - Date.now());
    }
  }, 1000);

  // ---- live tail ----------------------------------------------------------

  // sseParser returns a function that takes the stream's text in chunks of
  // any size and calls onEvent({event, data, id}) for each complete event,
  // following the text/event-stream rules: lines end in \n, \r\n or \r; a
  // blank line ends an event; "data" lines join with \n; ":" starts a
  // comment; an event without data is not dispatched, but its id still
  // counts (lastId tracks it for the resume).
  function sseParser(onEvent) {
    let buf = '', event = '', data = [], id = null, lastId = null, sawCR = false;
    const line = (l) => {
      if (l === '') {
        if (id !== null) lastId = id;
        if (data.length) onEvent({ event: event || 'message', data: data.join('\n'), id: lastId });
        event = ''; data = []; id = null;
        return;
      }
      if (l[0] === ':') return;
      const c = l.indexOf(':');
      const field = c < 0 ? l : l.slice(0, c);
      let value = c < 0 ? '' : l.slice(c + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) id = value;
    };
    return (chunk) => {
      if (sawCR && chunk[0] === '\n') chunk = chunk.slice(1); // the \n of a \r\n split across chunks
      sawCR = false;
      buf += chunk;
      const re = /\r\n|\r|\n/g;
      let start = 0, m;
      while ((m = re.exec(buf)) !== null) {
        if (m[0] === '\r' && m.index === buf.length - 1) { sawCR = true; }
        line(buf.slice(start, m.index));
        start = re.lastIndex;
      }
      buf = buf.slice(start);
      if (buf.length > 1 << 20) throw new Error('an event longer than 1 MiB'); // bounded, like the server's values
    };
  }

  const TAIL_MAX = 200;          // events kept in the live tail
  const STALL_MS = 15000;        // the node sends progress every 5 s: silence this long means a dead connection
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

  function setLiveState(state, detail) {
    const s = $('live-state');
    s.dataset.state = state;
    s.textContent = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', polling: 'polling every 2 s', off: 'paused' }[state];
    s.title = detail || '';
  }

  // tailEvent shows one change at the top of the tail and applies it to the
  // keys table: a set updates or adds the key's row, a delete or expiry
  // removes it.
  function tailEvent(ev) {
    const list = $('tail');
    list.prepend(el('li', { 'data-type': ev.type, 'data-key': ev.key },
      el('time', { text: new Date().toLocaleTimeString('en-GB') }), ' ',
      el('span', { class: 'badge ev-' + ev.type, text: ev.type }), ' ',
      el('span', { class: 'tkey', text: ev.key }),
      el('span', { class: 'muted', text: ' @' + ev.index + (ev.type === 'set' ? ' v' + ev.version : '') })));
    while (list.children.length > TAIL_MAX) list.lastElementChild.remove();

    const tbody = $('keys').tBodies[0];
    const rows = [...tbody.rows].filter((r) => r.dataset.key !== undefined);
    const row = rows.find((r) => r.dataset.key === ev.key);
    if (ev.type === 'set') {
      const fresh = keyRow(ev);
      if (row) row.replaceWith(fresh);
      else {
        // Only a key that sorts within this page joins it (the list is in
        // byte order, which string comparison matches for ASCII keys; the
        // next page starts after the last row).
        const after = rows.find((r) => r.dataset.key > ev.key);
        if (after) after.before(fresh);
        else if (!keys.next) { for (const r of tbody.rows) if (r.dataset.key === undefined) r.remove(); tbody.append(fresh); }
      }
    } else if (row) row.remove();
    pageInfo([...tbody.rows].filter((r) => r.dataset.key !== undefined).length);
    if (ev.key === keys.selected) showKey(ev.key, ev.type === 'set');
  }

  // keysLive keeps the keys view current. With the Live box on it follows
  // GET /kv/watch for the browsed prefix. EventSource cannot send the
  // Authorization header, so the stream is read with fetch() and a body
  // reader and parsed by sseParser. A dropped stream resumes from the last
  // event id with backoff; a reset, a compacted history (410) or a closed
  // stream re-reads the list. If the node refuses the stream, the view falls
  // back to polling the list every two seconds.
  const keysLive = {
    gen: 0, timer: 0, ctl: null, lastId: null,
    start() {
      this.stop();
      if (!$('live').checked || me === null) { setLiveState('off'); return; }
      this.lastId = null;
      setLiveState('connecting');
      this.run(this.gen, keys.prefix);
    },
    stop() {
      this.gen++;
      clearInterval(this.timer); clearTimeout(this.timer); this.timer = 0;
      if (this.ctl) this.ctl.abort();
      this.ctl = null;
    },
    poll(why) {
      setLiveState('polling', why);
      this.timer = setInterval(() => {
        if (me === null || view !== 'keys') return;
        listKeys();
        if (keys.selected) showKey(keys.selected, true);
      }, KEYS_POLL_MS);
    },
    resync() { listKeys(); if (keys.selected) showKey(keys.selected, true); },
    async run(gen, prefix) {
      let failures = 0;
      while (gen === this.gen) {
        const outcome = await this.once(gen, prefix);
        if (gen !== this.gen) return;
        if (outcome.refused) { this.poll(outcome.refused); return; }
        if (outcome.connected) failures = 0;
        if (outcome.fresh) { this.lastId = null; continue; } // start over from now; once() re-reads the list
        if (outcome.resync) { this.resync(); continue; }
        const wait = BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)];
        setLiveState('reconnecting', outcome.why);
        await new Promise((r) => { this.timer = setTimeout(r, wait); });
      }
    },
    // once reads one stream until it ends and says what to do next.
    async once(gen, prefix) {
      const ctl = new AbortController();
      this.ctl = ctl;
      const headers = { Authorization: 'Bearer ' + (sessionStorage.getItem(STORAGE) || ''), Accept: 'text/event-stream' };
      if (this.lastId !== null) headers['Last-Event-ID'] = this.lastId;
      let stall = setTimeout(() => ctl.abort(), STALL_MS);
      let res;
      try {
        res = await fetch('/kv/watch?' + new URLSearchParams({ prefix }), { headers, signal: ctl.signal, cache: 'no-store', credentials: 'omit' });
      } catch (e) {
        clearTimeout(stall);
        return { why: 'This node did not answer: ' + e.message };
      }
      if (!res.ok) {
        clearTimeout(stall);
        let err = {};
        try { err = (await res.json()).error || {}; } catch (_) { /* not JSON */ }
        if (res.status === 401) { signOut('The API key was refused: ' + (err.message || 'unauthorized')); return { refused: 'signed out' }; }
        if (res.status === 410) return { fresh: true };
        if (res.status === 503 || res.status >= 500) return { why: err.message || res.status + ' ' + res.statusText };
        return { refused: 'The node refused the change stream (' + res.status + '): ' + (err.message || res.statusText) };
      }
      if (!(res.headers.get('Content-Type') || '').startsWith('text/event-stream')) {
        clearTimeout(stall); ctl.abort();
        return { refused: 'The node answered the change stream with ' + res.headers.get('Content-Type') };
      }
      const first = this.lastId === null;
      if (first) this.lastId = res.headers.get('X-KV-Index');
      setLiveState('live');
      if (first) this.resync(); // the stream now holds every change after the list is read
      let out = { connected: true, why: 'The stream ended.' };
      const feed = sseParser((m) => {
        if (m.id !== null) this.lastId = m.id;
        let doc;
        try { doc = JSON.parse(m.data); } catch (_) { return; }
        if (m.event === 'closed') { out = { connected: true, resync: true }; return; }
        if (m.event !== 'message') return; // progress: only its id matters
        if (doc.type === 'reset') this.resync();
        else if (doc.type === 'set' || doc.type === 'delete' || doc.type === 'expire') tailEvent(doc);
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done || gen !== this.gen) break;
          clearTimeout(stall);
          stall = setTimeout(() => ctl.abort(), STALL_MS);
          feed(value);
        }
      } catch (e) {
        out = { connected: true, why: e.name === 'AbortError' ? 'No data for ' + STALL_MS / 1000 + ' s.' : e.message };
      } finally { clearTimeout(stall); ctl.abort(); }
      return out;
    },
  };
  $('live').addEventListener('change', () => keysLive.start());

  // ---- start --------------------------------------------------------------

  const saved = sessionStorage.getItem(STORAGE);
  if (saved) {
    signIn(saved).catch((e) => signOut('Sign in again: ' + e.message));
  } else {
    $('key').focus();
  }
})();
