// The QC desk: the review queue with filters (qc-queue.js), one item at a time (qc-item.js),
// approve / reject with labels and a note (qc-decide.js), driven by the keyboard (qc-keys.js),
// in English or Kiswahili (qc-lang.js); for admins, reused photos by artisan (qc-matches.js).
import { Api } from './api.js';
import { $, show } from './dom.js';
import { Stopwatch, keepingForm, readForm, renderDecision } from './qc-decide.js';
import { itemMeta, renderReasons, renderScores, renderSpec } from './qc-item.js';
import { listenForKeys } from './qc-keys.js';
import { designLabel, errorText, sayIn, signInError, startLang, t } from './qc-lang.js';
import { MatchesPanel } from './qc-matches.js';
import { orderLine, releasable, renderOrder } from './qc-order.js';
import { PhotoPane } from './qc-photos.js';
import { queueFilters, renderArtisanFilter, renderDesignFilter, renderQueue } from './qc-queue.js';
import { loadWords } from './words.js';

const api = new Api('kito.qc.token');
const watch = new Stopwatch(); // time on the open item, sent with the decision
const photos = new PhotoPane(api);
const matches = new MatchesPanel(api, (err) => failed(err)); // admins: reused photos by artisan
const state = {
  user: null,
  taxonomy: [], // [{name, kind, description}]
  designs: new Map(), // id -> name
  artisans: new Map(), // id -> name, from the items seen (the API has no user list)
  items: [],
  index: -1,
  busy: false,
  loadSeq: 0,
  releaseOrderId: null, // an order the last decision completed, when payouts are released by hand
  problem: null, // the catalogue key of what is wrong with the decision form, if anything
};

const current = () => state.items[state.index] || null;

/** The status line: `make()` gives its text in the current language (again after a switch). */
function say(make, isError = false) {
  show($('#release-done'), false);
  const node = $('#item-status');
  sayIn(node, make);
  node.classList.toggle('error', isError);
}

function failed(err) {
  if (err.status === 401) {
    signOut();
    sayIn($('#signin-error'), () => t('qc.signin.expired'));
    return;
  }
  say(() => errorText(err), true);
}

// ---- sign in --------------------------------------------------------------------------------

async function signIn(token) {
  const me = await api.signIn(token, ['qc', 'admin'], t('qc.signin.role'));
  state.user = me;
  $('#me').textContent = `${me.name} (${me.role})`;
  show($('#signout'));
  matches.signedIn(me);
  show($('#signin'), false);
  show($('#desk'));
  const [taxonomy, designs] = await Promise.all([
    api.get('/api/v1/taxonomy'),
    api.get('/api/v1/designs'),
  ]);
  state.taxonomy = taxonomy.defects;
  state.designs = new Map(designs.data.map((d) => [d.id, d.name]));
  renderDesignFilter(state.designs);
  await loadQueue();
}

function signOut() {
  api.token = null;
  matches.signedOut();
  closeItem();
  Object.assign(state, { user: null, items: [], index: -1 });
  $('#me').textContent = '';
  show($('#signout'), false);
  show($('#desk'), false);
  show($('#signin'));
  $('#token').value = '';
}

async function onSignIn(event) {
  event.preventDefault();
  sayIn($('#signin-error'), null);
  try {
    await signIn($('#token').value.trim());
  } catch (err) {
    sayIn($('#signin-error'), () => signInError(err));
  }
}

// ---- queue ----------------------------------------------------------------------------------

async function loadQueue(keepId = current()?.id) {
  const seq = ++state.loadSeq;
  let page;
  try {
    page = await api.get('/api/v1/reviews', { ...queueFilters(), limit: 100 });
  } catch (err) {
    failed(err);
    return;
  }
  if (seq !== state.loadSeq) return; // a newer filter change answered first
  state.items = page.data;
  for (const item of page.data) state.artisans.set(String(item.artisan_id), item.artisan_name);
  renderArtisanFilter(state.artisans);
  $('#queue-count').textContent = `(${page.count})`;
  const keep = state.items.findIndex((i) => i.id === keepId);
  drawQueue();
  openItem(keep >= 0 ? keep : 0);
}

const drawQueue = () => renderQueue(state.items, state.index, state.designs, openItem);

// ---- one item -------------------------------------------------------------------------------

function closeItem() {
  photos.close();
}

function openItem(index) {
  closeItem();
  state.index = state.items.length ? Math.max(0, Math.min(index, state.items.length - 1)) : -1;
  for (const [i, node] of [...$('#queue').querySelectorAll('.queue-item')].entries()) {
    if (i === state.index) {
      node.setAttribute('aria-current', 'true');
      node.scrollIntoView({ block: 'nearest' });
    } else node.removeAttribute('aria-current');
  }
  const item = current();
  show($('#item-empty'), item === null);
  show($('#item-body'), item !== null);
  watch.start();
  if (item) renderItem(item);
}

function renderItem(item) {
  const insp = item.inspection || {};
  const result = insp.result || {};
  const design = designLabel(item.design_id, state.designs.get(item.design_id));
  $('#item-title').textContent = `${item.piece_id} · ${design}`;
  $('#item-meta').textContent = itemMeta(item);
  photos.show(item, photos.item === item && photos.full);
  renderReasons(result, item.design_id);
  renderScores(result, item.model_labels || []);
  renderSpec(result, item.design_id);
  renderDecision(item, state.taxonomy);
  renderOrder(api, item, () => current() === item);
}

async function release(orderId) {
  try {
    const order = await api.post(`/api/v1/orders/${encodeURIComponent(orderId)}/release`);
    say(() => t('qc.released', { order: orderLine(order) }));
    show($('#release-done'), false);
    const item = current();
    if (item && item.order_id === orderId) {
      sayIn($('#order-line'), () => orderLine(order));
      show($('#release'), false);
    }
  } catch (err) {
    failed(err);
  }
}

// ---- deciding -------------------------------------------------------------------------------

async function decide(kind) {
  const item = current();
  if (!item || item.decision || item.status === 'replaced' || state.busy) return;
  const { labels, note, problem } = readForm(kind);
  state.problem = problem;
  sayIn($('#decide-error'), problem && (() => t(problem)));
  if (problem) {
    $('#labels input').focus();
    return;
  }
  state.busy = true;
  for (const b of [$('#approve'), $('#reject')]) b.disabled = true;
  const body = { decision: kind, labels, review_ms: watch.elapsed() };
  if (note) body.note = note;
  try {
    const decision = await api.post(`/api/v1/reviews/${encodeURIComponent(item.id)}/decision`, body);
    item.decision = decision;
    item.status = 'decided';
    let order = null;
    let complete = null;
    if (item.order_id) {
      try {
        order = await api.get(`/api/v1/orders/${encodeURIComponent(item.order_id)}`);
        if (releasable(order)) complete = order.id;
      } catch {
        /* the decision stands; the order line is only information */
      }
    }
    say(() => {
      const done = t(`qc.done.${kind}`, { piece: item.piece_id });
      return order ? `${done} ${orderLine(order)}` : done;
    });
    // The item leaves the view; keep the one follow-up it may need next to the message.
    state.releaseOrderId = complete;
    show($('#release-done'), complete !== null);
    advanceAfterDecision(item);
  } catch (err) {
    if (err.status === 409) {
      const key = err.code === 'replaced' ? 'qc.conflict.replaced' : 'qc.conflict';
      say(() => t(key, { message: err.message }), true);
      await reloadItem(item);
    } else failed(err);
  } finally {
    state.busy = false;
    for (const b of [$('#approve'), $('#reject')]) b.disabled = false;
  }
}

function advanceAfterDecision(item) {
  if ($('#f-status').value === 'open') {
    // A decided item leaves the open queue; the next one moves into its place.
    const at = state.items.indexOf(item);
    state.items.splice(at, 1);
    $('#queue-count').textContent = `(${state.items.length})`;
    drawQueue();
    openItem(at);
  } else {
    renderItem(item);
  }
}

async function reloadItem(item) {
  try {
    const fresh = await api.get(`/api/v1/reviews/${encodeURIComponent(item.id)}`);
    Object.assign(item, fresh);
    if (current() === item) renderItem(item);
  } catch (err) {
    failed(err);
  }
}

// ---- keyboard -------------------------------------------------------------------------------

const KEYS = {
  a: () => decide('approve'),
  r: () => decide('reject'),
  j: () => openItem(state.index + 1),
  k: () => openItem(state.index - 1),
  h: () => !$('#heatmap-toggle').disabled && photos.setHeatmap(!photos.heatmap),
  f: () => photos.toggleFull(),
};

// ---- language -------------------------------------------------------------------------------

/** Draw the desk again in the language just chosen, keeping what the reviewer ticked and typed. */
function redraw() {
  if (!state.user) return;
  matches.redraw();
  renderDesignFilter(state.designs);
  renderArtisanFilter(state.artisans);
  drawQueue();
  const item = current();
  if (!item) return;
  const problem = $('#decide-error').textContent ? state.problem : null;
  keepingForm(() => renderItem(item));
  if (problem) sayIn($('#decide-error'), () => t(problem));
}

// ---- start ----------------------------------------------------------------------------------

async function main() {
  startLang(redraw);
  await loadWords(); // defect and design names in Kiswahili (the artisan page's catalogue)
  $('#signin-form').addEventListener('submit', onSignIn);
  $('#signout').addEventListener('click', signOut);
  $('#filters').addEventListener('change', () => loadQueue());
  $('#filters').addEventListener('submit', (e) => e.preventDefault());
  $('#heatmap-toggle').addEventListener('change', (e) => photos.setHeatmap(e.target.checked));
  $('#full-toggle').addEventListener('click', () => photos.toggleFull());
  $('#approve').addEventListener('click', () => decide('approve'));
  $('#reject').addEventListener('click', () => decide('reject'));
  $('#release').addEventListener('click', () => current() && release(current().order_id));
  $('#release-done').addEventListener('click', () => state.releaseOrderId && release(state.releaseOrderId));
  matches.attach();
  listenForKeys(KEYS, () => state.user !== null && !matches.isOpen);
  if (api.token) {
    signIn(api.token).catch((err) => {
      show($('#signin'));
      if (err.status !== 401) sayIn($('#signin-error'), () => signInError(err));
    });
  } else {
    show($('#signin'));
  }
  document.body.dataset.ready = 'true';
}

main();
