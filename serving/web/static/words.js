// The artisan's words for verdict reasons and piece states, from the server's catalogue
// (qc_model/reason_messages.py, served as /app/words.json): never a check code or a raw score.

let table = { phrases: { en: {}, sw: {} }, designs: {} };
const CACHE_KEY = 'kito.app.words';

/** Load the catalogue (the service worker answers offline); the last copy if even that fails. */
export async function loadWords() {
  try {
    const res = await fetch('/app/words.json');
    if (res.ok) {
      table = await res.json();
      localStorage.setItem(CACHE_KEY, JSON.stringify(table));
      return;
    }
  } catch {
    /* offline without a service worker yet: fall back to the copy below */
  }
  const saved = localStorage.getItem(CACHE_KEY);
  if (saved) table = JSON.parse(saved);
}

/** One phrase of the catalogue in `lang` (English if missing there), or null if there is none. */
export function phrase(key, lang, vars = {}) {
  const s = table.phrases[lang]?.[key] ?? table.phrases.en?.[key];
  if (s === undefined) return null;
  return s.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : ''));
}

export function designName(id, lang) {
  const d = table.designs[id];
  return d ? d[lang] || d.en : id;
}

function pieceWord(designId, lang) {
  const d = table.designs[designId];
  return (d && phrase(`word.${d.type}`, lang)) || phrase('word.pendant', lang) || '';
}

/** "about 13 mm": whole millimetres, one decimal below 2 mm where the tenth matters. */
function aboutMm(mm) {
  return mm >= 2 ? String(Math.round(mm)) : mm.toFixed(1);
}

const CHECK = /^(size_(\w+)|finish_colour|finish_palette|component_count|pair_size|pair_colour)_(fail|borderline)$/;

/** One verdict reason ({code, text}) of `result` (the inspection's result JSON) as a sentence. */
export function reasonLine(reason, result, designId, lang) {
  const code = reason.code;
  const retake = phrase(`retake.${code}`, lang);
  if (retake) return retake;
  const piece = pieceWord(designId, lang);
  const m = CHECK.exec(code);
  if (m) {
    const [, name, measure, outcome] = m;
    const check = (result.spec_checks || []).find((c) => c.name === name) || {};
    if (measure && check.measured != null && check.expected) {
      const off = check.measured - check.expected;
      if (Math.abs(off) > 0.3 * check.expected) return phrase('check.size_unsure', lang);
      const way = off > 0 ? 'over' : 'under';
      const line = phrase(`check.${name}.${way}.${outcome}`, lang, { piece, mm: aboutMm(Math.abs(off)) });
      if (line) return line;
    }
    if (name.startsWith('finish_')) return phrase(`check.finish.${outcome}`, lang, { piece });
    if (name === 'component_count') {
      const parts = phrase(`parts.${check.unit}`, lang) || phrase('parts.bead', lang);
      const counted = check.measured == null ? '?' : Math.round(check.measured);
      const expected = check.expected == null ? '?' : Math.round(check.expected);
      return phrase(`check.component_count.${outcome}`, lang, { counted, expected, parts });
    }
    const line = phrase(`check.${name}.${outcome}`, lang, { piece });
    if (line) return line;
  }
  // Held for a person (photos disagree, unusual surface, a photo sent before): one sentence.
  if (code !== 'unknown' && phrase(`reason.${code}`, lang)) return phrase(`reason.${code}`, lang);
  const band = result.thresholds?.bands?.[code];
  const score = result.verdict?.scores?.[code];
  if (band && score != null) {
    const line = phrase(`defect.${code}.${score >= band[1] ? 'fail' : 'review'}`, lang);
    if (line) return line;
  }
  return phrase('reason.unknown', lang);
}

/** Every reason of an inspection's result, each once, in `lang`. */
export function reasonLines(result, designId, lang) {
  const reasons = result.verdict?.reasons || [];
  let lines = reasons.map((r) => reasonLine(r, result, designId, lang));
  if (lines.length === 0 && result.gate) {
    const codes = result.gate.flatMap((g) => g.retake_codes || []);
    lines = codes.map((code) => reasonLine({ code }, result, designId, lang));
  }
  return [...new Set(lines.filter(Boolean))];
}

/** English retake instructions (as the server joins them into a piece's reason) -> `lang`. */
function retranslate(detail, lang) {
  const en = table.phrases.en || {};
  return detail
    .split('; ')
    .map((part) => {
      const key = Object.keys(en).find((k) => (k.startsWith('retake.') || k.startsWith('piece.')) && en[k] === part);
      return key ? phrase(key, lang) : null;
    });
}

/** Why a piece is held (the server's English phrase) in `lang`; a QC note stays as written. */
export function pieceReason(reason, lang) {
  if (!reason) return '';
  const whole = phrase(`piece.${reason}`, lang);
  if (whole) return whole;
  const cut = reason.indexOf(': ');
  const head = cut > 0 ? reason.slice(0, cut) : reason;
  const detail = cut > 0 ? reason.slice(cut + 2) : '';
  const lead = phrase(`piece.${head}`, lang);
  if (!lead) return phrase('reason.unknown', lang);
  if (!detail) return lead;
  if (head === 'retake needed') {
    const parts = retranslate(detail.replace(/\.\.\.$/, ''), lang).filter(Boolean);
    return parts.length ? `${lead}: ${parts.join('; ')}` : lead;
  }
  if (head === 'rejected by QC') {
    // Labels are taxonomy names; anything else is the reviewer's own note, kept as written.
    const labels = detail.split(', ');
    const named = labels.map((l) => phrase(`defect.${l}.label`, lang));
    return `${lead}: ${named.every(Boolean) ? named.join(', ') : detail}`;
  }
  return lead;
}
