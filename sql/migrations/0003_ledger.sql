-- The double-entry ledger and what keeps money moving exactly once:
-- accounts, transfers, entries, idempotency keys, provider webhook events,
-- referral rewards and the dashboard's counters.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create type account_kind as enum (
    'wallet_available', 'wallet_held', 'escrow_holding', 'platform_fees', 'platform_treasury',
    'provider_clearing'
);

create type payment_provider as enum ('blockbee', 'dynopay', 'fincra');

create type transfer_kind as enum (
    'deposit', 'cashout_hold', 'cashout_settle', 'cashout_release',
    'escrow_fund', 'escrow_release', 'escrow_refund', 'escrow_split',
    'exchange', 'referral_reward', 'adjustment'
);

create type transfer_status as enum ('posted', 'flagged', 'reviewed');

-- One account per (kind, owner, currency). Wallet accounts mirror a wallet's
-- available and held columns; the others are the platform's side.
create table ledger_accounts (
    id bigint generated always as identity primary key,
    kind account_kind not null,
    currency text not null references currencies (code),
    wallet_id bigint references wallets (id),
    escrow_id bigint references escrows (id),
    provider payment_provider,
    created_at timestamptz not null default now(),
    constraint ledger_accounts_one unique nulls not distinct (
        kind, currency, wallet_id, escrow_id, provider
    ),
    constraint ledger_accounts_owner check (
        case kind
            when 'wallet_available' then wallet_id is not null and escrow_id is null and provider is null
            when 'wallet_held' then wallet_id is not null and escrow_id is null and provider is null
            when 'escrow_holding' then escrow_id is not null and wallet_id is null and provider is null
            when 'platform_fees' then wallet_id is null and escrow_id is null and provider is null
            when 'platform_treasury' then wallet_id is null and escrow_id is null and provider is null
            when 'provider_clearing' then provider is not null and wallet_id is null and escrow_id is null
        end
    )
);

-- Reconciliation: a wallet's two accounts.
create index ledger_accounts_wallet on ledger_accounts (wallet_id) where wallet_id is not null;

-- One movement of money; its entries sum to zero per currency.
create table ledger_transfers (
    id bigint generated always as identity primary key,
    kind transfer_kind not null,
    status transfer_status not null default 'posted',
    memo text,
    escrow_id bigint references escrows (id),
    cashout_id bigint references cashouts (id),
    exchange_order_id bigint references exchange_orders (id),
    created_at timestamptz not null default now()
);

-- Admin transaction review: newest first, optionally by status.
create index ledger_transfers_created on ledger_transfers (created_at desc, id desc);
create index ledger_transfers_status on ledger_transfers (status, created_at desc, id desc);

create table ledger_entries (
    id bigint generated always as identity primary key,
    transfer_id bigint not null references ledger_transfers (id),
    account_id bigint not null references ledger_accounts (id),
    -- The wallet owner, copied so the history screen reads one index.
    user_id bigint references users (id),
    currency text not null references currencies (code),
    amount numeric(38, 18) not null,
    created_at timestamptz not null default now(),
    constraint ledger_entries_non_zero check (amount <> 0)
);

create index ledger_entries_transfer on ledger_entries (transfer_id);
-- Reconciliation: the sum of one account.
create index ledger_entries_account on ledger_entries (account_id);
-- History screen: a user's entries newest first, keyset on (created_at, id).
create index ledger_entries_user on ledger_entries (user_id, created_at desc, id desc)
where user_id is not null;

-- A user's request claimed once: a cashout, an escrow payment.
create table idempotency_keys (
    user_id bigint not null references users (id),
    scope text not null,
    key text not null,
    request_hash text not null,
    result jsonb,
    created_at timestamptz not null default now(),
    primary key (user_id, scope, key),
    constraint idempotency_keys_key check (char_length(key) between 1 and 128)
);

-- Every provider event, claimed once on (provider, event_id).
create table webhook_events (
    id bigint generated always as identity primary key,
    provider payment_provider not null,
    event_id text not null,
    event_type text not null,
    order_ref text,
    payload jsonb not null,
    received_at timestamptz not null default now(),
    processed_at timestamptz,
    transfer_id bigint references ledger_transfers (id),
    constraint webhook_events_once unique (provider, event_id)
);

create index webhook_events_order_ref on webhook_events (order_ref) where order_ref is not null;

-- Paid once per referred user, on their first completed escrow.
create table referral_rewards (
    id bigint generated always as identity primary key,
    referrer_id bigint not null references users (id),
    referred_id bigint not null unique references users (id),
    escrow_id bigint not null references escrows (id),
    currency text not null references currencies (code),
    amount numeric(38, 18) not null,
    transfer_id bigint references ledger_transfers (id),
    created_at timestamptz not null default now(),
    constraint referral_rewards_amount check (amount > 0)
);

-- Referral screen: rewards a user earned.
create index referral_rewards_referrer on referral_rewards (referrer_id, created_at desc);

-- Admin dashboard numbers, kept by the movements in their own transaction.
-- A hot metric is spread over shards; the dashboard sums the shards.
create table dashboard_counters (
    metric text not null,
    currency text not null default '',
    shard integer not null default 0,
    value numeric(38, 18) not null default 0,
    primary key (metric, currency, shard),
    constraint dashboard_counters_shard check (shard between 0 and 15)
);

-- Every wallet gets its two ledger accounts the moment it exists, so no
-- movement has to create them on the way.
create function wallets_open_accounts() returns trigger
language plpgsql as $$
begin
    insert into ledger_accounts (kind, currency, wallet_id)
    values ('wallet_available', new.currency, new.id),
           ('wallet_held', new.currency, new.id);
    return new;
end;
$$;

create trigger wallets_open_accounts
after insert on wallets
for each row execute function wallets_open_accounts();

-- The platform's own accounts per currency: fees, the treasury that takes the
-- other side of exchanges, and each provider's clearing.
insert into ledger_accounts (kind, currency)
select
    k.kind,
    c.code
from currencies as c
cross join (values ('platform_fees'::account_kind), ('platform_treasury'::account_kind)) as k (kind);

insert into ledger_accounts (kind, currency, provider)
select
    'provider_clearing'::account_kind,
    c.code,
    p.provider
from currencies as c
cross join unnest(enum_range(null::payment_provider)) as p (provider);
