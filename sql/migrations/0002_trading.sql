-- What users hold and do: wallets, rates and exchange orders, cashouts,
-- escrows, disputes, ratings and support tickets.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create type cashout_status as enum (
    'pending', 'approved', 'processing', 'completed', 'failed', 'cancelled'
);

create type exchange_status as enum (
    'quoted', 'awaiting_payment', 'paid', 'underpaid', 'completed', 'expired', 'cancelled', 'failed'
);

create type escrow_status as enum (
    'awaiting_payment', 'funded', 'accepted', 'delivered', 'disputed',
    'completed', 'refunded', 'cancelled', 'declined', 'expired'
);

create type fee_split as enum ('buyer', 'seller', 'split');

create type payment_method as enum ('wallet', 'crypto', 'bank_transfer');

create type dispute_status as enum ('open', 'in_review', 'resolved', 'cancelled');

create type dispute_resolution as enum ('release', 'refund', 'split');

create type ticket_status as enum ('open', 'answered', 'closed');

create type party_role as enum ('buyer', 'seller');

create type destination_kind as enum ('wallet', 'crypto_address', 'bank_account');

-- A user's balance in one currency. available + held is what we owe them.
create table wallets (
    id bigint generated always as identity primary key,
    user_id bigint not null references users (id),
    currency text not null references currencies (code),
    available numeric(38, 18) not null default 0,
    held numeric(38, 18) not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint wallets_one_per_currency unique (user_id, currency),
    constraint wallets_available_non_negative check (available >= 0),
    constraint wallets_held_non_negative check (held >= 0)
);

-- Rates as fetched: crypto -> USD and USD -> NGN, newest wins.
create table exchange_rates (
    id bigint generated always as identity primary key,
    base text not null,
    quote text not null,
    rate numeric(38, 18) not null,
    source text not null,
    fetched_at timestamptz not null default now(),
    constraint exchange_rates_positive check (rate > 0),
    constraint exchange_rates_pair check (base <> quote)
);

-- Every screen that values money: the newest rate of a pair.
create index exchange_rates_latest on exchange_rates (base, quote, fetched_at desc);

-- The directions users may exchange, with markup and limits (in from_currency).
create table exchange_pairs (
    from_currency text not null references currencies (code),
    to_currency text not null references currencies (code),
    markup_rate numeric(10, 6) not null,
    min_amount numeric(38, 18) not null,
    max_amount numeric(38, 18) not null,
    enabled boolean not null default true,
    primary key (from_currency, to_currency),
    constraint exchange_pairs_distinct check (from_currency <> to_currency),
    constraint exchange_pairs_markup check (markup_rate between 0 and 1),
    constraint exchange_pairs_range check (0 < min_amount and min_amount <= max_amount)
);

create table exchange_orders (
    id bigint generated always as identity primary key,
    user_id bigint not null references users (id),
    from_currency text not null,
    to_currency text not null,
    from_amount numeric(38, 18) not null,
    to_amount numeric(38, 18) not null,
    market_rate numeric(38, 18) not null,
    markup_rate numeric(10, 6) not null,
    rate numeric(38, 18) not null,
    status exchange_status not null default 'quoted',
    rate_locked_until timestamptz not null,
    destination destination_kind not null default 'wallet',
    saved_address_id bigint references saved_addresses (id),
    saved_bank_account_id bigint references saved_bank_accounts (id),
    payment_reference text unique,
    received_amount numeric(38, 18),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    completed_at timestamptz,
    foreign key (from_currency, to_currency) references exchange_pairs (from_currency, to_currency),
    constraint exchange_orders_amounts check (from_amount > 0 and to_amount > 0 and rate > 0),
    constraint exchange_orders_received check (received_amount >= 0)
);

-- Exchange history: a user's orders newest first, keyset on (created_at, id).
create index exchange_orders_user on exchange_orders (user_id, created_at desc, id desc);
-- Exchange screen: a user's open orders.
create index exchange_orders_open on exchange_orders (user_id)
where status in ('quoted', 'awaiting_payment', 'paid', 'underpaid');
-- Jobs: locks that ran out.
create index exchange_orders_lock_expiry on exchange_orders (rate_locked_until)
where status = 'quoted';

create table cashouts (
    id bigint generated always as identity primary key,
    user_id bigint not null references users (id),
    wallet_id bigint not null references wallets (id),
    currency text not null references currencies (code),
    amount numeric(38, 18) not null,
    fee numeric(38, 18) not null,
    destination destination_kind not null,
    network text,
    address text,
    bank_code text references banks (code),
    account_number text,
    account_name text,
    saved_address_id bigint references saved_addresses (id),
    saved_bank_account_id bigint references saved_bank_accounts (id),
    status cashout_status not null default 'pending',
    provider text,
    provider_reference text,
    idempotency_key text not null,
    failure_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    approved_at timestamptz,
    completed_at timestamptz,
    constraint cashouts_idempotency unique (user_id, idempotency_key),
    constraint cashouts_amount check (amount > 0 and fee >= 0),
    constraint cashouts_destination check (
        (destination = 'crypto_address' and network is not null and address is not null)
        or (
            destination = 'bank_account'
            and bank_code is not null
            and account_number ~ '^[0-9]{10}$'
            and account_name is not null
        )
    )
);

-- Wallet and menu screens: a user's cashouts in flight.
create index cashouts_in_flight on cashouts (user_id, created_at desc)
where status in ('pending', 'approved', 'processing');
-- Admin approval queue and the payout worker.
create index cashouts_queue on cashouts (status, created_at, id)
where status in ('pending', 'approved', 'processing');

create table escrows (
    id bigint generated always as identity primary key,
    ref text not null unique,
    buyer_id bigint not null references users (id),
    seller_id bigint references users (id),
    -- What the buyer typed to name the seller; kept for an invited seller.
    seller_handle text not null,
    currency text not null references currencies (code),
    amount numeric(38, 18) not null,
    fee numeric(38, 18) not null,
    total numeric(38, 18) not null,
    fee_split fee_split not null,
    buyer_fee numeric(38, 18) not null,
    seller_fee numeric(38, 18) not null,
    description text not null,
    status escrow_status not null default 'awaiting_payment',
    payment_method payment_method,
    payment_reference text unique,
    payment_address text,
    paid_amount numeric(38, 18) not null default 0,
    payment_deadline timestamptz not null,
    accept_deadline timestamptz,
    delivery_deadline timestamptz,
    auto_release_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    funded_at timestamptz,
    accepted_at timestamptz,
    delivered_at timestamptz,
    closed_at timestamptz,
    constraint escrows_amount check (amount > 0 and fee >= 0),
    constraint escrows_total check (total = amount + fee),
    constraint escrows_fee_parts check (
        buyer_fee >= 0 and seller_fee >= 0 and buyer_fee + seller_fee = fee
    ),
    constraint escrows_two_parties check (seller_id <> buyer_id),
    constraint escrows_paid check (paid_amount >= 0),
    constraint escrows_description check (char_length(description) between 1 and 1000)
);

-- My escrows as buyer and as seller, keyset on (created_at, id).
create index escrows_buyer on escrows (buyer_id, created_at desc, id desc);
create index escrows_seller on escrows (seller_id, created_at desc, id desc)
where seller_id is not null;
-- Registration and e-mail verification: escrows waiting for an invited seller
-- who had no account yet. Small: a row leaves as soon as its seller is linked.
create index escrows_invited on escrows (seller_handle)
where seller_id is null;
-- Auto-release job: delivered escrows past their release time.
create index escrows_auto_release on escrows (auto_release_at)
where status = 'delivered';
-- Expiry job: unpaid escrows past their payment deadline.
create index escrows_payment_deadline on escrows (payment_deadline)
where status = 'awaiting_payment';

create table disputes (
    id bigint generated always as identity primary key,
    escrow_id bigint not null references escrows (id),
    opened_by_id bigint not null references users (id),
    reason text not null,
    status dispute_status not null default 'open',
    admin_id bigint references users (id),
    resolution dispute_resolution,
    buyer_share numeric(38, 18),
    resolution_note text,
    created_at timestamptz not null default now(),
    last_message_at timestamptz,
    resolved_at timestamptz,
    constraint disputes_reason check (char_length(reason) between 1 and 1000),
    constraint disputes_resolved check (
        (status = 'resolved') = (resolution is not null and resolved_at is not null)
    ),
    constraint disputes_buyer_share check (buyer_share >= 0)
);

-- At most one live dispute per escrow; escrow view finds it by escrow.
create unique index disputes_live_per_escrow on disputes (escrow_id)
where status in ('open', 'in_review');
create index disputes_escrow on disputes (escrow_id, created_at desc);
-- Admin dispute queue, oldest first.
create index disputes_queue on disputes (created_at, id)
where status in ('open', 'in_review');

create table dispute_messages (
    id bigint generated always as identity primary key,
    dispute_id bigint not null references disputes (id),
    sender_id bigint not null references users (id),
    body text not null,
    created_at timestamptz not null default now(),
    constraint dispute_messages_body check (char_length(body) between 1 and 4000)
);

-- Dispute chat: the latest messages of one dispute.
create index dispute_messages_dispute on dispute_messages (dispute_id, id desc);

create table ratings (
    id bigint generated always as identity primary key,
    escrow_id bigint not null references escrows (id),
    rater_id bigint not null references users (id),
    ratee_id bigint not null references users (id),
    rater_role party_role not null,
    stars integer not null,
    comment text,
    created_at timestamptz not null default now(),
    constraint ratings_once_per_party unique (escrow_id, rater_id),
    constraint ratings_stars check (stars between 1 and 5),
    constraint ratings_not_self check (rater_id <> ratee_id),
    constraint ratings_comment check (char_length(comment) <= 500)
);

-- Rating summary: everything said about one user, newest first.
create index ratings_ratee on ratings (ratee_id, created_at desc, id desc);

create table support_tickets (
    id bigint generated always as identity primary key,
    user_id bigint not null references users (id),
    subject text not null,
    status ticket_status not null default 'open',
    admin_id bigint references users (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    closed_at timestamptz,
    constraint support_tickets_subject check (char_length(subject) between 1 and 200)
);

-- Support screen: a user has at most one ticket that is not closed.
create unique index support_tickets_live on support_tickets (user_id)
where status <> 'closed';
create index support_tickets_user on support_tickets (user_id, created_at desc);

create table support_messages (
    id bigint generated always as identity primary key,
    ticket_id bigint not null references support_tickets (id),
    sender_id bigint not null references users (id),
    from_admin boolean not null,
    body text not null,
    created_at timestamptz not null default now(),
    read_at timestamptz,
    constraint support_messages_body check (char_length(body) between 1 and 4000)
);

-- Support screen: the latest messages of one ticket.
create index support_messages_ticket on support_messages (ticket_id, id desc);
-- Menu and support screens: admin replies the user has not read.
create index support_messages_unread on support_messages (ticket_id)
where from_admin and read_at is null;

insert into exchange_pairs (from_currency, to_currency, markup_rate, min_amount, max_amount) values
('BTC', 'NGN', 0.015, 0.0002, 2),
('ETH', 'NGN', 0.015, 0.005, 50),
('LTC', 'NGN', 0.015, 0.05, 500),
('USDT', 'NGN', 0.01, 5, 20000),
('NGN', 'BTC', 0.015, 5000, 20000000),
('NGN', 'ETH', 0.015, 5000, 20000000),
('NGN', 'LTC', 0.015, 5000, 20000000),
('NGN', 'USDT', 0.01, 5000, 20000000);
