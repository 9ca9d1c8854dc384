// The sign-in form (#signin): an operator token for a session (session.js).
// A refusal shows in #signin-error; the token field is emptied once it
// worked, so the token stays nowhere in the page.

import { byId } from './dom.js';
import { signIn } from './session.js';

// onSignedIn(session) runs after a successful sign-in.
export function setUpSignInForm(onSignedIn) {
  const form = byId('signin');
  const input = byId('token');
  const button = byId('signin-submit');
  const errorEl = byId('signin-error');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      errorEl.textContent = 'Enter an operator token.';
      input.focus();
      return;
    }
    button.disabled = true;
    errorEl.textContent = '';
    try {
      const session = await signIn(token);
      input.value = '';
      onSignedIn(session);
    } catch (err) {
      errorEl.textContent = err.status === 401
        ? 'Sign-in failed: ' + (err.message || 'that token is not a valid operator token') + '.'
        : err.message;
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  });
}
