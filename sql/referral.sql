-- Referral: the people a user brought in and what they earned the user.
-- The reward itself is paid by the escrow completion (pay_referral_rewards).

-- name: referral_context(telegram_id)^
-- Referral screen: the user's referral code; whether they are blocked and
-- done onboarding; how many users they referred;
-- the rewards earned, summed per currency (in currency order, with the
-- currency's decimals); the 10
-- latest referrals, newest first, each with a display name (first name,
-- else username), when they joined and whether they have earned the
-- referrer a reward yet. No row when the user is unknown.
-- Indexes: users (telegram_id), users_referrer (the count and the 10
-- latest), referral_rewards_referrer (the sums), referral_rewards
-- (referred_id, unique: a referral's reward).
with
me as (
    select
        id,
        referral_code,
        is_blocked,
        onboarding = 'complete' as onboarded
    from users
    where telegram_id = :telegram_id
)

select
    me.id as user_id,
    me.referral_code,
    me.is_blocked,
    me.onboarded,
    (
        select count(*) from users as r
        where r.referrer_id = me.id
    ) as referred_count,
    coalesce(earned.items, '[]') as rewards,
    coalesce(latest.items, '[]') as referrals
from me
cross join
    lateral (
        select
            json_agg(
                json_build_object(
                    'currency', t.currency, 'amount', t.amount, 'decimals', c.decimals
                )
                order by t.currency
            ) as items
        from (
            select
                rr.currency,
                sum(rr.amount) as amount
            from referral_rewards as rr
            where rr.referrer_id = me.id
            group by rr.currency
        ) as t
        -- The currency's precision, for display.
        inner join currencies as c on t.currency = c.code
    ) as earned
cross join
    lateral (
        select
            json_agg(
                json_build_object(
                    'user_id', r.id,
                    'display_name', r.display_name,
                    'joined_at', r.created_at,
                    'rewarded', rr.id is not null
                )
                order by r.created_at desc, r.id desc
            ) as items
        from (
            select
                u.id,
                coalesce(nullif(u.first_name, ''), u.username, '') as display_name,
                u.created_at
            from users as u
            where u.referrer_id = me.id
            order by u.created_at desc, u.id desc
            limit 10
        ) as r
        -- After the limit: one lookup per referral shown.
        left join referral_rewards as rr on r.id = rr.referred_id and me.id = rr.referrer_id
    ) as latest;
