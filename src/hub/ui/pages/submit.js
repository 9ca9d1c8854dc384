// The submit page (#/submit, not for viewers): a command for one agent (a
// task) or for every agent a selector picks (a run, docs/protocol.md 11.5),
// run as /bin/sh -c TEXT; the new task's or run's page opens.

import { api, unwrap, enc } from '../api.js';
import { h } from '../dom.js';
import { heading } from '../page_parts.js';
import { clearError, reportError, showError } from '../page_error.js';
import { canWrite, signedIn } from '../session.js';

export function renderSubmitPage(ctx, main) {
  main.appendChild(heading('Submit'));
  if (!canWrite()) {
    const session = signedIn();
    main.appendChild(h('p', null, 'Your role (' + (session ? session.role : '?') +
      ') may not submit tasks.'));
    return;
  }
  const modeAgent = h('input', { type: 'radio', name: 'mode', id: 'submit-mode-agent', value: 'agent', checked: true });
  const modeSelector = h('input', { type: 'radio', name: 'mode', id: 'submit-mode-selector', value: 'selector' });
  const targetLabel = h('label', { for: 'submit-target' }, 'Agent');
  const target = h('input', {
    id: 'submit-target', type: 'text', required: true, spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', list: 'submit-agents', 'aria-describedby': 'submit-target-help',
  });
  const targetHelp = h('span', { id: 'submit-target-help', class: 'help' });
  const agentNames = h('datalist', { id: 'submit-agents' });
  const command = h('textarea', {
    id: 'submit-command', rows: '5', required: true, spellcheck: 'false', autocapitalize: 'off',
    'aria-describedby': 'submit-command-help',
  });
  const concurrency = h('input', {
    id: 'submit-concurrency', type: 'text', inputmode: 'text', placeholder: '100%',
    autocomplete: 'off', 'aria-describedby': 'submit-concurrency-help',
  });
  const maxErrors = h('input', {
    id: 'submit-max-errors', type: 'text', placeholder: 'no limit', autocomplete: 'off',
    'aria-describedby': 'submit-max-errors-help',
  });
  const runOptions = h('fieldset', { id: 'submit-run-options' },
    h('legend', null, 'Run options'),
    h('div', { class: 'field' },
      h('label', { for: 'submit-concurrency' }, 'Max concurrency'),
      concurrency,
      h('span', { id: 'submit-concurrency-help', class: 'help' },
        'Tasks running at once: a count, or a percentage of the agents (10%). Default 100%.')),
    h('div', { class: 'field' },
      h('label', { for: 'submit-max-errors' }, 'Max errors'),
      maxErrors,
      h('span', { id: 'submit-max-errors-help', class: 'help' },
        'Failed tasks allowed before the run stops: a count or a percentage. Empty: no limit.')));
  const submit = h('button', { type: 'submit', id: 'submit-button' }, 'Submit');
  const form = h('form', { id: 'submit-form', novalidate: true },
    h('fieldset', null,
      h('legend', null, 'Run on'),
      h('div', { class: 'radio' }, modeAgent, h('label', { for: 'submit-mode-agent' }, 'One agent (a task)')),
      h('div', { class: 'radio' }, modeSelector,
        h('label', { for: 'submit-mode-selector' }, 'Every agent matching a selector (a run)'))),
    h('div', { class: 'field' }, targetLabel, target, targetHelp, agentNames),
    h('div', { class: 'field' },
      h('label', { for: 'submit-command' }, 'Command'),
      command,
      h('span', { id: 'submit-command-help', class: 'help' },
        'Run as /bin/sh -c COMMAND. Ctrl+Enter submits.')),
    runOptions,
    h('div', { class: 'form-actions' }, submit));
  main.appendChild(form);

  function showMode() {
    const run = modeSelector.checked;
    targetLabel.textContent = run ? 'Selector' : 'Agent';
    targetHelp.textContent = run
      ? 'Agents whose labels match, e.g. role=web,region in (eu,us).'
      : 'The name of the agent to run on.';
    target.placeholder = run ? 'role=web' : 'edge-1';
    if (run) target.removeAttribute('list'); else target.setAttribute('list', 'submit-agents');
    runOptions.hidden = !run;
    runOptions.disabled = !run;
    submit.textContent = run ? 'Start run' : 'Run task';
  }
  modeAgent.addEventListener('change', showMode);
  modeSelector.addEventListener('change', showMode);
  showMode();

  command.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      if (typeof form.requestSubmit === 'function') form.requestSubmit();
      else submit.click();  // Safari before 16
    }
  });

  // Agent names to pick from: a convenience, nothing if the request fails.
  api('GET', '/api/v1/agents').then((data) => {
    if (!ctx.alive || !data || !data.agents) return;
    for (const a of data.agents) agentNames.appendChild(h('option', { value: a.name }));
  }, () => {});

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearError();
    const run = modeSelector.checked;
    const targetText = target.value.trim();
    const text = command.value;
    if (!targetText) {
      showError(run ? 'Give a selector.' : 'Give an agent name.');
      target.focus();
      return;
    }
    if (!text.trim()) {
      showError('Give a command.');
      command.focus();
      return;
    }
    const cmd = { argv: ['/bin/sh', '-c', text] };
    submit.disabled = true;
    try {
      if (run) {
        const body = { selector: targetText, command: cmd };
        const c = concurrency.value.trim();
        const e = maxErrors.value.trim();
        if (c) body.max_concurrency = c;
        if (e) body.max_errors = e;
        const created = unwrap(await api('POST', '/api/v1/runs', body), 'run');
        if (ctx.alive && created && created.id) location.hash = '#/runs/' + enc(created.id);
      } else {
        const task = unwrap(await api('POST', '/api/v1/tasks', { agent: targetText, command: cmd }), 'task');
        if (ctx.alive && task && task.id) location.hash = '#/tasks/' + enc(task.id);
      }
    } catch (err) {
      reportError(err);
    } finally {
      submit.disabled = false;
    }
  });
  target.focus();
}
