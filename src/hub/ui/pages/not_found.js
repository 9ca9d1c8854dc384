// The page for a fragment no route knows.

import { h } from '../dom.js';
import { heading } from '../page_parts.js';

export function renderNotFoundPage(ctx, main) {
  main.appendChild(heading('Not found'));
  main.appendChild(h('p', null, 'There is no such page. ',
    h('a', { href: '#/agents' }, 'Go to the agents.')));
}
