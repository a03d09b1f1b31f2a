-- Dispute: a party stops the trade, both sides and an admin talk, and the
-- admin decides who gets the money held.

-- name: dispute_open(escrow_id, telegram_id, reason)^
-- Escrow action "dispute" (the buyer or the seller of an accepted or
-- delivered escrow): the escrow becomes disputed, stops its auto-release
-- clock, and the dispute is recorded. Outcome 'ok' or not_found /
-- not_a_party / blocked / wrong_status / invalid with nothing changed. With
-- the dispute, what the dispute chat screen and the notifications need: the
-- escrow (ref, amount, fees, decimals) and both parties with their Telegram ids.
-- Indexes: escrows (pk), users (telegram_id, pk), escrow_transitions (pk),
-- disputes_live_per_escrow, currencies (pk).
with
escrow as (
    select e.*
    from escrows as e
    where e.id = :escrow_id
    for update
),

decision as (
    select
        escrow.*,
        who.user_id,
        t.to_status,
        case
            when escrow.id is null then 'not_found'
            when who.actor is null then 'not_a_party'
            when who.is_blocked then 'blocked'
            when t.to_status is null then 'wrong_status'
            when char_length(:reason::text) not between 1 and 1000 then 'invalid'
            else 'ok'
        end as outcome
    from (select :escrow_id::bigint as escrow_id) as req
    left join escrow on req.escrow_id = escrow.id
    left join lateral (
        select
            u.id as user_id,
            u.is_blocked,
            case
                when u.id = escrow.buyer_id then 'buyer'
                when u.id = escrow.seller_id then 'seller'
                when u.is_admin and exists (
                        select 1 from escrow_transitions as a
                        where a.action = 'dispute' and a.actor = 'admin'
                    ) then 'admin'
            end as actor
        from users as u
        where u.telegram_id = :telegram_id
    ) as who on true
    left join escrow_transitions as t
        on escrow.status = t.from_status and t.action = 'dispute' and who.actor = t.actor
),

opened as (
    insert into disputes (escrow_id, opened_by_id, reason)
    select
        d.id,
        d.user_id,
        :reason
    from decision as d
    where d.outcome = 'ok'
    returning
        id,
        escrow_id,
        opened_by_id,
        reason,
        status::text as status,
        admin_id,
        resolution::text as resolution,
        buyer_share,
        resolution_note,
        created_at,
        last_message_at,
        resolved_at
),

moved as (
    update escrows as e
    set
        status = d.to_status,
        -- A disputed escrow waits for the admin, not for the clock.
        auto_release_at = null,
        updated_at = now()
    from decision as d
    where e.id = d.id and d.outcome = 'ok'
    returning e.id, e.status
)

select
    d.outcome,
    d.status::text as current_status,
    opened.*,
    d.ref as escrow_ref,
    d.currency,
    c.decimals,
    d.amount,
    d.buyer_fee,
    d.seller_fee,
    moved.status::text as escrow_status,
    json_build_object(
        'id', b.id,
        'telegram_id', b.telegram_id,
        'display_name', coalesce(nullif(b.first_name, ''), b.username, ''),
        'username', b.username,
        'is_blocked', b.is_blocked
    ) as buyer,
    case
        when s.id is not null
            then json_build_object(
                    'id', s.id,
                    'telegram_id', s.telegram_id,
                    'display_name', coalesce(nullif(s.first_name, ''), s.username, ''),
                    'username', s.username,
                    'is_blocked', s.is_blocked
                )
    end as seller
from decision as d
left join opened on true
left join moved on true
left join currencies as c on d.currency = c.code
left join users as b on d.buyer_id = b.id
left join users as s on d.seller_id = s.id;

-- name: dispute_post_message(dispute_id, telegram_id, body)^
-- Dispute chat, posting: the buyer, the seller or an admin writes into a
-- live dispute. The first admin to write takes the dispute (admin_id) and
-- puts it in review. Outcome 'ok' or not_found / not_a_party / blocked /
-- wrong_status / invalid with nothing changed. With the message, what the
-- chat screen after it and the notifications need: the sender's display
-- name, the dispute's status and the admin handling it after this post.
-- Indexes: disputes (pk), escrows (pk), users (telegram_id, pk).
with
dispute as (
    select
        d.id,
        d.status,
        e.buyer_id,
        e.seller_id
    from disputes as d
    inner join escrows as e on d.escrow_id = e.id
    where d.id = :dispute_id
    for update of d
),

decision as (
    select
        dispute.*,
        me.id as sender_id,
        me.id not in (dispute.buyer_id, coalesce(dispute.seller_id, 0)) as as_admin,
        case
            when dispute.id is null then 'not_found'
            when me.id is null then 'not_a_party'
            when me.id not in (dispute.buyer_id, coalesce(dispute.seller_id, 0)) and not me.is_admin
                then 'not_a_party'
            when me.is_blocked then 'blocked'
            when dispute.status not in ('open', 'in_review') then 'wrong_status'
            when char_length(:body::text) not between 1 and 4000 then 'invalid'
            else 'ok'
        end as outcome
    from (select :dispute_id::bigint as dispute_id) as req
    left join dispute on req.dispute_id = dispute.id
    left join users as me on me.telegram_id = :telegram_id
),

posted as (
    insert into dispute_messages (dispute_id, sender_id, body)
    select
        d.id,
        d.sender_id,
        :body
    from decision as d
    where d.outcome = 'ok'
    returning *
),

touched as (
    update disputes as t
    set
        last_message_at = p.created_at,
        admin_id = case when d.as_admin then coalesce(t.admin_id, d.sender_id) else t.admin_id end,
        status = case when d.as_admin and t.status = 'open' then 'in_review' else t.status end
    from posted as p
    inner join decision as d on p.dispute_id = d.id
    where t.id = p.dispute_id
    returning t.id, t.admin_id, t.status
)

select
    d.outcome,
    d.status::text as current_status,
    posted.*,
    coalesce(nullif(me.first_name, ''), me.username, '') as sender_name,
    touched.status::text as dispute_status,
    case
        when a.id is not null
            then json_build_object(
                    'id', a.id,
                    'telegram_id', a.telegram_id,
                    'display_name', coalesce(nullif(a.first_name, ''), a.username, ''),
                    'username', a.username,
                    'is_blocked', a.is_blocked
                )
    end as handling_admin
from decision as d
left join posted on true
left join touched on true
left join users as me on posted.sender_id = me.id
left join users as a on touched.admin_id = a.id;

-- name: dispute_resolve(dispute_id, admin_telegram_id, buyer_share)^
-- Dispute resolution by an admin: of the amount held, the buyer gets
-- buyer_share. All of it: 'refund', the buyer also gets the buyer_fee back,
-- the escrow is refunded. None: 'release', paid as a buyer's release. Some:
-- 'split', the seller's part bears the seller_fee as far as it goes, the
-- platform takes buyer_fee and that. The whole holding is paid out; a
-- completed escrow earns its referral rewards on the fee the platform took.
-- Locks: the escrow, the dispute, then the wallets paid in id order.
-- Outcome 'ok' or not_found / not_a_party / wrong_status / invalid with
-- nothing changed.
-- Indexes: disputes (pk), escrows (pk), users (telegram_id, pk),
-- escrow_transitions (pk), wallets_one_per_currency, referral_rewards
-- (referred_id).
with
escrow as (
    select e.*
    from escrows as e
    where e.id = (
            select d.escrow_id from disputes as d
            where d.id = :dispute_id
        )
    for update
),

dispute as (
    select d.id
    from disputes as d
    inner join escrow on d.escrow_id = escrow.id
    where d.id = :dispute_id
    for update of d
),

req as (
    select
        :dispute_id::bigint as dispute_id,
        :buyer_share::numeric as buyer_share
),

shares as (
    select
        escrow.*,
        dispute.id as dispute_id,
        c.decimals,
        me.id as admin_id,
        who.actor,
        res.resolution,
        res.buyer_gets,
        res.seller_gets,
        escrow.amount + escrow.buyer_fee - res.buyer_gets - res.seller_gets as platform_gets
    from req
    left join dispute on req.dispute_id = dispute.id
    left join escrow on true
    left join currencies as c on escrow.currency = c.code
    left join users as me on me.telegram_id = :admin_telegram_id
    left join lateral (
        select
            case
                when me.id = escrow.buyer_id then 'buyer'
                when me.id = escrow.seller_id then 'seller'
                when me.is_admin and exists (
                        select 1 from escrow_transitions as a
                        where a.action = 'resolve' and a.actor = 'admin'
                    ) then 'admin'
            end as actor
    ) as who on true
    left join lateral (
        select
            case req.buyer_share
                when escrow.amount then 'refund'
                when 0 then 'release'
                else 'split'
            end::dispute_resolution as resolution,
            req.buyer_share
            + case when req.buyer_share = escrow.amount then escrow.buyer_fee else 0 end as buyer_gets,
            escrow.amount - req.buyer_share
            - least(escrow.seller_fee, escrow.amount - req.buyer_share) as seller_gets
    ) as res on true
),

decision as (
    select
        s.*,
        t.to_status,
        case
            when s.dispute_id is null then 'not_found'
            when s.actor is null then 'not_a_party'
            when t.to_status is null then 'wrong_status'
            when
                req.buyer_share < 0
                or req.buyer_share > s.amount
                or round(req.buyer_share, s.decimals) <> req.buyer_share
                then 'invalid'
            else 'ok'
        end as outcome
    from req
    left join shares as s on true
    left join escrow_transitions as t
        on
            s.status = t.from_status
            and t.action = 'resolve'
            and s.actor = t.actor
            and t.to_status = case when s.resolution = 'refund' then 'refunded' else 'completed' end::escrow_status
),

payees as (
    select
        p.user_id,
        d.currency
    from decision as d
    cross join lateral (values (d.buyer_id), (d.seller_id)) as p (user_id)
    where d.outcome = 'ok'
    union
    select
        u.referrer_id,
        d.currency
    from decision as d
    inner join users as u on u.id in (d.buyer_id, d.seller_id)
    where d.outcome = 'ok' and d.to_status = 'completed' and u.referrer_id is not null
),

payee_wallets as (
    select w.id
    from wallets as w
    inner join payees as p on w.user_id = p.user_id and w.currency = p.currency
    order by w.id
    for update of w
),

posted as (
    select
        d.id,
        post_transfer(
            case d.resolution
                when 'refund' then 'escrow_refund'
                when 'release' then 'escrow_release'
                else 'escrow_split'
            end::transfer_kind,
            jsonb_build_array(
                jsonb_build_object('kind', 'escrow_holding', 'escrow', d.id, 'amount', -(d.amount + d.buyer_fee)),
                jsonb_build_object('kind', 'wallet_available', 'wallet', bw.id, 'amount', d.buyer_gets),
                jsonb_build_object('kind', 'wallet_available', 'wallet', sw.id, 'amount', d.seller_gets),
                jsonb_build_object('kind', 'platform_fees', 'currency', d.currency, 'amount', d.platform_gets)
            ),
            'escrow ' || d.ref || ' dispute resolved: ' || d.resolution,
            p_escrow_id => d.id
        ) as transfer_id,
        case
            when d.to_status = 'completed' then pay_referral_rewards(d.id, d.platform_gets)
            else '[]'::jsonb
        end as rewards
    from decision as d
    -- Every payee wallet is locked, in id order, before money moves.
    cross join (select count(*) as n from payee_wallets) as wallets_locked
    inner join wallets as bw on d.buyer_id = bw.user_id and d.currency = bw.currency
    inner join wallets as sw on d.seller_id = sw.user_id and d.currency = sw.currency
    where d.outcome = 'ok'
),

moved as (
    update escrows as e
    set
        status = d.to_status,
        closed_at = now(),
        updated_at = now()
    from decision as d
    inner join posted as p on d.id = p.id
    where e.id = d.id
    returning e.id, e.status
),

resolved as (
    update disputes as t
    set
        status = 'resolved',
        resolution = d.resolution,
        buyer_share = req.buyer_share,
        admin_id = d.admin_id,
        resolved_at = now()
    from decision as d
    cross join req
    inner join posted as p on true
    where t.id = d.dispute_id
    returning t.id, t.resolved_at
)

select
    d.outcome,
    d.status::text as current_status,
    d.dispute_id,
    d.id as escrow_id,
    d.currency,
    d.resolution::text as resolution,
    req.buyer_share,
    d.buyer_gets as buyer_amount,
    d.seller_gets as seller_amount,
    d.platform_gets as platform_fee,
    moved.status::text as escrow_status,
    p.transfer_id,
    p.rewards,
    resolved.resolved_at
from decision as d
cross join req
left join posted as p on true
left join moved on true
left join resolved on true;

-- name: dispute_test_row(dispute_id)^
-- tests: a dispute as stored, with how many messages it has.
select
    d.*,
    (
        select count(*) from dispute_messages as m
        where m.dispute_id = d.id
    ) as messages
from disputes as d
where d.id = :dispute_id;

-- name: dispute_context(dispute_id)^
-- Dispute screen (the parties' and the admin's view): the dispute; its
-- escrow; the buyer, the seller (none while an invited seller has no
-- account) and the admin handling it (none until one takes it), each with
-- a Telegram id (the handler checks the viewer is one of them, or a
-- configured admin), a display name (first name, else username) and whether
-- they are blocked; the currency's decimals; the 50 latest messages, oldest
-- first, each with its sender's name and role (buyer, seller or admin); and
-- the number of messages in all. No row when the dispute is unknown.
-- Indexes: disputes (pk), escrows (pk), users (pk), currencies (pk),
-- dispute_messages_dispute (the 50 latest, and the count from the index
-- alone).
select
    d.id,
    d.status::text as status,
    d.reason,
    d.resolution::text as resolution,
    d.buyer_share,
    d.created_at,
    d.resolved_at,
    e.id as escrow_id,
    e.ref as escrow_ref,
    e.currency,
    cur.decimals,
    e.amount,
    e.buyer_fee,
    e.seller_fee,
    e.status::text as escrow_status,
    json_build_object(
        'id', b.id,
        'telegram_id', b.telegram_id,
        'display_name', coalesce(nullif(b.first_name, ''), b.username, ''),
        'username', b.username,
        'is_blocked', b.is_blocked
    ) as buyer,
    case
        when s.id is not null
            then json_build_object(
                    'id', s.id,
                    'telegram_id', s.telegram_id,
                    'display_name', coalesce(nullif(s.first_name, ''), s.username, ''),
                    'username', s.username,
                    'is_blocked', s.is_blocked
                )
    end as seller,
    case
        when a.id is not null
            then json_build_object(
                    'id', a.id,
                    'telegram_id', a.telegram_id,
                    'display_name', coalesce(nullif(a.first_name, ''), a.username, ''),
                    'username', a.username,
                    'is_blocked', a.is_blocked
                )
    end as handling_admin,
    coalesce(chat.items, '[]') as messages,
    (
        select count(*) from dispute_messages as dm
        where dm.dispute_id = d.id
    ) as message_count
from disputes as d
inner join escrows as e on d.escrow_id = e.id
inner join users as b on e.buyer_id = b.id
left join users as s on e.seller_id = s.id
left join users as a on d.admin_id = a.id
inner join currencies as cur on e.currency = cur.code
cross join
    lateral (
        select
            json_agg(
                json_build_object(
                    'id', m.id,
                    'sender_id', m.sender_id,
                    'sender_name', coalesce(nullif(u.first_name, ''), u.username, ''),
                    'sender_role', case
                        when m.sender_id = e.buyer_id then 'buyer'
                        when m.sender_id = e.seller_id then 'seller'
                        else 'admin'
                    end,
                    'body', m.body,
                    'created_at', m.created_at
                )
                order by m.id
            ) as items
        from (
            -- The latest 50 by the index, turned oldest first by the aggregate.
            select
                dm.id,
                dm.sender_id,
                dm.body,
                dm.created_at
            from dispute_messages as dm
            where dm.dispute_id = d.id
            order by dm.id desc
            limit 50
        ) as m
        inner join users as u on m.sender_id = u.id
    ) as chat
where d.id = :dispute_id;

-- name: open_disputes(before_at, before_id, page_size)
-- Admin dispute queue: disputes open or in review, newest first by
-- (created_at, id), keyset-paged (rows before the cursor when one is
-- given), page_size + 1 rows so the caller knows whether a next page exists;
-- each with its escrow's ref, amount and currency, the parties' display
-- names (the handle the buyer typed for a seller with no account), the
-- currency's decimals and the time of the last message. Joins only: no
-- query per row.
-- Indexes: disputes_queue (scanned backwards from the cursor), escrows
-- (pk), users (pk), currencies (pk).
select
    d.id,
    d.escrow_id,
    d.status::text as status,
    d.created_at,
    d.last_message_at,
    e.ref as escrow_ref,
    e.amount,
    e.currency,
    cur.decimals,
    coalesce(nullif(b.first_name, ''), b.username, '') as buyer_name,
    coalesce(nullif(s.first_name, ''), s.username, e.seller_handle) as seller_name
from disputes as d
inner join escrows as e on d.escrow_id = e.id
inner join users as b on e.buyer_id = b.id
left join users as s on e.seller_id = s.id
inner join currencies as cur on e.currency = cur.code
where
    d.status in ('open', 'in_review')
    -- No cursor: before everything. One row comparison, never an OR, so that
    -- a cached generic plan still starts the index scan at the cursor.
    and (d.created_at, d.id) < (
        coalesce(:before_at::timestamptz, 'infinity'),
        coalesce(:before_id::bigint, 9223372036854775807)
    )
order by d.created_at desc, d.id desc
limit :page_size::integer + 1;

-- name: dispute_test_set_created_at(dispute_ids, created_at)!
-- tests: several disputes opened at the very same instant.
update disputes
set created_at = :created_at::timestamptz
where id = any(:dispute_ids::bigint[]);

-- name: my_disputes(telegram_id, before_at, before_id, page_size)^
-- My disputes screen (/disputes for a user who is no admin): the user
-- (blocked? onboarded?) and the disputed escrows they are the buyer or the
-- seller of, each with its live dispute, newest escrow first by
-- (created_at, id), keyset-paged: rows strictly before the cursor
-- (before_at, before_id) when one is given; page_size + 1 rows at most (the
-- extra one says a next page exists). Each with the user's role, the
-- counterparty's display name, the amount with its currency's decimals and
-- the time of the last message. No row for an unknown user.
-- Indexes: users (telegram_id); escrows_buyer and escrows_seller, each read
-- in index order from the cursor and filtered on the status (so it reads
-- the user's escrows until the page is full), cut at page_size + 1 before
-- the two are merged; disputes_live_per_escrow; users (pk); currencies (pk).
with
page as (
    select
        p.id,
        p.ref,
        p.my_role,
        p.counterparty_id,
        p.seller_handle,
        p.currency,
        p.amount,
        p.created_at
    from (
        (
            select
                e.id,
                e.ref,
                'buyer' as my_role,
                e.seller_id as counterparty_id,
                e.seller_handle,
                e.currency,
                e.amount,
                e.created_at
            from escrows as e
            where
                e.buyer_id = (
                    select u.id from users as u
                    where u.telegram_id = :telegram_id
                )
                and e.status = 'disputed'
                -- No cursor: a bound past every row; one row comparison, an
                -- index condition in a generic plan too.
                and (e.created_at, e.id) < (
                    coalesce(:before_at::timestamptz, 'infinity'),
                    coalesce(:before_id::bigint, 9223372036854775807)
                )
            order by e.created_at desc, e.id desc
            limit :page_size::integer + 1
        )
        union all
        (
            select
                e.id,
                e.ref,
                'seller' as my_role,
                e.buyer_id as counterparty_id,
                e.seller_handle,
                e.currency,
                e.amount,
                e.created_at
            from escrows as e
            where
                e.seller_id = (
                    select u.id from users as u
                    where u.telegram_id = :telegram_id
                )
                and e.buyer_id <> e.seller_id
                and e.status = 'disputed'
                and (e.created_at, e.id) < (
                    coalesce(:before_at::timestamptz, 'infinity'),
                    coalesce(:before_id::bigint, 9223372036854775807)
                )
            order by e.created_at desc, e.id desc
            limit :page_size::integer + 1
        )
    ) as p
    order by p.created_at desc, p.id desc
    limit :page_size::integer + 1
)

select
    me.id as user_id,
    me.is_blocked,
    me.onboarding::text as onboarding,
    coalesce(items.items, '[]') as items
from users as me
cross join
    lateral (
        select
            json_agg(
                json_build_object(
                    'dispute_id', d.id,
                    'status', d.status,
                    'escrow_id', p.id,
                    'escrow_ref', p.ref,
                    'role', p.my_role,
                    'counterparty_name', coalesce(
                        nullif(cp.first_name, ''), cp.username, p.seller_handle, ''
                    ),
                    'currency', p.currency,
                    'decimals', c.decimals,
                    'amount', p.amount,
                    'escrow_created_at', p.created_at,
                    'opened_at', d.created_at,
                    'last_message_at', d.last_message_at
                )
                order by p.created_at desc, p.id desc
            ) as items
        from page as p
        inner join disputes as d on p.id = d.escrow_id and d.status in ('open', 'in_review')
        inner join currencies as c on p.currency = c.code
        left join users as cp on p.counterparty_id = cp.id
    ) as items
where me.telegram_id = :telegram_id;
