// The artisan page's service worker: keeps the page's files so that /app opens without a
// network, and sends queued photos when the network returns (background sync, where the
// browser has it; the page itself also sends them on open and when it goes online).
// API answers are never cached here: they carry the artisan's data and a bearer token.
import { drain } from '/static/photo-queue.js';

const CACHE = 'kito-app-v1';
const SHELL = [
  '/app',
  '/app/words.json',
  '/app.webmanifest',
  '/favicon.ico',
  '/icons/icon-192.png',
  '/static/base.css',
  '/static/app.css',
  '/static/app.js',
  '/static/api.js',
  '/static/dom.js',
  '/static/i18n.js',
  '/static/photo.js',
  '/static/payment-view.js',
  '/static/photo-queue.js',
  '/static/picker.js',
  '/static/result-view.js',
  '/static/words.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// Network first, so a deployed fix arrives at once; the kept copy when there is no network.
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (!SHELL.includes(url.pathname)) return;
  event.respondWith(
    fetch(event.request)
      .then((res) => {
        if (res.ok) {
          const copy = res.clone();
          caches.open(CACHE).then((c) => c.put(url.pathname, copy));
        }
        return res;
      })
      .catch(() => caches.match(url.pathname).then((hit) => hit || Response.error())),
  );
});

async function send(record) {
  const form = new FormData();
  for (const [k, v] of Object.entries(record.fields)) if (v) form.append(k, v);
  form.append('photos', record.blob, record.filename);
  let res;
  try {
    res = await fetch('/api/v1/inspections', {
      method: 'POST',
      headers: { Authorization: `Bearer ${record.token}`, 'Idempotency-Key': record.key, Accept: 'application/json' },
      body: form,
    });
  } catch {
    throw { status: 0 };
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) throw { status: res.status, code: body?.error?.code, message: body?.error?.message || res.statusText };
  return body;
}

async function notify() {
  for (const client of await self.clients.matchAll({ type: 'window' })) client.postMessage({ type: 'queue-changed' });
}

self.addEventListener('sync', (event) => {
  if (event.tag === 'kito-photos') event.waitUntil(drain(send, notify));
});
