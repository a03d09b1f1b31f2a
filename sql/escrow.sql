-- Escrow: the lifecycle of a trade, from creation to completion or refund.
-- Every movement asks escrow_transitions whether this actor may do this
-- action in the escrow's current status, under the escrow's row lock.

-- name: escrow_create(buyer_telegram_id, seller_handle, currency, amount, description, fee_split, payment_method, ref)^
-- Create escrow (the flow's confirm step): the buyer; the seller found by
-- the normalised handle (a username, an e-mail or an E.164 phone), or none
-- (an invited seller, linked when they register); the fee at escrow_fee_rate rounded up to the currency's
-- precision, shared as the fee split says (split: the buyer's half rounded
-- up); awaiting payment until the payment window closes. Outcome 'ok' or a
-- refusal (not_found, invalid, below_minimum) with nothing created.
-- Indexes: users (telegram_id), users_username_lower, users_email_lower,
-- users_phone, currencies (pk), escrows (ref).
with
req as (
    select
        :amount::numeric as amount,
        :description::text as description
),

buyer as (
    select id from users
    where telegram_id = :buyer_telegram_id
),

-- The three kinds of handle cannot be mistaken for one another: only an
-- e-mail holds an @, only a phone starts with +, a username holds neither.
seller as (
    select u.id from users as u
    where lower(u.username) = :seller_handle::text
    union
    select u.id from users as u
    where lower(u.email) = :seller_handle::text
    union
    select u.id from users as u
    where u.phone = :seller_handle::text
),

terms as (
    select
        c.code,
        c.decimals,
        c.escrow_min_amount,
        s.payment_window_hours,
        s.escrow_fee_rate,
        -- The smallest amount of the currency, for rounding up to it.
        ('1e-' || c.decimals)::numeric as unit
    from currencies as c
    cross join platform_settings as s
    where c.code = :currency::text
),

decision as (
    select
        req.amount,
        req.description,
        buyer.id as buyer_id,
        seller.id as seller_id,
        terms.code,
        terms.escrow_min_amount,
        terms.payment_window_hours,
        fee.fee,
        case :fee_split::text::fee_split
            when 'buyer' then fee.fee
            when 'seller' then 0
            else ceil(fee.fee * 0.5 / terms.unit) * terms.unit
        end as buyer_fee,
        case
            when buyer.id is null then 'not_found'
            when terms.code is null then 'not_found'
            when req.amount <= 0 or round(req.amount, terms.decimals) <> req.amount then 'invalid'
            when req.amount < terms.escrow_min_amount then 'below_minimum'
            when char_length(req.description) not between 1 and 1000 then 'invalid'
            when seller.id = buyer.id then 'invalid'
            else 'ok'
        end as outcome,
        case when buyer.id is null then 'user' else 'currency' end as what,
        case
            when req.amount <= 0 then 'The amount must be more than zero.'
            when round(req.amount, terms.decimals) <> req.amount
                then format('%s takes at most %s decimals.', terms.code, terms.decimals)
            when char_length(req.description) not between 1 and 1000
                then 'The description takes 1 to 1000 characters.'
            else 'You cannot trade with yourself.'
        end as reason
    from req
    left join buyer on true
    left join terms on true
    left join seller on true
    left join lateral (
        select ceil(req.amount * terms.escrow_fee_rate / terms.unit) * terms.unit as fee
    ) as fee on true
),

created as (
    insert into escrows (
        ref, buyer_id, seller_id, seller_handle, currency, amount, fee, total, fee_split,
        buyer_fee, seller_fee, description, payment_method, payment_reference, payment_deadline
    )
    select
        :ref::text as ref,
        d.buyer_id,
        d.seller_id,
        :seller_handle::text as seller_handle,
        d.code,
        d.amount,
        d.fee,
        d.amount + d.fee as total,
        :fee_split::text::fee_split as fee_split,
        d.buyer_fee,
        d.fee - d.buyer_fee as seller_fee,
        d.description,
        :payment_method::text::payment_method as payment_method,
        :ref::text as payment_reference,
        now() + make_interval(hours => d.payment_window_hours) as payment_deadline
    from decision as d
    where d.outcome = 'ok'
    returning
        id,
        ref,
        buyer_id,
        seller_id,
        seller_handle,
        currency,
        amount,
        fee,
        total,
        fee_split::text as fee_split,
        buyer_fee,
        seller_fee,
        description,
        status::text as status,
        payment_method::text as payment_method,
        payment_reference,
        payment_address,
        paid_amount,
        payment_deadline,
        accept_deadline,
        delivery_deadline,
        auto_release_at,
        created_at,
        updated_at,
        funded_at,
        accepted_at,
        delivered_at,
        closed_at
)

select
    d.outcome,
    d.what,
    d.reason,
    d.escrow_min_amount as minimum,
    created.*
from decision as d
left join created on true;

-- name: escrow_fund_from_wallet(escrow_id, telegram_id, idempotency_key, request_hash)^
-- Escrow action "pay" from the wallet (and the payment webhooks, inside their
-- own transaction, once they have credited the buyer): amount + buyer_fee
-- from the buyer's available balance into the escrow's holding, exactly once
-- per (buyer, 'escrow_payment', key). The same key again answers with the
-- escrow as it stands (replayed) and moves nothing; the same key for another
-- escrow is an idempotency_conflict. Outcome 'retry' when a concurrent claim
-- of the key is not yet visible to this statement: nothing changed, run it
-- again. Locks: the escrow, then the buyer's wallet.
-- Indexes: escrows (pk), users (telegram_id), idempotency_keys (pk),
-- wallets_one_per_currency, escrow_transitions (pk).
with
escrow as (
    select e.*
    from escrows as e
    where e.id = :escrow_id
    for update
),

me as (
    select
        id,
        is_admin
    from users
    where telegram_id = :telegram_id
),

claimed as (
    select k.request_hash
    from idempotency_keys as k
    inner join me on k.user_id = me.id
    where k.scope = 'escrow_payment' and k.key = :idempotency_key
),

buyer_wallet as (
    select
        w.id,
        w.available
    from wallets as w
    inner join escrow on w.user_id = escrow.buyer_id and w.currency = escrow.currency
    for update of w
),

decision as (
    select
        escrow.*,
        who.actor,
        t.to_status,
        bw.id as wallet_id,
        coalesce(bw.available, 0) as available,
        escrow.amount + escrow.buyer_fee as needed,
        (claimed.request_hash is not null) as replayed,
        case
            when char_length(:idempotency_key::text) not between 1 and 128 then 'invalid'
            when claimed.request_hash <> :request_hash then 'idempotency_conflict'
            when claimed.request_hash is not null then 'ok'
            when escrow.id is null then 'not_found'
            when who.actor is null then 'not_a_party'
            when t.to_status is null then 'wrong_status'
            when coalesce(bw.available, 0) < escrow.amount + escrow.buyer_fee then 'insufficient_funds'
            else 'ok'
        end as outcome
    from (select :escrow_id::bigint as escrow_id) as req
    left join escrow on req.escrow_id = escrow.id
    left join claimed on true
    left join buyer_wallet as bw on true
    left join lateral (
        select
            case
                when me.id = escrow.buyer_id then 'buyer'
                when me.id = escrow.seller_id then 'seller'
                when me.is_admin and exists (
                        select 1 from escrow_transitions as a
                        where a.action = 'pay' and a.actor = 'admin'
                    ) then 'admin'
            end as actor
        from me
    ) as who on true
    left join escrow_transitions as t
        on escrow.status = t.from_status and t.action = 'pay' and who.actor = t.actor
),

claim as (
    insert into idempotency_keys (user_id, scope, key, request_hash, result)
    select
        d.buyer_id,
        'escrow_payment' as scope,
        :idempotency_key::text as key,
        :request_hash::text as request_hash,
        jsonb_build_object('escrow_id', d.id, 'paid', d.needed) as result
    from decision as d
    where d.outcome = 'ok' and not d.replayed
    on conflict do nothing
    returning user_id
),

posted as (
    select
        post_transfer(
            'escrow_fund',
            jsonb_build_array(
                jsonb_build_object('kind', 'wallet_available', 'wallet', d.wallet_id, 'amount', -d.needed),
                jsonb_build_object('kind', 'escrow_holding', 'escrow', d.id, 'amount', d.needed)
            ),
            'escrow ' || d.ref || ' funded',
            p_escrow_id => d.id
        ) as transfer_id
    from decision as d
    inner join claim on d.buyer_id = claim.user_id
),

funded as (
    update escrows as e
    set
        status = d.to_status,
        payment_method = coalesce(e.payment_method, 'wallet'),
        paid_amount = greatest(e.paid_amount, d.needed),
        funded_at = now(),
        accept_deadline = now() + make_interval(hours => s.payment_window_hours),
        updated_at = now()
    from decision as d
    inner join posted on true
    cross join platform_settings as s
    where e.id = d.id
    returning
        e.id,
        e.ref,
        e.buyer_id,
        e.seller_id,
        e.seller_handle,
        e.currency,
        e.amount,
        e.fee,
        e.total,
        e.fee_split::text as fee_split,
        e.buyer_fee,
        e.seller_fee,
        e.description,
        e.status::text as status,
        e.payment_method::text as payment_method,
        e.payment_reference,
        e.payment_address,
        e.paid_amount,
        e.payment_deadline,
        e.accept_deadline,
        e.delivery_deadline,
        e.auto_release_at,
        e.created_at,
        e.updated_at,
        e.funded_at,
        e.accepted_at,
        e.delivered_at,
        e.closed_at
),

after as (
    select * from funded
    union all
    select
        escrow.id,
        escrow.ref,
        escrow.buyer_id,
        escrow.seller_id,
        escrow.seller_handle,
        escrow.currency,
        escrow.amount,
        escrow.fee,
        escrow.total,
        escrow.fee_split::text as fee_split,
        escrow.buyer_fee,
        escrow.seller_fee,
        escrow.description,
        escrow.status::text as status,
        escrow.payment_method::text as payment_method,
        escrow.payment_reference,
        escrow.payment_address,
        escrow.paid_amount,
        escrow.payment_deadline,
        escrow.accept_deadline,
        escrow.delivery_deadline,
        escrow.auto_release_at,
        escrow.created_at,
        escrow.updated_at,
        escrow.funded_at,
        escrow.accepted_at,
        escrow.delivered_at,
        escrow.closed_at
    from escrow
    inner join decision as d on d.replayed and d.outcome = 'ok'
)

select
    case
        when d.outcome = 'ok' and not d.replayed and p.transfer_id is null then 'retry'
        else d.outcome
    end as outcome,
    d.status::text as current_status,
    d.actor,
    d.currency as wallet_currency,
    d.available,
    d.needed,
    d.replayed,
    p.transfer_id,
    '[]'::jsonb as rewards,
    -- Whom to notify and how to show the amounts, without another round trip.
    bu.telegram_id as buyer_telegram_id,
    su.telegram_id as seller_telegram_id,
    cur.decimals,
    after.*
from decision as d
left join posted as p on true
left join after on true
left join users as bu on d.buyer_id = bu.id
left join users as su on d.seller_id = su.id
left join currencies as cur on d.currency = cur.code;

-- name: escrow_accept(escrow_id, telegram_id)^
-- Escrow action "accept" (the seller takes a funded escrow): starts the
-- delivery window. Outcome 'ok' or not_found / not_a_party / wrong_status
-- with nothing changed.
-- Indexes: escrows (pk), users (telegram_id), escrow_transitions (pk).
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
        t.to_status,
        case
            when escrow.id is null then 'not_found'
            when who.actor is null then 'not_a_party'
            when t.to_status is null then 'wrong_status'
            else 'ok'
        end as outcome
    from (select :escrow_id::bigint as escrow_id) as req
    left join escrow on req.escrow_id = escrow.id
    left join lateral (
        select
            case
                when u.id = escrow.buyer_id then 'buyer'
                when u.id = escrow.seller_id then 'seller'
                when u.is_admin and exists (
                        select 1 from escrow_transitions as a
                        where a.action = 'accept' and a.actor = 'admin'
                    ) then 'admin'
            end as actor
        from users as u
        where u.telegram_id = :telegram_id
    ) as who on true
    left join escrow_transitions as t
        on escrow.status = t.from_status and t.action = 'accept' and who.actor = t.actor
),

moved as (
    update escrows as e
    set
        status = d.to_status,
        accepted_at = now(),
        delivery_deadline = now() + make_interval(hours => s.delivery_window_hours),
        updated_at = now()
    from decision as d
    cross join platform_settings as s
    where e.id = d.id and d.outcome = 'ok'
    returning
        e.id,
        e.ref,
        e.buyer_id,
        e.seller_id,
        e.seller_handle,
        e.currency,
        e.amount,
        e.fee,
        e.total,
        e.fee_split::text as fee_split,
        e.buyer_fee,
        e.seller_fee,
        e.description,
        e.status::text as status,
        e.payment_method::text as payment_method,
        e.payment_reference,
        e.payment_address,
        e.paid_amount,
        e.payment_deadline,
        e.accept_deadline,
        e.delivery_deadline,
        e.auto_release_at,
        e.created_at,
        e.updated_at,
        e.funded_at,
        e.accepted_at,
        e.delivered_at,
        e.closed_at
)

select
    d.outcome,
    d.status::text as current_status,
    null::bigint as transfer_id,
    '[]'::jsonb as rewards,
    -- Whom to notify and how to show the amounts, without another round trip.
    bu.telegram_id as buyer_telegram_id,
    su.telegram_id as seller_telegram_id,
    cur.decimals,
    moved.*
from decision as d
left join moved on true
left join users as bu on d.buyer_id = bu.id
left join users as su on d.seller_id = su.id
left join currencies as cur on d.currency = cur.code;

-- name: escrow_decline(escrow_id, telegram_id)^
-- Escrow action "decline" (the seller turns down a funded escrow): the
-- holding goes back to the buyer's available balance, amount + buyer_fee;
-- the platform keeps nothing. Outcome 'ok' or not_found / not_a_party /
-- wrong_status with nothing changed.
-- Indexes: escrows (pk), users (telegram_id), escrow_transitions (pk),
-- wallets_one_per_currency.
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
        t.to_status,
        case
            when escrow.id is null then 'not_found'
            when who.actor is null then 'not_a_party'
            when t.to_status is null then 'wrong_status'
            else 'ok'
        end as outcome
    from (select :escrow_id::bigint as escrow_id) as req
    left join escrow on req.escrow_id = escrow.id
    left join lateral (
        select
            case
                when u.id = escrow.buyer_id then 'buyer'
                when u.id = escrow.seller_id then 'seller'
                when u.is_admin and exists (
                        select 1 from escrow_transitions as a
                        where a.action = 'decline' and a.actor = 'admin'
                    ) then 'admin'
            end as actor
        from users as u
        where u.telegram_id = :telegram_id
    ) as who on true
    left join escrow_transitions as t
        on escrow.status = t.from_status and t.action = 'decline' and who.actor = t.actor
),

posted as (
    select
        d.id,
        post_transfer(
            'escrow_refund',
            jsonb_build_array(
                jsonb_build_object('kind', 'escrow_holding', 'escrow', d.id, 'amount', -(d.amount + d.buyer_fee)),
                jsonb_build_object('kind', 'wallet_available', 'wallet', bw.id, 'amount', d.amount + d.buyer_fee)
            ),
            'escrow ' || d.ref || ' declined',
            p_escrow_id => d.id
        ) as transfer_id
    from decision as d
    inner join wallets as bw on d.buyer_id = bw.user_id and d.currency = bw.currency
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
    returning
        e.id,
        e.ref,
        e.buyer_id,
        e.seller_id,
        e.seller_handle,
        e.currency,
        e.amount,
        e.fee,
        e.total,
        e.fee_split::text as fee_split,
        e.buyer_fee,
        e.seller_fee,
        e.description,
        e.status::text as status,
        e.payment_method::text as payment_method,
        e.payment_reference,
        e.payment_address,
        e.paid_amount,
        e.payment_deadline,
        e.accept_deadline,
        e.delivery_deadline,
        e.auto_release_at,
        e.created_at,
        e.updated_at,
        e.funded_at,
        e.accepted_at,
        e.delivered_at,
        e.closed_at,
        p.transfer_id
)

select
    d.outcome,
    d.status::text as current_status,
    '[]'::jsonb as rewards,
    -- Whom to notify and how to show the amounts, without another round trip.
    bu.telegram_id as buyer_telegram_id,
    su.telegram_id as seller_telegram_id,
    cur.decimals,
    moved.*
from decision as d
left join moved on true
left join users as bu on d.buyer_id = bu.id
left join users as su on d.seller_id = su.id
left join currencies as cur on d.currency = cur.code;

-- name: escrow_mark_delivered(escrow_id, telegram_id)^
-- Escrow action "deliver" (the seller says the goods or service are
-- delivered): starts the auto-release clock (auto_release_hours). Outcome
-- 'ok' or not_found / not_a_party / wrong_status with nothing changed.
-- Indexes: escrows (pk), users (telegram_id), escrow_transitions (pk).
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
        t.to_status,
        case
            when escrow.id is null then 'not_found'
            when who.actor is null then 'not_a_party'
            when t.to_status is null then 'wrong_status'
            else 'ok'
        end as outcome
    from (select :escrow_id::bigint as escrow_id) as req
    left join escrow on req.escrow_id = escrow.id
    left join lateral (
        select
            case
                when u.id = escrow.buyer_id then 'buyer'
                when u.id = escrow.seller_id then 'seller'
                when u.is_admin and exists (
                        select 1 from escrow_transitions as a
                        where a.action = 'deliver' and a.actor = 'admin'
                    ) then 'admin'
            end as actor
        from users as u
        where u.telegram_id = :telegram_id
    ) as who on true
    left join escrow_transitions as t
        on escrow.status = t.from_status and t.action = 'deliver' and who.actor = t.actor
),

moved as (
    update escrows as e
    set
        status = d.to_status,
        delivered_at = now(),
        auto_release_at = now() + make_interval(hours => s.auto_release_hours),
        updated_at = now()
    from decision as d
    cross join platform_settings as s
    where e.id = d.id and d.outcome = 'ok'
    returning
        e.id,
        e.ref,
        e.buyer_id,
        e.seller_id,
        e.seller_handle,
        e.currency,
        e.amount,
        e.fee,
        e.total,
        e.fee_split::text as fee_split,
        e.buyer_fee,
        e.seller_fee,
        e.description,
        e.status::text as status,
        e.payment_method::text as payment_method,
        e.payment_reference,
        e.payment_address,
        e.paid_amount,
        e.payment_deadline,
        e.accept_deadline,
        e.delivery_deadline,
        e.auto_release_at,
        e.created_at,
        e.updated_at,
        e.funded_at,
        e.accepted_at,
        e.delivered_at,
        e.closed_at
)

select
    d.outcome,
    d.status::text as current_status,
    null::bigint as transfer_id,
    '[]'::jsonb as rewards,
    -- Whom to notify and how to show the amounts, without another round trip.
    bu.telegram_id as buyer_telegram_id,
    su.telegram_id as seller_telegram_id,
    cur.decimals,
    moved.*
from decision as d
left join moved on true
left join users as bu on d.buyer_id = bu.id
left join users as su on d.seller_id = su.id
left join currencies as cur on d.currency = cur.code;

-- name: escrow_release(escrow_id, telegram_id)^
-- Escrow action "release" (the buyer is satisfied): the holding pays the
-- seller amount - seller_fee and platform_fees the whole fee, then the
-- referral rewards the completion earns (pay_referral_rewards). Locks: the
-- escrow, then the seller's and the referrers' wallets in id order. Outcome
-- 'ok' or not_found / not_a_party / wrong_status with nothing changed.
-- Indexes: escrows (pk), users (telegram_id, pk), escrow_transitions (pk),
-- wallets_one_per_currency, referral_rewards (referred_id).
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
        t.to_status,
        case
            when escrow.id is null then 'not_found'
            when who.actor is null then 'not_a_party'
            when t.to_status is null then 'wrong_status'
            else 'ok'
        end as outcome
    from (select :escrow_id::bigint as escrow_id) as req
    left join escrow on req.escrow_id = escrow.id
    left join lateral (
        select
            case
                when u.id = escrow.buyer_id then 'buyer'
                when u.id = escrow.seller_id then 'seller'
                when u.is_admin and exists (
                        select 1 from escrow_transitions as a
                        where a.action = 'release' and a.actor = 'admin'
                    ) then 'admin'
            end as actor
        from users as u
        where u.telegram_id = :telegram_id
    ) as who on true
    left join escrow_transitions as t
        on escrow.status = t.from_status and t.action = 'release' and who.actor = t.actor
),

payees as (
    select
        d.seller_id as user_id,
        d.currency
    from decision as d
    where d.outcome = 'ok'
    union
    select
        u.referrer_id,
        d.currency
    from decision as d
    inner join users as u on u.id in (d.buyer_id, d.seller_id)
    where d.outcome = 'ok' and u.referrer_id is not null
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
            'escrow_release',
            jsonb_build_array(
                jsonb_build_object('kind', 'escrow_holding', 'escrow', d.id, 'amount', -(d.amount + d.buyer_fee)),
                jsonb_build_object('kind', 'wallet_available', 'wallet', sw.id, 'amount', d.amount - d.seller_fee),
                jsonb_build_object('kind', 'platform_fees', 'currency', d.currency, 'amount', d.fee)
            ),
            'escrow ' || d.ref || ' released',
            p_escrow_id => d.id
        ) as transfer_id,
        pay_referral_rewards(d.id, d.fee) as rewards
    from decision as d
    -- Every payee wallet is locked, in id order, before money moves.
    cross join (select count(*) as n from payee_wallets) as wallets_locked
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
    returning
        e.id,
        e.ref,
        e.buyer_id,
        e.seller_id,
        e.seller_handle,
        e.currency,
        e.amount,
        e.fee,
        e.total,
        e.fee_split::text as fee_split,
        e.buyer_fee,
        e.seller_fee,
        e.description,
        e.status::text as status,
        e.payment_method::text as payment_method,
        e.payment_reference,
        e.payment_address,
        e.paid_amount,
        e.payment_deadline,
        e.accept_deadline,
        e.delivery_deadline,
        e.auto_release_at,
        e.created_at,
        e.updated_at,
        e.funded_at,
        e.accepted_at,
        e.delivered_at,
        e.closed_at,
        p.transfer_id,
        p.rewards
)

select
    d.outcome,
    d.status::text as current_status,
    -- Whom to notify and how to show the amounts, without another round trip.
    bu.telegram_id as buyer_telegram_id,
    su.telegram_id as seller_telegram_id,
    cur.decimals,
    moved.*
from decision as d
left join moved on true
left join users as bu on d.buyer_id = bu.id
left join users as su on d.seller_id = su.id
left join currencies as cur on d.currency = cur.code;

-- name: escrow_refund(escrow_id, telegram_id)^
-- Escrow action "refund" (the seller gives up, or an admin steps in): the
-- holding goes back to the buyer, amount + buyer_fee; the platform keeps
-- nothing. Outcome 'ok' or not_found / not_a_party / wrong_status with
-- nothing changed.
-- Indexes: escrows (pk), users (telegram_id), escrow_transitions (pk),
-- wallets_one_per_currency.
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
        t.to_status,
        case
            when escrow.id is null then 'not_found'
            when who.actor is null then 'not_a_party'
            when t.to_status is null then 'wrong_status'
            else 'ok'
        end as outcome
    from (select :escrow_id::bigint as escrow_id) as req
    left join escrow on req.escrow_id = escrow.id
    left join lateral (
        select
            case
                when u.id = escrow.buyer_id then 'buyer'
                when u.id = escrow.seller_id then 'seller'
                when u.is_admin and exists (
                        select 1 from escrow_transitions as a
                        where a.action = 'refund' and a.actor = 'admin'
                    ) then 'admin'
            end as actor
        from users as u
        where u.telegram_id = :telegram_id
    ) as who on true
    left join escrow_transitions as t
        on escrow.status = t.from_status and t.action = 'refund' and who.actor = t.actor
),

posted as (
    select
        d.id,
        post_transfer(
            'escrow_refund',
            jsonb_build_array(
                jsonb_build_object('kind', 'escrow_holding', 'escrow', d.id, 'amount', -(d.amount + d.buyer_fee)),
                jsonb_build_object('kind', 'wallet_available', 'wallet', bw.id, 'amount', d.amount + d.buyer_fee)
            ),
            'escrow ' || d.ref || ' refunded',
            p_escrow_id => d.id
        ) as transfer_id
    from decision as d
    inner join wallets as bw on d.buyer_id = bw.user_id and d.currency = bw.currency
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
    returning
        e.id,
        e.ref,
        e.buyer_id,
        e.seller_id,
        e.seller_handle,
        e.currency,
        e.amount,
        e.fee,
        e.total,
        e.fee_split::text as fee_split,
        e.buyer_fee,
        e.seller_fee,
        e.description,
        e.status::text as status,
        e.payment_method::text as payment_method,
        e.payment_reference,
        e.payment_address,
        e.paid_amount,
        e.payment_deadline,
        e.accept_deadline,
        e.delivery_deadline,
        e.auto_release_at,
        e.created_at,
        e.updated_at,
        e.funded_at,
        e.accepted_at,
        e.delivered_at,
        e.closed_at,
        p.transfer_id
)

select
    d.outcome,
    d.status::text as current_status,
    '[]'::jsonb as rewards,
    -- Whom to notify and how to show the amounts, without another round trip.
    bu.telegram_id as buyer_telegram_id,
    su.telegram_id as seller_telegram_id,
    cur.decimals,
    moved.*
from decision as d
left join moved on true
left join users as bu on d.buyer_id = bu.id
left join users as su on d.seller_id = su.id
left join currencies as cur on d.currency = cur.code;

-- name: escrow_cancel(escrow_id, telegram_id)^
-- Escrow action "cancel" (the buyer withdraws before paying): no money has
-- moved, none moves. Outcome 'ok' or not_found / not_a_party / wrong_status
-- with nothing changed.
-- Indexes: escrows (pk), users (telegram_id), escrow_transitions (pk).
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
        t.to_status,
        case
            when escrow.id is null then 'not_found'
            when who.actor is null then 'not_a_party'
            when t.to_status is null then 'wrong_status'
            else 'ok'
        end as outcome
    from (select :escrow_id::bigint as escrow_id) as req
    left join escrow on req.escrow_id = escrow.id
    left join lateral (
        select
            case
                when u.id = escrow.buyer_id then 'buyer'
                when u.id = escrow.seller_id then 'seller'
                when u.is_admin and exists (
                        select 1 from escrow_transitions as a
                        where a.action = 'cancel' and a.actor = 'admin'
                    ) then 'admin'
            end as actor
        from users as u
        where u.telegram_id = :telegram_id
    ) as who on true
    left join escrow_transitions as t
        on escrow.status = t.from_status and t.action = 'cancel' and who.actor = t.actor
),

moved as (
    update escrows as e
    set
        status = d.to_status,
        closed_at = now(),
        updated_at = now()
    from decision as d
    where e.id = d.id and d.outcome = 'ok'
    returning
        e.id,
        e.ref,
        e.buyer_id,
        e.seller_id,
        e.seller_handle,
        e.currency,
        e.amount,
        e.fee,
        e.total,
        e.fee_split::text as fee_split,
        e.buyer_fee,
        e.seller_fee,
        e.description,
        e.status::text as status,
        e.payment_method::text as payment_method,
        e.payment_reference,
        e.payment_address,
        e.paid_amount,
        e.payment_deadline,
        e.accept_deadline,
        e.delivery_deadline,
        e.auto_release_at,
        e.created_at,
        e.updated_at,
        e.funded_at,
        e.accepted_at,
        e.delivered_at,
        e.closed_at
)

select
    d.outcome,
    d.status::text as current_status,
    null::bigint as transfer_id,
    '[]'::jsonb as rewards,
    -- Whom to notify and how to show the amounts, without another round trip.
    bu.telegram_id as buyer_telegram_id,
    su.telegram_id as seller_telegram_id,
    cur.decimals,
    moved.*
from decision as d
left join moved on true
left join users as bu on d.buyer_id = bu.id
left join users as su on d.seller_id = su.id
left join currencies as cur on d.currency = cur.code;

-- name: escrow_auto_release_batch(batch)
-- Auto-release job: up to `batch` delivered escrows past auto_release_at,
-- released as the 'system' actor exactly like a buyer's release (seller paid,
-- fee to the platform, referral rewards). SKIP LOCKED: concurrent runs take
-- disjoint escrows, and one being acted on by a party is left for the next
-- run. Returns the released escrows' ids.
-- Indexes: escrows_auto_release, escrow_transitions (pk), users (pk),
-- wallets_one_per_currency, referral_rewards (referred_id).
with
due as (
    select
        e.*,
        t.to_status
    from escrows as e
    inner join escrow_transitions as t
        on e.status = t.from_status and t.action = 'release' and t.actor = 'system'
    -- The status test is what the partial index escrows_auto_release covers.
    where e.status = 'delivered' and e.auto_release_at <= now()
    order by e.auto_release_at, e.id
    limit :batch
    for update of e skip locked
),

payees as (
    select
        due.seller_id as user_id,
        due.currency
    from due
    union
    select
        u.referrer_id,
        due.currency
    from due
    inner join users as u on u.id in (due.buyer_id, due.seller_id)
    where u.referrer_id is not null
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
        due.id,
        post_transfer(
            'escrow_release',
            jsonb_build_array(
                jsonb_build_object('kind', 'escrow_holding', 'escrow', due.id, 'amount', -(due.amount + due.buyer_fee)),
                jsonb_build_object('kind', 'wallet_available', 'wallet', sw.id, 'amount', due.amount - due.seller_fee),
                jsonb_build_object('kind', 'platform_fees', 'currency', due.currency, 'amount', due.fee)
            ),
            'escrow ' || due.ref || ' released automatically',
            p_escrow_id => due.id
        ) as transfer_id,
        pay_referral_rewards(due.id, due.fee) as rewards
    from due
    -- Every payee wallet is locked, in id order, before money moves.
    cross join (select count(*) as n from payee_wallets) as wallets_locked
    inner join wallets as sw on due.seller_id = sw.user_id and due.currency = sw.currency
),

moved as (
    update escrows as e
    set
        status = due.to_status,
        closed_at = now(),
        updated_at = now()
    from due
    inner join posted as p on due.id = p.id
    where e.id = due.id
    returning e.id
)

select id from moved
order by id;

-- name: escrow_test_transitions()
-- tests: the state machine as stored, to compare with its Python mirror.
select
    from_status,
    action,
    actor,
    to_status
from escrow_transitions;

-- name: escrow_test_make_due(escrow_id)!
-- tests: moves an escrow's auto-release time into the past.
update escrows
set auto_release_at = now() - interval '1 minute'
where id = :escrow_id;

-- name: escrow_test_expire(escrow_id)!
-- tests: an unpaid escrow whose payment window closed (no job here expires).
update escrows
set status = 'expired', closed_at = now()
where id = :escrow_id;

-- name: escrow_test_available(telegram_id, currency)$
-- tests: a user's available balance in one currency.
select w.available
from wallets as w
inner join users as u on w.user_id = u.id
where u.telegram_id = :telegram_id and w.currency = :currency;

-- name: escrow_test_platform_fees(currency)$
-- tests: what the platform's fee account holds in one currency.
select coalesce(sum(e.amount), 0) as total
from ledger_entries as e
inner join ledger_accounts as a on e.account_id = a.id
where a.kind = 'platform_fees' and a.currency = :currency;

-- name: escrow_test_holding(escrow_id)$
-- tests: what an escrow's holding account holds.
select coalesce(sum(e.amount), 0) as total
from ledger_entries as e
inner join ledger_accounts as a on e.account_id = a.id
where a.kind = 'escrow_holding' and a.escrow_id = :escrow_id;

-- name: escrow_test_state(escrow_id)^
-- tests: everything a refused movement must leave as it was.
select
    to_jsonb(e) as escrow,
    (select count(*) from ledger_transfers) as transfers,
    (select coalesce(jsonb_agg(w order by w.id), '[]') from wallets as w) as wallets,
    (select count(*) from idempotency_keys) as idempotency_keys,
    (select coalesce(jsonb_agg(d order by d.id), '[]') from disputes as d) as disputes,
    (select count(*) from dispute_messages) as dispute_messages,
    (select count(*) from ratings) as ratings,
    (select count(*) from referral_rewards) as referral_rewards
from escrows as e
where e.id = :escrow_id;

-- name: escrow_test_referral_rewards()
-- tests: every referral reward with the users' telegram ids.
select
    referrer.telegram_id as referrer_telegram_id,
    referred.telegram_id as referred_telegram_id,
    r.escrow_id,
    r.currency,
    r.amount,
    r.transfer_id,
    t.kind as transfer_kind
from referral_rewards as r
inner join users as referrer on r.referrer_id = referrer.id
inner join users as referred on r.referred_id = referred.id
left join ledger_transfers as t on r.transfer_id = t.id
order by r.id;

-- name: escrow_creation_context(buyer_telegram_id, handle_kind, handle)^
-- Create escrow screen (the flow's one lookup): the buyer with their wallets
-- (currency order); the seller named by a handle already normalised (kind
-- 'username', 'email' or 'phone'; value lowercase or E.164) with
-- seller_status 'found', 'not_found' (an invitation goes out) or 'self';
-- when found, the seller's card: display name, username, completed trades as
-- buyer or seller, and the rating summary (the object rating_summary
-- answers, built here to keep one round trip); the platform fee rate, the
-- fee-split options (the fee_split type's labels) and every currency's
-- escrow minimum, decimals and kind (crypto or fiat: how it can be paid),
-- in currency order. The buyer's blocked and onboarded flags, checked at the
-- flow's entry; the seller's telegram id, for the new escrow's notice.
-- No row for an unknown buyer.
-- Lists: wallets and currencies, one per currency; reviews, the 5 latest.
-- Indexes: users (telegram_id); users_username_lower, users_email_lower or
-- users_phone (only the branch of the handle's kind runs);
-- wallets_one_per_currency; escrows_buyer and escrows_seller (completed
-- trades); ratings_ratee; users (pk) for the reviewers.
with
buyer as (
    select
        id,
        username,
        first_name,
        is_blocked,
        onboarding = 'complete' as onboarding_complete
    from users
    where telegram_id = :buyer_telegram_id
),

-- Each branch is guarded by the kind, so one unique index lookup runs.
found as (
    select
        u.id,
        u.telegram_id,
        u.username,
        u.first_name
    from users as u
    where :handle_kind::text = 'username' and lower(u.username) = :handle::text
    union all
    select
        u.id,
        u.telegram_id,
        u.username,
        u.first_name
    from users as u
    where :handle_kind::text = 'email' and lower(u.email) = :handle::text
    union all
    select
        u.id,
        u.telegram_id,
        u.username,
        u.first_name
    from users as u
    where :handle_kind::text = 'phone' and u.phone = :handle::text
)

select
    buyer.id as buyer_id,
    coalesce(nullif(buyer.first_name, ''), buyer.username, '') as buyer_name,
    buyer.username as buyer_username,
    buyer.is_blocked as buyer_blocked,
    buyer.onboarding_complete as buyer_onboarded,
    coalesce(wallets.items, '[]') as buyer_wallets,
    case
        when found.id is null then 'not_found'
        when found.id = buyer.id then 'self'
        else 'found'
    end as seller_status,
    seller.id as seller_id,
    seller.telegram_id as seller_telegram_id,
    seller.display_name as seller_name,
    seller.username as seller_username,
    seller.completed_trades as seller_completed_trades,
    seller.rating as seller_rating,
    s.escrow_fee_rate as fee_rate,
    enum_range(null::fee_split)::text[] as fee_splits,
    currencies.items as currencies
from buyer
cross join platform_settings as s
left join found on true
left join lateral (
    select
        found.id,
        found.telegram_id,
        found.username,
        coalesce(nullif(found.first_name, ''), found.username, '') as display_name,
        (
            select count(*) from escrows as e
            where e.buyer_id = found.id and e.status = 'completed'
        )
        + (
            select count(*) from escrows as e
            where e.seller_id = found.id and e.status = 'completed'
        ) as completed_trades,
        -- The shape of rating_summary (sql/rating.sql), as one object.
        json_build_object(
            'average', r.average,
            'count', r.count,
            'distribution', r.distribution,
            'buyer_average', r.buyer_average,
            'buyer_count', r.buyer_count,
            'seller_average', r.seller_average,
            'seller_count', r.seller_count,
            'latest', coalesce(latest.items, '[]')
        ) as rating
    from (
        select
            round(avg(r.stars), 2) as average,
            count(*) as count,
            json_build_object(
                '1', count(*) filter (where r.stars = 1),
                '2', count(*) filter (where r.stars = 2),
                '3', count(*) filter (where r.stars = 3),
                '4', count(*) filter (where r.stars = 4),
                '5', count(*) filter (where r.stars = 5)
            ) as distribution,
            round(avg(r.stars) filter (where r.rater_role = 'seller'), 2) as buyer_average,
            count(*) filter (where r.rater_role = 'seller') as buyer_count,
            round(avg(r.stars) filter (where r.rater_role = 'buyer'), 2) as seller_average,
            count(*) filter (where r.rater_role = 'buyer') as seller_count
        from ratings as r
        where r.ratee_id = found.id
    ) as r
    cross join
        lateral (
            select
                json_agg(
                    json_build_object(
                        'stars', l.stars,
                        'comment', l.comment,
                        'rater_name', coalesce(nullif(u.first_name, ''), u.username, ''),
                        'created_at', l.created_at
                    )
                    order by l.created_at desc, l.id desc
                ) as items
            from (
                select
                    rr.id,
                    rr.rater_id,
                    rr.stars,
                    rr.comment,
                    rr.created_at
                from ratings as rr
                where rr.ratee_id = found.id
                order by rr.created_at desc, rr.id desc
                limit 5
            ) as l
            inner join users as u on l.rater_id = u.id
        ) as latest
    where found.id <> buyer.id
) as seller on true
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
                order by c.sort_order, c.code
            ) as items
        from wallets as w
        inner join currencies as c on w.currency = c.code
        where w.user_id = buyer.id
    ) as wallets
cross join
    lateral (
        select
            json_agg(
                json_build_object(
                    'code', c.code,
                    'kind', c.kind,
                    'decimals', c.decimals,
                    'escrow_min_amount', c.escrow_min_amount
                )
                order by c.sort_order, c.code
            ) as items
        from currencies as c
    ) as currencies;

-- name: escrow_view(escrow_id, viewer_telegram_id)^
-- Escrow screen: the escrow (amounts, fee split, status, payment details,
-- deadlines, timestamps); buyer and seller (id, display name, username; no
-- seller while an invited seller has no account, seller_handle says whom);
-- the viewer's role: buyer, seller, or admin for an admin who is neither;
-- the actions escrow_transitions allows that role in this status (each
-- action once); the live dispute if any, with its message count; the
-- currency's decimals, to show the amounts. No row for
-- an unknown escrow, an unknown viewer, or a viewer who is neither party nor
-- admin: a stranger learns nothing, not even that the escrow exists.
-- Indexes: escrows (pk), users (telegram_id), users (pk),
-- escrow_transitions (pk; a table of 22 rows), disputes_escrow (the escrow's
-- disputes; disputes_live_per_escrow allows one live at most),
-- dispute_messages_dispute (the count).
with
seen as (
    select
        e.*,
        case
            when v.id = e.buyer_id then 'buyer'
            when v.id = e.seller_id then 'seller'
            when v.is_admin then 'admin'
        end as viewer_role
    from escrows as e
    cross join users as v
    where e.id = :escrow_id and v.telegram_id = :viewer_telegram_id
)

select
    e.id,
    e.ref,
    e.buyer_id,
    e.seller_id,
    e.seller_handle,
    e.currency,
    e.amount,
    e.fee,
    e.total,
    e.fee_split::text as fee_split,
    e.buyer_fee,
    e.seller_fee,
    e.description,
    e.status::text as status,
    e.payment_method::text as payment_method,
    e.payment_reference,
    e.payment_address,
    e.paid_amount,
    e.payment_deadline,
    e.accept_deadline,
    e.delivery_deadline,
    e.auto_release_at,
    e.created_at,
    e.updated_at,
    e.funded_at,
    e.accepted_at,
    e.delivered_at,
    e.closed_at,
    e.viewer_role,
    cur.decimals,
    coalesce(nullif(b.first_name, ''), b.username, '') as buyer_name,
    b.username as buyer_username,
    coalesce(nullif(s.first_name, ''), s.username, '') as seller_name,
    s.username as seller_username,
    coalesce(actions.items, '{}') as allowed_actions,
    d.id as dispute_id,
    d.status as dispute_status,
    d.reason as dispute_reason,
    d.opened_by_id as dispute_opened_by_id,
    d.opened_by_role as dispute_opened_by_role,
    d.created_at as dispute_created_at,
    d.message_count as dispute_message_count
from seen as e
inner join currencies as cur on e.currency = cur.code
inner join users as b on e.buyer_id = b.id
left join users as s on e.seller_id = s.id
cross join
    lateral (
        -- Resolving a dispute has two outcomes: each action once.
        select array_agg(distinct t.action order by t.action) as items
        from escrow_transitions as t
        where t.from_status = e.status and t.actor = e.viewer_role
    ) as actions
left join lateral (
    select
        dd.id,
        dd.status::text as status,
        dd.reason,
        dd.opened_by_id,
        case dd.opened_by_id
            when e.buyer_id then 'buyer'
            when e.seller_id then 'seller'
        end as opened_by_role,
        dd.created_at,
        (
            select count(*) from dispute_messages as m
            where m.dispute_id = dd.id
        ) as message_count
    from disputes as dd
    where dd.escrow_id = e.id and dd.status in ('open', 'in_review')
    order by dd.created_at desc
    limit 1
) as d on true
where e.viewer_role is not null;

-- name: my_escrows(telegram_id, statuses, before_at, before_id, page_size)^
-- My escrows screen: the user's escrows as buyer or as seller whose status
-- is in `statuses`, newest first by (created_at, id), keyset-paged: rows
-- strictly before the cursor (before_at, before_id) when one is given;
-- page_size + 1 rows at most (the extra one says a next page exists). Each
-- with the user's role and the counterparty's display name, or the invited
-- seller's handle, and the currency's decimals. The user's blocked and
-- onboarded flags, checked at the screen's entry. No row for an unknown user.
-- Indexes: users (telegram_id); escrows_buyer and escrows_seller, each read
-- in index order and cut at page_size + 1 before the two are merged (an OR
-- across buyer_id and seller_id would defeat both); users (pk).
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
        p.status,
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
                e.status,
                e.created_at
            from escrows as e
            where
                e.buyer_id = (
                    select u.id from users as u
                    where u.telegram_id = :telegram_id
                )
                and e.status = any(:statuses::text[]::escrow_status[])
                -- No cursor: a bound past every row. One row comparison either
                -- way, so it stays an index condition in a generic plan too.
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
                e.status,
                e.created_at
            from escrows as e
            where
                e.seller_id = (
                    select u.id from users as u
                    where u.telegram_id = :telegram_id
                )
                -- Never both parties (escrows_two_parties); kept so no row can double.
                and e.buyer_id <> e.seller_id
                and e.status = any(:statuses::text[]::escrow_status[])
                -- No cursor: a bound past every row. One row comparison either
                -- way, so it stays an index condition in a generic plan too.
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
    me.onboarding = 'complete' as onboarding_complete,
    coalesce(items.items, '[]') as items
from users as me
cross join
    lateral (
        select
            json_agg(
                json_build_object(
                    'id', p.id,
                    'ref', p.ref,
                    'role', p.my_role,
                    'counterparty_name', coalesce(nullif(c.first_name, ''), c.username, p.seller_handle),
                    'counterparty_invited', c.id is null,
                    'currency', p.currency,
                    'amount', p.amount,
                    'decimals', cur.decimals,
                    'status', p.status::text,
                    'created_at', p.created_at
                )
                order by p.created_at desc, p.id desc
            ) as items
        from page as p
        inner join currencies as cur on p.currency = cur.code
        left join users as c on p.counterparty_id = c.id
    ) as items
where me.telegram_id = :telegram_id;

-- name: escrow_test_set_created_at(escrow_ids, at)!
-- tests: gives several escrows one creation instant, so that keyset pages
-- meet equal timestamps.
update escrows
set created_at = :at::timestamptz
where id = any(:escrow_ids::bigint[]);

-- name: escrow_expire_unpaid_batch(batch)
-- Payment-deadline job (bot/jobs.py): up to `batch` escrows still awaiting
-- payment past their payment_deadline take the 'expire' action as the
-- 'system' actor, as escrow_transitions allows. Nothing was paid into them
-- (only funding leaves awaiting_payment), so no money moves; a payment that
-- comes later lands in the buyer's wallet. SKIP LOCKED: concurrent runs take
-- disjoint escrows, and one being paid or cancelled right now is left to
-- that; the update keeps the status guard. Returns the expired escrows' ids.
-- Indexes: escrows_payment_deadline, escrow_transitions (pk).
with
due as (
    select
        e.id,
        e.status as from_status,
        t.to_status
    from escrows as e
    inner join escrow_transitions as t
        on e.status = t.from_status and t.action = 'expire' and t.actor = 'system'
    -- The status test is what the partial index escrows_payment_deadline covers.
    where e.status = 'awaiting_payment' and e.payment_deadline < now()
    order by e.payment_deadline, e.id
    limit :batch
    for update of e skip locked
),

expired as (
    update escrows as e
    set
        status = due.to_status,
        closed_at = now(),
        updated_at = now()
    from due
    where e.id = due.id and e.status = due.from_status
    returning e.id
)

select id from expired
order by id;

-- name: escrow_test_lapse_payment_deadline(escrow_id)!
-- tests: an unpaid escrow's payment window closes now, as the clock would.
-- Index: escrows (pk).
update escrows
set payment_deadline = now() - interval '1 second'
where id = :escrow_id;

-- name: escrow_test_transfers_by_escrow(escrow_ids)
-- tests: how many ledger transfers of each kind each of these escrows has.
-- Index: none needed at test sizes (ledger_transfers is scanned).
select
    t.escrow_id,
    t.kind::text as kind,
    count(*) as transfers
from ledger_transfers as t
where t.escrow_id = any(:escrow_ids::bigint[])
group by t.escrow_id, t.kind
order by t.escrow_id, t.kind;
