// SPDX-License-Identifier: MIT
// The explorer page: login, live topic tree, message view, history and diff, chart, publish,
// retained-message clearing, broker panel from $SYS, export.
//
// Flow: MQTT.js delivers messages to onMessage(), which only updates the TopicTree model
// (O(topic depth), no DOM). One requestAnimationFrame callback (frame()) draws what changed:
// the visible rows of the virtualized tree (only rows in the viewport exist in the DOM), the
// selected topic's views (at most DETAIL_HZ times a second) and the charts. So the page's work
// per second is bounded by the frame rate, not by the message rate.
import mqtt from 'mqtt';
import { Buffer } from 'buffer';

import { drawChart } from './chart.js';
import {
  ageText, bytesText, decodeText, diffLines, diffText, hexDump, parseHex, parseMetrics, preview,
  prettyJson,
  toBase64, toCsv, toJsonLines, utf8,
} from './format.js';
import { TopicTree, visibleRows } from './tree.js';

const ROW_H = 22; // px, fixed so the tree can be virtualized
const DETAIL_MS = 150; // the selected topic's views redraw at most this often
const FILTER_REBUILD_MS = 300; // a filtered tree is re-walked at most this often
const RECENT_MS = 1000; // a row changed this recently is highlighted

const $ = (id) => document.getElementById(id);

const state = {
  client: null,
  tree: new TopicTree(),
  expanded: new Set(),
  filter: '',
  rows: [],
  rowsVersion: -1,
  rowsDirty: true,
  rowsBuilt: 0,
  selected: null, // topic string
  detailCount: -1,
  detailTopic: null,
  detailTime: 0,
  view: 'text',
  frameQueued: false,
  lastRateT: 0,
  lastRateN: 0,
  rate: 0,
  pubQueue: [],
};

// ---- login -------------------------------------------------------------------------------

function defaultUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host || '127.0.0.1:8080'}/mqtt`;
}

function showError(text) {
  const e = $('login-error');
  e.textContent = text;
  e.hidden = !text;
}

function setStatus(text, cls) {
  const s = $('status');
  s.textContent = text;
  s.className = cls;
}

function login(ev) {
  ev.preventDefault();
  showError('');
  const url = $('url').value.trim();
  const version = Number($('version').value);
  const opts = {
    protocolVersion: version,
    clientId: $('client-id').value.trim() || `tern-explorer-${Math.random().toString(16).slice(2, 10)}`,
    clean: true,
    reconnectPeriod: 0, // a refused login is reported, not retried
    connectTimeout: 8000,
    keepalive: 30,
  };
  if ($('username').value) {
    opts.username = $('username').value;
  }
  if ($('password').value) {
    opts.password = $('password').value;
  }
  $('connect').disabled = true;
  setStatus('connecting…', 'pending');
  let client;
  try {
    client = mqtt.connect(url, opts);
  } catch (e) {
    $('connect').disabled = false;
    showError(`Cannot connect: ${e.message}`);
    setStatus('disconnected', 'off');
    return;
  }
  let connected = false;
  client.on('connect', () => {
    connected = true;
    state.client = client;
    client.options.reconnectPeriod = 3000; // from now on, ride out broker restarts
    // QoS 2 so each message arrives with the QoS it was published with (a subscription caps
    // it); retain-as-published so the retained flag shows what the broker keeps.
    const filters = { '#': { qos: 2, rap: true } };
    if ($('sys').checked) {
      filters['$SYS/#'] = { qos: 0, rap: true };
    }
    client.subscribe(filters, (err, granted) => {
      if (err) {
        showError(`Subscribe failed: ${err.message}`);
        return;
      }
      const refused = (granted || []).filter((g) => g.qos >= 0x80).map((g) => g.topic);
      if (refused.length) {
        $('sub-note').textContent = `not allowed to subscribe: ${refused.join(', ')}`;
      }
    });
    $('login').hidden = true;
    $('app').hidden = false;
    $('whoami').textContent = `${opts.username || 'anonymous'} @ ${url} (MQTT ${version === 5 ? '5' : '3.1.1'})`;
    setStatus('connected', 'on');
    queueFrame();
  });
  client.on('message', onMessage);
  client.on('error', (err) => {
    if (!connected) {
      showError(`Login failed: ${err.message}`);
      setStatus('disconnected', 'off');
      $('connect').disabled = false;
      client.end(true);
    } else {
      setStatus(`error: ${err.message}`, 'off');
    }
  });
  client.on('close', () => {
    if (connected && state.client !== client) {
      return; // logged out
    }
    if (!connected) {
      if ($('login-error').hidden) {
        showError(`Login failed: connection to ${url} closed`);
      }
      $('connect').disabled = false;
      setStatus('disconnected', 'off');
      client.end(true);
      return;
    }
    setStatus('reconnecting…', 'pending');
  });
  client.on('reconnect', () => {
    if (state.client === client) {
      setStatus('reconnecting…', 'pending');
    }
  });
}

function logout() {
  if (state.client) {
    state.client.end(true);
    state.client = null;
  }
  state.tree.clear();
  state.selected = null;
  state.rowsDirty = true;
  $('app').hidden = true;
  $('login').hidden = false;
  $('connect').disabled = false;
  setStatus('disconnected', 'off');
}

// ---- messages ----------------------------------------------------------------------------

function plainProperties(p) {
  if (!p) {
    return {};
  }
  const out = {};
  for (const [k, v] of Object.entries(p)) {
    if (v instanceof Uint8Array) {
      out[k] = { hex: Array.from(v, (b) => b.toString(16).padStart(2, '0')).join('') };
    } else {
      out[k] = v;
    }
  }
  return out;
}

function onMessage(topic, payload, packet) {
  // Copy into a plain Uint8Array: the exact bytes, detached from MQTT.js's buffers.
  const bytes = new Uint8Array(payload.length);
  bytes.set(payload);
  state.tree.add({
    topic,
    payload: bytes,
    qos: packet.qos,
    retain: packet.retain,
    time: Date.now(),
    properties: plainProperties(packet.properties),
    // MQTT 3.1.1 has no retain-as-published: an empty payload is taken as a delete.
    clearsRetained: state.client !== null && state.client.options.protocolVersion !== 5,
  });
  queueFrame();
}

// ---- frame loop --------------------------------------------------------------------------

function queueFrame() {
  if (!state.frameQueued) {
    state.frameQueued = true;
    requestAnimationFrame(frame);
  }
}

function frame() {
  state.frameQueued = false;
  if ($('app').hidden) {
    return;
  }
  const now = Date.now();
  if (now - state.lastRateT >= 1000) {
    state.rate = ((state.tree.messages - state.lastRateN) * 1000) / (now - state.lastRateT || 1);
    state.lastRateT = now;
    state.lastRateN = state.tree.messages;
    renderBroker();
  }
  $('counts').textContent = `${state.tree.root.topics} topics · ${state.tree.messages} messages · ${Math.round(state.rate)} msg/s`;
  renderTree(now);
  renderDetail(now);
  // Keep ticking while the highlight fades and rates move; stop when idle.
  if (now - state.tree.root.lastTime < 3000 || state.rate > 0) {
    setTimeout(queueFrame, 250);
  }
}

// ---- tree --------------------------------------------------------------------------------

function rebuildRows(now) {
  const t = state.tree;
  const needed =
    state.rowsDirty ||
    state.rowsVersion !== t.version ||
    (state.filter && now - state.rowsBuilt > FILTER_REBUILD_MS);
  if (!needed) {
    return;
  }
  if (state.filter && !state.rowsDirty && now - state.rowsBuilt < FILTER_REBUILD_MS) {
    return;
  }
  state.rows = visibleRows(t, state.expanded, state.filter);
  state.rowsVersion = t.version;
  state.rowsDirty = false;
  state.rowsBuilt = now;
  $('tree-spacer').style.height = `${state.rows.length * ROW_H}px`;
}

function rowElement(i) {
  const box = $('tree-rows');
  while (box.children.length <= i) {
    const r = document.createElement('div');
    r.className = 'row';
    r.innerHTML =
      '<span class="tw"></span><span class="name"></span><span class="ret" title="retained">R</span>' +
      '<span class="val"></span><span class="cnt"></span><span class="rate"></span><span class="age"></span>';
    box.appendChild(r);
  }
  return box.children[i];
}

function renderTree(now) {
  rebuildRows(now);
  const scroll = $('tree-scroll');
  const first = Math.max(0, Math.floor(scroll.scrollTop / ROW_H) - 2);
  const count = Math.min(state.rows.length - first, Math.ceil(scroll.clientHeight / ROW_H) + 5);
  const box = $('tree-rows');
  box.style.transform = `translateY(${first * ROW_H}px)`;
  for (let i = 0; i < Math.max(count, 0); i++) {
    const { node, depth } = state.rows[first + i];
    const r = rowElement(i);
    r.hidden = false;
    r.dataset.topic = node.path;
    r.style.paddingLeft = `${4 + depth * 14}px`;
    const kids = node.children.size > 0;
    const open = state.filter ? true : state.expanded.has(node.path);
    const c = r.children;
    c[0].textContent = kids ? (open ? '▾' : '▸') : '';
    c[1].textContent = node.name === '' ? '(empty)' : node.name;
    c[1].title = node.path;
    c[2].hidden = !node.retained;
    c[3].textContent = node.last ? preview(node.last.payload, 40) : '';
    c[4].textContent = kids ? `${node.total}` : node.count ? `${node.count}` : '';
    c[4].title = kids ? `${node.total} messages in ${node.topics} topics` : 'messages';
    const rate = node.currentRate(now);
    c[5].textContent = rate >= 0.05 ? `${rate < 10 ? rate.toFixed(1) : Math.round(rate)}/s` : '';
    c[6].textContent = node.lastTime ? ageText(now - node.lastTime) : '';
    r.classList.toggle('recent', now - node.lastTime < RECENT_MS);
    r.classList.toggle('selected', node.path === state.selected);
  }
  for (let i = Math.max(count, 0); i < box.children.length; i++) {
    box.children[i].hidden = true;
  }
}

function onTreeClick(ev) {
  const row = ev.target.closest('.row');
  if (!row) {
    return;
  }
  const topic = row.dataset.topic;
  const node = state.tree.get(topic);
  if (!node) {
    return;
  }
  if (node.children.size > 0 && (ev.target.classList.contains('tw') || !node.count)) {
    if (state.expanded.has(topic)) {
      state.expanded.delete(topic);
    } else {
      state.expanded.add(topic);
    }
    state.rowsDirty = true;
  }
  select(topic);
}

function select(topic) {
  state.selected = topic;
  state.detailTopic = null;
  $('pub-topic').value = $('pub-topic').value || topic;
  queueFrame();
}

// ---- selected topic ----------------------------------------------------------------------

function renderDetail(now) {
  const node = state.selected !== null ? state.tree.get(state.selected) : undefined;
  $('detail').hidden = node === undefined;
  if (node === undefined) {
    return;
  }
  const changed = state.detailTopic !== node.path || state.detailCount !== node.count;
  if (!changed || (state.detailTopic === node.path && now - state.detailTime < DETAIL_MS)) {
    if (changed) {
      setTimeout(queueFrame, DETAIL_MS);
    }
    return;
  }
  const fresh = state.detailTopic !== node.path;
  state.detailTopic = node.path;
  state.detailCount = node.count;
  state.detailTime = now;
  $('topic-name').textContent = node.path;
  const retainedBelow = node.retainedBelow();
  $('clear-retained').disabled = !node.retained;
  $('clear-subtree').disabled = retainedBelow.length === 0;
  $('clear-subtree').textContent = `Clear retained in subtree (${retainedBelow.length})`;
  const m = node.last;
  $('meta').textContent = m
    ? `${node.count} messages · last ${new Date(m.time).toLocaleTimeString()} · QoS ${m.qos}` +
      `${m.retain ? ' · retained' : ''} · ${bytesText(m.payload.length)}`
    : `no message on this topic itself (${node.total} below)`;
  renderView(m);
  renderHistory(node, fresh);
  const chart = $('chart');
  chart.hidden = node.series.length < 2;
  if (!chart.hidden) {
    drawChart(chart, node.series, { label: node.name });
  }
}

function renderView(m) {
  const out = $('view');
  for (const b of document.querySelectorAll('#tabs button')) {
    b.classList.toggle('active', b.dataset.view === state.view);
  }
  if (!m) {
    out.textContent = '';
    return;
  }
  let text;
  switch (state.view) {
    case 'json':
      text = prettyJson(m.payload) ?? '(not JSON)';
      break;
    case 'hex':
      text = hexDump(m.payload);
      break;
    case 'base64':
      text = toBase64(m.payload);
      break;
    case 'props':
      text = JSON.stringify({ qos: m.qos, retain: m.retain, ...m.properties }, null, 2);
      break;
    default: {
      const d = decodeText(m.payload);
      text = d.valid ? d.text : `(not valid UTF-8; shown with replacement characters)\n${d.text}`;
    }
  }
  out.classList.toggle('nowrap', state.view === 'hex');
  out.textContent = text;
}

function historyLabel(m, i) {
  return `#${i} ${new Date(m.time).toLocaleTimeString()} ${preview(m.payload, 30)}`;
}

function renderHistory(node, fresh) {
  const h = node.history;
  $('history-count').textContent = `${h.length} kept`;
  for (const id of ['diff-a', 'diff-b']) {
    const sel = $(id);
    const prev = fresh ? null : sel.value;
    sel.textContent = '';
    for (let i = h.length - 1; i >= 0; i--) {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = historyLabel(h[i], i);
      sel.appendChild(o);
    }
    if (prev !== null && Number(prev) < h.length) {
      sel.value = prev;
    } else if (id === 'diff-a' && h.length > 1) {
      sel.value = String(h.length - 2);
    }
  }
  if (fresh) {
    $('diff').textContent = '';
  }
}

function showDiff() {
  const node = state.tree.get(state.selected);
  if (!node) {
    return;
  }
  const a = node.history[Number($('diff-a').value)];
  const b = node.history[Number($('diff-b').value)];
  const out = $('diff');
  out.textContent = '';
  if (!a || !b) {
    return;
  }
  for (const { op, line } of diffLines(diffText(a.payload), diffText(b.payload))) {
    const d = document.createElement('div');
    d.className = op === '+' ? 'add' : op === '-' ? 'del' : 'same';
    d.textContent = `${op} ${line}`;
    out.appendChild(d);
  }
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function exportHistory(kind) {
  const node = state.tree.get(state.selected);
  if (!node) {
    return;
  }
  const base = node.path.replace(/[^A-Za-z0-9_.-]+/g, '_') || 'topic';
  if (kind === 'jsonl') {
    download(`${base}.jsonl`, toJsonLines(node.history), 'application/x-ndjson');
  } else {
    download(`${base}.csv`, toCsv(node.history), 'text/csv');
  }
}

// ---- publish and clear -------------------------------------------------------------------

function note(id, text, ok) {
  const e = $(id);
  e.textContent = text;
  e.className = ok ? 'note ok' : 'note err';
}

function publishPayload() {
  const text = $('pub-payload').value;
  switch ($('pub-format').value) {
    case 'hex':
      return parseHex(text);
    case 'json':
      JSON.parse(text); // throws on invalid JSON, so nothing malformed goes out
      return utf8(text);
    default:
      return utf8(text);
  }
}

function userProperties() {
  const props = {};
  for (const line of $('pub-props').value.split('\n')) {
    if (line.trim() === '') {
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) {
      throw new Error(`user property "${line}": write key=value`);
    }
    const k = line.slice(0, eq).trim();
    const v = line.slice(eq + 1);
    if (props[k] === undefined) {
      props[k] = v;
    } else {
      props[k] = [].concat(props[k], v);
    }
  }
  return props;
}

function send(topic, payload, opts) {
  return new Promise((resolve, reject) => {
    if (!state.client) {
      reject(new Error('not connected'));
      return;
    }
    state.client.publish(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.length),
      opts, (err) => (err ? reject(err) : resolve()));
  });
}

async function publish(ev) {
  ev.preventDefault();
  try {
    const topic = $('pub-topic').value;
    if (!topic || /[+#]/.test(topic)) {
      throw new Error('topic must be non-empty and without wildcards');
    }
    const payload = publishPayload();
    const opts = { qos: Number($('pub-qos').value), retain: $('pub-retain').checked };
    const up = userProperties();
    if (Object.keys(up).length) {
      if (state.client.options.protocolVersion !== 5) {
        throw new Error('user properties need MQTT 5');
      }
      opts.properties = { userProperties: up };
    }
    if ($('pub-format').value === 'json' && state.client.options.protocolVersion === 5) {
      opts.properties = { ...opts.properties, contentType: 'application/json', payloadFormatIndicator: true };
    }
    await send(topic, payload, opts);
    note('pub-note', `published ${payload.length} bytes to ${topic} (QoS ${opts.qos}${opts.retain ? ', retained' : ''})`, true);
  } catch (e) {
    note('pub-note', e.message, false);
  }
}

async function clearRetained(subtree) {
  const node = state.tree.get(state.selected);
  if (!node) {
    return;
  }
  const targets = subtree ? node.retainedBelow() : [node];
  try {
    await Promise.all(targets.map((n) => send(n.path, new Uint8Array(0), { qos: 1, retain: true })));
    for (const n of targets) {
      n.retained = false;
    }
    state.detailTopic = null;
    note('clear-note', `cleared ${targets.length} retained message${targets.length === 1 ? '' : 's'}`, true);
    queueFrame();
  } catch (e) {
    note('clear-note', e.message, false);
  }
}

// ---- broker panel ------------------------------------------------------------------------

const SYS = '$SYS/broker/';

function sysValue(name) {
  const n = state.tree.get(SYS + name);
  return n && n.last ? decodeText(n.last.payload).text : null;
}

/** Per-second rate series from a counter's series. */
function rateSeries(name) {
  const n = state.tree.get(SYS + name);
  const out = [];
  if (!n) {
    return out;
  }
  const s = n.series;
  for (let i = 1; i < s.length; i++) {
    const dt = (s[i].t - s[i - 1].t) / 1000;
    if (dt > 0 && s[i].v >= s[i - 1].v) {
      out.push({ t: s[i].t, v: (s[i].v - s[i - 1].v) / dt });
    }
  }
  return out;
}

function seriesOf(name) {
  const n = state.tree.get(SYS + name);
  return n ? n.series : [];
}

// /metrics of the broker that served this page (same origin; absent when the page comes from
// elsewhere): memory, queues, drops and loop lag, which $SYS does not carry.
const metrics = { values: null, memory: [], lag: [], fetching: false, last: 0 };
const METRICS_MAX = 600;

async function pollMetrics() {
  const now = Date.now();
  if (metrics.fetching || now - metrics.last < 2000) {
    return;
  }
  metrics.fetching = true;
  metrics.last = now;
  try {
    const r = await fetch('/metrics', { cache: 'no-store' });
    if (r.ok) {
      const v = parseMetrics(await r.text());
      if ('tern_uptime_seconds' in v) {
        metrics.values = v;
        const lag = Math.max(0, ...Object.entries(v)
          .filter(([k]) => k.startsWith('tern_worker_loop_lag_max_seconds'))
          .map(([, x]) => x));
        for (const [series, value] of [[metrics.memory, v.tern_resident_memory_bytes], [metrics.lag, lag * 1000]]) {
          series.push({ t: now, v: value });
          if (series.length > METRICS_MAX) {
            series.shift();
          }
        }
      }
    }
  } catch {
    // not served by ternd (or no /metrics): the panel shows $SYS only
  } finally {
    metrics.fetching = false;
  }
}

function renderBroker() {
  if ($('broker').hidden) {
    return;
  }
  pollMetrics();
  const mv = metrics.values;
  const mget = (k) => (mv && k in mv ? mv[k] : null);
  const rows = [
    ['version', sysValue('version')],
    ['uptime', sysValue('uptime')],
    ['clients connected', sysValue('clients/connected')],
    ['clients maximum', sysValue('clients/maximum')],
    ['subscriptions', sysValue('subscriptions/count')],
    ['retained messages', sysValue('retained messages/count')],
    ['publish received', sysValue('publish/messages/received')],
    ['publish sent', sysValue('publish/messages/sent')],
    ['publish dropped', sysValue('publish/messages/dropped')],
    ['memory (resident)', mget('tern_resident_memory_bytes')],
    ['messages held', mget('tern_message_bytes')],
    ['queued messages', mget('tern_queued_messages')],
    ['in flight (QoS 1/2)', mget('tern_inflight_messages')],
    ['dropped: queue full', mget('tern_publish_dropped_by_reason_total{reason="queue_full"}')],
    ['dropped: memory limit', mget('tern_publish_dropped_by_reason_total{reason="memory_limit"}')],
    ['loop lag (max)', metrics.lag.length ? metrics.lag[metrics.lag.length - 1].v : null],
  ];
  const unit = {
    'memory (resident)': (v) => bytesText(v),
    'messages held': (v) => bytesText(v),
    'loop lag (max)': (v) => `${Math.round(v)} ms`,
  };
  const t = $('sys-table');
  t.textContent = '';
  for (const [k, v] of rows) {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.textContent = k;
    const td = document.createElement('td');
    td.textContent = v === null ? '–' : unit[k] ? unit[k](Number(v)) : String(v);
    tr.append(th, td);
    t.appendChild(tr);
  }
  $('sys-empty').hidden = sysValue('version') !== null;
  drawChart($('chart-clients'), seriesOf('clients/connected'), { label: 'clients', empty: 'waiting for $SYS' });
  drawChart($('chart-msgs'), rateSeries('publish/messages/received'), { label: 'publish in/s', empty: 'waiting for two $SYS updates' });
  drawChart($('chart-bytes'), rateSeries('bytes/received'), { label: 'bytes in/s', format: (v) => bytesText(Math.round(v)), empty: 'waiting for two $SYS updates' });
  drawChart($('chart-mem'), metrics.memory, { label: 'resident memory', format: (v) => bytesText(Math.round(v)), empty: 'memory comes from /metrics of the broker that served this page' });
  drawChart($('chart-lag'), metrics.lag, { label: 'loop lag max (ms)', empty: 'loop lag comes from /metrics' });
}

// ---- wiring ------------------------------------------------------------------------------

function showPanel(name) {
  for (const b of document.querySelectorAll('#side-tabs button')) {
    b.classList.toggle('active', b.dataset.panel === name);
  }
  $('pub-form').hidden = name !== 'publish';
  $('broker').hidden = name !== 'broker';
  renderBroker();
}

function init() {
  $('url').value = defaultUrl();
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('tree-scroll').addEventListener('scroll', queueFrame, { passive: true });
  $('tree-scroll').addEventListener('click', onTreeClick);
  $('filter').addEventListener('input', () => {
    state.filter = $('filter').value.trim().toLowerCase();
    state.rowsDirty = true;
    queueFrame();
  });
  $('expand-all').addEventListener('click', () => {
    for (const [path, node] of state.tree.nodes) {
      if (node.children.size > 0 && node.children.size <= 200) {
        state.expanded.add(path);
      }
    }
    state.rowsDirty = true;
    queueFrame();
  });
  $('collapse-all').addEventListener('click', () => {
    state.expanded.clear();
    state.rowsDirty = true;
    queueFrame();
  });
  for (const b of document.querySelectorAll('#tabs button')) {
    b.addEventListener('click', () => {
      state.view = b.dataset.view;
      state.detailTopic = null;
      queueFrame();
    });
  }
  for (const b of document.querySelectorAll('#side-tabs button')) {
    b.addEventListener('click', () => showPanel(b.dataset.panel));
  }
  $('diff-show').addEventListener('click', showDiff);
  $('export-jsonl').addEventListener('click', () => exportHistory('jsonl'));
  $('export-csv').addEventListener('click', () => exportHistory('csv'));
  $('pub-form').addEventListener('submit', publish);
  $('clear-retained').addEventListener('click', () => clearRetained(false));
  $('clear-subtree').addEventListener('click', () => clearRetained(true));
  window.addEventListener('resize', queueFrame);
  // For tests and for the console: the model, read-only by convention.
  window.ternExplorer = { state };
}

init();
