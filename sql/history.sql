-- History: the user's ledger entries, as the transaction history screen shows them.

-- name: history_page(telegram_id, currency, before_at, before_id, page_size)^
-- History screen: whether the user is blocked and done onboarding; every
-- currency with its decimals (the filter buttons and the formatting, at most
-- 50); and the user's ledger entries (their wallets' available and held
-- accounts), newest first, keyset-paged on (created_at, id): the rows
-- before the cursor (all when before_at is null), of one currency when
-- currency is given, page_size of them and one more, which only tells the
-- caller that a next page exists. Each entry with its signed amount, the
-- account it moved (available or held), its transfer's kind and memo. No
-- row for an unknown user. Two branches, one of which its parameters switch
-- off, so that each keeps its own index in a generic plan too.
-- Indexes: users (telegram_id); ledger_entries_user, or with a currency
-- ledger_entries_user_currency (0008); ledger_accounts pkey,
-- ledger_transfers pkey; currencies is a small reference table.
with
me as (
    select
        id,
        is_blocked,
        onboarding = 'complete' as onboarded
    from users
    where telegram_id = :telegram_id
),

page as (
    (
        select
            le.id,
            le.transfer_id,
            le.account_id,
            le.currency,
            le.amount,
            le.created_at
        from ledger_entries as le
        where
            le.user_id = (select me.id from me)
            and :currency::text is null
            -- No cursor: a bound past every row. One row comparison either
            -- way, so it stays an index condition in a generic plan too.
            and (le.created_at, le.id) < (
                coalesce(:before_at::timestamptz, 'infinity'),
                coalesce(:before_id::bigint, 9223372036854775807)
            )
        order by le.created_at desc, le.id desc
        limit :page_size::integer + 1
    )
    union all
    (
        select
            le.id,
            le.transfer_id,
            le.account_id,
            le.currency,
            le.amount,
            le.created_at
        from ledger_entries as le
        where
            le.user_id = (select me.id from me)
            and le.currency = :currency::text
            and (le.created_at, le.id) < (
                coalesce(:before_at::timestamptz, 'infinity'),
                coalesce(:before_id::bigint, 9223372036854775807)
            )
        order by le.created_at desc, le.id desc
        limit :page_size::integer + 1
    )
)

select
    me.id as user_id,
    me.is_blocked,
    me.onboarded,
    coalesce(known.items, '[]') as currencies,
    coalesce(listed.items, '[]') as entries
from me
cross join (
    select
        json_agg(
            json_build_object('code', c.code, 'decimals', c.decimals)
            order by c.sort_order, c.code
        ) as items
    from (
        select
            cu.code,
            cu.decimals,
            cu.sort_order
        from currencies as cu
        order by cu.sort_order, cu.code
        limit 50
    ) as c
) as known
cross join (
    select
        json_agg(
            json_build_object(
                'id', page.id,
                'transfer_id', page.transfer_id,
                'currency', page.currency,
                'amount', page.amount,
                'account_kind',
                case a.kind
                    when 'wallet_available' then 'available'
                    when 'wallet_held' then 'held'
                end,
                'transfer_kind', t.kind,
                'memo', t.memo,
                'created_at', page.created_at
            )
            order by page.created_at desc, page.id desc
        ) as items
    from page
    inner join ledger_accounts as a on page.account_id = a.id
    inner join ledger_transfers as t on page.transfer_id = t.id
) as listed;

-- name: history_test_same_instant(telegram_id)!
-- tests: gives all of a user's ledger entries one created_at, to prove the
-- history pages neither repeat nor skip entries that tie.
-- Indexes: users (telegram_id), ledger_entries_user.
update ledger_entries as le
set created_at = date_trunc('second', now())
from users as u
where le.user_id = u.id and u.telegram_id = :telegram_id;
