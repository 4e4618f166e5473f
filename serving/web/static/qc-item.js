// One review item on the QC desk: photos zoomed to the located piece (the crop the model saw,
// heatmap over it; the full photo on demand), why it is here, model scores against their review
// bands, spec checks. Colours: green pass, amber review / borderline, red fail, everywhere.
import { $, el, money, show } from './dom.js';
import { ago, callWord, checkLabel, defectName, lang, reasonWord, t, unitWord } from './qc-lang.js';
import { reasonLine } from './words.js';

const num = (v, digits = 2) => (v === null || v === undefined ? '—' : Number(v).toFixed(digits));

/** The call of one score against its band [t_low, t_high]: pass, review or fail. */
export function call(score, band) {
  if (!band) return '';
  return score >= band[1] ? 'fail' : score >= band[0] ? 'review' : 'pass';
}

/** The class or check that brought the item here, as a few words ("scratch 0.92"). */
export function topFinding(result) {
  const v = result.verdict || {};
  if ((v.checks || []).length) return checkLabel(v.checks[0]);
  const scores = Object.entries(v.scores || {}).sort((a, b) => b[1] - a[1]);
  return scores.length ? `${defectName(scores[0][0])} ${num(scores[0][1])}` : t('qc.top.none');
}

/** The line under the item's title: artisan, order, why queued, the model's verdict, age, pay. */
export function itemMeta(item) {
  const bits = [
    t('qc.meta.artisan', { name: item.artisan_name }),
    item.order_id ? t('qc.meta.order', { id: item.order_id }) : t('qc.meta.no_order'),
    t('qc.meta.reason', { reason: reasonWord(item.reason) }),
    t('qc.meta.verdict', { verdict: callWord(item.inspection?.verdict ?? 'none') }),
    t('qc.meta.priority', { p: Number(item.priority).toFixed(2) }),
    ago(item.created_at),
  ];
  if (item.payout_minor !== null && item.payout_minor !== undefined) {
    bits.push(t('qc.meta.pays', { amount: money(item.payout_minor, 'KES', 'en-KE') }));
  }
  return bits.join(' · ');
}

// ---- photos ---------------------------------------------------------------------------------

/**
 * A photo's figure. Zoomed: the frame shows only the heatmap's crop box (the located piece,
 * as the model saw it) and the heatmap covers the frame. Full: the whole photo, the heatmap
 * placed over its box.
 */
export function photoFigure({ photo, entry, label, zoomed, heatmapOn, load }) {
  const n = photo.position;
  const img = el('img', { class: 'photo-img', alt: t('qc.photo.alt', { n: n + 1, piece: label }) });
  const frame = el('div', { class: 'frame' }, img);
  load(img, photo.url);
  if (entry) {
    const [w, h] = entry.image_size;
    const [x0, y0, x1, y1] = entry.crop_box;
    const [cw, ch] = [x1 - x0, y1 - y0];
    const heat = el('img', { class: 'heat', alt: t('qc.heat.alt', { cls: defectName(entry.class), n: n + 1 }) });
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
  const what = t(entry && zoomed ? 'qc.photo.piece' : 'qc.photo.full');
  const caption = t('qc.photo.caption', { n: n + 1, what, w: photo.width, h: photo.height });
  return el('figure', { class: 'photo' }, frame, el('figcaption', {}, caption));
}

// ---- reasons, scores, spec checks -----------------------------------------------------------

/** Why the item is here. English: the verdict's own words for QC staff; Kiswahili: the
 * catalogue's sentence for the same reason (the one the artisan reads). */
export function renderReasons(result, designId) {
  const sw = lang() !== 'en';
  const lines = (result.verdict?.reasons || []).map((r) => (sw ? reasonLine(r, result, designId, lang()) : r.text));
  for (const [i, gate] of (result.gate || []).entries()) {
    const messages = gate.messages?.[lang()] || gate.messages?.en || [];
    for (const m of messages) lines.push(t('qc.reasons.photo', { n: i + 1, message: m }));
  }
  if (!lines.length) lines.push(t('qc.reasons.none'));
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
  if (!band) return t('qc.band.none');
  if (band[0] >= band[1]) return t('qc.band.fail_only', { t: num(band[1]) });
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
        el('th', { scope: 'row', class: flagged ? `call ${c}` : null }, defectName(name)),
        el('td', {}, el('span', { class: 'score-cell' }, el('span', { class: `score ${c}` }, num(score, 3)), bandBar(score, band))),
        el('td', { class: 'band-text' }, bandText(band)),
        el('td', { class: `call ${c}` }, callWord(c)),
      );
    });
  $('#scores tbody').replaceChildren(
    ...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 4 }, t('qc.scores.none')))]),
  );
}

export function renderSpec(result, designId) {
  const checks = result.spec_checks || [];
  const rows = [];
  for (const c of checks) {
    const unit = c.unit ? ` ${unitWord(c.unit)}` : '';
    const expected = c.tolerance ? `${num(c.expected)} ± ${num(c.tolerance)}${unit}` : `${num(c.expected)}${unit}`;
    rows.push(
      el(
        'tr',
        { class: `spec-${c.result}`, dataset: { check: c.name } },
        el('th', { scope: 'row' }, checkLabel(c.name)),
        el('td', {}, `${num(c.measured)}${unit}`),
        el('td', {}, expected),
        el('td', { class: `call ${c.result}` }, callWord(c.result)),
      ),
    );
    // Why, only where there is something to explain: a full-width line under the check.
    if (c.result !== 'pass') rows.push(el('tr', { class: 'why' }, el('td', { colspan: 4 }, checkWhy(c, result, designId))));
  }
  $('#spec tbody').replaceChildren(...rows);
  show($('#spec'), checks.length > 0);
  show($('#spec-empty'), checks.length === 0);
}

/** Why a check did not pass: its own English words, or the catalogue's sentence in Kiswahili. */
function checkWhy(check, result, designId) {
  if (lang() === 'en') return check.reason;
  return reasonLine({ code: `${check.name}_${check.result}` }, result, designId, lang()) || check.reason;
}
