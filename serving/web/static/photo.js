// The artisan's photo: shrunk on the phone, then uploaded with a progress bar.
import { ApiError, apiError } from './api.js';

// Long side sent to the server. 2048 px of a framed A4 card is ~7 px/mm, more than the photo
// gate and the spec checks ask of any design, and a 12 MP phone photo drops from ~4 MB to a
// few hundred kB: the difference between seconds and minutes on a slow connection.
export const MAX_SIDE = 2048;
export const JPEG_QUALITY = 0.85;

/**
 * Decode `file` upright (EXIF orientation applied), scale its long side down to `maxSide` and
 * encode it as JPEG. Every photo is re-encoded, even a small one: the canvas drops the EXIF
 * block, so the phone's GPS position never leaves the phone. A file the browser cannot decode
 * (HEIC outside Safari) is returned as it is; the server decodes HEIC itself.
 * Returns {blob, width, height, shrunk}.
 */
export async function shrinkPhoto(file, maxSide = MAX_SIDE, quality = JPEG_QUALITY) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    return { blob: file, width: null, height: null, shrunk: false };
  }
  const scale = Math.min(1, maxSide / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  // A one-step downscale by 2x or more aliases thin scratches away unless smoothing is 'high'.
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const blob = await new Promise((resolve, reject) => {
    canvas.toBlob(
      (b) => (b ? resolve(b) : reject(new Error('the photo could not be encoded'))),
      'image/jpeg',
      quality,
    );
  });
  canvas.width = canvas.height = 0; // free the pixels now: cheap phones have little memory
  return { blob, width, height, shrunk: true };
}

/**
 * POST one photo to /api/v1/inspections with XMLHttpRequest, which (unlike fetch) reports
 * upload progress. `onProgress(fraction)` gets 0..1 while sending and `onSent()` once the
 * server has the whole body and is inspecting. Resolves with the inspection JSON; rejects with
 * ApiError (status 0 when the connection dropped: retry with the same idempotency key).
 */
export function uploadPhoto({ token, fields, photo, filename, idempotencyKey, onProgress, onSent }) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) {
      if (v !== null && v !== undefined && v !== '') form.append(k, v);
    }
    form.append('photos', photo, filename);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/inspections');
    xhr.responseType = 'json';
    xhr.timeout = 5 * 60 * 1000; // a few hundred kB at 2G speeds still fits
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Idempotency-Key', idempotencyKey);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    });
    xhr.upload.addEventListener('load', () => onSent && onSent());
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(apiError(xhr.status, xhr.response, xhr.statusText || 'upload failed'));
    });
    const dropped = () => reject(new ApiError(0, 'network', 'the connection dropped'));
    xhr.addEventListener('error', dropped);
    xhr.addEventListener('timeout', dropped);
    xhr.addEventListener('abort', dropped);
    xhr.send(form);
  });
}
