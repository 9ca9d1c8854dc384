// Tether hub web UI: one page, routed by location.hash (docs/ui.md).
//
// Plain ES2017, no build step, no framework, no request to any other host.
// Everything the API answers (agent names, labels, commands, task output) is
// hostile input: it only ever reaches the page through textContent, text
// nodes or attribute values, never through innerHTML.
'use strict';

(function () {
  var MIB = 1048576;
  var TASK_PAGE_SIZE = 50;
  var AGENT_REFRESH_MS = 5000;
  var RUNS_REFRESH_MS = 5000;
  var RUN_REFETCH_MS = 500;
  var TASK_STATES = ['queued', 'dispatched', 'running', 'succeeded', 'failed', 'timed_out',
    'cancelled', 'rejected', 'lost', 'skipped'];
  var CANCELLABLE = { queued: true, dispatched: true, running: true };
  var DIM = '\x1b[2m';
  var UNDIM = '\x1b[22m';
  var HIDE_CURSOR = '\x1b[?25l';

  // In memory only: never in storage, never in a URL.
  var app = { session: null, csrf: null, page: null, booted: false };

  // ---------------------------------------------------------------- DOM

  function appendChildren(el, children) {
    for (var i = 0; i < children.length; i++) {
      var c = children[i];
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) { appendChildren(el, c); continue; }
      el.appendChild(typeof c === 'string' || typeof c === 'number'
        ? document.createTextNode(String(c)) : c);
    }
  }

  // h('a', {href: '#/x', class: 'y'}, 'text', child, ...): text is always a text node.
  function h(tag, props) {
    var el = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (k) {
        var v = props[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
        else if (v === true) el.setAttribute(k, '');
        else el.setAttribute(k, String(v));
      });
    }
    appendChildren(el, Array.prototype.slice.call(arguments, 2));
    return el;
  }

  function $(id) { return document.getElementById(id); }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  // Puts `child` into `slot` (present) or takes it out (absent): controls that
  // the contract says are "shown only while ..." are absent otherwise.
  function setPresent(slot, child, present) {
    if (present && child.parentNode !== slot) slot.appendChild(child);
    if (!present && child.parentNode === slot) slot.removeChild(child);
  }

  function tableWrap(table, label) {
    return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' }, table);
  }

  function headRow(names) {
    return h('thead', null, h('tr', null, names.map(function (n) {
      return h('th', { scope: 'col' }, n);
    })));
  }

  function emptyRow(colspan, text) {
    return h('tr', { class: 'empty' }, h('td', { colspan: String(colspan) }, text));
  }

  function enc(s) { return encodeURIComponent(s); }

  function stateClass(state) {
    return 'state state-' + String(state || 'unknown').replace(/[^a-z_]/g, '');
  }

  function stateBadge(state) {
    return h('span', { class: stateClass(state) }, state || '—');
  }

  // ---------------------------------------------------------------- formatting

  function pad(n, w) { return String(n).padStart(w || 2, '0'); }

  function parseTime(iso) {
    if (!iso) return null;
    var d = new Date(iso);
    return isNaN(d.getTime()) ? null : d;
  }

  function fmtTime(iso) {
    var d = parseTime(iso);
    if (!d) return iso ? String(iso) : '—';
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function timeEl(iso) {
    if (!iso) return '—';
    return h('time', { datetime: iso, title: iso }, fmtTime(iso));
  }

  function fmtStamp(iso) {
    var d = parseTime(iso);
    if (!d) return '--:--:--.---';
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' +
      pad(d.getMilliseconds(), 3);
  }

  function fmtBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '—';
    if (n < 1024) return n + ' B';
    var units = ['KiB', 'MiB', 'GiB', 'TiB'];
    var v = n, u = -1;
    do { v /= 1024; u++; } while (v >= 1024 && u < units.length - 1);
    return (v < 10 ? v.toFixed(1) : Math.round(v)) + ' ' + units[u];
  }

  function fmtDuration(ms) {
    if (typeof ms !== 'number' || !isFinite(ms) || ms < 0) return '—';
    if (ms < 1000) return Math.round(ms) + ' ms';
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    var total = Math.floor(s);
    if (total < 3600) return Math.floor(total / 60) + ' m ' + pad(total % 60) + ' s';
    return Math.floor(total / 3600) + ' h ' + pad(Math.floor(total / 60) % 60) + ' m';
  }

  function shellQuote(a) {
    a = String(a);
    if (/^[A-Za-z0-9_\/.,:=@%+-]+$/.test(a)) return a;
    return "'" + a.replace(/'/g, "'\\''") + "'";
  }

  function commandText(command) {
    if (!command) return '';
    if (Array.isArray(command.argv)) {
      var argv = command.argv;
      if (argv.length === 3 && argv[0] === '/bin/sh' && argv[1] === '-c') {
        return 'sh -c ' + shellQuote(argv[2]);
      }
      return argv.map(shellQuote).join(' ');
    }
    if (typeof command.shell === 'string') return command.shell;
    if (Array.isArray(command)) return command.map(shellQuote).join(' ');
    return JSON.stringify(command);
  }

  function exitText(final) {
    if (!final) return '—';
    if (typeof final.exit_code === 'number') return String(final.exit_code);
    if (final.signal) return 'signal ' + final.signal;
    return '—';
  }

  function labelsText(labels) {
    if (!labels || typeof labels !== 'object') return '';
    return Object.keys(labels).sort().map(function (k) { return k + '=' + labels[k]; }).join(', ');
  }

  function attemptNumber(attemptId) {
    var m = /-a(\d+)$/.exec(String(attemptId || ''));
    return m ? Number(m[1]) : 0;
  }

  // ---------------------------------------------------------------- API

  function ApiError(status, code, message) {
    var e = new Error(message);
    e.name = 'ApiError';
    e.status = status;
    e.code = code;
    return e;
  }

  async function errorFrom(res) {
    var data = null;
    try { data = JSON.parse(await res.text()); } catch (e) { data = null; }
    var err = data && data.error;
    return ApiError(res.status, (err && err.code) || 'http_' + res.status,
      (err && err.message) || ('HTTP ' + res.status + (res.statusText ? ' ' + res.statusText : '')));
  }

  function requestInit(method, body) {
    var headers = { 'Accept': 'application/json' };
    var init = { method: method, credentials: 'same-origin', headers: headers, cache: 'no-store' };
    if (method !== 'GET' && method !== 'HEAD' && app.csrf) headers['X-CSRF-Token'] = app.csrf;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return init;
  }

  // Sends a request; answers the parsed JSON (null for an empty body). A 401
  // from the API ends the session (back to sign-in); other failures throw an
  // ApiError carrying the API's error.message.
  async function rawFetch(method, path, body) {
    var res;
    try {
      res = await fetch(path, requestInit(method, body));
    } catch (e) {
      throw ApiError(0, 'network', 'Cannot reach the hub (' + (e && e.message ? e.message : e) + ')');
    }
    if (res.status === 401 && path.indexOf('/ui/session') !== 0) {
      var err401 = await errorFrom(res);
      sessionEnded('Your session has ended: ' + err401.message);
      err401.handled = true;
      throw err401;
    }
    return res;
  }

  async function api(method, path, body) {
    var res = await rawFetch(method, path, body);
    if (!res.ok) throw await errorFrom(res);
    if (res.status === 204) return null;
    var text = await res.text();
    if (!text) return null;
    try { return JSON.parse(text); } catch (e) {
      throw ApiError(res.status, 'bad_answer', 'The hub answered something that is not JSON');
    }
  }

  // A task or run answer: the object itself, or {"task": {...}} / {"run": {...}}.
  function one(data, key) {
    if (data && data.id === undefined && data[key] && typeof data[key] === 'object') return data[key];
    return data;
  }

  function showError(message) { $('error').textContent = message || ''; }
  function clearError() { showError(''); }

  function report(err) {
    if (err && err.handled) return;
    showError(err && err.message ? err.message : String(err));
  }

  function canWrite() { return !!app.session && app.session.role !== 'viewer'; }

  // Called when the events stream was refused: is the session still there?
  async function sessionAlive() {
    try {
      var res = await fetch('/ui/session', requestInit('GET'));
      if (res.status === 401) { sessionEnded('Your session has ended.'); return false; }
      if (res.ok) {
        var s = await res.json();
        if (s && s.csrf_token) app.csrf = s.csrf_token;
      }
      return true;
    } catch (e) {
      return true;
    }
  }

  // ---------------------------------------------------------------- page context

  function newContext() {
    var ctx = { alive: true, cleanups: [] };
    ctx.onCleanup = function (fn) { ctx.cleanups.push(fn); };
    ctx.dispose = function () {
      ctx.alive = false;
      ctx.cleanups.forEach(function (fn) { try { fn(); } catch (e) { /* keep going */ } });
      ctx.cleanups = [];
    };
    return ctx;
  }

  // A repeating loader: run(), then again `ms` after each completion.
  function poller(ctx, ms, fn) {
    var timer = null;
    var stopped = false;
    async function tick() {
      timer = null;
      if (!ctx.alive || stopped) return;
      await fn();
      if (ctx.alive && !stopped && !timer) timer = setTimeout(tick, ms);
    }
    ctx.onCleanup(function () { stopped = true; clearTimeout(timer); });
    return {
      now: function () { clearTimeout(timer); timer = null; stopped = false; return tick(); },
      stop: function () { stopped = true; clearTimeout(timer); timer = null; }
    };
  }

  // At most one call of fn per `ms`; calls in between are merged into one.
  function throttle(ctx, ms, fn) {
    var last = 0;
    var timer = null;
    ctx.onCleanup(function () { clearTimeout(timer); });
    return function () {
      if (timer) return;
      var wait = Math.max(0, last + ms - Date.now());
      timer = setTimeout(function () {
        timer = null;
        last = Date.now();
        if (ctx.alive) fn();
      }, wait);
    };
  }

  // An EventSource that reports "live" / "reconnecting" / "ended". The browser
  // reconnects by itself with Last-Event-ID; when it gives up (the hub refused
  // the request), we check the session and reconnect with ?last_event_id=.
  function liveEvents(ctx, url, names, onEvent, setLive) {
    var es = null;
    var lastId = null;
    var ended = false;
    var retryTimer = null;
    var retryDelay = 1000;

    function connect() {
      retryTimer = null;
      if (!ctx.alive || ended) return;
      var u = url;
      if (lastId) u += (u.indexOf('?') >= 0 ? '&' : '?') + 'last_event_id=' + enc(lastId);
      es = new EventSource(u);
      var mine = es;
      es.onopen = function () {
        retryDelay = 1000;
        if (!ended) setLive('live');
      };
      es.onerror = function () {
        if (ended || mine !== es) return;
        setLive('reconnecting');
        if (es.readyState === 2) {  // CLOSED: the browser will not retry
          es.close();
          es = null;
          sessionAlive().then(function (ok) {
            if (!ok || !ctx.alive || ended) return;
            retryTimer = setTimeout(connect, retryDelay);
            retryDelay = Math.min(retryDelay * 2, 30000);
          });
        }
      };
      names.forEach(function (name) {
        es.addEventListener(name, function (ev) {
          if (mine !== es || ended) return;
          if (ev.lastEventId) lastId = ev.lastEventId;
          var data = null;
          try { data = ev.data ? JSON.parse(ev.data) : {}; } catch (e) { data = null; }
          if (name === 'end') {
            ended = true;
            es.close();
            setLive('ended');
          }
          if (data !== null) onEvent(name, data);
        });
      });
    }

    connect();
    ctx.onCleanup(function () {
      ended = true;
      if (es) es.close();
      clearTimeout(retryTimer);
    });
  }

  // ---------------------------------------------------------------- terminals

  // xterm.js (3.x: Terminal.applyAddon(fit), term.fit(); 4 and later:
  // term.loadAddon(new FitAddon.FitAddon())) when /ui/xterm.js defined a
  // working Terminal; otherwise a small DOM terminal of our own
  // (PlainTerminal), so that output always shows.
  var fit3Applied = false;

  function createTerminal(container, label) {
    var T = window.Terminal;
    if (typeof T === 'function') {
      try {
        var modern = typeof T.prototype.loadAddon === 'function';
        var options = {
          scrollback: 50000,
          convertEol: false,
          disableStdin: true,
          cursorBlink: false,
          fontSize: 13,
          fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace'
        };
        var look = window.getComputedStyle(container);
        if (look.backgroundColor && look.color) {
          options.theme = { background: look.backgroundColor, foreground: look.color };
        }
        // 3.x draws on a canvas unless told; 4 and later use the DOM
        // renderer by default (a canvas or WebGL one is an addon).
        if (!modern) options.rendererType = 'dom';
        if (!modern && !fit3Applied && window.fit && typeof T.applyAddon === 'function') {
          T.applyAddon(window.fit);
          fit3Applied = true;
        }
        var term = new T(options);
        var fitter = null;
        if (modern && window.FitAddon) {
          var FitClass = typeof window.FitAddon === 'function' ? window.FitAddon : window.FitAddon.FitAddon;
          if (typeof FitClass === 'function') {
            fitter = new FitClass();
            term.loadAddon(fitter);
          }
        }
        container.classList.add('xterm-host');
        term.open(container);
        var fit = function () {
          try {
            if (fitter) fitter.fit();
            else if (typeof term.fit === 'function') term.fit();
          } catch (e) { /* not laid out (hidden) */ }
        };
        fit();
        term.write(HIDE_CURSOR);
        return {
          write: function (s) { term.write(s); },
          reset: function () { term.reset(); term.write(HIDE_CURSOR); },
          fit: fit,
          dispose: function () { try { term.dispose(); } catch (e) { /* gone */ } }
        };
      } catch (e) {
        clear(container);
        container.classList.remove('xterm-host');
        if (window.console) console.warn('xterm.js failed, using the plain terminal', e);
      }
    }
    return new PlainTerminal(container, label);
  }

  // The 16 colours, for mapping 256-colour and RGB SGR to the nearest class.
  var PALETTE = [[0, 0, 0], [205, 49, 49], [13, 188, 121], [229, 229, 16], [36, 114, 200],
    [188, 63, 188], [17, 168, 205], [229, 229, 229], [102, 102, 102], [241, 76, 76],
    [35, 209, 139], [245, 245, 67], [59, 142, 234], [214, 112, 214], [41, 184, 219],
    [255, 255, 255]];

  function nearestColor(r, g, b) {
    var best = 0, bestD = Infinity;
    for (var i = 0; i < PALETTE.length; i++) {
      var p = PALETTE[i];
      var d = (p[0] - r) * (p[0] - r) + (p[1] - g) * (p[1] - g) + (p[2] - b) * (p[2] - b);
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  function color256(n) {
    if (n < 16) return n;
    if (n < 232) {
      n -= 16;
      var steps = [0, 95, 135, 175, 215, 255];
      return nearestColor(steps[Math.floor(n / 36)], steps[Math.floor(n / 6) % 6], steps[n % 6]);
    }
    var v = 8 + (n - 232) * 10;
    return nearestColor(v, v, v);
  }

  // A minimal terminal: lines of cells, CR/LF/BS/TAB, SGR colours and
  // attributes, erase in line, cursor up/down/left/right/column. Other escape
  // sequences are consumed and ignored. Rendered as one div per line.
  function PlainTerminal(container, label) {
    this.el = h('div', { class: 'plain-term', tabindex: '0', role: 'region', 'aria-label': label });
    container.appendChild(this.el);
    this.maxLines = 50000;
    this.renderTimer = null;
    this.reset();
  }

  PlainTerminal.prototype.reset = function () {
    this.lines = [{ chars: [], styles: [], el: null }];
    this.row = 0;
    this.col = 0;
    this.attr = { b: false, d: false, i: false, u: false, s: false, inv: false, fg: -1, bg: -1 };
    this.style = '';
    this.mode = 'text';
    this.params = '';
    this.rendered = 0;     // lines[0 .. rendered) have an element
    this.dirty = [];
    this.removed = [];
    clear(this.el);
    this.schedule();
  };

  PlainTerminal.prototype.fit = function () {};
  PlainTerminal.prototype.dispose = function () { clearTimeout(this.renderTimer); };

  PlainTerminal.prototype.schedule = function () {
    if (this.renderTimer) return;
    var self = this;
    this.renderTimer = setTimeout(function () { self.renderTimer = null; self.render(); }, 20);
  };

  PlainTerminal.prototype.touch = function (line) {
    if (!line.dirty) { line.dirty = true; this.dirty.push(line); }
  };

  PlainTerminal.prototype.lineFeed = function () {
    this.row++;
    if (this.row >= this.lines.length) {
      this.lines.push({ chars: [], styles: [], el: null });
      if (this.lines.length > this.maxLines + 1000) {
        var n = this.lines.length - this.maxLines;
        var gone = this.lines.splice(0, n);
        for (var i = 0; i < gone.length; i++) if (gone[i].el) this.removed.push(gone[i].el);
        this.rendered = Math.max(0, this.rendered - n);
        this.row -= n;
      }
    }
  };

  PlainTerminal.prototype.put = function (ch) {
    var line = this.lines[this.row];
    while (line.chars.length < this.col) { line.chars.push(' '); line.styles.push(''); }
    line.chars[this.col] = ch;
    line.styles[this.col] = this.style;
    this.col++;
    this.touch(line);
  };

  PlainTerminal.prototype.updateStyle = function () {
    var a = this.attr;
    var fg = a.fg, bg = a.bg;
    var cls = [];
    if (a.inv) { var t = fg; fg = bg; bg = t; if (fg < 0 && bg < 0) cls.push('t-inv'); else { if (fg < 0) fg = 0; if (bg < 0) bg = 7; } }
    if (a.b) cls.push('t-b');
    if (a.d) cls.push('t-d');
    if (a.i) cls.push('t-i');
    if (a.u) cls.push('t-u');
    if (a.s) cls.push('t-s');
    if (fg >= 0) cls.push('t-f' + fg);
    if (bg >= 0) cls.push('t-g' + bg);
    this.style = cls.join(' ');
  };

  PlainTerminal.prototype.sgr = function (nums) {
    var a = this.attr;
    if (!nums.length) nums = [0];
    for (var i = 0; i < nums.length; i++) {
      var n = nums[i];
      if (n === 0) { a.b = a.d = a.i = a.u = a.s = a.inv = false; a.fg = a.bg = -1; }
      else if (n === 1) a.b = true;
      else if (n === 2) a.d = true;
      else if (n === 3) a.i = true;
      else if (n === 4) a.u = true;
      else if (n === 7) a.inv = true;
      else if (n === 9) a.s = true;
      else if (n === 22) a.b = a.d = false;
      else if (n === 23) a.i = false;
      else if (n === 24) a.u = false;
      else if (n === 27) a.inv = false;
      else if (n === 29) a.s = false;
      else if (n >= 30 && n <= 37) a.fg = n - 30;
      else if (n === 39) a.fg = -1;
      else if (n >= 40 && n <= 47) a.bg = n - 40;
      else if (n === 49) a.bg = -1;
      else if (n >= 90 && n <= 97) a.fg = n - 90 + 8;
      else if (n >= 100 && n <= 107) a.bg = n - 100 + 8;
      else if (n === 38 || n === 48) {
        var c = -1;
        if (nums[i + 1] === 5) { c = color256(nums[i + 2] || 0); i += 2; }
        else if (nums[i + 1] === 2) { c = nearestColor(nums[i + 2] || 0, nums[i + 3] || 0, nums[i + 4] || 0); i += 4; }
        if (c >= 0) { if (n === 38) a.fg = c; else a.bg = c; }
      }
    }
    this.updateStyle();
  };

  PlainTerminal.prototype.csi = function (params, final) {
    if (params.charAt(0) === '?' || params.charAt(0) === '>' || params.charAt(0) === '=') return;
    var nums = params === '' ? [] : params.split(/[;:]/).map(function (p) { return parseInt(p, 10) || 0; });
    var n = nums[0] || 1;
    var line = this.lines[this.row];
    switch (final) {
      case 'm': this.sgr(nums); break;
      case 'K': {
        var mode = nums[0] || 0;
        if (mode === 0) { line.chars.length = Math.min(line.chars.length, this.col); line.styles.length = line.chars.length; }
        else if (mode === 1) { for (var i = 0; i <= this.col && i < line.chars.length; i++) { line.chars[i] = ' '; line.styles[i] = ''; } }
        else { line.chars = []; line.styles = []; }
        this.touch(line);
        break;
      }
      case 'A': this.row = Math.max(0, this.row - n); break;
      case 'B': this.row = Math.min(this.lines.length - 1, this.row + n); break;
      case 'C': this.col += n; break;
      case 'D': this.col = Math.max(0, this.col - n); break;
      case 'E': for (var e = 0; e < n; e++) this.lineFeed(); this.col = 0; break;
      case 'F': this.row = Math.max(0, this.row - n); this.col = 0; break;
      case 'G': this.col = Math.max(0, n - 1); break;
      default: break;  // cursor addressing, scrolling regions, ...: not for a log view
    }
  };

  PlainTerminal.prototype.write = function (str) {
    for (var i = 0; i < str.length; i++) {
      var ch = str.charAt(i);
      var code = str.charCodeAt(i);
      switch (this.mode) {
        case 'text':
          if (code >= 0x20 && code !== 0x7f) {
            if (code >= 0xd800 && code <= 0xdbff && i + 1 < str.length) { ch = str.substr(i, 2); i++; }
            this.put(ch);
          } else if (code === 0x0a || code === 0x0b || code === 0x0c) this.lineFeed();
          else if (code === 0x0d) this.col = 0;
          else if (code === 0x08) this.col = Math.max(0, this.col - 1);
          else if (code === 0x09) {
            var next = (Math.floor(this.col / 8) + 1) * 8;
            while (this.col < next) this.put(' ');
          } else if (code === 0x1b) this.mode = 'esc';
          break;
        case 'esc':
          if (ch === '[') { this.mode = 'csi'; this.params = ''; }
          else if (ch === ']') this.mode = 'osc';
          else if (ch === 'P' || ch === 'X' || ch === '^' || ch === '_') this.mode = 'str';
          else if (code >= 0x20 && code <= 0x2f) this.mode = 'esc2';
          else this.mode = 'text';
          break;
        case 'esc2':
          this.mode = 'text';
          break;
        case 'csi':
          if (code >= 0x30 && code <= 0x3f) {
            if (this.params.length < 64) this.params += ch;
          } else if (code >= 0x40 && code <= 0x7e) {
            this.mode = 'text';
            this.csi(this.params, ch);
          } else if (code < 0x20 || code > 0x7e) {
            this.mode = 'text';  // malformed: drop it
            if (code === 0x1b) this.mode = 'esc';
          }
          break;
        case 'osc':
          if (code === 0x07) this.mode = 'text';
          else if (code === 0x1b) this.mode = 'stresc';
          break;
        case 'str':
          if (code === 0x1b) this.mode = 'stresc';
          break;
        case 'stresc':
          this.mode = ch === '\\' ? 'text' : 'str';
          break;
        default:
          this.mode = 'text';
      }
    }
    this.schedule();
  };

  PlainTerminal.prototype.fillLine = function (line) {
    var el = line.el;
    clear(el);
    var chars = line.chars, styles = line.styles;
    var i = 0;
    while (i < chars.length) {
      var style = styles[i];
      var j = i;
      while (j < chars.length && styles[j] === style) j++;
      var text = chars.slice(i, j).join('');
      el.appendChild(style ? h('span', { class: style }, text) : document.createTextNode(text));
      i = j;
    }
  };

  PlainTerminal.prototype.render = function () {
    var el = this.el;
    var atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    var i;
    for (i = 0; i < this.removed.length; i++) {
      if (this.removed[i].parentNode === el) el.removeChild(this.removed[i]);
    }
    this.removed = [];
    var dirty = this.dirty;
    this.dirty = [];
    for (i = 0; i < dirty.length; i++) {
      dirty[i].dirty = false;
      if (dirty[i].el) this.fillLine(dirty[i]);
    }
    var frag = document.createDocumentFragment();
    // The last line stays unrendered while empty: output that ends with a
    // newline shows no blank line after it.
    var upto = this.lines.length;
    var last = this.lines[upto - 1];
    if (last && !last.el && last.chars.length === 0) upto--;
    for (i = this.rendered; i < upto; i++) {
      var line = this.lines[i];
      line.dirty = false;
      line.el = h('div', { class: 'ln' });
      this.fillLine(line);
      frag.appendChild(line.el);
    }
    if (upto > this.rendered) this.rendered = upto;
    el.appendChild(frag);
    if (atBottom) el.scrollTop = el.scrollHeight;
  };

  // ---------------------------------------------------------------- routing

  function parseRoute() {
    var hash = location.hash.replace(/^#/, '');
    var q = hash.indexOf('?');
    if (q >= 0) hash = hash.slice(0, q);
    var parts = hash.split('/').filter(function (p) { return p !== ''; }).map(function (p) {
      try { return decodeURIComponent(p); } catch (e) { return p; }
    });
    if (parts.length === 0 || (parts[0] === 'agents' && parts.length === 1)) return { page: 'agents' };
    if (parts[0] === 'tasks' && parts.length === 1) return { page: 'tasks' };
    if (parts[0] === 'tasks' && parts.length === 2) return { page: 'task', id: parts[1] };
    if (parts[0] === 'runs' && parts.length === 1) return { page: 'runs' };
    if (parts[0] === 'runs' && parts.length === 2) return { page: 'run', id: parts[1] };
    if (parts[0] === 'submit' && parts.length === 1) return { page: 'submit' };
    return { page: 'notfound' };
  }

  var PAGES = {
    agents: renderAgents,
    tasks: renderTasks,
    task: renderTask,
    runs: renderRuns,
    run: renderRun,
    submit: renderSubmit,
    notfound: renderNotFound
  };

  var NAV_OF = { agents: 'nav-agents', tasks: 'nav-tasks', task: 'nav-tasks', runs: 'nav-runs',
    run: 'nav-runs', submit: 'nav-submit' };

  function disposePage() {
    if (app.page) { app.page.dispose(); app.page = null; }
  }

  function route(moveFocus) {
    if (!app.session) return;
    disposePage();
    clearError();
    var r = parseRoute();
    var main = $('main');
    clear(main);
    ['nav-agents', 'nav-tasks', 'nav-runs', 'nav-submit'].forEach(function (id) {
      var a = $(id);
      if (!a) return;
      if (NAV_OF[r.page] === id) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    });
    var ctx = newContext();
    app.page = ctx;
    PAGES[r.page](ctx, main, r);
    if (moveFocus) {
      var h1 = main.querySelector('h1');
      if (h1) h1.focus();
    }
  }

  function heading(text) {
    document.title = text + ' · Tether';
    return h('h1', { tabindex: '-1' }, text);
  }

  // ---------------------------------------------------------------- agents page

  var agentSelector = '';

  function renderAgents(ctx, main) {
    var input = h('input', {
      id: 'agent-selector', type: 'text', spellcheck: 'false', autocapitalize: 'off',
      autocomplete: 'off', placeholder: 'role=web,region in (eu,us)',
      'aria-describedby': 'agent-selector-help'
    });
    input.value = agentSelector;
    var form = h('form', { class: 'toolbar', role: 'search', novalidate: true },
      h('label', { for: 'agent-selector' }, 'Selector'),
      input,
      h('button', { type: 'submit', class: 'secondary' }, 'Apply'),
      h('span', { id: 'agent-selector-help', class: 'help' },
        'Labels to match, e.g. role=web,!canary. Empty: every agent.'));
    var tbody = h('tbody');
    var table = h('table', { id: 'agents-table' },
      h('caption', { class: 'visually-hidden' }, 'Agents'),
      headRow(['Name', 'Labels', 'Connection', 'Version', 'Outbox', 'Running']),
      tbody);
    var summary = h('p', { class: 'muted summary' });
    main.appendChild(heading('Agents'));
    main.appendChild(form);
    main.appendChild(tableWrap(table, 'Agents'));
    main.appendChild(summary);

    var seq = 0;
    var loader = poller(ctx, AGENT_REFRESH_MS, async function () {
      var my = ++seq;
      var sel = agentSelector.trim();
      try {
        var data = await api('GET', '/api/v1/agents' + (sel ? '?selector=' + enc(sel) : ''));
        var agents = (data && data.agents) || [];
        var counts = null;
        if (agents.some(function (a) { return typeof a.running_attempts !== 'number'; })) {
          counts = await runningCounts();
        }
        if (!ctx.alive || my !== seq) return;
        fillAgents(tbody, agents, counts);
        summary.textContent = agents.length + (agents.length === 1 ? ' agent' : ' agents') +
          (sel ? ' matching ' + sel : '') + ', ' +
          agents.filter(function (a) { return a.connected; }).length + ' connected. Updated ' +
          fmtTime(new Date().toISOString()) + '.';
        input.removeAttribute('aria-invalid');
        clearError();
      } catch (err) {
        if (!ctx.alive || my !== seq) return;
        report(err);
        if (err.status === 400) {
          input.setAttribute('aria-invalid', 'true');
          clear(tbody);
          tbody.appendChild(emptyRow(6, 'Fix the selector to list agents.'));
          summary.textContent = '';
          loader.stop();
        }
      }
    });

    // Enter fires both change and submit: one request per new selector.
    var applied = agentSelector;
    function apply() {
      if (input.value === applied) return;
      applied = input.value;
      agentSelector = input.value;
      loader.now();
    }
    form.addEventListener('submit', function (ev) { ev.preventDefault(); apply(); });
    input.addEventListener('change', apply);
    loader.now();
  }

  async function runningCounts() {
    var data = await api('GET', '/api/v1/tasks?state=running&limit=1000');
    var counts = {};
    ((data && data.tasks) || []).forEach(function (t) {
      counts[t.agent] = (counts[t.agent] || 0) + 1;
    });
    return counts;
  }

  function fillAgents(tbody, agents, counts) {
    var rows = agents.map(function (a) {
      var labels = a.labels && typeof a.labels === 'object' ? a.labels : {};
      var keys = Object.keys(labels).sort();
      var labelCell = h('td', { class: 'labels' });
      if (keys.length === 0) labelCell.appendChild(h('span', { class: 'muted' }, '—'));
      keys.forEach(function (k, i) {
        if (i) labelCell.appendChild(document.createTextNode(' '));
        labelCell.appendChild(h('span', { class: 'chip' }, k + '=' + labels[k]));
      });
      var titleParts = [];
      if (a.hub_labels && Object.keys(a.hub_labels).length) titleParts.push('set on the hub: ' + labelsText(a.hub_labels));
      if (a.reported_labels && Object.keys(a.reported_labels).length) titleParts.push('reported: ' + labelsText(a.reported_labels));
      if (titleParts.length) labelCell.setAttribute('title', titleParts.join('; '));

      var connCell = h('td', { class: 'connected' });
      if (a.connected) {
        connCell.appendChild(h('span', { class: 'dot dot-on', 'aria-hidden': 'true' }));
        connCell.appendChild(document.createTextNode('connected'));
      } else {
        connCell.appendChild(h('span', { class: 'dot dot-off', 'aria-hidden': 'true' }));
        connCell.appendChild(document.createTextNode('since ' + fmtTime(a.last_seen_at || a.created_at)));
      }

      var outbox = a.outbox;
      var outboxCell = h('td', { class: 'outbox num' });
      if (outbox && (outbox.reported_at || outbox.rows || outbox.bytes)) {
        outboxCell.textContent = (outbox.rows || 0) + ' (' + fmtBytes(outbox.bytes || 0) + ')';
        if (outbox.reported_at) outboxCell.setAttribute('title', 'frames not yet acknowledged, reported ' + fmtTime(outbox.reported_at));
      } else {
        outboxCell.textContent = '—';
      }

      var running = typeof a.running_attempts === 'number' ? a.running_attempts
        : (counts && counts[a.name]) || 0;
      return h('tr', { 'data-agent': a.name },
        h('td', { class: 'name' }, a.name),
        labelCell,
        connCell,
        h('td', { class: 'version' }, a.version || '—'),
        outboxCell,
        h('td', { class: 'running num' }, String(running)));
    });
    clear(tbody);
    if (rows.length === 0) tbody.appendChild(emptyRow(6, 'No agents.'));
    rows.forEach(function (r) { tbody.appendChild(r); });
  }

  // ---------------------------------------------------------------- tasks page

  var tasksStateFilter = '';

  function renderTasks(ctx, main) {
    var select = h('select', { id: 'task-state' },
      h('option', { value: '' }, 'All states'),
      TASK_STATES.map(function (s) { return h('option', { value: s }, s); }));
    select.value = tasksStateFilter;
    var refresh = h('button', { type: 'button', id: 'tasks-refresh', class: 'secondary' }, 'Refresh');
    var tbody = h('tbody');
    var table = h('table', { id: 'tasks-table' },
      h('caption', { class: 'visually-hidden' }, 'Tasks, newest first'),
      headRow(['Task', 'Agent', 'State', 'Exit code', 'Command', 'Created']),
      tbody);
    var more = h('button', { type: 'button', id: 'tasks-more', class: 'secondary' }, 'Load more');
    var moreSlot = h('div', { class: 'more' });
    main.appendChild(heading('Tasks'));
    main.appendChild(h('div', { class: 'toolbar' },
      h('label', { for: 'task-state' }, 'State'), select, refresh));
    main.appendChild(tableWrap(table, 'Tasks'));
    main.appendChild(moreSlot);

    var lastId = null;
    var seen = {};
    var seq = 0;

    async function load(reset) {
      var my = ++seq;
      var params = new URLSearchParams();
      params.set('limit', String(TASK_PAGE_SIZE));
      if (tasksStateFilter) params.set('state', tasksStateFilter);
      if (!reset && lastId) params.set('before', lastId);
      more.disabled = true;
      try {
        var data = await api('GET', '/api/v1/tasks?' + params.toString());
        if (!ctx.alive || my !== seq) return;
        var tasks = (data && data.tasks) || [];
        if (reset) { clear(tbody); seen = {}; lastId = null; }
        var firstNew = null;
        tasks.forEach(function (t) {
          if (seen[t.id]) return;
          seen[t.id] = true;
          var row = taskRow(t);
          if (!firstNew) firstNew = row;
          tbody.appendChild(row);
        });
        if (tasks.length) lastId = tasks[tasks.length - 1].id;
        if (!tbody.firstChild) tbody.appendChild(emptyRow(6, 'No tasks.'));
        var hadFocus = document.activeElement === more;
        setPresent(moreSlot, more, tasks.length >= TASK_PAGE_SIZE);
        if (hadFocus && more.parentNode !== moreSlot && firstNew) firstNew.querySelector('a').focus();
        clearError();
      } catch (err) {
        if (ctx.alive && my === seq) report(err);
      } finally {
        more.disabled = false;
      }
    }

    select.addEventListener('change', function () {
      tasksStateFilter = select.value;
      load(true);
    });
    refresh.addEventListener('click', function () { load(true); });
    more.addEventListener('click', function () { load(false); });
    load(true);
  }

  function taskRow(t) {
    var agent = t.agent ? t.agent : (t.selector ? 'pool: ' + t.selector : '—');
    var cmd = commandText(t.command);
    return h('tr', { 'data-task': t.id },
      h('td', { class: 'id' }, h('a', { href: '#/tasks/' + enc(t.id) }, t.id)),
      h('td', { class: 'agent' }, agent),
      h('td', { class: 'state' }, stateBadge(t.state)),
      h('td', { class: 'exit-code num' }, exitText(t.final)),
      h('td', { class: 'command', title: cmd }, h('code', null, cmd)),
      h('td', { class: 'created' }, timeEl(t.created_at)));
  }

  // ---------------------------------------------------------------- task page

  function detailList(pairs) {
    var dl = h('dl', { class: 'details' });
    pairs.forEach(function (p) {
      dl.appendChild(h('div', null, h('dt', null, p[0]), h('dd', null, p[1])));
    });
    return dl;
  }

  function renderTask(ctx, main, r) {
    var id = r.id;
    main.appendChild(heading('Task ' + id));
    main.appendChild(h('p', { class: 'muted' }, h('a', { href: '#/tasks' }, '← All tasks')));
    var body = h('div');
    main.appendChild(body);
    load();

    async function load() {
      var task;
      try {
        task = one(await api('GET', '/api/v1/tasks/' + enc(id)), 'task');
      } catch (err) {
        if (ctx.alive) {
          report(err);
          body.appendChild(h('p', null, 'This task cannot be shown.'));
        }
        return;
      }
      if (!ctx.alive) return;
      showTask(ctx, body, id, task);
    }
  }

  function showTask(ctx, body, id, task) {
    var stateEl = h('span', { id: 'task-state', class: stateClass(task.state) }, task.state);
    var exitEl = h('span', { id: 'task-exit-code' }, exitText(task.final));
    var liveEl = h('span', { id: 'live-status', role: 'status', class: 'live' }, 'connecting');
    var attemptEl = h('span', { id: 'task-attempt' },
      task.current_attempt ? 'attempt ' + (attemptNumber(task.current_attempt) || task.current_attempt) : '—');
    var noteEl = h('span', { id: 'task-note' },
      (task.final && task.final.error) || task.verification_error || '—');
    var agentText = task.agent ? task.agent : (task.selector ? 'pool: ' + task.selector : '—');

    body.appendChild(detailList([
      ['State', stateEl],
      ['Exit code', exitEl],
      ['Output', liveEl],
      ['Agent', agentText],
      ['Command', h('code', { class: 'command' }, commandText(task.command))],
      ['Attempt', attemptEl],
      ['Created', timeEl(task.created_at)],
      ['Note', noteEl]
    ]));

    // Controls.
    var cancelBtn = h('button', { type: 'button', id: 'cancel-task', class: 'danger' }, 'Cancel task');
    var cancelSlot = h('span', { class: 'slot' });
    var tsBox = h('input', { type: 'checkbox', id: 'show-timestamps' });
    var earlierBtn = h('button', { type: 'button', id: 'load-earlier', class: 'secondary' }, 'Load earlier output');
    var earlierSlot = h('span', { class: 'slot' });
    var outputUrl = function (stream) { return '/api/v1/tasks/' + enc(id) + '/output?stream=' + stream; };
    var safeName = String(id).replace(/[^A-Za-z0-9._-]/g, '_');
    body.appendChild(h('div', { class: 'toolbar' },
      cancelSlot,
      h('span', { class: 'check' }, tsBox, h('label', { for: 'show-timestamps' }, 'Show timestamps')),
      earlierSlot,
      h('a', { id: 'download-stdout', href: outputUrl('stdout'), download: safeName + '.stdout' }, 'Download stdout'),
      h('a', { id: 'download-stderr', href: outputUrl('stderr'), download: safeName + '.stderr' }, 'Download stderr')));
    var attemptNote = h('p', { class: 'muted attempt-note', 'aria-live': 'polite' });
    body.appendChild(attemptNote);

    var panes = h('div', { class: 'terminals' });
    body.appendChild(panes);
    var streams = {};
    ['stdout', 'stderr'].forEach(function (name) {
      var box = h('div', { id: 'terminal-' + name, class: 'terminal' });
      panes.appendChild(h('section', { class: 'pane', 'aria-labelledby': 'heading-' + name },
        h('h2', { id: 'heading-' + name }, name), box));
      streams[name] = {
        name: name,
        term: createTerminal(box, name + ' of task ' + id),
        chunks: [],        // {offset, bytes: Uint8Array, storedAt} or {offset, gap: N, storedAt}
        start: null,       // offset of the first byte held
        next: 0,           // offset written up to
        decoder: new TextDecoder('utf-8'),
        lineStart: true,   // the next text begins a line
        stamp: '',         // the timestamp written at the start of this line
        pendingCr: false,  // the last text ended with CR: stamp again unless LF follows
        generation: 0
      };
    });
    ctx.onCleanup(function () {
      Object.keys(streams).forEach(function (k) { streams[k].term.dispose(); });
    });
    var onResize = debounce(function () {
      Object.keys(streams).forEach(function (k) { streams[k].term.fit(); });
    }, 150);
    window.addEventListener('resize', onResize);
    ctx.onCleanup(function () { window.removeEventListener('resize', onResize); });

    var state = task.state;
    var cancelling = false;
    function updateCancel() {
      setPresent(cancelSlot, cancelBtn, canWrite() && !!CANCELLABLE[state]);
      cancelBtn.disabled = cancelling;
    }
    function setState(s) {
      if (!s) return;
      state = s;
      stateEl.textContent = s;
      stateEl.className = stateClass(s);
      updateCancel();
    }
    updateCancel();

    cancelBtn.addEventListener('click', async function () {
      cancelling = true;
      updateCancel();
      cancelBtn.textContent = 'Cancelling…';
      try {
        var answer = one(await api('POST', '/api/v1/tasks/' + enc(id) + '/cancel'), 'task');
        clearError();
        // Stays disabled until the task ends (a status event) and it goes.
        cancelBtn.textContent = 'Cancel requested';
        if (answer && answer.state) setState(answer.state);
      } catch (err) {
        report(err);
        cancelling = false;
        cancelBtn.textContent = 'Cancel task';
        updateCancel();
      }
    });

    // ---- output

    var encoder = new TextEncoder();
    var showTs = false;

    // Writes decoded text: LF becomes CR LF (pipes carry bare LF and
    // convertEol is off); with timestamps, each line starts with the time
    // its first byte was stored, written again after a lone CR (a progress
    // bar redrawing its line) so that the redraw does not overwrite it.
    function emitText(s, text, storedAt) {
      if (!text) return;
      var out = '';
      var i = 0;
      if (s.pendingCr) {
        s.pendingCr = false;
        if (text.charAt(0) !== '\n') out += s.stamp;
      }
      while (i < text.length) {
        if (s.lineStart) {
          s.stamp = showTs ? DIM + fmtStamp(storedAt) + UNDIM + ' ' : '';
          out += s.stamp;
          s.lineStart = false;
        }
        var nl = text.indexOf('\n', i);
        var line = nl < 0 ? text.slice(i) : text.slice(i, nl);
        if (s.stamp) line = line.replace(/\r(?!$)/g, '\r' + s.stamp);
        if (nl < 0) {
          out += line;
          if (s.stamp && line.charAt(line.length - 1) === '\r') s.pendingCr = true;
          break;
        }
        out += line + '\r\n';
        s.lineStart = true;
        i = nl + 1;
      }
      s.term.write(out);
    }

    function writeChunk(s, chunk) {
      if (chunk.gap !== undefined) {
        emitText(s, s.decoder.decode(), chunk.storedAt);  // flush a split character
        s.pendingCr = false;
        if (!s.lineStart) { s.term.write('\r\n'); s.lineStart = true; }
        var n = chunk.gap;
        s.term.write((showTs ? DIM + fmtStamp(chunk.storedAt) + UNDIM + ' ' : '') + DIM + '[' + n +
          (n === 1 ? ' byte' : ' bytes') + ' lost]' + UNDIM + '\r\n');
        return;
      }
      emitText(s, s.decoder.decode(chunk.bytes, { stream: true }), chunk.storedAt);
    }

    function redraw(s) {
      s.term.reset();
      s.decoder = new TextDecoder('utf-8');
      s.lineStart = true;
      s.pendingCr = false;
      s.stamp = '';
      for (var i = 0; i < s.chunks.length; i++) writeChunk(s, s.chunks[i]);
    }

    function resetStream(s) {
      s.chunks = [];
      s.start = null;
      s.next = 0;
      s.generation++;
      redraw(s);
    }

    function updateEarlier() {
      var need = Object.keys(streams).some(function (k) { return streams[k].start > 0; });
      setPresent(earlierSlot, earlierBtn, need);
    }

    // Adds bytes [offset, offset + bytes.length) (or a gap of that length),
    // skipping what is already there, so replays never double.
    function addChunk(s, offset, bytes, gapLength, storedAt) {
      var length = bytes ? bytes.length : gapLength;
      if (typeof offset !== 'number' || !(length > 0)) return;
      if (s.start === null) {
        s.start = offset;
        s.next = offset;
        updateEarlier();
      }
      var end = offset + length;
      if (end <= s.next) return;
      if (offset < s.next) {
        if (bytes) bytes = bytes.subarray(s.next - offset);
        length = end - s.next;
        offset = s.next;
      } else if (offset > s.next) {
        // Bytes the stream never delivered to us: say so rather than join.
        var hole = { offset: s.next, gap: offset - s.next, storedAt: storedAt };
        s.chunks.push(hole);
        writeChunk(s, hole);
      }
      var chunk = bytes ? { offset: offset, bytes: bytes, storedAt: storedAt }
        : { offset: offset, gap: length, storedAt: storedAt };
      s.chunks.push(chunk);
      s.next = end;
      writeChunk(s, chunk);
    }

    var shownAttempt = null;
    var shownNumber = 0;
    var minNumber = attemptNumber(task.current_attempt);

    function acceptAttempt(attemptId) {
      if (!attemptId || attemptId === shownAttempt) return true;
      var n = attemptNumber(attemptId);
      if (n && n < Math.max(shownNumber, minNumber)) return false;  // an older attempt's output
      var switching = shownAttempt !== null;
      shownAttempt = attemptId;
      shownNumber = n;
      attemptEl.textContent = 'attempt ' + (n || attemptId);
      if (switching) {
        Object.keys(streams).forEach(function (k) { resetStream(streams[k]); });
        updateEarlier();
        attemptNote.textContent = 'Output of attempt ' + (n || attemptId) + ' (the earlier attempt ended without a result).';
      } else if (n > 1) {
        attemptNote.textContent = 'Output of attempt ' + n + '.';
      }
      return true;
    }

    function decodeData(ev) {
      if (typeof ev.data !== 'string') return null;
      if (ev.encoding === 'base64') {
        var bin;
        try { bin = atob(ev.data); } catch (e) { return null; }
        var bytes = new Uint8Array(bin.length);
        for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        return bytes;
      }
      return encoder.encode(ev.data);
    }

    function onEvent(name, ev) {
      if (name === 'status') {
        setState(ev.state);
        if (ev.note) noteEl.textContent = ev.note;
      } else if (name === 'output' || name === 'gap') {
        var s = streams[ev.stream];
        if (!s || !acceptAttempt(ev.attempt_id)) return;
        if (name === 'output') {
          var bytes = decodeData(ev);
          if (bytes) addChunk(s, ev.offset, bytes, 0, ev.stored_at);
        } else {
          addChunk(s, ev.offset, null, ev.length, ev.stored_at);
        }
      } else if (name === 'final') {
        var n = attemptNumber(ev.attempt_id);
        if (n && n < Math.max(shownNumber, minNumber)) return;
        exitEl.textContent = exitText(ev);
        if (ev.error) noteEl.textContent = ev.error;
        else if (ev.verification_error) noteEl.textContent = ev.verification_error;
      } else if (name === 'end') {
        refreshDetails();
      }
    }

    async function refreshDetails() {
      try {
        var t = one(await api('GET', '/api/v1/tasks/' + enc(id)), 'task');
        if (!ctx.alive || !t) return;
        setState(t.state);
        if (t.final) exitEl.textContent = exitText(t.final);
      } catch (err) {
        if (ctx.alive) report(err);
      }
    }

    tsBox.addEventListener('change', function () {
      showTs = tsBox.checked;
      Object.keys(streams).forEach(function (k) { redraw(streams[k]); });
    });

    earlierBtn.addEventListener('click', async function () {
      earlierBtn.disabled = true;
      earlierBtn.textContent = 'Loading…';
      try {
        var names = Object.keys(streams).filter(function (k) { return streams[k].start > 0; });
        for (var i = 0; i < names.length; i++) {
          var s = streams[names[i]];
          var gen = s.generation;
          var upto = s.start;
          var from = Math.max(0, upto - MIB);
          var url = '/api/v1/tasks/' + enc(id) + '/output?stream=' + s.name + '&offset=' + from +
            '&length=' + (upto - from) + (shownAttempt ? '&attempt=' + enc(shownAttempt) : '');
          var res = await rawFetch('GET', url);
          if (!res.ok) throw await errorFrom(res);
          var bytes = new Uint8Array(await res.arrayBuffer());
          if (!ctx.alive) return;
          if (gen !== s.generation || s.start !== upto) continue;  // reset meanwhile
          if (bytes.length > upto - from) bytes = bytes.subarray(0, upto - from);
          if (bytes.length) s.chunks.unshift({ offset: from, bytes: bytes, storedAt: null });
          s.start = from;
          redraw(s);
        }
        clearError();
      } catch (err) {
        if (ctx.alive) report(err);
      } finally {
        earlierBtn.disabled = false;
        earlierBtn.textContent = 'Load earlier output';
        var hadFocus = document.activeElement === earlierBtn;
        updateEarlier();
        if (hadFocus && earlierBtn.parentNode !== earlierSlot) tsBox.focus();
      }
    });

    liveEvents(ctx, '/api/v1/tasks/' + enc(id) + '/events?tail_bytes=' + MIB,
      ['status', 'output', 'gap', 'final', 'end'], onEvent,
      function (text) {
        liveEl.textContent = text;
        liveEl.className = 'live live-' + text;
      });
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  // ---------------------------------------------------------------- runs page

  function countsText(counts) {
    if (!counts) return '';
    return TASK_STATES.filter(function (s) { return counts[s]; })
      .map(function (s) { return counts[s] + ' ' + s; }).join(', ');
  }

  function runTarget(run) {
    if (run.selector) return run.selector;
    if (Array.isArray(run.agents) && run.agents.length) return run.agents.join(', ');
    return '—';
  }

  function renderRuns(ctx, main) {
    var tbody = h('tbody');
    var table = h('table', { id: 'runs-table' },
      h('caption', { class: 'visually-hidden' }, 'Runs, newest first'),
      headRow(['Run', 'State', 'Agents', 'Command', 'Tasks', 'Created']),
      tbody);
    main.appendChild(heading('Runs'));
    main.appendChild(tableWrap(table, 'Runs'));

    var loader = poller(ctx, RUNS_REFRESH_MS, async function () {
      try {
        var data = await api('GET', '/api/v1/runs?limit=50');
        if (!ctx.alive) return;
        var runs = (data && data.runs) || [];
        clear(tbody);
        if (!runs.length) tbody.appendChild(emptyRow(6, 'No runs.'));
        runs.forEach(function (run) {
          var cmd = commandText(run.command);
          var target = runTarget(run);
          tbody.appendChild(h('tr', { 'data-run': run.id },
            h('td', { class: 'id' }, h('a', { href: '#/runs/' + enc(run.id) }, run.id)),
            h('td', { class: 'state' }, stateBadge(run.state)),
            h('td', { class: 'target', title: target }, target),
            h('td', { class: 'command', title: cmd }, h('code', null, cmd)),
            h('td', { class: 'progress' }, countsText(run.counts) || '—'),
            h('td', { class: 'created' }, timeEl(run.created_at))));
        });
        clearError();
      } catch (err) {
        if (ctx.alive) report(err);
      }
    });
    loader.now();
  }

  // ---------------------------------------------------------------- run page

  function renderRun(ctx, main, r) {
    var id = r.id;
    main.appendChild(heading('Run ' + id));
    main.appendChild(h('p', { class: 'muted' }, h('a', { href: '#/runs' }, '← All runs')));

    var stateEl = h('span', { id: 'run-state', class: 'state' }, '…');
    var liveEl = h('span', { id: 'run-live-status', role: 'status', class: 'live' }, 'connecting');
    var targetEl = h('span');
    var commandEl = h('code', { class: 'command' });
    var limitsEl = h('span');
    var errorsEl = h('span');
    var countsEl = h('span');
    var createdEl = h('span');
    var finishedEl = h('span');
    var reasonEl = h('span');
    main.appendChild(detailList([
      ['State', stateEl],
      ['Updates', liveEl],
      ['Agents', targetEl],
      ['Command', commandEl],
      ['Limits', limitsEl],
      ['Errors', errorsEl],
      ['Tasks', countsEl],
      ['Created', createdEl],
      ['Finished', finishedEl],
      ['Stop reason', reasonEl]
    ]));

    var cancelBtn = h('button', { type: 'button', id: 'cancel-run', class: 'danger' }, 'Cancel run');
    var cancelSlot = h('div', { class: 'toolbar slot' });
    main.appendChild(cancelSlot);

    var tbody = h('tbody');
    var table = h('table', { id: 'run-board' },
      h('caption', { class: 'visually-hidden' }, 'Tasks of the run, by agent'),
      headRow(['Agent', 'State', 'Exit code', 'Bytes', 'Duration', 'Task', 'Note']),
      tbody);
    main.appendChild(tableWrap(table, 'Run board'));

    var runState = null;
    var cancelling = false;
    var durations = [];  // {el, started} of tasks still going
    var lastRun = null;
    // A run's tasks carry times from their finals only: for a task still
    // running, its start comes from the task itself (fetched once each).
    var startedAt = {};  // task id -> ISO time, '' while asked
    function fetchStarts(tasks) {
      var wanted = tasks.filter(function (t) {
        return t.task_id && !t.started_at && !t.finished_at &&
          (t.state === 'running' || t.state === 'dispatched') && !(t.task_id in startedAt);
      }).slice(0, 20);
      wanted.forEach(function (t) {
        startedAt[t.task_id] = '';
        api('GET', '/api/v1/tasks/' + enc(t.task_id)).then(function (data) {
          var task = one(data, 'task');
          var attempts = (task && task.attempts) || [];
          var last = attempts[attempts.length - 1];
          startedAt[t.task_id] = (last && (last.started_at || last.dispatched_at)) || '';
          if (ctx.alive && lastRun && startedAt[t.task_id]) show(lastRun);
        }, function () { /* the duration stays unknown */ });
      });
    }

    function updateCancel() {
      setPresent(cancelSlot, cancelBtn, canWrite() && runState === 'running');
      cancelBtn.disabled = cancelling;
    }

    function show(run) {
      lastRun = run;
      runState = run.state;
      stateEl.textContent = run.state;
      stateEl.className = stateClass(run.state);
      replaceText(targetEl, runTarget(run));
      replaceText(commandEl, commandText(run.command));
      replaceText(limitsEl, 'max concurrency ' + run.max_concurrency + ', max errors ' +
        (run.max_errors === null || run.max_errors === undefined ? 'none' : run.max_errors) +
        (run.canary ? ', canary ' + run.canary : ''));
      replaceText(errorsEl, String(run.errors === undefined ? '—' : run.errors));
      replaceText(countsEl, countsText(run.counts) || '—');
      setContent(createdEl, timeEl(run.created_at));
      setContent(finishedEl, timeEl(run.finished_at));
      replaceText(reasonEl, run.stop_reason || '—');
      updateCancel();

      var now = Date.now();
      durations = [];
      var tasks = (run.tasks || []).slice().sort(function (a, b) {
        return a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0;
      });
      var rows = tasks.map(function (t) {
        var total = (t.stdout_bytes || 0) + (t.stderr_bytes || 0);
        var hasFinal = !!t.finished_at || typeof t.exit_code === 'number' || total > 0;
        var bytesCell = h('td', { class: 'bytes num' }, hasFinal ? fmtBytes(total) : '—');
        if (hasFinal) bytesCell.setAttribute('title', 'stdout ' + (t.stdout_bytes || 0) + ' bytes, stderr ' + (t.stderr_bytes || 0) + ' bytes');
        var started = parseTime(t.started_at || startedAt[t.task_id]);
        var finished = parseTime(t.finished_at);
        var durCell = h('td', { class: 'duration num' });
        if (started && finished) durCell.textContent = fmtDuration(finished - started);
        else if (started && !finished && !/^(succeeded|failed|timed_out|cancelled|rejected|lost|skipped)$/.test(t.state)) {
          durCell.textContent = fmtDuration(now - started);
          durCell.classList.add('ticking');
          durations.push({ el: durCell, started: started });
        } else durCell.textContent = '—';
        return h('tr', { 'data-agent': t.agent },
          h('td', { class: 'agent' }, t.agent),
          h('td', { class: 'state' }, stateBadge(t.state)),
          h('td', { class: 'exit-code num' }, typeof t.exit_code === 'number' ? String(t.exit_code) : '—'),
          bytesCell,
          durCell,
          h('td', { class: 'task' }, t.task_id ? h('a', { href: '#/tasks/' + enc(t.task_id) }, t.task_id) : '—'),
          h('td', { class: 'note' }, t.note || ''));
      });
      clear(tbody);
      if (!rows.length) tbody.appendChild(emptyRow(7, 'No tasks.'));
      rows.forEach(function (row) { tbody.appendChild(row); });
      fetchStarts(tasks);
    }

    var ticker = setInterval(function () {
      var now = Date.now();
      durations.forEach(function (d) { d.el.textContent = fmtDuration(now - d.started); });
    }, 1000);
    ctx.onCleanup(function () { clearInterval(ticker); });

    var seq = 0;
    async function fetchRun() {
      var my = ++seq;
      try {
        var run = one(await api('GET', '/api/v1/runs/' + enc(id)), 'run');
        if (!ctx.alive || my !== seq) return false;
        show(run);
        return true;
      } catch (err) {
        if (ctx.alive && my === seq) report(err);
        return false;
      }
    }
    var refetch = throttle(ctx, RUN_REFETCH_MS, fetchRun);

    cancelBtn.addEventListener('click', async function () {
      cancelling = true;
      updateCancel();
      try {
        var run = one(await api('POST', '/api/v1/runs/' + enc(id) + '/cancel', {}), 'run');
        if (ctx.alive && run && run.id) show(run);
        clearError();
      } catch (err) {
        report(err);
      } finally {
        cancelling = false;
        updateCancel();
      }
    });

    fetchRun().then(function (ok) {
      if (!ok || !ctx.alive) return;
      liveEvents(ctx, '/api/v1/runs/' + enc(id) + '/events?output=0',
        ['run', 'status', 'final', 'gap', 'output', 'end'],
        function () { refetch(); },
        function (text) {
          liveEl.textContent = text;
          liveEl.className = 'live live-' + text;
        });
    });
  }

  function replaceText(el, text) { el.textContent = text; }

  function setContent(el, content) {
    clear(el);
    appendChildren(el, [content]);
  }

  // ---------------------------------------------------------------- submit page

  function renderSubmit(ctx, main) {
    main.appendChild(heading('Submit'));
    if (!canWrite()) {
      main.appendChild(h('p', null, 'Your role (' + (app.session ? app.session.role : '?') +
        ') may not submit tasks.'));
      return;
    }
    var modeAgent = h('input', { type: 'radio', name: 'mode', id: 'submit-mode-agent', value: 'agent', checked: true });
    var modeSelector = h('input', { type: 'radio', name: 'mode', id: 'submit-mode-selector', value: 'selector' });
    var targetLabel = h('label', { for: 'submit-target' }, 'Agent');
    var target = h('input', {
      id: 'submit-target', type: 'text', required: true, spellcheck: 'false', autocapitalize: 'off',
      autocomplete: 'off', list: 'submit-agents', 'aria-describedby': 'submit-target-help'
    });
    var targetHelp = h('span', { id: 'submit-target-help', class: 'help' });
    var datalist = h('datalist', { id: 'submit-agents' });
    var command = h('textarea', {
      id: 'submit-command', rows: '5', required: true, spellcheck: 'false', autocapitalize: 'off',
      'aria-describedby': 'submit-command-help'
    });
    var concurrency = h('input', {
      id: 'submit-concurrency', type: 'text', inputmode: 'text', placeholder: '100%',
      autocomplete: 'off', 'aria-describedby': 'submit-concurrency-help'
    });
    var maxErrors = h('input', {
      id: 'submit-max-errors', type: 'text', placeholder: 'no limit', autocomplete: 'off',
      'aria-describedby': 'submit-max-errors-help'
    });
    var runOptions = h('fieldset', { id: 'submit-run-options' },
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
    var submit = h('button', { type: 'submit', id: 'submit-button' }, 'Submit');
    var form = h('form', { id: 'submit-form', novalidate: true },
      h('fieldset', null,
        h('legend', null, 'Run on'),
        h('div', { class: 'radio' }, modeAgent, h('label', { for: 'submit-mode-agent' }, 'One agent (a task)')),
        h('div', { class: 'radio' }, modeSelector,
          h('label', { for: 'submit-mode-selector' }, 'Every agent matching a selector (a run)'))),
      h('div', { class: 'field' }, targetLabel, target, targetHelp, datalist),
      h('div', { class: 'field' },
        h('label', { for: 'submit-command' }, 'Command'),
        command,
        h('span', { id: 'submit-command-help', class: 'help' },
          'Run as /bin/sh -c COMMAND. Ctrl+Enter submits.')),
      runOptions,
      h('div', { class: 'form-actions' }, submit));
    main.appendChild(form);

    function syncMode() {
      var run = modeSelector.checked;
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
    modeAgent.addEventListener('change', syncMode);
    modeSelector.addEventListener('change', syncMode);
    syncMode();

    command.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        if (typeof form.requestSubmit === 'function') form.requestSubmit();
        else submit.click();
      }
    });

    // Agent names for the datalist (best effort).
    api('GET', '/api/v1/agents').then(function (data) {
      if (!ctx.alive || !data || !data.agents) return;
      data.agents.forEach(function (a) { datalist.appendChild(h('option', { value: a.name })); });
    }, function () { /* only a convenience */ });

    form.addEventListener('submit', async function (ev) {
      ev.preventDefault();
      clearError();
      var run = modeSelector.checked;
      var targetText = target.value.trim();
      var text = command.value;
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
      var cmd = { argv: ['/bin/sh', '-c', text] };
      submit.disabled = true;
      try {
        if (run) {
          var body = { selector: targetText, command: cmd };
          var c = concurrency.value.trim();
          var e = maxErrors.value.trim();
          if (c) body.max_concurrency = c;
          if (e) body.max_errors = e;
          var created = one(await api('POST', '/api/v1/runs', body), 'run');
          if (ctx.alive && created && created.id) location.hash = '#/runs/' + enc(created.id);
        } else {
          var task = one(await api('POST', '/api/v1/tasks', { agent: targetText, command: cmd }), 'task');
          if (ctx.alive && task && task.id) location.hash = '#/tasks/' + enc(task.id);
        }
      } catch (err) {
        report(err);
      } finally {
        submit.disabled = false;
      }
    });
    target.focus();
  }

  function renderNotFound(ctx, main) {
    main.appendChild(heading('Not found'));
    main.appendChild(h('p', null, 'There is no such page. ', h('a', { href: '#/agents' }, 'Go to the agents.')));
  }

  // ---------------------------------------------------------------- session

  function showView(which) {
    $('loading').hidden = true;
    $('signin-view').hidden = which !== 'signin';
    $('app-view').hidden = which !== 'app';
  }

  function showSignin(message) {
    disposePage();
    clear($('main'));
    clearError();
    document.title = 'Sign in · Tether';
    showView('signin');
    $('signin-error').textContent = message || '';
    $('token').focus();
  }

  function sessionEnded(message) {
    if (!app.session) return;
    app.session = null;
    app.csrf = null;
    showSignin(message);
  }

  function startApp(session) {
    app.session = session;
    app.csrf = session.csrf_token || null;
    $('whoami').textContent = session.name + ' (' + session.role + ')';
    var list = $('nav-list');
    var navSubmit = $('nav-submit');
    if (canWrite() && !navSubmit) {
      list.appendChild(h('li', { id: 'nav-submit-item' }, h('a', { id: 'nav-submit', href: '#/submit' }, 'Submit')));
    } else if (!canWrite() && navSubmit) {
      list.removeChild(navSubmit.parentNode);
    }
    $('signin-error').textContent = '';
    showView('app');
    route(false);
  }

  async function signIn(ev) {
    ev.preventDefault();
    var input = $('token');
    var button = $('signin-submit');
    var errorEl = $('signin-error');
    var token = input.value.trim();
    if (!token) {
      errorEl.textContent = 'Enter an operator token.';
      input.focus();
      return;
    }
    button.disabled = true;
    errorEl.textContent = '';
    try {
      var session = await api('POST', '/ui/session', { token: token });
      input.value = '';
      startApp(session);
      var h1 = $('main').querySelector('h1');
      if (h1) h1.focus();
    } catch (err) {
      errorEl.textContent = err.status === 401
        ? 'Sign-in failed: ' + (err.message || 'that token is not a valid operator token') + '.'
        : err.message;
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  async function signOut() {
    var button = $('signout');
    button.disabled = true;
    try {
      await api('DELETE', '/ui/session');
    } catch (err) {
      /* signed out here in any case */
    } finally {
      button.disabled = false;
    }
    app.session = null;
    app.csrf = null;
    showSignin('');
  }

  async function boot() {
    $('signin').addEventListener('submit', signIn);
    $('signout').addEventListener('click', signOut);
    window.addEventListener('hashchange', function () { route(true); });
    try {
      var session = await api('GET', '/ui/session');
      if (session) startApp(session);
      else showSignin('');
    } catch (err) {
      showSignin(err.status === 401 ? '' : err.message);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
