// One output stream of a task drawn by xterm.js: colours, carriage returns,
// cursor moves and the rest are xterm's to interpret, never ours. The hub
// serves xterm.js and its fit addon (npm, built in) as classic scripts that
// index.html loads before the modules: /ui/xterm.js defines the global
// Terminal, /ui/fit.js the global FitAddon (an object holding the class).
//
// Output comes from pipes, where a line ends with a bare "\n": convertEol
// makes xterm start the next line at column 0, while a lone "\r" still goes
// back to column 0 of the same line (progress bars). With timestamps, each
// line starts with the time its first byte was stored, written again after a
// lone "\r" so that the redrawn line keeps it.

import { formatTimeOfDay } from './format.js';

const DIM = '\x1b[2m';
const UNDIM = '\x1b[22m';
const HIDE_CURSOR = '\x1b[?25l';
const LINE_FEED_MODE = 20;  // ANSI mode LNM: "\n" also returns to column 0
const ALTERNATE_SCREEN_MODES = new Set([47, 1047, 1049]);  // DEC private modes
const FONT_FAMILY = 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace';

export class TaskTerminal {
  // container: the element the terminal fills; it sets the colours.
  constructor(container) {
    const look = window.getComputedStyle(container);
    this.term = new window.Terminal({
      scrollback: 50000,
      convertEol: true,
      disableStdin: true,
      cursorBlink: false,
      fontSize: 13,
      fontFamily: FONT_FAMILY,
      theme: { background: look.backgroundColor, foreground: look.color },
    });
    this.fitAddon = new window.FitAddon.FitAddon();
    this.term.loadAddon(this.fitAddon);
    // A task's output that sets or resets LNM ("\e[20h", "\e[20l") must not
    // turn convertEol off for the rest of it: such sequences are dropped.
    for (const final of ['h', 'l']) {
      this.term.parser.registerCsiHandler({ final },
        (params) => params.length > 0 && params.includes(LINE_FEED_MODE));
    }
    // Nor may it erase what it printed from the view (docs/ui.md, Output):
    // erasing the whole screen or scrollback ("\e[2J", "\e[3J") and
    // switching to the alternate screen ("\e[?1049h" and its older forms)
    // are dropped, so every line stays readable in the scrollback.
    this.term.parser.registerCsiHandler({ final: 'J' },
      (params) => params[0] === 2 || params[0] === 3);
    for (const final of ['h', 'l']) {
      this.term.parser.registerCsiHandler({ prefix: '?', final },
        (params) => params.some((p) => ALTERNATE_SCREEN_MODES.has(p)));
    }
    container.classList.add('xterm-host');
    this.term.open(container);
    this.fit();
    this.showTimestamps = false;
    this.reset();
  }

  // Columns and rows to the container's size (nothing while it is hidden).
  fit() {
    try { this.fitAddon.fit(); } catch (e) { /* not laid out */ }
  }

  dispose() {
    try { this.term.dispose(); } catch (e) { /* gone already */ }
  }

  // Empty, as new: for drawing everything again.
  reset() {
    this.term.reset();
    this.term.write(HIDE_CURSOR);
    this.lineStart = true;   // the next text begins a line
    this.stamp = '';         // the timestamp written at the start of this line
    this.pendingCr = false;  // the last text ended with "\r": stamp again unless "\n" follows
  }

  _stampFor(storedAt) {
    return this.showTimestamps ? DIM + formatTimeOfDay(storedAt) + UNDIM + ' ' : '';
  }

  // Decoded output, stored by the hub at storedAt.
  text(text, storedAt) {
    if (!text) return;
    let out = '';
    if (this.pendingCr) {
      this.pendingCr = false;
      if (text.charAt(0) !== '\n') out += this.stamp;
    }
    let i = 0;
    while (i < text.length) {
      if (this.lineStart) {
        this.stamp = this._stampFor(storedAt);
        out += this.stamp;
        this.lineStart = false;
      }
      const nl = text.indexOf('\n', i);
      let line = nl < 0 ? text.slice(i) : text.slice(i, nl);
      if (this.stamp) line = line.replace(/\r(?!$)/g, '\r' + this.stamp);
      if (nl < 0) {
        out += line;
        if (this.stamp && line.endsWith('\r')) this.pendingCr = true;
        break;
      }
      out += line + '\n';
      this.lineStart = true;
      i = nl + 1;
    }
    this.term.write(out);
  }

  // A hole of `length` bytes the hub never got: a line of its own.
  gap(length, storedAt) {
    this.pendingCr = false;
    let out = this.lineStart ? '' : '\n';
    this.lineStart = true;
    out += this._stampFor(storedAt) + DIM + '[' + length +
      (length === 1 ? ' byte' : ' bytes') + ' lost]' + UNDIM + '\n';
    this.term.write(out);
  }
}
