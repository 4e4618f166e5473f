// The QC desk: the review queue with filters, one item at a time (photos, heatmap overlay, spec
// checks, model scores), approve / reject with labels and a note, driven by the keyboard.
import { Api } from './api.js';
import { $, age, el, money, show } from './dom.js';
import { reusedPhotos } from './integrity.js';

const api = new Api('kito.qc.token');
const HEATMAP_KEY = 'kito.qc.heatmap';
const state = {
  user: null,
  taxonomy: [], // [{name, kind, description}]
  designs: new Map(), // id -> name
  artisans: new Map(), // id -> name, from the items seen (the API has no user list)
  items: [],
  index: -1,
  urls: [], // object URLs of the open item's images, revoked when it closes
  heatmap: localStorage.getItem(HEATMAP_KEY) === 'on',
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
            `${item.reason} · ${item.inspection?.verdict ?? 'no verdict'} · ${age(item.created_at)}`,
          ),
        ),
      ),
    ),
  );
}

// ---- one item -------------------------------------------------------------------------------

function closeItem() {
  for (const url of state.urls) URL.revokeObjectURL(url);
  state.urls = [];
  $('#photos').replaceChildren();
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
    `queued for: ${item.reason}`,
    `model verdict: ${insp.verdict ?? 'none'}`,
    `priority ${Number(item.priority).toFixed(2)}`,
    `${age(item.created_at)} ago`,
  ];
  if (item.payout_minor !== null && item.payout_minor !== undefined) bits.push(`pays ${money(item.payout_minor, 'KES', 'en-KE')}`);
  $('#item-meta').textContent = bits.join(' · ');
  renderPhotos(item, insp, result);
  renderReasons(result);
  renderScores(result, item.model_labels || []);
  renderSpec(result.spec_checks || []);
  renderDecision(item);
  renderOrder(item);
}

function renderPhotos(item, insp, result) {
  const heatmaps = result.heatmaps || [];
  const top = heatmaps.find(Boolean);
  $('#heatmap-class').textContent = top ? `${top.class}, score ${Number(top.score).toFixed(2)}` : 'no heatmap for this item';
  $('#heatmap-toggle').disabled = !top;
  $('#heatmap-toggle').checked = state.heatmap;
  const figures = (insp.photos || []).map((photo) => {
    const n = photo.position;
    const img = el('img', { class: 'photo-img', alt: `Photo ${n + 1} of ${item.piece_id}` });
    const frame = el('div', { class: 'frame' }, img);
    loadImage(item, img, photo.url);
    const entry = heatmaps[n];
    if (entry) {
      const heat = el('img', { class: 'heat', alt: `Heatmap of ${entry.class} over photo ${n + 1}` });
      heat.hidden = !state.heatmap;
      // The overlay is the crop the model saw; place it over that box of the photo.
      const [w, h] = entry.image_size;
      const [x0, y0, x1, y1] = entry.crop_box;
      Object.assign(heat.style, {
        left: `${(100 * x0) / w}%`,
        top: `${(100 * y0) / h}%`,
        width: `${(100 * (x1 - x0)) / w}%`,
        height: `${(100 * (y1 - y0)) / h}%`,
      });
      frame.append(heat);
      loadImage(item, heat, `${photo.url}/heatmap`);
    }
    return el('figure', { class: 'photo' }, frame, el('figcaption', {}, `Photo ${n + 1} · ${photo.width}×${photo.height} px`));
  });
  const reused = reusedPhotos(item, insp, result, (img, path) => loadImage(item, img, path));
  $('#photos').replaceChildren(...figures, ...(reused ? [reused] : []));
}

async function loadImage(item, img, path) {
  try {
    const url = await api.objectUrl(path);
    if (current() !== item) {
      URL.revokeObjectURL(url); // the reviewer moved on while it loaded
      return;
    }
    state.urls.push(url);
    img.src = url;
  } catch (err) {
    img.replaceWith(el('p', { class: 'error' }, `Image not available: ${err.message}`));
  }
}

function setHeatmap(on) {
  state.heatmap = on;
  localStorage.setItem(HEATMAP_KEY, on ? 'on' : 'off');
  $('#heatmap-toggle').checked = on;
  for (const heat of document.querySelectorAll('#photos .heat')) heat.hidden = !on;
}

function renderReasons(result) {
  const lines = (result.verdict?.reasons || []).map((r) => r.text);
  for (const [i, gate] of (result.gate || []).entries()) {
    for (const m of gate.messages?.en || []) lines.push(`Photo ${i + 1}: ${m}`);
  }
  $('#item-reasons').replaceChildren(
    ...(lines.length ? lines : ['The model gave no reason (audit sample or no model result).']).map((l) => el('li', {}, l)),
  );
}

function renderScores(result, modelLabels) {
  const scores = result.verdict?.scores || (result.scores || [])[0] || {};
  const bands = result.thresholds?.bands || {};
  const rows = Object.entries(scores)
    .sort((a, b) => b[1] - a[1])
    .map(([name, score]) => {
      const band = bands[name];
      let call = '';
      if (band) call = score >= band[1] ? 'fail' : score >= band[0] ? 'review' : 'pass';
      return el(
        'tr',
        { class: modelLabels.includes(name) ? 'flagged' : null, dataset: { class: name } },
        el('th', { scope: 'row' }, name),
        el('td', {}, el('meter', { min: 0, max: 1, value: score, 'aria-hidden': 'true' }), ` ${Number(score).toFixed(3)}`),
        el('td', {}, band ? `${band[0].toFixed(2)}–${band[1].toFixed(2)}` : ''),
        el('td', { class: `call ${call}` }, call),
      );
    });
  $('#scores tbody').replaceChildren(
    ...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 4 }, 'No model scores.'))]),
  );
}

function renderSpec(checks) {
  const num = (v) => (v === null || v === undefined ? '—' : Number(v).toFixed(2));
  $('#spec tbody').replaceChildren(
    ...checks.map((c) =>
      el(
        'tr',
        { class: `spec-${c.result}` },
        el('th', { scope: 'row' }, c.name),
        el('td', {}, `${num(c.measured)} ${c.unit}`),
        el('td', {}, `${num(c.expected)} ${c.unit}`),
        el('td', {}, c.tolerance === null ? '—' : `± ${num(c.tolerance)}`),
        el('td', { class: `call ${c.result}` }, c.result),
        el('td', {}, c.reason),
      ),
    ),
  );
  show($('#spec'), checks.length > 0);
  show($('#spec-empty'), checks.length === 0);
}

function renderDecision(item) {
  const d = item.decision;
  // A newer inspection of the piece closed this item: it is judged there, not here.
  const replaced = !d && item.status === 'replaced';
  show($('#decide'), !d && !replaced);
  show($('#decision'), Boolean(d) || replaced);
  if (replaced) {
    $('#decision-line').textContent = 'Replaced: the artisan sent newer photos of this piece, judged on their own.';
    $('#decision-labels').textContent = '';
    show($('#decision-note'), false);
    return;
  }
  if (d) {
    $('#decision-line').textContent = `${d.decision === 'approve' ? 'Approved' : 'Rejected'} by ${d.decided_by_name} · ${new Date(d.decided_at).toLocaleString()}`;
    $('#decision-labels').textContent = d.labels.length ? `Labels: ${d.labels.join(', ')}` : 'No defect labels.';
    $('#decision-note').textContent = d.note || '';
    show($('#decision-note'), Boolean(d.note));
    return;
  }
  const flagged = new Set(item.model_labels || []);
  // Nothing is ticked in advance: the labels are the reviewer's own finding, and pre-ticking the
  // model's guesses would teach the next model its own mistakes.
  $('#labels').replaceChildren(
    el('legend', {}, 'Defects actually present'),
    ...state.taxonomy.map((t) =>
      el(
        'label',
        { class: 'label-choice', title: t.description },
        el('input', { type: 'checkbox', name: 'label', value: t.name }),
        ` ${t.name}`,
        flagged.has(t.name) ? el('span', { class: 'badge' }, 'model') : null,
      ),
    ),
  );
  $('#note').value = '';
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

function orderLine(order) {
  const accepted = order.pieces.filter((p) => p.state === 'accepted').length;
  const payout = order.payout ? `payout ${order.payout.status}` : 'no payout yet';
  return `Order ${order.id} is ${order.status}: ${accepted} of ${order.pieces.length} pieces accepted, ${money(order.accepted_minor, order.currency, 'en-KE')} of ${money(order.total_minor, order.currency, 'en-KE')}; ${payout}.`;
}

/** Whether the order waits only for someone to release its payout (KITO_AUTO_PAYOUT off). */
function releasable(order) {
  return order.status !== 'paid' && !order.payout && order.pieces.every((p) => p.state === 'accepted');
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
  state.busy = true;
  for (const b of [$('#approve'), $('#reject')]) b.disabled = true;
  const labels = [...document.querySelectorAll('#labels input:checked')].map((i) => i.value);
  const note = $('#note').value.trim();
  const body = { decision: kind, labels };
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
    h: () => !$('#heatmap-toggle').disabled && setHeatmap(!state.heatmap),
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
  $('#heatmap-toggle').addEventListener('change', (e) => setHeatmap(e.target.checked));
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
