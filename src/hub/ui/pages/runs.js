// The runs page (#/runs): fan-out runs (docs/protocol.md 11.5) newest
// first, a page at a time (#runs-more), of all states or one
// (#run-state-filter), with their progress.

import { enc } from '../api.js';
import { h } from '../dom.js';
import { commandText, runTargetText } from '../format.js';
import { stateBadge, timeElement } from '../page_parts.js';
import { renderPagedList } from '../paged_list.js';
import { RUN_STATES, countsText } from '../states.js';

export function renderRunsPage(ctx, main) {
  renderPagedList(ctx, main, {
    kind: 'run',
    title: 'Runs',
    path: '/api/v1/runs',
    key: 'runs',
    states: RUN_STATES,
    columns: ['Run', 'State', 'Agents', 'Command', 'Tasks', 'Created'],
    row: runRow,
  });
}

function runRow(run) {
  const command = commandText(run.command);
  const target = runTargetText(run);
  return h('tr', { 'data-run': run.id },
    h('td', { class: 'id' }, h('a', { href: '#/runs/' + enc(run.id) }, run.id)),
    h('td', { class: 'state' }, stateBadge(run.state)),
    h('td', { class: 'target', title: target }, target),
    h('td', { class: 'command', title: command }, h('code', null, command)),
    h('td', { class: 'progress' }, countsText(run.counts) || '—'),
    h('td', { class: 'created' }, timeElement(run.created_at)));
}
