-- Onboarding: registration, e-mail verification by one-time code, terms.

-- name: onboarding_register_user(telegram_id, username, first_name, referral_code)^
-- /start (movement): creates the user with a wallet in every currency (the
-- wallets trigger opens their ledger accounts), links the referrer whose
-- code was given (any case; unknown codes are ignored) and the escrows that
-- invited this username before the account existed. An existing user is
-- returned untouched with created false, with whether they are blocked and
-- their pending e-mail code, so that /start resumes at their step with this
-- one statement. No row when a concurrent registration won the insert,
-- which this statement cannot see: ask again.
-- Indexes: users (telegram_id), users_username_lower,
-- users_referral_code_upper, escrows_invited, email_verifications_user.
with
existing as (
    select
        id,
        telegram_id,
        referrer_id,
        -- Enums travel as text: no type introspection on a fresh connection.
        onboarding::text as onboarding,
        referral_code,
        is_blocked
    from users
    where telegram_id = :telegram_id
),

referrer as (
    select id from users
    where upper(referral_code) = upper(:referral_code::text) and telegram_id <> :telegram_id
),

new_user as (
    -- Any unique conflict (the same telegram id, a username or referral code
    -- taken meanwhile) inserts nothing; the caller's retry sees the winner.
    insert into users (telegram_id, username, first_name, referrer_id)
    select
        :telegram_id,
        -- Telegram reassigns usernames: one still held here by another
        -- account (renamed since) is not stored twice.
        case
            when not exists (
                    select 1 from users as u
                    where lower(u.username) = lower(:username::text)
                ) then :username::text
        end as username,
        :first_name::text as first_name,
        (select referrer.id from referrer) as referrer_id
    where not exists (select 1 from existing)
    on conflict do nothing
    returning id, telegram_id, referrer_id, onboarding::text as onboarding, referral_code
),

new_wallets as (
    insert into wallets (user_id, currency)
    select
        new_user.id,
        c.code
    from new_user
    cross join currencies as c
),

invited as (
    update escrows as e
    set
        seller_id = new_user.id,
        updated_at = now()
    from new_user
    where
        e.seller_id is null
        and e.seller_handle = lower(:username::text)
        and e.buyer_id <> new_user.id
    returning e.id
)

select
    new_user.id,
    new_user.telegram_id,
    new_user.referrer_id,
    new_user.onboarding,
    new_user.referral_code,
    true as created,
    (select count(*) from invited) as invited_escrows,
    false as is_blocked,
    null::text as pending_email,
    null::timestamptz as pending_expires_at,
    null::integer as pending_attempts_left,
    null::boolean as pending_expired
from new_user
union all
select
    existing.id,
    existing.telegram_id,
    existing.referrer_id,
    existing.onboarding,
    existing.referral_code,
    false as created,
    0 as invited_escrows,
    existing.is_blocked,
    pending.email as pending_email,
    pending.expires_at as pending_expires_at,
    pending.attempts_left as pending_attempts_left,
    pending.expired as pending_expired
from existing
left join
    lateral (
        -- Only the latest code counts, while not verified.
        select
            v.email,
            v.expires_at,
            v.attempts_left,
            v.verified_at,
            v.expires_at <= now() as expired
        from email_verifications as v
        where v.user_id = existing.id
        order by v.created_at desc, v.id desc
        limit 1
    ) as pending
    on pending.verified_at is null;

-- name: onboarding_start_email_verification(telegram_id, email, otp_hash, resend_seconds, codes_per_hour)^
-- E-mail step and "Send a new code" (movement): stores a new code's hash with
-- its expiry and attempt limit, and moves onboarding to awaiting_otp (a
-- completed user changing address stays complete). Refuses an address another
-- account holds, and a code asked for sooner than resend_seconds after the
-- user's last one to the same address (a typo can be corrected at once) or
-- past codes_per_hour within the last hour, whatever the address: retry_after
-- is then the seconds until one is allowed. Requests of one user queue on
-- their row lock; one whose snapshot predates a code committed meanwhile sees
-- it as the row's newer updated_at (every code bumps it) and counts it as one
-- to this address, so the limit holds for requests at once too.
-- Outcome not_found, invalid, rate_limited or ok.
-- Indexes: users (telegram_id), users_email_lower, email_verifications_user.
with
settings as (
    select
        otp_ttl_seconds,
        otp_attempts
    from platform_settings
),

me as (
    select
        id,
        onboarding,
        updated_at
    from users
    where telegram_id = :telegram_id
    for update
),

seen as (
    -- The row as this statement's snapshot saw it; me has its latest version.
    select updated_at from users
    where telegram_id = :telegram_id
),

limits as (
    select
        me.id,
        greatest(
            (
                select max(v.created_at) from email_verifications as v
                where v.user_id = me.id and v.email = :email::text
            ),
            -- A code committed after the snapshot: its request set updated_at then.
            case when me.updated_at <> seen.updated_at then me.updated_at end
        ) as last_sent_at,
        (
            -- The oldest code of a full hour: the next one waits for it to leave the window.
            select v.created_at from email_verifications as v
            where v.user_id = me.id and v.created_at > now() - interval '1 hour'
            order by v.created_at desc
            limit 1 offset (:codes_per_hour::integer - 1)
        ) as hour_full_since
    from me
    left join seen on true
),

wait as (
    select
        limits.id,
        ceil(
            extract(
                epoch from greatest(
                    limits.last_sent_at + make_interval(secs => :resend_seconds::integer) - now(),
                    limits.hour_full_since + interval '1 hour' - now()
                )
            )
        )::integer as retry_after
    from limits
),

checked as (
    select
        me.id,
        settings.otp_ttl_seconds,
        settings.otp_attempts,
        wait.retry_after,
        case
            when me.id is null then 'not_found'
            when exists (
                    select 1 from users as u
                    where lower(u.email) = :email::text and u.id <> me.id
                ) then 'invalid'
            when wait.retry_after > 0 then 'rate_limited'
            else 'ok'
        end as outcome
    from settings
    left join me on true
    left join wait on me.id = wait.id
),

verification as (
    insert into email_verifications (user_id, email, otp_hash, expires_at, attempts_left)
    select
        checked.id,
        :email::text,
        :otp_hash::text,
        now() + make_interval(secs => checked.otp_ttl_seconds) as expires_at,
        checked.otp_attempts
    from checked
    where checked.outcome = 'ok'
    returning id, email, expires_at, attempts_left
),

step as (
    -- updated_at moves with every code: concurrent requests tell by it (see limits).
    update users as u
    set
        onboarding = case when u.onboarding = 'complete' then u.onboarding else 'awaiting_otp' end,
        updated_at = now()
    from checked
    where u.id = checked.id and checked.outcome = 'ok'
)

select
    checked.outcome,
    checked.retry_after,
    verification.id as verification_id,
    verification.email,
    verification.expires_at,
    verification.attempts_left
from checked
left join verification on true;

-- name: onboarding_verify_email(telegram_id, otp_hash)^
-- OTP step (movement): the user's latest verification, locked, judged
-- against the hash of the code as typed (the salt is the user's own, so the
-- caller hashes before asking). The right code verifies the address, moves
-- onboarding to awaiting_terms (a completed user stays complete) and links
-- the escrows that invited this address, except the user's own; a wrong code
-- spends an attempt. Guesses sent in parallel queue on the lock, so they
-- never get more tries than the limit. Nothing changes when the code was
-- verified, expired or used up, or another account took its address.
-- Outcome not_found, expired, exhausted, taken, wrong (attempts_left is what
-- remains) or ok.
-- Indexes: users (telegram_id), email_verifications_user, escrows_invited.
with
asked as (
    select :telegram_id::bigint as telegram_id
),

latest as (
    select
        u.telegram_id,
        u.id as user_id,
        v.id,
        v.email,
        v.otp_hash,
        v.attempts_left,
        v.verified_at is not null as verified,
        v.expires_at <= now() as expired,
        exists(
            select 1 from users as o
            where lower(o.email) = v.email and o.id <> u.id
        ) as email_taken
    from users as u
    inner join email_verifications as v on u.id = v.user_id
    where u.telegram_id = :telegram_id
    order by v.created_at desc, v.id desc
    limit 1
    for update of v
),

checked as (
    select
        latest.id,
        latest.user_id,
        latest.email,
        latest.attempts_left,
        case
            when latest.id is null or latest.verified then 'not_found'
            when latest.expired then 'expired'
            when latest.attempts_left <= 0 then 'exhausted'
            when latest.email_taken then 'taken'
            when latest.otp_hash <> :otp_hash then 'wrong'
            else 'ok'
        end as outcome
    from asked
    left join latest on asked.telegram_id = latest.telegram_id
),

spent as (
    update email_verifications as v
    set attempts_left = v.attempts_left - 1
    from checked
    where v.id = checked.id and checked.outcome = 'wrong'
    returning v.attempts_left
),

verification as (
    update email_verifications as v
    set verified_at = now()
    from checked
    where v.id = checked.id and checked.outcome = 'ok'
    returning v.user_id, v.email
),

me as (
    update users as u
    set
        email = verification.email,
        email_verified_at = now(),
        onboarding = case when u.onboarding = 'complete' then u.onboarding else 'awaiting_terms' end,
        updated_at = now()
    from verification
    where u.id = verification.user_id
    returning u.id, u.email
),

invited as (
    update escrows as e
    set
        seller_id = me.id,
        updated_at = now()
    from me
    where e.seller_id is null and e.seller_handle = me.email and e.buyer_id <> me.id
    returning e.id
)

select
    checked.outcome,
    checked.email,
    coalesce(spent.attempts_left, checked.attempts_left) as attempts_left,
    (select count(*) from invited) as invited_escrows
from checked
left join spent on true;

-- name: onboarding_accept_terms(telegram_id)^
-- Terms step (movement): completes onboarding, only from awaiting_terms.
-- Outcome not_found, wrong_status (with the current step) or ok.
-- Index: users (telegram_id).
with
asked as (
    select :telegram_id::bigint as telegram_id
),

me as (
    select
        id,
        telegram_id,
        referrer_id,
        onboarding,
        referral_code
    from users
    where telegram_id = :telegram_id
    for update
),

accepted as (
    update users as u
    set
        terms_accepted_at = now(),
        onboarding = 'complete',
        updated_at = now()
    from me
    where u.id = me.id and me.onboarding = 'awaiting_terms'
    returning u.onboarding
)

select
    me.id,
    me.telegram_id,
    me.referrer_id,
    me.referral_code,
    coalesce(accepted.onboarding, me.onboarding)::text as onboarding,
    case
        when me.id is null then 'not_found'
        when me.onboarding <> 'awaiting_terms' then 'wrong_status'
        else 'ok'
    end as outcome
from asked
left join me on asked.telegram_id = me.telegram_id
left join accepted on true;

-- name: onboarding_test_invite(buyer_telegram_id, seller_handle, ref)$
-- tests: an escrow that invites a seller with no account yet (awaiting
-- payment, nothing held); returns its id.
insert into escrows (
    ref, buyer_id, seller_handle, currency, amount, fee, total, fee_split, buyer_fee, seller_fee,
    description, payment_deadline
)
select
    :ref::text as ref,
    u.id as buyer_id,
    :seller_handle::text as seller_handle,
    'USDT' as currency,
    10 as amount,
    0 as fee,
    10 as total,
    'buyer'::fee_split as fee_split,
    0 as buyer_fee,
    0 as seller_fee,
    'test invitation' as description,
    now() + interval '1 day' as payment_deadline
from users as u
where u.telegram_id = :buyer_telegram_id
returning id;

-- name: onboarding_test_escrow_seller(escrow_id)$
-- tests: who an escrow's seller is.
select seller_id from escrows
where id = :escrow_id;

-- name: onboarding_test_user(telegram_id)^
-- tests: a user as stored, with their wallets and wallet ledger accounts.
select
    u.id,
    u.username,
    u.first_name,
    u.email,
    u.email_verified_at,
    u.referrer_id,
    u.onboarding::text as onboarding,
    u.terms_accepted_at,
    (
        select count(*) from wallets as w
        where w.user_id = u.id
    ) as wallets,
    (
        select count(*) from ledger_accounts as a
        inner join wallets as w on a.wallet_id = w.id
        where w.user_id = u.id
    ) as wallet_accounts
from users as u
where u.telegram_id = :telegram_id;

-- name: onboarding_test_user_count()$
-- tests: how many users exist.
select count(*) from users;

-- name: onboarding_test_verification(telegram_id)^
-- tests: the user's latest verification as stored.
select
    v.id,
    v.email,
    v.otp_hash,
    v.expires_at,
    v.attempts_left,
    v.verified_at
from email_verifications as v
inner join users as u on v.user_id = u.id
where u.telegram_id = :telegram_id
order by v.created_at desc, v.id desc
limit 1;

-- name: onboarding_test_expire(telegram_id)!
-- tests: the user's pending codes ran out a second ago.
update email_verifications as v
set expires_at = now() - interval '1 second'
from users as u
where
    v.user_id = u.id
    and u.telegram_id = :telegram_id
    and v.verified_at is null;

-- name: onboarding_test_age_codes(telegram_id, seconds)!
-- tests: the user's codes as if sent that many seconds earlier (their expiry too).
update email_verifications as v
set
    created_at = v.created_at - make_interval(secs => :seconds::integer),
    expires_at = v.expires_at - make_interval(secs => :seconds::integer)
from users as u
where v.user_id = u.id and u.telegram_id = :telegram_id;

-- name: onboarding_test_lock_user(telegram_id)$
-- tests: locks the user's row until the caller's transaction ends, so that
-- requests started meanwhile take their snapshots and queue behind it.
select id from users
where telegram_id = :telegram_id
for update;

-- name: onboarding_test_lock_waiters()$
-- tests: how many sessions of this database are waiting for a lock (ask outside
-- a transaction: within one, pg_stat_activity keeps showing its first look).
select count(*) from pg_stat_activity
where datname = current_database() and wait_event_type = 'Lock';

-- name: onboarding_context(telegram_id)^
-- Onboarding screen (/start and each sign-up step): the user (blocked or
-- not); whether the e-mail and the phone are verified and onboarding is
-- complete; the pending e-mail verification (the latest one, while not
-- verified) with its expiry and attempts left; every wallet in currency
-- order (one per currency).
-- No row when the user is unknown.
-- Indexes: users (telegram_id), email_verifications_user (the latest one),
-- wallets_one_per_currency.
with
me as (
    select
        id,
        telegram_id,
        username,
        first_name,
        email,
        onboarding::text as onboarding,
        referral_code,
        email_verified_at is not null as email_verified,
        phone_verified_at is not null as phone_verified,
        onboarding = 'complete' as onboarding_complete,
        is_blocked
    from users
    where telegram_id = :telegram_id
)

select
    me.*,
    pending.email as pending_email,
    pending.expires_at as pending_expires_at,
    pending.attempts_left as pending_attempts_left,
    pending.expired as pending_expired,
    coalesce(balances.items, '[]') as wallets
from me
left join
    lateral (
        -- Only the latest code counts: an older one can no longer be entered.
        select
            v.email,
            v.expires_at,
            v.attempts_left,
            v.verified_at,
            v.expires_at <= now() as expired
        from email_verifications as v
        where v.user_id = me.id
        order by v.created_at desc, v.id desc
        limit 1
    ) as pending
    on pending.verified_at is null
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
        where w.user_id = me.id
    ) as balances;

-- name: onboarding_test_verify_phone(telegram_id)!
-- tests: the user's phone number verified.
update users
set phone_verified_at = now()
where telegram_id = :telegram_id;
