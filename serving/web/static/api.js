// The JSON API client for the pages: bearer token from localStorage, errors as ApiError.

export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status; // 0: no answer (connection dropped, offline)
    this.code = code;
    this.field = field;
  }
}

/** The API's error JSON ({"error": {code, message, field}}) as an ApiError. */
export function apiError(status, body, fallback = 'request failed') {
  const e = (body && body.error) || {};
  return new ApiError(status, e.code || 'http_error', e.message || fallback, e.field || null);
}

export class Api {
  /** storageKey: where this page keeps its token (each page its own, so an artisan's and a
   * reviewer's sessions in one browser do not overwrite each other). */
  constructor(storageKey) {
    this.storageKey = storageKey;
  }

  get token() {
    return localStorage.getItem(this.storageKey);
  }

  set token(value) {
    if (value) localStorage.setItem(this.storageKey, value);
    else localStorage.removeItem(this.storageKey);
  }

  headers(extra = {}) {
    const h = { Accept: 'application/json', ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  async request(method, path, { json, query } = {}) {
    const url = new URL(path, window.location.origin);
    for (const [k, v] of Object.entries(query || {})) {
      if (v !== '' && v !== null && v !== undefined) url.searchParams.set(k, String(v));
    }
    const init = { method, headers: this.headers() };
    if (json !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(json);
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch {
      throw new ApiError(0, 'network', 'no connection to the server');
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) throw apiError(res.status, body, res.statusText);
    return body;
  }

  get(path, query) {
    return this.request('GET', path, { query });
  }

  post(path, json) {
    return this.request('POST', path, { json });
  }

  /** Use `token` if it names a user whose role is one of `roles`: that user, else an ApiError
   *  (the server's, or 403 with `refusal`) and no token kept. */
  async signIn(token, roles, refusal) {
    this.token = token;
    let me;
    try {
      me = await this.get('/api/v1/users/me');
    } catch (err) {
      this.token = null;
      throw err;
    }
    if (!roles.includes(me.role)) {
      this.token = null;
      throw new ApiError(403, 'forbidden', refusal);
    }
    return me;
  }

  /** An authenticated image (photo, heatmap) as an object URL for <img src>; revoke it later. */
  async objectUrl(path) {
    let res;
    try {
      res = await fetch(path, { headers: this.headers({ Accept: 'image/*' }) });
    } catch {
      throw new ApiError(0, 'network', 'no connection to the server');
    }
    if (!res.ok) throw apiError(res.status, await res.json().catch(() => null), res.statusText);
    return URL.createObjectURL(await res.blob());
  }
}

/** A random idempotency key; crypto.randomUUID needs a secure context, getRandomValues not. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
