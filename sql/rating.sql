-- Rating: what the parties of a completed trade say about each other.

-- name: rating_rate_trade(escrow_id, telegram_id, stars, comment)^
-- Rate a trade: a party of a completed escrow rates the other party, 1 to 5
-- stars with an optional comment, once (ratings_once_per_party decides, so a
-- double tap records one rating). Outcome 'ok' or not_found / not_a_party /
-- wrong_status / invalid / duplicate with nothing recorded.
-- Indexes: escrows (pk), users (telegram_id), ratings_once_per_party.
with
escrow as (
    select
        e.id,
        e.status,
        e.buyer_id,
        e.seller_id
    from escrows as e
    where e.id = :escrow_id
),

decision as (
    select
        escrow.*,
        me.id as rater_id,
        who.rater_role,
        case who.rater_role when 'buyer' then escrow.seller_id else escrow.buyer_id end as ratee_id,
        case
            when escrow.id is null then 'not_found'
            when who.rater_role is null then 'not_a_party'
            when escrow.status <> 'completed' then 'wrong_status'
            when :stars::integer not between 1 and 5 then 'invalid'
            when char_length(:comment::text) > 500 then 'invalid'
            when exists (
                    select 1 from ratings as r
                    where r.escrow_id = escrow.id and r.rater_id = me.id
                ) then 'duplicate'
            else 'ok'
        end as outcome,
        case
            when :stars::integer not between 1 and 5 then 'A rating is 1 to 5 stars.'
            else 'A comment takes at most 500 characters.'
        end as reason
    from (select :escrow_id::bigint as escrow_id) as req
    left join escrow on req.escrow_id = escrow.id
    left join users as me on me.telegram_id = :telegram_id
    left join lateral (
        select
            case
                when me.id = escrow.buyer_id then 'buyer'
                when me.id = escrow.seller_id then 'seller'
            end::party_role as rater_role
    ) as who on true
),

rated as (
    insert into ratings (escrow_id, rater_id, ratee_id, rater_role, stars, comment)
    select
        d.id,
        d.rater_id,
        d.ratee_id,
        d.rater_role,
        :stars,
        :comment
    from decision as d
    where d.outcome = 'ok'
    on conflict (escrow_id, rater_id) do nothing
    returning
        id,
        escrow_id,
        rater_id,
        ratee_id,
        rater_role::text as rater_role,
        stars,
        comment,
        created_at
)

select
    -- A concurrent rating of the same party won the insert.
    case when d.outcome = 'ok' and rated.id is null then 'duplicate' else d.outcome end as outcome,
    d.status::text as current_status,
    d.reason,
    rated.*
from decision as d
left join rated on true;

-- name: rating_summary(user_id)^
-- Rating summary screen (and the seller card of escrow creation): everything
-- said about one user. Average stars to 2 places (null with no ratings);
-- count; the distribution with all five keys '1'..'5', zeros included; the
-- same as buyer and as seller, by the role the user had in the trade (a
-- rating by the seller is about the buyer); the 5 latest reviews, newest
-- first, with the reviewer's display name. Always one row: a user nobody
-- rated, or an unknown id, has zero ratings.
-- escrow_creation_context builds the same object for the seller it finds.
-- Indexes: ratings_ratee (all of the user's ratings, and the 5 latest in
-- index order), users (pk) for the reviewers.
select
    :user_id::bigint as user_id,
    s.*,
    coalesce(latest.items, '[]') as latest
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
    where r.ratee_id = :user_id
) as s
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
                r.id,
                r.rater_id,
                r.stars,
                r.comment,
                r.created_at
            from ratings as r
            where r.ratee_id = :user_id
            order by r.created_at desc, r.id desc
            limit 5
        ) as l
        inner join users as u on l.rater_id = u.id
    ) as latest;
