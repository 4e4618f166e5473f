// The QC desk's order box: the open item's order in one line, and whether its payout waits for
// someone to release it.
import { $, money, show } from './dom.js';
import { keyOr, sayIn, t } from './qc-lang.js';

export function orderLine(order) {
  const accepted = order.pieces.filter((p) => p.state === 'accepted').length;
  const word = (prefix, value) => keyOr(`${prefix}.${value}`, value);
  const payout = order.payout
    ? t('qc.payout.status', { status: word('qc.payout', order.payout.status) })
    : t('qc.payout.none');
  const fmt = (minor) => money(minor, order.currency, 'en-KE');
  return t('qc.order.line', {
    id: order.id,
    status: word('qc.order', order.status),
    accepted,
    count: order.pieces.length,
    value: fmt(order.accepted_minor),
    total: fmt(order.total_minor),
    payout,
  });
}

/** Whether the order waits only for someone to release its payout (KITO_AUTO_PAYOUT off). */
export function releasable(order) {
  return order.status !== 'paid' && !order.payout && order.pieces.every((p) => p.state === 'accepted');
}

/** The order box of the open item; `stillOpen()` says whether it is still open when the order
 * arrives. */
export async function renderOrder(api, item, stillOpen) {
  show($('#order-box'), Boolean(item.order_id));
  sayIn($('#order-line'), null);
  show($('#release'), false);
  if (!item.order_id) return;
  let order;
  try {
    order = await api.get(`/api/v1/orders/${encodeURIComponent(item.order_id)}`);
  } catch (err) {
    sayIn($('#order-line'), () => t('qc.order.error', { id: item.order_id, message: err.message }));
    return;
  }
  if (!stillOpen()) return;
  sayIn($('#order-line'), () => orderLine(order));
  show($('#release'), releasable(order));
}
