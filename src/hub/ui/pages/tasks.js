// The tasks page (#/tasks): tasks newest first, a page at a time
// (#tasks-more for the next, by ?before=), of all states or one
// (#task-state-filter).

import { api, enc } from '../api.js';
import { h, clear, setPresent } from '../dom.js';
import { commandText, exitText, taskAgentText } from '../format.js';
import { emptyRow, headRow, heading, stateBadge, tableWrap, timeElement } from '../page_parts.js';
import { clearError, reportError } from '../page_error.js';
import { TASK_STATES } from '../states.js';

const PAGE_SIZE = 50;
const COLUMNS = ['Task', 'Agent', 'State', 'Exit code', 'Command', 'Created'];

// The state chosen last: kept while the page is left and come back to.
let stateFilter = '';

export function renderTasksPage(ctx, main) {
  const select = h('select', { id: 'task-state-filter' },
    h('option', { value: '' }, 'All states'),
    TASK_STATES.map((s) => h('option', { value: s }, s)));
  select.value = stateFilter;
  const refresh = h('button', { type: 'button', id: 'tasks-refresh', class: 'secondary' }, 'Refresh');
  const tbody = h('tbody');
  const table = h('table', { id: 'tasks-table' },
    h('caption', { class: 'visually-hidden' }, 'Tasks, newest first'), headRow(COLUMNS), tbody);
  const more = h('button', { type: 'button', id: 'tasks-more', class: 'secondary' }, 'Load more');
  const moreSlot = h('div', { class: 'more' });
  main.append(heading('Tasks'),
    h('div', { class: 'toolbar' },
      h('label', { for: 'task-state-filter' }, 'State'), select, refresh),
    tableWrap(table, 'Tasks'),
    moreSlot);

  let lastId = null;     // the last task listed: ?before= of the next page
  let shown = new Set(); // ids listed, so a task that moved is not listed twice
  let seq = 0;           // only the answer to the latest request is shown

  async function load(fromTop) {
    const my = ++seq;
    const params = new URLSearchParams();
    params.set('limit', String(PAGE_SIZE));
    if (stateFilter) params.set('state', stateFilter);
    if (!fromTop && lastId) params.set('before', lastId);
    more.disabled = true;
    try {
      const data = await api('GET', '/api/v1/tasks?' + params.toString());
      if (!ctx.alive || my !== seq) return;
      const tasks = (data && data.tasks) || [];
      if (fromTop) { clear(tbody); shown = new Set(); lastId = null; }
      let firstNew = null;
      for (const t of tasks) {
        if (shown.has(t.id)) continue;
        shown.add(t.id);
        const row = taskRow(t);
        if (!firstNew) firstNew = row;
        tbody.appendChild(row);
      }
      if (tasks.length) lastId = tasks[tasks.length - 1].id;
      if (!tbody.firstChild) tbody.appendChild(emptyRow(COLUMNS.length, 'No tasks.'));
      const hadFocus = document.activeElement === more;
      setPresent(moreSlot, more, tasks.length >= PAGE_SIZE);
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
    stateFilter = select.value;
    load(true);
  });
  refresh.addEventListener('click', () => load(true));
  more.addEventListener('click', () => load(false));
  load(true);
}

function taskRow(t) {
  const command = commandText(t.command);
  return h('tr', { 'data-task': t.id },
    h('td', { class: 'id' }, h('a', { href: '#/tasks/' + enc(t.id) }, t.id)),
    h('td', { class: 'agent' }, taskAgentText(t)),
    h('td', { class: 'state' }, stateBadge(t.state)),
    h('td', { class: 'exit-code num' }, exitText(t.final)),
    h('td', { class: 'command', title: command }, h('code', null, command)),
    h('td', { class: 'created' }, timeElement(t.created_at)));
}
