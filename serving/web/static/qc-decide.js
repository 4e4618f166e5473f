// The QC desk's decision form: defect labels (none ticked in advance), "other" with a note, the
// rule that a rejection names what is wrong, and the time the reviewer spent on the item.
import { $, el, money, show } from './dom.js';

/** Milliseconds an item has been on screen, leaving out time the tab was hidden. */
export class Stopwatch {
  constructor() {
    this.hiddenMs = 0;
    this.hiddenAt = null;
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) this.hiddenAt = performance.now();
      else if (this.hiddenAt !== null) {
        this.hiddenMs += performance.now() - this.hiddenAt;
        this.hiddenAt = null;
      }
    });
    this.start();
  }

  start() {
    this.startedAt = performance.now();
    this.hiddenMs = 0;
    this.hiddenAt = document.hidden ? this.startedAt : null;
  }

  elapsed() {
    const hidden = this.hiddenMs + (this.hiddenAt !== null ? performance.now() - this.hiddenAt : 0);
    return Math.max(0, Math.round(performance.now() - this.startedAt - hidden));
  }
}

export function renderDecision(item, taxonomy) {
  const d = item.decision;
  // A newer inspection of the piece closed this item: it is judged there, not here.
  const replaced = !d && item.status === 'replaced';
  show($('#decide'), !d && !replaced);
  show($('#decision'), Boolean(d) || replaced);
  $('#decide-error').textContent = '';
  if (replaced) {
    $('#decision-line').textContent = 'Replaced: the artisan sent newer photos of this piece, judged on their own.';
    $('#decision-labels').textContent = '';
    show($('#decision-note'), false);
    return;
  }
  if (d) {
    const when = new Date(d.decided_at).toLocaleString();
    $('#decision-line').textContent = `${d.decision === 'approve' ? 'Approved' : 'Rejected'} by ${d.decided_by_name} · ${when}`;
    $('#decision-labels').textContent = d.labels.length ? `Labels: ${d.labels.join(', ')}` : 'No defect labels.';
    $('#decision-note').textContent = d.note || '';
    show($('#decision-note'), Boolean(d.note));
    return;
  }
  const flagged = new Set(item.model_labels || []);
  // Nothing is ticked in advance: the labels are the reviewer's own finding, and pre-ticking the
  // model's guesses would teach the next model its own mistakes.
  const choice = (value, text, title, badge) =>
    el(
      'label',
      { class: 'label-choice', title },
      el('input', { type: 'checkbox', name: value === 'other' ? 'other' : 'label', value }),
      ` ${text}`,
      badge ? el('span', { class: 'badge' }, 'model') : null,
    );
  $('#labels').replaceChildren(
    el('legend', {}, 'Defects actually present (a rejection needs one, or other + a note)'),
    ...taxonomy.map((t) => choice(t.name, t.name, t.description, flagged.has(t.name))),
    choice('other', 'other (say what in the note)', 'A defect with no label here', false),
  );
  $('#note').value = '';
}

/** The form as the API takes it, and what is wrong with it for `kind` (null: nothing). */
export function readForm(kind) {
  const labels = [...document.querySelectorAll('#labels input[name="label"]:checked')].map((i) => i.value);
  const other = Boolean(document.querySelector('#labels input[name="other"]:checked'));
  const note = $('#note').value.trim();
  let problem = null;
  if (other && !note) problem = 'You ticked "other": say in the note what is wrong.';
  else if (kind === 'reject' && labels.length === 0 && !other) {
    problem = 'To reject, tick the defects you see (or "other" and say what in the note): the artisan is told why, and the next model learns from it.';
  }
  return { labels, note, problem };
}

export function orderLine(order) {
  const accepted = order.pieces.filter((p) => p.state === 'accepted').length;
  const payout = order.payout ? `payout ${order.payout.status}` : 'no payout yet';
  const fmt = (minor) => money(minor, order.currency, 'en-KE');
  return `Order ${order.id} is ${order.status}: ${accepted} of ${order.pieces.length} pieces accepted, ${fmt(order.accepted_minor)} of ${fmt(order.total_minor)}; ${payout}.`;
}

/** Whether the order waits only for someone to release its payout (KITO_AUTO_PAYOUT off). */
export function releasable(order) {
  return order.status !== 'paid' && !order.payout && order.pieces.every((p) => p.state === 'accepted');
}
