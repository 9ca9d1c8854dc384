// A task's output on its page: stdout and stderr each in a terminal of its
// own (so a progress bar on stderr is not broken by stdout's lines), fed by
// the output and gap events of the attempt shown, with the MiB before the
// tail fetched on request (docs/ui.md, Output).

import { request, enc } from './api.js';
import { h } from './dom.js';
import { OutputStream } from './output_stream.js';
import { TaskTerminal } from './task_terminal.js';

export const STREAM_NAMES = ['stdout', 'stderr'];
const RESIZE_SETTLE_MS = 150;

// The bytes of an output event: UTF-8 text, or base64 for bytes that are
// not UTF-8 (decoded later, with U+FFFD for the bad ones); null if malformed.
const encoder = new TextEncoder();
function eventBytes(ev) {
  if (typeof ev.data !== 'string') return null;
  if (ev.encoding !== 'base64') return encoder.encode(ev.data);
  let binary;
  try { binary = atob(ev.data); } catch (e) { return null; }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export class TaskOutput {
  // Appends the panes to `parent`; onEarlierChange() runs whenever
  // hasEarlier() may have changed.
  constructor(ctx, parent, taskId, onEarlierChange) {
    this.taskId = taskId;
    this.onEarlierChange = onEarlierChange;
    this.streams = new Map();  // name -> {terminal, output}
    const panes = h('div', { class: 'terminals' });
    parent.appendChild(panes);
    for (const name of STREAM_NAMES) {
      const box = h('div', { id: 'terminal-' + name, class: 'terminal' });
      panes.appendChild(h('section', { class: 'pane', 'aria-labelledby': 'heading-' + name },
        h('h2', { id: 'heading-' + name }, name), box));
      const terminal = new TaskTerminal(box);
      this.streams.set(name, { terminal, output: new OutputStream(terminal) });
    }
    ctx.onCleanup(() => { for (const s of this.streams.values()) s.terminal.dispose(); });
    ctx.listen(window, 'resize', ctx.debounce(RESIZE_SETTLE_MS, () => {
      for (const s of this.streams.values()) s.terminal.fit();
    }));
  }

  // An output event of the attempt shown.
  addOutput(ev) {
    const s = this.streams.get(ev.stream);
    const bytes = s && eventBytes(ev);
    if (!bytes) return;
    s.output.addBytes(ev.offset, bytes, ev.stored_at);
    this.onEarlierChange();
  }

  // A gap event of the attempt shown.
  addGap(ev) {
    const s = this.streams.get(ev.stream);
    if (!s) return;
    s.output.addGap(ev.offset, ev.length, ev.stored_at);
    this.onEarlierChange();
  }

  // Another attempt's output replaces what is shown.
  restart() {
    for (const s of this.streams.values()) s.output.restart();
    this.onEarlierChange();
  }

  setShowTimestamps(show) {
    for (const s of this.streams.values()) {
      s.terminal.showTimestamps = show;
      s.output.redraw();
    }
  }

  // Some stream began at its tail: there is output before it to fetch.
  hasEarlier() {
    return [...this.streams.values()].some((s) => s.output.hasEarlier);
  }

  // Fetches, for each stream that has them, the maxBytes before what is
  // held (of attemptId, when known) and redraws with them. Throws an
  // ApiError; a stream changed meanwhile is left as it is.
  async loadEarlier(ctx, maxBytes, attemptId) {
    for (const [name, s] of this.streams) {
      const range = s.output.earlierRange(maxBytes);
      if (!range) continue;
      const url = '/api/v1/tasks/' + enc(this.taskId) + '/output?stream=' + name +
        '&offset=' + range.from + '&length=' + (range.to - range.from) +
        (attemptId ? '&attempt=' + enc(attemptId) : '');
      const bytes = new Uint8Array(await (await request('GET', url)).arrayBuffer());
      if (!ctx.alive) return;
      s.output.prependEarlier(range, bytes);
    }
  }
}
