-- Reference data and people: currencies with their limits, networks, banks,
-- platform settings, users, e-mail verifications and saved destinations.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create type onboarding_step as enum (
    'started', 'awaiting_email', 'awaiting_otp', 'awaiting_terms', 'complete'
);

-- Every currency a wallet can hold, with its precision and cashout rules.
create table currencies (
    code text primary key,
    kind text not null,
    decimals integer not null,
    cashout_min numeric(38, 18) not null,
    cashout_max numeric(38, 18) not null,
    cashout_fee_flat numeric(38, 18) not null default 0,
    cashout_fee_rate numeric(10, 6) not null default 0,
    escrow_min_amount numeric(38, 18) not null,
    sort_order integer not null default 0,
    constraint currencies_kind check (kind in ('crypto', 'fiat')),
    constraint currencies_decimals check (decimals between 0 and 18),
    constraint currencies_cashout_range check (0 < cashout_min and cashout_min <= cashout_max),
    constraint currencies_fees check (cashout_fee_flat >= 0 and cashout_fee_rate between 0 and 1),
    constraint currencies_escrow_min check (escrow_min_amount > 0)
);

-- Crypto networks a currency can be sent on (USDT travels on three).
create table networks (
    currency text not null references currencies (code),
    network text not null,
    label text not null,
    primary key (currency, network)
);

-- Nigerian banks by their NIP code, for saved bank accounts.
create table banks (
    code text primary key,
    name text not null,
    constraint banks_code check (code ~ '^[0-9]{3,6}$')
);

-- One row of platform-wide knobs.
create table platform_settings (
    id boolean primary key default true,
    escrow_fee_rate numeric(10, 6) not null,
    rate_lock_seconds integer not null,
    rate_max_age_seconds integer not null,
    payment_window_hours integer not null,
    delivery_window_hours integer not null,
    auto_release_hours integer not null,
    -- Share of an escrow's fee paid to the referrer of a user's first completed trade.
    referral_reward_rate numeric(10, 6) not null,
    otp_ttl_seconds integer not null,
    otp_attempts integer not null,
    constraint platform_settings_single_row check (id),
    constraint platform_settings_fee check (escrow_fee_rate between 0 and 1),
    constraint platform_settings_referral check (referral_reward_rate between 0 and 1),
    constraint platform_settings_otp check (otp_ttl_seconds > 0 and otp_attempts > 0),
    constraint platform_settings_windows check (
        rate_lock_seconds > 0
        and rate_max_age_seconds > 0
        and payment_window_hours > 0
        and delivery_window_hours > 0
        and auto_release_hours > 0
    )
);

create table users (
    id bigint generated always as identity primary key,
    telegram_id bigint not null unique,
    username text,
    first_name text not null default '',
    last_name text,
    email text,
    email_verified_at timestamptz,
    phone text,
    phone_verified_at timestamptz,
    referral_code text not null
    default upper(substr(md5(random()::text || clock_timestamp()::text), 1, 8)),
    referrer_id bigint references users (id),
    is_admin boolean not null default false,
    is_blocked boolean not null default false,
    onboarding onboarding_step not null default 'started',
    terms_accepted_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- E.164: a plus, a country code and up to 15 digits in all.
    constraint users_phone_e164 check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    constraint users_email_shape check (email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
    constraint users_not_own_referrer check (referrer_id <> id)
);

-- Seller lookup by handle, e-mail or phone (escrow creation), all case-insensitive.
create unique index users_username_lower on users (lower(username));
create unique index users_email_lower on users (lower(email));
create unique index users_phone on users (phone);
-- Registration: a referral code as the user typed it, in any case (codes are upper case).
create unique index users_referral_code_upper on users (upper(referral_code));
-- Referral screen: the people a user brought in, newest first.
create index users_referrer on users (referrer_id, created_at desc, id desc)
where referrer_id is not null;
-- Admin user list, keyset-paged by id, and new users in 24 h.
create index users_created_at on users (created_at);

create table email_verifications (
    id bigint generated always as identity primary key,
    user_id bigint not null references users (id),
    email text not null,
    otp_hash text not null,
    expires_at timestamptz not null,
    attempts_left integer not null,
    created_at timestamptz not null default now(),
    verified_at timestamptz,
    constraint email_verifications_attempts check (attempts_left >= 0)
);

-- Onboarding screen: the user's latest verification.
create index email_verifications_user on email_verifications (user_id, created_at desc);

create table saved_addresses (
    id bigint generated always as identity primary key,
    user_id bigint not null references users (id),
    currency text not null,
    network text not null,
    address text not null,
    label text,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    deleted_at timestamptz,
    foreign key (currency, network) references networks (currency, network),
    constraint saved_addresses_label check (char_length(label) <= 64)
);

-- Wallet and contacts screens: a user's live addresses; no duplicates among them.
create unique index saved_addresses_live on saved_addresses (user_id, currency, network, address)
where deleted_at is null;

create table saved_bank_accounts (
    id bigint generated always as identity primary key,
    user_id bigint not null references users (id),
    bank_code text not null references banks (code),
    account_number text not null,
    account_name text not null,
    label text,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    deleted_at timestamptz,
    -- NUBAN: ten digits.
    constraint saved_bank_accounts_nuban check (account_number ~ '^[0-9]{10}$'),
    constraint saved_bank_accounts_label check (char_length(label) <= 64)
);

-- Wallet and contacts screens: a user's live bank accounts; no duplicates among them.
create unique index saved_bank_accounts_live
on saved_bank_accounts (user_id, bank_code, account_number)
where deleted_at is null;

insert into currencies (
    code, kind, decimals, cashout_min, cashout_max, cashout_fee_flat, cashout_fee_rate,
    escrow_min_amount, sort_order
) values
('BTC', 'crypto', 8, 0.0001, 5, 0.00005, 0, 0.0001, 1),
('ETH', 'crypto', 18, 0.005, 100, 0.0015, 0, 0.005, 2),
('LTC', 'crypto', 8, 0.01, 1000, 0.001, 0, 0.01, 3),
('USDT', 'crypto', 6, 5, 50000, 1, 0, 5, 4),
('NGN', 'fiat', 2, 1000, 5000000, 100, 0.005, 1000, 5);

insert into networks (currency, network, label) values
('BTC', 'BTC', 'Bitcoin'),
('ETH', 'ERC20', 'Ethereum'),
('LTC', 'LTC', 'Litecoin'),
('USDT', 'TRC20', 'Tron (TRC20)'),
('USDT', 'ERC20', 'Ethereum (ERC20)'),
('USDT', 'BEP20', 'BNB Smart Chain (BEP20)');

insert into banks (code, name) values
('044', 'Access Bank'),
('023', 'Citibank Nigeria'),
('050', 'Ecobank Nigeria'),
('070', 'Fidelity Bank'),
('011', 'First Bank of Nigeria'),
('214', 'First City Monument Bank'),
('058', 'Guaranty Trust Bank'),
('030', 'Heritage Bank'),
('082', 'Keystone Bank'),
('50211', 'Kuda Microfinance Bank'),
('999992', 'OPay'),
('999991', 'PalmPay'),
('076', 'Polaris Bank'),
('221', 'Stanbic IBTC Bank'),
('232', 'Sterling Bank'),
('032', 'Union Bank of Nigeria'),
('033', 'United Bank for Africa'),
('215', 'Unity Bank'),
('035', 'Wema Bank'),
('057', 'Zenith Bank');

insert into platform_settings (
    escrow_fee_rate, rate_lock_seconds, rate_max_age_seconds,
    payment_window_hours, delivery_window_hours, auto_release_hours,
    referral_reward_rate, otp_ttl_seconds, otp_attempts
) values (0.05, 600, 900, 24, 72, 48, 0.10, 600, 5);
