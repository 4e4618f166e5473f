// The artisan's photos waiting to be sent, kept in IndexedDB so that a dropped network, a
// closed tab or a reload loses none. Used by the page and by the service worker (background
// sync), so it touches no DOM. Each record keeps its Idempotency-Key from the moment it is
// queued: however often it is sent, the server inspects it once.

const DB = 'kito-app';
const STORE = 'photos';
// A record being sent is leased; another sender (page or service worker) leaves it alone
// until the lease runs out, so a photo is not uploaded twice at once.
export const LEASE_MS = 2 * 60 * 1000;
const KEEP_SENT_MS = 24 * 3600 * 1000;

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'key' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const store = t.objectStore(STORE);
      let out;
      Promise.resolve(work(store)).then((v) => {
        out = v;
      });
      t.oncomplete = () => resolve(out);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

const req = (r) => new Promise((resolve, reject) => {
  r.onsuccess = () => resolve(r.result);
  r.onerror = () => reject(r.error);
});

/** Queue a photo: {key, token, fields: {order_id, piece_id, design_id}, blob, filename}. */
export function enqueue(record) {
  const row = { ...record, state: 'waiting', lease: 0, created: Date.now(), inspection: null, error: null };
  return tx('readwrite', (s) => req(s.put(row))).then(() => row);
}

export function all() {
  return tx('readonly', (s) => req(s.getAll())).then((rows) => rows.sort((a, b) => a.created - b.created));
}

/** Update a record in place (by key) with `changes`; returns the new record or null. */
export function update(key, changes) {
  return tx('readwrite', async (s) => {
    const row = await req(s.get(key));
    if (!row) return null;
    Object.assign(row, changes);
    await req(s.put(row));
    return row;
  });
}

/** Take the lease of a waiting record; null if it is sent, refused or leased by another. */
export function claim(key, now = Date.now()) {
  return tx('readwrite', async (s) => {
    const row = await req(s.get(key));
    if (!row || row.state === 'sent' || row.state === 'refused') return null;
    if (row.state === 'sending' && now - row.lease < LEASE_MS) return null;
    row.state = 'sending';
    row.lease = now;
    await req(s.put(row));
    return row;
  });
}

export function remove(key) {
  return tx('readwrite', (s) => req(s.delete(key)));
}

/** Forget sent photos older than a day (their verdict is on the order by then). */
export async function prune(now = Date.now()) {
  for (const row of await all()) {
    if (row.state === 'sent' && now - row.created > KEEP_SENT_MS) await remove(row.key);
  }
}

/**
 * Send every waiting record with `send(record)` (resolves with the inspection JSON, rejects
 * with {status}); status 0 (no network) leaves it waiting, an answer from the server marks it
 * sent or refused. `onChange(record)` hears each state change. Returns the records sent.
 */
export async function drain(send, onChange = () => {}) {
  const sent = [];
  for (const row of await all()) {
    if (row.state === 'sent' || row.state === 'refused') continue;
    const mine = await claim(row.key);
    if (!mine) continue;
    await onChange(mine);
    let next;
    try {
      const inspection = await send(mine);
      // The photo itself is not needed any more: free the phone's storage.
      next = await update(mine.key, { state: 'sent', inspection, blob: null, token: null });
      sent.push(next);
    } catch (err) {
      const lost = !err || err.status === 0 || err.status >= 500 || err.status === 429;
      next = await update(mine.key, lost
        ? { state: 'waiting', lease: 0 }
        : { state: 'refused', error: { status: err.status, code: err.code, message: err.message }, blob: null });
      await onChange(next);
      if (lost) break; // no network: the rest waits for the next chance
      continue;
    }
    await onChange(next);
  }
  return sent;
}

/**
 * `later(fn)` runs fn after the next delay of `steps` (the last one repeats); `later.cancel()`
 * clears what is pending and starts again from the first delay. For sending again by itself.
 */
export function backoff(steps) {
  let timer = null;
  let tries = 0;
  const later = (fn) => {
    clearTimeout(timer);
    timer = setTimeout(fn, steps[Math.min(tries, steps.length - 1)]);
    tries += 1;
  };
  later.cancel = () => {
    clearTimeout(timer);
    timer = null;
    tries = 0;
  };
  return later;
}
