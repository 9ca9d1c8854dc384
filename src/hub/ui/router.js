// Which page the URL's fragment names (#/agents, #/tasks/ID, ...: docs/ui.md)
// and showing it: the page shown before is disposed of (its timers, streams
// and terminals stop) and <main> is emptied for the new one.

import { clear } from './dom.js';
import { PageContext } from './page_context.js';

// {page, id?} for a fragment; page 'notfound' for one no route knows. A
// "?..." after the path is ignored; segments are URL-decoded.
export function parseRoute(hash) {
  let path = hash.replace(/^#/, '');
  const q = path.indexOf('?');
  if (q >= 0) path = path.slice(0, q);
  const parts = path.split('/').filter((p) => p !== '').map((p) => {
    try { return decodeURIComponent(p); } catch (e) { return p; }
  });
  const [first, id] = parts;
  if (parts.length === 0 || (first === 'agents' && parts.length === 1)) return { page: 'agents' };
  if (first === 'tasks' && parts.length === 1) return { page: 'tasks' };
  if (first === 'tasks' && parts.length === 2) return { page: 'task', id };
  if (first === 'runs' && parts.length === 1) return { page: 'runs' };
  if (first === 'runs' && parts.length === 2) return { page: 'run', id };
  if (first === 'submit' && parts.length === 1) return { page: 'submit' };
  return { page: 'notfound' };
}

export class Router {
  // pages: name -> render(ctx, main, route); beforeShow(route) runs before
  // each page is drawn.
  constructor(main, pages, beforeShow) {
    this.main = main;
    this.pages = pages;
    this.beforeShow = beforeShow;
    this.context = null;
  }

  // Shows the page of location.hash; moveFocus puts the focus on its h1
  // (a navigation, for screen readers and the keyboard).
  show(moveFocus) {
    this.leave();
    const route = parseRoute(location.hash);
    this.beforeShow(route);
    this.context = new PageContext();
    this.pages[route.page](this.context, this.main, route);
    if (moveFocus) this.focusHeading();
  }

  // No page: the one shown stops and goes.
  leave() {
    if (this.context) {
      this.context.dispose();
      this.context = null;
    }
    clear(this.main);
  }

  focusHeading() {
    const h1 = this.main.querySelector('h1');
    if (h1) h1.focus();
  }
}
