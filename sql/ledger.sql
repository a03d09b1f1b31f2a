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
