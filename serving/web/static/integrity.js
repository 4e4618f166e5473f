// Reused photos on the QC desk: for an item held as `photo_reused`, the photo sent now beside
// the earlier photo it matches (another piece's), with what that earlier inspection was.
import { el } from './dom.js';

/**
 * Side-by-side pairs for `result.integrity.matches`, or null when the item has none.
 * `loadImage(img, path)` fills an <img> from an API path (the desk's authenticated loader).
 * Text is English and Kiswahili, like every page.
 */
export function reusedPhotos(item, insp, result, loadImage) {
  const matches = result.integrity?.matches || [];
  if (!matches.length) return null;
  const photos = new Map((insp.photos || []).map((p) => [p.position, p]));
  const pairs = matches.map((m) => {
    const now = photos.get(m.photo);
    const mine = el('img', { class: 'photo-img', alt: `Photo ${m.photo + 1} of ${item.piece_id}` });
    const earlier = el('img', {
      class: 'photo-img',
      alt: `Earlier photo ${m.position + 1} of ${m.piece_id}`,
    });
    if (now) loadImage(mine, now.url);
    loadImage(earlier, `/api/v1/inspections/${m.inspection_id}/photos/${m.position}`);
    const who = m.same_artisan ? 'same artisan / fundi yule yule' : 'another artisan / fundi mwingine';
    const where = m.order_id ? `order ${m.order_id}, piece ${m.piece_id}` : `piece ${m.piece_id}`;
    return el(
      'div',
      { class: 'reused-pair' },
      el('figure', { class: 'photo' }, el('div', { class: 'frame' }, mine),
        el('figcaption', {}, `This photo ${m.photo + 1} / Picha hii ${m.photo + 1}`)),
      el('figure', { class: 'photo' }, el('div', { class: 'frame' }, earlier),
        el('figcaption', {},
          `Earlier / Iliyotangulia: inspection ${m.inspection_id} · ${where} · ${who}`
          + ` · ${m.distance_bits} of 64 bits differ / biti ${m.distance_bits} kati ya 64 zinatofautiana`)),
    );
  });
  return el(
    'section',
    { class: 'reused', 'aria-label': 'Matched photos' },
    el('h3', {}, 'Photo already sent for another piece / Picha iliyokwisha tumwa kwa kipande kingine'),
    ...pairs,
  );
}
