"""Orders and their pieces, the payout gate, the payout outbox, and the order routes."""
