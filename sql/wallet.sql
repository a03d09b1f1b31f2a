-- Wallet: the wallet screen and the money that moves through it.

-- name: wallet_context(telegram_id)^
-- Wallet screen (and the cashout flows' context): the user; every wallet in
-- currency order with available, held, USD value of both, the rate's time,
-- cashout limits, fees and networks; total USD; live saved addresses and bank
-- accounts (20 each, most recently used first); up to 10 cashouts in flight
-- (newest first) and how many there are. No row when the user is unknown.
-- Indexes: users (telegram_id), wallets_one_per_currency,
-- exchange_rates_latest, saved_addresses_live, saved_bank_accounts_live,
-- cashouts_in_flight.
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
        phone_verified_at is not null as phone_verified
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
        -- Valued at cents: crypto times its USD price, naira over the USD/NGN rate.
        round(
            coalesce(
                (w.available + w.held) * to_usd.rate,
                (w.available + w.held) / from_usd.rate
            ),
            2
        ) as usd_value
    from me
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
    coalesce(cashouts.total, 0) as cashouts_in_flight_count
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
