// The QC desk's photo pane: the open item's photos (zoomed to the piece or in full), its
// heatmap overlay, and the object URLs of its images, revoked when the item closes.
import { $, el } from './dom.js';
import { designPhotos } from './qc-design.js';
import { reusedPhotos } from './qc-reused.js';
import { photoFigure } from './qc-item.js';
import { defectName, t } from './qc-lang.js';

const HEATMAP_KEY = 'kito.qc.heatmap';

export class PhotoPane {
  constructor(api) {
    this.api = api;
    this.item = null;
    this.urls = [];
    this.full = false; // the whole photo instead of the piece's crop
    this.heatmap = localStorage.getItem(HEATMAP_KEY) !== 'off';
  }

  close() {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    this.item = null;
    $('#photos').replaceChildren();
  }

  show(item, full = false) {
    this.close();
    this.item = item;
    this.full = full;
    const insp = item.inspection || {};
    const heatmaps = insp.result?.heatmaps || [];
    const top = heatmaps.find(Boolean);
    $('#heatmap-class').textContent = top
      ? t('qc.heat.class', { cls: defectName(top.class), score: Number(top.score).toFixed(2) })
      : t('qc.heat.none');
    $('#heatmap-toggle').disabled = !top;
    $('#heatmap-toggle').checked = this.heatmap;
    $('#full-toggle').disabled = !top;
    $('#full-toggle').setAttribute('aria-pressed', String(full));
    $('#full-toggle').textContent = t(full || !top ? 'qc.zoom' : 'qc.full');
    const figures = (insp.photos || []).map((photo) =>
      photoFigure({
        photo,
        entry: heatmaps[photo.position],
        label: item.piece_id,
        zoomed: !full,
        heatmapOn: this.heatmap,
        load: (img, path) => this.load(item, img, path),
      }),
    );
    const load = (img, path) => this.load(item, img, path);
    const extra = [reusedPhotos(item, insp, load), designPhotos(item, insp, load)].filter(Boolean);
    $('#photos').replaceChildren(...figures, ...extra);
  }

  toggleFull() {
    if (this.item && !$('#full-toggle').disabled) this.show(this.item, !this.full);
  }

  setHeatmap(on) {
    this.heatmap = on;
    localStorage.setItem(HEATMAP_KEY, on ? 'on' : 'off');
    $('#heatmap-toggle').checked = on;
    for (const heat of document.querySelectorAll('#photos .heat')) heat.hidden = !on;
  }

  async load(item, img, path) {
    try {
      const url = await this.api.objectUrl(path);
      if (this.item !== item) {
        URL.revokeObjectURL(url); // the reviewer moved on while it loaded
        return;
      }
      this.urls.push(url);
      img.src = url;
    } catch (err) {
      img.replaceWith(el('p', { class: 'error' }, t('qc.photo.missing', { message: err.message })));
    }
  }
}
