// SPDX-License-Identifier: MIT
// Unit tests of the explorer's pure modules (format.js, tree.js) under Node's test runner:
//   node test/unit.test.mjs      (also run by tests/integration/16-explorer.py)
import assert from 'node:assert/strict';
import test from 'node:test';

import {
  decodeText, diffLines, diffText, hexDump, numericValue, parseHex, parseMetrics, prettyJson, preview,
  toBase64, toCsv, toHex, toJsonLines, utf8,
} from '../src/format.js';
import { HISTORY_MAX, TopicTree, visibleRows } from '../src/tree.js';

const bytes = (...b) => Uint8Array.from(b);

test('decodeText tells valid from invalid UTF-8', () => {
  assert.deepEqual(decodeText(utf8('héllo')), { text: 'héllo', valid: true });
  const bad = decodeText(bytes(0x41, 0xc3, 0x28));
  assert.equal(bad.valid, false);
  assert.equal(bad.text, 'A\ufffd(');
});

test('hexDump: offsets, two groups of eight, ASCII column, every byte value', () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const lines = hexDump(all).split('\n');
  assert.equal(lines.length, 16);
  assert.equal(lines[0],
    '00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|');
  assert.equal(lines[2],
    '00000020  20 21 22 23 24 25 26 27  28 29 2a 2b 2c 2d 2e 2f  | !"#$%&\'()*+,-./|');
  assert.equal(lines[15].slice(0, 10), '000000f0  ');
  assert.ok(lines[15].endsWith('|................|'));
  assert.equal(hexDump(bytes(0xff)), '00000000  ff' + ' '.repeat(47) + ' |.|');
  assert.equal(hexDump(new Uint8Array(0)), '');
  const big = hexDump(new Uint8Array(100), 32).split('\n');
  assert.equal(big.length, 3);
  assert.equal(big[2], '... 68 more bytes not shown');
});

test('parseHex accepts separators and refuses junk', () => {
  assert.deepEqual(parseHex('00 ff 10:20-7F'), bytes(0, 255, 0x10, 0x20, 0x7f));
  assert.deepEqual(parseHex('0x01 0x02'), bytes(1, 2));
  assert.deepEqual(parseHex(''), bytes());
  assert.throws(() => parseHex('abc'), /odd/);
  assert.throws(() => parseHex('zz'), /only/);
  assert.equal(toHex(parseHex('DEADbeef')), 'deadbeef');
});

test('toBase64 of binary bytes', () => {
  assert.equal(toBase64(bytes(0, 1, 0xff, 0xfe, 0x80)), 'AAH//oA=');
  assert.equal(toBase64(new Uint8Array(0)), '');
  const big = new Uint8Array(100000).fill(0xab);
  assert.equal(Buffer.from(toBase64(big), 'base64').equals(Buffer.from(big)), true);
});

test('prettyJson and numericValue', () => {
  assert.equal(prettyJson(utf8('{"a":[1,2]}')), '{\n  "a": [\n    1,\n    2\n  ]\n}');
  assert.equal(prettyJson(utf8('{"a":')), null);
  assert.equal(prettyJson(bytes(0xff)), null);
  assert.equal(prettyJson(utf8('  ')), null);
  assert.equal(numericValue(utf8(' 21.5\n')), 21.5);
  assert.equal(numericValue(utf8('-1e3')), -1000);
  assert.equal(numericValue(utf8('12abc')), null);
  assert.equal(numericValue(utf8('')), null);
  assert.equal(numericValue(utf8('Infinity')), null);
});

test('preview: text, binary as hex, truncation', () => {
  assert.equal(preview(utf8('a\n b')), 'a b');
  assert.equal(preview(bytes(0, 0xff)), '0x00ff');
  assert.equal(preview(new Uint8Array(0)), '(empty)');
  assert.equal(preview(utf8('x'.repeat(100)), 10), 'xxxxxxxxx…');
});

test('diffLines: common lines kept, changes as - and +', () => {
  const d = diffLines('a\nb\nc', 'a\nB\nc\nd');
  assert.deepEqual(d.map((x) => x.op + x.line), [' a', '-b', '+B', ' c', '+d']);
  assert.deepEqual(diffLines('same', 'same'), [{ op: ' ', line: 'same' }]);
  const capped = diffLines('a\nb', 'a\nc', 1);
  assert.deepEqual(capped.map((x) => x.op), ['-', '-', '+', '+']);
  assert.equal(diffText(utf8('{"a":1}')), '{\n  "a": 1\n}');
  assert.ok(diffText(bytes(0xff)).startsWith('00000000  ff'));
});

const msg = (topic, payload, extra = {}) => ({
  topic, payload: typeof payload === 'string' ? utf8(payload) : payload, qos: 0, retain: false,
  time: 1000, properties: {}, ...extra,
});

test('export: JSON Lines and CSV, binary as base64, CSV quoting', () => {
  const ms = [msg('a/b', 'x,"y"'), msg('a/b', bytes(0xff, 0), { qos: 1, retain: true, time: 2000 })];
  const lines = toJsonLines(ms).split('\n');
  assert.equal(lines.length, 3);
  assert.deepEqual(JSON.parse(lines[0]),
    { time: '1970-01-01T00:00:01.000Z', topic: 'a/b', qos: 0, retain: false, payload: 'x,"y"' });
  assert.deepEqual(JSON.parse(lines[1]), {
    time: '1970-01-01T00:00:02.000Z', topic: 'a/b', qos: 1, retain: true, payload_base64: '/wA=',
  });
  assert.equal(toCsv(ms), 'time,topic,qos,retain,encoding,payload\r\n' +
    '1970-01-01T00:00:01.000Z,a/b,0,0,utf-8,"x,""y"""\r\n' +
    '1970-01-01T00:00:02.000Z,a/b,1,1,base64,/wA=\r\n');
});

test('tree: counts per topic and subtree, retained flag, bounded history', () => {
  const t = new TopicTree();
  t.add(msg('a/b/c', '1'));
  t.add(msg('a/b/c', '2'));
  t.add(msg('a/x', 'r', { retain: true }));
  assert.equal(t.get('a/b/c').count, 2);
  assert.equal(t.get('a').total, 3);
  assert.equal(t.get('a').topics, 2);
  assert.equal(t.root.topics, 2);
  assert.equal(t.get('a/b').count, 0);
  assert.equal(t.get('a/x').retained, true);
  assert.deepEqual(t.get('a').retainedBelow().map((n) => n.path), ['a/x']);
  t.add(msg('a/x', '', { retain: true })); // the broker's delete of a retained message
  assert.equal(t.get('a/x').retained, false);
  assert.deepEqual(t.get('a/b/c').series.map((p) => p.v), [1, 2]);
  for (let i = 0; i < HISTORY_MAX + 10; i++) {
    t.add(msg('h', String(i)));
  }
  const h = t.get('h').history;
  assert.equal(h.length, HISTORY_MAX);
  assert.equal(decodeText(h[0].payload).text, '10');
});

test('tree: visible rows follow expansion; a filter shows matches and their ancestors', () => {
  const t = new TopicTree();
  for (const topic of ['b/1', 'a/2', 'a/1/x', 'c']) {
    t.add(msg(topic, 'v'));
  }
  const names = (rows) => rows.map((r) => `${r.depth}:${r.node.path}`);
  assert.deepEqual(names(visibleRows(t, new Set(), '')), ['0:a', '0:b', '0:c']);
  assert.deepEqual(names(visibleRows(t, new Set(['a']), '')), ['0:a', '1:a/1', '1:a/2', '0:b', '0:c']);
  assert.deepEqual(names(visibleRows(t, new Set(), '1/x')), ['0:a', '1:a/1', '2:a/1/x']);
  assert.deepEqual(names(visibleRows(t, new Set(), 'nothing')), []);
});

test('tree: 100,000 messages on 10,000 topics stay cheap to account', () => {
  const t = new TopicTree();
  const payload = utf8('{"v":1}');
  for (let i = 0; i < 100000; i++) {
    t.add({ topic: `site/${i % 10}/dev/${i % 10000}`, payload, qos: 0, retain: false, time: i, properties: {} });
  }
  assert.equal(t.root.total, 100000);
  assert.equal(t.root.topics, 10000);
  assert.equal(t.get('site/3').total, 10000);
});

test('parseMetrics reads names, labels and values, skips comments', () => {
  const v = parseMetrics('# HELP a x\n# TYPE a gauge\na 1\nb{worker="0"} 0.250\nc 12e3\n\nbad line here\n');
  assert.deepEqual(v, { a: 1, 'b{worker="0"}': 0.25, c: 12000 });
});

test('tree: histories across topics stay within the message and byte totals', () => {
  const t = new TopicTree();
  t.limits = { messages: 10, bytes: 1000 };
  for (let i = 0; i < 30; i++) {
    t.add(msg(`t/${i % 3}`, String(i)));
  }
  const kept = ['t/0', 't/1', 't/2'].map((k) => t.get(k).history.map((m) => decodeText(m.payload).text));
  assert.deepEqual(kept.flat().map(Number).sort((a, b) => a - b), [20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
  assert.equal(t.get('t/0').last.payload.length, 2); // the last message stays
  t.add(msg('big', new Uint8Array(900)));
  t.add(msg('big', new Uint8Array(900)));
  assert.equal(t.get('big').history.length, 1);
  assert.ok(t.keptBytes <= 1000);
  assert.equal(t.get('big').last.payload.length, 900);
  assert.equal(t.get('t/1').history.length + t.get('t/0').history.length + t.get('t/2').history.length, 0);
});
