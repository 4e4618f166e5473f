// The QC desk's decision form: defect labels (none ticked in advance), "other" with a note, the
// rule that a rejection names what is wrong, and the time the reviewer spent on the item.
import { $, el, show } from './dom.js';
import { dateLocale, defectName, lang, sayIn, t } from './qc-lang.js';
import { phrase } from './words.js';

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

/** A defect's hover text: the taxonomy's description in English, the catalogue's sentence in
 * Kiswahili. */
function describe(defect) {
  if (lang() === 'en') return defect.description;
  return phrase(`defect.${defect.name}.fail`, lang()) || defect.description;
}

export function renderDecision(item, taxonomy) {
  const d = item.decision;
  // A newer inspection of the piece closed this item: it is judged there, not here.
  const replaced = !d && item.status === 'replaced';
  show($('#decide'), !d && !replaced);
  show($('#decision'), Boolean(d) || replaced);
  sayIn($('#decide-error'), null);
  if (replaced) {
    $('#decision-line').textContent = t('qc.decided.replaced');
    $('#decision-labels').textContent = '';
    show($('#decision-note'), false);
    return;
  }
  if (d) {
    const when = new Date(d.decided_at).toLocaleString(dateLocale());
    const by = { name: d.decided_by_name, when };
    $('#decision-line').textContent = t(d.decision === 'approve' ? 'qc.decided.approve' : 'qc.decided.reject', by);
    $('#decision-labels').textContent = d.labels.length
      ? t('qc.decided.labels', { labels: d.labels.map(defectName).join(', ') })
      : t('qc.decided.no_labels');
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
      badge ? el('span', { class: 'badge' }, t('qc.labels.model')) : null,
    );
  $('#labels').replaceChildren(
    el('legend', {}, t('qc.labels.legend')),
    ...taxonomy.map((d) => choice(d.name, defectName(d.name), describe(d), flagged.has(d.name))),
    choice('other', t('qc.other'), t('qc.other.title'), false),
  );
  $('#note').value = '';
}

/** Run `draw` (which renders the form afresh) keeping the labels ticked and the note typed. */
export function keepingForm(draw) {
  const ticked = [...document.querySelectorAll('#labels input:checked')].map((i) => i.value);
  const note = $('#note').value;
  draw();
  for (const box of document.querySelectorAll('#labels input')) box.checked = ticked.includes(box.value);
  $('#note').value = note;
}

/** The form as the API takes it, and the catalogue key of what is wrong with it for `kind`
 * (null: nothing). */
export function readForm(kind) {
  const labels = [...document.querySelectorAll('#labels input[name="label"]:checked')].map((i) => i.value);
  const other = Boolean(document.querySelector('#labels input[name="other"]:checked'));
  const note = $('#note').value.trim();
  let problem = null;
  if (other && !note) problem = 'qc.problem.other';
  else if (kind === 'reject' && labels.length === 0 && !other) problem = 'qc.problem.reject';
  return { labels, note, problem };
}
