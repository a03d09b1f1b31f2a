-- What the money movements stand on: wallet top-up orders, the escrow
-- state machine as data, and the one function that posts to the ledger.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create type deposit_status as enum ('open', 'paid', 'expired');

-- A wallet top-up the user asked for: the reference a provider echoes back.
create table deposit_orders (
    id bigint generated always as identity primary key,
    ref text not null unique,
    user_id bigint not null references users (id),
    currency text not null references currencies (code),
    provider payment_provider not null,
    address text,
    status deposit_status not null default 'open',
    received_amount numeric(38, 18) not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint deposit_orders_received check (received_amount >= 0)
);

create index deposit_orders_user on deposit_orders (user_id, created_at desc);

-- Who may do what to an escrow in which status, and where it leads. The
-- escrow movements read this table; the trigger below refuses any status
-- change it does not list; bot/data/escrow.py mirrors it for the screens.
create table escrow_transitions (
    from_status escrow_status not null,
    action text not null,
    actor text not null,
    to_status escrow_status not null,
    primary key (from_status, action, actor, to_status),
    constraint escrow_transitions_actor check (actor in ('buyer', 'seller', 'admin', 'system'))
);

insert into escrow_transitions (from_status, action, actor, to_status) values
('awaiting_payment', 'pay', 'buyer', 'funded'),
('awaiting_payment', 'cancel', 'buyer', 'cancelled'),
('awaiting_payment', 'expire', 'system', 'expired'),
('funded', 'accept', 'seller', 'accepted'),
('funded', 'decline', 'seller', 'declined'),
('funded', 'refund', 'seller', 'refunded'),
('funded', 'refund', 'admin', 'refunded'),
('funded', 'refund', 'system', 'refunded'),
('accepted', 'deliver', 'seller', 'delivered'),
('accepted', 'release', 'buyer', 'completed'),
('accepted', 'refund', 'seller', 'refunded'),
('accepted', 'refund', 'admin', 'refunded'),
('accepted', 'dispute', 'buyer', 'disputed'),
('accepted', 'dispute', 'seller', 'disputed'),
('delivered', 'release', 'buyer', 'completed'),
('delivered', 'release', 'system', 'completed'),
('delivered', 'refund', 'seller', 'refunded'),
('delivered', 'refund', 'admin', 'refunded'),
('delivered', 'dispute', 'buyer', 'disputed'),
('delivered', 'dispute', 'seller', 'disputed'),
('disputed', 'resolve', 'admin', 'completed'),
('disputed', 'resolve', 'admin', 'refunded');

create function escrows_guard_status() returns trigger
language plpgsql as $$
begin
    if not exists (
        select 1 from escrow_transitions as t
        where t.from_status = old.status and t.to_status = new.status
    ) then
        raise exception 'escrow % cannot go from % to %', old.id, old.status, new.status
            using errcode = 'check_violation';
    end if;
    return new;
end;
$$;

create trigger escrows_guard_status
before update of status on escrows
for each row
when (old.status is distinct from new.status)
execute function escrows_guard_status();

-- The ledger account for (kind, currency, owner), opened on first use.
create function ledger_account(
    p_kind account_kind,
    p_currency text,
    p_wallet_id bigint default null,
    p_escrow_id bigint default null,
    p_provider payment_provider default null
) returns bigint
language plpgsql as $$
declare
    v_id bigint;
begin
    select a.id into v_id
    from ledger_accounts as a
    where a.kind = p_kind
        and a.currency = p_currency
        and a.wallet_id is not distinct from p_wallet_id
        and a.escrow_id is not distinct from p_escrow_id
        and a.provider is not distinct from p_provider;
    if v_id is null then
        insert into ledger_accounts (kind, currency, wallet_id, escrow_id, provider)
        values (p_kind, p_currency, p_wallet_id, p_escrow_id, p_provider)
        on conflict do nothing
        returning id into v_id;
    end if;
    if v_id is null then  -- a concurrent first use won the insert
        select a.id into v_id
        from ledger_accounts as a
        where a.kind = p_kind
            and a.currency = p_currency
            and a.wallet_id is not distinct from p_wallet_id
            and a.escrow_id is not distinct from p_escrow_id
            and a.provider is not distinct from p_provider;
    end if;
    return v_id;
end;
$$;

-- Every movement posts through here: one transfer, its entries, and the
-- wallet balances they change, refusing a transfer that does not sum to zero
-- per currency. Entries are a JSON array of objects:
--   {"kind": "wallet_available" | "wallet_held", "wallet": id, "amount": n}
--   {"kind": "escrow_holding", "escrow": id, "amount": n}
--   {"kind": "platform_fees" | "platform_treasury", "currency": c, "amount": n}
--   {"kind": "provider_clearing", "provider": p, "currency": c, "amount": n}
-- Zero amounts are skipped. A wallet driven below zero fails the wallets
-- CHECK constraints and with it the whole movement.
create function post_transfer(
    p_kind transfer_kind,
    p_entries jsonb,
    p_memo text default null,
    p_escrow_id bigint default null,
    p_cashout_id bigint default null,
    p_exchange_order_id bigint default null
) returns bigint
language plpgsql as $$
declare
    v_transfer bigint;
    v_unbalanced text;
begin
    insert into ledger_transfers (kind, memo, escrow_id, cashout_id, exchange_order_id)
    values (p_kind, p_memo, p_escrow_id, p_cashout_id, p_exchange_order_id)
    returning id into v_transfer;

    insert into ledger_entries (transfer_id, account_id, user_id, currency, amount)
    select
        v_transfer,
        ledger_account(
            (e ->> 'kind')::account_kind,
            coalesce(w.currency, es.currency, e ->> 'currency'),
            w.id,
            es.id,
            (e ->> 'provider')::payment_provider
        ),
        w.user_id,
        coalesce(w.currency, es.currency, e ->> 'currency'),
        (e ->> 'amount')::numeric
    from jsonb_array_elements(p_entries) as e
    left join wallets as w on w.id = (e ->> 'wallet')::bigint
    left join escrows as es on es.id = (e ->> 'escrow')::bigint
    where (e ->> 'amount')::numeric <> 0;

    select string_agg(s.currency || ' off by ' || s.total, ', ') into v_unbalanced
    from (
        select le.currency, sum(le.amount) as total
        from ledger_entries as le
        where le.transfer_id = v_transfer
        group by le.currency
        having sum(le.amount) <> 0
    ) as s;
    if v_unbalanced is not null then
        raise exception 'transfer % does not balance: %', v_transfer, v_unbalanced
            using errcode = 'check_violation';
    end if;

    update wallets as w
    set
        available = w.available + d.available,
        held = w.held + d.held,
        updated_at = now()
    from (
        select
            a.wallet_id,
            coalesce(sum(le.amount) filter (where a.kind = 'wallet_available'), 0) as available,
            coalesce(sum(le.amount) filter (where a.kind = 'wallet_held'), 0) as held
        from ledger_entries as le
        inner join ledger_accounts as a on le.account_id = a.id
        where le.transfer_id = v_transfer and a.wallet_id is not null
        group by a.wallet_id
    ) as d
    where w.id = d.wallet_id;

    return v_transfer;
end;
$$;
