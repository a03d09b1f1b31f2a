-- The ledger as a whole: reconciliation.

-- name: reconcile()
-- Reconciliation (after every test, and for the admin): one row per broken
-- invariant, none when the books are healthy. Scans the ledger: run it off
-- the hot path.
with
account_totals as (
    select
        a.id,
        a.kind,
        a.wallet_id,
        a.escrow_id,
        coalesce(sum(e.amount), 0) as total
    from ledger_accounts as a
    left join ledger_entries as e on a.id = e.account_id
    group by a.id
),

wallet_mismatch as (
    select
        'wallet_mismatch' as kind,
        w.id::text as subject,
        format(
            'wallet %s (%s): available %s held %s, entries say %s and %s',
            w.id, w.currency, w.available, w.held, av.total, hd.total
        ) as detail
    from wallets as w
    inner join account_totals as av on w.id = av.wallet_id and av.kind = 'wallet_available'
    inner join account_totals as hd on w.id = hd.wallet_id and hd.kind = 'wallet_held'
    where w.available <> av.total or w.held <> hd.total
),

negative_balance as (
    select
        'negative_balance' as kind,
        w.id::text as subject,
        format('wallet %s: available %s held %s', w.id, w.available, w.held) as detail
    from wallets as w
    where w.available < 0 or w.held < 0
),

unbalanced_transfer as (
    select
        'unbalanced_transfer' as kind,
        e.transfer_id::text as subject,
        format('transfer %s is off by %s %s', e.transfer_id, sum(e.amount), e.currency) as detail
    from ledger_entries as e
    group by e.transfer_id, e.currency
    having sum(e.amount) <> 0
),

empty_transfer as (
    select
        'empty_transfer' as kind,
        t.id::text as subject,
        format('transfer %s (%s) has no entries', t.id, t.kind) as detail
    from ledger_transfers as t
    where not exists (
            select 1 from ledger_entries as e
            where e.transfer_id = t.id
        )
),

escrow_holding as (
    select
        'escrow_holding' as kind,
        es.id::text as subject,
        format(
            'escrow %s (%s) holds %s %s, its status says %s',
            es.id, es.status, coalesce(h.total, 0), es.currency, expected.amount
        ) as detail
    from escrows as es
    left join account_totals as h on es.id = h.escrow_id
    cross join
        lateral (
            select
                case
                    when es.status in ('funded', 'accepted', 'delivered', 'disputed')
                        then es.amount + es.buyer_fee
                    else 0
                end as amount
        ) as expected
    where coalesce(h.total, 0) <> expected.amount
),

cashout_hold as (
    select
        'cashout_hold' as kind,
        w.id::text as subject,
        format('wallet %s holds %s, its cashouts in flight %s', w.id, w.held, f.total) as detail
    from wallets as w
    cross join
        lateral (
            select coalesce(sum(c.amount + c.fee), 0) as total
            from cashouts as c
            where c.wallet_id = w.id and c.status in ('pending', 'approved', 'processing')
        ) as f
    where w.held <> f.total
),

-- Money inside (wallets, escrows, platform) equals what providers brought in
-- minus what they took out; with balanced transfers this is the whole ledger.
currency_total as (
    select
        'currency_total' as kind,
        e.currency as subject,
        format('%s: the ledger sums to %s', e.currency, sum(e.amount)) as detail
    from ledger_entries as e
    group by e.currency
    having sum(e.amount) <> 0
)

select * from wallet_mismatch
union all
select * from negative_balance
union all
select * from unbalanced_transfer
union all
select * from empty_transfer
union all
select * from escrow_holding
union all
select * from cashout_hold
union all
select * from currency_total
order by kind, subject;

-- name: ledger_test_post(kind, entries)$
-- tests: post an arbitrary transfer, to prove post_transfer's own checks.
select post_transfer(:kind::transfer_kind, :entries::jsonb, 'test') as transfer_id;

-- name: ledger_test_skew_wallet(telegram_id, currency, delta)!
-- tests: change a balance behind the ledger's back, to prove reconcile sees it.
update wallets as w
set available = w.available + :delta::numeric
from users as u
where w.user_id = u.id and u.telegram_id = :telegram_id and w.currency = :currency;

-- name: ledger_test_lock_wallet(telegram_id, currency)$
-- tests: hold a wallet's row lock from another connection, to pause a movement.
select w.id
from wallets as w
inner join users as u on w.user_id = u.id
where u.telegram_id = :telegram_id and w.currency = :currency
for update of w;

-- name: ledger_test_terminate(pid)$
-- tests: kill a backend in the middle of its work.
select pg_terminate_backend(:pid::integer) as was_terminated;

-- name: ledger_test_lock_waiters()$
-- tests: how many sessions of this database wait on a lock right now. Ask
-- outside a transaction: within one, pg_stat_activity keeps its first answer.
select count(*) as waiting
from pg_stat_activity
where datname = current_database() and wait_event_type = 'Lock';

-- name: ledger_test_row_counts()^
-- tests: the rows movements write, to prove a failed one left none behind.
select
    (select count(*) from ledger_transfers) as transfers,
    (select count(*) from ledger_entries) as entries,
    (select count(*) from cashouts) as cashouts,
    (select count(*) from webhook_events) as webhook_events,
    (select count(*) from idempotency_keys) as idempotency_keys;

-- name: ledger_test_inside_totals()
-- tests: per currency, what the platform holds for users and itself (every
-- account but the providers' clearing), to compare with inflow minus outflow.
select
    e.currency,
    sum(e.amount) as total
from ledger_entries as e
inner join ledger_accounts as a on e.account_id = a.id
where a.kind <> 'provider_clearing'
group by e.currency
order by e.currency;
