// Small helpers that build and change elements.
//
// Everything the API answers (agent names, labels, commands, task output) is
// hostile input: it reaches the page only through text nodes, textContent
// and attribute values set here, never through innerHTML.

function appendChildren(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) { appendChildren(el, c); continue; }
    el.appendChild(typeof c === 'string' || typeof c === 'number'
      ? document.createTextNode(String(c)) : c);
  }
}

// h('a', {href: '#/x', class: 'y'}, 'text', child, ...): strings become text
// nodes; a function prop (onclick, ...) becomes an event listener; true is
// an empty attribute; null, undefined and false leave the attribute out.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  appendChildren(el, children);
  return el;
}

export function byId(id) { return document.getElementById(id); }

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

// Replaces what `el` holds with `content` (text or elements).
export function setContent(el, ...content) {
  clear(el);
  appendChildren(el, content);
}

// Puts `child` into `slot` (present) or takes it out (absent): controls that
// docs/ui.md says are "shown only while ..." are absent from the page
// otherwise, not merely hidden.
export function setPresent(slot, child, present) {
  if (present && child.parentNode !== slot) slot.appendChild(child);
  if (!present && child.parentNode === slot) slot.removeChild(child);
}
