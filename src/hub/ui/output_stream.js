// The bytes of one output stream (stdout or stderr) of a task's attempt, as
// the page has them: where they start and up to which offset, the chunks
// themselves (for a redraw), each with the time the hub stored it, and the
// holes the hub reported (gap events) or that the events skipped.
//
// Offsets make replays harmless: a reload or a reconnect with Last-Event-ID
// may deliver bytes we already have, and they are skipped, or cut to what is
// new, so that no line shows twice and none is missed (docs/ui.md, Output).
// Decoding is streaming UTF-8 with U+FFFD for bad bytes, so a character split
// across two events shows whole.
//
// The sink is what shows the text: {reset(), text(text, storedAt),
// gap(length, storedAt)} (a TaskTerminal).
//
// Memory stays bounded while a task streams for hours: past MAX_HELD_BYTES
// the oldest chunks are let go (the terminal's scrollback keeps its own
// lines), and "load earlier" can fetch them again from the hub.
const MAX_HELD_BYTES = 16 * 1024 * 1024;

export class OutputStream {
  constructor(sink) {
    this.sink = sink;
    this.generation = 0;  // changes when everything is thrown away
    this._forget();
  }

  _forget() {
    this.chunks = [];         // {offset, bytes, storedAt} or {offset, gap: length, storedAt}
    this.startOffset = null;  // offset of the first byte held; null before any
    this.nextOffset = 0;      // offset held up to (exclusive)
    this.heldBytes = 0;       // bytes in chunks
    this.decoder = new TextDecoder('utf-8');
  }

  // The stream has bytes before those held (the events began at its tail).
  get hasEarlier() { return this.startOffset !== null && this.startOffset > 0; }

  addBytes(offset, bytes, storedAt) { this._add(offset, bytes, bytes.length, storedAt); }

  addGap(offset, length, storedAt) { this._add(offset, null, length, storedAt); }

  _add(offset, bytes, length, storedAt) {
    if (typeof offset !== 'number' || !(length > 0)) return;
    if (this.startOffset === null) {
      this.startOffset = offset;
      this.nextOffset = offset;
    }
    const end = offset + length;
    if (end <= this.nextOffset) return;  // all of it already held
    if (offset < this.nextOffset) {      // partly: keep what is new
      if (bytes) bytes = bytes.subarray(this.nextOffset - offset);
      offset = this.nextOffset;
    } else if (offset > this.nextOffset) {
      // Bytes the events never brought: say so rather than join both sides.
      this._append({ offset: this.nextOffset, gap: offset - this.nextOffset, storedAt });
    }
    this._append(bytes ? { offset, bytes, storedAt }
      : { offset, gap: end - offset, storedAt });
    this.nextOffset = end;
  }

  _append(chunk) {
    this.chunks.push(chunk);
    if (chunk.bytes) this.heldBytes += chunk.bytes.length;
    this._write(chunk);
    while (this.heldBytes > MAX_HELD_BYTES && this.chunks.length > 1) {
      const oldest = this.chunks.shift();
      if (oldest.bytes) this.heldBytes -= oldest.bytes.length;
      this.startOffset = this.chunks[0].offset;
    }
  }

  _write(chunk) {
    if (chunk.gap !== undefined) {
      this.sink.text(this.decoder.decode(), chunk.storedAt);  // a character cut by the hole
      this.sink.gap(chunk.gap, chunk.storedAt);
      return;
    }
    this.sink.text(this.decoder.decode(chunk.bytes, { stream: true }), chunk.storedAt);
  }

  // Shows every chunk again from the start (the sink's look changed, or
  // earlier bytes came).
  redraw() {
    this.sink.reset();
    this.decoder = new TextDecoder('utf-8');
    for (const chunk of this.chunks) this._write(chunk);
  }

  // A new attempt's output replaces this one's.
  restart() {
    this._forget();
    this.generation++;
    this.redraw();
  }

  // The range of at most maxBytes just before those held, to fetch from the
  // hub (/output?offset=&length=); null when there is none.
  earlierRange(maxBytes) {
    if (!this.hasEarlier) return null;
    const to = this.startOffset;
    return { generation: this.generation, from: Math.max(0, to - maxBytes), to };
  }

  // The bytes fetched for `range` (earlierRange); false, and nothing done,
  // when the stream changed meanwhile (a new attempt, or another fetch won).
  // Their time of storing is not known: they show without one.
  prependEarlier(range, bytes) {
    if (range.generation !== this.generation || range.to !== this.startOffset) return false;
    if (bytes.length > range.to - range.from) bytes = bytes.subarray(0, range.to - range.from);
    if (bytes.length) {
      this.chunks.unshift({ offset: range.from, bytes, storedAt: null });
      this.heldBytes += bytes.length;
    }
    this.startOffset = range.from;
    this.redraw();
    return true;
  }
}
