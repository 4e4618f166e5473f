// The QC desk: the review queue with filters, one item at a time (qc-item.js), approve / reject
// with labels and a note (qc-decide.js), driven by the keyboard.
import { Api } from './api.js';
import { $, age, el, money, show } from './dom.js';
import { Stopwatch, orderLine, readForm, releasable, renderDecision } from './qc-decide.js';
import { renderReasons, renderScores, renderSpec, topFinding } from './qc-item.js';
import { PhotoPane } from './qc-photos.js';

const api = new Api('kito.qc.token');
const REASONS = { fail: 'Model: fail', review: 'Model: unsure', audit: 'Audit sample (passed)' };
const watch = new Stopwatch(); // time on the open item, sent with the decision
const photos = new PhotoPane(api);
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
};

const current = () => state.items[state.index] || null;

function say(text, isError = false) {
  show($('#release-done'), false);
  const node = $('#item-status');
  node.textContent = text;
  node.classList.toggle('error', isError);
}

function failed(err) {
  if (err.status === 401) {
    signOut();
    $('#signin-error').textContent = 'Your token is no longer valid; sign in again.';
    return;
  }
  say(err.status === 0 ? 'No connection to the server.' : err.message, true);
}

// ---- sign in --------------------------------------------------------------------------------

async function signIn(token) {
  const me = await api.signIn(token, ['qc', 'admin'], 'This desk is for QC staff (role qc or admin).');
  state.user = me;
  $('#me').textContent = `${me.name} (${me.role})`;
  show($('#signout'));
  show($('#signin'), false);
  show($('#desk'));
  const [taxonomy, designs] = await Promise.all([
    api.get('/api/v1/taxonomy'),
    api.get('/api/v1/designs'),
  ]);
  state.taxonomy = taxonomy.defects;
  state.designs = new Map(designs.data.map((d) => [d.id, d.name]));
  $('#f-design').replaceChildren(
    el('option', { value: '' }, 'Any'),
    ...designs.data.map((d) => el('option', { value: d.id }, `${d.id} · ${d.name}`)),
  );
  await loadQueue();
}

function signOut() {
  api.token = null;
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
  $('#signin-error').textContent = '';
  try {
    await signIn($('#token').value.trim());
  } catch (err) {
    $('#signin-error').textContent =
      err.status === 401 ? 'Unknown or revoked token.' : err.message || 'Sign-in failed.';
  }
}

// ---- queue ----------------------------------------------------------------------------------

function filters() {
  return {
    status: $('#f-status').value,
    reason: $('#f-reason').value,
    design_id: $('#f-design').value,
    artisan_id: $('#f-artisan').value,
  };
}

async function loadQueue(keepId = current()?.id) {
  const seq = ++state.loadSeq;
  let page;
  try {
    page = await api.get('/api/v1/reviews', { ...filters(), limit: 100 });
  } catch (err) {
    failed(err);
    return;
  }
  if (seq !== state.loadSeq) return; // a newer filter change answered first
  state.items = page.data;
  for (const item of page.data) state.artisans.set(String(item.artisan_id), item.artisan_name);
  renderArtisanFilter();
  $('#queue-count').textContent = `(${page.count})`;
  const keep = state.items.findIndex((i) => i.id === keepId);
  renderQueue();
  openItem(keep >= 0 ? keep : 0);
}

function renderArtisanFilter() {
  const select = $('#f-artisan');
  const chosen = select.value;
  const names = [...state.artisans].sort((a, b) => a[1].localeCompare(b[1]));
  select.replaceChildren(
    el('option', { value: '' }, 'Any'),
    ...names.map(([id, name]) => el('option', { value: id }, `${name} (#${id})`)),
  );
  select.value = chosen;
}

function renderQueue() {
  show($('#queue-empty'), state.items.length === 0);
  $('#queue').replaceChildren(
    ...state.items.map((item, i) =>
      el(
        'li',
        {},
        el(
          'button',
          {
            type: 'button',
            class: `queue-item reason-${item.reason}`,
            'aria-current': i === state.index ? 'true' : null,
            dataset: { id: item.id },
            onclick: () => openItem(i),
          },
          el('span', { class: 'qi-piece' }, `${item.piece_id} · ${state.designs.get(item.design_id) || item.design_id}`),
          el('span', { class: 'qi-artisan' }, item.artisan_name),
          el(
            'span',
            { class: 'qi-meta' },
            el('span', { class: `qi-reason ${item.reason}` }, REASONS[item.reason] || item.reason),
            ` · ${topFinding(item.inspection?.result || {})} · ${age(item.created_at)} ago`,
          ),
        ),
      ),
    ),
  );
}

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
  const design = state.designs.get(item.design_id) || item.design_id;
  $('#item-title').textContent = `${item.piece_id} · ${design}`;
  const bits = [
    `artisan ${item.artisan_name}`,
    item.order_id ? `order ${item.order_id}` : 'no order',
    `queued for: ${REASONS[item.reason] || item.reason}`,
    `model verdict: ${insp.verdict ?? 'none'}`,
    `priority ${Number(item.priority).toFixed(2)}`,
    `${age(item.created_at)} ago`,
  ];
  if (item.payout_minor !== null && item.payout_minor !== undefined) bits.push(`pays ${money(item.payout_minor, 'KES', 'en-KE')}`);
  $('#item-meta').textContent = bits.join(' · ');
  photos.show(item);
  renderReasons(result);
  renderScores(result, item.model_labels || []);
  renderSpec(result.spec_checks || []);
  renderDecision(item, state.taxonomy);
  renderOrder(item);
}

async function renderOrder(item) {
  show($('#order-box'), Boolean(item.order_id));
  $('#order-line').textContent = '';
  show($('#release'), false);
  if (!item.order_id) return;
  let order;
  try {
    order = await api.get(`/api/v1/orders/${encodeURIComponent(item.order_id)}`);
  } catch (err) {
    $('#order-line').textContent = `Order ${item.order_id}: ${err.message}`;
    return;
  }
  if (current() !== item) return;
  $('#order-line').textContent = orderLine(order);
  show($('#release'), releasable(order));
}

async function release(orderId) {
  try {
    const order = await api.post(`/api/v1/orders/${encodeURIComponent(orderId)}/release`);
    say(`Payout released. ${orderLine(order)}`);
    show($('#release-done'), false);
    const item = current();
    if (item && item.order_id === orderId) {
      $('#order-line').textContent = orderLine(order);
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
  $('#decide-error').textContent = problem || '';
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
    let message = `${kind === 'approve' ? 'Approved' : 'Rejected'} ${item.piece_id}.`;
    let complete = null;
    if (item.order_id) {
      try {
        const order = await api.get(`/api/v1/orders/${encodeURIComponent(item.order_id)}`);
        message += ` ${orderLine(order)}`;
        if (releasable(order)) complete = order.id;
      } catch {
        /* the decision stands; the order line is only information */
      }
    }
    say(message);
    // The item leaves the view; keep the one follow-up it may need next to the message.
    state.releaseOrderId = complete;
    show($('#release-done'), complete !== null);
    advanceAfterDecision(item);
  } catch (err) {
    if (err.status === 409) {
      say(err.code === 'replaced' ? err.message : 'Someone else decided this item; here is their decision.', true);
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
    renderQueue();
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

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
  if (!state.user) return;
  const target = event.target;
  // Letters typed into the note (or a select's type-ahead) are text, not commands.
  if (target.closest && target.closest('textarea, select, input:not([type="checkbox"])')) {
    if (event.key === 'Escape') target.blur();
    return;
  }
  const actions = {
    a: () => decide('approve'),
    r: () => decide('reject'),
    j: () => openItem(state.index + 1),
    k: () => openItem(state.index - 1),
    h: () => !$('#heatmap-toggle').disabled && photos.setHeatmap(!photos.heatmap),
    f: () => photos.toggleFull(),
  };
  const action = actions[event.key.toLowerCase()];
  if (action) {
    event.preventDefault();
    action();
  }
}

// ---- start ----------------------------------------------------------------------------------

function main() {
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
  document.addEventListener('keydown', onKey);
  if (api.token) {
    signIn(api.token).catch((err) => {
      show($('#signin'));
      if (err.status !== 401) $('#signin-error').textContent = err.message;
    });
  } else {
    show($('#signin'));
  }
  document.body.dataset.ready = 'true';
}

main();
