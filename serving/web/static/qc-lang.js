// The QC desk in the reviewer's language: the EN / Kiswahili switch (remembered as on the artisan
// page, i18n.js), names from the server's catalogue (words.js), and the status lines that must
// be said again in the new language when it changes.
import { age } from './dom.js';
import { initialLang, lang, setLang, t, translatePage } from './i18n.js';
import './qc-strings.js';
import { designName, phrase } from './words.js';

export { t, lang };

/** A defect class as QC staff read it: the taxonomy name in English, the catalogue's in Kiswahili. */
export function defectName(name) {
  if (lang() === 'en') return name;
  return phrase(`defect.${name}.label`, lang()) || name;
}

/** A design's name in the desk's language; `fallback` (the API's name) when the catalogue has none. */
export function designLabel(id, fallback) {
  if (lang() === 'en') return fallback || id;
  const name = designName(id, lang());
  return name === id ? fallback || id : name;
}

/** The catalogue's words for `key`, or `fallback` where the catalogue has none. */
export const keyOr = (key, fallback) => {
  const s = t(key);
  return s === key ? fallback : s;
};

/** A spec check's name ("size: loop length"). */
export const checkLabel = (name) =>
  keyOr(`qc.check.${name}`, name.replace(/^size_/, 'size: ').replaceAll('_', ' '));

/** pass / review / fail / borderline / retake as a word of the desk's language. */
export const callWord = (call) => (call ? keyOr(`qc.call.${call}`, call.replace('_', ' ')) : '');

/** A count's unit ("bead"), units of measure ("mm") as they are. */
export const unitWord = (unit) => keyOr(`qc.unit.${unit}`, unit);

/** "3 min ago" from an ISO timestamp. */
export function ago(iso) {
  const [n, unit] = age(iso).split(' ');
  // Kiswahili agrees with one ("dakika 1 iliyopita") and many ("dakika 5 zilizopita").
  return t(`qc.ago.${unit}${n === '1' ? '.one' : ''}`, { n });
}

/** Why an item is in the queue (fail, review, audit), in words. */
export function reasonWord(reason) {
  return keyOr(reason === 'audit' ? 'qc.reason.audit.item' : `qc.reason.${reason}`, reason);
}

/** An API error in words: no connection, or the server's own message. */
export const errorText = (err) =>
  err.status === 0 ? t('qc.error.network') : t('qc.error.server', { message: err.message });

/** Why signing in did not work. */
export function signInError(err) {
  if (err.status === 401) return t('qc.signin.bad');
  if (err.status === 403) return t('qc.signin.role');
  return err.message ? errorText(err) : t('qc.signin.failed');
}

/** The locale for dates in the desk's language. */
export const dateLocale = () => (lang() === 'sw' ? 'sw-KE' : undefined);

// Lines on screen made of words and data (a status, an error): kept as functions, said again
// in the new language on a switch.
const lines = new Map();

/** Show `make()` in `node` now and after each language switch; null clears it. */
export function sayIn(node, make) {
  if (make) lines.set(node, make);
  else lines.delete(node);
  node.textContent = make ? make() : '';
}

/** Wire the .lang buttons and show the page in the remembered language; `redraw` re-renders
 * what the page draws itself. */
export function startLang(redraw) {
  const apply = (value) => {
    setLang(value);
    translatePage();
    for (const b of document.querySelectorAll('.lang button')) {
      b.setAttribute('aria-pressed', String(b.dataset.lang === value));
    }
    for (const [node, make] of lines) node.textContent = make();
    redraw();
  };
  for (const b of document.querySelectorAll('.lang button')) b.addEventListener('click', () => apply(b.dataset.lang));
  apply(initialLang());
}
