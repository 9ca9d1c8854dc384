// Requests to the hub's operator API on the UI's own origin (docs/protocol.md
// 11, 11.6): the session cookie goes along (credentials same-origin), every
// change carries X-CSRF-Token, an error answer becomes an ApiError with the
// API's own message, and a 401 means the session has ended.
//
// The session (session.js) gives the CSRF token and is told of a 401 through
// configureApi(), so that this module needs nothing of it.

// A refused or failed request: status 0 when the hub could not be reached;
// code and message from the answer's {"error": {code, message}}.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    // True once the failure was dealt with (a 401 went back to sign-in):
    // the page need not show it.
    this.handled = false;
  }
}

let csrfToken = () => null;
let onUnauthorized = () => {};

// csrfToken(): the session's token, or null; onUnauthorized(message): an API
// route answered 401 (the session ended, was revoked, or never was).
export function configureApi(hooks) {
  csrfToken = hooks.csrfToken;
  onUnauthorized = hooks.onUnauthorized;
}

async function errorFrom(res) {
  let data = null;
  try { data = JSON.parse(await res.text()); } catch (e) { data = null; }
  const err = data && data.error;
  return new ApiError(res.status, (err && err.code) || 'http_' + res.status,
    (err && err.message) || ('HTTP ' + res.status + (res.statusText ? ' ' + res.statusText : '')));
}

function requestInit(method, body) {
  const headers = { 'Accept': 'application/json' };
  const init = { method, credentials: 'same-origin', headers, cache: 'no-store' };
  const csrf = csrfToken();
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return init;
}

// Sends a request; answers the Response when it is a success. A 401 from an
// API route ends the session (the ApiError is then `handled`); /ui/session's
// own 401 is only an answer (not signed in, or a wrong token).
export async function request(method, path, body) {
  let res;
  try {
    res = await fetch(path, requestInit(method, body));
  } catch (e) {
    throw new ApiError(0, 'network', 'Cannot reach the hub (' + (e && e.message ? e.message : e) + ')');
  }
  if (res.ok) return res;
  const err = await errorFrom(res);
  if (res.status === 401 && !path.startsWith('/ui/session')) {
    onUnauthorized('Your session has ended: ' + err.message);
    err.handled = true;
  }
  throw err;
}

// A JSON request: answers the parsed body (null for an empty one).
export async function api(method, path, body) {
  const res = await request(method, path, body);
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(res.status, 'bad_answer', 'The hub answered something that is not JSON');
  }
}

// A task or run answer: the object itself, or {"task": {...}} / {"run": {...}}.
export function unwrap(data, key) {
  if (data && data.id === undefined && data[key] && typeof data[key] === 'object') return data[key];
  return data;
}

export function enc(s) { return encodeURIComponent(s); }
