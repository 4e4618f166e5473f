// The QC desk's queue pane: one card per review item, and the design / artisan filters' choices,
// drawn in the desk's language.
import { $, el, show } from './dom.js';
import { topFinding } from './qc-item.js';
import { ago, designLabel, reasonWord, t } from './qc-lang.js';

/** The queue's filters as the API takes them (GET /api/v1/reviews). */
export function queueFilters() {
  return {
    status: $('#f-status').value,
    reason: $('#f-reason').value,
    design_id: $('#f-design').value,
    artisan_id: $('#f-artisan').value,
  };
}

/** The design filter: "Any", then "<id> · <name>" for each design of the catalogue. */
export function renderDesignFilter(designs) {
  const select = $('#f-design');
  const chosen = select.value;
  select.replaceChildren(
    el('option', { value: '' }, t('qc.any')),
    ...[...designs].map(([id, name]) => el('option', { value: id }, `${id} · ${designLabel(id, name)}`)),
  );
  select.value = chosen;
}

/** The artisan filter, from the artisans seen in the queue so far (the API has no user list). */
export function renderArtisanFilter(artisans) {
  const select = $('#f-artisan');
  const chosen = select.value;
  const names = [...artisans].sort((a, b) => a[1].localeCompare(b[1]));
  select.replaceChildren(
    el('option', { value: '' }, t('qc.any')),
    ...names.map(([id, name]) => el('option', { value: id }, `${name} (#${id})`)),
  );
  select.value = chosen;
}

/** The queue's cards; `open(i)` opens the i-th item. */
export function renderQueue(items, index, designs, open) {
  show($('#queue-empty'), items.length === 0);
  $('#queue').replaceChildren(
    ...items.map((item, i) =>
      el(
        'li',
        {},
        el(
          'button',
          {
            type: 'button',
            class: `queue-item reason-${item.reason}`,
            'aria-current': i === index ? 'true' : null,
            dataset: { id: item.id },
            onclick: () => open(i),
          },
          el('span', { class: 'qi-piece' }, `${item.piece_id} · ${designLabel(item.design_id, designs.get(item.design_id))}`),
          el('span', { class: 'qi-artisan' }, item.artisan_name),
          el(
            'span',
            { class: 'qi-meta' },
            el('span', { class: `qi-reason ${item.reason}` }, reasonWord(item.reason)),
            ` · ${topFinding(item.inspection?.result || {})} · ${ago(item.created_at)}`,
          ),
        ),
      ),
    ),
  );
}
