// The web UI of tether-hub (docs/ui.md): one page, routed by the URL's
// fragment, that shows and changes everything through the operator API
// (docs/protocol.md 11) with a session cookie. This module only wires the
// others together: the API to the session, the session to the views, the
// fragment to the pages.
//
// Native ES modules, no build step, no framework, no request to any other
// host; xterm.js is loaded before this by index.html (task_terminal.js).

import { configureApi } from './api.js';
import { byId } from './dom.js';
import { clearError } from './page_error.js';
import { renderAgentsPage } from './pages/agents.js';
import { renderNotFoundPage } from './pages/not_found.js';
import { renderRunPage } from './pages/run.js';
import { renderRunsPage } from './pages/runs.js';
import { renderSubmitPage } from './pages/submit.js';
import { renderTaskPage } from './pages/task.js';
import { renderTasksPage } from './pages/tasks.js';
import { Router } from './router.js';
import {
  canWrite, csrfToken, onSessionEnded, resumeSession, sessionEnded, signedIn, signOut,
} from './session.js';
import { markCurrentNav, showAppView, showSignInView } from './shell.js';
import { setUpSignInForm } from './signin_form.js';

const PAGES = {
  agents: renderAgentsPage,
  tasks: renderTasksPage,
  task: renderTaskPage,
  runs: renderRunsPage,
  run: renderRunPage,
  submit: renderSubmitPage,
  notfound: renderNotFoundPage,
};

configureApi({ csrfToken, onUnauthorized: sessionEnded });

const router = new Router(byId('main'), PAGES, (route) => {
  clearError();
  markCurrentNav(route.page);
});

function enterApp(session, moveFocus) {
  showAppView(session, canWrite());
  router.show(moveFocus);
}

function leaveApp(message) {
  router.leave();
  clearError();
  showSignInView(message);
}

onSessionEnded(leaveApp);
setUpSignInForm((session) => enterApp(session, true));

byId('signout').addEventListener('click', async () => {
  const button = byId('signout');
  button.disabled = true;
  try {
    await signOut();
  } finally {
    button.disabled = false;
  }
  leaveApp('');
});

window.addEventListener('hashchange', () => {
  if (signedIn()) router.show(true);
});

// A reload keeps the session (the cookie): straight to the page if so.
resumeSession().then((session) => {
  if (session) enterApp(session, false);
  else leaveApp('');
}, (err) => leaveApp(err.message));
