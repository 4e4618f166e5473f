// Reused photos by artisan, for admins (GET /api/v1/users/{id}/photo-matches): pick an artisan,
// read how many of their photos were held as reused (in all, still open, rejected by QC), then
// each held inspection, newest first, with QC's decision and each match side by side
// (qc-reused.js). It takes the desk's place while open; the language switch draws it again.
import { $, el, show } from './dom.js';
import { callWord, dateLocale, defectName, errorText, sayIn, t } from './qc-lang.js';
import { matchPair, whereText, whoText } from './qc-reused.js';

const PAGE = 20; // held inspections per request; "More" asks for the next ones
const when = (iso) => new Date(iso).toLocaleString(dateLocale());

/** What QC made of a held inspection: the decision, or that it still waits (or was replaced). */
function decisionLines(h) {
  const d = h.decision;
  if (d) {
    const by = { name: d.decided_by_name, when: when(d.decided_at) };
    return [
      el('p', { class: `held-decision ${d.decision}` },
        t(d.decision === 'approve' ? 'qc.decided.approve' : 'qc.decided.reject', by)),
      el('p', { class: 'note' }, d.labels.length
        ? t('qc.decided.labels', { labels: d.labels.map(defectName).join(', ') })
        : t('qc.decided.no_labels')),
      d.note ? el('blockquote', { class: 'held-note' }, d.note) : null,
    ];
  }
  if (h.review_status === 'replaced') return [el('p', { class: 'held-decision' }, t('qc.decided.replaced'))];
  return [el('p', { class: 'held-decision open' }, t('qc.matches.waiting'))];
}

/** One held inspection: piece, order and date, QC's decision, then each match as a pair. */
function heldItem(h, artisanId, load) {
  const title = h.order_id
    ? t('qc.matches.item.order', { piece: h.piece_id, order: h.order_id, when: when(h.created_at) })
    : t('qc.matches.item', { piece: h.piece_id, when: when(h.created_at) });
  const photos = new Map(h.photos.map((p) => [p.position, p]));
  const pairs = h.matches.map((m) => {
    const same = m.same_artisan ?? m.artisan_id === artisanId;
    const then = t('qc.matches.then', {
      name: m.artisan_name || t('qc.matches.nobody'),
      who: whoText({ same_artisan: same }),
      where: whereText(m),
      bits: m.distance_bits,
    });
    return matchPair(m, photos.get(m.photo), h.piece_id, load, then);
  });
  return el(
    'li',
    { class: 'held', dataset: { inspection: h.inspection_id } },
    el('h4', {}, title),
    el('p', { class: 'note' }, t('qc.meta.verdict', { verdict: callWord(h.model_verdict) })),
    ...decisionLines(h),
    ...pairs,
  );
}

export class MatchesPanel {
  /** `onAuthLost(err)`: the token stopped working (401) and the desk signs out. */
  constructor(api, onAuthLost) {
    this.api = api;
    this.onAuthLost = onAuthLost;
    this.artisans = []; // [{id, name, active}], by name
    this.page = null; // the answer for the chosen artisan, the pages read so far appended
    this.seq = 0; // answers about an earlier choice are dropped
    this.images = new Map(); // API path -> promise of an object URL, for the chosen artisan
  }

  /** Wire the header button, the way back, the artisan select and "More". */
  attach() {
    $('#matches-open').addEventListener('click', () => this.open());
    $('#matches-back').addEventListener('click', () => this.close());
    $('#matches-form').addEventListener('submit', (e) => e.preventDefault());
    $('#m-artisan').addEventListener('change', () => this.choose($('#m-artisan').value));
    $('#matches-more').addEventListener('click', () => this.more());
  }

  get isOpen() {
    return !$('#matches').hidden;
  }

  /** The control is there for admins only (the API answers 403 to anyone else). */
  signedIn(user) {
    show($('#matches-open'), user.role === 'admin');
  }

  signedOut() {
    show($('#matches'), false);
    show($('#matches-open'), false);
    this.artisans = [];
    this.drawArtisans();
    this.choose('');
  }

  async open() {
    show($('#desk'), false);
    show($('#matches'));
    $('#m-artisan').focus();
    await this.loadArtisans();
  }

  close() {
    show($('#matches'), false);
    show($('#desk'));
    $('#matches-open').focus();
  }

  /** Every artisan, page by page (GET /api/v1/users?role=artisan). */
  async loadArtisans() {
    const all = [];
    try {
      for (;;) {
        const page = await this.api.get('/api/v1/users', { role: 'artisan', limit: 500, offset: all.length });
        all.push(...page.data);
        if (!page.data.length || all.length >= page.count) break;
      }
    } catch (err) {
      this.failed(err);
      return;
    }
    this.artisans = all.sort((a, b) => a.name.localeCompare(b.name) || a.id - b.id);
    this.drawArtisans();
  }

  async choose(id) {
    const seq = ++this.seq;
    for (const p of this.images.values()) p.then((url) => URL.revokeObjectURL(url), () => {});
    this.images = new Map();
    this.page = null;
    this.say(id ? () => t('qc.matches.loading') : null);
    this.draw();
    if (!id) return;
    try {
      const page = await this.fetch(id, 0);
      if (seq !== this.seq) return;
      this.page = page;
      this.say(null);
      this.draw();
    } catch (err) {
      if (seq === this.seq) this.failed(err);
    }
  }

  async more() {
    const { page, seq } = this;
    if (!page) return;
    $('#matches-more').disabled = true;
    try {
      const next = await this.fetch(page.artisan_id, page.data.length);
      if (seq !== this.seq) return;
      // A photo held meanwhile shifts the pages by one: keep each inspection once.
      const seen = new Set(page.data.map((h) => h.review_id));
      this.page = { ...next, data: [...page.data, ...next.data.filter((h) => !seen.has(h.review_id))] };
      this.draw();
    } catch (err) {
      if (seq === this.seq) this.failed(err);
    } finally {
      $('#matches-more').disabled = false;
    }
  }

  fetch(id, offset) {
    return this.api.get(`/api/v1/users/${encodeURIComponent(id)}/photo-matches`, { limit: PAGE, offset });
  }

  /** Fill an <img> from an API path with the bearer token; each image is fetched once. */
  load(img, path) {
    const images = this.images;
    if (!images.has(path)) images.set(path, this.api.objectUrl(path));
    images.get(path).then(
      (url) => {
        if (this.images === images) img.src = url;
      },
      (err) => {
        if (this.images === images) img.replaceWith(el('p', { class: 'error' }, t('qc.photo.missing', { message: err.message })));
      },
    );
  }

  say(make, isError = false) {
    sayIn($('#matches-status'), make);
    $('#matches-status').classList.toggle('error', isError);
  }

  failed(err) {
    if (err.status === 401) this.onAuthLost(err);
    else this.say(() => errorText(err), true);
  }

  /** Draw the panel again in the language just chosen. */
  redraw() {
    this.drawArtisans();
    this.draw();
  }

  drawArtisans() {
    const select = $('#m-artisan');
    const chosen = select.value;
    select.replaceChildren(
      el('option', { value: '' }, t('qc.matches.pick')),
      ...this.artisans.map((a) =>
        el('option', { value: String(a.id) },
          a.active ? `${a.name} (#${a.id})` : t('qc.matches.inactive', { name: a.name, id: a.id })),
      ),
    );
    select.value = chosen;
  }

  draw() {
    const page = this.page;
    show($('#matches-more'), Boolean(page) && page.data.length < page.count);
    if (!page) {
      $('#matches-result').replaceChildren();
      return;
    }
    $('#matches-more').textContent = t('qc.matches.more', { shown: page.data.length, count: page.count });
    const load = (img, path) => this.load(img, path);
    $('#matches-result').replaceChildren(
      el('h3', {}, t('qc.matches.of', { name: page.artisan_name })),
      el(
        'ul',
        { class: 'matches-totals' },
        el('li', {}, t('qc.matches.count', { n: page.count })),
        el('li', {}, t('qc.matches.still_open', { n: page.open })),
        el('li', {}, t('qc.matches.rejected', { n: page.rejected })),
      ),
      page.data.length
        ? el('ol', { class: 'held-list' }, ...page.data.map((h) => heldItem(h, page.artisan_id, load)))
        : el('p', { class: 'note' }, t('qc.matches.none')),
    );
  }
}
