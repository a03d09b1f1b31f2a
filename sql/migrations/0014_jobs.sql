-- The housekeeping jobs (bot/jobs.py): how long a wallet top-up order waits
-- for its payment, and the index its sweep walks. The other sweeps have
-- theirs already: escrows_auto_release, escrows_payment_deadline and
-- exchange_orders_lock_expiry (0002); every status they set is in its enum,
-- and the escrow's 'expire' by 'system' is in escrow_transitions (0004).

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Hours after its creation that an open top-up order is closed as expired.
-- Closing it moves no money: a payment that still comes to its reference is
-- credited all the same (and marks it paid).
alter table platform_settings
add column deposit_window_hours integer not null default 24
constraint platform_settings_deposit_window check (deposit_window_hours > 0);

-- Deposit-order expiry job: open top-up orders, oldest first. Small: an
-- order leaves it once paid or expired. Built inside the migration's
-- transaction (no concurrently there): top-ups wait for the build.
-- squawk-ignore require-concurrent-index-creation
create index deposit_orders_open on deposit_orders (created_at)
where status = 'open';
