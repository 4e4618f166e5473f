// What happened to the artisan's photos: the verdict of the last one sent, with its reasons in
// the chosen language (words.js), and the state of each photo queued on the phone.
import { $, el, show } from './dom.js';
import { lang, t } from './i18n.js';
import { reasonLines } from './words.js';

/** `insp`: the inspection JSON plus `designId`, or null for nothing to show. */
export function renderVerdict(insp) {
  show($('#result'), insp !== null);
  if (!insp) return;
  const box = $('#verdict');
  box.tabIndex = -1;
  show($('#retake'), false);
  if (insp.status !== 'inspected') {
    box.className = 'verdict pending';
    box.textContent = t(insp.status === 'failed' ? 'verdict.failed' : 'verdict.received');
    $('#verdict-help').textContent = '';
    $('#reasons').replaceChildren();
    return;
  }
  const v = insp.verdict;
  box.className = `verdict ${v}`;
  box.textContent = t(`verdict.${v}`);
  $('#verdict-help').textContent = t(`verdict.${v}.help`);
  show($('#retake'), v === 'retake');
  const lines = reasonLines(insp.result || {}, insp.designId, lang());
  $('#reasons').replaceChildren(...lines.map((text) => el('li', {}, text)));
}

/** The photo queue, newest first; a refused photo can be removed with `onRemove(key)`. */
export function renderOutbox(records, onRemove) {
  const rows = [...records].reverse().slice(0, 6);
  show($('#outbox-box'), rows.length > 0);
  $('#outbox').replaceChildren(
    ...rows.map((r) => {
      const refused = r.state === 'refused';
      const text = refused ? t('outbox.refused', { message: r.error?.message || '' }) : t(`outbox.${r.state}`);
      const remove = refused ? el('button', { type: 'button', class: 'quiet', onclick: () => onRemove(r.key) }, t('outbox.remove')) : null;
      return el(
        'li',
        { class: `outbox-item ${r.state}`, dataset: { key: r.key, piece: r.fields.piece_id } },
        el('span', { class: 'ob-piece' }, r.fields.piece_id),
        el('span', { class: 'ob-state' }, text),
        remove,
      );
    }),
  );
}
