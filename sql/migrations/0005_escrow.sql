-- Escrow completion: the referral reward, paid once per referred user.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- When an escrow completes, each party brought in by a referrer and never
-- rewarded for yet earns that referrer a share (referral_reward_rate) of the
-- fee the platform took on this escrow, rounded down to the currency's
-- precision, paid from platform_fees into the referrer's available balance.
-- The claim on referral_rewards (referred_id is unique) decides who is paid,
-- so two escrows of one user completing at once pay one reward; the transfer
-- follows only a claim that won, and the reward row records it. Called from
-- the completing statement, which has already locked the referrers' wallets
-- (with the seller's, in id order). Returns the rewards paid as a JSON array
-- of {referrer_id, referred_id, currency, amount, transfer_id}.
create function pay_referral_rewards(p_escrow_id bigint, p_fee numeric)
returns jsonb
language plpgsql as $$
declare
    r record;
    v_reward bigint;
    v_transfer bigint;
    v_paid jsonb := '[]';
begin
    for r in
        select
            p.user_id as referred_id,
            u.referrer_id,
            w.id as wallet_id,
            e.currency,
            trunc(p_fee * s.referral_reward_rate, c.decimals) as amount
        from escrows as e
        inner join currencies as c on e.currency = c.code
        cross join platform_settings as s
        cross join lateral (values (e.buyer_id), (e.seller_id)) as p (user_id)
        inner join users as u on p.user_id = u.id
        inner join wallets as w on u.referrer_id = w.user_id and e.currency = w.currency
        where e.id = p_escrow_id
        order by p.user_id
    loop
        continue when r.amount <= 0;
        insert into referral_rewards (referrer_id, referred_id, escrow_id, currency, amount)
        values (r.referrer_id, r.referred_id, p_escrow_id, r.currency, r.amount)
        on conflict (referred_id) do nothing
        returning id into v_reward;
        continue when v_reward is null;
        v_transfer := post_transfer(
            'referral_reward',
            jsonb_build_array(
                jsonb_build_object(
                    'kind', 'platform_fees', 'currency', r.currency, 'amount', -r.amount
                ),
                jsonb_build_object('kind', 'wallet_available', 'wallet', r.wallet_id, 'amount', r.amount)
            ),
            'referral reward',
            p_escrow_id => p_escrow_id
        );
        update referral_rewards set transfer_id = v_transfer where id = v_reward;
        v_paid := v_paid || jsonb_build_object(
            'referrer_id', r.referrer_id,
            'referred_id', r.referred_id,
            'currency', r.currency,
            'amount', r.amount,
            'transfer_id', v_transfer
        );
    end loop;
    return v_paid;
end;
$$;
