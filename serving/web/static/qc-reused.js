// Reused photos on the QC desk: for an item held as `photo_reused`, the photo sent now beside
// the earlier photo it matches (another piece's), with what that earlier inspection was. The
// pair itself is shared with the admin's list of an artisan's matches (qc-matches.js).
import { el } from './dom.js';
import { t } from './qc-lang.js';

/** Where the earlier photo was sent: "order O-1, piece K1" or "piece K1". */
export const whereText = (m) =>
  m.order_id
    ? t('qc.reused.where.order', { order: m.order_id, piece: m.piece_id })
    : t('qc.reused.where.piece', { piece: m.piece_id });

/** Whose the earlier photo was, as the match says it (null is not known to be the same). */
export const whoText = (m) => t(m.same_artisan ? 'qc.reused.same' : 'qc.reused.other');

/**
 * One match side by side: `now` (the held inspection's photo {position, url}, if known) and the
 * earlier photo `m` matched, captioned `then`. `load(img, path)` fills an <img> from an API path
 * (the desk's authenticated loader); `piece` is the held piece, for the alt text.
 */
export function matchPair(m, now, piece, load, then) {
  const mine = el('img', { class: 'photo-img', alt: t('qc.photo.alt', { n: m.photo + 1, piece }) });
  const earlier = el('img', {
    class: 'photo-img',
    alt: t('qc.reused.earlier.alt', { n: m.position + 1, piece: m.piece_id }),
  });
  if (now) load(mine, now.url);
  load(earlier, m.url || `/api/v1/inspections/${m.inspection_id}/photos/${m.position}`);
  return el(
    'div',
    { class: 'reused-pair' },
    el('figure', { class: 'photo' }, el('div', { class: 'frame' }, mine),
      el('figcaption', {}, t('qc.reused.now', { n: m.photo + 1 }))),
    el('figure', { class: 'photo' }, el('div', { class: 'frame' }, earlier),
      el('figcaption', {}, then)),
  );
}

/**
 * Side-by-side pairs for `result.integrity.matches`, or null when the item has none.
 * `load(img, path)` fills an <img> from an API path (the desk's authenticated loader).
 */
export function reusedPhotos(item, insp, load) {
  const matches = insp.result?.integrity?.matches || [];
  if (!matches.length) return null;
  const photos = new Map((insp.photos || []).map((p) => [p.position, p]));
  const pairs = matches.map((m) =>
    matchPair(m, photos.get(m.photo), item.piece_id, load, t('qc.reused.then', {
      id: m.inspection_id, where: whereText(m), who: whoText(m), bits: m.distance_bits,
    })),
  );
  return el(
    'section',
    { class: 'reused', 'aria-label': t('qc.reused.title') },
    el('h3', {}, t('qc.reused.title')),
    ...pairs,
  );
}
