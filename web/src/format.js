// SPDX-License-Identifier: MIT
// Payload views and conversions for the explorer. Payloads are Uint8Array everywhere: they are
// never turned into a string before a view decides how to show them, so binary bytes (and
// invalid UTF-8) reach the hex dump and base64 exactly as they arrived. Pure functions, no DOM.

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const looseUtf8 = new TextDecoder('utf-8');
const encoder = new TextEncoder();

/** The payload as text: { text, valid } where valid says it was well-formed UTF-8. */
export function decodeText(bytes) {
  try {
    return { text: strictUtf8.decode(bytes), valid: true };
  } catch {
    return { text: looseUtf8.decode(bytes), valid: false };
  }
}

/** Pretty JSON of a payload, or null when it is not UTF-8 JSON. */
export function prettyJson(bytes) {
  const { text, valid } = decodeText(bytes);
  if (!valid || text.trim() === '') {
    return null;
  }
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return null;
  }
}

const HEX = '0123456789abcdef';

function hexByte(b) {
  return HEX[b >> 4] + HEX[b & 15];
}

/**
 * Classic hex dump: 16 bytes a line, "OFFSET  HH HH ... HH  |ASCII|", offsets as 8 hex digits,
 * a space between the two halves of a line, non-printable bytes as '.' in the ASCII column.
 * At most maxBytes bytes are shown; a last line says how many were left out.
 */
export function hexDump(bytes, maxBytes = 65536) {
  const n = Math.min(bytes.length, maxBytes);
  const lines = [];
  for (let off = 0; off < n; off += 16) {
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      if (i === 8) {
        hex += ' ';
      }
      if (off + i < n) {
        const b = bytes[off + i];
        hex += hexByte(b) + ' ';
        ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
      } else {
        hex += '   ';
      }
    }
    lines.push(off.toString(16).padStart(8, '0') + '  ' + hex + ' |' + ascii + '|');
  }
  if (bytes.length > n) {
    lines.push(`... ${bytes.length - n} more bytes not shown`);
  }
  return lines.join('\n');
}

/** Lower-case hex of all bytes, no separators. */
export function toHex(bytes) {
  let s = '';
  for (const b of bytes) {
    s += hexByte(b);
  }
  return s;
}

/**
 * Bytes from hex text: whitespace, ':' and '-' separate bytes and are ignored, as is a leading
 * 0x on each group. Throws Error on an odd digit count or a non-hex character.
 */
export function parseHex(text) {
  const clean = text.replace(/0x/gi, '').replace(/[\s:,-]/g, '');
  if (!/^[0-9a-fA-F]*$/.test(clean)) {
    throw new Error('hex payload: only 0-9, a-f and separators allowed');
  }
  if (clean.length % 2 !== 0) {
    throw new Error('hex payload: odd number of hex digits');
  }
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(clean.substr(i * 2, 2), 16);
  }
  return out;
}

/** Standard base64 (RFC 4648, with padding) of the bytes. */
export function toBase64(bytes) {
  let bin = '';
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK));
  }
  return btoa(bin);
}

export function utf8(text) {
  return encoder.encode(text);
}

/** A number when the payload is a plain number (text or JSON number), else null. */
export function numericValue(bytes) {
  if (bytes.length === 0 || bytes.length > 64) {
    return null;
  }
  const { text, valid } = decodeText(bytes);
  if (!valid) {
    return null;
  }
  const t = text.trim();
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) {
    return null;
  }
  const v = Number(t);
  return Number.isFinite(v) ? v : null;
}

/** Short one-line preview of a payload for the tree. */
export function preview(bytes, max = 48) {
  if (bytes.length === 0) {
    return '(empty)';
  }
  const { text, valid } = decodeText(bytes.subarray(0, Math.min(bytes.length, max * 4)));
  if (!valid && bytes.length <= max * 4) {
    return '0x' + toHex(bytes.subarray(0, Math.ceil(max / 2)));
  }
  const one = text.replace(/\s+/g, ' ');
  return one.length > max ? one.slice(0, max - 1) + '…' : one;
}

/**
 * Line diff of two texts (longest common subsequence). Returns [{op, line}] with op ' ' (same),
 * '-' (only in a) or '+' (only in b). Inputs past maxLines lines a side are compared as one
 * changed block, which bounds the work to maxLines^2.
 */
export function diffLines(a, b, maxLines = 2000) {
  const al = a.split('\n');
  const bl = b.split('\n');
  if (al.length > maxLines || bl.length > maxLines) {
    return [...al.map((line) => ({ op: '-', line })), ...bl.map((line) => ({ op: '+', line }))];
  }
  const n = al.length;
  const m = bl.length;
  // lcs[i][j]: LCS length of al[i..] and bl[j..], in one flat array
  const lcs = new Uint32Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * (m + 1) + j] =
        al[i] === bl[j]
          ? lcs[(i + 1) * (m + 1) + j + 1] + 1
          : Math.max(lcs[(i + 1) * (m + 1) + j], lcs[i * (m + 1) + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (al[i] === bl[j]) {
      out.push({ op: ' ', line: al[i] });
      i++;
      j++;
    } else if (lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1]) {
      out.push({ op: '-', line: al[i++] });
    } else {
      out.push({ op: '+', line: bl[j++] });
    }
  }
  while (i < n) {
    out.push({ op: '-', line: al[i++] });
  }
  while (j < m) {
    out.push({ op: '+', line: bl[j++] });
  }
  return out;
}

/** The text a diff compares: pretty JSON, else UTF-8 text, else the hex dump. */
export function diffText(bytes) {
  const json = prettyJson(bytes);
  if (json !== null) {
    return json;
  }
  const { text, valid } = decodeText(bytes);
  return valid ? text : hexDump(bytes);
}

/** One history record as a plain object for export: text payload when UTF-8, else base64. */
function exportRecord(m) {
  const { text, valid } = decodeText(m.payload);
  const rec = {
    time: new Date(m.time).toISOString(),
    topic: m.topic,
    qos: m.qos,
    retain: m.retain,
  };
  if (valid) {
    rec.payload = text;
  } else {
    rec.payload_base64 = toBase64(m.payload);
  }
  if (m.properties && Object.keys(m.properties).length > 0) {
    rec.properties = m.properties;
  }
  return rec;
}

/** JSON Lines: one JSON object per message, oldest first, each line ending in \n. */
export function toJsonLines(messages) {
  return messages.map((m) => JSON.stringify(exportRecord(m)) + '\n').join('');
}

function csvField(v) {
  const s = String(v);
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

/**
 * CSV (RFC 4180, CRLF line ends) with a header line: time, topic, qos, retain, encoding
 * ("utf-8" or "base64") and payload.
 */
export function toCsv(messages) {
  const rows = [['time', 'topic', 'qos', 'retain', 'encoding', 'payload']];
  for (const m of messages) {
    const r = exportRecord(m);
    const b64 = r.payload === undefined;
    rows.push([r.time, r.topic, r.qos, r.retain ? 1 : 0, b64 ? 'base64' : 'utf-8',
      b64 ? r.payload_base64 : r.payload]);
  }
  return rows.map((r) => r.map(csvField).join(',') + '\r\n').join('');
}

/** Human-readable byte count. */
export function bytesText(n) {
  if (n < 1024) {
    return `${n} B`;
  }
  if (n < 1024 * 1024) {
    return `${(n / 1024).toFixed(1)} KiB`;
  }
  if (n < 1024 * 1024 * 1024) {
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

/** "3 s ago" style age of a timestamp. */
export function ageText(ms) {
  if (ms < 1000) {
    return 'now';
  }
  const s = Math.floor(ms / 1000);
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min`;
  }
  return `${Math.floor(s / 3600)} h`;
}

/** Prometheus text exposition to { 'name' or 'name{labels}': number }; comments skipped. */
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) {
      out[m[1]] = Number(m[2]);
    }
  }
  return out;
}
