// The agents page (#/agents, the default): every agent, or those a selector
// (docs/protocol.md 11.4) picks, with labels, connection, version, outbox
// and running tasks; refreshed every 5 s.

import { api, enc } from '../api.js';
import { h, clear } from '../dom.js';
import { formatBytes, formatTime, labelsText } from '../format.js';
import { emptyRow, headRow, heading, tableWrap } from '../page_parts.js';
import { clearError, reportError } from '../page_error.js';

const REFRESH_MS = 5000;
const COLUMNS = ['Name', 'Labels', 'Connection', 'Version', 'Outbox', 'Running'];

// The selector applied last: kept while the page is left and come back to.
let appliedSelector = '';

export function renderAgentsPage(ctx, main) {
  const input = h('input', {
    id: 'agent-selector', type: 'text', spellcheck: 'false', autocapitalize: 'off',
    autocomplete: 'off', placeholder: 'role=web,region in (eu,us)',
    'aria-describedby': 'agent-selector-help',
  });
  input.value = appliedSelector;
  const form = h('form', { class: 'toolbar', role: 'search', novalidate: true },
    h('label', { for: 'agent-selector' }, 'Selector'),
    input,
    h('button', { type: 'submit', class: 'secondary' }, 'Apply'),
    h('span', { id: 'agent-selector-help', class: 'help' },
      'Labels to match, e.g. role=web,!canary. Empty: every agent.'));
  const tbody = h('tbody');
  const table = h('table', { id: 'agents-table' },
    h('caption', { class: 'visually-hidden' }, 'Agents'), headRow(COLUMNS), tbody);
  const summary = h('p', { class: 'muted summary' });
  main.append(heading('Agents'), form, tableWrap(table, 'Agents'), summary);

  let seq = 0;  // only the answer to the latest request is shown
  const loader = ctx.poll(REFRESH_MS, async () => {
    const my = ++seq;
    const selector = appliedSelector.trim();
    try {
      const data = await api('GET', '/api/v1/agents' + (selector ? '?selector=' + enc(selector) : ''));
      const agents = (data && data.agents) || [];
      const counts = agents.some((a) => typeof a.running_attempts !== 'number')
        ? await runningCounts() : null;
      if (!ctx.alive || my !== seq) return;
      fillAgents(tbody, agents, counts);
      const connected = agents.filter((a) => a.connected).length;
      summary.textContent = agents.length + (agents.length === 1 ? ' agent' : ' agents') +
        (selector ? ' matching ' + selector : '') + ', ' + connected + ' connected. Updated ' +
        formatTime(new Date().toISOString()) + '.';
      input.removeAttribute('aria-invalid');
      clearError();
    } catch (err) {
      if (!ctx.alive || my !== seq) return;
      reportError(err);
      if (err.status === 400) {  // the selector does not parse: no point asking again
        input.setAttribute('aria-invalid', 'true');
        clear(tbody);
        tbody.appendChild(emptyRow(COLUMNS.length, 'Fix the selector to list agents.'));
        summary.textContent = '';
        loader.stop();
      }
    }
  });

  // Enter fires both change and submit: one request per new selector.
  let applied = appliedSelector;
  function apply() {
    if (input.value === applied) return;
    applied = input.value;
    appliedSelector = input.value;
    loader.now();
  }
  form.addEventListener('submit', (ev) => { ev.preventDefault(); apply(); });
  input.addEventListener('change', apply);
  loader.now();
}

// Running tasks per agent, for a hub whose agents answer has no
// running_attempts.
async function runningCounts() {
  const data = await api('GET', '/api/v1/tasks?state=running&limit=1000');
  const counts = {};
  for (const t of (data && data.tasks) || []) counts[t.agent] = (counts[t.agent] || 0) + 1;
  return counts;
}

function labelsCell(agent) {
  const labels = agent.labels && typeof agent.labels === 'object' ? agent.labels : {};
  const keys = Object.keys(labels).sort();
  const cell = h('td', { class: 'labels' });
  if (keys.length === 0) cell.appendChild(h('span', { class: 'muted' }, '—'));
  keys.forEach((k, i) => {
    if (i) cell.appendChild(document.createTextNode(' '));
    cell.appendChild(h('span', { class: 'chip' }, k + '=' + labels[k]));
  });
  const origins = [];
  if (agent.hub_labels && Object.keys(agent.hub_labels).length) {
    origins.push('set on the hub: ' + labelsText(agent.hub_labels));
  }
  if (agent.reported_labels && Object.keys(agent.reported_labels).length) {
    origins.push('reported: ' + labelsText(agent.reported_labels));
  }
  if (origins.length) cell.setAttribute('title', origins.join('; '));
  return cell;
}

function connectionCell(agent) {
  return h('td', { class: 'connected' },
    h('span', { class: agent.connected ? 'dot dot-on' : 'dot dot-off', 'aria-hidden': 'true' }),
    agent.connected ? 'connected' : 'since ' + formatTime(agent.last_seen_at || agent.created_at));
}

function outboxCell(agent) {
  const outbox = agent.outbox;
  const cell = h('td', { class: 'outbox num' });
  if (outbox && (outbox.reported_at || outbox.rows || outbox.bytes)) {
    cell.textContent = (outbox.rows || 0) + ' (' + formatBytes(outbox.bytes || 0) + ')';
    if (outbox.reported_at) {
      cell.setAttribute('title', 'frames not yet acknowledged, reported ' + formatTime(outbox.reported_at));
    }
  } else {
    cell.textContent = '—';
  }
  return cell;
}

function fillAgents(tbody, agents, counts) {
  clear(tbody);
  if (agents.length === 0) tbody.appendChild(emptyRow(COLUMNS.length, 'No agents.'));
  for (const a of agents) {
    const running = typeof a.running_attempts === 'number' ? a.running_attempts
      : (counts && counts[a.name]) || 0;
    tbody.appendChild(h('tr', { 'data-agent': a.name },
      h('td', { class: 'name' }, a.name),
      labelsCell(a),
      connectionCell(a),
      h('td', { class: 'version' }, a.version || '—'),
      outboxCell(a),
      h('td', { class: 'running num' }, String(running))));
  }
}
