// Building DOM nodes for both pages. Strings always become text nodes or attribute values,
// never markup: nothing here (or in the pages) assigns innerHTML, so a name or a note that
// contains <script> is shown as those characters.

/**
 * el('li', {class: 'x', onclick: fn}, 'text', childNode, ...)
 * Props: `class`, `dataset`, `on<event>` (functions only), DOM properties for non-strings
 * (e.g. checked: true), attributes otherwise.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) {
      if (typeof value !== 'function') throw new TypeError(`${key} must be a function`);
      node.addEventListener(key.slice(2), value);
    } else if (typeof value !== 'string' && key in node) node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function show(node, visible = true) {
  node.hidden = !visible;
}

/** "3 min ago" style ages for queue items, from an ISO timestamp. */
export function age(iso, now = Date.now()) {
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** Integer minor units (the API's money) as a localised amount, e.g. 45000 KES -> "KES 450.00". */
export function money(minor, currency, locale) {
  if (minor === null || minor === undefined) return '';
  let fmt;
  try {
    fmt = new Intl.NumberFormat(locale, { style: 'currency', currency });
  } catch {
    return `${minor} ${currency}`; // an unknown currency code: show the raw amount, not nothing
  }
  const digits = fmt.resolvedOptions().maximumFractionDigits;
  return fmt.format(minor / 10 ** digits);
}
