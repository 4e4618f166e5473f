// The artisan page: sign in, pick order and piece, photograph it, send, read the verdict and
// the order's payment status. Phone-first and offline-first: a photo is queued on the phone
// (photo-queue.js) and sent when there is network; the page opens offline (app-sw.js).
import { Api, newKey } from './api.js';
import { $, el, show } from './dom.js';
import { initialLang, lang, setLang, t, translatePage } from './i18n.js';
import { orderLabel, renderPayout } from './payment-view.js';
import { shrinkPhoto, uploadPhoto } from './photo.js';
import * as queue from './photo-queue.js';
import { canUpload, pieceCards, preselect } from './picker.js';
import { renderOutbox, renderVerdict } from './result-view.js';
import { loadWords } from './words.js';

const api = new Api('kito.app.token');
const SAVED = { me: 'kito.app.me', orders: 'kito.app.orders' }; // last answers, for offline
const state = {
  user: null,
  orders: [],
  order: null, // the selected order (fresh from the server after each upload)
  pieceId: null,
  photo: null, // {blob, width, height, shrunk, key, url}: the photo chosen, not yet queued
  queued: [], // the photo queue's records, as last read
  inspection: null, // {result..., designId}: the last answer, re-drawn when the language changes
  sending: false,
  status: { key: '', vars: {}, isError: false },
};

/** The status line, kept as a key so that a language switch re-renders it too ('' clears). */
function setStatus(key, vars = {}, isError = false) {
  state.status = { key, vars, isError };
  renderStatus();
}

function renderStatus() {
  const { key, vars, isError } = state.status;
  $('#status').textContent = key ? t(key, vars) : '';
  $('#status').classList.toggle('error', isError);
}

const offline = () => navigator.onLine === false;

// ---- language -------------------------------------------------------------------------------

function applyLang(value) {
  setLang(value);
  translatePage();
  for (const b of document.querySelectorAll('.lang button')) {
    b.setAttribute('aria-pressed', String(b.dataset.lang === value));
  }
  if (state.user) $('#hello').textContent = t('hello', { name: state.user.name });
  renderAll();
}

function renderAll() {
  renderStatus();
  renderOrders();
  renderPhoto();
  renderOutbox(state.queued, drop);
  renderVerdict(state.inspection);
  renderPayout(state.order);
}

// ---- sign in (offline: the last user this token named) --------------------------------------

async function signIn(token) {
  let me;
  try {
    me = await api.signIn(token, ['artisan', 'admin'], t('signin.role'));
    localStorage.setItem(SAVED.me, JSON.stringify({ token, me }));
  } catch (err) {
    const saved = JSON.parse(localStorage.getItem(SAVED.me) || 'null');
    if (err.status !== 0 || !saved || saved.token !== token) throw err;
    api.token = token;
    me = saved.me;
  }
  state.user = me;
  $('#hello').textContent = t('hello', { name: me.name });
  show($('#signin'), false);
  show($('#work'));
  await loadOrders();
  flush();
}

function signOut() {
  api.token = null;
  for (const key of Object.values(SAVED)) localStorage.removeItem(key);
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
  if (!token) return void (error.textContent = t('signin.bad'));
  try {
    await signIn(token);
  } catch (err) {
    if (err.status === 401) error.textContent = t('signin.bad');
    else if (err.status === 403) error.textContent = t('signin.role');
    else error.textContent = err.status === 0 ? t('error.network') : t('error.generic', { message: err.message });
  }
}

// ---- orders and pieces ----------------------------------------------------------------------

async function loadOrders() {
  try {
    const page = await api.get('/api/v1/orders', { limit: 100 });
    // Open orders first: those are the ones still waiting for photos.
    state.orders = page.data.sort((a, b) => (a.status === 'open' ? 0 : 1) - (b.status === 'open' ? 0 : 1));
    localStorage.setItem(SAVED.orders, JSON.stringify(state.orders));
  } catch (err) {
    if (err.status === 401) return signOut();
    if (err.status !== 0) setStatus('error.generic', { message: err.message }, true);
    state.orders = JSON.parse(localStorage.getItem(SAVED.orders) || '[]');
  }
  const keep = state.order && state.orders.find((o) => o.id === state.order.id);
  state.order = keep || state.orders[0] || null;
  await readQueue();
  renderAll();
}

const queuedIds = () =>
  new Set(state.queued.filter((r) => r.state !== 'sent' && r.state !== 'refused' && r.fields.order_id === state.order?.id).map((r) => r.fields.piece_id));

function renderOrders() {
  $('#order').replaceChildren(
    ...state.orders.map((o) => el('option', { value: o.id, selected: o === state.order }, orderLabel(o, true))),
  );
  show($('#no-orders'), state.user !== null && state.orders.length === 0);
  $('#order').disabled = state.orders.length === 0;
  const ids = queuedIds();
  const piece = preselect(state.order, state.pieceId, ids);
  state.pieceId = piece ? piece.piece_id : null;
  $('#piece-cards').replaceChildren(
    ...(state.order ? pieceCards(state.order, state.pieceId, ids, lang(), pick) : []),
  );
  const open = piece && canUpload(piece, state.order);
  show($('#capture'), Boolean(open));
  show($('#no-upload'), Boolean(piece) && !open);
  if (piece && !open) $('#no-upload').textContent = t(state.order.status === 'paid' ? 'no_upload.paid' : 'no_upload.accepted');
  updateSend();
}

function pick(piece) {
  state.pieceId = piece.piece_id;
  renderOrders();
}

function selectedPiece() {
  return state.order?.pieces.find((p) => p.piece_id === state.pieceId) || null;
}

// ---- photo ----------------------------------------------------------------------------------

function clearPhoto() {
  if (state.photo?.url) URL.revokeObjectURL(state.photo.url);
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
    $('#preview-caption').textContent = p.shrunk ? t('photo.ready', { w: p.width, h: p.height, kb }) : t('photo.as_is', { kb });
  }
  updateSend();
}

function updateSend() {
  const piece = selectedPiece();
  $('#send').disabled = !state.photo || !piece || !canUpload(piece, state.order);
}

async function onPhotoChosen() {
  const file = $('#photo').files[0];
  if (!file) return;
  if (state.photo?.url) URL.revokeObjectURL(state.photo.url);
  state.photo = null;
  show($('#retry'), false);
  setStatus('photo.preparing');
  // Shrunk before it is queued: a few hundred kB to keep and to send, not a 4 MB original.
  const shrunk = await shrinkPhoto(file);
  state.photo = { ...shrunk, key: newKey(), url: URL.createObjectURL(shrunk.blob) };
  setStatus(selectedPiece() ? '' : 'photo.pick_piece');
  renderPhoto();
}

// ---- queue and upload -----------------------------------------------------------------------

/** Read the queue; returns the newest record seen to change to 'sent' (by whichever sender). */
async function readQueue() {
  const before = new Map(state.queued.map((r) => [r.key, r.state]));
  state.queued = await queue.all().catch(() => []);
  const fresh = state.queued.filter((r) => r.state === 'sent' && before.has(r.key) && before.get(r.key) !== 'sent');
  return fresh.at(-1) || null;
}

/** Queue the chosen photo (its idempotency key goes with it), then try to send the queue. */
async function send() {
  const piece = selectedPiece();
  if (!piece || !state.photo) return;
  const p = state.photo;
  await queue.enqueue({
    key: p.key, // one key per photo: however often it is sent, the server inspects it once
    token: api.token,
    fields: { design_id: piece.design_id, piece_id: piece.piece_id, order_id: state.order.id },
    blob: p.blob,
    filename: p.shrunk ? 'photo.jpg' : p.blob.name || 'photo',
  });
  clearPhoto();
  await readQueue();
  renderAll();
  await flush();
}

async function requestSync() {
  // Background sync sends the queue even if the artisan closes the page before the network
  // returns; browsers without it send on the next open or 'online' event (flush).
  const reg = await navigator.serviceWorker?.ready.catch(() => null);
  if (reg && 'sync' in reg) await reg.sync.register('kito-photos').catch(() => {});
}

function progress(fraction) {
  $('#progress').value = Math.round(fraction * 100);
  $('#progress-label').textContent = t('upload.sending', { pct: Math.round(fraction * 100) });
}

function upload(record) {
  show($('#progress-box'));
  progress(0);
  return uploadPhoto({
    token: record.token,
    fields: record.fields,
    photo: record.blob,
    filename: record.filename,
    idempotencyKey: record.key,
    onProgress: progress,
    onSent: () => {
      $('#progress').value = 100;
      $('#progress-label').textContent = t('upload.checking');
    },
  }).finally(() => show($('#progress-box'), false));
}

// Seconds before a photo is sent again by itself while the phone says it is online.
const retryLater = queue.backoff([3000, 10000, 30000, 60000]);

async function flush() {
  if (state.sending || !state.user) return;
  state.sending = true;
  show($('#retry'), false);
  let last = null;
  let waiting = false;
  try {
    await queue.drain(upload, async (record) => {
      if (record.state === 'waiting') {
        waiting = true;
        setStatus(offline() ? 'upload.offline' : 'upload.dropped', {}, !offline());
        show($('#retry'), !offline());
      }
      if (record.state === 'refused') {
        if (record.error?.status === 401) signOut();
        else setStatus('upload.refused', { message: record.error?.message || '' }, true);
      }
      last = (await readQueue()) || last;
      renderOutbox(state.queued, drop);
    });
  } finally {
    state.sending = false;
  }
  // Only offline: online, the worker's sync would fire at once and race the page's own retry.
  if (waiting && offline()) requestSync();
  // Online and still waiting (a dropped connection, a busy server, a network that says it is
  // back before it is): send again by itself, later each time; the button sends at once.
  if (waiting && !offline()) retryLater(flush);
  else retryLater.cancel();
  if (last) await showSent(last);
}

async function showSent(record) {
  setStatus('');
  state.inspection = { ...record.inspection, designId: record.fields.design_id };
  state.order = state.orders.find((o) => o.id === record.fields.order_id) || state.order;
  state.pieceId = record.fields.piece_id;
  await loadOrders();
  $('#result').scrollIntoView({ behavior: 'smooth', block: 'start' });
  $('#verdict').focus();
}

async function drop(key) {
  await queue.remove(key);
  await readQueue();
  renderAll();
}

// ---- verdict ---------------------------------------------------------------------------------

function retake() {
  state.inspection = null;
  renderVerdict(state.inspection);
  $('#photo').click();
}

// ---- start ----------------------------------------------------------------------------------

async function main() {
  for (const b of document.querySelectorAll('.lang button')) b.addEventListener('click', () => applyLang(b.dataset.lang));
  $('#signin-form').addEventListener('submit', onSignIn);
  $('#signout').addEventListener('click', signOut);
  $('#order').addEventListener('change', () => {
    state.order = state.orders.find((o) => o.id === $('#order').value) || null;
    state.pieceId = null;
    renderAll();
  });
  $('#photo').addEventListener('change', onPhotoChosen);
  $('#send').addEventListener('click', send);
  $('#retry').addEventListener('click', flush);
  $('#retake').addEventListener('click', retake);
  const net = () => show($('#offline'), offline());
  window.addEventListener('offline', net);
  window.addEventListener('online', () => {
    net();
    flush();
  });
  navigator.serviceWorker?.addEventListener('message', async () => {
    const sent = await readQueue();
    if (sent) await showSent(sent);
    else renderOutbox(state.queued, drop);
  });
  navigator.serviceWorker?.register('/app-sw.js', { scope: '/app', type: 'module' }).catch(() => {});
  await loadWords();
  net();
  applyLang(initialLang());
  if (api.token) {
    try {
      await signIn(api.token);
    } catch (err) {
      show($('#signin'));
      if (err.status !== 401) $('#signin-error').textContent = t('error.network');
    }
  } else show($('#signin'));
  document.body.dataset.ready = 'true';
}

main();
