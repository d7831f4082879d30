// SPDX-License-Identifier: MIT
// End-to-end test of the explorer in a real headless Chromium (the system's, driven by
// playwright-core; no browser is downloaded), against a real ternd and real Mosquitto command
// line clients. Run by tests/integration/16-explorer.py, which starts ternd and passes:
//   EXPLORER_URL   the page, e.g. http://127.0.0.1:PORT/ (a websockets listener)
//   MQTT_PORT      ternd's MQTT/TCP port, for mosquitto_pub/mosquitto_sub
//   MQTT_USER, MQTT_PASS   a login that the broker accepts
//   CHROMIUM       the browser binary (default /usr/bin/chromium)
//   SHOTS          directory for screenshots (created)
// Prints one line per check and "explorer: N passed, N failed"; exits non-zero on failure.
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { chromium } from 'playwright-core';

const URL_ = process.env.EXPLORER_URL;
const PORT = process.env.MQTT_PORT;
const USER = process.env.MQTT_USER;
const PASS = process.env.MQTT_PASS;
const SHOTS = process.env.SHOTS || 'explorer-screenshots';
const STEP_MS = 10000; // each wait in the page is bounded

let passed = 0;
let failed = 0;
const tmp = path.join(os.tmpdir(), `explorer-test-${process.pid}`);
mkdirSync(tmp, { recursive: true });
mkdirSync(SHOTS, { recursive: true });

function check(cond, what, detail = '') {
  if (cond) {
    passed++;
    console.log(`PASS ${what}`);
  } else {
    failed++;
    console.log(`FAIL ${what}${detail ? `: ${detail}` : ''}`);
  }
  return cond;
}

const auth = ['-h', '127.0.0.1', '-p', PORT, '-u', USER, '-P', PASS];

function run(cmd, args, timeoutMs = 8000) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'buffer' }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr: stderr.toString() });
    });
  });
}

/** Start mosquitto_sub and resolve its stdout when it exits (it exits by itself: -C / -W). */
function subscriber(args) {
  const p = spawn('mosquitto_sub', [...auth, ...args]);
  const out = [];
  p.stdout.on('data', (d) => out.push(d));
  const done = new Promise((resolve) => p.on('close', () => resolve(Buffer.concat(out))));
  return { done, kill: () => p.kill() };
}

async function pub(topic, args) {
  const r = await run('mosquitto_pub', [...auth, '-t', topic, ...args]);
  if (r.code !== 0) {
    throw new Error(`mosquitto_pub ${topic}: ${r.stderr}`);
  }
}

async function retainedNow(filter) {
  // --retained-only exits at the first message without the retain flag; -W bounds the wait.
  const r = await run('mosquitto_sub', [...auth, '-t', filter, '--retained-only', '-v', '-W', '1']);
  return r.stdout.toString().split('\n').filter(Boolean).sort();
}

/** The broker's tern_publish_dropped_total from /metrics (same listener as the page). */
async function droppedTotal() {
  const text = await (await fetch(new URL('/metrics', URL_))).text();
  const m = /^tern_publish_dropped_total (\d+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

async function shot(page, name) {
  const file = path.resolve(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  console.log(`screenshot ${file}`);
}

/** Filter the tree to a topic and click its row. */
async function selectTopic(page, topic) {
  await page.fill('#filter', topic);
  const row = page.locator(`#tree-rows .row[data-topic="${topic}"]`);
  await row.waitFor({ state: 'visible', timeout: STEP_MS });
  await row.locator('.name').click();
  await page.waitForFunction((t) => document.getElementById('topic-name').textContent === t,
    topic, { timeout: STEP_MS });
}

async function viewText(page, tab) {
  await page.click(`#tabs button[data-view="${tab}"]`);
  await page.waitForFunction((v) =>
    document.querySelector(`#tabs button[data-view="${v}"]`).classList.contains('active'), tab,
  { timeout: STEP_MS });
  return page.textContent('#view');
}

/** Bytes read back from a hex dump: the 16 hex columns of each line, nothing else. */
function bytesFromDump(dump) {
  const out = [];
  for (const line of dump.split('\n')) {
    const m = /^([0-9a-f]{8})  (.{49}) \|(.*)\|$/.exec(line);
    if (!m) {
      return null;
    }
    if (parseInt(m[1], 16) !== out.length) {
      return null;
    }
    for (const h of m[2].trim().split(/\s+/)) {
      out.push(parseInt(h, 16));
    }
  }
  return out;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'], // the test may run as root, where Chromium's sandbox cannot start
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 860 }, acceptDownloads: true });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Console errors include Content-Security-Policy violations and failed loads.
  const consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') {
      consoleErrors.push(m.text());
    }
  });

  // ---- the page comes from ternd; the login form defaults to this origin's /mqtt
  const resp = await page.goto(URL_);
  check(resp.status() === 200, 'GET / answered 200', String(resp.status()));
  const origin = new URL(URL_);
  check(await page.inputValue('#url') === `ws://${origin.host}/mqtt`, 'broker URL defaults to ws://<page origin>/mqtt',
    await page.inputValue('#url'));

  // ---- a wrong password is refused, and the page says so
  await page.fill('#username', USER);
  await page.fill('#password', `${PASS}-wrong`);
  await page.click('#connect');
  await page.locator('#login-error').waitFor({ state: 'visible', timeout: STEP_MS });
  const err = await page.textContent('#login-error');
  check(/login failed/i.test(err) && /bad user name or password|not authorized/i.test(err),
    'wrong password: the login form shows the broker\'s refusal', err);
  check(await page.isHidden('#app'), 'wrong password: the explorer stays closed');
  await shot(page, '01-login-refused');

  // ---- a retained message that exists before the login
  await pub('explorer/ret/a', ['-r', '-m', 'keep-a']);
  await pub('explorer/ret/b', ['-r', '-m', 'keep-b']);
  await pub('explorer/ret/deep/c', ['-r', '-m', 'keep-c']);

  await page.fill('#password', PASS);
  await page.click('#connect');
  await page.locator('#app').waitFor({ state: 'visible', timeout: STEP_MS });
  check(true, 'right password: logged in');

  // ---- a binary payload from mosquitto_pub -f: exact bytes in the hex view
  const bin = Buffer.from([0x00, 0x01, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0x41, 0x0a,
    0x7f, 0x20, 0x7e, 0xf0, 0x9f, 0x98]);
  const binFile = path.join(tmp, 'bin');
  writeFileSync(binFile, bin);
  await pub('explorer/bin', ['-f', binFile, '-q', '1']);
  await selectTopic(page, 'explorer/bin');
  const dump = await viewText(page, 'hex');
  const got = bytesFromDump(dump);
  check(got !== null && Buffer.from(got).equals(bin), 'hex view shows exactly the bytes sent',
    `dump:\n${dump}`);
  check(dump.startsWith('00000000  00 01 ff fe 80 c3 28 ed  a0 80 41 0a 7f 20 7e f0  |......(...A.. ~.|'),
    'hex dump line: offset, two groups of 8, ASCII column', dump.split('\n')[0]);
  const b64 = await viewText(page, 'base64');
  check(b64 === bin.toString('base64'), 'base64 view', b64);
  const txt = await viewText(page, 'text');
  check(txt.includes('not valid UTF-8'), 'text view says the payload is not valid UTF-8');
  await viewText(page, 'hex');
  await shot(page, '02-binary-hex');

  // ---- JSON: pretty view, history diff, export as JSON Lines and CSV
  const j1 = { device: 'pump-7', temp: 21.5, ok: true, tags: ['a', 'b'] };
  const j2 = { device: 'pump-7', temp: 22.25, ok: true, tags: ['a', 'b', 'c,"d"'] };
  await pub('explorer/json', ['-m', JSON.stringify(j1)]);
  await pub('explorer/json', ['-m', JSON.stringify(j2)]);
  await selectTopic(page, 'explorer/json');
  await page.waitForFunction(() => /^2 messages/.test(document.getElementById('meta').textContent),
    null, { timeout: STEP_MS });
  const pretty = await viewText(page, 'json');
  check(pretty === JSON.stringify(j2, null, 2), 'JSON view is the pretty-printed payload', pretty);
  await page.click('#diff-show');
  const diff = (await page.textContent('#diff')).split('\n').length > 0
    ? await page.$$eval('#diff div', (ds) => ds.map((d) => d.textContent)) : [];
  check(diff.includes('-   "temp": 21.5,') && diff.includes('+   "temp": 22.25,') &&
    diff.includes('    "device": "pump-7",'), 'diff of the two messages shows the changed line', diff.join('\n'));
  await shot(page, '03-json-diff');

  const [dl1] = await Promise.all([page.waitForEvent('download', { timeout: STEP_MS }), page.click('#export-jsonl')]);
  const jsonl = readFileSync(await dl1.path(), 'utf8');
  const recs = jsonl.trimEnd().split('\n').map((l) => JSON.parse(l));
  check(dl1.suggestedFilename() === 'explorer_json.jsonl' && jsonl.endsWith('\n') && recs.length === 2 &&
    recs[0].topic === 'explorer/json' && recs[0].payload === JSON.stringify(j1) &&
    recs[1].payload === JSON.stringify(j2) && recs[1].qos === 0 && !Number.isNaN(Date.parse(recs[1].time)),
  'export JSON Lines: one object per message, oldest first, exact payloads', jsonl);
  const [dl2] = await Promise.all([page.waitForEvent('download', { timeout: STEP_MS }), page.click('#export-csv')]);
  const csv = readFileSync(await dl2.path(), 'utf8');
  const lines = csv.split('\r\n');
  const quoted = `"${JSON.stringify(j2).replace(/"/g, '""')}"`;
  check(lines.length === 4 && lines[0] === 'time,topic,qos,retain,encoding,payload' &&
    lines[2].endsWith(`,explorer/json,0,0,utf-8,${quoted}`) && lines[3] === '',
  'export CSV: header, one quoted row per message', csv);
  // The binary topic exports as base64.
  await selectTopic(page, 'explorer/bin');
  const [dl3] = await Promise.all([page.waitForEvent('download', { timeout: STEP_MS }), page.click('#export-jsonl')]);
  const binRec = JSON.parse(readFileSync(await dl3.path(), 'utf8'));
  check(binRec.payload_base64 === bin.toString('base64') && binRec.payload === undefined && binRec.qos === 1,
    'export of a binary payload carries it as base64', JSON.stringify(binRec));

  // ---- publish from the page (QoS 1, user property) to mosquitto_sub
  const payload = 'héllo from the explorer {"x": 1}';
  const subV = subscriber(['-t', 'explorer/from-page', '-v', '-C', '1', '-W', '10']);
  const sub5 = subscriber(['-t', 'explorer/from-page', '-V', 'mqttv5', '-q', '1', '-F', '%q|%P|%l|%p', '-C', '1', '-W', '10']);
  await new Promise((r) => setTimeout(r, 500)); // both subscriptions in place
  await page.fill('#pub-topic', 'explorer/from-page');
  await page.selectOption('#pub-qos', '1');
  await page.selectOption('#pub-format', 'text');
  await page.fill('#pub-payload', payload);
  await page.fill('#pub-props', 'origin=explorer');
  await page.click('#pub-send');
  await page.waitForFunction(() => document.getElementById('pub-note').classList.contains('ok'),
    null, { timeout: STEP_MS });
  const outV = await subV.done;
  check(outV.equals(Buffer.from(`explorer/from-page ${payload}\n`)), 'mosquitto_sub -v got the exact payload',
    JSON.stringify(outV.toString()));
  const out5 = (await sub5.done).toString();
  check(out5 === `1|origin:explorer|${Buffer.byteLength(payload)}|${payload}\n`,
    'mosquitto_sub (MQTT 5) got QoS 1 and the user property', JSON.stringify(out5));

  // The page's own message comes back through its '#' subscription with its MQTT 5 properties.
  await selectTopic(page, 'explorer/from-page');
  const props = JSON.parse(await viewText(page, 'props'));
  check(props.qos === 1 && props.userProperties && props.userProperties.origin === 'explorer',
    'properties view shows QoS and the user property', JSON.stringify(props));

  // Hex payload from the page, retained.
  await page.fill('#pub-topic', 'explorer/hex-from-page');
  await page.selectOption('#pub-format', 'hex');
  await page.fill('#pub-payload', '00 ff 10:20 7f');
  await page.fill('#pub-props', '');
  await page.check('#pub-retain');
  await page.click('#pub-send');
  await page.waitForFunction(() => /published 5 bytes/.test(document.getElementById('pub-note').textContent),
    null, { timeout: STEP_MS });
  const hexSub = await run('mosquitto_sub', [...auth, '-t', 'explorer/hex-from-page', '-C', '1', '-W', '3', '-F', '%x']);
  check(hexSub.stdout.toString() === '00ff10207f\n', 'hex payload published from the page, retained',
    hexSub.stdout.toString());
  // An invalid JSON payload is refused before anything is sent.
  await page.selectOption('#pub-format', 'json');
  await page.fill('#pub-payload', '{"x": ');
  await page.click('#pub-send');
  await page.waitForFunction(() => document.getElementById('pub-note').classList.contains('err'),
    null, { timeout: STEP_MS });
  check(true, 'invalid JSON payload refused in the page');
  await page.uncheck('#pub-retain');
  await page.selectOption('#pub-format', 'text');
  await page.fill('#pub-payload', payload);
  await shot(page, '04-publish');

  // ---- clear retained: one topic, then a subtree
  check(JSON.stringify(await retainedNow('explorer/ret/#')) ===
    JSON.stringify(['explorer/ret/a keep-a', 'explorer/ret/b keep-b', 'explorer/ret/deep/c keep-c']),
  'three retained messages before clearing');
  await selectTopic(page, 'explorer/ret/a');
  check(await page.isVisible('#tree-rows .row[data-topic="explorer/ret/a"] .ret'), 'retained marker in the tree');
  await page.click('#clear-retained');
  await page.waitForFunction(() => /cleared 1 retained message$/.test(document.getElementById('clear-note').textContent),
    null, { timeout: STEP_MS });
  check(JSON.stringify(await retainedNow('explorer/ret/#')) ===
    JSON.stringify(['explorer/ret/b keep-b', 'explorer/ret/deep/c keep-c']),
  'clear retained from the page: that topic\'s retained message is gone, the others stay');
  await selectTopic(page, 'explorer/ret');
  await page.waitForFunction(() => /\(2\)/.test(document.getElementById('clear-subtree').textContent),
    null, { timeout: STEP_MS });
  await page.click('#clear-subtree');
  await page.waitForFunction(() => /cleared 2 retained messages/.test(document.getElementById('clear-note').textContent),
    null, { timeout: STEP_MS });
  check((await retainedNow('explorer/ret/#')).length === 0, 'clear retained in a subtree: none left');
  await page.fill('#filter', '');
  await page.click('#expand-all');
  await shot(page, '05-tree');

  // ---- numeric topic chart and the broker panel from $SYS
  for (let i = 0; i < 5; i++) {
    await pub('explorer/temp', ['-m', String(20 + i * 0.5)]);
  }
  await selectTopic(page, 'explorer/temp');
  await page.waitForFunction(() => !document.getElementById('chart').hidden, null, { timeout: STEP_MS });
  check(true, 'numeric topic: chart shown');
  await page.click('#side-tabs button[data-panel="broker"]');
  await page.waitForFunction(() => document.getElementById('sys-empty').hidden, null, { timeout: STEP_MS });
  const sysText = await page.textContent('#sys-table');
  check(/clients connected\d+/.test(sysText), 'broker panel shows $SYS values', sysText);
  await page.waitForFunction(() => /memory \(resident\)[\d.]+ MiB/.test(document.getElementById('sys-table').textContent),
    null, { timeout: STEP_MS });
  const panel = await page.textContent('#sys-table');
  check(/queued messages\d+/.test(panel) && /loop lag \(max\)\d+ ms/.test(panel),
    'broker panel shows memory, queues and loop lag from /metrics', panel);
  await page.waitForTimeout(2200); // a few $SYS updates (sys_interval 1) for the charts
  await page.fill('#filter', '');
  await shot(page, '06-broker');

  // ---- load: LOAD_N messages on 1,000 topics at about LOAD_RATE msg/s from MQTT.js (TCP);
  // the page must account every one the broker delivered (a page that falls more than
  // max_queued_messages behind loses QoS 0 messages at the broker, which counts them in
  // /metrics) and keep drawing frames meanwhile.
  const LOAD_N = 30000;
  const LOAD_RATE = 10000;
  await page.fill('#filter', '');
  await page.click('#collapse-all');
  await page.evaluate(() => {
    const s = (window.ternLoad = { frames: 0, maxGap: 0, last: performance.now(), run: true });
    const tick = (t) => {
      s.frames++;
      s.maxGap = Math.max(s.maxGap, t - s.last);
      s.last = t;
      if (s.run) {
        requestAnimationFrame(tick);
      }
    };
    requestAnimationFrame(tick);
  });
  const loader = mqtt.connect(`mqtt://127.0.0.1:${PORT}`, { username: USER, password: PASS, clientId: 'explorer-load' });
  await new Promise((resolve, reject) => { loader.once('connect', resolve); loader.once('error', reject); });
  const dropped0 = await droppedTotal();
  const t0 = Date.now();
  for (let i = 0; i < LOAD_N; i += 100) {
    for (let k = i; k < i + 100; k++) {
      loader.publish(`load/${k % 10}/dev/${k % 1000}`, `{"seq":${k},"v":${(k * 7) % 113}}`);
    }
    const ahead = (i + 100) * (1000 / LOAD_RATE) - (Date.now() - t0);
    if (ahead > 0) {
      await new Promise((r) => setTimeout(r, ahead));
    }
  }
  const sendMs = Date.now() - t0;
  let dropped = 0;
  const shown = () => page.evaluate(() => {
    const l = window.ternExplorer.state.tree.get('load');
    return l ? l.total : 0;
  });
  for (let waited = 0; waited < 20000; waited += 100) {
    dropped = (await droppedTotal()) - dropped0;
    if ((await shown()) + dropped >= LOAD_N) {
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const doneMs = Date.now() - t0;
  const stats = await page.evaluate(() => {
    window.ternLoad.run = false;
    const l = window.ternExplorer.state.tree.get('load');
    return { frames: window.ternLoad.frames, maxGap: Math.round(window.ternLoad.maxGap), total: l ? l.total : 0, topics: l ? l.topics : 0 };
  });
  loader.end();
  console.log(`load: ${LOAD_N} messages sent in ${sendMs} ms (${Math.round((LOAD_N * 1000) / sendMs)} msg/s), ` +
    `${dropped} dropped by the broker, the rest shown after ${doneMs} ms; page drew ${stats.frames} frames (${Math.round((stats.frames * 1000) / doneMs)}/s), longest gap ${stats.maxGap} ms`);
  check(stats.total + dropped === LOAD_N && stats.topics === 1000,
    'load: every message the broker delivered is counted in the tree', JSON.stringify({ ...stats, dropped }));
  check(dropped < LOAD_N / 10, 'load: the page kept up (under 10% dropped by the broker)', String(dropped));
  check(stats.frames >= doneMs / 1000, 'load: the page kept drawing frames (at least one a second)', JSON.stringify(stats));
  await page.click('#expand-all');
  await page.waitForFunction(() => window.ternExplorer.state.rows.length > 1000, null, { timeout: STEP_MS });
  const dom = await page.evaluate(() => ({
    rows: window.ternExplorer.state.rows.length,
    elements: document.querySelectorAll('#tree-rows .row').length,
  }));
  check(dom.elements < 100, 'tree is virtualized: a few dozen row elements for over a thousand rows',
    JSON.stringify(dom));
  await shot(page, '07-load');

  // ---- MQTT 3.1.1: disconnect, log in again with the older protocol, see a message arrive
  await page.click('#logout');
  await page.locator('#login').waitFor({ state: 'visible', timeout: STEP_MS });
  await page.selectOption('#version', '4');
  await page.click('#connect');
  await page.locator('#app').waitFor({ state: 'visible', timeout: STEP_MS });
  check(await page.textContent('#status') === 'connected', 'status after logging in again');
  await new Promise((r) => setTimeout(r, 300)); // the subscription in place
  await pub('explorer/v311', ['-m', 'hello 3.1.1']);
  await selectTopic(page, 'explorer/v311');
  check(await viewText(page, 'text') === 'hello 3.1.1' &&
    /MQTT 3\.1\.1/.test(await page.textContent('#whoami')), 'MQTT 3.1.1 login works');

  check(pageErrors.length === 0, 'no uncaught errors in the page', pageErrors.join('\n'));
  check(consoleErrors.length === 0, 'no errors in the console (CSP, loads)', consoleErrors.join('\n'));
  await browser.close();
}

const timer = setTimeout(() => {
  console.log('FAIL explorer test timed out');
  process.exit(1);
}, 50000);
try {
  await main();
} catch (e) {
  check(false, 'explorer test ran to the end', e.stack || String(e));
}
clearTimeout(timer);
console.log(`explorer: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
