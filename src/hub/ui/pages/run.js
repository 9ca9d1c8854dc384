// A run's page (#/runs/ID): its details and its board, one row per agent
// (#run-board), and cancelling it. The run's events (without output) only
// say that something changed: the run is fetched again, at most every
// 500 ms, and durations of running tasks tick every second.

import { api, unwrap, enc } from '../api.js';
import { h, clear, setContent, setPresent } from '../dom.js';
import { commandText, formatBytes, formatDuration, parseTime, runTargetText } from '../format.js';
import { followEvents } from '../live_events.js';
import {
  detailList, emptyRow, headRow, heading, showLiveStatus, stateBadge, stateClass, tableWrap,
  timeElement,
} from '../page_parts.js';
import { clearError, reportError } from '../page_error.js';
import { canWrite } from '../session.js';
import { countsText, hasEnded } from '../states.js';

const REFETCH_MS = 500;
const TICK_MS = 1000;
const MAX_START_FETCHES = 20;  // task lookups per update, for the start times below
const EVENT_NAMES = ['run', 'status', 'final', 'gap', 'output', 'end'];
const COLUMNS = ['Agent', 'State', 'Exit code', 'Bytes', 'Duration', 'Task', 'Note'];

export function renderRunPage(ctx, main, route) {
  const id = route.id;
  main.appendChild(heading('Run ' + id));
  main.appendChild(h('p', { class: 'muted' }, h('a', { href: '#/runs' }, '← All runs')));

  const stateEl = h('span', { id: 'run-state', class: 'state' }, '…');
  const liveEl = h('span', { id: 'run-live-status', role: 'status', class: 'live' }, 'connecting');
  const field = {
    target: h('span'), command: h('code', { class: 'command' }), limits: h('span'),
    errors: h('span'), counts: h('span'), created: h('span'), finished: h('span'),
    reason: h('span'),
  };
  main.appendChild(detailList([
    ['State', stateEl],
    ['Updates', liveEl],
    ['Agents', field.target],
    ['Command', field.command],
    ['Limits', field.limits],
    ['Errors', field.errors],
    ['Tasks', field.counts],
    ['Created', field.created],
    ['Finished', field.finished],
    ['Stop reason', field.reason],
  ]));

  const cancelButton = h('button', { type: 'button', id: 'cancel-run', class: 'danger' }, 'Cancel run');
  const cancelSlot = h('div', { class: 'toolbar slot' });
  main.appendChild(cancelSlot);

  const tbody = h('tbody');
  const table = h('table', { id: 'run-board' },
    h('caption', { class: 'visually-hidden' }, 'Tasks of the run, by agent'), headRow(COLUMNS), tbody);
  main.appendChild(tableWrap(table, 'Run board'));

  let runState = null;
  let cancelling = false;
  let ticking = [];    // {el, started} of the duration cells of tasks still going
  let lastRun = null;

  // A run's tasks carry times from their finals only: for a task still
  // running, its start comes from the task itself (fetched once each).
  const startedAt = new Map();  // task id -> ISO time, '' while asked or unknown
  function fetchStarts(tasks) {
    const wanted = tasks.filter((t) => t.task_id && !t.started_at && !t.finished_at &&
      (t.state === 'running' || t.state === 'dispatched') && !startedAt.has(t.task_id));
    for (const t of wanted.slice(0, MAX_START_FETCHES)) {
      startedAt.set(t.task_id, '');
      api('GET', '/api/v1/tasks/' + enc(t.task_id)).then((data) => {
        const attempts = (unwrap(data, 'task') || {}).attempts || [];
        const last = attempts[attempts.length - 1];
        startedAt.set(t.task_id, (last && (last.started_at || last.dispatched_at)) || '');
        if (ctx.alive && lastRun && startedAt.get(t.task_id)) show(lastRun);
      }, () => { /* the duration stays unknown */ });
    }
  }

  function updateCancel() {
    setPresent(cancelSlot, cancelButton, canWrite() && runState === 'running');
    cancelButton.disabled = cancelling;
  }

  function boardRow(t, now) {
    const total = (t.stdout_bytes || 0) + (t.stderr_bytes || 0);
    const hasFinal = !!t.finished_at || typeof t.exit_code === 'number' || total > 0;
    const bytesCell = h('td', { class: 'bytes num' }, hasFinal ? formatBytes(total) : '—');
    if (hasFinal) {
      bytesCell.setAttribute('title',
        'stdout ' + (t.stdout_bytes || 0) + ' bytes, stderr ' + (t.stderr_bytes || 0) + ' bytes');
    }
    const started = parseTime(t.started_at || startedAt.get(t.task_id));
    const finished = parseTime(t.finished_at);
    const durationCell = h('td', { class: 'duration num' }, '—');
    if (started && finished) {
      durationCell.textContent = formatDuration(finished - started);
    } else if (started && !hasEnded(t.state)) {
      durationCell.textContent = formatDuration(now - started);
      durationCell.classList.add('ticking');
      ticking.push({ el: durationCell, started });
    }
    return h('tr', { 'data-agent': t.agent },
      h('td', { class: 'agent' }, t.agent),
      h('td', { class: 'state' }, stateBadge(t.state)),
      h('td', { class: 'exit-code num' }, typeof t.exit_code === 'number' ? String(t.exit_code) : '—'),
      bytesCell,
      durationCell,
      h('td', { class: 'task' },
        t.task_id ? h('a', { href: '#/tasks/' + enc(t.task_id) }, t.task_id) : '—'),
      h('td', { class: 'note' }, t.note || ''));
  }

  function show(run) {
    lastRun = run;
    runState = run.state;
    stateEl.textContent = run.state;
    stateEl.className = stateClass(run.state);
    field.target.textContent = runTargetText(run);
    field.command.textContent = commandText(run.command);
    field.limits.textContent = 'max concurrency ' + run.max_concurrency + ', max errors ' +
      (run.max_errors === null || run.max_errors === undefined ? 'none' : run.max_errors) +
      (run.canary ? ', canary ' + run.canary : '');
    field.errors.textContent = String(run.errors === undefined ? '—' : run.errors);
    field.counts.textContent = countsText(run.counts) || '—';
    setContent(field.created, timeElement(run.created_at));
    setContent(field.finished, timeElement(run.finished_at));
    field.reason.textContent = run.stop_reason || '—';
    updateCancel();

    const now = Date.now();
    ticking = [];
    const tasks = (run.tasks || []).slice().sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0));
    clear(tbody);
    if (!tasks.length) tbody.appendChild(emptyRow(COLUMNS.length, 'No tasks.'));
    for (const t of tasks) tbody.appendChild(boardRow(t, now));
    fetchStarts(tasks);
  }

  ctx.every(TICK_MS, () => {
    const now = Date.now();
    for (const d of ticking) d.el.textContent = formatDuration(now - d.started);
  });

  let seq = 0;  // only the answer to the latest request is shown
  async function fetchRun() {
    const my = ++seq;
    try {
      const run = unwrap(await api('GET', '/api/v1/runs/' + enc(id)), 'run');
      if (!ctx.alive || my !== seq) return false;
      show(run);
      return true;
    } catch (err) {
      if (ctx.alive && my === seq) reportError(err);
      return false;
    }
  }
  const refetch = ctx.throttle(REFETCH_MS, fetchRun);

  cancelButton.addEventListener('click', async () => {
    // A cancel reaches every host of the run and cannot be undone: asked once
    // more (docs/ui.md).
    if (!window.confirm('Cancel run ' + id + '? Its hosts not yet started are skipped; ' +
        'running tasks are signalled to stop.')) return;
    cancelling = true;
    updateCancel();
    try {
      const run = unwrap(await api('POST', '/api/v1/runs/' + enc(id) + '/cancel', {}), 'run');
      if (ctx.alive && run && run.id) show(run);
      clearError();
    } catch (err) {
      reportError(err);
    } finally {
      cancelling = false;
      updateCancel();
    }
  });

  fetchRun().then((ok) => {
    if (!ok || !ctx.alive) return;
    followEvents(ctx, '/api/v1/runs/' + enc(id) + '/events?output=0', EVENT_NAMES,
      () => refetch(), (text) => showLiveStatus(liveEl, text));
  });
}
