-- Webhook: what a provider's payment event is about, locked for the transaction handling it.

-- name: lock_order_context(order_ref)^
-- Payment webhooks, inside the caller's transaction: the order a provider's
-- reference names (a wallet top-up by deposit_orders.ref, an escrow or an
-- exchange order by payment_reference; the prefixes DEP-, ESC- and EXC-
-- keep them apart), its status, currency and the amount it expects (escrow:
-- amount + buyer_fee, exchange: from_amount, top-up: none), the paying user
-- (an escrow's buyer) and that user's wallet in the order's currency. The
-- order row is locked FOR UPDATE, then the wallet row (the escrow-before-
-- wallets lock order of the movements), until the caller's transaction ends.
-- No row for an unknown reference.
-- Indexes: deposit_orders (ref), escrows (payment_reference) and
-- exchange_orders (payment_reference) unique, users pkey,
-- wallets_one_per_currency.
with
deposit_order as (
    select
        'deposit' as kind,
        d.id,
        d.status::text as status,
        d.currency,
        null::numeric as expected_amount,
        d.user_id
    from deposit_orders as d
    where d.ref = :order_ref
    for update
),

escrow_order as (
    select
        'escrow' as kind,
        e.id,
        e.status::text as status,
        e.currency,
        e.amount + e.buyer_fee as expected_amount,
        e.buyer_id as user_id
    from escrows as e
    where e.payment_reference = :order_ref
    for update
),

exchange_order as (
    select
        'exchange' as kind,
        x.id,
        x.status::text as status,
        x.from_currency as currency,
        x.from_amount as expected_amount,
        x.user_id
    from exchange_orders as x
    where x.payment_reference = :order_ref
    for update
),

target as (
    select * from deposit_order
    union all
    select * from escrow_order
    union all
    select * from exchange_order
),

-- Taken after the order's lock: the wallet is reached through the locked order.
payer_wallet as (
    select
        w.id,
        w.user_id,
        w.currency,
        w.available,
        w.held
    from wallets as w
    inner join target on w.user_id = target.user_id and w.currency = target.currency
    for update of w
)

select
    target.kind,
    target.id,
    target.status,
    target.currency,
    target.expected_amount,
    target.user_id,
    u.telegram_id,
    payer_wallet.id as wallet_id,
    payer_wallet.available,
    payer_wallet.held
from target
inner join users as u on target.user_id = u.id
left join payer_wallet on target.user_id = payer_wallet.user_id;

-- name: health_check()$
-- GET /healthz: the database answers. No table read.
select 1 as ok;

-- name: webhook_test_event(provider, event_id)^
-- tests: one provider event as recorded, and whether it moved money.
-- Index: webhook_events_once.
select
    event_type,
    order_ref,
    payload,
    processed_at is not null as processed,
    transfer_id
from webhook_events
where provider = :provider::text::payment_provider and event_id = :event_id;
