// One review item on the QC desk: photos zoomed to the located piece (the crop the model saw,
// heatmap over it; the full photo on demand), why it is here, model scores against their review
// bands, spec checks. Colours: green pass, amber review / borderline, red fail, everywhere.
import { $, el, show } from './dom.js';

const num = (v, digits = 2) => (v === null || v === undefined ? '—' : Number(v).toFixed(digits));
export const checkName = (name) => name.replace(/^size_/, 'size: ').replaceAll('_', ' ');

/** The call of one score against its band [t_low, t_high]: pass, review or fail. */
export function call(score, band) {
  if (!band) return '';
  return score >= band[1] ? 'fail' : score >= band[0] ? 'review' : 'pass';
}

/** The class or check that brought the item here, as a few words ("scratch 0.92"). */
export function topFinding(result) {
  const v = result.verdict || {};
  if ((v.checks || []).length) return checkName(v.checks[0]);
  const scores = Object.entries(v.scores || {}).sort((a, b) => b[1] - a[1]);
  return scores.length ? `${scores[0][0]} ${num(scores[0][1])}` : 'no model score';
}

// ---- photos ---------------------------------------------------------------------------------

/**
 * A photo's figure. Zoomed: the frame shows only the heatmap's crop box (the located piece,
 * as the model saw it) and the heatmap covers the frame. Full: the whole photo, the heatmap
 * placed over its box.
 */
export function photoFigure({ photo, entry, label, zoomed, heatmapOn, load }) {
  const n = photo.position;
  const img = el('img', { class: 'photo-img', alt: `Photo ${n + 1} of ${label}` });
  const frame = el('div', { class: 'frame' }, img);
  load(img, photo.url);
  if (entry) {
    const [w, h] = entry.image_size;
    const [x0, y0, x1, y1] = entry.crop_box;
    const [cw, ch] = [x1 - x0, y1 - y0];
    const heat = el('img', { class: 'heat', alt: `Heatmap of ${entry.class} over photo ${n + 1}` });
    heat.hidden = !heatmapOn;
    if (zoomed) {
      frame.classList.add('zoomed');
      frame.style.aspectRatio = `${cw} / ${ch}`;
      frame.style.width = `min(100%, calc(62vh * ${(cw / ch).toFixed(4)}))`;
      Object.assign(img.style, {
        width: `${(100 * w) / cw}%`,
        height: `${(100 * h) / ch}%`,
        left: `${(-100 * x0) / cw}%`,
        top: `${(-100 * y0) / ch}%`,
      });
      Object.assign(heat.style, { left: '0', top: '0', width: '100%', height: '100%' });
    } else {
      Object.assign(heat.style, {
        left: `${(100 * x0) / w}%`,
        top: `${(100 * y0) / h}%`,
        width: `${(100 * cw) / w}%`,
        height: `${(100 * ch) / h}%`,
      });
    }
    frame.append(heat);
    load(heat, `${photo.url}/heatmap`);
  }
  const what = entry && zoomed ? 'the piece' : 'full photo';
  const caption = `Photo ${n + 1} · ${what} · ${photo.width}×${photo.height} px`;
  return el('figure', { class: 'photo' }, frame, el('figcaption', {}, caption));
}

// ---- reasons, scores, spec checks -----------------------------------------------------------

export function renderReasons(result) {
  const lines = (result.verdict?.reasons || []).map((r) => r.text);
  for (const [i, gate] of (result.gate || []).entries()) {
    for (const m of gate.messages?.en || []) lines.push(`Photo ${i + 1}: ${m}`);
  }
  if (!lines.length) lines.push('The model gave no reason (audit sample or no model result).');
  $('#item-reasons').replaceChildren(...lines.map((l) => el('li', {}, l)));
}

/** A 0..1 bar: amber from t_low, red from t_high, a mark at the score. */
function bandBar(score, band) {
  const pct = (v) => `${(100 * Math.max(0, Math.min(1, v))).toFixed(1)}%`;
  const zones = [];
  if (band) {
    const review = el('span', { class: 'zone review' });
    Object.assign(review.style, { left: pct(band[0]), width: pct(band[1] - band[0]) });
    const fail = el('span', { class: 'zone fail' });
    Object.assign(fail.style, { left: pct(band[1]), width: pct(1 - band[1]) });
    zones.push(review, fail);
  }
  const mark = el('span', { class: `mark ${call(score, band)}` });
  mark.style.left = pct(score);
  return el('span', { class: 'band-bar', 'aria-hidden': 'true' }, ...zones, mark);
}

/** The band in few characters: review from t_low, fail from t_high ("fail ≥ 0.99" if equal). */
function bandText(band) {
  if (!band) return 'no band';
  if (band[0] >= band[1]) return `fail ≥ ${num(band[1])}`;
  return `${num(band[0])} / ${num(band[1])}`;
}

export function renderScores(result, modelLabels) {
  const scores = result.verdict?.scores || (result.scores || [])[0] || {};
  const bands = result.thresholds?.bands || {};
  const rows = Object.entries(scores)
    .sort((a, b) => b[1] - a[1])
    .map(([name, score]) => {
      const band = bands[name];
      const c = call(score, band);
      const flagged = modelLabels.includes(name);
      return el(
        'tr',
        { class: flagged ? 'flagged' : null, dataset: { class: name } },
        el('th', { scope: 'row', class: flagged ? `call ${c}` : null }, name),
        el('td', {}, el('span', { class: 'score-cell' }, el('span', { class: `score ${c}` }, num(score, 3)), bandBar(score, band))),
        el('td', { class: 'band-text' }, bandText(band)),
        el('td', { class: `call ${c}` }, c),
      );
    });
  $('#scores tbody').replaceChildren(
    ...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 4 }, 'No model scores.'))]),
  );
}

export function renderSpec(checks) {
  const rows = [];
  for (const c of checks) {
    const unit = c.unit ? ` ${c.unit}` : '';
    const expected = c.tolerance ? `${num(c.expected)} ± ${num(c.tolerance)}${unit}` : `${num(c.expected)}${unit}`;
    rows.push(
      el(
        'tr',
        { class: `spec-${c.result}`, dataset: { check: c.name } },
        el('th', { scope: 'row' }, checkName(c.name)),
        el('td', {}, `${num(c.measured)}${unit}`),
        el('td', {}, expected),
        el('td', { class: `call ${c.result}` }, c.result.replace('_', ' ')),
      ),
    );
    // Why, only where there is something to explain: a full-width line under the check.
    if (c.result !== 'pass') rows.push(el('tr', { class: 'why' }, el('td', { colspan: 4 }, c.reason)));
  }
  $('#spec tbody').replaceChildren(...rows);
  show($('#spec'), checks.length > 0);
  show($('#spec-empty'), checks.length === 0);
}
