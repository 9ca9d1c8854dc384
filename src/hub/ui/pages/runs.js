// The runs page (#/runs): fan-out runs (docs/protocol.md 11.5) newest
// first, with their progress; refreshed every 5 s.

import { api, enc } from '../api.js';
import { h, clear } from '../dom.js';
import { commandText, runTargetText } from '../format.js';
import { emptyRow, headRow, heading, stateBadge, tableWrap, timeElement } from '../page_parts.js';
import { clearError, reportError } from '../page_error.js';
import { countsText } from '../states.js';

const REFRESH_MS = 5000;
const COLUMNS = ['Run', 'State', 'Agents', 'Command', 'Tasks', 'Created'];

export function renderRunsPage(ctx, main) {
  const tbody = h('tbody');
  const table = h('table', { id: 'runs-table' },
    h('caption', { class: 'visually-hidden' }, 'Runs, newest first'), headRow(COLUMNS), tbody);
  main.append(heading('Runs'), tableWrap(table, 'Runs'));

  ctx.poll(REFRESH_MS, async () => {
    try {
      const data = await api('GET', '/api/v1/runs?limit=50');
      if (!ctx.alive) return;
      const runs = (data && data.runs) || [];
      clear(tbody);
      if (!runs.length) tbody.appendChild(emptyRow(COLUMNS.length, 'No runs.'));
      for (const run of runs) tbody.appendChild(runRow(run));
      clearError();
    } catch (err) {
      if (ctx.alive) reportError(err);
    }
  }).now();
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
