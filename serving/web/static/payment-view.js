// The artisan's view of an order's money: value, accepted so far, and the payment named for what
// happened to it ("payment sent" only once the payout was delivered).
import { $, el, money, show } from './dom.js';
import { lang, t } from './i18n.js';

/** "ORD-1 · Payment pending"; `short` for the order picker, which must fit a 360 px phone. */
export function orderLabel(order, short = false) {
  const kind = short ? 'order.short' : 'order';
  if (order.payout) return `${order.id} · ${t(order.payout.status === 'delivered' ? `${kind}.sent` : `${kind}.paying`)}`;
  return `${order.id} · ${t(`order.${order.status}`)}`;
}

export function renderPayout(order) {
  show($('#payout'), order !== null);
  if (!order) return;
  const locale = lang() === 'sw' ? 'sw-KE' : 'en-KE';
  const amount = (minor) => money(minor, order.currency, locale);
  let payment;
  if (order.payout) {
    // "Sent" only once the outbox delivered it; a payout row alone is a promise, not money.
    payment = t(order.payout.status === 'delivered' ? 'payout.delivered' : 'payout.pending_transfer');
    payment += ` · ${amount(order.payout.amount_minor)}`;
  } else {
    const allAccepted = order.pieces.length > 0 && order.pieces.every((p) => p.state === 'accepted');
    payment = t(allAccepted ? 'payout.ready' : 'payout.none');
  }
  const row = (key, value, id) => [el('dt', {}, t(key)), el('dd', { id }, value)];
  $('#payout-summary').replaceChildren(
    ...row('payout.status', orderLabel(order), 'order-status'),
    ...row('payout.total', amount(order.total_minor)),
    ...row('payout.accepted', amount(order.accepted_minor)),
    ...row('payout.pending', amount(order.pending_minor)),
    ...row('payout.payment', payment, 'payout-status'),
  );
}
