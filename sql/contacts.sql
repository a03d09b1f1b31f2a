-- Contacts: saved crypto addresses and Nigerian bank accounts.

-- name: contacts_save_address(telegram_id, currency, network, address, label, refuse_duplicate)^
-- Save-address movement (contacts screen, crypto cashout and exchange flows):
-- the address comes validated and normalised by bot/money.py. Saving a live
-- address again returns its row, taking the new label when one is given, so
-- a user never has two rows for one address; with refuse_duplicate (the
-- contacts screen's add flow) it is refused as duplicate instead. Outcome
-- not_found without such a user, invalid when the network is not offered,
-- duplicate as said; then nothing is written.
-- Indexes: users (telegram_id), networks primary key, saved_addresses_live
-- (the duplicate check and the conflict target).
with
me as (
    select id from users
    where telegram_id = :telegram_id
),

net as (
    select
        currency,
        network
    from networks
    where currency = :currency and network = :network
),

existing as (
    select sa.id
    from saved_addresses as sa
    inner join me on sa.user_id = me.id
    where
        sa.currency = :currency
        and sa.network = :network
        and sa.address = :address
        and sa.deleted_at is null
),

saved as (
    insert into saved_addresses as sa (user_id, currency, network, address, label)
    select
        me.id,
        net.currency,
        net.network,
        :address::text,
        :label::text
    from me
    cross join net
    -- A refused duplicate writes nothing. (Without a where, the parser could
    -- also take the conflict clause for a join condition.)
    where not (:refuse_duplicate::boolean and exists (select 1 from existing))
    on conflict (user_id, currency, network, address) where deleted_at is null
    do update set label = coalesce(excluded.label, sa.label)
    returning sa.id, sa.currency, sa.network, sa.address, sa.label, sa.last_used_at
)

select
    answer.outcome,
    saved.id,
    saved.currency,
    saved.network,
    saved.address,
    saved.label,
    saved.last_used_at
from (
    select
        case
            when not exists (select 1 from me) then 'not_found'
            when not exists (select 1 from net) then 'invalid'
            when
                :refuse_duplicate::boolean and exists (select 1 from existing)
                then 'duplicate'
            else 'ok'
        end as outcome
) as answer
left join saved on true;

-- name: contacts_save_bank_account(telegram_id, bank_code, account_number, account_name, label, refuse_duplicate)^
-- Save-bank-account movement (contacts screen, NGN cashout and exchange
-- flows): account number and code come validated by bot/money.py. Saving a
-- live account again returns its row with the newest holder name, and the
-- new label when one is given; with refuse_duplicate (the contacts screen's
-- add flow) it is refused as duplicate instead. Outcome not_found without
-- such a user, invalid when no bank has the code, duplicate as said; then
-- nothing is written.
-- Indexes: users (telegram_id), banks primary key, saved_bank_accounts_live
-- (the duplicate check and the conflict target).
with
me as (
    select id from users
    where telegram_id = :telegram_id
),

bank as (
    select
        code,
        name
    from banks
    where code = :bank_code
),

existing as (
    select sb.id
    from saved_bank_accounts as sb
    inner join me on sb.user_id = me.id
    where
        sb.bank_code = :bank_code
        and sb.account_number = :account_number
        and sb.deleted_at is null
),

saved as (
    insert into saved_bank_accounts as sb (
        user_id, bank_code, account_number, account_name, label
    )
    select
        me.id,
        bank.code,
        :account_number::text,
        :account_name::text,
        :label::text
    from me
    cross join bank
    -- A refused duplicate writes nothing. (Without a where, the parser could
    -- also take the conflict clause for a join condition.)
    where not (:refuse_duplicate::boolean and exists (select 1 from existing))
    on conflict (user_id, bank_code, account_number) where deleted_at is null
    do update
        set
            account_name = excluded.account_name,
            label = coalesce(excluded.label, sb.label)
    returning
        sb.id, sb.bank_code, sb.account_number, sb.account_name, sb.label, sb.last_used_at
)

select
    answer.outcome,
    saved.id,
    saved.bank_code,
    bank.name as bank_name,
    saved.account_number,
    saved.account_name,
    saved.label,
    saved.last_used_at
from (
    select
        case
            when not exists (select 1 from me) then 'not_found'
            when not exists (select 1 from bank) then 'invalid'
            when
                :refuse_duplicate::boolean and exists (select 1 from existing)
                then 'duplicate'
            else 'ok'
        end as outcome
) as answer
left join saved on true
left join bank on saved.bank_code = bank.code;

-- name: contacts_delete_address(telegram_id, destination_id)$
-- Delete-destination movement (contacts screen): soft-deletes the user's own
-- live address; 'ok', or 'not_found' (nothing changed) when it is someone
-- else's, already deleted or unknown. Cashouts keep pointing at the row.
-- Indexes: saved_addresses primary key, users (telegram_id).
with
gone as (
    update saved_addresses as sa
    set deleted_at = now()
    from users as u
    where
        sa.id = :destination_id
        and sa.user_id = u.id
        and u.telegram_id = :telegram_id
        and sa.deleted_at is null
    returning sa.id
)

select case when exists (select 1 from gone) then 'ok' else 'not_found' end as outcome;

-- name: contacts_delete_bank_account(telegram_id, destination_id)$
-- Delete-destination movement (contacts screen): soft-deletes the user's own
-- live bank account; 'ok', or 'not_found' (nothing changed) when it is
-- someone else's, already deleted or unknown.
-- Indexes: saved_bank_accounts primary key, users (telegram_id).
with
gone as (
    update saved_bank_accounts as sb
    set deleted_at = now()
    from users as u
    where
        sb.id = :destination_id
        and sb.user_id = u.id
        and u.telegram_id = :telegram_id
        and sb.deleted_at is null
    returning sb.id
)

select case when exists (select 1 from gone) then 'ok' else 'not_found' end as outcome;

-- name: contacts_row_counts(telegram_id)^
-- tests: a user's saved addresses and bank accounts, live and in all, to
-- show what a movement wrote or did not write.
select
    (
        select count(*) from saved_addresses as sa
        where sa.user_id = u.id
    ) as addresses,
    (
        select count(*) from saved_addresses as sa
        where sa.user_id = u.id and sa.deleted_at is null
    ) as live_addresses,
    (
        select count(*) from saved_bank_accounts as sb
        where sb.user_id = u.id
    ) as bank_accounts,
    (
        select count(*) from saved_bank_accounts as sb
        where sb.user_id = u.id and sb.deleted_at is null
    ) as live_bank_accounts
from users as u
where u.telegram_id = :telegram_id;

-- name: contacts_context(telegram_id)^
-- Contacts screen: whether the user is blocked and done onboarding; the
-- user's live saved crypto addresses and bank accounts, each list most
-- recently used first (never used last, then newest first), at most 50 of
-- each, with how many live ones there are of each; and what the add flows
-- offer: every network by currency order (at most 100) and every bank by
-- name (at most 500). Deleted destinations are not shown. No row when the
-- user is unknown.
-- Indexes: users (telegram_id), saved_addresses_live,
-- saved_bank_accounts_live, banks (pk); networks and currencies are small
-- reference tables.
with
me as (
    select
        id,
        is_blocked,
        onboarding = 'complete' as onboarded
    from users
    where telegram_id = :telegram_id
)

select
    me.id as user_id,
    me.is_blocked,
    me.onboarded,
    coalesce(addresses.items, '[]') as addresses,
    coalesce(addresses.total, 0) as address_count,
    coalesce(bank_accounts.items, '[]') as bank_accounts,
    coalesce(bank_accounts.total, 0) as bank_account_count,
    coalesce(offered_networks.items, '[]') as networks,
    coalesce(offered_banks.items, '[]') as banks
from me
cross join (
    select
        json_agg(
            json_build_object('currency', n.currency, 'network', n.network, 'label', n.label)
            order by n.sort_order, n.currency, n.label
        ) as items
    from (
        select
            nw.currency,
            nw.network,
            nw.label,
            c.sort_order
        from networks as nw
        inner join currencies as c on nw.currency = c.code
        order by c.sort_order, nw.currency, nw.label
        limit 100
    ) as n
) as offered_networks
cross join (
    select
        json_agg(json_build_object('code', b.code, 'name', b.name) order by b.name, b.code)
            as items
    from (
        select
            bk.code,
            bk.name
        from banks as bk
        order by bk.name, bk.code
        limit 500
    ) as b
) as offered_banks
cross join
    lateral (
        select
            max(a.total) as total,
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
            -- The count is taken over all live rows, before the limit.
            select
                sa.id,
                sa.currency,
                sa.network,
                sa.address,
                sa.label,
                sa.last_used_at,
                count(*) over () as total
            from saved_addresses as sa
            where sa.user_id = me.id and sa.deleted_at is null
            order by sa.last_used_at desc nulls last, sa.id desc
            limit 50
        ) as a
    ) as addresses
cross join
    lateral (
        select
            max(b.total) as total,
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
            select
                sb.id,
                sb.bank_code,
                sb.account_number,
                sb.account_name,
                sb.label,
                sb.last_used_at,
                count(*) over () as total
            from saved_bank_accounts as sb
            where sb.user_id = me.id and sb.deleted_at is null
            order by sb.last_used_at desc nulls last, sb.id desc
            limit 50
        ) as b
        inner join banks as bk on b.bank_code = bk.code
    ) as bank_accounts;

-- name: contacts_test_touch_address(address_id, last_used_at)!
-- tests: an address last used at a given time, as a cashout to it would leave it.
update saved_addresses
set last_used_at = :last_used_at::timestamptz
where id = :address_id;

-- name: contacts_test_touch_bank_account(bank_account_id, last_used_at)!
-- tests: a bank account last used at a given time, as a cashout to it would leave it.
update saved_bank_accounts
set last_used_at = :last_used_at::timestamptz
where id = :bank_account_id;
