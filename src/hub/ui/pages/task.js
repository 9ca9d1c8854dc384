// A task's page (#/tasks/ID): its details and state, updated live from its
// events, its output (task_output.js), cancelling it, downloading the raw
// output, timestamps, and the output before the tail.
//
// The events are opened with ?tail_bytes=1 MiB (docs/protocol.md 11.1): a
// 100 MB output opens at once, at its end; #load-earlier fetches the MiB
// before what is shown.

import { api, unwrap, enc } from '../api.js';
import { h, setPresent } from '../dom.js';
import { attemptNumber, commandText, exitText, taskAgentText } from '../format.js';
import { followEvents } from '../live_events.js';
import { detailList, heading, showLiveStatus, stateClass, timeElement } from '../page_parts.js';
import { reportError, clearError } from '../page_error.js';
import { canWrite } from '../session.js';
import { isCancellable } from '../states.js';
import { TaskOutput, STREAM_NAMES } from '../task_output.js';

const MIB = 1048576;
const EVENT_NAMES = ['status', 'output', 'gap', 'final', 'end'];

export function renderTaskPage(ctx, main, route) {
  const id = route.id;
  main.appendChild(heading('Task ' + id));
  main.appendChild(h('p', { class: 'muted' }, h('a', { href: '#/tasks' }, '← All tasks')));
  const body = h('div');
  main.appendChild(body);
  api('GET', '/api/v1/tasks/' + enc(id)).then((data) => {
    if (ctx.alive) showTask(ctx, body, id, unwrap(data, 'task'));
  }, (err) => {
    if (!ctx.alive) return;
    reportError(err);
    body.appendChild(h('p', null, 'This task cannot be shown.'));
  });
}

function showTask(ctx, body, id, task) {
  const stateEl = h('span', { id: 'task-state', class: stateClass(task.state) }, task.state);
  const exitEl = h('span', { id: 'task-exit-code' }, exitText(task.final));
  const liveEl = h('span', { id: 'live-status', role: 'status', class: 'live' }, 'connecting');
  const attemptEl = h('span', { id: 'task-attempt' }, task.current_attempt
    ? 'attempt ' + (attemptNumber(task.current_attempt) || task.current_attempt) : '—');
  const noteEl = h('span', { id: 'task-note' },
    (task.final && task.final.error) || task.verification_error || '—');
  body.appendChild(detailList([
    ['State', stateEl],
    ['Exit code', exitEl],
    ['Output', liveEl],
    ['Agent', taskAgentText(task)],
    ['Command', h('code', { class: 'command' }, commandText(task.command))],
    ['Attempt', attemptEl],
    ['Created', timeElement(task.created_at)],
    ['Note', noteEl],
  ]));

  const cancelButton = h('button', { type: 'button', id: 'cancel-task', class: 'danger' }, 'Cancel task');
  const cancelSlot = h('span', { class: 'slot' });
  const timestampsBox = h('input', { type: 'checkbox', id: 'show-timestamps' });
  const earlierButton = h('button', { type: 'button', id: 'load-earlier', class: 'secondary' },
    'Load earlier output');
  const earlierSlot = h('span', { class: 'slot' });
  const fileName = String(id).replace(/[^A-Za-z0-9._-]/g, '_');
  body.appendChild(h('div', { class: 'toolbar' },
    cancelSlot,
    h('span', { class: 'check' }, timestampsBox,
      h('label', { for: 'show-timestamps' }, 'Show timestamps')),
    earlierSlot,
    STREAM_NAMES.map((name) => h('a', {
      id: 'download-' + name,
      href: '/api/v1/tasks/' + enc(id) + '/output?stream=' + name,
      download: fileName + '.' + name,
    }, 'Download ' + name))));
  const attemptNote = h('p', { class: 'muted attempt-note', 'aria-live': 'polite' });
  body.appendChild(attemptNote);

  const output = new TaskOutput(ctx, body, id,
    () => setPresent(earlierSlot, earlierButton, output.hasEarlier()));

  // ---- state and cancelling

  let state = task.state;
  let cancelling = false;
  function updateCancel() {
    setPresent(cancelSlot, cancelButton, canWrite() && isCancellable(state));
    cancelButton.disabled = cancelling;
  }
  function setState(s) {
    if (!s) return;
    state = s;
    stateEl.textContent = s;
    stateEl.className = stateClass(s);
    updateCancel();
  }
  updateCancel();

  cancelButton.addEventListener('click', async () => {
    // A cancel cannot be undone: asked once more (docs/ui.md).
    if (!window.confirm('Cancel task ' + id + '? A running task is signalled to stop.')) return;
    cancelling = true;
    updateCancel();
    cancelButton.textContent = 'Cancelling…';
    try {
      const answer = unwrap(await api('POST', '/api/v1/tasks/' + enc(id) + '/cancel'), 'task');
      clearError();
      // Stays disabled until the task ends (a status event) and it goes.
      cancelButton.textContent = 'Cancel requested';
      if (answer && answer.state) setState(answer.state);
    } catch (err) {
      reportError(err);
      cancelling = false;
      cancelButton.textContent = 'Cancel task';
      updateCancel();
    }
  });

  // ---- which attempt's output is shown

  let shownAttempt = null;
  let shownNumber = 0;
  const minNumber = attemptNumber(task.current_attempt);

  // An older attempt than the one shown (or than the task's current one
  // when the page opened) is not shown.
  function isStale(attemptId) {
    const n = attemptNumber(attemptId);
    return n > 0 && n < Math.max(shownNumber, minNumber);
  }

  // Whether output of attemptId is shown; a newer attempt replaces the
  // output of the one shown (it ended without a result and was retried).
  function acceptAttempt(attemptId) {
    if (!attemptId || attemptId === shownAttempt) return true;
    if (isStale(attemptId)) return false;
    const n = attemptNumber(attemptId);
    const switching = shownAttempt !== null;
    shownAttempt = attemptId;
    shownNumber = n;
    attemptEl.textContent = 'attempt ' + (n || attemptId);
    if (switching) {
      output.restart();
      attemptNote.textContent = 'Output of attempt ' + (n || attemptId) +
        ' (the earlier attempt ended without a result).';
    } else if (n > 1) {
      attemptNote.textContent = 'Output of attempt ' + n + '.';
    }
    return true;
  }

  // ---- events

  function onEvent(name, ev) {
    if (name === 'status') {
      setState(ev.state);
      if (ev.note) noteEl.textContent = ev.note;
    } else if (name === 'output' || name === 'gap') {
      if (!STREAM_NAMES.includes(ev.stream) || !acceptAttempt(ev.attempt_id)) return;
      if (name === 'output') output.addOutput(ev);
      else output.addGap(ev);
    } else if (name === 'final') {
      if (isStale(ev.attempt_id)) return;
      exitEl.textContent = exitText(ev);
      if (ev.error) noteEl.textContent = ev.error;
      else if (ev.verification_error) noteEl.textContent = ev.verification_error;
    } else if (name === 'end') {
      refreshDetails();
    }
  }

  // The task's final answer once its events end (state and exit code as
  // stored, whatever the events said).
  async function refreshDetails() {
    try {
      const t = unwrap(await api('GET', '/api/v1/tasks/' + enc(id)), 'task');
      if (!ctx.alive || !t) return;
      setState(t.state);
      if (t.final) exitEl.textContent = exitText(t.final);
    } catch (err) {
      if (ctx.alive) reportError(err);
    }
  }

  // ---- controls of the output

  timestampsBox.addEventListener('change', () => output.setShowTimestamps(timestampsBox.checked));

  earlierButton.addEventListener('click', async () => {
    earlierButton.disabled = true;
    earlierButton.textContent = 'Loading…';
    try {
      await output.loadEarlier(ctx, MIB, shownAttempt);
      if (ctx.alive) clearError();
    } catch (err) {
      if (ctx.alive) reportError(err);
    } finally {
      earlierButton.disabled = false;
      earlierButton.textContent = 'Load earlier output';
      const hadFocus = document.activeElement === earlierButton;
      setPresent(earlierSlot, earlierButton, output.hasEarlier());
      // The button went (all output is there): the focus goes next to it.
      if (hadFocus && earlierButton.parentNode !== earlierSlot) timestampsBox.focus();
    }
  });

  followEvents(ctx, '/api/v1/tasks/' + enc(id) + '/events?tail_bytes=' + MIB, EVENT_NAMES,
    onEvent, (text) => showLiveStatus(liveEl, text));
}
