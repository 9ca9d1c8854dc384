// The frame around the pages (index.html): which view shows (loading,
// sign-in, or the app), and the header: who is signed in, the link to the
// current page, and #nav-submit, which is in the page only for a role that
// may submit (docs/ui.md).

import { byId, h } from './dom.js';

const NAV_OF_PAGE = {
  agents: 'nav-agents', tasks: 'nav-tasks', task: 'nav-tasks', runs: 'nav-runs',
  run: 'nav-runs', submit: 'nav-submit',
};
const NAV_IDS = ['nav-agents', 'nav-tasks', 'nav-runs', 'nav-submit'];

function showView(which) {
  byId('loading').hidden = true;
  byId('signin-view').hidden = which !== 'signin';
  byId('app-view').hidden = which !== 'app';
}

// The sign-in form, with `message` (why the session ended, or nothing).
export function showSignInView(message) {
  document.title = 'Sign in · Tether';
  showView('signin');
  byId('signin-error').textContent = message || '';
  byId('token').focus();
}

// The app's frame for `session` (the page goes in <main>); mayWrite: the
// role may submit.
export function showAppView(session, mayWrite) {
  byId('whoami').textContent = session.name + ' (' + session.role + ')';
  const navSubmit = byId('nav-submit');
  if (mayWrite && !navSubmit) {
    byId('nav-list').appendChild(h('li', { id: 'nav-submit-item' },
      h('a', { id: 'nav-submit', href: '#/submit' }, 'Submit')));
  } else if (!mayWrite && navSubmit) {
    navSubmit.parentNode.remove();
  }
  byId('signin-error').textContent = '';
  showView('app');
}

// aria-current="page" on the header's link to the page shown.
export function markCurrentNav(pageName) {
  for (const id of NAV_IDS) {
    const link = byId(id);
    if (!link) continue;
    if (NAV_OF_PAGE[pageName] === id) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}
