// A piece that looks like another design than the one declared (`design_check`): on the QC
// desk, this photo beside the latest photo of the likely design that the model passed, or a
// line naming that design when there is none yet.
import { el } from './dom.js';
import { t } from './qc-lang.js';

/**
 * The section for `result.design_check` when it flagged the piece, else null. `load(img, path)`
 * fills an <img> from an API path (the desk's authenticated loader).
 */
export function designPhotos(item, insp, load) {
  const check = insp.result?.design_check;
  if (!check?.flagged) return null;
  const head = t('qc.design.head', { declared: check.declared, likely: check.likely_design });
  const parts = [el('h3', {}, t('qc.design.title')), el('p', {}, head)];
  const ex = check.example;
  if (ex) {
    const photo = (insp.photos || [])[0];
    const mine = el('img', { class: 'photo-img', alt: t('qc.photo.alt', { n: 1, piece: item.piece_id }) });
    const theirs = el('img', {
      class: 'photo-img',
      alt: t('qc.design.example.alt', { design: check.likely_design, piece: ex.piece_id }),
    });
    if (photo) load(mine, photo.url);
    load(theirs, `/api/v1/inspections/${ex.inspection_id}/photos/${ex.position}`);
    parts.push(
      el(
        'div',
        { class: 'reused-pair' },
        el('figure', { class: 'photo' }, el('div', { class: 'frame' }, mine),
          el('figcaption', {}, t('qc.design.now', { declared: check.declared }))),
        el('figure', { class: 'photo' }, el('div', { class: 'frame' }, theirs),
          el('figcaption', {}, t('qc.design.example', { design: check.likely_design, id: ex.inspection_id }))),
      ),
    );
  } else {
    parts.push(el('p', {}, t('qc.design.no_example', { design: check.likely_design })));
  }
  return el('section', { class: 'reused design-check', 'aria-label': t('qc.design.title') }, ...parts);
}
