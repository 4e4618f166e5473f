// The artisan page: sign in, pick order and piece, photograph it, send, read the verdict and
// the order's payment status. Phone-first; every string the user sees comes from i18n.js or,
// for retake instructions, from the server in the chosen language.
import { Api, ApiError, newKey } from './api.js';
import { $, el, money, show } from './dom.js';
import { has, initialLang, lang, setLang, t, translatePage } from './i18n.js';
import { shrinkPhoto, uploadPhoto } from './photo.js';

const api = new Api('kito.app.token');
const state = {
  user: null,
  orders: [],
  order: null, // the selected order (fresh from the server after each upload)
  photo: null, // {blob, width, height, shrunk, key, url}: kept until sent, for a retry
  inspection: null, // the last answer, re-drawn when the language changes
  busy: false,
};

function setStatus(text, isError = false) {
  const node = $('#status');
  node.textContent = text;
  node.classList.toggle('error', isError);
}

function describeError(err) {
  if (err instanceof ApiError && err.status === 0) return t('error.network');
  return t('error.generic', { message: err.message });
}

// ---- language -------------------------------------------------------------------------------

function applyLang(value) {
  setLang(value);
  translatePage();
  for (const b of document.querySelectorAll('.lang button')) {
    b.setAttribute('aria-pressed', String(b.dataset.lang === value));
  }
  if (state.user) $('#hello').textContent = t('hello', { name: state.user.name });
  renderOrders();
  renderPhoto();
  renderVerdict();
  renderPayout();
}

// ---- sign in --------------------------------------------------------------------------------

async function signIn(token) {
  const me = await api.signIn(token, ['artisan', 'admin'], t('signin.role'));
  state.user = me;
  $('#hello').textContent = t('hello', { name: me.name });
  show($('#signin'), false);
  show($('#work'));
  await loadOrders();
}

function signOut() {
  api.token = null;
  Object.assign(state, { user: null, orders: [], order: null, inspection: null });
  clearPhoto();
  for (const id of ['#work', '#result', '#payout']) show($(id), false);
  show($('#signin'));
  $('#token').value = '';
  $('#token').focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const token = $('#token').value.trim();
  const error = $('#signin-error');
  error.textContent = '';
  if (!token) {
    error.textContent = t('signin.bad');
    return;
  }
  try {
    await signIn(token);
  } catch (err) {
    if (err.status === 401) error.textContent = t('signin.bad');
    else if (err.status === 403) error.textContent = t('signin.role');
    else error.textContent = describeError(err);
  }
}

// ---- orders and pieces ----------------------------------------------------------------------

async function loadOrders() {
  try {
    const page = await api.get('/api/v1/orders', { limit: 100 });
    // Open orders first: those are the ones still waiting for photos.
    state.orders = page.data.sort((a, b) => (a.status === 'open' ? 0 : 1) - (b.status === 'open' ? 0 : 1));
  } catch (err) {
    if (err.status === 401) return signOut();
    setStatus(describeError(err), true);
    return;
  }
  const keep = state.order && state.orders.find((o) => o.id === state.order.id);
  state.order = keep || state.orders[0] || null;
  renderOrders();
  renderPayout();
}

function orderLabel(order) {
  return `${order.id} · ${t(`order.${order.status}`)}`;
}

function pieceLabel(piece) {
  return `${piece.piece_id} · ${piece.design_name || piece.design_id} · ${t(`piece.${piece.state}`)}`;
}

function renderOrders() {
  const orderSelect = $('#order');
  const pieceSelect = $('#piece');
  const chosenPiece = pieceSelect.value;
  orderSelect.replaceChildren(
    ...state.orders.map((o) => el('option', { value: o.id, selected: o === state.order }, orderLabel(o))),
  );
  show($('#no-orders'), state.user !== null && state.orders.length === 0);
  const pieces = state.order ? state.order.pieces : [];
  pieceSelect.replaceChildren(
    ...pieces.map((p) => el('option', { value: p.piece_id }, pieceLabel(p))),
  );
  // Keep the artisan's choice; otherwise the first piece that still needs a photo.
  const next = pieces.find((p) => p.piece_id === chosenPiece) || pieces.find((p) => p.state !== 'accepted') || pieces[0];
  if (next) pieceSelect.value = next.piece_id;
  orderSelect.disabled = pieceSelect.disabled = state.orders.length === 0;
  updateSend();
}

function selectedPiece() {
  if (!state.order) return null;
  return state.order.pieces.find((p) => p.piece_id === $('#piece').value) || null;
}

// ---- photo ----------------------------------------------------------------------------------

function clearPhoto() {
  if (state.photo && state.photo.url) URL.revokeObjectURL(state.photo.url);
  state.photo = null;
  $('#photo').value = '';
  renderPhoto();
}

function renderPhoto() {
  const p = state.photo;
  show($('#preview'), p !== null);
  $('#photo-label').textContent = t(p ? 'photo.again' : 'photo.take');
  if (p) {
    $('#preview-img').src = p.url;
    const kb = Math.round(p.blob.size / 1024);
    $('#preview-caption').textContent = p.shrunk
      ? t('photo.ready', { w: p.width, h: p.height, kb })
      : t('photo.as_is', { kb });
  }
  updateSend();
}

function updateSend() {
  $('#send').disabled = state.busy || !state.photo || !selectedPiece();
}

async function onPhotoChosen() {
  const file = $('#photo').files[0];
  if (!file) return;
  if (state.photo && state.photo.url) URL.revokeObjectURL(state.photo.url);
  state.photo = null;
  show($('#retry'), false);
  setStatus(t('photo.preparing'));
  const shrunk = await shrinkPhoto(file);
  // One key per photo: a retry of this photo after a dropped connection is the same request,
  // so the server answers with the first result instead of inspecting (and counting) twice.
  state.photo = { ...shrunk, key: newKey(), url: URL.createObjectURL(shrunk.blob) };
  setStatus(selectedPiece() ? '' : t('photo.pick_piece'));
  renderPhoto();
}

// ---- upload ---------------------------------------------------------------------------------

function progress(fraction) {
  const pct = Math.round(fraction * 100);
  $('#progress').value = pct;
  $('#progress-label').textContent = t('upload.sending', { pct });
}

async function send() {
  const piece = selectedPiece();
  if (!piece || !state.photo || state.busy) return;
  state.busy = true;
  updateSend();
  show($('#retry'), false);
  setStatus('');
  show($('#progress-box'));
  progress(0);
  try {
    const inspection = await uploadPhoto({
      token: api.token,
      fields: { design_id: piece.design_id, piece_id: piece.piece_id, order_id: state.order.id },
      photo: state.photo.blob,
      filename: state.photo.shrunk ? 'photo.jpg' : state.photo.blob.name || 'photo',
      idempotencyKey: state.photo.key,
      onProgress: progress,
      onSent: () => {
        $('#progress').value = 100;
        $('#progress-label').textContent = t('upload.checking');
      },
    });
    state.inspection = inspection;
    clearPhoto();
    renderVerdict();
    show($('#progress-box'), false);
    await refreshOrder();
    $('#result').scrollIntoView({ behavior: 'smooth', block: 'start' });
    $('#verdict').focus();
  } catch (err) {
    show($('#progress-box'), false);
    if (err.status === 0) {
      setStatus(t('upload.dropped'), true);
      show($('#retry'));
    } else if (err.status === 401) {
      signOut();
      $('#signin-error').textContent = t('upload.session');
    } else {
      setStatus(t('upload.refused', { message: err.message }), true);
    }
  } finally {
    state.busy = false;
    updateSend();
  }
}

async function refreshOrder() {
  if (!state.order) return;
  try {
    const fresh = await api.get(`/api/v1/orders/${encodeURIComponent(state.order.id)}`);
    state.orders = state.orders.map((o) => (o.id === fresh.id ? fresh : o));
    state.order = fresh;
  } catch (err) {
    setStatus(describeError(err), true);
  }
  renderOrders();
  renderPayout();
}

// ---- verdict --------------------------------------------------------------------------------

function retakeMessages(result) {
  // The gate's instructions in the chosen language, each once, across the photos sent.
  const seen = new Set();
  for (const photo of result.gate || []) {
    for (const message of (photo.messages && photo.messages[lang()]) || []) seen.add(message);
  }
  return [...seen];
}

function renderVerdict() {
  const insp = state.inspection;
  show($('#result'), insp !== null);
  if (!insp) return;
  const box = $('#verdict');
  box.tabIndex = -1;
  const result = insp.result || {};
  const reasons = $('#reasons');
  reasons.replaceChildren();
  show($('#retake'), false);
  if (insp.status !== 'inspected') {
    box.className = 'verdict pending';
    box.textContent = t(insp.status === 'failed' ? 'verdict.failed' : 'verdict.received');
    $('#verdict-help').textContent = '';
    return;
  }
  const v = insp.verdict;
  box.className = `verdict ${v}`;
  box.textContent = t(`verdict.${v}`);
  $('#verdict-help').textContent = t(`verdict.${v}.help`);
  // Defect and measurement reasons are written by the server, in English; retake
  // instructions come in both languages.
  const serverReasons = (result.verdict?.reasons || []).map((r) => r.text);
  let lines = v === 'retake' ? retakeMessages(result) : serverReasons;
  if (lines.length === 0) lines = serverReasons;
  // A photo held for a person to check (reused photo): the server's line in both languages.
  const held = result.integrity?.messages?.[lang()];
  if (held) lines = [held, ...lines.filter((l) => l !== result.integrity.messages.en)];
  show($('#retake'), v === 'retake');
  reasons.replaceChildren(...lines.map((text) => el('li', {}, text)));
}

function retake() {
  state.inspection = null;
  renderVerdict();
  $('#photo').click();
}

// ---- payout ---------------------------------------------------------------------------------

function renderPayout() {
  const order = state.order;
  show($('#payout'), order !== null);
  if (!order) return;
  const locale = lang() === 'sw' ? 'sw-KE' : 'en-KE';
  const amount = (minor) => money(minor, order.currency, locale);
  let payment;
  if (order.payout) {
    payment = t(order.payout.status === 'delivered' ? 'payout.delivered' : 'payout.pending_transfer');
    payment += ` · ${amount(order.payout.amount_minor)}`;
  } else {
    const allAccepted = order.pieces.length > 0 && order.pieces.every((p) => p.state === 'accepted');
    payment = t(allAccepted ? 'payout.ready' : 'payout.none');
  }
  const row = (key, value, id) => [el('dt', {}, t(key)), el('dd', { id }, value)];
  $('#payout-summary').replaceChildren(
    ...row('payout.status', `${order.id} · ${t(`order.${order.status}`)}`, 'order-status'),
    ...row('payout.total', amount(order.total_minor)),
    ...row('payout.accepted', amount(order.accepted_minor)),
    ...row('payout.pending', amount(order.pending_minor)),
    ...row('payout.payment', payment, 'payout-status'),
  );
  $('#pieces').replaceChildren(
    ...order.pieces.map((p) =>
      el(
        'li',
        { class: `piece ${p.state}`, dataset: { piece: p.piece_id } },
        el('span', { class: 'piece-name' }, `${p.piece_id} · ${p.design_name || p.design_id}`),
        el('span', { class: 'piece-state' }, `${t(`piece.${p.state}`)} · ${amount(p.payout_minor)}`),
        p.reason ? el('span', { class: 'piece-reason' }, pieceReason(p)) : null,
      ),
    ),
  );
}

/**
 * The server's reason a piece is held, in the chosen language where the page knows the phrase:
 * fixed phrases are translated whole; "retake needed: <what to do>" takes the instructions of
 * the inspection on screen in the chosen language; "rejected by QC: <note>" keeps the note as
 * the reviewer wrote it. Anything else is shown as the server wrote it.
 */
function pieceReason(piece) {
  const reason = piece.reason;
  if (has(`reason.${reason}`)) return t(`reason.${reason}`);
  const cut = reason.indexOf(': ');
  const head = cut > 0 ? reason.slice(0, cut) : null;
  if (!head || !has(`reason.${head}`)) return reason;
  let detail = reason.slice(cut + 2);
  const shown = state.inspection;
  if (head === 'retake needed' && shown && shown.id === piece.latest_inspection_id) {
    const messages = retakeMessages(shown.result || {});
    if (messages.length) detail = messages.join('; ');
  }
  return `${t(`reason.${head}`)}: ${detail}`;
}

// ---- start ----------------------------------------------------------------------------------

function main() {
  for (const b of document.querySelectorAll('.lang button')) {
    b.addEventListener('click', () => applyLang(b.dataset.lang));
  }
  $('#signin-form').addEventListener('submit', onSignIn);
  $('#signout').addEventListener('click', signOut);
  $('#order').addEventListener('change', () => {
    state.order = state.orders.find((o) => o.id === $('#order').value) || null;
    renderOrders();
    renderPayout();
  });
  $('#piece').addEventListener('change', updateSend);
  $('#photo').addEventListener('change', onPhotoChosen);
  $('#send').addEventListener('click', send);
  $('#retry').addEventListener('click', send);
  $('#retake').addEventListener('click', retake);
  applyLang(initialLang());
  if (api.token) {
    signIn(api.token).catch((err) => {
      show($('#signin'));
      if (err.status !== 401) $('#signin-error').textContent = describeError(err);
    });
  } else {
    show($('#signin'));
  }
  document.body.dataset.ready = 'true';
}

main();
