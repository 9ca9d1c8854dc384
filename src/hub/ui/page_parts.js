// Pieces of page that several pages show the same way: headings, tables,
// state badges, times, lists of details.

import { h } from './dom.js';
import { formatTime } from './format.js';

// The page's h1 (focused on navigation, so tabindex -1); also the title.
export function heading(text) {
  document.title = text + ' · Tether';
  return h('h1', { tabindex: '-1' }, text);
}

// A table in a box that scrolls sideways on a narrow screen (the page itself
// never does), reachable and named for the keyboard and screen readers.
export function tableWrap(table, label) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' },
    table);
}

export function headRow(names) {
  return h('thead', null, h('tr', null, names.map((n) => h('th', { scope: 'col' }, n))));
}

export function emptyRow(colspan, text) {
  return h('tr', { class: 'empty' }, h('td', { colspan: String(colspan) }, text));
}

// "state state-running": the colour goes with the text, never instead of it.
export function stateClass(state) {
  return 'state state-' + String(state || 'unknown').replace(/[^a-z_]/g, '');
}

export function stateBadge(state) {
  return h('span', { class: stateClass(state) }, state || '—');
}

export function timeElement(iso) {
  if (!iso) return '—';
  return h('time', { datetime: iso, title: iso }, formatTime(iso));
}

// A <dl> of [term, value] pairs.
export function detailList(pairs) {
  return h('dl', { class: 'details' },
    pairs.map(([term, value]) => h('div', null, h('dt', null, term), h('dd', null, value))));
}

// "Live", "reconnecting", "ended" in an element whose class colours it.
export function showLiveStatus(el, text) {
  el.textContent = text;
  el.className = 'live live-' + text;
}
