"""Flash-sale coupons (seed 004): PostgreSQL is the truth; a Redis gate and group commit
make one hot coupon fast without ever changing an answer (DESIGN.md)."""
