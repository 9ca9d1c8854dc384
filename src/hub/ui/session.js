// Who is signed in: the browser session of docs/protocol.md 11.6. Signing
// in trades an operator token for a session cookie (HttpOnly: the page never
// sees it); the answer's CSRF token is kept here, in memory only (never in
// storage, never in a URL), for api.js to send with every change.

import { api } from './api.js';

let current = null;  // {name, role, csrf_token, expires_at} while signed in
const endedListeners = [];

export function signedIn() { return current; }

export function csrfToken() { return current ? current.csrf_token || null : null; }

// A viewer may look, never change (docs/protocol.md 11.2).
export function canWrite() { return !!current && current.role !== 'viewer'; }

// fn(message) runs when the session ends other than by signing out here.
export function onSessionEnded(fn) { endedListeners.push(fn); }

// The hub said the session is gone (a 401): forget it and say why.
export function sessionEnded(message) {
  if (!current) return;
  current = null;
  for (const fn of endedListeners) fn(message);
}

// The cookie's live session, if there is one (the page was reloaded):
// answers it, or null.
export async function resumeSession() {
  try {
    current = await api('GET', '/ui/session');
  } catch (err) {
    if (err.status === 401) { current = null; return null; }
    throw err;
  }
  return current;
}

// Throws an ApiError (401 naming the token) when the hub refuses it.
export async function signIn(token) {
  current = await api('POST', '/ui/session', { token });
  return current;
}

// Signed out here whatever the hub answers: the cookie is the hub's to end.
export async function signOut() {
  try {
    await api('DELETE', '/ui/session');
  } catch (err) {
    /* gone already, or the hub is unreachable */
  }
  current = null;
}

// Is the session still there? Asked when the hub refused an event stream.
// False (and the session ended) on a 401; true otherwise, also when the hub
// cannot be reached (a reconnect will tell).
export async function stillSignedIn() {
  try {
    const answer = await api('GET', '/ui/session');
    if (current && answer && answer.csrf_token) current = answer;
    return true;
  } catch (err) {
    if (err.status !== 401) return true;
    sessionEnded('Your session has ended.');
    return false;
  }
}
