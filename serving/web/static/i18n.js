// The pages' words in English and Swahili, and the one mechanism that shows them: the artisan
// page's catalogue is below; the QC desk adds its own (qc-strings.js) with addStrings. Reasons for
// a verdict or a held piece are not here: they come from the server's catalogue (words.js,
// qc_model/reason_messages.py).

export const LANGS = ['en', 'sw'];
const STORAGE_KEY = 'kito.lang';

const STRINGS = {
  en: {
    'app.title': 'Kito QC',
    'signin.title': 'Sign in',
    'signin.token': 'Your access code',
    'signin.help': 'The code you were given by Kito. It stays on this phone.',
    'signin.submit': 'Sign in',
    'signin.bad': 'This code is not valid. Check it and try again.',
    'signin.role': 'This page is for artisans. QC staff use the QC desk page.',
    'signout': 'Sign out',
    'hello': 'Hello, {name}',
    'order': 'Order',
    'piece': 'Piece',
    'orders.none': 'You have no orders yet.',
    'photo.step': 'Photo of the piece on the Kito card',
    'photo.take': 'Take photo',
    'photo.again': 'Choose another photo',
    'photo.ready': 'Photo ready: {w} × {h} px, {kb} kB',
    'photo.as_is': 'Photo ready: {kb} kB',
    'photo.preparing': 'Preparing the photo…',
    'photo.send': 'Send photo',
    'photo.pick_piece': 'Choose the order and the piece first.',
    'upload.sending': 'Sending… {pct}%',
    'upload.checking': 'Checking the photo…',
    'upload.dropped': 'The connection dropped. Your photo is kept and is sent again by itself, or tap Try again.',
    'upload.retry': 'Try again',
    'upload.refused': 'The photo was not accepted: {message}',
    'upload.session': 'Please sign in again.',
    'verdict.title': 'Result',
    'verdict.pass': 'Accepted',
    'verdict.fail': 'Not accepted',
    'verdict.review': 'A QC person will check it',
    'verdict.retake': 'Please take the photo again',
    'verdict.pass.help': 'This piece passed the check.',
    'verdict.fail.help': 'The check found a problem. QC staff will confirm it.',
    'verdict.review.help': 'The check was not sure. QC staff will look at your photo.',
    'verdict.retake.help': 'The photo could not be used. What to do:',
    'verdict.received': 'Photo received. It will be checked soon.',
    'verdict.failed': 'Photo saved, but it could not be checked. QC staff will look at it.',
    'verdict.reasons': 'Why:',
    'retake': 'Take a new photo',
    'payout.title': 'Payment for this order',
    'payout.status': 'Order',
    'payout.total': 'Order value',
    'payout.accepted': 'Accepted so far',
    'payout.pending': 'Waiting',
    'payout.payment': 'Payment',
    'payout.none': 'Not paid yet: every piece must be accepted first',
    'payout.ready': 'All pieces accepted: payment is being prepared',
    'payout.pending_transfer': 'Payment pending: it is being sent',
    'payout.delivered': 'Payment sent',
    'order.open': 'Open',
    'order.paid': 'Paid',
    'piece.pending': 'Waiting',
    'piece.accepted': 'Accepted',
    'piece.rejected': 'Rejected',
    'error.network': 'No connection to the server. Try again when you have network.',
    'error.generic': 'Something went wrong: {message}',
    'offline': 'No network. Photos you take are kept on this phone and sent when the network returns.',
    'upload.offline': 'No network: the photo is kept on this phone and will be sent when the network returns.',
    'no_upload.paid': 'Every piece of this order is accepted: no more photos are needed.',
    'no_upload.accepted': 'This piece is accepted: no photo is needed.',
    'card.no_photo': 'Needs a photo',
    'card.retake': 'Needs a new photo',
    'card.received': 'Photo received',
    'card.waiting_qc': 'Waiting for QC',
    'card.accepted': 'Accepted',
    'card.rejected': 'Not accepted',
    'card.queued': 'Photo waiting to send',
    'outbox.title': 'Photos on this phone',
    'outbox.waiting': 'Waiting for network',
    'outbox.sending': 'Sending…',
    'outbox.sent': 'Sent',
    'outbox.refused': 'Not accepted: {message}',
    'outbox.remove': 'Remove',
    'payout.sent': 'Payment sent',
    'order.paying': 'Payment pending',
    'order.sent': 'Payment sent',
    'order.short.paying': 'Paying',
    'order.short.sent': 'Paid',
  },
  sw: {
    'app.title': 'Kito QC',
    'signin.title': 'Ingia',
    'signin.token': 'Msimbo wako wa kuingia',
    'signin.help': 'Msimbo uliopewa na Kito. Unabaki kwenye simu hii.',
    'signin.submit': 'Ingia',
    'signin.bad': 'Msimbo huu si sahihi. Uangalie na ujaribu tena.',
    'signin.role': 'Ukurasa huu ni wa mafundi. Wafanyakazi wa QC watumie ukurasa wa QC.',
    'signout': 'Toka',
    'hello': 'Habari, {name}',
    'order': 'Oda',
    'piece': 'Kipande',
    'orders.none': 'Bado huna oda.',
    'photo.step': 'Picha ya kipande juu ya kadi ya Kito',
    'photo.take': 'Piga picha',
    'photo.again': 'Chagua picha nyingine',
    'photo.ready': 'Picha iko tayari: {w} × {h} px, {kb} kB',
    'photo.as_is': 'Picha iko tayari: {kb} kB',
    'photo.preparing': 'Inaandaa picha…',
    'photo.send': 'Tuma picha',
    'photo.pick_piece': 'Chagua oda na kipande kwanza.',
    'upload.sending': 'Inatuma… {pct}%',
    'upload.checking': 'Inakagua picha…',
    'upload.dropped': 'Mtandao umekatika. Picha yako imehifadhiwa na itatumwa tena yenyewe, au bonyeza Jaribu tena.',
    'upload.retry': 'Jaribu tena',
    'upload.refused': 'Picha haikukubaliwa: {message}',
    'upload.session': 'Tafadhali ingia tena.',
    'verdict.title': 'Matokeo',
    'verdict.pass': 'Imekubaliwa',
    'verdict.fail': 'Haijakubaliwa',
    'verdict.review': 'Mtu wa QC ataikagua',
    'verdict.retake': 'Tafadhali piga picha tena',
    'verdict.pass.help': 'Kipande hiki kimepita ukaguzi.',
    'verdict.fail.help': 'Ukaguzi umepata tatizo. Wafanyakazi wa QC watalithibitisha.',
    'verdict.review.help': 'Ukaguzi haukuwa na uhakika. Wafanyakazi wa QC wataiangalia picha yako.',
    'verdict.retake.help': 'Picha haikuweza kutumika. Cha kufanya:',
    'verdict.received': 'Picha imepokelewa. Itakaguliwa hivi karibuni.',
    'verdict.failed': 'Picha imehifadhiwa lakini haikuweza kukaguliwa. Wafanyakazi wa QC wataiangalia.',
    'verdict.reasons': 'Sababu:',
    'retake': 'Piga picha mpya',
    'payout.title': 'Malipo ya oda hii',
    'payout.status': 'Oda',
    'payout.total': 'Thamani ya oda',
    'payout.accepted': 'Iliyokubaliwa hadi sasa',
    'payout.pending': 'Inasubiri',
    'payout.payment': 'Malipo',
    'payout.none': 'Bado haijalipwa: kila kipande lazima kikubaliwe kwanza',
    'payout.ready': 'Vipande vyote vimekubaliwa: malipo yanaandaliwa',
    'payout.pending_transfer': 'Malipo yanasubiri: yanatumwa',
    'payout.delivered': 'Malipo yametumwa',
    'order.open': 'Wazi',
    'order.paid': 'Imelipwa',
    'piece.pending': 'Inasubiri',
    'piece.accepted': 'Kimekubaliwa',
    'piece.rejected': 'Kimekataliwa',
    'error.network': 'Hakuna mtandao. Jaribu tena ukipata mtandao.',
    'error.generic': 'Kuna tatizo: {message}',
    'offline': 'Hakuna mtandao. Picha unazopiga zinahifadhiwa kwenye simu hii na zitatumwa mtandao ukirudi.',
    'upload.offline': 'Hakuna mtandao: picha imehifadhiwa kwenye simu hii na itatumwa mtandao ukirudi.',
    'no_upload.paid': 'Kila kipande cha oda hii kimekubaliwa: hakuna picha zaidi zinazohitajika.',
    'no_upload.accepted': 'Kipande hiki kimekubaliwa: hakuna picha inayohitajika.',
    'card.no_photo': 'Kinahitaji picha',
    'card.retake': 'Kinahitaji picha mpya',
    'card.received': 'Picha imepokelewa',
    'card.waiting_qc': 'Inasubiri QC',
    'card.accepted': 'Kimekubaliwa',
    'card.rejected': 'Hakikukubaliwa',
    'card.queued': 'Picha inasubiri kutumwa',
    'outbox.title': 'Picha kwenye simu hii',
    'outbox.waiting': 'Inasubiri mtandao',
    'outbox.sending': 'Inatuma…',
    'outbox.sent': 'Imetumwa',
    'outbox.refused': 'Haikukubaliwa: {message}',
    'outbox.remove': 'Ondoa',
    'payout.sent': 'Malipo yametumwa',
    'order.paying': 'Malipo yanasubiri',
    'order.sent': 'Malipo yametumwa',
    'order.short.paying': 'Inalipwa',
    'order.short.sent': 'Imelipwa',
  },
};

let current = 'en';

/** Add a page's own catalogue ({en: {...}, sw: {...}}, keys prefixed by page) to the one above. */
export function addStrings(table) {
  for (const code of LANGS) Object.assign(STRINGS[code], table[code]);
}

export function initialLang() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (LANGS.includes(saved)) return saved;
  return (navigator.language || '').toLowerCase().startsWith('sw') ? 'sw' : 'en';
}

export function lang() {
  return current;
}

export function setLang(value) {
  if (!LANGS.includes(value)) throw new Error(`unknown language ${value}`);
  current = value;
  localStorage.setItem(STORAGE_KEY, value);
  document.documentElement.lang = value;
}

/** The string for `key` in the current language, with {name} placeholders filled (as text). */
export function t(key, vars = {}) {
  const s = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** Fill every [data-i18n] element's text and every [data-i18n-attr="attr:key"] attribute. */
export function translatePage(root = document) {
  for (const node of root.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll('[data-i18n-attr]')) {
    const [attr, key] = node.dataset.i18nAttr.split(':');
    node.setAttribute(attr, t(key));
  }
}
