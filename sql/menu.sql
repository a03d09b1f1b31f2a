-- Menu: the main screen a user returns to, with what needs their attention.

-- name: menu_context(telegram_id)^
-- Main menu screen: display name (first name, else username); onboarding
-- step and whether it is complete; whether the user is an admin or blocked; every
-- wallet holding something (available or held not zero), in currency
-- order; counts of active escrows (as buyer or seller: awaiting payment,
-- funded, accepted, delivered or disputed), of escrows waiting on this user
-- (the buyer's to pay or to release, the seller's to accept or deliver), of
-- live disputes the user is a party to, of unread admin replies on the
-- live support ticket and of cashouts in flight. No row when the user is
-- unknown. Each count reads one user's rows through that user's index.
-- Indexes: users (telegram_id), wallets_one_per_currency, escrows_buyer,
-- escrows_seller, disputes_live_per_escrow, support_tickets_live,
-- support_messages_unread, cashouts_in_flight.
with
me as (
    select
        id,
        telegram_id,
        coalesce(nullif(first_name, ''), username, '') as display_name,
        onboarding::text as onboarding,
        onboarding = 'complete' as onboarding_complete,
        is_admin,
        is_blocked
    from users
    where telegram_id = :telegram_id
)

select
    me.*,
    coalesce(balances.items, '[]') as balances,
    as_buyer.active + as_seller.active as active_escrows,
    as_buyer.waiting + as_seller.waiting as waiting_on_me,
    as_buyer.disputes + as_seller.disputes as open_disputes,
    (
        select count(*)
        from support_tickets as t
        inner join support_messages as m
            on t.id = m.ticket_id and m.from_admin and m.read_at is null
        where t.user_id = me.id and t.status <> 'closed'
    ) as unread_support_replies,
    (
        select count(*) from cashouts as c
        where c.user_id = me.id and c.status in ('pending', 'approved', 'processing')
    ) as cashouts_in_flight
from me
cross join
    lateral (
        select
            json_agg(
                json_build_object(
                    'currency', w.currency,
                    'decimals', c.decimals,
                    'available', w.available,
                    'held', w.held
                )
                order by w.currency
            ) as items
        from wallets as w
        inner join currencies as c on w.currency = c.code
        where w.user_id = me.id and (w.available <> 0 or w.held <> 0)
    ) as balances
cross join
    lateral (
        select
            count(*) filter (
                where e.status in ('awaiting_payment', 'funded', 'accepted', 'delivered', 'disputed')
            ) as active,
            count(*) filter (where e.status in ('awaiting_payment', 'delivered')) as waiting,
            -- Only a disputed escrow can have a live dispute: look no further for the rest.
            count(*) filter (
                where
                e.status = 'disputed'
                and exists (
                    select 1 from disputes as d
                    where d.escrow_id = e.id and d.status in ('open', 'in_review')
                )
            ) as disputes
        from escrows as e
        where e.buyer_id = me.id
    ) as as_buyer
cross join
    lateral (
        select
            count(*) filter (
                where e.status in ('awaiting_payment', 'funded', 'accepted', 'delivered', 'disputed')
            ) as active,
            count(*) filter (where e.status in ('funded', 'accepted')) as waiting,
            count(*) filter (
                where
                e.status = 'disputed'
                and exists (
                    select 1 from disputes as d
                    where d.escrow_id = e.id and d.status in ('open', 'in_review')
                )
            ) as disputes
        from escrows as e
        where e.seller_id = me.id
    ) as as_seller;
