-- Admin: the dashboard, the user list and the transaction review.

-- name: admin_dashboard_stats()^
-- Admin dashboard: users (all, onboarded, new in 24 h); escrows per status
-- (every status, zeros included); funds held by escrows per currency; live
-- disputes; cashouts in flight, in all and per currency with their amount;
-- ledger volume per currency in 24 h. Per-currency lists hold the non-zero
-- currencies, by code. Reads only dashboard_counters, which triggers keep
-- (0009_dashboard.sql): its all-time rows and the last 25 hourly buckets,
-- 8 shards each, so it costs the same at any table size. The 24 h figures
-- are exact to the hour: they count from the start of the hour (UTC) 24
-- hours ago (window_start), i.e. the last 24 to 25 hours.
-- Index: dashboard_counters (pk, bucket first: two short ranges).
with
counters as (
    select
        c.metric,
        c.dimension,
        sum(c.value) as value
    from dashboard_counters as c
    where
        c.bucket = '-infinity'
        or c.bucket >= date_trunc('hour', now() - interval '24 hours', 'UTC')
    group by c.metric, c.dimension
),

scalars as (
    select
        coalesce(sum(value) filter (where metric = 'users'), 0)::bigint as users_total,
        coalesce(sum(value) filter (where metric = 'users_onboarded'), 0)::bigint
            as users_onboarded,
        coalesce(sum(value) filter (where metric = 'users_new'), 0)::bigint as users_new_24h,
        coalesce(sum(value) filter (where metric = 'disputes_open'), 0)::bigint as open_disputes,
        coalesce(sum(value) filter (where metric = 'cashouts_in_flight'), 0)::bigint
            as cashouts_pending_count
    from counters
)

select
    date_trunc('hour', now() - interval '24 hours', 'UTC') as window_start,
    scalars.*,
    (
        select
            json_agg(
                json_build_object('status', s.status, 'count', coalesce(c.value, 0)::bigint)
                order by s.n
            )
        from unnest(enum_range(null::escrow_status)::text[]) with ordinality as s (status, n)
        left join counters as c on c.metric = 'escrows' and s.status = c.dimension
    ) as escrows_by_status,
    (
        select
            coalesce(
                json_agg(
                    json_build_object('currency', c.dimension, 'amount', c.value)
                    order by c.dimension
                ),
                '[]'
            )
        from counters as c
        where c.metric = 'escrow_funds_held' and c.value <> 0
    ) as funds_held,
    (
        select
            coalesce(
                json_agg(
                    json_build_object(
                        'currency', n.dimension,
                        'count', n.value::bigint,
                        'amount', coalesce(a.value, 0)
                    )
                    order by n.dimension
                ),
                '[]'
            )
        from counters as n
        left join counters as a
            on a.metric = 'cashouts_in_flight_amount' and n.dimension = a.dimension
        where n.metric = 'cashouts_in_flight' and n.value <> 0
    ) as cashouts_pending,
    (
        select
            coalesce(
                json_agg(
                    json_build_object('currency', c.dimension, 'amount', c.value)
                    order by c.dimension
                ),
                '[]'
            )
        from counters as c
        where c.metric = 'ledger_volume' and c.value <> 0
    ) as volume_24h
from scalars;

-- name: admin_dashboard_stats_exact()^
-- Audits and tests: the dashboard's numbers counted from the tables
-- themselves, same columns as admin_dashboard_stats. Funds held come from
-- the ledger (the escrow holding accounts), not from the escrows' statuses,
-- so it checks the counters against the money. Scans users, escrows,
-- disputes, cashouts and ledger_entries: never on the hot path.
with
since as (
    select date_trunc('hour', now() - interval '24 hours', 'UTC') as window_start
),

escrow_counts as (
    select
        status::text as status,
        count(*) as n
    from escrows
    group by status
),

held as (
    select
        e.currency,
        sum(e.amount) as amount
    from ledger_entries as e
    inner join ledger_accounts as a on e.account_id = a.id
    where a.kind = 'escrow_holding'
    group by e.currency
    having sum(e.amount) <> 0
),

in_flight as (
    select
        currency,
        count(*) as n,
        sum(amount) as amount
    from cashouts
    where status in ('pending', 'approved', 'processing')
    group by currency
),

volume as (
    select
        e.currency,
        sum(e.amount) as amount
    from ledger_entries as e
    cross join since
    where e.amount > 0 and e.created_at >= since.window_start
    group by e.currency
)

select
    since.window_start,
    (select count(*) from users) as users_total,
    (
        select count(*) from users
        where onboarding = 'complete'
    ) as users_onboarded,
    (
        select count(*) from users as u
        where u.created_at >= since.window_start
    ) as users_new_24h,
    (
        select count(*) from disputes
        where status in ('open', 'in_review')
    ) as open_disputes,
    (select coalesce(sum(n), 0) from in_flight)::bigint as cashouts_pending_count,
    (
        select
            json_agg(
                json_build_object('status', s.status, 'count', coalesce(c.n, 0))
                order by s.n
            )
        from unnest(enum_range(null::escrow_status)::text[]) with ordinality as s (status, n)
        left join escrow_counts as c on s.status = c.status
    ) as escrows_by_status,
    (
        select
            coalesce(
                json_agg(
                    json_build_object('currency', h.currency, 'amount', h.amount)
                    order by h.currency
                ),
                '[]'
            )
        from held as h
    ) as funds_held,
    (
        select
            coalesce(
                json_agg(
                    json_build_object('currency', f.currency, 'count', f.n, 'amount', f.amount)
                    order by f.currency
                ),
                '[]'
            )
        from in_flight as f
    ) as cashouts_pending,
    (
        select
            coalesce(
                json_agg(
                    json_build_object('currency', v.currency, 'amount', v.amount)
                    order by v.currency
                ),
                '[]'
            )
        from volume as v
        where v.amount <> 0
    ) as volume_24h
from since;

-- name: admin_user_page(after_id, page_size, prefix, telegram_id)
-- Admin user list: page_size users (1 to 100) and one more to tell
-- whether a next page exists, with ids above after_id, by id ascending, each with its
-- wallets (every currency it has, by code: available and held, and the
-- currency's decimals), how many
-- escrows it is a party to (buyer or seller) and how many ledger transfers
-- touched its wallets. Optionally only the users whose username, first name
-- or e-mail starts with prefix (a LIKE pattern, already escaped, ending in
-- %, matched lower-cased) or whose Telegram id is telegram_id. Two branches,
-- one of which is switched off by its parameters, so that each keeps its own
-- plan: the plain list walks the primary key from after_id; the search ORs
-- the prefix indexes and the Telegram id. A prefix shared by a large share
-- of the users costs a bitmap over all of them (sorted by id); the planner
-- may instead walk the primary key and filter.
-- Indexes: users (pk, telegram_id), users_username_prefix,
-- users_first_name_prefix, users_email_prefix (0009, text_pattern_ops),
-- wallets_one_per_currency, currencies (pk), escrows_buyer, escrows_seller,
-- ledger_entries_user
-- (a count reads the user's entries: proportional to the user's history).
with
page as (
    (
        select u.id
        from users as u
        where
            :prefix::text is null
            and :telegram_id::bigint is null
            and u.id > coalesce(:after_id::bigint, 0)
        order by u.id
        limit :page_size::integer + 1
    )
    union all
    (
        select u.id
        from users as u
        where
            u.id > coalesce(:after_id::bigint, 0)
            and (
                lower(u.username) like lower(:prefix::text)
                or lower(u.first_name) like lower(:prefix::text)
                or lower(u.email) like lower(:prefix::text)
                or u.telegram_id = :telegram_id::bigint
            )
        order by u.id
        limit :page_size::integer + 1
    )
)

select
    u.id,
    u.telegram_id,
    u.username,
    u.first_name,
    u.last_name,
    u.email,
    u.phone,
    u.is_admin,
    u.is_blocked,
    u.onboarding::text as onboarding,
    u.created_at,
    coalesce(w.items, '[]') as wallets,
    (
        select count(*) from escrows as e
        where e.buyer_id = u.id
    )
    + (
        select count(*) from escrows as e
        where e.seller_id = u.id
    ) as escrow_count,
    (
        select count(distinct le.transfer_id) from ledger_entries as le
        where le.user_id = u.id
    ) as transaction_count
from page
inner join users as u on page.id = u.id
left join lateral (
    select
        json_agg(
            json_build_object(
                'currency', wl.currency,
                'decimals', cur.decimals,
                'available', wl.available,
                'held', wl.held
            )
            order by wl.currency
        ) as items
    from wallets as wl
    inner join currencies as cur on wl.currency = cur.code
    where wl.user_id = u.id
) as w on true
order by u.id;

-- name: admin_transaction_review(status, before_at, before_id, page_size)
-- Admin transaction review: page_size ledger transfers (1 to 100) and one
-- more to tell whether a next page exists, newest first by (created_at, id),
-- older than the cursor (before_at, before_id) when one is given, of one
-- status when one is given; each with its kind, status, memo, what it was
-- for (escrow, cashout, exchange order) and its entries by id (at most 20;
-- a movement posts a handful): account kind, currency (and its decimals),
-- amount, the escrow
-- or provider of a platform account, and for a wallet entry the wallet and
-- its user (id, Telegram id, display name). The cursor is a row comparison
-- against coalesced parameters, so it stays an index condition in a generic
-- plan; the status and no-status cases are two branches, one switched off
-- by its parameter, each on its own index.
-- Indexes: ledger_transfers_created, ledger_transfers_status,
-- ledger_entries_transfer, ledger_accounts (pk), currencies (pk), users (pk).
with
page as (
    (
        select t.id
        from ledger_transfers as t
        where
            :status::text is null
            and (t.created_at, t.id)
            < (coalesce(:before_at::timestamptz, 'infinity'), coalesce(:before_id::bigint, 0))
        order by t.created_at desc, t.id desc
        limit :page_size::integer + 1
    )
    union all
    (
        select t.id
        from ledger_transfers as t
        where
            t.status = :status::text::transfer_status
            and (t.created_at, t.id)
            < (coalesce(:before_at::timestamptz, 'infinity'), coalesce(:before_id::bigint, 0))
        order by t.created_at desc, t.id desc
        limit :page_size::integer + 1
    )
)

select
    t.id,
    t.kind::text as kind,
    t.status::text as status,
    t.memo,
    t.escrow_id,
    t.cashout_id,
    t.exchange_order_id,
    t.created_at,
    coalesce(en.items, '[]') as entries
from page
inner join ledger_transfers as t on page.id = t.id
left join lateral (
    select
        json_agg(
            json_build_object(
                'id', x.id,
                'account_kind', x.account_kind,
                'currency', x.currency,
                'decimals', x.decimals,
                'amount', x.amount,
                'wallet_id', x.wallet_id,
                'escrow_id', x.escrow_id,
                'provider', x.provider,
                'user_id', x.user_id,
                'telegram_id', x.telegram_id,
                'display_name', x.display_name
            )
            order by x.id
        ) as items
    from (
        select
            le.id,
            a.kind::text as account_kind,
            le.currency,
            cur.decimals,
            le.amount,
            a.wallet_id,
            a.escrow_id,
            a.provider::text as provider,
            u.id as user_id,
            u.telegram_id,
            coalesce(
                nullif(concat_ws(' ', nullif(u.first_name, ''), '@' || u.username), ''),
                u.telegram_id::text
            ) as display_name
        from ledger_entries as le
        inner join ledger_accounts as a on le.account_id = a.id
        inner join currencies as cur on le.currency = cur.code
        left join users as u on le.user_id = u.id
        where le.transfer_id = t.id
        order by le.id
        limit 20
    ) as x
) as en on true
order by t.created_at desc, t.id desc;

-- name: admin_cashout_queue(after_at, after_id, page_size)
-- Admin cashout approval queue: pending cashouts, oldest first by
-- (created_at, id), keyset-paged: rows strictly after the cursor (after_at,
-- after_id) when one is given; page_size + 1 rows (the extra one says a
-- next page exists). Each with its user (Telegram id, display name, blocked
-- or not), amount, fee and the currency's decimals, and the destination (a
-- network and address, or a bank with its name, account number and name).
-- The cursor is one row comparison against coalesced parameters, so it
-- stays an index condition in a generic plan.
-- Indexes: cashouts_queue (status, created_at, id; partial on the in-flight
-- statuses, read in order from the cursor), users (pk), currencies (pk),
-- banks (pk).
select
    co.id,
    co.user_id,
    u.telegram_id,
    coalesce(
        nullif(concat_ws(' ', nullif(u.first_name, ''), '@' || u.username), ''),
        u.telegram_id::text
    ) as display_name,
    u.is_blocked,
    co.currency,
    c.decimals,
    co.amount,
    co.fee,
    co.destination::text as destination,
    co.network,
    co.address,
    co.bank_code,
    b.name as bank_name,
    co.account_number,
    co.account_name,
    co.created_at
from cashouts as co
inner join users as u on co.user_id = u.id
inner join currencies as c on co.currency = c.code
left join banks as b on co.bank_code = b.code
where
    co.status = 'pending'
    and (co.created_at, co.id) > (
        coalesce(:after_at::timestamptz, '-infinity'), coalesce(:after_id::bigint, 0)
    )
order by co.created_at, co.id
limit :page_size::integer + 1;

-- name: admin_sync(admin_ids)^
-- Start-up: users.is_admin true exactly for the configured admin Telegram
-- ids (admin_ids), false for every other user; the movements that check
-- is_admin (dispute resolution, cashout approval) then follow the
-- configuration. Only the rows that change are written. Returns the
-- Telegram ids made admins, those no longer admins, and the configured ids
-- that have no user yet (admins at the next sync after they sign up). The
-- ids travel as text arrays, which asyncpg encodes without the type lookup
-- a bigint[] costs on each new connection. Reads every user once (the
-- demotions have no index to use): a start-up statement, never a screen.
-- Indexes: users (telegram_id) for the missing ids.
with
changed as (
    update users as u
    set
        is_admin = not u.is_admin,
        updated_at = now()
    where
        u.is_admin <> (u.telegram_id = any(:admin_ids::text[]::bigint[]))
    returning u.telegram_id, u.is_admin
)

select
    coalesce(
        (
            select array_agg(c.telegram_id::text order by c.telegram_id) from changed as c
            where c.is_admin
        ),
        '{}'
    )::text[] as promoted,
    coalesce(
        (
            select array_agg(c.telegram_id::text order by c.telegram_id) from changed as c
            where not c.is_admin
        ),
        '{}'
    )::text[] as demoted,
    coalesce(
        (
            select array_agg(distinct w.telegram_id::text order by w.telegram_id::text)
            from unnest(:admin_ids::text[]::bigint[]) as w (telegram_id)
            where not exists (
                    select 1 from users as x
                    where x.telegram_id = w.telegram_id
                )
        ),
        '{}'
    )::text[] as missing;

-- name: admin_test_set_transfer_created_at(transfer_ids, created_at)!
-- tests: several ledger transfers posted at the very same instant.
update ledger_transfers
set created_at = :created_at::timestamptz
where id = any(:transfer_ids::bigint[]);

-- name: admin_test_set_transfer_status(transfer_ids, status)!
-- tests: ledger transfers flagged or reviewed (no movement does it yet).
update ledger_transfers
set status = :status::text::transfer_status
where id = any(:transfer_ids::bigint[]);

-- name: admin_test_set_cashout_created_at(cashout_ids, created_at)!
-- tests: several cashouts requested at the very same instant.
update cashouts
set created_at = :created_at::timestamptz
where id = any(:cashout_ids::bigint[]);

-- name: admin_test_age_user(telegram_id, age)!
-- tests: a user who signed up `age` ago, with every ledger entry of theirs
-- as old (the dashboard triggers move them to the older hour).
with
aged_user as (
    update users
    set created_at = now() - :age::interval
    where telegram_id = :telegram_id
    returning id
)

update ledger_entries as e
set created_at = now() - :age::interval
from aged_user
where e.user_id = aged_user.id;

-- name: admin_test_transfer_ids(telegram_id)
-- tests: the ledger transfers touching a user's wallets, oldest first.
select distinct e.transfer_id
from ledger_entries as e
inner join users as u on e.user_id = u.id
where u.telegram_id = :telegram_id
order by e.transfer_id;
