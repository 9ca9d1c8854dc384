// A task's or run's Server-Sent Events (docs/protocol.md 11.1, 11.5) for as
// long as its page is shown, reporting "live", "reconnecting" or "ended".
//
// The browser's EventSource reconnects by itself with Last-Event-ID after a
// dropped connection. When it gives up instead (the hub refused the request:
// the session may have ended), we ask whether we are still signed in and, if
// so, reconnect ourselves with ?last_event_id= and a growing delay.

import { enc } from './api.js';
import { stillSignedIn } from './session.js';

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;

// onEvent(name, data) for each event of `names` whose data is JSON;
// onStatus(text) on every change of state. After "end" the stream closes.
export function followEvents(ctx, url, names, onEvent, onStatus) {
  let source = null;
  let lastId = null;
  let ended = false;
  let retryTimer = null;
  let retryDelay = FIRST_RETRY_MS;

  function connect() {
    retryTimer = null;
    if (!ctx.alive || ended) return;
    let u = url;
    if (lastId) u += (u.includes('?') ? '&' : '?') + 'last_event_id=' + enc(lastId);
    const mine = new EventSource(u);
    source = mine;
    mine.onopen = () => {
      retryDelay = FIRST_RETRY_MS;
      if (!ended) onStatus('live');
    };
    mine.onerror = () => {
      if (ended || mine !== source) return;
      onStatus('reconnecting');
      if (mine.readyState !== EventSource.CLOSED) return;  // the browser retries
      mine.close();
      source = null;
      stillSignedIn().then((ok) => {
        if (!ok || !ctx.alive || ended) return;
        retryTimer = setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
      });
    };
    for (const name of names) {
      mine.addEventListener(name, (ev) => {
        if (mine !== source || ended) return;
        if (ev.lastEventId) lastId = ev.lastEventId;
        let data = null;
        try { data = ev.data ? JSON.parse(ev.data) : {}; } catch (e) { data = null; }
        if (name === 'end') {
          ended = true;
          mine.close();
          onStatus('ended');
        }
        if (data !== null) onEvent(name, data);
      });
    }
  }

  connect();
  ctx.onCleanup(() => {
    ended = true;
    if (source) source.close();
    clearTimeout(retryTimer);
  });
}
