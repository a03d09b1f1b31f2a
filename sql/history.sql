-- History: the user's ledger entries, as the transaction history screen shows them.

-- name: history_page(telegram_id, currency, before_at, before_id, page_size)
-- History screen: the user's ledger entries (their wallets' available and
-- held accounts), newest first, keyset-paged on (created_at, id): the rows
-- before the cursor (all when before_at is null), of one currency when
-- currency is given, page_size of them and one more, which only tells the
-- caller that a next page exists. Each entry with its signed amount, the
-- account it moved (available or held), its transfer's kind and memo. No
-- rows for an unknown user. Two branches, one of which its parameters switch
-- off, so that each keeps its own index in a generic plan too.
-- Indexes: users (telegram_id); ledger_entries_user, or with a currency
-- ledger_entries_user_currency (0008); ledger_accounts pkey,
-- ledger_transfers pkey.
with
me as (
    select id from users
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
    page.id,
    page.transfer_id,
    page.currency,
    page.amount,
    case a.kind
        when 'wallet_available' then 'available'
        when 'wallet_held' then 'held'
    end as account_kind,
    t.kind::text as transfer_kind,
    t.memo,
    page.created_at
from page
inner join ledger_accounts as a on page.account_id = a.id
inner join ledger_transfers as t on page.transfer_id = t.id
order by page.created_at desc, page.id desc;

-- name: history_test_same_instant(telegram_id)!
-- tests: gives all of a user's ledger entries one created_at, to prove the
-- history pages neither repeat nor skip entries that tie.
-- Indexes: users (telegram_id), ledger_entries_user.
update ledger_entries as le
set created_at = date_trunc('second', now())
from users as u
where le.user_id = u.id and u.telegram_id = :telegram_id;
