// A list page of the operator API's newest-first collections (tasks, runs):
// a table a page at a time (#KIND-more for the next, by ?before= with the
// last id shown), of all states or one (#KIND-state-filter), and a Refresh
// button that starts again from the top (docs/protocol.md 11: both lists
// page the same way).

import { api } from './api.js';
import { h, clear, setPresent } from './dom.js';
import { emptyRow, headRow, heading, tableWrap } from './page_parts.js';
import { clearError, reportError } from './page_error.js';

const PAGE_SIZE = 50;

// The state chosen last per kind: kept while the page is left and come back to.
const stateFilters = new Map();

// spec: {kind: 'task' | 'run', title, path ('/api/v1/tasks'), key ('tasks'),
//        states: [...], columns: [...], row(item) -> <tr>}
export function renderPagedList(ctx, main, spec) {
  const filterId = spec.kind + '-state-filter';
  const select = h('select', { id: filterId },
    h('option', { value: '' }, 'All states'),
    spec.states.map((s) => h('option', { value: s }, s)));
  select.value = stateFilters.get(spec.kind) || '';
  const refresh = h('button', { type: 'button', id: spec.key + '-refresh', class: 'secondary' },
    'Refresh');
  const tbody = h('tbody');
  const table = h('table', { id: spec.key + '-table' },
    h('caption', { class: 'visually-hidden' }, spec.title + ', newest first'),
    headRow(spec.columns), tbody);
  const more = h('button', { type: 'button', id: spec.key + '-more', class: 'secondary' },
    'Load more');
  const moreSlot = h('div', { class: 'more' });
  main.append(heading(spec.title),
    h('div', { class: 'toolbar' }, h('label', { for: filterId }, 'State'), select, refresh),
    tableWrap(table, spec.title),
    moreSlot);

  let lastId = null;     // the last item listed: ?before= of the next page
  let shown = new Set(); // ids listed, so an item that moved is not listed twice
  let seq = 0;           // only the answer to the latest request is shown

  async function load(fromTop) {
    const my = ++seq;
    const params = new URLSearchParams();
    params.set('limit', String(PAGE_SIZE));
    if (select.value) params.set('state', select.value);
    if (!fromTop && lastId) params.set('before', lastId);
    more.disabled = true;
    try {
      const data = await api('GET', spec.path + '?' + params.toString());
      if (!ctx.alive || my !== seq) return;
      const items = (data && data[spec.key]) || [];
      if (fromTop) { clear(tbody); shown = new Set(); lastId = null; }
      let firstNew = null;
      for (const item of items) {
        if (shown.has(item.id)) continue;
        shown.add(item.id);
        const row = spec.row(item);
        if (!firstNew) firstNew = row;
        tbody.appendChild(row);
      }
      if (items.length) lastId = items[items.length - 1].id;
      if (!tbody.firstChild) tbody.appendChild(emptyRow(spec.columns.length, 'None.'));
      const hadFocus = document.activeElement === more;
      setPresent(moreSlot, more, items.length >= PAGE_SIZE);
      // The button went (the last page came): the focus goes to what came.
      if (hadFocus && more.parentNode !== moreSlot && firstNew) firstNew.querySelector('a').focus();
      clearError();
    } catch (err) {
      if (ctx.alive && my === seq) reportError(err);
    } finally {
      more.disabled = false;
    }
  }

  select.addEventListener('change', () => {
    stateFilters.set(spec.kind, select.value);
    load(true);
  });
  refresh.addEventListener('click', () => load(true));
  more.addEventListener('click', () => load(false));
  load(true);
}
