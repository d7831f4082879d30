// SPDX-License-Identifier: MIT
// The topic tree model: one node per topic level, built from the messages the explorer
// receives. Adding a message costs O(topic depth) and touches no DOM; the view reads the model
// once per animation frame. Each node keeps a bounded history (HISTORY_MAX messages, oldest
// dropped first) and a bounded numeric series (SERIES_MAX points); across all topics the
// histories hold at most TOTAL_HISTORY_MAX messages and TOTAL_HISTORY_BYTES payload bytes
// (the oldest messages anywhere go first), so the page's memory has a ceiling however long
// it runs and however many topics it sees. A topic's last message is always kept.

export const HISTORY_MAX = 200;
export const SERIES_MAX = 600;
export const TOTAL_HISTORY_MAX = 200000;
export const TOTAL_HISTORY_BYTES = 64 * 1024 * 1024;
const RATE_WINDOW_MS = 1000;

import { numericValue } from './format.js';

export class TopicNode {
  constructor(name, path, parent) {
    this.name = name;
    this.path = path; // full topic; '' for the root
    this.parent = parent;
    this.children = new Map();
    this.sorted = null; // children sorted by name, rebuilt when a child is added
    this.count = 0; // messages on this exact topic
    this.total = 0; // messages on this topic and every topic below it
    this.topics = 0; // topics (with at least one message) below and including this one
    this.last = null; // last message on this exact topic
    this.lastTime = 0; // last message here or below (ms)
    this.retained = false; // the broker holds a retained message for this topic
    this.history = [];
    this.series = []; // [{t, v}] of numeric payloads
    this.winStart = 0;
    this.winCount = 0;
    this.rate = 0; // messages/s on this exact topic over the last full window
  }

  childList() {
    if (this.sorted === null) {
      this.sorted = [...this.children.values()].sort((a, b) =>
        a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    }
    return this.sorted;
  }

  /** Messages/s on this topic, decayed to 0 when nothing arrived for a while. */
  currentRate(now) {
    if (now - this.winStart > 2 * RATE_WINDOW_MS) {
      return 0;
    }
    return this.rate;
  }

  /** Every node with a retained message in this subtree (including this one). */
  retainedBelow() {
    const out = [];
    const stack = [this];
    while (stack.length) {
      const n = stack.pop();
      if (n.retained && n.path !== '') {
        out.push(n);
      }
      for (const c of n.children.values()) {
        stack.push(c);
      }
    }
    return out;
  }
}

export class TopicTree {
  constructor() {
    this.root = new TopicNode('', '', null);
    this.nodes = new Map(); // topic -> node, for O(1) lookup
    this.version = 0; // bumped when the tree's shape changes (a node added)
    this.messages = 0;
    // Every message in some history, oldest first: [msg, node] pairs from `head` on.
    this.kept = [];
    this.keptHead = 0;
    this.keptBytes = 0;
    this.limits = { messages: TOTAL_HISTORY_MAX, bytes: TOTAL_HISTORY_BYTES };
  }

  /** Drop the oldest history entries until the totals are within limits. */
  trimHistories() {
    while (this.kept.length - this.keptHead > this.limits.messages ||
           (this.keptBytes > this.limits.bytes && this.kept.length > this.keptHead)) {
      const [msg, node] = this.kept[this.keptHead];
      this.kept[this.keptHead++] = undefined;
      this.keptBytes -= msg.payload.length;
      // The per-topic cap may have dropped it already; then it is not at the front.
      if (node.history[0] === msg) {
        node.history.shift();
      }
    }
    if (this.keptHead > 4096 && this.keptHead * 2 > this.kept.length) {
      this.kept = this.kept.slice(this.keptHead);
      this.keptHead = 0;
    }
  }

  get(topic) {
    return this.nodes.get(topic);
  }

  /**
   * Account one message: { topic, payload (Uint8Array), qos, retain, time, properties }.
   * Returns the node of its topic.
   */
  add(msg) {
    let node = this.nodes.get(msg.topic);
    if (node === undefined) {
      node = this.create(msg.topic);
    }
    if (node.count === 0) {
      for (let n = node; n !== null; n = n.parent) {
        n.topics++;
      }
    }
    node.count++;
    node.last = msg;
    // With retain-as-published the flag tells whether the broker keeps this message; an empty
    // retained payload is the broker deleting it.
    if (msg.retain) {
      node.retained = msg.payload.length > 0;
    } else if (msg.payload.length === 0 && msg.clearsRetained) {
      node.retained = false;
    }
    node.history.push(msg);
    if (node.history.length > HISTORY_MAX) {
      node.history.splice(0, node.history.length - HISTORY_MAX);
    }
    this.kept.push([msg, node]);
    this.keptBytes += msg.payload.length;
    this.trimHistories();
    const v = numericValue(msg.payload);
    if (v !== null) {
      node.series.push({ t: msg.time, v });
      if (node.series.length > SERIES_MAX) {
        node.series.splice(0, node.series.length - SERIES_MAX);
      }
    }
    if (msg.time - node.winStart >= RATE_WINDOW_MS) {
      const span = msg.time - node.winStart;
      node.rate = span < 2 * RATE_WINDOW_MS ? (node.winCount * 1000) / span : 0;
      node.winStart = msg.time;
      node.winCount = 0;
    }
    node.winCount++;
    for (let n = node; n !== null; n = n.parent) {
      n.total++;
      n.lastTime = msg.time;
    }
    this.messages++;
    return node;
  }

  create(topic) {
    const levels = topic.split('/');
    let node = this.root;
    let path = '';
    for (let i = 0; i < levels.length; i++) {
      path = i === 0 ? levels[0] : path + '/' + levels[i];
      let child = node.children.get(levels[i]);
      if (child === undefined) {
        child = new TopicNode(levels[i], path, node);
        node.children.set(levels[i], child);
        node.sorted = null;
        this.nodes.set(path, child);
        this.version++;
      }
      node = child;
    }
    return node;
  }

  clear() {
    this.root = new TopicNode('', '', null);
    this.nodes = new Map();
    this.messages = 0;
    this.kept = [];
    this.keptHead = 0;
    this.keptBytes = 0;
    this.version++;
  }
}

/**
 * The rows to show: a depth-first walk into expanded nodes. With a filter (lower-case
 * substring), only topics whose path contains it and their ancestors are shown, all expanded.
 * Returns [{node, depth}].
 */
export function visibleRows(tree, expanded, filter) {
  const rows = [];
  if (filter) {
    const keep = new Set();
    for (const [path, node] of tree.nodes) {
      if (path.toLowerCase().includes(filter)) {
        for (let n = node; n !== null && !keep.has(n); n = n.parent) {
          keep.add(n);
        }
      }
    }
    const walk = (node, depth) => {
      for (const c of node.childList()) {
        if (keep.has(c)) {
          rows.push({ node: c, depth });
          walk(c, depth + 1);
        }
      }
    };
    walk(tree.root, 0);
    return rows;
  }
  const walk = (node, depth) => {
    for (const c of node.childList()) {
      rows.push({ node: c, depth });
      if (c.children.size > 0 && expanded.has(c.path)) {
        walk(c, depth + 1);
      }
    }
  };
  walk(tree.root, 0);
  return rows;
}
