-- The payout worker's claim on a cashout, so that a payout is asked for once.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- When a worker last set out to call the payout provider for the cashout,
-- committed before the call: null when no call is in flight. A processing
-- cashout with no provider reference whose claim is older than the worker's
-- lease belongs to a worker that died mid-call; the next run looks it up at
-- the provider (by our reference) before it ever asks again.
alter table cashouts add column payout_started_at timestamptz;

-- How many times a worker has claimed the cashout (for the admin's eye).
alter table cashouts add column payout_attempts integer not null default 0;
