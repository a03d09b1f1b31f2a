-- Exchange: crypto <-> naira at a locked rate, against the platform's treasury.

-- name: exchange_lock_rate(telegram_id, from_currency, to_currency, amount, lock_seconds, payment_reference)^
-- Exchange quote step: prices the amount at the newest rates (crypto -> USD
-- and USD -> NGN) less the pair's markup and records a quoted order whose
-- rate holds until rate_locked_until (now + lock_seconds, or the platform's
-- rate_lock_seconds). Refusals change nothing: not_found (user), invalid
-- (pair not offered, amount precision, a quote worth nothing), below_minimum,
-- above_limit, stale_rate (a leg missing or older than rate_max_age_seconds).
-- Indexes: users (telegram_id), exchange_pairs pkey, currencies pkey,
-- exchange_rates_latest.
with
settings as (
    select
        rate_lock_seconds,
        rate_max_age_seconds
    from platform_settings
),

me as (
    select id from users
    where telegram_id = :telegram_id
),

pair as (
    select
        p.from_currency,
        p.to_currency,
        p.markup_rate,
        p.min_amount,
        p.max_amount,
        fc.decimals as from_decimals,
        tc.decimals as to_decimals,
        -- Every pair has naira on one side; the other side is priced in USD.
        case when p.to_currency = 'NGN' then p.from_currency else p.to_currency end as crypto
    from exchange_pairs as p
    inner join currencies as fc on p.from_currency = fc.code
    inner join currencies as tc on p.to_currency = tc.code
    where
        p.from_currency = :from_currency
        and p.to_currency = :to_currency
        and p.enabled
        and 'NGN' in (p.from_currency, p.to_currency)
),

crypto_usd as (
    select
        r.rate,
        r.fetched_at
    from exchange_rates as r
    inner join pair on r.base = pair.crypto
    where r.quote = 'USD'
    order by r.fetched_at desc
    limit 1
),

usd_ngn as (
    select
        r.rate,
        r.fetched_at
    from exchange_rates as r
    where r.base = 'USD' and r.quote = 'NGN'
    order by r.fetched_at desc
    limit 1
),

priced as (
    select
        pair.*,
        crypto_usd.rate * usd_ngn.rate as ngn_per_unit,
        case
            when crypto_usd.fetched_at is not null and usd_ngn.fetched_at is not null
                then least(crypto_usd.fetched_at, usd_ngn.fetched_at)
        end as fetched_at
    from pair
    left join crypto_usd on true
    left join usd_ngn on true
),

quote as (
    select
        priced.*,
        -- Naira per unit, or units per naira: the division at 40 decimals, so
        -- the truncations below decide every digit that is kept.
        case
            when priced.to_currency = 'NGN' then priced.ngn_per_unit
            else round(1::numeric, 40) / priced.ngn_per_unit
        end as market,
        -- amount x market x (1 - markup), rounded down to the to-currency's
        -- precision: rounding is toward the platform, by less than one
        -- smallest unit. Multiplying before dividing keeps it exact.
        trunc(
            case
                when priced.to_currency = 'NGN'
                    then :amount::numeric * priced.ngn_per_unit * (1 - priced.markup_rate)
                else round(:amount::numeric * (1 - priced.markup_rate), 40) / priced.ngn_per_unit
            end,
            priced.to_decimals
        ) as to_amount
    from priced
    where priced.ngn_per_unit > 0
),

verdict as (
    select
        pair.min_amount,
        pair.max_amount,
        priced.fetched_at,
        case
            when me.id is null then 'not_found'
            when pair.from_currency is null then 'invalid'
            when
                :amount::numeric <= 0
                or round(:amount::numeric, pair.from_decimals) <> :amount::numeric
                then 'invalid'
            when :amount::numeric < pair.min_amount then 'below_minimum'
            when :amount::numeric > pair.max_amount then 'above_limit'
            when
                priced.fetched_at is null
                or priced.fetched_at < now() - settings.rate_max_age_seconds * interval '1 second'
                then 'stale_rate'
            when quote.to_amount <= 0 then 'invalid'
            else 'ok'
        end as outcome
    from settings
    left join me on true
    left join pair on true
    left join priced on true
    left join quote on true
),

created as (
    insert into exchange_orders (
        user_id, from_currency, to_currency, from_amount, to_amount, market_rate, markup_rate,
        rate, rate_locked_until, payment_reference
    )
    select
        me.id as user_id,
        quote.from_currency,
        quote.to_currency,
        :amount::numeric as from_amount,
        quote.to_amount,
        -- Kept for the screens at the column's 18 decimals; the amounts above are what binds.
        trunc(quote.market, 18) as market_rate,
        quote.markup_rate,
        trunc(quote.market * (1 - quote.markup_rate), 18) as rate,
        now()
        + coalesce(:lock_seconds::integer, settings.rate_lock_seconds) * interval '1 second'
            as rate_locked_until,
        :payment_reference::text as payment_reference
    from verdict
    cross join me
    cross join quote
    cross join settings
    where verdict.outcome = 'ok'
    returning *
)

select
    verdict.outcome,
    verdict.min_amount,
    verdict.max_amount,
    verdict.fetched_at,
    created.id,
    created.from_currency,
    created.to_currency,
    created.from_amount,
    created.to_amount,
    created.market_rate,
    created.markup_rate,
    created.rate,
    created.status::text as status,
    created.rate_locked_until,
    created.payment_reference,
    created.created_at
from verdict
left join created on true;

-- name: exchange_execute(telegram_id, order_id)^
-- Exchange confirm step, and the exchange order's payment webhook: at the
-- locked amounts, debits the from-wallet and credits the to-wallet against
-- the platform's treasury, and completes the order. A lock that ran out
-- marks the order expired (the only change) with outcome quote_expired.
-- Other refusals change nothing: not_found (not the user's order),
-- wrong_status, insufficient_funds. Lock order: the order, then the user's
-- two wallets in id order.
-- Indexes: users (telegram_id), exchange_orders pkey, wallets (user_id, currency).
with
me as (
    select id from users
    where telegram_id = :telegram_id
),

locked as (
    select o.*
    from exchange_orders as o
    inner join me on o.user_id = me.id
    where o.id = :order_id
    for update of o
),

user_wallets as (
    select
        w.id,
        w.currency,
        w.available
    from wallets as w
    inner join locked on w.user_id = locked.user_id
    where w.currency in (locked.from_currency, locked.to_currency)
    order by w.id
    for update of w
),

verdict as (
    select
        locked.id,
        locked.status,
        locked.rate_locked_until,
        locked.from_currency,
        locked.from_amount,
        locked.to_amount,
        fw.id as from_wallet,
        fw.available as from_available,
        tw.id as to_wallet,
        tw.available as to_available,
        case
            when locked.id is null then 'not_found'
            when locked.status not in ('quoted', 'awaiting_payment', 'paid') then 'wrong_status'
            when now() > locked.rate_locked_until then 'quote_expired'
            when fw.id is null or tw.id is null then 'not_found'
            when fw.available < locked.from_amount then 'insufficient_funds'
            else 'ok'
        end as outcome
    from (select 1 as one) as base  -- noqa: ST11
    left join locked on true
    left join user_wallets as fw on locked.from_currency = fw.currency
    left join user_wallets as tw on locked.to_currency = tw.currency
),

expired as (
    update exchange_orders as o
    set
        status = 'expired',
        updated_at = now()
    from verdict
    where o.id = verdict.id and verdict.outcome = 'quote_expired'
    returning o.id
),

posted as (
    select
        post_transfer(
            'exchange',
            jsonb_build_array(
                jsonb_build_object(
                    'kind', 'wallet_available', 'wallet', verdict.from_wallet, 'amount', -locked.from_amount
                ),
                jsonb_build_object(
                    'kind', 'platform_treasury', 'currency', locked.from_currency, 'amount', locked.from_amount
                ),
                jsonb_build_object(
                    'kind', 'platform_treasury', 'currency', locked.to_currency, 'amount', -locked.to_amount
                ),
                jsonb_build_object(
                    'kind', 'wallet_available', 'wallet', verdict.to_wallet, 'amount', locked.to_amount
                )
            ),
            'exchange ' || locked.id,
            p_exchange_order_id => locked.id
        ) as transfer_id
    from verdict
    inner join locked on verdict.id = locked.id
    where verdict.outcome = 'ok'
),

completed as (
    update exchange_orders as o
    set
        status = 'completed',
        completed_at = now(),
        updated_at = now()
    from posted
    where o.id = :order_id
    returning o.*
)

select
    verdict.outcome,
    verdict.status::text as status,
    verdict.rate_locked_until,
    verdict.from_currency as currency,
    verdict.from_available as available,
    verdict.from_amount as needed,
    completed.id,
    completed.from_currency,
    completed.to_currency,
    completed.from_amount,
    completed.to_amount,
    completed.rate,
    completed.status::text as new_status,
    completed.completed_at,
    posted.transfer_id,
    -- post_transfer's update is invisible to this statement's snapshot: add it up.
    verdict.from_available - verdict.from_amount as from_balance,
    verdict.to_available + verdict.to_amount as to_balance
from verdict
left join posted on true
left join completed on true;

-- name: exchange_test_rate(base, quote, rate, age_seconds)!
-- tests: a rate fetched age_seconds ago.
insert into exchange_rates (base, quote, rate, source, fetched_at)
values (:base, :quote, :rate, 'test', now() - :age_seconds::integer * interval '1 second');

-- name: exchange_test_order(order_id)^
-- tests: an exchange order as it stands.
-- Index: exchange_orders pkey.
select
    status,
    received_amount,
    completed_at
from exchange_orders
where id = :order_id;

-- name: exchange_test_disable_pair(from_currency, to_currency)!
-- tests: takes a pair off the menu.
-- Index: exchange_pairs pkey.
update exchange_pairs
set enabled = false
where from_currency = :from_currency and to_currency = :to_currency;

-- name: exchange_test_user_orders(telegram_id)$
-- tests: how many exchange orders a user has, whatever their status.
-- Indexes: users (telegram_id), exchange_orders_user.
select count(*) as orders
from exchange_orders as o
inner join users as u on o.user_id = u.id
where u.telegram_id = :telegram_id;

-- name: exchange_context(telegram_id)^
-- Exchange screen (and the exchange flows' context, kept for their steps):
-- the user (blocked? onboarded?); every wallet in currency order with its available balance; live
-- saved addresses and bank accounts (20 each, most recently used first); the
-- newest rate of every crypto -> USD and of USD -> each fiat currency, with
-- its time, its age in seconds and whether it is older than
-- rate_max_age_seconds (stale: a quote would be refused), a leg without any
-- rate being stale; the enabled pairs with markup and limits (in the
-- from-currency); the rate-lock time; up to 10 open orders (quoted,
-- awaiting_payment, paid, underpaid; newest first) and how many there are;
-- the database's now, which the ages and lock times are measured against.
-- No row when the user is unknown.
-- Indexes: users (telegram_id), wallets_one_per_currency,
-- saved_addresses_live, saved_bank_accounts_live, exchange_rates_latest,
-- exchange_pairs pkey, exchange_orders_open.
with
settings as (
    select
        rate_lock_seconds,
        rate_max_age_seconds
    from platform_settings
),

me as (
    select
        id,
        telegram_id,
        is_blocked,
        onboarding = 'complete' as onboarding_complete
    from users
    where telegram_id = :telegram_id
),

-- Every quote is priced through USD: crypto -> USD, then USD -> naira.
legs as (
    select
        c.code as base,
        'USD' as quote,
        c.sort_order
    from currencies as c
    where c.kind = 'crypto'
    union all
    select
        'USD' as base,
        c.code as quote,
        c.sort_order
    from currencies as c
    where c.kind = 'fiat'
),

rates as (
    select
        legs.base,
        legs.quote,
        legs.sort_order,
        newest.rate,
        newest.fetched_at,
        floor(extract(epoch from now() - newest.fetched_at))::bigint as age_seconds,
        coalesce(
            newest.fetched_at < now() - settings.rate_max_age_seconds * interval '1 second',
            true
        ) as stale
    from legs
    cross join settings
    left join lateral (
        select
            r.rate,
            r.fetched_at
        from exchange_rates as r
        where r.base = legs.base and r.quote = legs.quote
        order by r.fetched_at desc
        limit 1
    ) as newest on true
)

select
    me.id,
    me.telegram_id,
    me.is_blocked,
    me.onboarding_complete,
    now() as as_of,
    settings.rate_lock_seconds,
    settings.rate_max_age_seconds,
    coalesce(wallets.items, '[]') as wallets,
    coalesce(addresses.items, '[]') as addresses,
    coalesce(banks.items, '[]') as bank_accounts,
    (
        select
            coalesce(
                json_agg(
                    json_build_object(
                        'base', r.base,
                        'quote', r.quote,
                        'rate', r.rate,
                        'fetched_at', r.fetched_at,
                        'age_seconds', r.age_seconds,
                        'stale', r.stale
                    )
                    order by r.sort_order, r.base, r.quote
                ),
                '[]'
            )
        from rates as r
    ) as rates,
    (
        select
            coalesce(
                json_agg(
                    json_build_object(
                        'from_currency', p.from_currency,
                        'to_currency', p.to_currency,
                        'markup_rate', p.markup_rate,
                        'min_amount', p.min_amount,
                        'max_amount', p.max_amount
                    )
                    order by p.from_currency, p.to_currency
                ),
                '[]'
            )
        from exchange_pairs as p
        where p.enabled
    ) as pairs,
    coalesce(orders.items, '[]') as open_orders,
    coalesce(orders.total, 0) as open_orders_count
from me
cross join settings
cross join
    lateral (
        select
            json_agg(
                json_build_object(
                    'currency', w.currency,
                    'kind', c.kind,
                    'decimals', c.decimals,
                    'available', w.available
                )
                order by w.currency
            ) as items
        from wallets as w
        inner join currencies as c on w.currency = c.code
        where w.user_id = me.id
    ) as wallets
cross join
    lateral (
        select
            json_agg(
                json_build_object(
                    'id', a.id,
                    'currency', a.currency,
                    'network', a.network,
                    'address', a.address,
                    'label', a.label,
                    'last_used_at', a.last_used_at
                )
                order by a.last_used_at desc nulls last, a.id desc
            ) as items
        from (
            select sa.*
            from saved_addresses as sa
            where sa.user_id = me.id and sa.deleted_at is null
            order by sa.last_used_at desc nulls last, sa.id desc
            limit 20
        ) as a
    ) as addresses
cross join
    lateral (
        select
            json_agg(
                json_build_object(
                    'id', b.id,
                    'bank_code', b.bank_code,
                    'bank_name', bk.name,
                    'account_number', b.account_number,
                    'account_name', b.account_name,
                    'label', b.label,
                    'last_used_at', b.last_used_at
                )
                order by b.last_used_at desc nulls last, b.id desc
            ) as items
        from (
            select sb.*
            from saved_bank_accounts as sb
            where sb.user_id = me.id and sb.deleted_at is null
            order by sb.last_used_at desc nulls last, sb.id desc
            limit 20
        ) as b
        inner join banks as bk on b.bank_code = bk.code
    ) as banks
cross join lateral (
    select
        max(o.total) as total,
        json_agg(
            json_build_object(
                'id', o.id,
                'from_currency', o.from_currency,
                'to_currency', o.to_currency,
                'from_amount', o.from_amount,
                'to_amount', o.to_amount,
                'rate', o.rate,
                'status', o.status,
                'rate_locked_until', o.rate_locked_until,
                'payment_reference', o.payment_reference,
                'received_amount', o.received_amount,
                'created_at', o.created_at
            )
            order by o.created_at desc, o.id desc
        ) as items
    from (
        select
            x.id,
            x.from_currency,
            x.to_currency,
            x.from_amount,
            x.to_amount,
            x.rate,
            x.status::text as status,
            x.rate_locked_until,
            x.payment_reference,
            x.received_amount,
            x.created_at,
            count(*) over () as total
        from exchange_orders as x
        where
            x.user_id = me.id
            and x.status in ('quoted', 'awaiting_payment', 'paid', 'underpaid')
        order by x.created_at desc, x.id desc
        limit 10
    ) as o
) as orders;

-- name: exchange_history(telegram_id, before_at, before_id, page_size)
-- Exchange history screen: the user's orders of every status, newest first,
-- keyset-paged on (created_at, id): the rows before the cursor (all when
-- before_at is null), page_size of them and one more, which only tells the
-- caller that a next page exists; with each side's decimals, for display.
-- No rows for an unknown user.
-- Indexes: users (telegram_id), exchange_orders_user, currencies pkey.
with
page as (
    select
        o.id,
        o.from_currency,
        o.to_currency,
        o.from_amount,
        o.to_amount,
        o.market_rate,
        o.markup_rate,
        o.rate,
        o.status::text as status,
        o.rate_locked_until,
        o.destination::text as destination,
        o.payment_reference,
        o.received_amount,
        o.created_at,
        o.completed_at
    from exchange_orders as o
    where
        -- The user as a value, not a join: one index scan in index order, cut at
        -- page_size + 1, however many orders the user has.
        o.user_id = (
            select u.id from users as u
            where u.telegram_id = :telegram_id
        )
        -- No cursor: a bound past every row. One row comparison either way, so
        -- it stays an index condition in a generic plan too.
        and (o.created_at, o.id) < (
            coalesce(:before_at::timestamptz, 'infinity'),
            coalesce(:before_id::bigint, 9223372036854775807)
        )
    order by o.created_at desc, o.id desc
    limit :page_size::integer + 1
)

-- The currencies only for the rows of the page.
select
    page.*,
    fc.decimals as from_decimals,
    tc.decimals as to_decimals
from page
inner join currencies as fc on page.from_currency = fc.code
inner join currencies as tc on page.to_currency = tc.code
order by page.created_at desc, page.id desc;

-- name: exchange_test_same_instant(telegram_id)!
-- tests: gives all of a user's exchange orders one created_at, to prove the
-- history pages neither repeat nor skip rows that tie.
-- Indexes: users (telegram_id), exchange_orders_user.
update exchange_orders as o
set created_at = date_trunc('second', now())
from users as u
where o.user_id = u.id and u.telegram_id = :telegram_id;

-- name: exchange_test_transfers(order_id)$
-- tests: how many ledger transfers an exchange order has posted.
-- Index: none needed at test sizes (ledger_transfers is scanned).
select count(*) as transfers
from ledger_transfers
where exchange_order_id = :order_id;

-- name: exchange_test_lapse_lock(order_id)!
-- tests: lets a quoted order's rate lock run out now, as the clock would.
-- Index: exchange_orders pkey.
update exchange_orders
set rate_locked_until = now() - interval '1 second'
where id = :order_id;

-- name: exchange_test_age_rates(seconds)!
-- tests: moves every stored rate seconds into the past, as time passing would.
-- Index: none needed at test sizes (exchange_rates is scanned).
update exchange_rates
set fetched_at = fetched_at - :seconds::integer * interval '1 second';

-- name: exchange_store_rates(bases, quotes, rates, source)
-- Rates job: stores one fetch from the rates source, every row stamped with
-- this statement's now(): coin -> USD for the coins we carry, USD -> NGN.
-- Pairs naming a currency we do not carry are skipped. Returns the rows
-- stored; the quotes and screens read them through exchange_rates_latest.
-- Index: currencies pkey.
insert into exchange_rates (base, quote, rate, source)
select
    r.base,
    r.quote,
    r.rate,
    :source::text as source
from unnest(:bases::text[], :quotes::text[], :rates::numeric[]) as r (base, quote, rate)
where
    (
        r.quote = 'USD'
        and r.base in (
            select c.code from currencies as c
            where c.kind = 'crypto'
        )
    )
    or (
        r.base = 'USD'
        and r.quote in (
            select c.code from currencies as c
            where c.kind = 'fiat'
        )
    )
returning base, quote, rate, source, fetched_at;

-- name: exchange_expire_lapsed_locks(batch)
-- Rate-lock expiry job (bot/jobs.py): up to `batch` quoted orders whose rate
-- lock ran out become expired, as exchange_execute marks one it refuses.
-- Strictly before now(), since exchange_execute honours a lock up to its
-- last instant. SKIP LOCKED: concurrent runs take disjoint orders, and an
-- order that a payment or a confirmation holds right now is left to it. The
-- update keeps the status guard, so an order that completed is never
-- closed. Moves no money. Returns the expired orders' ids.
-- Index: exchange_orders_lock_expiry.
with
due as (
    select o.id
    from exchange_orders as o
    where o.status = 'quoted' and o.rate_locked_until < now()
    order by o.rate_locked_until, o.id
    limit :batch
    for update skip locked
),

expired as (
    update exchange_orders as o
    set
        status = 'expired',
        updated_at = now()
    from due
    where o.id = due.id and o.status = 'quoted'
    returning o.id
)

select id from expired
order by id;

-- name: exchange_test_lock_until_clock(order_id)!
-- tests: a quoted order's rate lock ends at this very instant, after the
-- start of any transaction already open (whose now() still honours it).
-- Index: exchange_orders pkey.
update exchange_orders
set rate_locked_until = clock_timestamp()
where id = :order_id;
