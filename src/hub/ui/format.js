// How the API's values read on the page: times, sizes, durations, commands,
// exit codes, labels. Pure functions of their arguments (text in, text out).

function pad(n, width = 2) { return String(n).padStart(width, '0'); }

// A Date for an ISO time, or null for none or one that does not parse.
export function parseTime(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  return isNaN(d.getTime()) ? null : d;
}

// "2026-11-22 05:12:00", in the browser's time zone.
export function formatTime(iso) {
  const d = parseTime(iso);
  if (!d) return iso ? String(iso) : '—';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// "05:12:00.123": the start of a line of output with #show-timestamps.
export function formatTimeOfDay(iso) {
  const d = parseTime(iso);
  if (!d) return '--:--:--.---';
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.` +
    pad(d.getMilliseconds(), 3);
}

export function formatBytes(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '—';
  if (n < 1024) return n + ' B';
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = -1;
  do { v /= 1024; u++; } while (v >= 1024 && u < units.length - 1);
  return (v < 10 ? v.toFixed(1) : Math.round(v)) + ' ' + units[u];
}

export function formatDuration(ms) {
  if (typeof ms !== 'number' || !isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return Math.round(ms) + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  const total = Math.floor(s);
  if (total < 3600) return Math.floor(total / 60) + ' m ' + pad(total % 60) + ' s';
  return Math.floor(total / 3600) + ' h ' + pad(Math.floor(total / 60) % 60) + ' m';
}

function shellQuote(a) {
  a = String(a);
  if (/^[A-Za-z0-9_/.,:=@%+-]+$/.test(a)) return a;
  return "'" + a.replace(/'/g, "'\\''") + "'";
}

// A task's command as a shell would read it ("sh -c '...'" for what the
// submit page sends).
export function commandText(command) {
  if (!command) return '';
  if (Array.isArray(command.argv)) {
    const argv = command.argv;
    if (argv.length === 3 && argv[0] === '/bin/sh' && argv[1] === '-c') {
      return 'sh -c ' + shellQuote(argv[2]);
    }
    return argv.map(shellQuote).join(' ');
  }
  if (typeof command.shell === 'string') return command.shell;
  if (Array.isArray(command)) return command.map(shellQuote).join(' ');
  return JSON.stringify(command);
}

// A final's exit code, or the signal that ended it.
export function exitText(final) {
  if (!final) return '—';
  if (typeof final.exit_code === 'number') return String(final.exit_code);
  if (final.signal) return 'signal ' + final.signal;
  return '—';
}

export function labelsText(labels) {
  if (!labels || typeof labels !== 'object') return '';
  return Object.keys(labels).sort().map((k) => k + '=' + labels[k]).join(', ');
}

// 3 for "t-...-a3"; 0 when the id has no attempt number.
export function attemptNumber(attemptId) {
  const m = /-a(\d+)$/.exec(String(attemptId || ''));
  return m ? Number(m[1]) : 0;
}

// A task's agent, or the selector of a pool task nobody took yet.
export function taskAgentText(task) {
  if (task.agent) return task.agent;
  return task.selector ? 'pool: ' + task.selector : '—';
}

// The agents a run is for: its selector, or the names it was given.
export function runTargetText(run) {
  if (run.selector) return run.selector;
  if (Array.isArray(run.agents) && run.agents.length) return run.agents.join(', ');
  return '—';
}
