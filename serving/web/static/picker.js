// The artisan's piece picker: one card per piece of the chosen order with what happened to it,
// big enough to tap on a 360 px phone. The piece that needs the artisan comes first chosen.
import { el } from './dom.js';
import { t } from './i18n.js';
import { designName, pieceReason } from './words.js';

// What the artisan should do, by the server's reason for a pending piece.
const NEEDS_PHOTO = new Set([
  'no photo submitted yet',
  'the inspection could not run; please submit the photos again',
]);

/** The piece's state named for what happened: its i18n key. `queued`: its photo waits to send. */
export function pieceState(piece, queued) {
  if (queued) return 'card.queued';
  if (piece.state === 'accepted') return 'card.accepted';
  if (piece.state === 'rejected') return 'card.rejected';
  const reason = piece.reason || '';
  if (reason.startsWith('retake needed')) return 'card.retake';
  if (NEEDS_PHOTO.has(reason)) return 'card.no_photo';
  if (reason.startsWith('photos received')) return 'card.received';
  return 'card.waiting_qc';
}

/** Whether the artisan can do something for this piece now (send a first or a new photo). */
export function needsAction(piece, order, queued) {
  if (order.status === 'paid' || piece.state === 'accepted' || queued) return false;
  return ['card.retake', 'card.no_photo', 'card.rejected'].includes(pieceState(piece, queued));
}

/** Whether a photo may be sent for this piece at all (not on a paid order or an accepted piece). */
export function canUpload(piece, order) {
  return order.status !== 'paid' && piece.state !== 'accepted';
}

/** The piece to choose: `keep` if still there, else the first needing action, else the first. */
export function preselect(order, keep, queuedIds) {
  const pieces = order ? order.pieces : [];
  return (
    pieces.find((p) => p.piece_id === keep) ||
    pieces.find((p) => needsAction(p, order, queuedIds.has(p.piece_id))) ||
    pieces[0] ||
    null
  );
}

/** The cards, as radio-like buttons (aria-pressed); `onPick(piece)` on a tap. */
export function pieceCards(order, chosenId, queuedIds, lang, onPick) {
  return order.pieces.map((p) => {
    const queued = queuedIds.has(p.piece_id);
    const state = pieceState(p, queued);
    const act = needsAction(p, order, queued);
    // The server's reason only where it says more than the state: what to fix, QC's finding.
    const says = ['card.retake', 'card.rejected'].includes(state) || (state === 'card.no_photo' && p.latest_inspection_id);
    const why = says ? pieceReason(p.reason, lang) : '';
    return el(
      'li',
      {},
      el(
        'button',
        {
          type: 'button',
          class: `piece-card ${state.slice(5)}${act ? ' act' : ''}`,
          'aria-pressed': String(p.piece_id === chosenId),
          dataset: { piece: p.piece_id },
          onclick: () => onPick(p),
        },
        el('span', { class: 'card-name' }, designName(p.design_id, lang)),
        el('span', { class: 'card-id' }, p.piece_id),
        el('span', { class: 'card-state' }, t(state)),
        why ? el('span', { class: 'card-why' }, why) : null,
      ),
    );
  });
}
