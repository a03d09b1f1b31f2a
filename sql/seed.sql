-- Seeding for `lockbay demo` and the tests: people, balances and rates made
-- the way the movements make them, so the ledger stays balanced.

-- name: seed_user(telegram_id, username, first_name, email, phone)$
-- Demo and tests: an onboarded user with a wallet in every currency; returns
-- the user id. Safe to run twice (the second run changes nothing).
with
new_user as (
    insert into users (
        telegram_id, username, first_name, email, email_verified_at, phone, onboarding,
        terms_accepted_at
    )
    values (
        :telegram_id,
        :username,
        :first_name,
        :email,
        case when :email::text is not null then now() end,
        :phone,
        'complete',
        now()
    )
    on conflict (telegram_id) do nothing
    returning id
),

new_wallets as (
    insert into wallets (user_id, currency)
    select
        new_user.id,
        c.code
    from new_user
    cross join currencies as c
)

select id from new_user
union all
select id from users
where telegram_id = :telegram_id;

-- name: seed_credit(telegram_id, currency, amount)$
-- Demo and tests: a deposit through the provider's clearing account; returns
-- the wallet's new available balance.
with
wallet as (
    select
        w.id,
        w.available
    from wallets as w
    inner join users as u on w.user_id = u.id
    where u.telegram_id = :telegram_id and w.currency = :currency
    for update of w
),

posted as (
    select
        post_transfer(
            'deposit',
            jsonb_build_array(
                jsonb_build_object('kind', 'wallet_available', 'wallet', wallet.id, 'amount', :amount::numeric),
                jsonb_build_object(
                    'kind', 'provider_clearing',
                    'provider', case when :currency = 'NGN' then 'fincra' else 'blockbee' end,
                    'currency', :currency::text,
                    'amount', -:amount::numeric
                )
            ),
            'seed'
        ) as transfer_id
    from wallet
)

-- The function's update is invisible to this statement's snapshot: add it up.
select wallet.available + :amount::numeric as available
from posted, wallet;

-- name: seed_cashout(telegram_id, currency, amount, fee, network, address, idempotency_key)$
-- Demo and tests: a crypto cashout waiting for approval, its amount and fee
-- moved from available to held; returns the cashout id.
with
wallet as (
    select
        w.id,
        w.user_id
    from wallets as w
    inner join users as u on w.user_id = u.id
    where u.telegram_id = :telegram_id and w.currency = :currency
    for update of w
),

cashout as (
    insert into cashouts (
        user_id, wallet_id, currency, amount, fee, destination, network, address, idempotency_key
    )
    select
        wallet.user_id,
        wallet.id,
        :currency,
        :amount,
        :fee,
        'crypto_address' as destination,
        :network,
        :address,
        :idempotency_key
    from wallet
    returning id, wallet_id, amount + fee as total
)

select
    cashout.id,
    post_transfer(
        'cashout_hold',
        jsonb_build_array(
            jsonb_build_object('kind', 'wallet_available', 'wallet', cashout.wallet_id, 'amount', -cashout.total),
            jsonb_build_object('kind', 'wallet_held', 'wallet', cashout.wallet_id, 'amount', cashout.total)
        ),
        'seed',
        p_cashout_id => cashout.id
    ) as transfer_id
from cashout;

-- name: seed_address(telegram_id, currency, network, address, label)$
-- Demo and tests: a saved crypto address; returns its id.
insert into saved_addresses (user_id, currency, network, address, label)
select
    u.id,
    :currency,
    :network,
    :address,
    :label
from users as u
where u.telegram_id = :telegram_id
returning id;

-- name: seed_bank_account(telegram_id, bank_code, account_number, account_name, label)$
-- Demo and tests: a saved bank account; returns its id.
insert into saved_bank_accounts (user_id, bank_code, account_number, account_name, label)
select
    u.id,
    :bank_code,
    :account_number,
    :account_name,
    :label
from users as u
where u.telegram_id = :telegram_id
returning id;

-- name: seed_rate(base, quote, rate)!
-- Demo and tests: a rate as the rates job would store it.
insert into exchange_rates (base, quote, rate, source)
values (:base, :quote, :rate, 'seed');

-- name: seed_is_fresh()$
-- Demo: true until the first seeding has run.
select not exists (select 1 from exchange_rates) as fresh;

-- name: seed_make_admin(telegram_id)!
-- Demo and tests: give a user admin rights.
update users
set is_admin = true
where telegram_id = :telegram_id;

-- name: seed_set_referrer(telegram_id, referrer_telegram_id)!
-- Demo and tests: record who brought a user in.
update users
set
    referrer_id = (
        select r.id from users as r
        where r.telegram_id = :referrer_telegram_id
    )
where telegram_id = :telegram_id;
