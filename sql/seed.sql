-- Seeding for `lockbay demo` and the tests: people, balances and rates made
-- the way the movements make them, so the ledger stays balanced.

-- name: seed_user(telegram_id, username, first_name, email, phone)$
-- Demo and tests: an onboarded user with a wallet in every currency; returns
-- the user id. Safe to run twice (the second run changes nothing).
with
new_user as (
    insert into users (
        telegram_id, username, first_name, email, email_verified_at, phone, onboarding,
        terms_accepted_at
    )
    values (
        :telegram_id,
        :username,
        :first_name,
        :email,
        case when :email::text is not null then now() end,
        :phone,
        'complete',
        now()
    )
    on conflict (telegram_id) do nothing
    returning id
),

new_wallets as (
    insert into wallets (user_id, currency)
    select
        new_user.id,
        c.code
    from new_user
    cross join currencies as c
)

select id from new_user
union all
select id from users
where telegram_id = :telegram_id;

-- name: seed_credit(telegram_id, currency, amount)$
-- Demo and tests: a deposit through the provider's clearing account; returns
-- the wallet's new available balance.
with
wallet as (
    select
        w.id,
        w.available
    from wallets as w
    inner join users as u on w.user_id = u.id
    where u.telegram_id = :telegram_id and w.currency = :currency
    for update of w
),

posted as (
    select
        post_transfer(
            'deposit',
            jsonb_build_array(
                jsonb_build_object('kind', 'wallet_available', 'wallet', wallet.id, 'amount', :amount::numeric),
                jsonb_build_object(
                    'kind', 'provider_clearing',
                    'provider', case when :currency = 'NGN' then 'fincra' else 'blockbee' end,
                    'currency', :currency::text,
                    'amount', -:amount::numeric
                )
            ),
            'seed'
        ) as transfer_id
    from wallet
)

-- The function's update is invisible to this statement's snapshot: add it up.
select wallet.available + :amount::numeric as available
from posted, wallet;

-- name: seed_cashout(telegram_id, currency, amount, fee, network, address, idempotency_key)$
-- Demo and tests: a crypto cashout waiting for approval, its amount and fee
-- moved from available to held; returns the cashout id.
with
wallet as (
    select
        w.id,
        w.user_id
    from wallets as w
    inner join users as u on w.user_id = u.id
    where u.telegram_id = :telegram_id and w.currency = :currency
    for update of w
),

cashout as (
    insert into cashouts (
        user_id, wallet_id, currency, amount, fee, destination, network, address, idempotency_key
    )
    select
        wallet.user_id,
        wallet.id,
        :currency,
        :amount,
        :fee,
        'crypto_address' as destination,
        :network,
        :address,
        :idempotency_key
    from wallet
    returning id, wallet_id, amount + fee as total
)

select
    cashout.id,
    post_transfer(
        'cashout_hold',
        jsonb_build_array(
            jsonb_build_object('kind', 'wallet_available', 'wallet', cashout.wallet_id, 'amount', -cashout.total),
            jsonb_build_object('kind', 'wallet_held', 'wallet', cashout.wallet_id, 'amount', cashout.total)
        ),
        'seed',
        p_cashout_id => cashout.id
    ) as transfer_id
from cashout;

-- name: seed_address(telegram_id, currency, network, address, label)$
-- Demo and tests: a saved crypto address; returns its id.
insert into saved_addresses (user_id, currency, network, address, label)
select
    u.id,
    :currency,
    :network,
    :address,
    :label
from users as u
where u.telegram_id = :telegram_id
returning id;

-- name: seed_bank_account(telegram_id, bank_code, account_number, account_name, label)$
-- Demo and tests: a saved bank account; returns its id.
insert into saved_bank_accounts (user_id, bank_code, account_number, account_name, label)
select
    u.id,
    :bank_code,
    :account_number,
    :account_name,
    :label
from users as u
where u.telegram_id = :telegram_id
returning id;

-- name: seed_rate(base, quote, rate)!
-- Demo and tests: a rate as the rates job would store it.
insert into exchange_rates (base, quote, rate, source)
values (:base, :quote, :rate, 'seed');

-- name: seed_is_fresh()$
-- Demo: true until the first seeding has run.
select not exists (select 1 from exchange_rates) as fresh;

-- name: seed_make_admin(telegram_id)!
-- Demo and tests: give a user admin rights.
update users
set is_admin = true
where telegram_id = :telegram_id;

-- name: seed_block(telegram_id)!
-- Demo and tests: block a user (what an admin does from the console).
update users
set is_blocked = true
where telegram_id = :telegram_id;

-- name: seed_set_referrer(telegram_id, referrer_telegram_id)!
-- Demo and tests: record who brought a user in.
update users
set
    referrer_id = (
        select r.id from users as r
        where r.telegram_id = :referrer_telegram_id
    )
where telegram_id = :telegram_id;

-- Scale seeding, for the benchmark and the plans test: a population of the
-- size given, made set-based (one statement per step, no row-by-row loop)
-- and posted through balanced ledger transfers like the movements post
-- them, so that reconcile stays clean. The scale set is the users with
-- telegram ids first_telegram_id .. first_telegram_id + users - 1; every
-- step draws its people from that range by telegram id. What comes before
-- what: users first; their wallets (with the wallet trigger paused, in one
-- transaction) before any step that moves money; rates before exchange
-- orders; escrows before their ledger, disputes and ratings; exchange
-- orders before their ledger; referrals before referral rewards; balances
-- after the last transfer; analyze after bulk steps whose rows later steps
-- join (the planner must know their sizes), and at the end. Steps that do
-- not depend on each other may run on two connections at once
-- (tests/test_plans.py does).

-- name: seed_scale_users(first_telegram_id, users)$
-- Benchmark and plans test: the scale set's users, signed up over the past
-- year; 95% onboarded with a verified e-mail, a third with a phone, one in
-- 1000 an admin (the first among them). Wallets come from
-- seed_scale_wallets. Returns how many were inserted.
with
drawn as (
    select
        g as n,
        :first_telegram_id::bigint + g as telegram_id,
        g % 20 <> 19 as onboarded,
        now() - random() * interval '365 days' as joined
    from generate_series(0, :users::integer - 1) as g
),

inserted as (
    insert into users (
        telegram_id, username, first_name, email, email_verified_at, phone, referral_code,
        is_admin, onboarding, terms_accepted_at, created_at, updated_at
    )
    select
        d.telegram_id,
        'scale_' || d.telegram_id as username,
        case when d.n % 10 = 0 then 'Ọlá ' || d.n || ' 🌍' else 'Scale ' || d.n end as first_name,
        case when d.onboarded then 'scale' || d.telegram_id || '@example.com' end as email,
        case when d.onboarded then d.joined + interval '5 minutes' end as email_verified_at,
        case when d.n % 3 = 0 then '+1' || d.telegram_id end as phone,
        -- Not hexadecimal, so never one of the random codes registration gives.
        'SC' || upper(to_hex(d.telegram_id)) as referral_code,
        d.n % 1000 = 0 as is_admin,
        (case when d.onboarded then 'complete' else 'awaiting_email' end)::onboarding_step,
        case when d.onboarded then d.joined + interval '10 minutes' end as terms_accepted_at,
        d.joined as created_at,
        d.joined as updated_at
    from drawn as d
    returning 1
)

select count(*) as inserted from inserted;

-- name: seed_scale_pause_wallet_trigger()!
-- Benchmark and plans test, inside the transaction of seed_scale_wallets
-- only: switches off the trigger that opens each new wallet's two ledger
-- accounts, because one set-based insert of all the accounts takes about
-- half the time of a trigger call per wallet (500,000 of them at 100,000
-- users), the longest step of the seeding.
-- seed_scale_wallets opens the accounts itself (and fails on the accounts'
-- unique key if the trigger was left on);
-- seed_scale_resume_wallet_trigger switches it back on before the commit.
alter table wallets disable trigger wallets_open_accounts;

-- name: seed_scale_resume_wallet_trigger()!
-- Benchmark and plans test: switches the wallet trigger back on, at the end
-- of seed_scale_wallets's transaction.
alter table wallets enable trigger wallets_open_accounts;

-- name: seed_scale_wallets(first_telegram_id, users)$
-- Benchmark and plans test, with the wallet trigger paused: a wallet in
-- every currency for each user of the scale set, and each wallet's
-- available and held ledger accounts, as the trigger would open them.
-- Returns how many accounts were opened.
with
new_wallets as (
    insert into wallets (user_id, currency, created_at, updated_at)
    select
        u.id,
        c.code,
        u.created_at,
        u.created_at as updated_at
    from users as u
    cross join currencies as c
    where
        u.telegram_id between :first_telegram_id::bigint
        and :first_telegram_id::bigint + :users::integer - 1
    order by u.id, c.code
    returning id, currency
),

accounts as (
    insert into ledger_accounts (kind, currency, wallet_id)
    select
        k.kind,
        w.currency,
        w.id
    from new_wallets as w
    cross join (values ('wallet_available'::account_kind), ('wallet_held'::account_kind)) as k (kind)
    order by w.id, k.kind
    returning 1
)

select count(*) as opened from accounts;

-- name: seed_scale_rates(per_pair)$
-- Benchmark and plans test: per_pair rates of every crypto -> USD and of
-- USD -> NGN, one a minute up to now (the newest is fresh), wobbling within
-- 2% around fixed prices. Returns how many were inserted.
with
inserted as (
    insert into exchange_rates (base, quote, rate, source, fetched_at)
    select
        p.base,
        p.quote,
        p.price * (1 + round((0.02 * sin(k / 60.0))::numeric, 6)) as rate,
        'seed scale' as source,
        now() - k * interval '1 minute' as fetched_at
    from (
        values
        ('BTC', 'USD', 65000::numeric),
        ('ETH', 'USD', 3000::numeric),
        ('LTC', 'USD', 80::numeric),
        ('USDT', 'USD', 1::numeric),
        ('USD', 'NGN', 1500::numeric)
    ) as p (base, quote, price)
    cross join generate_series(0, :per_pair::integer - 1) as k
    returning 1
)

select count(*) as inserted from inserted;

-- name: seed_scale_deposits(first_telegram_id, users, deposits)$
-- Benchmark and plans test: `deposits` provider payments credited to random
-- wallets of the scale set, at random times after their owner signed up:
-- each a deposit transfer of two entries (the wallet's available +x, the
-- provider's clearing -x). Wallet balances follow in seed_scale_balances.
-- Returns how many entries were posted.
with
drawn as materialized (
    select
        nextval(pg_get_serial_sequence('ledger_transfers', 'id')) as transfer_id,
        :first_telegram_id::bigint + floor(random() * :users::integer)::bigint as telegram_id,
        1 + floor(random() * n.currencies)::bigint as currency_n,
        round(random()::numeric, 6) as size,
        random() as moment
    from generate_series(1, :deposits::integer) as g
    cross join (select count(*) as currencies from currencies) as n
),

cur as (
    select
        c.code,
        c.decimals,
        c.cashout_max,
        c.escrow_min_amount,
        row_number() over (order by c.code) as n
    from currencies as c
),

priced as materialized (
    select
        d.transfer_id,
        u.id as user_id,
        cur.code as currency,
        a.id as account_id,
        clearing.id as clearing_id,
        greatest(round(d.size * cur.cashout_max / 10, cur.decimals), cur.escrow_min_amount) as amount,
        u.created_at + d.moment * (now() - u.created_at) as posted_at
    from drawn as d
    inner join users as u on d.telegram_id = u.telegram_id
    inner join cur on d.currency_n = cur.n
    inner join wallets as w on u.id = w.user_id and cur.code = w.currency
    inner join ledger_accounts as a on w.id = a.wallet_id and a.kind = 'wallet_available'
    inner join ledger_accounts as clearing
        on
            cur.code = clearing.currency
            and clearing.kind = 'provider_clearing'
            and clearing.provider
            = (case when cur.code = 'NGN' then 'fincra' else 'blockbee' end)::payment_provider
),

transfers as (
    insert into ledger_transfers (id, kind, memo, created_at)
    overriding system value
    select
        p.transfer_id,
        'deposit' as kind,
        'seed scale deposit' as memo,
        p.posted_at
    from priced as p
),

entries as (
    insert into ledger_entries (transfer_id, account_id, user_id, currency, amount, created_at)
    select
        p.transfer_id,
        e.account_id,
        e.user_id,
        p.currency,
        e.amount,
        p.posted_at
    from priced as p
    cross join
        lateral (
            values
            (p.account_id, p.user_id, p.amount),
            (p.clearing_id, null::bigint, -p.amount)
        ) as e (account_id, user_id, amount)
    -- In account order: the foreign key checks and index insertions then
    -- walk the accounts' pages in order instead of at random.
    order by e.account_id
    returning 1
)

select count(*) as posted from entries;

-- name: seed_scale_destinations(first_telegram_id, users, addresses, bank_accounts)$
-- Benchmark and plans test: saved crypto addresses and bank accounts of
-- random users of the scale set, on every network and bank; half used at
-- some time, one in ten deleted, some labelled (emoji too). Returns how
-- many were saved.
with
nets as (
    select
        n.currency,
        n.network,
        row_number() over (order by n.currency, n.network) as n
    from networks as n
),

bank_list as (
    select
        b.code,
        row_number() over (order by b.code) as n
    from banks as b
),

drawn_addresses as (
    select
        g,
        :first_telegram_id::bigint + floor(random() * :users::integer)::bigint as telegram_id,
        1 + floor(random() * (select count(*) from networks))::bigint as network_n,
        random() as roll,
        now() - random() * interval '360 days' as saved
    from generate_series(1, :addresses::integer) as g
),

drawn_banks as (
    select
        g,
        :first_telegram_id::bigint + floor(random() * :users::integer)::bigint as telegram_id,
        1 + floor(random() * (select count(*) from banks))::bigint as bank_n,
        random() as roll,
        now() - random() * interval '360 days' as saved
    from generate_series(1, :bank_accounts::integer) as g
),

new_addresses as (
    insert into saved_addresses (
        user_id, currency, network, address, label, created_at, last_used_at, deleted_at
    )
    select
        u.id,
        nets.currency,
        nets.network,
        'S' || md5(:first_telegram_id::text || ' address ' || d.g) as address,
        case when d.roll < 0.3 then 'Cold 🧊 ' || d.g when d.roll < 0.5 then 'Exchange' end as label,
        d.saved as created_at,
        case when d.roll < 0.5 then d.saved + d.roll * (now() - d.saved) end as last_used_at,
        case when d.roll > 0.9 then d.saved + interval '1 day' end as deleted_at
    from drawn_addresses as d
    inner join users as u on d.telegram_id = u.telegram_id
    inner join nets on d.network_n = nets.n
    returning 1
),

new_banks as (
    insert into saved_bank_accounts (
        user_id, bank_code, account_number, account_name, label, created_at, last_used_at,
        deleted_at
    )
    select
        u.id,
        b.code,
        lpad(d.g::text, 10, '0') as account_number,
        upper(u.first_name) as account_name,
        case when d.roll < 0.3 then 'Salary 💰' when d.roll < 0.5 then 'Savings' end as label,
        d.saved as created_at,
        case when d.roll < 0.5 then d.saved + d.roll * (now() - d.saved) end as last_used_at,
        case when d.roll > 0.9 then d.saved + interval '1 day' end as deleted_at
    from drawn_banks as d
    inner join users as u on d.telegram_id = u.telegram_id
    inner join bank_list as b on d.bank_n = b.n
    returning 1
)

select (select count(*) from new_addresses) + (select count(*) from new_banks) as saved;

-- name: seed_scale_deposit_orders(first_telegram_id, users, orders)$
-- Benchmark and plans test: wallet top-up orders of random users of the
-- scale set: 70% paid, 10% open, 20% expired. Rows only (the money of the
-- scale set comes from seed_scale_deposits). Returns how many were inserted.
with
cur as (
    select
        c.code,
        c.decimals,
        c.cashout_max,
        row_number() over (order by c.code) as n
    from currencies as c
),

drawn as (
    select
        g,
        :first_telegram_id::bigint + floor(random() * :users::integer)::bigint as telegram_id,
        1 + floor(random() * (select count(*) from currencies))::bigint as currency_n,
        round(random()::numeric, 6) as size,
        random() as roll,
        now() - random() * interval '360 days' as opened
    from generate_series(1, :orders::integer) as g
),

inserted as (
    insert into deposit_orders (
        ref, user_id, currency, provider, address, status, received_amount, created_at, updated_at
    )
    select
        'SCD-' || upper(to_hex(:first_telegram_id::bigint)) || '-' || d.g as ref,
        u.id,
        cur.code,
        (case when cur.code = 'NGN' then 'fincra' else 'blockbee' end)::payment_provider as provider,
        case
            when cur.code <> 'NGN' then 'S' || md5(:first_telegram_id::text || ' deposit ' || d.g)
        end as address,
        (
            case when d.roll < 0.7 then 'paid' when d.roll < 0.8 then 'open' else 'expired' end
        )::deposit_status as status,
        case
            when d.roll < 0.7 then round(d.size * cur.cashout_max / 10, cur.decimals) else 0
        end as received_amount,
        d.opened as created_at,
        d.opened + interval '20 minutes' as updated_at
    from drawn as d
    inner join users as u on d.telegram_id = u.telegram_id
    inner join cur on d.currency_n = cur.n
    returning 1
)

select count(*) as inserted from inserted;

-- name: seed_scale_escrows(first_telegram_id, users, escrows)$
-- Benchmark and plans test: escrows between random people of the scale set
-- (the live ones of the past 30 days, the others of the past year), in
-- every status: 10% awaiting payment (a fifth of them for an invited
-- seller without an account), 5% cancelled, 5% expired, 5% funded, 5%
-- accepted, 5% delivered, 10% disputed, 45% completed, 5% refunded, 5%
-- declined; fees worked out as escrow_create does, deadlines and times as
-- the movements set them. Rows only: seed_scale_escrow_ledger moves their
-- money. Returns how many were inserted.
with
settings as (
    select
        escrow_fee_rate,
        payment_window_hours,
        delivery_window_hours,
        auto_release_hours
    from platform_settings
),

cur as (
    select
        c.code,
        c.decimals,
        c.cashout_max,
        c.escrow_min_amount,
        ('1e-' || c.decimals)::numeric as unit,
        row_number() over (order by c.code) as n
    from currencies as c
),

drawn as (
    select
        g,
        floor(random() * :users::integer)::bigint as buyer_n,
        -- Any other person of the set: a step of 1 .. users - 1 around the ring.
        1 + floor(random() * (:users::integer - 1))::bigint as seller_step,
        1 + floor(random() * (select count(*) from currencies))::bigint as currency_n,
        round(random()::numeric, 6) as size,
        random() as status_roll,
        random() as split_roll,
        random() as age_roll
    from generate_series(1, :escrows::integer) as g
),

shaped as (
    select
        d.*,
        s.status,
        d.status_roll < 0.02 as invited,
        (
            case when d.split_roll < 0.5 then 'buyer' when d.split_roll < 0.8 then 'seller' else 'split' end
        )::fee_split as fee_split,
        now() - d.age_roll * case
            when s.status in ('awaiting_payment', 'funded', 'accepted', 'delivered', 'disputed')
                then interval '30 days'
            else interval '360 days'
        end as created
    from drawn as d
    cross join
        lateral (
            select
                (case
                    when d.status_roll < 0.10 then 'awaiting_payment'
                    when d.status_roll < 0.15 then 'cancelled'
                    when d.status_roll < 0.20 then 'expired'
                    when d.status_roll < 0.25 then 'funded'
                    when d.status_roll < 0.30 then 'accepted'
                    when d.status_roll < 0.35 then 'delivered'
                    when d.status_roll < 0.45 then 'disputed'
                    when d.status_roll < 0.90 then 'completed'
                    when d.status_roll < 0.95 then 'refunded'
                    else 'declined'
                end)::escrow_status as status
        ) as s
),

priced as (
    select
        s.*,
        buyer.id as buyer_id,
        case when not s.invited then seller.id end as seller_id,
        case
            when s.invited then 'invited_' || :first_telegram_id::bigint || '_' || s.g
            else lower(seller.username)
        end as seller_handle,
        cur.code as currency,
        a.amount,
        f.fee,
        case s.fee_split
            when 'buyer' then f.fee
            when 'seller' then 0
            else ceil(f.fee * 0.5 / cur.unit) * cur.unit
        end as buyer_fee,
        s.created + make_interval(hours => settings.payment_window_hours) as payment_deadline,
        case
            when s.status not in ('awaiting_payment', 'cancelled', 'expired')
                then s.created + interval '20 minutes'
        end as funded_at,
        settings.payment_window_hours,
        settings.delivery_window_hours,
        settings.auto_release_hours
    from shaped as s
    cross join settings
    inner join users as buyer on buyer.telegram_id = :first_telegram_id::bigint + s.buyer_n
    inner join users as seller
        on
            seller.telegram_id
            = :first_telegram_id::bigint + (s.buyer_n + s.seller_step) % :users::integer
    inner join cur on s.currency_n = cur.n
    cross join
        lateral (
            select
                greatest(round(s.size * cur.cashout_max / 20, cur.decimals), cur.escrow_min_amount)
                    as amount
        ) as a
    cross join lateral (select ceil(a.amount * settings.escrow_fee_rate / cur.unit) * cur.unit as fee) as f
),

timed as (
    select
        p.*,
        case
            when
                p.status in ('accepted', 'delivered', 'disputed', 'completed')
                or (p.status = 'refunded' and p.g % 2 = 0)
                then p.funded_at + interval '1 hour'
        end as accepted_at,
        case
            when p.status in ('delivered', 'completed') or (p.status = 'disputed' and p.g % 2 = 0)
                then p.funded_at + interval '1 day'
        end as delivered_at
    from priced as p
),

inserted as (
    insert into escrows (
        ref, buyer_id, seller_id, seller_handle, currency, amount, fee, total, fee_split,
        buyer_fee, seller_fee, description, status, payment_method, payment_reference,
        paid_amount, payment_deadline, accept_deadline, delivery_deadline, auto_release_at,
        created_at, updated_at, funded_at, accepted_at, delivered_at, closed_at
    )
    select
        'SCL-' || upper(to_hex(:first_telegram_id::bigint)) || '-' || t.g as ref,
        t.buyer_id,
        t.seller_id,
        t.seller_handle,
        t.currency,
        t.amount,
        t.fee,
        t.amount + t.fee as total,
        t.fee_split,
        t.buyer_fee,
        t.fee - t.buyer_fee as seller_fee,
        case when t.g % 7 = 0 then 'Scale trade ' || t.g || ' 📦' else 'Scale trade ' || t.g end
            as description,
        t.status,
        'wallet'::payment_method,
        'SCL-' || upper(to_hex(:first_telegram_id::bigint)) || '-' || t.g as payment_reference,
        case when t.funded_at is not null then t.amount + t.buyer_fee else 0 end as paid_amount,
        t.payment_deadline,
        t.funded_at + make_interval(hours => t.payment_window_hours) as accept_deadline,
        t.accepted_at + make_interval(hours => t.delivery_window_hours) as delivery_deadline,
        case
            when t.status = 'delivered' then t.delivered_at + make_interval(hours => t.auto_release_hours)
        end as auto_release_at,
        t.created as created_at,
        coalesce(t.delivered_at, t.accepted_at, t.funded_at, t.created) as updated_at,
        t.funded_at,
        t.accepted_at,
        t.delivered_at,
        case t.status
            when 'cancelled' then t.created + interval '1 hour'
            when 'expired' then t.payment_deadline
            when 'completed' then t.delivered_at + interval '1 day'
            when 'refunded' then t.funded_at + interval '2 days'
            when 'declined' then t.funded_at + interval '3 hours'
        end as closed_at
    from timed as t
    returning 1
)

select count(*) as inserted from inserted;

-- name: seed_scale_escrow_ledger(first_telegram_id, users)$
-- Benchmark and plans test: the money of every paid escrow whose buyer is
-- in the scale set, as the movements post it: the buyer's payment arrives
-- (deposit), funds the escrow (escrow_fund: the buyer's available to the
-- escrow's holding account, opened here), and a closed escrow pays out
-- (escrow_release: the seller's share and the platform's fee; escrow_refund:
-- back to the buyer). Live escrows keep amount + buyer_fee in their holding.
-- Returns how many entries were posted.
with
paid as materialized (
    select
        e.id,
        e.ref,
        e.status,
        e.currency,
        e.amount,
        e.fee,
        e.seller_fee,
        e.amount + e.buyer_fee as due,
        e.buyer_id,
        e.seller_id,
        e.funded_at,
        e.closed_at
    from escrows as e
    inner join users as u on e.buyer_id = u.id
    where
        u.telegram_id between :first_telegram_id::bigint
        and :first_telegram_id::bigint + :users::integer - 1
        and e.funded_at is not null
),

holding as (
    insert into ledger_accounts (kind, currency, escrow_id)
    select
        'escrow_holding' as kind,
        p.currency,
        p.id
    from paid as p
    returning id, escrow_id
),

steps as materialized (
    select
        nextval(pg_get_serial_sequence('ledger_transfers', 'id')) as transfer_id,
        s.kind,
        s.posted_at,
        s.memo,
        p.*
    from paid as p
    cross join
        lateral (
            values
            ('deposit'::transfer_kind, p.funded_at - interval '1 minute', 'deposit ' || p.ref),
            ('escrow_fund', p.funded_at, 'escrow ' || p.ref || ' funded'),
            (
                case p.status
                    when 'completed' then 'escrow_release'::transfer_kind
                    when 'refunded' then 'escrow_refund'
                    when 'declined' then 'escrow_refund'
                end,
                p.closed_at,
                'escrow ' || p.ref || case p.status
                    when 'completed' then ' released'
                    when 'refunded' then ' refunded'
                    else ' declined'
                end
            )
        ) as s (kind, posted_at, memo)
    where s.kind is not null
),

transfers as (
    insert into ledger_transfers (id, kind, memo, escrow_id, created_at)
    overriding system value
    select
        s.transfer_id,
        s.kind,
        s.memo,
        case when s.kind <> 'deposit' then s.id end as escrow_id,
        s.posted_at
    from steps as s
),

entries as (
    insert into ledger_entries (transfer_id, account_id, user_id, currency, amount, created_at)
    select
        s.transfer_id,
        e.account_id,
        e.user_id,
        s.currency,
        e.amount,
        s.posted_at
    from steps as s
    inner join holding as h on s.id = h.escrow_id
    inner join wallets as bw on s.buyer_id = bw.user_id and s.currency = bw.currency
    inner join ledger_accounts as ba on bw.id = ba.wallet_id and ba.kind = 'wallet_available'
    left join wallets as sw on s.seller_id = sw.user_id and s.currency = sw.currency
    left join ledger_accounts as sa on sw.id = sa.wallet_id and sa.kind = 'wallet_available'
    inner join ledger_accounts as clearing
        on
            s.currency = clearing.currency
            and clearing.kind = 'provider_clearing'
            and clearing.provider
            = (case when s.currency = 'NGN' then 'fincra' else 'blockbee' end)::payment_provider
    inner join ledger_accounts as fees on s.currency = fees.currency and fees.kind = 'platform_fees'
    cross join
        lateral (
            select
                v.account_id,
                v.user_id,
                v.amount
            from (
                values
                ('deposit'::transfer_kind, ba.id, s.buyer_id, s.due),
                ('deposit', clearing.id, null::bigint, -s.due),
                ('escrow_fund', ba.id, s.buyer_id, -s.due),
                ('escrow_fund', h.id, null, s.due),
                ('escrow_release', h.id, null, -s.due),
                ('escrow_release', sa.id, s.seller_id, s.amount - s.seller_fee),
                ('escrow_release', fees.id, null, s.fee),
                ('escrow_refund', h.id, null, -s.due),
                ('escrow_refund', ba.id, s.buyer_id, s.due)
            ) as v (kind, account_id, user_id, amount)
            where v.kind = s.kind and v.amount <> 0
        ) as e
    order by e.account_id
    returning 1
)

select count(*) as posted from entries;

-- name: seed_scale_disputes(first_telegram_id, users, messages)$
-- Benchmark and plans test: a dispute for every disputed escrow of the
-- scale set (half open, half in review by an admin) and, resolved, for a
-- fifth of its completed and refunded ones that were accepted; each with
-- `messages` messages from the buyer, the seller and the admin in turn.
-- Returns how many messages were posted.
with
admins as (
    select
        u.id,
        row_number() over (order by u.id) as n,
        count(*) over () as total
    from users as u
    where
        u.is_admin
        and u.telegram_id between :first_telegram_id::bigint
        and :first_telegram_id::bigint + :users::integer - 1
),

chosen as (
    select
        e.id as escrow_id,
        e.buyer_id,
        e.seller_id,
        e.status,
        e.amount,
        e.closed_at,
        coalesce(e.delivered_at, e.accepted_at) + interval '2 hours' as opened,
        random() as roll
    from escrows as e
    inner join users as u on e.buyer_id = u.id
    where
        u.telegram_id between :first_telegram_id::bigint
        and :first_telegram_id::bigint + :users::integer - 1
        and e.accepted_at is not null
        and (e.status = 'disputed' or (e.status in ('completed', 'refunded') and e.id % 5 = 0))
),

opened as (
    insert into disputes (
        escrow_id, opened_by_id, reason, status, admin_id, resolution, buyer_share,
        resolution_note, created_at, last_message_at, resolved_at
    )
    select
        c.escrow_id,
        case when c.roll < 0.7 then c.buyer_id else c.seller_id end as opened_by_id,
        case when c.roll < 0.35 then 'Not as described' else 'Never arrived 📭' end as reason,
        (case
            when c.status <> 'disputed' then 'resolved'
            when c.roll < 0.5 then 'open'
            else 'in_review'
        end)::dispute_status as status,
        case when c.status <> 'disputed' or c.roll >= 0.5 then a.id end as admin_id,
        (
            case c.status when 'completed' then 'release' when 'refunded' then 'refund' end
        )::dispute_resolution as resolution,
        case c.status when 'completed' then 0 when 'refunded' then c.amount end as buyer_share,
        case when c.status <> 'disputed' then 'Settled on the evidence' end as resolution_note,
        c.opened as created_at,
        c.opened + :messages::integer * interval '7 minutes' as last_message_at,
        case when c.status <> 'disputed' then c.closed_at end as resolved_at
    from chosen as c
    inner join admins as a on a.n = 1 + c.escrow_id % a.total
    returning id, opened_by_id, admin_id, escrow_id, created_at
),

posted as (
    -- Whoever opened speaks first, the other party second, the admin (once
    -- assigned) third.
    insert into dispute_messages (dispute_id, sender_id, body, created_at)
    select
        o.id,
        case k % 3
            when 1 then o.opened_by_id
            when 2 then case when o.opened_by_id = e.buyer_id then e.seller_id else e.buyer_id end
            else coalesce(o.admin_id, o.opened_by_id)
        end as sender_id,
        case when k % 4 = 0 then 'Here is the tracking number 🚚 ' || k else 'Message ' || k end as body,
        o.created_at + k * interval '7 minutes' as created_at
    from opened as o
    inner join escrows as e on o.escrow_id = e.id
    cross join generate_series(1, :messages::integer) as k
    returning 1
)

select count(*) as posted from posted;

-- name: seed_scale_ratings(first_telegram_id, users)$
-- Benchmark and plans test: ratings of the completed escrows whose buyer is
-- in the scale set: the buyer rates the seller in 70% of them, the seller
-- the buyer in 50%, mostly 4 and 5 stars, some with a comment. Returns how
-- many were given.
with
given as (
    insert into ratings (escrow_id, rater_id, ratee_id, rater_role, stars, comment, created_at)
    select
        e.id,
        r.rater_id,
        r.ratee_id,
        r.rater_role,
        least(5, 1 + floor(sqrt(r.roll) * 5))::integer as stars,
        case when r.roll < 0.3 then 'Smooth trade 👍' when r.roll < 0.4 then 'Slow to reply' end as comment,
        e.closed_at + interval '1 hour' as created_at
    from escrows as e
    inner join users as u on e.buyer_id = u.id
    cross join
        lateral (
            values
            (e.buyer_id, e.seller_id, 'buyer'::party_role, random(), 0.7),
            (e.seller_id, e.buyer_id, 'seller'::party_role, random(), 0.5)
        ) as r (rater_id, ratee_id, rater_role, roll, share)
    where
        u.telegram_id between :first_telegram_id::bigint
        and :first_telegram_id::bigint + :users::integer - 1
        and e.status = 'completed'
        and r.roll < r.share
    returning 1
)

select count(*) as given from given;

-- name: seed_scale_support(first_telegram_id, users, tickets, messages)$
-- Benchmark and plans test: support tickets of the scale set, each of
-- another user while there are fewer than users (beyond, closed ones of the
-- same people again, so nobody has two live tickets): 20% open, 20%
-- answered, the rest closed; each with `messages` messages, the user's and
-- an admin's in turn; an answered ticket's last reply unread. Returns how
-- many messages were posted.
with
admins as (
    select
        u.id,
        row_number() over (order by u.id) as n,
        count(*) over () as total
    from users as u
    where
        u.is_admin
        and u.telegram_id between :first_telegram_id::bigint
        and :first_telegram_id::bigint + :users::integer - 1
),

drawn as (
    select
        g,
        random() as roll,
        now() - random() * interval '360 days' as opened
    from generate_series(0, :tickets::integer - 1) as g
),

opened as (
    insert into support_tickets (user_id, subject, status, admin_id, created_at, updated_at, closed_at)
    select
        u.id,
        case when d.roll < 0.5 then 'Where is my cashout? 💸' else 'Question ' || d.g end as subject,
        s.status,
        a.id as admin_id,
        d.opened as created_at,
        d.opened + :messages::integer * interval '13 minutes' as updated_at,
        case when s.status = 'closed' then d.opened + interval '2 days' end as closed_at
    from drawn as d
    cross join
        lateral (
            select
                (case
                    when d.g >= :users::integer then 'closed'
                    when d.roll < 0.2 then 'open'
                    when d.roll < 0.4 then 'answered'
                    else 'closed'
                end)::ticket_status as status
        ) as s
    inner join users as u on u.telegram_id = :first_telegram_id::bigint + d.g % :users::integer
    inner join admins as a on a.n = 1 + d.g % a.total
    returning id, user_id, admin_id, status, created_at
),

posted as (
    insert into support_messages (ticket_id, sender_id, from_admin, body, created_at, read_at)
    select
        o.id,
        case when k % 2 = 1 then o.user_id else o.admin_id end as sender_id,
        k % 2 = 0 as from_admin,
        case
            when k % 2 = 1 then 'Please help, message ' || k else 'We are on it 🙏 ' || k
        end as body,
        o.created_at + k * interval '13 minutes' as created_at,
        case
            when k % 2 = 0 and not (o.status = 'answered' and k = :messages::integer)
                then o.created_at + k * interval '13 minutes' + interval '1 hour'
        end as read_at
    from opened as o
    cross join generate_series(1, :messages::integer) as k
    returning 1
)

select count(*) as posted from posted;

-- name: seed_scale_exchange_orders(first_telegram_id, users, orders)$
-- Benchmark and plans test: exchange orders of random users of the scale
-- set on every enabled pair, priced at the newest rates (seed_scale_rates
-- first) as exchange_lock_rate prices them: 50% completed, 20% expired, 10%
-- cancelled, 3% failed and, of the past hour, 5% quoted, 5% awaiting
-- payment, 3% paid and 4% underpaid. Rows only: seed_scale_exchange_ledger
-- moves their money. Returns how many orders were inserted.
with
settings as (
    select rate_lock_seconds from platform_settings
),

pairs as (
    select
        p.from_currency,
        p.to_currency,
        p.markup_rate,
        p.min_amount,
        p.max_amount,
        fc.decimals as from_decimals,
        tc.decimals as to_decimals,
        row_number() over (order by p.from_currency, p.to_currency) as n,
        case
            when p.to_currency = 'NGN' then usd.rate * ngn.rate
            else round(1::numeric, 40) / (usd.rate * ngn.rate)
        end as market
    from exchange_pairs as p
    inner join currencies as fc on p.from_currency = fc.code
    inner join currencies as tc on p.to_currency = tc.code
    cross join
        lateral (
            select r.rate
            from exchange_rates as r
            where
                r.base = case when p.to_currency = 'NGN' then p.from_currency else p.to_currency end
                and r.quote = 'USD'
            order by r.fetched_at desc
            limit 1
        ) as usd
    cross join
        lateral (
            select r.rate
            from exchange_rates as r
            where r.base = 'USD' and r.quote = 'NGN'
            order by r.fetched_at desc
            limit 1
        ) as ngn
    where p.enabled and 'NGN' in (p.from_currency, p.to_currency)
),

drawn as (
    select
        g,
        :first_telegram_id::bigint + floor(random() * :users::integer)::bigint as telegram_id,
        1 + floor(random() * (select count(*) from pairs))::bigint as pair_n,
        round(random()::numeric, 6) as size,
        random() as status_roll,
        random() as age_roll
    from generate_series(1, :orders::integer) as g
),

shaped as (
    select
        d.g,
        u.id as user_id,
        p.from_currency,
        p.to_currency,
        p.markup_rate,
        p.market,
        p.from_decimals,
        p.to_decimals,
        s.status,
        least(round(p.min_amount * (1 + d.size * 9), p.from_decimals), p.max_amount) as from_amount,
        now() - d.age_roll * case
            when s.status in ('quoted', 'awaiting_payment', 'paid', 'underpaid') then interval '1 hour'
            else interval '360 days'
        end as created
    from drawn as d
    inner join users as u on d.telegram_id = u.telegram_id
    inner join pairs as p on d.pair_n = p.n
    cross join
        lateral (
            select
                (case
                    when d.status_roll < 0.50 then 'completed'
                    when d.status_roll < 0.70 then 'expired'
                    when d.status_roll < 0.80 then 'cancelled'
                    when d.status_roll < 0.83 then 'failed'
                    when d.status_roll < 0.88 then 'quoted'
                    when d.status_roll < 0.93 then 'awaiting_payment'
                    when d.status_roll < 0.96 then 'paid'
                    else 'underpaid'
                end)::exchange_status as status
        ) as s
),

quoted as (
    select
        s.*,
        trunc(s.from_amount * s.market * (1 - s.markup_rate), s.to_decimals) as to_amount,
        case
            when s.status in ('completed', 'paid') then s.from_amount
            when s.status = 'underpaid' then round(s.from_amount / 2, s.from_decimals)
        end as received_amount
    from shaped as s
),

orders as (
    insert into exchange_orders (
        user_id, from_currency, to_currency, from_amount, to_amount, market_rate, markup_rate,
        rate, status, rate_locked_until, payment_reference, received_amount, created_at,
        updated_at, completed_at
    )
    select
        q.user_id,
        q.from_currency,
        q.to_currency,
        q.from_amount,
        q.to_amount,
        trunc(q.market, 18) as market_rate,
        q.markup_rate,
        trunc(q.market * (1 - q.markup_rate), 18) as rate,
        q.status,
        q.created + settings.rate_lock_seconds * interval '1 second' as rate_locked_until,
        'SCX-' || upper(to_hex(:first_telegram_id::bigint)) || '-' || q.g as payment_reference,
        q.received_amount,
        q.created as created_at,
        q.created + interval '3 minutes' as updated_at,
        case when q.status = 'completed' then q.created + interval '3 minutes' end as completed_at
    from quoted as q
    cross join settings
    where q.to_amount > 0 and trunc(q.market * (1 - q.markup_rate), 18) > 0
    returning 1
)

select count(*) as inserted from orders;

-- name: seed_scale_exchange_ledger(first_telegram_id, users)$
-- Benchmark and plans test: the money of the scale set's exchange orders,
-- as the webhooks move it: a deposit into the from-wallet of what a
-- completed, paid or underpaid order received, then for a completed one an
-- exchange transfer against the platform's treasury at the locked amounts.
-- Returns how many entries were posted.
with
orders as (
    select
        o.id,
        o.user_id,
        o.from_currency,
        o.to_currency,
        o.from_amount,
        o.to_amount,
        o.status,
        o.received_amount,
        o.payment_reference,
        o.created_at,
        o.completed_at
    from exchange_orders as o
    inner join users as u on o.user_id = u.id
    where
        u.telegram_id between :first_telegram_id::bigint
        and :first_telegram_id::bigint + :users::integer - 1
        and o.received_amount > 0
),

steps as materialized (
    select
        nextval(pg_get_serial_sequence('ledger_transfers', 'id')) as transfer_id,
        s.kind,
        s.posted_at,
        s.memo,
        o.*
    from orders as o
    cross join
        lateral (
            values
            (
                'deposit'::transfer_kind,
                o.created_at + interval '2 minutes',
                'deposit ' || o.payment_reference
            ),
            (
                case when o.status = 'completed' then 'exchange'::transfer_kind end,
                o.completed_at,
                'exchange ' || o.id
            )
        ) as s (kind, posted_at, memo)
    where s.kind is not null
),

transfers as (
    insert into ledger_transfers (id, kind, memo, exchange_order_id, created_at)
    overriding system value
    select
        s.transfer_id,
        s.kind,
        s.memo,
        case when s.kind = 'exchange' then s.id end as exchange_order_id,
        s.posted_at
    from steps as s
),

entries as (
    insert into ledger_entries (transfer_id, account_id, user_id, currency, amount, created_at)
    select
        s.transfer_id,
        e.account_id,
        e.user_id,
        e.currency,
        e.amount,
        s.posted_at
    from steps as s
    inner join wallets as fw on s.user_id = fw.user_id and s.from_currency = fw.currency
    inner join ledger_accounts as fa on fw.id = fa.wallet_id and fa.kind = 'wallet_available'
    inner join wallets as tw on s.user_id = tw.user_id and s.to_currency = tw.currency
    inner join ledger_accounts as ta on tw.id = ta.wallet_id and ta.kind = 'wallet_available'
    inner join ledger_accounts as clearing
        on
            s.from_currency = clearing.currency
            and clearing.kind = 'provider_clearing'
            and clearing.provider
            = (case when s.from_currency = 'NGN' then 'fincra' else 'blockbee' end)::payment_provider
    inner join ledger_accounts as ft on s.from_currency = ft.currency and ft.kind = 'platform_treasury'
    inner join ledger_accounts as tt on s.to_currency = tt.currency and tt.kind = 'platform_treasury'
    cross join
        lateral (
            select
                v.account_id,
                v.user_id,
                v.currency,
                v.amount
            from (
                values
                ('deposit'::transfer_kind, fa.id, s.user_id, s.from_currency, s.received_amount),
                ('deposit', clearing.id, null::bigint, s.from_currency, -s.received_amount),
                ('exchange', fa.id, s.user_id, s.from_currency, -s.from_amount),
                ('exchange', ft.id, null, s.from_currency, s.from_amount),
                ('exchange', tt.id, null, s.to_currency, -s.to_amount),
                ('exchange', ta.id, s.user_id, s.to_currency, s.to_amount)
            ) as v (kind, account_id, user_id, currency, amount)
            where v.kind = s.kind
        ) as e
    order by e.account_id
    returning 1
)

select count(*) as posted from entries;

-- name: seed_scale_referrals(first_telegram_id, users, percent)$
-- Benchmark and plans test: about `percent` of the scale set were brought
-- in by another person of it. Returns how many.
with
drawn as materialized (
    select
        u.id,
        :first_telegram_id::bigint
        + (u.telegram_id - :first_telegram_id::bigint + 1 + floor(random() * (:users::integer - 1))::bigint)
        % :users::integer as referrer_telegram_id
    from users as u
    where
        u.telegram_id between :first_telegram_id::bigint
        and :first_telegram_id::bigint + :users::integer - 1
        and random() * 100 < :percent::integer
),

referred as (
    update users as u
    set referrer_id = r.id
    from drawn as d
    inner join users as r on d.referrer_telegram_id = r.telegram_id
    where u.id = d.id
    returning 1
)

select count(*) as referred from referred;

-- name: seed_scale_referral_rewards(first_telegram_id, users)$
-- Benchmark and plans test: the referral rewards the completed escrows of
-- the scale set earned, as pay_referral_rewards pays them: for each
-- referred party, on their first completed escrow, referral_reward_rate of
-- its fee rounded down, from the platform's fees to the referrer's wallet.
-- Returns how many were paid.
with
firsts as (
    select distinct on (p.user_id)
        p.user_id as referred_id,
        u.referrer_id,
        e.id as escrow_id,
        e.currency,
        e.fee,
        e.closed_at
    from escrows as e
    cross join lateral (values (e.buyer_id), (e.seller_id)) as p (user_id)
    inner join users as u on p.user_id = u.id
    where
        e.status = 'completed'
        and u.referrer_id is not null
        and u.telegram_id between :first_telegram_id::bigint
        and :first_telegram_id::bigint + :users::integer - 1
    order by p.user_id, e.closed_at, e.id
),

rewards as materialized (
    select
        nextval(pg_get_serial_sequence('ledger_transfers', 'id')) as transfer_id,
        f.*,
        trunc(f.fee * s.referral_reward_rate, c.decimals) as amount,
        a.id as referrer_account,
        fees.id as fees_account
    from firsts as f
    cross join platform_settings as s
    inner join currencies as c on f.currency = c.code
    inner join wallets as w on f.referrer_id = w.user_id and f.currency = w.currency
    inner join ledger_accounts as a on w.id = a.wallet_id and a.kind = 'wallet_available'
    inner join ledger_accounts as fees on f.currency = fees.currency and fees.kind = 'platform_fees'
    where trunc(f.fee * s.referral_reward_rate, c.decimals) > 0
),

transfers as (
    insert into ledger_transfers (id, kind, memo, escrow_id, created_at)
    overriding system value
    select
        r.transfer_id,
        'referral_reward' as kind,
        'referral reward' as memo,
        r.escrow_id,
        r.closed_at
    from rewards as r
),

entries as (
    insert into ledger_entries (transfer_id, account_id, user_id, currency, amount, created_at)
    select
        r.transfer_id,
        e.account_id,
        e.user_id,
        r.currency,
        e.amount,
        r.closed_at
    from rewards as r
    cross join
        lateral (
            values
            (r.fees_account, null::bigint, -r.amount),
            (r.referrer_account, r.referrer_id, r.amount)
        ) as e (account_id, user_id, amount)
),

paid as (
    insert into referral_rewards (
        referrer_id, referred_id, escrow_id, currency, amount, transfer_id, created_at
    )
    select
        r.referrer_id,
        r.referred_id,
        r.escrow_id,
        r.currency,
        r.amount,
        r.transfer_id,
        r.closed_at
    from rewards as r
    returning 1
)

select count(*) as paid from paid;

-- name: seed_scale_balances(first_telegram_id, users)$
-- Benchmark and plans test, after the scale set's transfers: each of its
-- wallets' available balance set to the sum of its account's entries, which
-- is what post_transfer would have left there (no cashouts are in flight, so
-- held stays 0). Returns how many wallets changed.
with
totals as (
    select
        a.wallet_id,
        sum(le.amount) as total
    from ledger_entries as le
    inner join ledger_accounts as a on le.account_id = a.id
    inner join users as u on le.user_id = u.id
    where
        a.kind = 'wallet_available'
        and u.telegram_id between :first_telegram_id::bigint
        and :first_telegram_id::bigint + :users::integer - 1
    group by a.wallet_id
),

changed as (
    update wallets as w
    set
        available = t.total,
        updated_at = now()
    from totals as t
    where w.id = t.wallet_id and w.available <> t.total
    returning 1
)

select count(*) as changed from changed;

-- name: seed_scale_analyze_trades()!
-- Benchmark and plans test: planner statistics of the people and their
-- escrows, for the steps that join the new escrows in bulk. Leaves wallets
-- alone: the concurrent seed_scale_wallets transaction holds a lock on it
-- that an analyze of wallets would wait for.
analyze users, escrows;

-- name: seed_scale_analyze()!
-- Benchmark and plans test: fresh planner statistics after the scale
-- seeding, as autovacuum would gather them in time.
analyze;

-- name: seed_scale_sample(first_telegram_id, users)^
-- Benchmark and plans test: a well-connected person of the scale set to
-- run the screens for: the buyer of a disputed escrow, with the escrow, its
-- live dispute, its seller's username, and references of a deposit order
-- and an exchange order, a support ticket and an admin of the set.
select
    b.id as user_id,
    b.telegram_id,
    e.id as escrow_id,
    e.payment_reference as escrow_ref,
    d.id as dispute_id,
    s.id as seller_id,
    s.username as seller_username,
    coalesce(
        (
            select x.payment_reference from exchange_orders as x
            where x.user_id = b.id and x.payment_reference is not null
            order by x.created_at desc, x.id desc
            limit 1
        ),
        (
            select x.payment_reference from exchange_orders as x
            where x.payment_reference = 'SCX-' || upper(to_hex(:first_telegram_id::bigint)) || '-1'
        )
    ) as exchange_ref,
    coalesce(
        (
            select o.ref from deposit_orders as o
            where o.user_id = b.id
            order by o.created_at desc
            limit 1
        ),
        (
            select o.ref from deposit_orders as o
            where o.ref = 'SCD-' || upper(to_hex(:first_telegram_id::bigint)) || '-1'
        )
    ) as deposit_ref,
    (
        select a.telegram_id from users as a
        where
            a.is_admin
            and a.telegram_id between :first_telegram_id::bigint
            and :first_telegram_id::bigint + :users::integer - 1
        order by a.telegram_id
        limit 1
    ) as admin_telegram_id
from escrows as e
inner join disputes as d on e.id = d.escrow_id and d.status in ('open', 'in_review')
inner join users as b on e.buyer_id = b.id
inner join users as s on e.seller_id = s.id
where
    e.status = 'disputed'
    and b.telegram_id between :first_telegram_id::bigint
    and :first_telegram_id::bigint + :users::integer - 1
order by e.id
limit 1;

-- name: seed_scale_counts()^
-- Benchmark and plans test: how many rows the big tables hold, to report
-- the population a measurement ran on. Scans them: run it off any hot path.
select
    (select count(*) from users) as users_count,
    (select count(*) from wallets) as wallets_count,
    (select count(*) from ledger_accounts) as ledger_accounts_count,
    (select count(*) from ledger_transfers) as ledger_transfers_count,
    (select count(*) from ledger_entries) as ledger_entries_count,
    (select count(*) from escrows) as escrows_count,
    (select count(*) from disputes) as disputes_count,
    (select count(*) from dispute_messages) as dispute_messages_count,
    (select count(*) from support_tickets) as support_tickets_count,
    (select count(*) from support_messages) as support_messages_count,
    (select count(*) from exchange_orders) as exchange_orders_count,
    (select count(*) from saved_addresses) as saved_addresses_count,
    (select count(*) from saved_bank_accounts) as saved_bank_accounts_count,
    (select count(*) from ratings) as ratings_count,
    (select count(*) from referral_rewards) as referral_rewards_count;

-- name: seed_top_up(telegram_id, currency, target)$
-- Demo, on every run: a deposit (as seed_credit makes it) of what the wallet
-- lacks to hold `target` available, nothing when it holds that much already;
-- returns the wallet's available balance after.
with
wallet as (
    select
        w.id,
        w.available,
        :target::numeric - w.available as lacking
    from wallets as w
    inner join users as u on w.user_id = u.id
    where u.telegram_id = :telegram_id and w.currency = :currency
    for update of w
),

posted as (
    select
        post_transfer(
            'deposit',
            jsonb_build_array(
                jsonb_build_object('kind', 'wallet_available', 'wallet', wallet.id, 'amount', wallet.lacking),
                jsonb_build_object(
                    'kind', 'provider_clearing',
                    'provider', case when :currency = 'NGN' then 'fincra' else 'blockbee' end,
                    'currency', :currency::text,
                    'amount', -wallet.lacking
                )
            ),
            'seed'
        ) as transfer_id
    from wallet
    where wallet.lacking > 0
)

-- The function's update is invisible to this statement's snapshot: add it up.
select
    case
        when posted.transfer_id is null then wallet.available
        else wallet.available + wallet.lacking
    end as available
from wallet
left join posted on true;

-- name: seed_bench_seeded(first_telegram_id)^
-- Benchmark (bench/seed.py): the scale the benchmark's database was seeded
-- at, as recorded by seed_bench_record; no row before a seeding completed.
-- The record is an idempotency key of the scale set's first user, scope
-- 'bench_seeding', key the scale's name: a seeding is claimed once.
-- Indexes: users (telegram_id), idempotency_keys pkey.
select
    k.key as scale_name,
    k.result,
    k.created_at as seeded_at
from idempotency_keys as k
inner join users as u on k.user_id = u.id
where u.telegram_id = :first_telegram_id and k.scope = 'bench_seeding';

-- name: seed_bench_record(first_telegram_id, scale, result)!
-- Benchmark: records the scale just seeded (with what `result` says about
-- it) once its last step has run, so that a seeding cut short leaves no
-- record and is done again.
insert into idempotency_keys (user_id, scope, key, request_hash, result)
select
    u.id,
    'bench_seeding' as scope,
    :scale::text as key,
    :scale::text as request_hash,
    :result::jsonb as result
from users as u
where u.telegram_id = :first_telegram_id
on conflict (user_id, scope, key) do update
    set result = excluded.result;

-- name: seed_bench_user_count()$
-- Benchmark: how many users a database holds, to refuse seeding over a
-- population that is not the benchmark's own.
select count(*) as user_count from users;
