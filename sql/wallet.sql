-- Wallet: the wallet screen and the money that moves through it.

-- name: wallet_context(telegram_id)^
-- Wallet screen (and the cashout flows' context): the user, blocked and
-- onboarding flags included; every wallet in currency order with available,
-- held, USD value of both, the rate's time and whether it is older than
-- rate_max_age_seconds (stale), cashout limits, fees and networks; total
-- USD; live saved addresses and bank accounts (20 each, most recently used
-- first); up to 10 cashouts in flight (newest first) and how
-- many there are; the banks a new account can be at (200 at most, by name,
-- for the NGN cashout's bank picker). No row when the user is unknown.
-- Indexes: users (telegram_id), wallets_one_per_currency,
-- exchange_rates_latest, saved_addresses_live, saved_bank_accounts_live,
-- cashouts_in_flight; banks is a small reference table.
with
me as (
    select
        id,
        telegram_id,
        username,
        first_name,
        email,
        phone,
        email_verified_at is not null as email_verified,
        phone_verified_at is not null as phone_verified,
        is_blocked,
        onboarding = 'complete' as onboarding_complete
    from users
    where telegram_id = :telegram_id
),

valued as (
    select
        w.currency,
        w.available,
        w.held,
        c.kind,
        c.decimals,
        c.sort_order,
        c.cashout_min,
        c.cashout_max,
        c.cashout_fee_flat,
        c.cashout_fee_rate,
        coalesce(to_usd.fetched_at, from_usd.fetched_at) as rate_at,
        coalesce(to_usd.fetched_at, from_usd.fetched_at)
        < now() - ps.rate_max_age_seconds * interval '1 second' as rate_stale,
        -- Valued at cents: crypto times its USD price, naira over the USD/NGN rate.
        round(
            coalesce(
                (w.available + w.held) * to_usd.rate,
                (w.available + w.held) / from_usd.rate
            ),
            2
        ) as usd_value
    from me
    cross join platform_settings as ps
    inner join wallets as w on me.id = w.user_id
    inner join currencies as c on w.currency = c.code
    left join lateral (
        select
            r.rate,
            r.fetched_at
        from exchange_rates as r
        where r.base = w.currency and r.quote = 'USD'
        order by r.fetched_at desc
        limit 1
    ) as to_usd on true
    left join lateral (
        select
            r.rate,
            r.fetched_at
        from exchange_rates as r
        where r.base = 'USD' and r.quote = w.currency
        order by r.fetched_at desc
        limit 1
    ) as from_usd on true
)

select
    me.*,
    wallets.total_usd,
    coalesce(wallets.items, '[]') as wallets,
    coalesce(addresses.items, '[]') as addresses,
    coalesce(banks.items, '[]') as bank_accounts,
    coalesce(cashouts.items, '[]') as cashouts_in_flight,
    coalesce(cashouts.total, 0) as cashouts_in_flight_count,
    coalesce(bank_list.items, '[]') as banks
from me
cross join
    lateral (
        select
            sum(v.usd_value) as total_usd,
            json_agg(
                json_build_object(
                    'currency', v.currency,
                    'kind', v.kind,
                    'decimals', v.decimals,
                    'available', v.available,
                    'held', v.held,
                    'usd_value', v.usd_value,
                    'rate_at', v.rate_at,
                    'rate_stale', coalesce(v.rate_stale, false),
                    'cashout_min', v.cashout_min,
                    'cashout_max', v.cashout_max,
                    'cashout_fee_flat', v.cashout_fee_flat,
                    'cashout_fee_rate', v.cashout_fee_rate,
                    'networks', (
                        select
                            coalesce(
                                json_agg(
                                    json_build_object('network', n.network, 'label', n.label)
                                    order by n.network
                                ),
                                '[]'
                            )
                        from networks as n
                        where n.currency = v.currency
                    )
                )
                order by v.currency
            ) as items
        from valued as v
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
cross join
    lateral (
        select
            json_agg(
                json_build_object('code', bk.code, 'name', bk.name)
                order by bk.name, bk.code
            ) as items
        from (
            select
                code,
                name
            from banks
            order by name, code
            limit 200
        ) as bk
    ) as bank_list
cross join lateral (
    select
        max(f.total) as total,
        json_agg(
            json_build_object(
                'id', f.id,
                'currency', f.currency,
                'amount', f.amount,
                'fee', f.fee,
                'status', f.status,
                'destination', f.destination,
                'network', f.network,
                'address', f.address,
                'bank_code', f.bank_code,
                'account_number', f.account_number,
                'created_at', f.created_at
            )
            order by f.created_at desc, f.id desc
        ) as items
    from (
        select
            co.*,
            count(*) over () as total
        from cashouts as co
        where
            co.user_id = me.id
            and co.status in ('pending', 'approved', 'processing')
        order by co.created_at desc, co.id desc
        limit 10
    ) as f
) as cashouts;

-- name: wallet_create_deposit_order(telegram_id, currency, provider, ref)^
-- Wallet top-up (deposit screen): a deposit order whose ref the provider
-- echoes back in its payment events. outcome not_found (no such user) or
-- invalid (no such currency) inserts nothing.
-- Indexes: users (telegram_id), currencies pkey, deposit_orders (ref) unique.
with
me as (
    select id from users
    where telegram_id = :telegram_id
),

cur as (
    select code from currencies
    where code = :currency
),

created as (
    insert into deposit_orders (ref, user_id, currency, provider)
    select
        :ref,
        me.id,
        cur.code,
        :provider::text::payment_provider
    from me
    cross join cur
    returning *
)

select
    case
        when me.id is null then 'not_found'
        when cur.code is null then 'invalid'
        else 'ok'
    end as outcome,
    created.id,
    created.ref,
    created.user_id,
    created.currency,
    created.provider::text as provider,
    created.address,
    created.status::text as status,
    created.received_amount,
    created.created_at
from (select 1 as one) as base  -- noqa: ST11
left join me on true
left join cur on true
left join created on true;

-- name: wallet_claim_webhook_event(provider, event_id, event_type, order_ref, payload)$
-- Deposit and payout webhooks, first step of their transaction: claims
-- (provider, event_id) once; returns the event's id, or nothing when the
-- event was already claimed (a redelivery). A concurrent delivery of the same
-- event waits here until the first one commits, then gets nothing. On its
-- own, it records an event that moves no money (an unknown reference) so
-- that an admin can look and its redeliveries stop there.
-- Index: webhook_events_once.
insert into webhook_events (provider, event_id, event_type, order_ref, payload)
values (
    :provider::text::payment_provider,
    :event_id,
    :event_type,
    :order_ref,
    coalesce(:payload::jsonb, '{}')
)
on conflict (provider, event_id) do nothing
returning id;

-- name: wallet_credit_deposit(event_row_id, provider, order_ref, currency, amount)^
-- Deposit webhook, inside the transaction that claimed the event: finds the
-- order the ref names (a wallet top-up, an escrow payment or an exchange
-- order payment) and locks it, locks the payer's wallets in id order, and
-- credits the payer's available balance from the provider's clearing
-- account. A top-up order becomes paid; an exchange order records what it
-- received. Marks the event processed with the transfer. outcome not_found
-- (unknown ref) or invalid (currency or amount) changes nothing.
-- Under- and over-payments: expected_amount is what an escrow (amount +
-- buyer_fee) or an exchange order (from_amount) still asked for before this
-- payment (its price less the earlier payments to the same reference; 0 once
-- it is no longer payable; none for a top-up), difference is amount less
-- that; both are recorded on the event (payload key _lockbay). Also returns
-- the escrow seller's telegram id, to tell them.
-- Indexes: deposit_orders (ref), escrows (payment_reference) and
-- exchange_orders (payment_reference) unique, wallets_one_per_currency,
-- webhook_events_order_ref, ledger_entries_transfer, users pkey.
with
deposit_order as (
    select
        d.id,
        d.user_id,
        d.currency
    from deposit_orders as d
    where d.ref = :order_ref
    for update
),

escrow_order as (
    select
        e.id,
        e.buyer_id as user_id,
        e.currency,
        e.seller_id,
        e.amount + e.buyer_fee as price,
        e.status = 'awaiting_payment' as payable
    from escrows as e
    where e.payment_reference = :order_ref
    for update
),

exchange_order as (
    select
        x.id,
        x.user_id,
        x.from_currency as currency,
        x.to_currency,
        x.from_amount as price,
        x.status in ('quoted', 'awaiting_payment', 'paid') as payable
    from exchange_orders as x
    where x.payment_reference = :order_ref
    for update
),

target as (
    select
        'deposit' as kind,
        id,
        user_id,
        currency,
        null as other_currency,
        null::bigint as counterparty_id,
        null::numeric as price,
        false as payable
    from deposit_order
    union all
    select
        'escrow' as kind,
        id,
        user_id,
        currency,
        null as other_currency,
        seller_id as counterparty_id,
        price,
        payable
    from escrow_order
    union all
    select
        'exchange' as kind,
        id,
        user_id,
        currency,
        to_currency as other_currency,
        null::bigint as counterparty_id,
        price,
        payable
    from exchange_order
),

-- What earlier payments to this reference brought: each credited event's
-- deposit transfer has one entry on the payer's wallet.
received_before as (
    select coalesce(sum(le.amount), 0) as amount
    from webhook_events as ev
    inner join ledger_transfers as t on ev.transfer_id = t.id and t.kind = 'deposit'
    inner join ledger_entries as le on t.id = le.transfer_id
    where ev.order_ref = :order_ref and le.user_id is not null
),

-- An exchange payment will touch both of the payer's wallets: lock both now,
-- in id order, like the exchange itself does.
payer_wallets as (
    select
        w.id,
        w.currency,
        w.available
    from wallets as w
    inner join target on w.user_id = target.user_id
    where w.currency in (target.currency, target.other_currency)
    order by w.id
    for update of w
),

verdict as (
    select
        target.kind,
        target.id as order_id,
        target.currency as order_currency,
        u.telegram_id,
        target.counterparty_id,
        w.id as wallet_id,
        w.available,
        case
            when target.price is null then null
            when target.payable then greatest(target.price - received_before.amount, 0)
            else 0
        end as expected_amount,
        case
            when target.id is null then 'not_found'
            when target.currency <> :currency then 'invalid'
            when :amount::numeric <= 0 or round(:amount::numeric, c.decimals) <> :amount::numeric
                then 'invalid'
            when w.id is null then 'not_found'
            else 'ok'
        end as outcome
    from (select 1 as one) as base  -- noqa: ST11
    left join target on true
    left join users as u on target.user_id = u.id
    left join currencies as c on target.currency = c.code
    left join payer_wallets as w on target.currency = w.currency
    cross join received_before
),

posted as (
    select
        post_transfer(
            'deposit',
            jsonb_build_array(
                jsonb_build_object(
                    'kind', 'wallet_available', 'wallet', verdict.wallet_id, 'amount', :amount::numeric
                ),
                jsonb_build_object(
                    'kind', 'provider_clearing',
                    'provider', :provider::text,
                    'currency', verdict.order_currency,
                    'amount', -:amount::numeric
                )
            ),
            'deposit ' || :order_ref
        ) as transfer_id
    from verdict
    where verdict.outcome = 'ok'
),

topped_up as (
    update deposit_orders as d
    set
        status = 'paid',
        received_amount = d.received_amount + :amount::numeric,
        updated_at = now()
    from posted, deposit_order
    where d.id = deposit_order.id
),

exchange_paid as (
    update exchange_orders as x
    set
        received_amount = coalesce(x.received_amount, 0) + :amount::numeric,
        updated_at = now()
    from posted, exchange_order
    where x.id = exchange_order.id
),

-- An escrow's or an exchange order's payment records what was expected of it.
settlement as (
    select
        jsonb_build_object(
            '_lockbay',
            jsonb_build_object(
                'expected_amount', verdict.expected_amount,
                'difference', :amount::numeric - verdict.expected_amount
            )
        ) as note
    from verdict
    where verdict.expected_amount is not null
),

processed as (
    update webhook_events as ev
    set
        processed_at = now(),
        transfer_id = posted.transfer_id,
        payload = ev.payload || coalesce(settlement.note, '{}'::jsonb)
    from posted
    left join settlement on true
    where ev.id = :event_row_id
)

select
    verdict.outcome,
    verdict.kind,
    verdict.order_id,
    verdict.order_currency,
    verdict.telegram_id,
    posted.transfer_id,
    -- The function's update is invisible to this statement's snapshot: add it up.
    verdict.available + :amount::numeric as available,
    verdict.expected_amount,
    :amount::numeric - verdict.expected_amount as difference,
    counterparty.telegram_id as counterparty_telegram_id
from verdict
left join posted on true
left join users as counterparty on verdict.counterparty_id = counterparty.id;

-- name: wallet_request_cashout(telegram_id, currency, amount, destination, idempotency_key, request_hash)^
-- Cashout confirm step (crypto and NGN flows): claims (user, 'cashout', key)
-- in idempotency_keys, moves amount + fee from available to held and records
-- the pending cashout; a saved destination used gets its last_used_at. The
-- destination is a JSON object with kind 'crypto_address' (network, address,
-- saved_address_id) or 'bank_account' (bank_code, account_number,
-- account_name, saved_bank_account_id, and save_label: a new account the NGN
-- flow added is saved under that label, or updated when already saved, in
-- this same statement). The same key with the same request hash returns the
-- first cashout (replay); with another hash, idempotency_conflict. A blocked
-- user is refused. Any other refusal changes nothing.
-- outcome 'retry': a concurrent request committed while this one waited for
-- the wallet or the key, so this statement's snapshot cannot see it; nothing
-- changed, and running it again gives the true answer.
-- Indexes: users (telegram_id), currencies pkey, idempotency_keys pkey,
-- cashouts_idempotency, wallets_one_per_currency, networks pkey, banks pkey,
-- saved_addresses pkey, saved_bank_accounts pkey.
with
me as (
    select
        id,
        is_blocked
    from users
    where telegram_id = :telegram_id
),

dest as (
    select
        (p.d ->> 'kind')::destination_kind as kind,
        p.d ->> 'network' as network,
        p.d ->> 'address' as address,
        (p.d ->> 'saved_address_id')::bigint as saved_address_id,
        p.d ->> 'bank_code' as bank_code,
        p.d ->> 'account_number' as account_number,
        btrim(p.d ->> 'account_name') as account_name,
        (p.d ->> 'saved_bank_account_id')::bigint as saved_bank_account_id,
        nullif(btrim(p.d ->> 'save_label'), '') as save_label
    from (select :destination::jsonb as d) as p
),

cur as (
    select
        c.code,
        c.kind,
        c.decimals,
        c.cashout_min,
        c.cashout_max,
        -- The fee, rounded up to the currency's smallest unit (power() of a
        -- negative exponent is not exact, hence the unit written out).
        trunc(f.raw_fee, c.decimals)
        + case
            when f.raw_fee > trunc(f.raw_fee, c.decimals)
                then 0.000000000000000001 * power(10::numeric, 18 - c.decimals)
            else 0
        end as fee
    from currencies as c
    cross join
        lateral (
            select c.cashout_fee_flat + :amount::numeric * c.cashout_fee_rate as raw_fee
        ) as f
    where c.code = :currency
),

prior_key as (
    select k.request_hash
    from idempotency_keys as k
    inner join me on k.user_id = me.id
    where k.scope = 'cashout' and k.key = :idempotency_key
),

prior_cashout as (
    select co.*
    from cashouts as co
    inner join me on co.user_id = me.id
    where co.idempotency_key = :idempotency_key
),

wallet as (
    select
        w.id,
        w.available,
        w.held,
        w.xmin::text as row_version
    from wallets as w
    inner join me on w.user_id = me.id
    where w.currency = :currency
    for update of w
),

-- The wallet as this statement's snapshot saw it. Another version under the
-- lock means a transaction committed while this one waited, and a claim of
-- the same key it made would be invisible to the snapshot.
wallet_seen as (
    select w.xmin::text as row_version
    from wallets as w
    inner join wallet on w.id = wallet.id
),

saved_address as (
    select sa.id
    from saved_addresses as sa
    inner join me on sa.user_id = me.id
    inner join dest
        on
            sa.id = dest.saved_address_id
            and sa.network = dest.network
            and sa.address = dest.address
    where sa.deleted_at is null and sa.currency = :currency
),

saved_bank as (
    select sb.id
    from saved_bank_accounts as sb
    inner join me on sb.user_id = me.id
    inner join dest
        on
            sb.id = dest.saved_bank_account_id
            and sb.bank_code = dest.bank_code
            and sb.account_number = dest.account_number
    where sb.deleted_at is null
),

verdict as (
    select
        coalesce(failed.outcome, 'ok') as outcome,
        failed.detail,
        prior_key.request_hash = :request_hash as replay,
        cur.fee,
        cur.cashout_min,
        cur.cashout_max,
        wallet.available
    from dest
    left join me on true
    left join cur on true
    left join prior_key on true
    left join wallet on true
    left join wallet_seen on true
    left join saved_address on true
    left join saved_bank on true
    -- The first check that fails, in this order; a replay skips all but the first two.
    left join lateral (
        select
            c.outcome,
            c.detail
        from (
            values
            (1, me.id is null, 'not_found', 'user'),
            (2, prior_key.request_hash <> :request_hash, 'idempotency_conflict', null),
            (3, me.is_blocked, 'invalid', 'This account is blocked: no cashout can be made.'),
            (4, cur.code is null, 'invalid', 'There is no such currency.'),
            (
                5,
                :amount::numeric <= 0 or round(:amount::numeric, cur.decimals) <> :amount::numeric,
                'invalid',
                format('The amount must be positive, with at most %s decimals.', cur.decimals)
            ),
            (6, :amount::numeric < cur.cashout_min, 'below_minimum', null),
            (7, :amount::numeric > cur.cashout_max, 'above_limit', null),
            (
                8,
                dest.kind is null or dest.kind not in ('crypto_address', 'bank_account'),
                'invalid',
                'A cashout goes to a crypto address or a bank account.'
            ),
            (
                9,
                dest.kind = 'crypto_address'
                and not (
                    cur.kind = 'crypto'
                    and coalesce(btrim(dest.address), '') <> ''
                    and exists (
                        select 1 from networks as n
                        where n.currency = cur.code and n.network = dest.network
                    )
                ),
                'invalid',
                format('%s cannot be sent on that network.', cur.code)
            ),
            (
                10,
                dest.kind = 'bank_account'
                and not (
                    cur.code = 'NGN'
                    and coalesce(dest.account_number ~ '^[0-9]{10}$', false)
                    and coalesce(dest.account_name, '') <> ''
                    and exists (
                        select 1 from banks as b
                        where b.code = dest.bank_code
                    )
                ),
                'invalid',
                'Only naira goes to a bank account, with a known bank, ten digits and a name.'
            ),
            (
                11,
                dest.saved_address_id is not null
                and (dest.kind <> 'crypto_address' or saved_address.id is null),
                'not_found',
                'saved address'
            ),
            (
                12,
                dest.saved_bank_account_id is not null
                and (dest.kind <> 'bank_account' or saved_bank.id is null),
                'not_found',
                'saved bank account'
            ),
            (
                13,
                dest.kind = 'bank_account' and char_length(dest.save_label) > 64,
                'invalid',
                'A label can be at most 64 characters.'
            ),
            (14, wallet.id is null, 'not_found', 'wallet'),
            (
                15,
                wallet.available < :amount::numeric + cur.fee,
                case
                    when wallet.row_version <> wallet_seen.row_version then 'retry'
                    else 'insufficient_funds'
                end,
                null
            )
        ) as c (n, fails, outcome, detail)
        where c.fails and (c.n <= 2 or prior_key.request_hash is null)
        order by c.n
        limit 1
    ) as failed on true
),

claim as (
    insert into idempotency_keys (user_id, scope, key, request_hash)
    select
        me.id as user_id,
        'cashout' as scope,
        :idempotency_key::text as key,
        :request_hash::text as request_hash
    from verdict
    cross join me
    where verdict.outcome = 'ok' and verdict.replay is null
    on conflict do nothing
    returning user_id
),

-- A new bank account to keep as a contact: saved only with a cashout made.
new_bank as (
    insert into saved_bank_accounts as sb (
        user_id, bank_code, account_number, account_name, label, last_used_at
    )
    select
        claim.user_id,
        dest.bank_code,
        dest.account_number,
        dest.account_name,
        dest.save_label as label,
        now() as last_used_at
    from claim
    cross join dest
    where
        dest.kind = 'bank_account'
        and dest.save_label is not null
        and dest.saved_bank_account_id is null
    on conflict (user_id, bank_code, account_number) where deleted_at is null
    do update
        set
            account_name = excluded.account_name,
            label = excluded.label,
            last_used_at = excluded.last_used_at
    returning sb.id
),

cashout as (
    insert into cashouts (
        user_id, wallet_id, currency, amount, fee, destination, network, address, bank_code,
        account_number, account_name, saved_address_id, saved_bank_account_id, idempotency_key
    )
    select
        claim.user_id,
        wallet.id as wallet_id,
        :currency::text as currency,
        :amount::numeric as amount,
        verdict.fee,
        dest.kind as destination,
        case when dest.kind = 'crypto_address' then dest.network end as network,
        case when dest.kind = 'crypto_address' then dest.address end as address,
        case when dest.kind = 'bank_account' then dest.bank_code end as bank_code,
        case when dest.kind = 'bank_account' then dest.account_number end as account_number,
        case when dest.kind = 'bank_account' then dest.account_name end as account_name,
        case when dest.kind = 'crypto_address' then dest.saved_address_id end as saved_address_id,
        case
            when dest.kind = 'bank_account' then coalesce(dest.saved_bank_account_id, new_bank.id)
        end as saved_bank_account_id,
        :idempotency_key::text as idempotency_key
    from claim
    cross join wallet
    cross join verdict
    cross join dest
    left join new_bank on true
    returning *
),

posted as (
    select
        post_transfer(
            'cashout_hold',
            jsonb_build_array(
                jsonb_build_object(
                    'kind', 'wallet_available',
                    'wallet', cashout.wallet_id,
                    'amount', -(cashout.amount + cashout.fee)
                ),
                jsonb_build_object(
                    'kind', 'wallet_held', 'wallet', cashout.wallet_id, 'amount', cashout.amount + cashout.fee
                )
            ),
            'cashout ' || cashout.id,
            p_cashout_id => cashout.id
        ) as transfer_id
    from cashout
),

used_address as (
    update saved_addresses as sa
    set last_used_at = now()
    from cashout
    where sa.id = cashout.saved_address_id
),

-- Only a saved account picked by id: new_bank has stamped the one it saved.
used_bank as (
    update saved_bank_accounts as sb
    set last_used_at = now()
    from cashout
    cross join dest
    where sb.id = cashout.saved_bank_account_id and sb.id = dest.saved_bank_account_id
)

select
    case
        when verdict.outcome = 'ok' and verdict.replay is null and cashout.id is null then 'retry'
        else verdict.outcome
    end as outcome,
    verdict.detail,
    coalesce(verdict.replay, false) as replay,
    coalesce(to_jsonb(cashout), to_jsonb(prior_cashout)) as cashout,
    posted.transfer_id,
    verdict.cashout_min as minimum,
    verdict.cashout_max as maximum,
    :amount::numeric + verdict.fee as needed,
    -- post_transfer's update is invisible to this statement's snapshot: add it up.
    verdict.available - coalesce(cashout.amount + cashout.fee, 0) as available,
    wallet.held + coalesce(cashout.amount + cashout.fee, 0) as held
from verdict
left join cashout on true
left join posted on true
left join prior_cashout on verdict.replay
left join wallet on true;

-- name: wallet_approve_cashout(cashout_id, admin_telegram_id)^
-- Admin cashout approval: a pending cashout becomes approved; no money
-- moves. outcome not_a_party (not an admin), not_found or wrong_status
-- changes nothing.
-- Indexes: users (telegram_id), cashouts pkey, wallets pkey.
with
admin as (
    select id from users
    where telegram_id = :admin_telegram_id and is_admin
),

locked as (
    select co.*
    from cashouts as co
    where co.id = :cashout_id
    for update
),

verdict as (
    select
        locked.status::text as status,
        case
            when admin.id is null then 'not_a_party'
            when locked.id is null then 'not_found'
            when locked.status <> 'pending' then 'wrong_status'
            else 'ok'
        end as outcome
    from (select 1 as one) as base  -- noqa: ST11
    left join admin on true
    left join locked on true
),

approved as (
    update cashouts as co
    set
        status = 'approved',
        approved_at = now(),
        updated_at = now()
    from verdict
    where co.id = :cashout_id and verdict.outcome = 'ok'
    returning co.*
)

select
    verdict.outcome,
    verdict.status,
    case when verdict.outcome <> 'not_a_party' then coalesce(to_jsonb(approved), to_jsonb(locked)) end as cashout,
    w.available,
    w.held
from verdict
left join locked on true
left join approved on true
left join wallets as w on locked.wallet_id = w.id and verdict.outcome <> 'not_a_party';

-- name: wallet_settle_cashout(cashout_id, provider, provider_reference)^
-- Payout worker, on the provider's confirmation: a pending, approved or
-- processing cashout becomes completed; its hold leaves the wallet, the
-- amount to the provider's clearing account and the fee to the platform.
-- outcome not_found or wrong_status (already settled or failed) changes
-- nothing. Lock order: the cashout, then its wallet.
-- Indexes: cashouts pkey, wallets pkey.
with
locked as (
    select co.*
    from cashouts as co
    where co.id = :cashout_id
    for update
),

wallet as (
    select
        w.id,
        w.available,
        w.held
    from wallets as w
    inner join locked on w.id = locked.wallet_id
    for update of w
),

verdict as (
    select
        locked.status::text as status,
        case
            when locked.id is null then 'not_found'
            when locked.status not in ('pending', 'approved', 'processing') then 'wrong_status'
            else 'ok'
        end as outcome
    from (select 1 as one) as base  -- noqa: ST11
    left join locked on true
),

posted as (
    select
        post_transfer(
            'cashout_settle',
            jsonb_build_array(
                jsonb_build_object(
                    'kind', 'wallet_held', 'wallet', locked.wallet_id, 'amount', -(locked.amount + locked.fee)
                ),
                jsonb_build_object(
                    'kind', 'provider_clearing',
                    'provider', :provider::text,
                    'currency', locked.currency,
                    'amount', locked.amount
                ),
                jsonb_build_object(
                    'kind', 'platform_fees', 'currency', locked.currency, 'amount', locked.fee
                )
            ),
            'cashout ' || locked.id || ' paid out',
            p_cashout_id => locked.id
        ) as transfer_id
    from locked
    cross join verdict
    where verdict.outcome = 'ok'
),

settled as (
    update cashouts as co
    set
        status = 'completed',
        provider = :provider::text,
        provider_reference = :provider_reference,
        completed_at = now(),
        updated_at = now()
    from verdict
    where co.id = :cashout_id and verdict.outcome = 'ok'
    returning co.*
)

select
    verdict.outcome,
    verdict.status,
    coalesce(to_jsonb(settled), to_jsonb(locked)) as cashout,
    posted.transfer_id,
    wallet.available,
    -- post_transfer's update is invisible to this statement's snapshot: add it up.
    wallet.held - coalesce(settled.amount + settled.fee, 0) as held
from verdict
left join locked on true
left join wallet on true
left join posted on true
left join settled on true;

-- name: wallet_fail_cashout(cashout_id, reason)^
-- Payout worker or admin, when a payout cannot be made: a pending, approved
-- or processing cashout becomes failed and its hold goes back to available.
-- outcome not_found or wrong_status (already settled or failed) changes
-- nothing. Lock order: the cashout, then its wallet.
-- Indexes: cashouts pkey, wallets pkey.
with
locked as (
    select co.*
    from cashouts as co
    where co.id = :cashout_id
    for update
),

wallet as (
    select
        w.id,
        w.available,
        w.held
    from wallets as w
    inner join locked on w.id = locked.wallet_id
    for update of w
),

verdict as (
    select
        locked.status::text as status,
        case
            when locked.id is null then 'not_found'
            when locked.status not in ('pending', 'approved', 'processing') then 'wrong_status'
            else 'ok'
        end as outcome
    from (select 1 as one) as base  -- noqa: ST11
    left join locked on true
),

posted as (
    select
        post_transfer(
            'cashout_release',
            jsonb_build_array(
                jsonb_build_object(
                    'kind', 'wallet_held', 'wallet', locked.wallet_id, 'amount', -(locked.amount + locked.fee)
                ),
                jsonb_build_object(
                    'kind', 'wallet_available', 'wallet', locked.wallet_id, 'amount', locked.amount + locked.fee
                )
            ),
            'cashout ' || locked.id || ' failed',
            p_cashout_id => locked.id
        ) as transfer_id
    from locked
    cross join verdict
    where verdict.outcome = 'ok'
),

failed as (
    update cashouts as co
    set
        status = 'failed',
        failure_reason = :reason,
        updated_at = now()
    from verdict
    where co.id = :cashout_id and verdict.outcome = 'ok'
    returning co.*
)

select
    verdict.outcome,
    verdict.status,
    coalesce(to_jsonb(failed), to_jsonb(locked)) as cashout,
    posted.transfer_id,
    -- post_transfer's update is invisible to this statement's snapshot: add it up.
    wallet.available + coalesce(failed.amount + failed.fee, 0) as available,
    wallet.held - coalesce(failed.amount + failed.fee, 0) as held
from verdict
left join locked on true
left join wallet on true
left join posted on true
left join failed on true;

-- name: wallet_mark_exchange_underpaid(order_id)$
-- Deposit webhook, inside its transaction: an exchange order whose payment
-- fell short (and the wallet could not make up the rest) becomes underpaid;
-- what arrived stays in the payer's wallet. Returns the order's id, nothing
-- when it was no longer payable.
-- Index: exchange_orders pkey.
update exchange_orders
set
    status = 'underpaid',
    updated_at = now()
where id = :order_id and status in ('quoted', 'awaiting_payment', 'paid')
returning id;

-- name: wallet_payout_event_processed(event_row_id, cashout_id, transfer_id)$
-- Payout webhook, inside the transaction that claimed the event and settled
-- or failed its cashout: marks the event processed with the cashout's
-- transfer, and returns the cashout owner's telegram id (to tell them).
-- Indexes: webhook_events pkey, cashouts pkey, users pkey.
with
processed as (
    update webhook_events
    set
        processed_at = now(),
        transfer_id = :transfer_id
    where id = :event_row_id
)

select u.telegram_id
from cashouts as co
inner join users as u on co.user_id = u.id
where co.id = :cashout_id;

-- name: wallet_test_deposit_counts(provider, event_id, order_ref)^
-- tests: how many times one provider event was recorded and credited.
-- Indexes: webhook_events_once; the ledger tables are scanned (test data only).
select
    (
        select count(*) from webhook_events as ev
        where ev.provider = :provider::text::payment_provider and ev.event_id = :event_id
    ) as events,
    (
        select count(*) from webhook_events as ev
        inner join ledger_transfers as t on ev.transfer_id = t.id
        where
            ev.provider = :provider::text::payment_provider
            and ev.event_id = :event_id
            and ev.processed_at is not null
            and t.kind = 'deposit'
    ) as processed,
    (
        select count(*) from ledger_transfers as t
        where t.kind = 'deposit' and t.memo = 'deposit ' || :order_ref
    ) as transfers,
    (
        select count(*) from ledger_entries as e
        inner join ledger_transfers as t on e.transfer_id = t.id
        where t.kind = 'deposit' and t.memo = 'deposit ' || :order_ref and e.user_id is not null
    ) as wallet_entries;

-- name: wallet_test_deposit_order(ref)^
-- tests: a top-up order as it stands.
-- Index: deposit_orders (ref) unique.
select
    status,
    received_amount
from deposit_orders
where ref = :ref;

-- name: wallet_test_forget_address(address_id)!
-- tests: deletes a saved address the way the contacts screen does.
-- Index: saved_addresses pkey.
update saved_addresses
set deleted_at = now()
where id = :address_id;

-- name: wallet_test_user_cashouts(telegram_id)$
-- tests: how many cashouts a user has, whatever their status.
-- Indexes: users (telegram_id), cashouts_idempotency.
select count(*) as cashouts
from cashouts as co
inner join users as u on co.user_id = u.id
where u.telegram_id = :telegram_id;

-- name: wallet_claim_payouts(bank_provider, crypto_provider, lease_seconds, batch_size, skip_ids)
-- Payout worker, before it calls any provider (a statement of its own,
-- committed first): takes up to batch_size cashouts, oldest first, skipping
-- rows another worker has locked and the ids in skip_ids (those this run has
-- already tried). Due are approved cashouts, and processing
-- ones with no provider reference whose claim was released or is older than
-- lease_seconds (a worker died mid-call: recovering, to be looked up at the
-- provider before any new call). Bank accounts go to bank_provider, crypto
-- addresses to crypto_provider; a rail whose provider is null is left alone,
-- and so is a cashout already named for another provider. Each one taken
-- becomes processing, names its provider, gets payout_started_at = now()
-- and one more attempt. Returns what the payout call needs.
-- Indexes: cashouts_queue, users pkey.
with
due as (
    select
        co.id,
        co.status = 'processing' as recovering,
        rail.provider
    from cashouts as co
    cross join
        lateral (
            select
                case co.destination
                    when 'bank_account' then :bank_provider::text
                    when 'crypto_address' then :crypto_provider::text
                end as provider
        ) as rail
    where
        co.status in ('approved', 'processing')
        and (
            co.status = 'approved'
            or (
                co.provider_reference is null
                and (
                    co.payout_started_at is null
                    or co.payout_started_at < now() - :lease_seconds::integer * interval '1 second'
                )
            )
        )
        and rail.provider is not null
        and coalesce(co.provider, rail.provider) = rail.provider
        and co.id <> all(coalesce(:skip_ids::bigint[], '{}'))
    order by co.created_at, co.id
    limit :batch_size::integer
    for update of co skip locked
),

claimed as (
    update cashouts as co
    set
        status = 'processing',
        provider = due.provider,
        payout_started_at = now(),
        payout_attempts = co.payout_attempts + 1,
        updated_at = now()
    from due
    where co.id = due.id
    returning
        co.id,
        co.user_id,
        co.currency,
        co.amount,
        co.destination::text as destination,
        co.network,
        co.address,
        co.bank_code,
        co.account_number,
        co.account_name,
        co.provider,
        co.payout_started_at,
        co.payout_attempts,
        co.created_at,
        due.recovering
)

select
    claimed.*,
    u.telegram_id
from claimed
inner join users as u on claimed.user_id = u.id
order by claimed.created_at, claimed.id;

-- name: wallet_record_payout(cashout_id, provider, provider_reference)^
-- Payout worker, once the provider has the payout: records the provider's
-- reference on the processing cashout and ends the claim; the money moves
-- when the provider confirms (wallet_settle_cashout, from its webhook).
-- recorded is false when there was nothing to record: the cashout already
-- has a reference, or is no longer processing (the provider's webhook came
-- first and settled or failed it).
-- Index: cashouts pkey.
with
recorded as (
    update cashouts
    set
        provider = :provider::text,
        provider_reference = :provider_reference,
        payout_started_at = null,
        updated_at = now()
    where
        id = :cashout_id
        and status = 'processing'
        and provider_reference is null
        and (provider is null or provider = :provider::text)
    returning id
)

select
    co.status::text as status,
    recorded.id is not null as recorded,
    case when recorded.id is not null then :provider_reference else co.provider_reference end
        as provider_reference
from cashouts as co
left join recorded on co.id = recorded.id
where co.id = :cashout_id;

-- name: wallet_release_payout_claim(cashout_id, claimed_at)$
-- Payout worker, after a provider call that may or may not have reached the
-- provider (timeouts, 5xx, an answer it could not read): ends its own claim
-- (the one made at claimed_at) so that the next run takes the cashout again
-- at once, looking it up at the provider before any new call. Returns the
-- id, nothing when the claim was no longer its own.
-- Index: cashouts pkey.
update cashouts
set
    payout_started_at = null,
    updated_at = now()
where
    id = :cashout_id
    and status = 'processing'
    and provider_reference is null
    and payout_started_at = :claimed_at
returning id;

-- name: wallet_test_payout_state(cashout_id)^
-- tests: a cashout as the payout worker left it, with its wallet.
-- Indexes: cashouts pkey, wallets pkey.
select
    co.status::text as status,
    co.provider,
    co.provider_reference,
    co.payout_started_at,
    co.payout_attempts,
    co.failure_reason,
    w.available,
    w.held
from cashouts as co
inner join wallets as w on co.wallet_id = w.id
where co.id = :cashout_id;

-- name: wallet_test_age_payout_claims(seconds)!
-- tests: moves every payout claim seconds into the past, as time passing
-- would (a worker that died mid-call, its lease running out).
-- Index: none needed at test sizes (cashouts is scanned).
update cashouts
set payout_started_at = payout_started_at - :seconds::integer * interval '1 second'
where payout_started_at is not null;

-- name: wallet_expire_stale_deposit_orders(batch)
-- Deposit-order expiry job (bot/jobs.py): up to `batch` top-up orders still
-- open deposit_window_hours after their creation become expired. Moves no
-- money: a payment that still comes to an expired order's reference is
-- credited as ever and marks it paid. SKIP LOCKED: concurrent runs take
-- disjoint orders, and one that a payment holds right now is left to it;
-- the update keeps the status guard. Returns the expired orders' ids.
-- Index: deposit_orders_open.
with
due as (
    select d.id
    from deposit_orders as d
    where
        d.status = 'open'
        and d.created_at < now() - (
            select make_interval(hours => s.deposit_window_hours)
            from platform_settings as s
        )
    order by d.created_at, d.id
    limit :batch
    for update skip locked
),

expired as (
    update deposit_orders as d
    set
        status = 'expired',
        updated_at = now()
    from due
    where d.id = due.id and d.status = 'open'
    returning d.id
)

select id from expired
order by id;

-- name: wallet_test_age_deposit_order(ref, hours)!
-- tests: moves a top-up order's creation hours into the past, as time
-- passing would.
-- Index: deposit_orders (ref) unique.
update deposit_orders
set created_at = created_at - :hours::integer * interval '1 hour'
where ref = :ref;

-- name: wallet_test_forbid_seq_scans()!
-- tests: inside a transaction, plans reach for an index wherever one fits,
-- so a test can see that a sweep's partial index matches its predicate.
select set_config('enable_seqscan', 'off', true);
