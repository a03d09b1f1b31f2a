-- Support: tickets between a user and the admins.

-- name: support_open_ticket(telegram_id, subject, body)^
-- New ticket (movement): the ticket and its first message. A user has at
-- most one ticket that is not closed; a second one, even opened at the same
-- instant, is refused. Outcome not_found, invalid, duplicate or ok.
-- Indexes: users (telegram_id), support_tickets_live.
with
asked as (
    select :telegram_id::bigint as telegram_id
),

me as (
    select
        id,
        telegram_id
    from users
    where telegram_id = :telegram_id
),

checked as (
    select
        me.id as user_id,
        case
            when me.id is null then 'not_found'
            when char_length(:subject::text) not between 1 and 200 then 'invalid'
            when char_length(:body::text) not between 1 and 4000 then 'invalid'
            when exists (
                    select 1 from support_tickets as t
                    where t.user_id = me.id and t.status <> 'closed'
                ) then 'duplicate'
            else 'ok'
        end as outcome
    from asked
    left join me on asked.telegram_id = me.telegram_id
),

ticket as (
    -- A concurrent opening that committed first makes this insert nothing.
    insert into support_tickets (user_id, subject)
    select
        checked.user_id,
        :subject::text
    from checked
    where checked.outcome = 'ok'
    on conflict (user_id) where status <> 'closed' do nothing
    returning id, user_id, subject, status::text as status, admin_id, created_at, updated_at, closed_at
),

message as (
    insert into support_messages (ticket_id, sender_id, from_admin, body)
    select
        ticket.id,
        ticket.user_id,
        false as from_admin,
        :body::text
    from ticket
    returning id
)

select
    ticket.id,
    ticket.user_id,
    ticket.subject,
    ticket.status,
    ticket.admin_id,
    ticket.created_at,
    ticket.updated_at,
    ticket.closed_at,
    (select message.id from message) as message_id,
    case
        when checked.outcome <> 'ok' then checked.outcome
        when ticket.id is null then 'duplicate'
        else 'ok'
    end as outcome
from checked
left join ticket on true;

-- name: support_post_message(ticket_id, telegram_id, body)^
-- Support chat (movement): a message from the ticket's owner or an admin.
-- An admin's reply marks the ticket answered (and takes it if nobody has);
-- the owner's message reopens it and marks the admin replies read. Answers
-- the ticket's subject and its owner's Telegram id, for the notification.
-- Outcome not_found, not_a_party, wrong_status, invalid or ok.
-- Indexes: support_tickets primary key, users (telegram_id), users primary
-- key, support_messages_unread.
with
asked as (
    select
        :ticket_id::bigint as ticket_id,
        :telegram_id::bigint as telegram_id
),

ticket as (
    select
        id,
        user_id,
        subject,
        status
    from support_tickets
    where id = :ticket_id
    for update
),

sender as (
    select
        id,
        telegram_id,
        is_admin
    from users
    where telegram_id = :telegram_id
),

checked as (
    select
        ticket.id as ticket_id,
        ticket.user_id as owner_id,
        ticket.subject,
        ticket.status,
        sender.id as sender_id,
        -- The owner speaks as the owner, even when an admin.
        sender.id <> ticket.user_id as from_admin,
        case
            when ticket.id is null then 'not_found'
            when sender.id is null then 'not_a_party'
            when sender.id <> ticket.user_id and not sender.is_admin then 'not_a_party'
            when ticket.status = 'closed' then 'wrong_status'
            when char_length(:body::text) not between 1 and 4000 then 'invalid'
            else 'ok'
        end as outcome
    from asked
    left join ticket on asked.ticket_id = ticket.id
    left join sender on asked.telegram_id = sender.telegram_id
),

message as (
    insert into support_messages (ticket_id, sender_id, from_admin, body)
    select
        checked.ticket_id,
        checked.sender_id,
        checked.from_admin,
        :body::text
    from checked
    where checked.outcome = 'ok'
    returning id, ticket_id, sender_id, from_admin, body, created_at
),

moved as (
    update support_tickets as t
    set
        status = case when checked.from_admin then 'answered' else 'open' end::ticket_status,
        admin_id = case when checked.from_admin then coalesce(t.admin_id, checked.sender_id) else t.admin_id end,
        updated_at = now()
    from checked
    where t.id = checked.ticket_id and checked.outcome = 'ok'
    returning t.status
),

seen as (
    update support_messages as m
    set read_at = now()
    from checked
    where
        m.ticket_id = checked.ticket_id
        and checked.outcome = 'ok'
        and not checked.from_admin
        and m.from_admin
        and m.read_at is null
)

select
    checked.outcome,
    checked.status::text as ticket_status,
    message.id,
    message.ticket_id,
    message.sender_id,
    message.from_admin,
    message.body,
    message.created_at,
    moved.status::text as new_status,
    checked.subject,
    ticket_owner.telegram_id as owner_telegram_id
from checked
left join message on true
left join moved on true
left join users as ticket_owner on checked.owner_id = ticket_owner.id;

-- name: support_close_ticket(ticket_id, telegram_id)^
-- Support screen (movement): the owner or an admin closes the ticket.
-- Outcome not_found, not_a_party, wrong_status or ok.
-- Indexes: support_tickets primary key, users (telegram_id).
with
asked as (
    select
        :ticket_id::bigint as ticket_id,
        :telegram_id::bigint as telegram_id
),

ticket as (
    select
        id,
        user_id,
        subject,
        status,
        admin_id,
        created_at
    from support_tickets
    where id = :ticket_id
    for update
),

sender as (
    select
        id,
        telegram_id,
        is_admin
    from users
    where telegram_id = :telegram_id
),

checked as (
    select
        ticket.*,
        case
            when ticket.id is null then 'not_found'
            when sender.id is null then 'not_a_party'
            when sender.id <> ticket.user_id and not sender.is_admin then 'not_a_party'
            when ticket.status = 'closed' then 'wrong_status'
            else 'ok'
        end as outcome
    from asked
    left join ticket on asked.ticket_id = ticket.id
    left join sender on asked.telegram_id = sender.telegram_id
),

closed as (
    update support_tickets as t
    set
        status = 'closed',
        closed_at = now(),
        updated_at = now()
    from checked
    where t.id = checked.id and checked.outcome = 'ok'
    returning t.id, t.status, t.updated_at, t.closed_at
)

select
    checked.outcome,
    checked.id,
    checked.user_id,
    checked.subject,
    coalesce(closed.status, checked.status)::text as status,
    checked.admin_id,
    checked.created_at,
    closed.updated_at,
    closed.closed_at
from checked
left join closed on true;

-- name: support_test_ticket(ticket_id)^
-- tests: a ticket as stored, with its message counts.
select
    t.id,
    t.user_id,
    t.status::text as status,
    t.admin_id,
    t.closed_at,
    (
        select count(*) from support_messages as m
        where m.ticket_id = t.id
    ) as messages,
    (
        select count(*) from support_messages as m
        where
            m.ticket_id = t.id
            and m.from_admin
            and m.read_at is null
    ) as unread_admin_replies
from support_tickets as t
where t.id = :ticket_id;

-- name: support_test_counts(telegram_id)^
-- tests: how many tickets and messages a user's tickets have.
select
    count(distinct t.id) as tickets,
    count(m.id) as messages
from users as u
left join support_tickets as t on u.id = t.user_id
left join support_messages as m on t.id = m.ticket_id
where u.telegram_id = :telegram_id;

-- name: support_context(telegram_id)^
-- Support screen: the user, their display name (first name, else
-- username), whether they are blocked and done with onboarding; the
-- ticket that is not closed, if any; its 20 latest
-- messages, oldest first; and how many admin replies on it the user has
-- not read. No row when the user is unknown.
-- Indexes: users (telegram_id), support_tickets_live, support_messages_ticket
-- (the 20 latest), support_messages_unread (the count).
with
me as (
    select
        id,
        coalesce(nullif(first_name, ''), username, '') as display_name,
        is_blocked,
        onboarding = 'complete' as onboarding_complete
    from users
    where telegram_id = :telegram_id
)

select
    me.id as user_id,
    me.display_name,
    me.is_blocked,
    me.onboarding_complete,
    t.id,
    t.subject,
    t.status::text as status,
    t.admin_id,
    t.created_at,
    t.updated_at,
    t.closed_at,
    coalesce(chat.items, '[]') as messages,
    coalesce(unread.replies, 0) as unread_replies
from me
left join support_tickets as t on me.id = t.user_id and t.status <> 'closed'
left join
    lateral (
        select
            json_agg(
                json_build_object(
                    'id', m.id,
                    'from_admin', m.from_admin,
                    'body', m.body,
                    'created_at', m.created_at,
                    'read_at', m.read_at
                )
                order by m.id
            ) as items
        from (
            -- The latest 20 by the index, turned oldest first by the aggregate.
            select
                sm.id,
                sm.from_admin,
                sm.body,
                sm.created_at,
                sm.read_at
            from support_messages as sm
            where sm.ticket_id = t.id
            order by sm.id desc
            limit 20
        ) as m
    ) as chat
    on true
left join
    lateral (
        select count(*) as replies
        from support_messages as sm
        where sm.ticket_id = t.id and sm.from_admin and sm.read_at is null
    ) as unread
    on true;
