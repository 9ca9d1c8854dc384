#!/usr/bin/python3
"""Browser tests of tether-hub's web UI (docs/ui.md), with real processes.

Starts a hub (API and UI ports), one agent labelled role=web, and headless
Chromium through chromedriver, all on 127.0.0.1 with free ports, in a
temporary directory; runs the scenarios below; stops everything, also on
failure or a signal. Written from the documents (docs/ui.md, docs/protocol.md
11, docs/operations.md), not from the UI's code.

    TETHER_HUB=build/src/hub/tether-hub TETHER_AGENT=build/src/agent/tether-agent \
    TETHER_CLI=build/src/cli/tether /usr/bin/python3 tests/browser/ui_test.py [N...]

N... runs only those scenarios (1 to 10). See tests/browser/README.md.
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

TIMEOUT = 60.0  # every wait: generous, and each says what it waited for
AGENT = "edge-1"
OPERATOR = "ui-operator"
VIEWER = "ui-viewer"
LINES = 300
RELOAD_AT = 50  # the page is reloaded once line-50 (of 300) is on screen
MAX_PAGES = 2000  # of a terminal's scrollback (50000 lines) read a screen at a time
TERMINAL_STATES = ("succeeded", "failed", "timed_out", "cancelled", "rejected", "lost")
CUT_AT = 40  # scenario 7 cuts the connections once line-40 (of 300) is on screen
PHONE = (390, 844)  # scenario 9's window
BIG_LINES = 1000000  # scenario 8: 1,000,000 numbered lines of 100 bytes: 100 MB
BIG_TIMEOUT = 300.0  # for the 100 MB task to end, and the page to show it
BIG_MARKER = "LAST-LINE-MARKER"
CHROMIUM = os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TETHER_CHROMEDRIVER", "/usr/bin/chromedriver")

# The task of scenario 2: colour, a carriage-return progress bar, bytes that
# are not UTF-8, a line on stderr, then LINES numbered lines over ~15 s.
OUTPUT_COMMAND = "\n".join([
    r"printf '\033[31mred\033[0m plain\n'",
    r"printf 'progress 10%%\rprogress 50%%\rprogress 100%%\n'",
    r"printf '\377\376 bad\n'",
    r"echo to-stderr-text >&2",
    r"for i in $(seq 1 %d); do echo line-$i; sleep 0.05; done" % LINES,
])


# The task of scenario 7: LINES numbered lines over ~15 s.
SLOW_LINES_COMMAND = "for i in $(seq 1 %d); do echo line-$i; sleep 0.05; done" % LINES

# The task of scenario 8: big-line-0000001 to big-line-1000000, each padded
# to 100 bytes with its newline (exactly 100,000,000 bytes), then the marker.
BIG_LINE_FORMAT = "big-line-%07.0f " + ("padding of a long line of output, " * 3)[:82]
assert len(BIG_LINE_FORMAT % 1) == 99 and "'" not in BIG_LINE_FORMAT
BIG_BYTES = 100 * BIG_LINES
BIG_COMMAND = f"seq -f '{BIG_LINE_FORMAT}' 1 {BIG_LINES}; echo {BIG_MARKER}"


class Failure(Exception):
    """A check that did not hold; the message says what and what was seen."""


def check(condition, message):
    if not condition:
        raise Failure(message)


# ---------------------------------------------------------------- processes

def free_ports(count):
    """Ports nothing listens on: bound to port 0 at once, then released."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(text.splitlines()[-lines:])


# urllib without any proxy from the environment: everything is on loopback.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(method, url, body=None, headers=None, timeout=30):
    """(status, headers, body bytes); HTTP errors are answers, not raised."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _opener.open(request, timeout=timeout) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def as_json(raw):
    try:
        return json.loads(raw.decode("utf-8", "replace")) if raw else None
    except ValueError:
        return None


class Tether:
    """A hub and one agent in a temporary directory; stop() undoes it all."""

    def __init__(self):
        self.hub_bin = self._binary("TETHER_HUB")
        self.agent_bin = self._binary("TETHER_AGENT")
        self.cli_bin = self._binary("TETHER_CLI")
        self.procs = []
        self.work = tempfile.mkdtemp(prefix="tether-ui-test-")
        # Tasks run as tether-task (when the agent is root), whose home is
        # made under the agent's state dir: it must pass through this one.
        os.chmod(self.work, 0o711)
        self.data_dir = os.path.join(self.work, "hub")
        self.hub_log = os.path.join(self.work, "hub.log")
        self.agent_log = os.path.join(self.work, "agent.log")
        self.api_port, self.ui_port = free_ports(2)
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.ui = f"http://127.0.0.1:{self.ui_port}"

    @staticmethod
    def _binary(var):
        path = os.environ.get(var)
        if not path:
            raise Failure(f"{var} is not set (the path of the binary)")
        path = os.path.abspath(path)
        if not os.access(path, os.X_OK):
            raise Failure(f"{var}={path} is not an executable file")
        return path

    def _env(self):
        # Neither daemon gets the CLI's variables (an operator's token must
        # not reach an agent), nor a proxy.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TETHER_") and k.lower() not in ("http_proxy", "https_proxy")}
        return env

    def hub_command(self, *args):
        """Runs a `tether-hub` token or agent command on the data dir."""
        result = subprocess.run([self.hub_bin, *args, "--data-dir", self.data_dir],
                                env=self._env(), capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise Failure(f"tether-hub {' '.join(args)} exited {result.returncode}: "
                          f"{result.stderr.strip()} {result.stdout.strip()}")
        return result

    def token_file(self, name):
        return os.path.join(self.work, name + ".token")

    def read_token(self, name):
        path = self.token_file(name)
        mode = os.stat(path).st_mode & 0o777
        check(mode & 0o077 == 0, f"{path} has mode {mode:o}: a token file must be 0600")
        with open(path) as f:
            return f.read().strip()

    def start(self):
        # Tokens go to files (--output, 0600), never through argv or stdout.
        self.hub_command("agent", "add", AGENT, "--output", self.token_file(AGENT))
        self.hub_command("token", "admin", "--output", self.token_file("admin"))
        self.hub_command("token", "create", "--name", OPERATOR, "--role", "operator",
                         "--output", self.token_file(OPERATOR))
        self.admin_token = self.read_token("admin")
        self.operator_token = self.read_token(OPERATOR)

        serve = [self.hub_bin, "serve", "--data-dir", self.data_dir,
                 "--listen", f"127.0.0.1:{self.api_port}",
                 "--ui-listen", f"127.0.0.1:{self.ui_port}"]
        # The page's files from a directory (UI work without a rebuild).
        dev_assets = os.environ.get("TETHER_UI_DEV_ASSETS")
        if dev_assets:
            check(os.path.isfile(os.path.join(dev_assets, "index.html")),
                  f"TETHER_UI_DEV_ASSETS={dev_assets} has no index.html")
            serve += ["--ui-dev-assets", os.path.abspath(dev_assets)]
        hub = self._spawn("hub", serve, self.hub_log)
        self.wait_api("the hub's API to answer GET /api/v1/agents with 200",
                      lambda: self._status("GET", "/api/v1/agents") == 200, hub)
        self.wait_api("the hub's UI port to answer GET /ui/session (401 without a cookie)",
                      lambda: self._ui_status("/ui/session") == 401, hub)

        conf = os.path.join(self.work, "agent.conf")
        with open(conf, "w") as f:
            f.write(f"hub_url = {self.api}\n"
                    f"agent = {AGENT}\n"
                    f"token_file = {self.token_file(AGENT)}\n"
                    f"state_dir = {os.path.join(self.work, 'agent')}\n"
                    "labels = role=web\n"
                    "poll_wait_s = 30\n"
                    "shutdown_grace_s = 2\n"
                    "kill_grace_s = 3\n")
        agent = self._spawn("agent", [self.agent_bin, "run", "--config", conf], self.agent_log)
        self.wait_api(f"agent {AGENT} to show as connected in GET /api/v1/agents",
                      lambda: (self.agent_view() or {}).get("connected") is True, agent)
        # The CLI sees it too (its token from TETHER_TOKEN_FILE, not argv).
        env = dict(self._env(), TETHER_HUB_URL=self.api,
                   TETHER_TOKEN_FILE=self.token_file("admin"))
        result = subprocess.run([self.cli_bin, "agents"], env=env, capture_output=True,
                                text=True, timeout=60)
        check(result.returncode == 0 and AGENT in result.stdout,
              f"`tether agents` exited {result.returncode}: {result.stdout.strip()} "
              f"{result.stderr.strip()}")

    def _spawn(self, name, argv, log):
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=self._env(), cwd=self.work, start_new_session=True)
        proc.tether_name = name
        proc.tether_log = log
        self.procs.append(proc)
        return proc

    def stop(self):
        # The agent first (it delivers what is pending), then the hub; each
        # by its own pid, SIGTERM then SIGKILL.
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                except OSError:
                    pass
        self.procs = []

    def remove(self):
        if os.environ.get("TETHER_UI_TEST_KEEP") == "1":
            print(f"ui_test: kept {self.work} (hub.log, agent.log, hub/, agent/)", flush=True)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    # -- the operator API, with the admin token, through urllib

    def request(self, method, path, body=None, token=None):
        status, _, raw = http_request(method, self.api + path, body,
                              {"Authorization": "Bearer " + (token or self.admin_token)})
        return status, as_json(raw), raw

    def _status(self, method, path):
        try:
            return self.request(method, path)[0]
        except (OSError, http.client.HTTPException):
            return None

    def _ui_status(self, path):
        try:
            return http_request("GET", self.ui + path)[0]
        except (OSError, http.client.HTTPException):
            return None

    def agent_view(self):
        status, body, _ = self.request("GET", "/api/v1/agents")
        if status != 200 or not isinstance(body, dict):
            return None
        for agent in body.get("agents", []):
            if agent.get("name") == AGENT:
                return agent
        return None

    def task(self, task_id):
        status, body, raw = self.request("GET", f"/api/v1/tasks/{task_id}")
        check(status == 200, f"GET /api/v1/tasks/{task_id} answered {status}: {raw[:300]!r}")
        return body.get("task", body) if isinstance(body, dict) else {}

    def submit(self, command, token=None):
        status, body, raw = self.request(
            "POST", "/api/v1/tasks", {"agent": AGENT, "command": {"shell": command}}, token)
        check(status == 201, f"POST /api/v1/tasks answered {status}: {raw[:300]!r}")
        task = body.get("task", body)
        return task["id"]

    def cancel(self, task_id):
        try:
            self.request("POST", f"/api/v1/tasks/{task_id}/cancel")
        except (OSError, http.client.HTTPException):
            pass

    def wait_task_state(self, task_id, states, timeout=TIMEOUT):
        seen = {}

        def probe():
            seen["task"] = self.task(task_id)
            return seen["task"].get("state") in states
        self.wait_api(f"task {task_id} to reach {'/'.join(states)}", probe,
                      timeout=timeout, last=lambda: (seen.get("task") or {}).get("state"))
        return seen["task"]

    def wait_api(self, what, probe, proc=None, timeout=TIMEOUT, last=None):
        """Polls probe() until it holds; fails naming `what` (and the log of
        proc if it exited meanwhile)."""
        deadline = time.monotonic() + timeout
        error = None
        while time.monotonic() < deadline:
            for p in ([proc] if proc else self.procs):
                if p.poll() is not None:
                    raise Failure(f"waiting for {what}: {p.tether_name} exited with status "
                                  f"{p.returncode}; its log:\n{tail(p.tether_log)}")
            try:
                if probe():
                    return
                error = None
            except Failure as e:
                error = e
            except (OSError, http.client.HTTPException) as e:
                error = e
            time.sleep(0.2)  # a poll interval, not a wait for something
        detail = f"; last seen: {last()!r}" if last else ""
        if error:
            detail += f"; last error: {error}"
        raise Failure(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 (a free port) to 127.0.0.1:upstream_port,
    two threads per connection; cut() ends every connection it carries
    (shutdown of both sockets: the browser sees its responses end mid-way)
    and it keeps accepting new ones."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.pairs = set()
        self.accepted = 0
        self.closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = (client, upstream)
            with self.lock:
                if self.closed:
                    client.close()
                    upstream.close()
                    return
                self.pairs.add(pair)
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst),
                                 name="proxy-pump", daemon=True).start()

    def _pump(self, pair, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        # Either side ending ends the connection (HTTP needs no half-close).
        self._end(pair)

    def _end(self, pair):
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other pump's recv()
            except OSError:
                pass
        with self.lock:
            if pair in self.pairs:
                self.pairs.discard(pair)
                for sock in pair:
                    sock.close()

    def open_connections(self):
        with self.lock:
            return len(self.pairs)

    def cut(self):
        """Ends every connection carried now; answers how many."""
        with self.lock:
            pairs = list(self.pairs)
        for pair in pairs:
            self._end(pair)
        return len(pairs)

    def close(self):
        with self.lock:
            self.closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self.listener.close()
        self.cut()


# ------------------------------------------------------------------ browser

# The rows of a terminal (its `.xterm-rows` children; without them, the
# lines of its text) once rendering has settled: unchanged over 3 animation
# frames. Also focuses its input, so that keys go to the terminal.
SETTLED_ROWS_JS = r"""
const sel = arguments[0], done = arguments[arguments.length - 1];
const root = document.querySelector(sel);
if (!root) return done({error: 'no element ' + sel});
const rowsEl = root.querySelector('.xterm-rows');
const clean = t => t.replace(/\u00a0/g, ' ').replace(/\s+$/, '');
const rows = () => rowsEl ? Array.from(rowsEl.children).map(r => clean(r.textContent))
                          : root.innerText.split('\n').map(clean);
// xterm.js does not render a terminal outside the window: bring it in.
const box = root.getBoundingClientRect();
if (box.bottom <= 0 || box.top >= window.innerHeight) root.scrollIntoView({block: 'center'});
const input = root.querySelector('textarea');
if (input && document.activeElement !== input) input.focus({preventScroll: true});
const frame = () => new Promise(resolve => requestAnimationFrame(() => resolve()));
(async () => {
  let last = JSON.stringify(rows()), stable = 0;
  for (let i = 0; i < 300 && stable < 3; i++) {
    await frame();
    const now = JSON.stringify(rows());
    if (now === last && i >= 2) stable++; else { stable = 0; last = now; }
  }
  done({rows: rows(), xterm: !!rowsEl, input: !!input});
})().catch(e => done({error: String(e && e.stack || e)}));
"""

# The rows of a terminal as they are on screen now.
SCREEN_ROWS_JS = r"""
const root = document.querySelector(arguments[0]);
if (!root) return null;
const box = root.getBoundingClientRect();
if (box.bottom <= 0 || box.top >= window.innerHeight) root.scrollIntoView({block: 'center'});
const rowsEl = root.querySelector('.xterm-rows');
if (!rowsEl) return root.innerText.split('\n');
return Array.from(rowsEl.children).map(r => r.textContent.replace(/\u00a0/g, ' ').replace(/\s+$/, ''));
"""

# In the stdout terminal's row that holds "red" and "plain": the text drawn
# in a colour (a class xterm-fg-N, an inline color, or a computed colour
# other than the row's), and every leaf element with its class and colour.
RED_TEXT_JS = r"""
const root = document.querySelector('#terminal-stdout');
if (!root) return {error: 'no #terminal-stdout'};
const holds = el => el.textContent.includes('red') && el.textContent.includes('plain');
const rowsEl = root.querySelector('.xterm-rows');
let row = rowsEl ? Array.from(rowsEl.children).find(holds) : null;
if (!rowsEl) {  // not xterm's rows: the deepest element that holds both words
  const all = Array.from(root.querySelectorAll('*')).filter(holds);
  row = all.find(el => !Array.from(el.children).some(holds)) || null;
}
if (!row) return {error: 'no row on screen holds "red" and "plain"', rows: rowsEl ? Array.from(rowsEl.children).map(r => r.textContent) : root.innerText.slice(0, 300)};
const base = getComputedStyle(row).color;
let coloured = '', plain = '';
const leaves = [];
const walk = node => {
  for (const child of node.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) {
      const el = child.parentElement;
      const cls = String(el.getAttribute('class') || ''), style = el.getAttribute('style') || '';
      const color = getComputedStyle(el).color;
      const isColoured = el !== row && (/xterm-fg-\d+/.test(cls) || /(^|;)\s*color\s*:/.test(style) || color !== base);
      if (isColoured) coloured += child.textContent; else plain += child.textContent;
      leaves.push([child.textContent, cls, style, color]);
    } else if (child.nodeType === Node.ELEMENT_NODE) walk(child);
  }
};
walk(row);
return {coloured: coloured, plain: plain, base: base, leaves: leaves.slice(0, 40)};
"""

# fetch() from the page (the UI's origin, its session cookie): answers
# {status, body} or {error}. arguments: method, path, body or null, headers.
FETCH_JS = r"""
const [method, path, body, headers] = arguments;
const done = arguments[arguments.length - 1];
const init = {method: method, credentials: 'same-origin', headers: headers || {}};
if (body !== null) { init.body = JSON.stringify(body); init.headers['Content-Type'] = 'application/json'; }
fetch(path, init).then(r => r.text().then(t => done({status: r.status, body: t})))
  .catch(e => done({error: String(e)}));
"""


class Browser:
    """One headless Chromium (a browser session of its own: own cookies)."""

    count = 0

    def __init__(self, run, name, size=(1280, 1000), base=None, phone=False):
        """size: the window's (width, height); base: the UI's URL as this
        browser reaches it (default: the hub's UI port itself); phone: a
        phone's screen of that size (chromedriver's mobile emulation, as
        headless Chromium makes no window narrower than 500 px)."""
        Browser.count += 1
        self.run = run
        self.name = name
        self.base = base or run.tether.ui
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--window-size=%d,%d" % size, "--no-first-run",
                    "--no-default-browser-check", "--disable-extensions",
                    "--no-proxy-server", "--force-device-scale-factor=1"):
            options.add_argument(arg)
        if phone:
            options.add_experimental_option("mobileEmulation", {"deviceMetrics": {
                "width": size[0], "height": size[1], "pixelRatio": 1.0,
                "mobile": True, "touch": True}})
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # A confirm() before cancelling, if the UI asks one, is ours to answer.
        options.set_capability("unhandledPromptBehavior", "ignore")
        log = os.path.join(run.tether.work, f"chromedriver-{Browser.count}.log")
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_path=log),
                                       options=options)
        self.driver.set_script_timeout(TIMEOUT)
        self.driver.set_page_load_timeout(TIMEOUT)
        run.browsers.append(self)

    def quit(self):
        try:
            self.driver.quit()
        except WebDriverException:
            pass
        if self in self.run.browsers:
            self.run.browsers.remove(self)

    # -- looking

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        """The element's visible text, stripped; None when it is not there."""
        found = self.finds(css)
        return found[0].text.strip() if found else None

    def page_error(self):
        try:
            found = self.finds("#error")
            return found[0].text.strip() if found and found[0].is_displayed() else ""
        except WebDriverException:
            return "?"

    def wait(self, what, probe, ok=bool, timeout=TIMEOUT):
        """Waits (WebDriverWait) until ok(probe(driver)); answers the value.
        Fails naming `what`, the last value seen, the URL and #error."""
        seen = {"value": "(nothing yet)"}

        def condition(driver):
            try:
                value = probe(driver)
            except (NoSuchElementException, StaleElementReferenceException):
                value = None
            seen["value"] = value
            return ok(value)
        try:
            WebDriverWait(self.driver, timeout, poll_frequency=0.25).until(condition)
        except TimeoutException:
            value = seen["value"]
            if isinstance(value, str) and len(value) > 600:
                value = value[:300] + " ... " + value[-300:]
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}; last saw {value!r}; "
                          f"URL {self.driver.current_url}; #error {self.page_error()!r}")
        return seen["value"]

    def wait_text(self, css, pattern, what=None, timeout=TIMEOUT):
        """Until the text of css matches the regex pattern (case-insensitive)."""
        return self.wait(what or f"{css} to read {pattern!r}", lambda d: self.text(css),
                         lambda v: v is not None and re.search(pattern, v, re.I) is not None,
                         timeout)

    def wait_visible(self, css, timeout=TIMEOUT):
        def probe(d):
            found = self.finds(css)
            return found[0] if found and found[0].is_displayed() else None
        return self.wait(f"{css} to be shown", probe, lambda v: v is not None, timeout)

    def present_and_shown(self, css):
        return any(e.is_displayed() for e in self.finds(css))

    def screen_rows(self, css):
        return self.driver.execute_script(SCREEN_ROWS_JS, css)

    def settled_rows(self, css):
        result = self.driver.execute_async_script(SETTLED_ROWS_JS, css)
        check(result and "error" not in result,
              f"cannot read terminal {css}: {(result or {}).get('error')}")
        return result

    def terminal_key(self, key, times=1):
        """Shift+KEY (times presses) to the focused terminal: xterm.js
        scrolls its scrollback a screen (rows - 1 lines) per
        Shift+PageUp/PageDown."""
        ActionChains(self.driver).key_down(Keys.SHIFT).send_keys(key * times) \
            .key_up(Keys.SHIFT).perform()

    def terminal_to_end(self, css, key, pages_per_step=1):
        """Scrolls the terminal (Shift+key, pages_per_step screens at a
        time) until its rows stop changing; its rows there."""
        screen = self.settled_rows(css)
        for _ in range(MAX_PAGES):
            if not screen["xterm"]:
                return screen["rows"]
            self.terminal_key(key, pages_per_step)
            after = self.settled_rows(css)
            if after["rows"] == screen["rows"]:
                return screen["rows"]
            screen = after
        raise Failure(f"{css} still scrolls after {MAX_PAGES} steps of {pages_per_step} pages")

    def terminal_seek(self, css, number, pattern, steps=60):
        """Pages the terminal (up or down, as many screens as the numbers
        on screen say) until a row matching pattern (one group: a number)
        holds `number`; its rows then."""
        rows = self.settled_rows(css)["rows"]
        for _ in range(steps):
            n = len(rows)
            numbers = [int(m.group(1)) for r in rows for m in [re.fullmatch(pattern, r)] if m]
            if number in numbers:
                return rows
            check(numbers and n > 2, f"seeking line {number} in {css}: no numbered row on "
                  f"screen: {rows[:4]}")
            if number < min(numbers):
                key, distance = Keys.PAGE_UP, min(numbers) - number
            else:
                key, distance = Keys.PAGE_DOWN, number - max(numbers)
            self.terminal_key(key, max(1, distance // (n - 1)))
            after = self.settled_rows(css)["rows"]
            check(after != rows, f"{css} does not scroll on, seeking line {number}: "
                  f"{rows[:2]} ... {rows[-2:]}")
            rows = after
        raise Failure(f"line {number} not found in {css} after {steps} steps")

    def terminal_to_top(self, css, pages_per_step=1):
        """Scrolls the terminal to the top of its scrollback; its rows."""
        return self.terminal_to_end(css, Keys.PAGE_UP, pages_per_step)

    def terminal_to_bottom(self, css, pages_per_step=1):
        """Scrolls the terminal to the bottom of its scrollback; its rows."""
        return self.terminal_to_end(css, Keys.PAGE_DOWN, pages_per_step)

    def read_terminal(self, css):
        """Every row of an xterm.js terminal, scrollback included. The DOM
        renderer keeps only the rows on screen in the page, so this pages
        from the top to the bottom (Shift+PageDown: rows - 1 lines a page,
        one row of overlap, less on the last page) and puts each row at its
        place. Answers {rows, screen, pages, note}; leaves it at the bottom."""
        page = self.terminal_to_top(css)
        rows = list(page)
        n = len(page)
        note = ""
        for pages in range(1, MAX_PAGES):
            if n < 2:
                break
            self.terminal_key(Keys.PAGE_DOWN)
            after = self.settled_rows(css)["rows"]
            check(len(after) == n, f"{css} changed from {n} to {len(after)} rows while paging")
            if after == page:
                return {"rows": rows, "screen": n, "pages": pages, "note": note}
            # How far this page moved: n - 1 rows, but the last page moves
            # less (it stops at the bottom). The shift that makes the pages
            # agree on every overlapping row; the largest overlap first.
            shifts = [s for s in range(1, n) if after[:n - s] == page[s:]]
            check(shifts, f"paging {css}: page {pages + 1} does not continue page {pages} "
                  f"(page {pages} ends {page[-3:]}, page {pages + 1} begins {after[:3]})")
            shift = shifts[0]
            if len(shifts) > 1:
                note += f" page {pages + 1}: shifts {shifts} fit, took {shift};"
            rows.extend(after[n - shift:])
            page = after
        raise Failure(f"{css} still scrolls down after {MAX_PAGES} pages")

    def fetch(self, method, path, body=None, headers=None):
        result = self.driver.execute_async_script(FETCH_JS, method, path, body, headers or {})
        check(result and "error" not in result, f"fetch {method} {path} failed: {result}")
        return result["status"], result["body"]

    def session_cookie(self):
        cookie = self.driver.get_cookie("tether_session")
        return cookie

    # -- doing

    def open(self, fragment=""):
        self.driver.get(self.base + "/" + fragment)

    def click(self, css):
        element = self.wait_visible(css)
        try:
            element.click()
        except (ElementClickInterceptedException, ElementNotInteractableException):
            # A styled radio or checkbox: its label takes the click.
            element_id = element.get_attribute("id")
            labels = self.finds(f'label[for="{element_id}"]') if element_id else []
            if not labels:
                raise
            labels[0].click()

    def accept_confirm(self):
        try:
            self.driver.switch_to.alert.accept()
            return True
        except NoAlertPresentException:
            return False

    def type_into(self, css, text):
        element = self.wait_visible(css)
        element.clear()
        element.send_keys(text)

    def submit_task(self, command):
        """#submit-form in agent mode, for AGENT: the id of the task page it opens."""
        self.open("#/submit")
        self.wait_visible("#submit-form")
        self.click("#submit-mode-agent")
        self.type_into("#submit-target", AGENT)
        self.type_into("#submit-command", command)
        self.submit_form("#submit-form")
        return self.wait("the new task's page (#/tasks/ID) to open after submitting",
                         lambda d: task_id_from_url(d.current_url), lambda v: v is not None)

    def submit_form(self, form_css):
        buttons = [b for b in self.finds(f"{form_css} [type=submit]") if b.is_displayed()]
        if not buttons:
            buttons = [b for b in self.finds(f"{form_css} button:not([type])") if b.is_displayed()]
        check(buttons, f"no submit button shown in {form_css}")
        buttons[0].click()

    def sign_in(self, token, name, role):
        self.open()
        self.wait_visible("#signin")
        self.type_into("#token", token)
        self.submit_form("#signin")

        def probe(d):
            error = self.finds("#signin-error")
            if error and error[0].is_displayed() and error[0].text.strip():
                raise Failure(f"sign-in as {name} refused: #signin-error says {error[0].text.strip()!r}")
            return self.text("#whoami")
        return self.wait(f"#whoami to read '{name} ({role})' after signing in", probe,
                         lambda v: v is not None and name in v and role in v)

    def screenshot(self, name):
        return self.run.screenshot(self, name)

    def console(self):
        try:
            return [f"{e.get('level')} {e.get('message')}" for e in self.driver.get_log("browser")]
        except WebDriverException:
            return []


# ---------------------------------------------------------------- scenarios

def task_id_from_url(url, kind="tasks"):
    match = re.search(r"#/%s/([A-Za-z0-9._-]+)" % kind, url)
    return match.group(1) if match else None


def scenario_1_sign_in(run):
    """Sign in through #signin/#token; #whoami; the agent shows connected."""
    b = Browser(run, "operator")
    b.open()
    b.wait_visible("#signin")
    token_input = b.wait_visible("#token")
    check(token_input.get_attribute("type") == "password",
          f"#token has type {token_input.get_attribute('type')!r}, not password")
    label = " ".join(filter(None, [
        " ".join(l.text for l in b.finds('label[for="token"]')),
        token_input.get_attribute("aria-label") or "",
        b.driver.execute_script(
            "const l = arguments[0].closest('label'); return l ? l.textContent : ''", token_input),
    ]))
    check("operator token" in label.lower(), f"#token has no label 'Operator token' (saw {label!r})")
    b.screenshot("signin")

    whoami = b.sign_in(run.tether.operator_token, OPERATOR, "operator")
    check(whoami == f"{OPERATOR} (operator)", f"#whoami reads {whoami!r}, not '{OPERATOR} (operator)'")

    cookie = b.session_cookie()
    check(cookie is not None, "no tether_session cookie after signing in")
    check(cookie.get("httpOnly") is True, f"tether_session is not HttpOnly: {cookie}")
    check(str(cookie.get("sameSite", "")).lower() == "strict",
          f"tether_session is not SameSite=Strict: {cookie}")

    for nav in ("#nav-agents", "#nav-tasks", "#nav-runs", "#nav-submit", "#signout"):
        check(b.present_and_shown(nav), f"{nav} is not shown for an operator")

    b.open("#/agents")
    row = f'#agents-table tr[data-agent="{AGENT}"]'
    b.wait_text(f"{row} .connected", r"^connected$",
                f"{row} .connected to read 'connected'")
    labels = b.text(f"{row} .labels") or ""
    check("role=web" in labels, f"{row} .labels reads {labels!r}, without role=web")
    b.screenshot("agents")

    # docs/ui.md: the page makes no request to any other host.
    foreign = b.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => !n.startsWith(location.origin + '/') && !n.startsWith('data:'))")
    check(not foreign, f"the page requested other origins: {foreign}")
    b.quit()


def scenario_2_output(run):
    """Submit through #submit-form; live output; reload mid-stream; every
    line once, progress bar, U+FFFD, stderr apart, colour."""
    t = run.tether
    b = Browser(run, "operator")
    b.sign_in(t.operator_token, OPERATOR, "operator")
    task_id = b.submit_task(OUTPUT_COMMAND)
    print(f"  task {task_id}", flush=True)
    task = t.task(task_id)
    check(task.get("agent") == AGENT, f"the task went to agent {task.get('agent')!r}, not {AGENT}")

    # Live: the task runs, the page says live, lines arrive.
    def live(d):
        rows = b.screen_rows("#terminal-stdout") or []
        numbers = [int(m.group(1)) for r in rows for m in [re.fullmatch(r"\s*line-(\d+)", r)] if m]
        return (b.text("#live-status"), b.text("#task-state"), max(numbers) if numbers else None)

    def is_live(v, after=0):
        return (v is not None and v[0] is not None and re.search(r"\blive\b", v[0], re.I)
                and v[1] is not None and re.search(r"\brunning\b", v[1], re.I)
                and v[2] is not None and v[2] > after)
    status, state, newest = b.wait(
        "#live-status 'live', #task-state 'running' and some line-N in #terminal-stdout",
        live, is_live)
    print(f"  live: #live-status {status!r}, #task-state {state!r}, line-{newest} on screen",
          flush=True)
    # Let it stream a while (lines arriving one by one) before the reload.
    status, state, newest = b.wait(
        f"line-{RELOAD_AT} or later in #terminal-stdout while live", live,
        lambda v: is_live(v, RELOAD_AT - 1))
    print(f"  live: #live-status {status!r}, #task-state {state!r}, line-{newest} on screen",
          flush=True)
    b.screenshot("task-live")

    # Reload mid-stream: the task must still be running, and not have
    # written every line yet.
    api_state = t.task(task_id).get("state")
    check(api_state == "running",
          f"the task is {api_state!r} before the reload: the reload would not be mid-stream")
    check(newest < LINES, f"line-{newest} already on screen before the reload")
    b.driver.refresh()
    # The same page, still signed in, live again; lines keep coming.
    _, _, after_reload = b.wait(
        f"#live-status 'live' again after the reload, and a line after line-{newest}",
        live, lambda v: is_live(v, newest))
    print(f"  after the reload: live, line-{after_reload} on screen", flush=True)
    b.screenshot("task-reloaded")

    b.wait_text("#task-state", r"^succeeded$", "#task-state to read succeeded")
    t.wait_task_state(task_id, ["succeeded"])
    b.wait_text("#live-status", r"\bended\b", "#live-status to read ended once the task ended")

    def last_line_on_screen(d):
        return b.screen_rows("#terminal-stdout")
    b.wait(f"line-{LINES} in #terminal-stdout", last_line_on_screen,
           lambda rows: rows is not None and any(r.strip() == f"line-{LINES}" for r in rows))
    b.screenshot("task-succeeded")

    stdout = b.read_terminal("#terminal-stdout")
    rows = stdout["rows"]
    print(f"  #terminal-stdout: {len(rows)} rows read in {stdout['pages']} screens of "
          f"{stdout['screen']} rows{';' + stdout['note'] if stdout['note'] else ''}", flush=True)
    text = "\n".join(rows)
    problems = []
    counts = {}
    for number in re.findall(r"line-(\d+)", text):
        counts[int(number)] = counts.get(int(number), 0) + 1
    absent = [n for n in range(1, LINES + 1) if counts.get(n, 0) == 0]
    twice = {n: c for n, c in counts.items() if c > 1}
    if absent:
        problems.append(f"{len(absent)} lines missing from #terminal-stdout "
                        f"(first: {['line-%d' % n for n in absent[:10]]})")
    if twice:
        problems.append(f"{len(twice)} lines shown more than once "
                        f"(e.g. {dict(list(twice.items())[:10])})")
    odd = [r for r in rows if "line-" in r and not re.fullmatch(r"line-\d+", r)]
    if odd:
        problems.append(f"rows not exactly 'line-N' (e.g. {odd[:5]}): lines not each at column 0")
    if "progress 100%" not in rows:
        problems.append(f"no row reads 'progress 100%' (rows with 'progress': "
                        f"{[r for r in rows if 'progress' in r]})")
    stale = [r for r in rows if r in ("progress 10%", "progress 50%")]
    if stale:
        problems.append(f"the progress bar left rows {stale}: carriage returns not honoured")
    bad = [r for r in rows if "bad" in r]
    if not any("\ufffd" in r and r.endswith(" bad") and "\\x" not in r for r in bad):
        problems.append(f"the invalid bytes do not show as U+FFFD: rows with 'bad': {bad}")
    if "to-stderr-text" in text:
        problems.append("stderr's text 'to-stderr-text' is in #terminal-stdout")
    if problems:
        raw = t.request("GET", f"/api/v1/tasks/{task_id}/output?stream=stdout&offset=0")[2]
        hub_lines = len(re.findall(rb"line-\d+\n", raw))
        problems.append(f"(the hub's stored stdout has {hub_lines} line-N lines, {len(raw)} bytes; "
                        f"the terminal has {len(rows)} rows: first {rows[:6]}, last {rows[-4:]})")

    stderr = b.read_terminal("#terminal-stderr")
    stderr_text = "\n".join(stderr["rows"])
    if "to-stderr-text" not in stderr_text:
        problems.append(f"#terminal-stderr does not hold 'to-stderr-text': {stderr['rows'][:5]}")
    if "line-" in stderr_text:
        problems.append("stdout's lines are in #terminal-stderr")

    b.terminal_to_top("#terminal-stdout")
    colour = b.driver.execute_script(RED_TEXT_JS)
    if "error" in colour:
        problems.append(f"colour: {colour['error']} ({colour.get('rows', '')})")
    elif "red" not in colour["coloured"] or "plain" in colour["coloured"]:
        problems.append(f"'red' is not drawn in a colour of its own (coloured text "
                        f"{colour['coloured']!r}, the rest {colour['plain']!r}; "
                        f"elements {colour['leaves']})")
    b.screenshot("task-output-top")
    check(not problems, "; ".join(problems))
    b.quit()


def scenario_3_cancel(run):
    """A running `sleep 600`: #cancel-task, then #task-state cancelled."""
    t = run.tether
    task_id = t.submit("sleep 600")
    run.cleanup_tasks.append(task_id)
    t.wait_task_state(task_id, ["running"])
    b = Browser(run, "operator")
    b.sign_in(t.operator_token, OPERATOR, "operator")
    b.open(f"#/tasks/{task_id}")
    b.wait_text("#task-state", r"^running$", "#task-state to read running")
    # docs/ui.md: it asks first; saying no changes nothing.
    b.click("#cancel-task")
    b.driver.switch_to.alert.dismiss()
    check(t.task(task_id).get("state") == "running",
          "the task left running although the confirmation was dismissed")
    b.click("#cancel-task")
    check(b.accept_confirm(), "#cancel-task did not ask for confirmation")
    b.wait_text("#task-state", r"^cancelled$", "#task-state to read cancelled after #cancel-task")
    t.wait_task_state(task_id, ["cancelled"])
    b.wait(f"#cancel-task to go away once task {task_id} ended",
           lambda d: b.present_and_shown("#cancel-task"), lambda shown: shown is False)
    b.screenshot("task-cancelled")
    b.quit()


def scenario_4_run(run):
    """A run through #submit-form in selector mode; #run-board to succeeded."""
    t = run.tether
    b = Browser(run, "operator")
    b.sign_in(t.operator_token, OPERATOR, "operator")
    b.open("#/submit")
    b.wait_visible("#submit-form")
    b.click("#submit-mode-selector")
    b.type_into("#submit-target", "role=web")
    b.type_into("#submit-command", "echo run-on-$(hostname); echo done")
    b.submit_form("#submit-form")
    run_id = b.wait("the new run's page (#/runs/ID) to open after submitting",
                    lambda d: task_id_from_url(d.current_url, "runs"), lambda v: v is not None)
    print(f"  run {run_id}", flush=True)
    row = f'#run-board tr[data-agent="{AGENT}"]'
    b.wait_visible(row)
    b.wait_text(f"{row} .state", r"^succeeded$", f"{row} .state to read succeeded")
    b.wait_text("#run-state", r"^succeeded$", "#run-state to read succeeded")
    exit_code = b.text(f"{row} .exit-code")
    check(exit_code == "0", f"{row} .exit-code reads {exit_code!r}, not 0")
    links = b.finds(f"{row} a[href]")
    check(any(re.search(r"#/tasks/[A-Za-z0-9._-]+", l.get_attribute("href") or "") for l in links),
          f"{row} has no link to its task")
    status, body, raw = t.request("GET", f"/api/v1/runs/{run_id}")
    check(status == 200 and body.get("state") == "succeeded",
          f"GET /api/v1/runs/{run_id}: {status} {raw[:300]!r}")
    b.screenshot("run-succeeded")
    b.open("#/runs")
    b.wait_visible(f'#runs-table tr[data-run="{run_id}"]')
    b.quit()


def scenario_5_roles(run):
    """A viewer: no #nav-submit, no #cancel-task, POST /api/v1/tasks 403.
    An operator's POST without X-CSRF-Token: 403. /ui/session without a
    cookie: 401."""
    t = run.tether
    problems = []
    # docs/operations.md: `token create --name NAME --role viewer --output FILE`.
    t.hub_command("token", "create", "--name", VIEWER, "--role", "viewer",
                  "--output", t.token_file(VIEWER))
    viewer_token = t.read_token(VIEWER)

    task_id = t.submit("sleep 600")
    run.cleanup_tasks.append(task_id)
    t.wait_task_state(task_id, ["running"])

    v = Browser(run, "viewer")
    whoami = v.sign_in(viewer_token, VIEWER, "viewer")
    if whoami != f"{VIEWER} (viewer)":
        problems.append(f"#whoami reads {whoami!r}, not '{VIEWER} (viewer)'")
    v.wait_visible("#nav-agents")
    if v.finds("#nav-submit"):
        problems.append("#nav-submit is in the page for a viewer (docs/ui.md: absent)"
                        + ("" if v.present_and_shown("#nav-submit") else ", though hidden"))
    v.open(f"#/tasks/{task_id}")
    v.wait_text("#task-state", r"^running$", "#task-state to read running (as the viewer)")
    v.wait_text("#live-status", r"\blive\b", "#live-status to read live (as the viewer)")
    if v.finds("#cancel-task"):
        problems.append("#cancel-task is in the page of a running task for a viewer"
                        + ("" if v.present_and_shown("#cancel-task") else ", though hidden"))
    v.screenshot("viewer-task")

    status, body = v.fetch("GET", "/ui/session")
    session = json.loads(body) if status == 200 else {}
    if status != 200 or session.get("role") != "viewer" or not session.get("csrf_token"):
        problems.append(f"GET /ui/session as the viewer: {status} {body[:300]}")
    status, body = v.fetch("POST", "/api/v1/tasks",
                           {"agent": AGENT, "command": {"shell": "echo viewer-submit"}},
                           {"X-CSRF-Token": session.get("csrf_token", "")})
    if status != 403:
        problems.append(f"POST /api/v1/tasks as the viewer (with the CSRF header) answered "
                        f"{status}, not 403: {body[:300]}")
    elif "forbidden" not in body:
        problems.append(f"the viewer's 403 is not `forbidden`: {body[:300]}")
    v.quit()

    # CSRF: an operator's session, a POST without the header.
    o = Browser(run, "operator")
    o.sign_in(t.operator_token, OPERATOR, "operator")
    o.wait_visible("#nav-agents")
    command = {"agent": AGENT, "command": {"shell": "echo csrf-check"}}
    status, body = o.fetch("POST", "/api/v1/tasks", command)
    if status != 403:
        problems.append(f"POST /api/v1/tasks as an operator without X-CSRF-Token answered "
                        f"{status}, not 403: {body[:300]}")
    elif "x-csrf-token" not in body.lower():
        problems.append(f"the CSRF refusal does not name the header X-CSRF-Token: {body[:300]}")
    # ... and with it, the same request is taken (so the 403 was the header's).
    status, session_body = o.fetch("GET", "/ui/session")
    csrf = json.loads(session_body).get("csrf_token", "") if status == 200 else ""
    status, body = o.fetch("POST", "/api/v1/tasks", command, {"X-CSRF-Token": csrf})
    if status != 201:
        problems.append(f"POST /api/v1/tasks as an operator with X-CSRF-Token answered "
                        f"{status}, not 201: {body[:300]}")
    o.quit()

    status, _, raw = http_request("GET", t.ui + "/ui/session")
    if status != 401:
        problems.append(f"GET /ui/session without a cookie answered {status}, not 401: {raw[:200]!r}")
    status, _, raw = http_request("GET", t.ui + "/api/v1/agents")
    if status != 401:
        problems.append(f"GET /api/v1/agents on the UI port without a cookie answered {status}, "
                        f"not 401: {raw[:200]!r}")
    check(not problems, "; ".join(problems))


def scenario_6_sign_out(run):
    """#signout: back to #signin; the old cookie answers 401."""
    t = run.tether
    b = Browser(run, "operator")
    b.sign_in(t.operator_token, OPERATOR, "operator")
    b.wait_visible("#nav-agents")
    cookie = b.session_cookie()
    check(cookie and cookie.get("value"), f"no tether_session cookie after signing in: {cookie}")
    old = {"Cookie": "tether_session=" + cookie["value"]}
    status, _, raw = http_request("GET", t.ui + "/ui/session", headers=old)
    check(status == 200, f"GET /ui/session with the session's cookie answered {status} "
          f"before signing out: {raw[:200]!r}")

    b.click("#signout")
    b.accept_confirm()
    b.wait_visible("#signin")
    b.wait_visible("#token")
    check(not b.present_and_shown("#whoami"), "#whoami is still shown after signing out")
    b.screenshot("signed-out")
    after = b.session_cookie()
    check(after is None or not after.get("value"),
          f"the tether_session cookie was not cleared: {after}")

    status, _, raw = http_request("GET", t.ui + "/ui/session", headers=old)
    check(status == 401, f"GET /ui/session with the old cookie answered {status} after "
          f"signing out, not 401: {raw[:200]!r}")
    status, _, raw = http_request("GET", t.ui + "/api/v1/agents", headers=old)
    check(status == 401, f"GET /api/v1/agents with the old cookie answered {status} after "
          f"signing out, not 401: {raw[:200]!r}")
    # A reload stays signed out.
    b.driver.refresh()
    b.wait_visible("#signin")
    b.quit()


# Records every text #live-status takes from now on (a MutationObserver on
# the whole page, so that a re-rendered element is followed too) in
# window.__tetherLiveSeen; answers what it holds now.
LIVE_STATUS_RECORDER_JS = r"""
const seen = window.__tetherLiveSeen = [];
const note = () => {
  const el = document.querySelector('#live-status');
  const text = el ? el.textContent.trim() : null;
  if (seen.length === 0 || seen[seen.length - 1] !== text) seen.push(text);
};
note();
if (window.__tetherLiveObserver) window.__tetherLiveObserver.disconnect();
window.__tetherLiveObserver = new MutationObserver(note);
window.__tetherLiveObserver.observe(document.documentElement,
    {subtree: true, childList: true, characterData: true, attributes: true});
return seen.slice();
"""

# Form controls without a label: neither a <label> (with text) of its own,
# nor aria-label, nor aria-labelledby naming an element with text.
UNLABELLED_JS = r"""
const text = el => (el && el.textContent || '').trim();
return Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => (el.getAttribute('type') || '').toLowerCase() !== 'hidden')
  .filter(el => {
    if (el.labels && Array.from(el.labels).some(l => text(l))) return false;
    if ((el.getAttribute('aria-label') || '').trim()) return false;
    const by = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean);
    if (by.some(id => text(document.getElementById(id)))) return false;
    return true;
  })
  .map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
       (el.name ? '[name=' + el.name + ']' : '') + (el.type ? '[type=' + el.type + ']' : '') +
       (typeof el.className === 'string' && el.className.trim()
        ? '.' + el.className.trim().split(/\s+/).join('.') : '') +
       (el.getClientRects().length ? '' : ' (not rendered)') +
       (el.labels && el.labels.length ? ' (' + el.labels.length + ' label(s) without text)' : ''));
"""

# How wide the page is against its window and screen, and what reaches
# past the screen's edge other than inside a box that scrolls or clips.
# (A phone widens the layout viewport, innerWidth, to content too wide for
# it, zooming out: so innerWidth must also stay the screen's width.)
PAGE_WIDTH_JS = r"""
const width = Math.min(window.innerWidth, screen.width), doc = document.documentElement;
const clipped = el => {
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement)
    if (getComputedStyle(p).overflowX !== 'visible') return true;
  return false;
};
const wide = [];
for (const el of document.body.querySelectorAll('*')) {
  const box = el.getBoundingClientRect();
  if (box.width > 0 && box.right > width + 1 && el.getClientRects().length && !clipped(el)) {
    wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
              (el.className && typeof el.className === 'string' && el.className.trim()
               ? '.' + el.className.trim().split(/\s+/).slice(0, 2).join('.') : '') +
              ' right=' + Math.round(box.right));
    if (wide.length >= 8) break;
  }
}
return {scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth,
        innerHeight: window.innerHeight, screenWidth: screen.width, wide: wide};
"""

TIME_PREFIX = re.compile(r"\d\d:\d\d:\d\d")


def numbered(rows, pattern=r"line-(\d+)"):
    """The numbers of the rows that are exactly `pattern` (stripped)."""
    return [int(m.group(1)) for r in rows for m in [re.fullmatch(r"\s*" + pattern, r)] if m]


def check_every_line_once(t, task_id, rows):
    """Problems with line-1..LINES in rows: absent, twice, or not a row of
    their own; with what the hub stored, to tell a UI fault from a
    delivery one."""
    counts = {}
    for number in re.findall(r"line-(\d+)", "\n".join(rows)):
        counts[int(number)] = counts.get(int(number), 0) + 1
    absent = [n for n in range(1, LINES + 1) if counts.get(n, 0) == 0]
    twice = {n: c for n, c in counts.items() if c > 1}
    problems = []
    if absent:
        problems.append(f"{len(absent)} lines missing from #terminal-stdout "
                        f"(first: {['line-%d' % n for n in absent[:10]]})")
    if twice:
        problems.append(f"{len(twice)} lines shown more than once "
                        f"(e.g. {dict(list(twice.items())[:10])})")
    odd = [r for r in rows if "line-" in r and not re.fullmatch(r"line-\d+", r)]
    if odd:
        problems.append(f"rows not exactly 'line-N' (e.g. {odd[:5]})")
    if problems:
        raw = t.request("GET", f"/api/v1/tasks/{task_id}/output?stream=stdout&offset=0")[2]
        hub_lines = len(re.findall(rb"line-\d+\n", raw))
        problems.append(f"(the hub's stored stdout has {hub_lines} line-N lines, {len(raw)} bytes; "
                        f"the terminal has {len(rows)} rows: first {rows[:6]}, last {rows[-4:]})")
    return problems


def scenario_7_dropped_connection(run):
    """Connections cut mid-stream (a proxy): live, reconnecting, live; lines once.
    The browser goes through a TCP proxy that cuts every connection it
    carries while the task prints; every line still shows exactly once."""
    t = run.tether
    proxy = CuttableProxy(t.ui_port)
    run.proxies.append(proxy)
    print(f"  proxy {proxy.url} -> UI port {t.ui_port}", flush=True)
    b = Browser(run, "operator-proxied", base=proxy.url)
    b.sign_in(t.operator_token, OPERATOR, "operator")
    task_id = b.submit_task(SLOW_LINES_COMMAND)
    run.cleanup_tasks.append(task_id)
    print(f"  task {task_id}", flush=True)

    def live(d):
        numbers = numbered(b.screen_rows("#terminal-stdout") or [])
        return (b.text("#live-status"), b.text("#task-state"), max(numbers) if numbers else None)

    def is_live(v, after=0):
        return (v is not None and v[0] is not None and re.search(r"\blive\b", v[0], re.I)
                and v[1] is not None and re.search(r"\brunning\b", v[1], re.I)
                and v[2] is not None and v[2] > after)
    _, _, newest = b.wait(
        f"#live-status 'live', #task-state 'running' and line-{CUT_AT} or later in "
        "#terminal-stdout", live, lambda v: is_live(v, CUT_AT - 1))
    api_state = t.task(task_id).get("state")
    check(api_state == "running" and newest < LINES,
          f"the task is {api_state!r} with line-{newest} on screen before the cut: "
          "the cut would not be mid-stream")
    b.screenshot("dropped-before-cut")

    seen = b.driver.execute_script(LIVE_STATUS_RECORDER_JS)
    open_before = proxy.open_connections()
    accepted_before = proxy.accepted
    cut = proxy.cut()
    print(f"  cut {cut} connection(s) with line-{newest} on screen "
          f"(#live-status so far: {seen})", flush=True)
    check(cut >= 1, f"the proxy carried no connection to cut ({open_before} open): "
          "the page's event stream does not go through it")

    # #live-status leaves "live" (reconnecting), then reads live again.
    def statuses(d):
        return d.execute_script("return (window.__tetherLiveSeen || []).slice()")

    def left_and_back(seen):
        if not seen:
            return False
        away = [i for i, s in enumerate(seen) if not re.search(r"\blive\b", s or "", re.I)]
        return bool(away) and any(re.search(r"\blive\b", s or "", re.I)
                                  for s in seen[away[0] + 1:])
    seen = b.wait("#live-status to leave 'live' after the cut and read 'live' again "
                  "(the values it took, in order)", statuses, left_and_back)
    print(f"  #live-status took {seen}; the proxy accepted {proxy.accepted - accepted_before} "
          "new connection(s) since the cut", flush=True)
    _, _, after_cut = b.wait(
        f"#live-status 'live' and a line after line-{newest} once reconnected", live,
        lambda v: is_live(v, newest))
    print(f"  reconnected: line-{after_cut} on screen", flush=True)
    b.screenshot("dropped-reconnected")

    b.wait_text("#task-state", r"^succeeded$", "#task-state to read succeeded")
    t.wait_task_state(task_id, ["succeeded"])
    b.wait_text("#live-status", r"\bended\b", "#live-status to read ended once the task ended")
    b.wait(f"line-{LINES} in #terminal-stdout", lambda d: b.screen_rows("#terminal-stdout"),
           lambda rows: rows is not None and any(r.strip() == f"line-{LINES}" for r in rows))
    stdout = b.read_terminal("#terminal-stdout")
    print(f"  #terminal-stdout: {len(stdout['rows'])} rows read in {stdout['pages']} screens",
          flush=True)
    b.screenshot("dropped-succeeded")
    problems = check_every_line_once(t, task_id, stdout["rows"])
    check(not problems, "; ".join(problems))
    b.quit()
    proxy.close()


def scenario_8_big_output(run):
    """100 MB of stdout: the page shows the tail; #load-earlier adds the MiB before.
    The seam between them is whole lines; the tail is still there."""
    t = run.tether
    task_id = t.submit(BIG_COMMAND)
    run.cleanup_tasks.append(task_id)
    print(f"  task {task_id}: {BIG_BYTES} bytes of stdout, then {BIG_MARKER}", flush=True)
    task = t.wait_task_state(task_id, TERMINAL_STATES, timeout=BIG_TIMEOUT)
    check(task.get("state") == "succeeded",
          f"the 100 MB task ended {task.get('state')!r}: {json.dumps(task)[:600]}")
    # The hub holds it all (else the page cannot be blamed for what it shows).
    status, _, raw = t.request("GET", f"/api/v1/tasks/{task_id}/output?stream=stdout"
                                      f"&offset={BIG_BYTES - 100}")
    check(status == 200 and raw == (BIG_LINE_FORMAT % BIG_LINES).encode() + b"\n"
          + BIG_MARKER.encode() + b"\n",
          f"the hub's stored stdout from offset {BIG_BYTES - 100}: {status} {raw[:300]!r}")

    b = Browser(run, "operator")
    b.sign_in(t.operator_token, OPERATOR, "operator")
    b.open(f"#/tasks/{task_id}")
    b.wait_text("#task-state", r"^succeeded$", "#task-state to read succeeded")
    b.wait(f"{BIG_MARKER} in #terminal-stdout (the tail of the output)",
           lambda d: b.screen_rows("#terminal-stdout"),
           lambda rows: rows is not None and any(r.strip() == BIG_MARKER for r in rows),
           timeout=BIG_TIMEOUT)
    b.wait_visible("#load-earlier")
    b.screenshot("big-tail")

    # The first line of the tail (the first row may be the end of a line).
    top = b.terminal_to_top("#terminal-stdout", pages_per_step=50)
    first = numbered(top, r"big-line-(\d+).*")
    check(first, f"no big-line-N row at the top of #terminal-stdout: {top[:6]}")
    first = min(first)
    check(first > 1, f"the top of #terminal-stdout is already big-line-{first}: "
          "the whole output was loaded, not its tail")
    print(f"  the tail starts at big-line-{first:07d} ({BIG_LINES - first + 1} lines)",
          flush=True)

    b.click("#load-earlier")

    # The terminal now holds earlier lines: page up until one shows.
    def earliest(d):
        b.terminal_key(Keys.PAGE_UP, 50)
        numbers = numbered(b.settled_rows("#terminal-stdout")["rows"], r"big-line-(\d+).*")
        return min(numbers) if numbers else None
    b.wait(f"a line before big-line-{first:07d} in #terminal-stdout after #load-earlier "
           "(paging up)", earliest, lambda n: n is not None and n < first, timeout=BIG_TIMEOUT)
    top = b.terminal_to_top("#terminal-stdout", pages_per_step=50)
    numbers = numbered(top, r"big-line-(\d+).*")
    check(numbers and min(numbers) < first,
          f"after #load-earlier the top of #terminal-stdout is {top[:4]}, "
          f"not before big-line-{first:07d}")
    check(numbers == list(range(numbers[0], numbers[0] + len(numbers))),
          f"the top of #terminal-stdout after #load-earlier is not consecutive lines: "
          f"{top[:8]}")
    print(f"  after #load-earlier the terminal starts at big-line-{min(numbers):07d} "
          f"({first - min(numbers)} lines more)", flush=True)
    b.screenshot("big-earlier-top")

    # Where the MiB loaded meets the tail: whole lines, each once, in order.
    seam = b.terminal_seek("#terminal-stdout", first - 1, r"big-line-(\d+).*")
    full = [r for r in seam if r.strip()]
    numbers = numbered(full, r"big-line-(\d+).*")
    problems = []
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        problems.append("the numbered rows do not follow each other")
    matches = [(r, re.fullmatch(r"big-line-(\d+).*", r)) for r in full]
    if any(len(r) == len(BIG_LINE_FORMAT % 1) for r in full):  # a line fits a row
        odd = [r for r, m in matches if not m or r != BIG_LINE_FORMAT % int(m.group(1))]
    else:  # long lines wrap: each numbered row begins its line
        odd = [r for r, m in matches if m and not (BIG_LINE_FORMAT % int(m.group(1))).startswith(r)]
    if odd:
        problems.append(f"rows that are not whole lines: {odd[:3]}")
    check(not problems, f"around big-line-{first - 1:07d} (where the earlier MiB meets the "
          f"tail) after #load-earlier: {'; '.join(problems)}; rows {seam}")
    print(f"  big-line-{first - 1:07d} and big-line-{first:07d} follow each other whole "
          f"({len(numbers)} rows around them checked)", flush=True)
    bottom = b.terminal_to_bottom("#terminal-stdout", pages_per_step=50)
    check(any(r.strip() == BIG_MARKER for r in bottom),
          f"after #load-earlier the bottom of #terminal-stdout lost {BIG_MARKER}: {bottom[-4:]}")
    check(b.driver.execute_script("return 6 * 7") == 42, "the page does not answer a script")
    error = b.page_error()
    check(not error, f"#error reads {error!r} after #load-earlier")
    b.screenshot("big-earlier-bottom")
    b.quit()


def scenario_9_keyboard_phone(run):
    """A 390x844 phone: keyboard-only sign-in; no sideways scroll; labels.
    Tab to #token, type, Enter; then the agents, tasks, submit and a task's
    pages fit the screen and every form control has a label."""
    t = run.tether
    problems = []
    # A finished task with a longer command, for the tasks page and its own.
    task_id = t.submit("echo phone-task-output; echo a second line of the phone task, "
                       "long enough to wrap on a narrow screen of a phone held upright")
    t.wait_task_state(task_id, ["succeeded"])

    b = Browser(run, "phone", size=PHONE, phone=True)
    b.open()
    b.wait_visible("#signin")
    b.wait_visible("#token")
    width = b.driver.execute_script(PAGE_WIDTH_JS)
    print(f"  window: {width['innerWidth']}x{width['innerHeight']}", flush=True)
    check(width["innerWidth"] == PHONE[0] == width["screenWidth"],
          f"window.innerWidth is {width['innerWidth']} (screen.width {width['screenWidth']}) "
          f"on a {PHONE[0]}x{PHONE[1]} screen")

    # Keyboard only: from the body, Tab until #token has the focus.
    b.driver.execute_script(
        "if (document.activeElement && document.activeElement !== document.body) "
        "document.activeElement.blur();")
    active = "return document.activeElement === document.body ? 'body' : " \
             "(document.activeElement ? (document.activeElement.id || " \
             "document.activeElement.tagName.toLowerCase()) : null)"
    path = [b.driver.execute_script(active)]
    check(path[0] == "body", f"the focus is on {path[0]!r}, not the body, before tabbing")
    for _ in range(30):
        ActionChains(b.driver).send_keys(Keys.TAB).perform()
        path.append(b.driver.execute_script(active))
        if path[-1] == "token":
            break
    check(path[-1] == "token", f"Tab from the body never focused #token: focus went {path}")
    print(f"  Tab: {' -> '.join(map(str, path))}", flush=True)
    ActionChains(b.driver).send_keys(t.operator_token).perform()
    typed = b.driver.execute_script("return document.getElementById('token').value.length")
    check(typed == len(t.operator_token),
          f"#token holds {typed} characters after typing the {len(t.operator_token)} of the token")
    ActionChains(b.driver).send_keys(Keys.ENTER).perform()
    b.wait(f"#whoami to read '{OPERATOR} (operator)' after Enter in #token",
           lambda d: b.text("#whoami"), lambda v: v is not None and OPERATOR in v)
    b.wait_visible(f'#agents-table tr[data-agent="{AGENT}"]')
    fragment = b.driver.execute_script("return location.hash")
    check(fragment in ("", "#", "#/", "#/agents"),
          f"signing in landed on {fragment!r}, not the agents page")

    def page_checks(page):
        width = b.driver.execute_script(PAGE_WIDTH_JS)
        if width["scrollWidth"] > width["innerWidth"] or width["innerWidth"] > PHONE[0]:
            problems.append(f"{page}: the page is wider than the {PHONE[0]} px screen "
                            f"(scrollWidth {width['scrollWidth']}, innerWidth "
                            f"{width['innerWidth']}; reaching past the edge: {width['wide']})")
        if page != "task":
            unlabelled = b.driver.execute_script(UNLABELLED_JS)
            if unlabelled:
                problems.append(f"{page}: controls without a label: {unlabelled}")

    page_checks("agents")
    b.screenshot("phone-agents")
    b.open("#/tasks")
    b.wait_visible(f'#tasks-table tr[data-task="{task_id}"]')
    page_checks("tasks")
    b.open("#/submit")
    b.wait_visible("#submit-form")
    page_checks("submit")
    b.open(f"#/tasks/{task_id}")
    b.wait_text("#task-state", r"^succeeded$", "#task-state to read succeeded")
    b.wait("phone-task-output in #terminal-stdout", lambda d: b.screen_rows("#terminal-stdout"),
           lambda rows: rows is not None and any("phone-task-output" in r for r in rows))
    page_checks("task")
    b.screenshot("phone-task")
    check(not problems, "; ".join(problems))
    b.quit()


def scenario_10_timestamps(run):
    """#show-timestamps: each line starts with HH:MM:SS; unticked, not."""
    t = run.tether
    count = 12
    task_id = t.submit(f"for i in $(seq 1 {count}); do echo ts-line-$i; done")
    t.wait_task_state(task_id, ["succeeded"])
    expected = [f"ts-line-{i}" for i in range(1, count + 1)]
    b = Browser(run, "operator")
    b.sign_in(t.operator_token, OPERATOR, "operator")
    b.open(f"#/tasks/{task_id}")
    b.wait_text("#task-state", r"^succeeded$", "#task-state to read succeeded")

    def lines(d):
        return [r for r in b.settled_rows("#terminal-stdout")["rows"] if r.strip()]
    b.wait(f"{expected[0]} to {expected[-1]} in #terminal-stdout", lines,
           lambda rows: rows == expected)

    def stamped(rows):
        return (len(rows) == count and all(TIME_PREFIX.match(r) for r in rows)
                and all(r.endswith(e) for r, e in zip(rows, expected)))
    checkbox = b.wait_visible("#show-timestamps")
    check(not checkbox.is_selected(), "#show-timestamps is ticked on a task's page before clicking")
    b.click("#show-timestamps")
    rows = b.wait("every non-empty line of #terminal-stdout to start with HH:MM:SS (and "
                  "still end with its text) once #show-timestamps is ticked", lines, stamped)
    print(f"  with timestamps: {rows[0]!r} ... {rows[-1]!r}", flush=True)
    bad = [r for r in rows if not all(int(x) < lim for x, lim in
                                      zip(r[:8].split(":"), (24, 60, 61)))]
    check(not bad, f"timestamps that are not times of day: {bad[:4]}")
    b.screenshot("timestamps-on")
    b.click("#show-timestamps")
    b.wait("the lines of #terminal-stdout without their timestamps once #show-timestamps "
           "is unticked", lines, lambda rows: rows == expected)
    check(not b.find("#show-timestamps").is_selected(), "#show-timestamps is still ticked")
    b.screenshot("timestamps-off")
    b.quit()


SCENARIOS = [
    (1, "sign-in", scenario_1_sign_in),
    (2, "output", scenario_2_output),
    (3, "cancel", scenario_3_cancel),
    (4, "run", scenario_4_run),
    (5, "roles", scenario_5_roles),
    (6, "sign-out", scenario_6_sign_out),
    (7, "dropped-connection", scenario_7_dropped_connection),
    (8, "big-output", scenario_8_big_output),
    (9, "keyboard-phone", scenario_9_keyboard_phone),
    (10, "timestamps", scenario_10_timestamps),
]


# ------------------------------------------------------------------- runner

class Run:
    def __init__(self, shots):
        self.shots = shots
        self.shot_number = 0
        self.browsers = []
        self.cleanup_tasks = []
        self.proxies = []
        self.tether = None

    def screenshot(self, browser, name):
        self.shot_number += 1
        path = os.path.join(self.shots, f"{self.shot_number:02d}-{name}.png")
        try:
            browser.driver.save_screenshot(path)
            print(f"  screenshot {path}", flush=True)
        except WebDriverException as e:
            print(f"  screenshot {path} failed: {e}", flush=True)
        return path

    def close_browsers(self, failed_scenario=None):
        for browser in list(self.browsers):
            if failed_scenario:
                self.screenshot(browser, f"failed-{failed_scenario}-{browser.name}")
                console = browser.console()
                if console:
                    print(f"  browser console ({browser.name}):", flush=True)
                    for line in console[-30:]:
                        print("    " + line, flush=True)
            browser.quit()


def main(argv):
    only = {int(a) for a in argv[1:]} if len(argv) > 1 else None
    shots = os.environ.get("TETHER_SCREENSHOTS") or tempfile.mkdtemp(prefix="tether-ui-shots-")
    os.makedirs(shots, exist_ok=True)
    os.umask(0o077)  # tokens, databases and logs are private

    run = Run(shots)
    results = []

    def on_signal(number, _frame):
        raise SystemExit(128 + number)  # unwinds through the finally below
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    def cleanup():
        run.close_browsers()
        for proxy in run.proxies:
            proxy.close()
        run.proxies = []
        if run.tether:
            run.tether.stop()
            run.tether.remove()
            run.tether = None
    atexit.register(cleanup)

    try:
        try:
            run.tether = Tether()
            run.tether.start()
        except Failure as e:
            print(f"ui_test: setup failed: {e}", flush=True)
            if run.tether:
                for log in (run.tether.hub_log, run.tether.agent_log):
                    print(f"--- {log} (last lines)\n{tail(log)}", flush=True)
            print("0 passed, 1 failed", flush=True)
            return 1
        print(f"ui_test: hub API {run.tether.api}, UI {run.tether.ui}, agent {AGENT}; "
              f"screenshots in {shots}", flush=True)
        for number, name, function in SCENARIOS:
            if only and number not in only:
                continue
            print(f"scenario {number} ({name}): {function.__doc__.strip().splitlines()[0]}",
                  flush=True)
            started = time.monotonic()
            try:
                function(run)
                run.close_browsers()
                results.append((number, name, None))
                print(f"scenario {number} ({name}): passed in {time.monotonic() - started:.1f} s",
                      flush=True)
            except Exception as e:  # a failure of one scenario; the others still run
                if isinstance(e, (Failure, TimeoutException)):
                    reason = str(e)
                else:
                    reason = "".join(traceback.format_exception(e)).rstrip()
                print(f"scenario {number} ({name}): FAILED: {reason}", flush=True)
                run.close_browsers(failed_scenario=f"{number}-{name}")
                results.append((number, name, reason))
            for task_id in run.cleanup_tasks:
                run.tether.cancel(task_id)
            run.cleanup_tasks = []
            for proxy in run.proxies:
                proxy.close()
            run.proxies = []
        failed = [r for r in results if r[2]]
        if failed:
            for log in (run.tether.hub_log, run.tether.agent_log):
                print(f"--- {log} (last lines)\n{tail(log, 30)}", flush=True)
            print("\nfailures:", flush=True)
            for number, name, reason in failed:
                print(f"  scenario {number} ({name}): {reason}", flush=True)
        print(f"screenshots: {shots}", flush=True)
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed", flush=True)
        return 1 if failed or not results else 0
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
