// The page's error banner, #error (role="alert", docs/ui.md): the API's own
// message of what went wrong, until the next success or page clears it.

import { byId } from './dom.js';

export function showError(message) { byId('error').textContent = message || ''; }

export function clearError() { showError(''); }

// A failure of a request; one that was dealt with already (a 401 sent the
// page back to sign-in) is not shown.
export function reportError(err) {
  if (err && err.handled) return;
  showError(err && err.message ? err.message : String(err));
}
