// The tasks page (#/tasks): tasks newest first, a page at a time
// (#tasks-more), of all states or one (#task-state-filter).

import { enc } from '../api.js';
import { h } from '../dom.js';
import { commandText, exitText, taskAgentText } from '../format.js';
import { stateBadge, timeElement } from '../page_parts.js';
import { renderPagedList } from '../paged_list.js';
import { TASK_STATES } from '../states.js';

export function renderTasksPage(ctx, main) {
  renderPagedList(ctx, main, {
    kind: 'task',
    title: 'Tasks',
    path: '/api/v1/tasks',
    key: 'tasks',
    states: TASK_STATES,
    columns: ['Task', 'Agent', 'State', 'Exit code', 'Command', 'Created'],
    row: taskRow,
  });
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
