// What a page owns while it is shown: its timers, listeners, event streams
// and terminals. The router disposes of the context when another page (or
// sign-in) replaces it, so nothing of an old page runs on, and `alive` tells
// an answer that comes back late that its page is gone.

export class PageContext {
  constructor() {
    this.alive = true;
    this._cleanups = [];
  }

  // fn runs once, when the page goes.
  onCleanup(fn) { this._cleanups.push(fn); }

  dispose() {
    this.alive = false;
    const cleanups = this._cleanups;
    this._cleanups = [];
    for (const fn of cleanups) {
      try { fn(); } catch (e) { /* the others still run */ }
    }
  }

  // target.addEventListener(type, fn) for as long as the page is shown.
  listen(target, type, fn) {
    target.addEventListener(type, fn);
    this.onCleanup(() => target.removeEventListener(type, fn));
  }

  // setInterval(fn, ms) for as long as the page is shown.
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    this.onCleanup(() => clearInterval(timer));
  }

  // A repeating loader: now() runs fn, then again `ms` after each run ends
  // (never two at once from the timer); stop() until the next now().
  poll(ms, fn) {
    let timer = null;
    let stopped = false;
    const tick = async () => {
      timer = null;
      if (!this.alive || stopped) return;
      await fn();
      if (this.alive && !stopped && !timer) timer = setTimeout(tick, ms);
    };
    const stop = () => { stopped = true; clearTimeout(timer); timer = null; };
    this.onCleanup(stop);
    return {
      now: () => { clearTimeout(timer); timer = null; stopped = false; return tick(); },
      stop,
    };
  }

  // fn at most once per `ms`: calls in between are merged into one after it.
  throttle(ms, fn) {
    let last = 0;
    let timer = null;
    this.onCleanup(() => clearTimeout(timer));
    return () => {
      if (timer) return;
      const wait = Math.max(0, last + ms - Date.now());
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        if (this.alive) fn();
      }, wait);
    };
  }

  // fn once `ms` after the last of a burst of calls (window resizes).
  debounce(ms, fn) {
    let timer = null;
    this.onCleanup(() => clearTimeout(timer));
    return () => {
      clearTimeout(timer);
      timer = setTimeout(() => { if (this.alive) fn(); }, ms);
    };
  }
}
