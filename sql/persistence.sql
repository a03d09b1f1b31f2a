-- Persistent conversations (bot/persistence.py): python-telegram-bot's
-- persistence on the bot's pool. Documents travel as JSON text, encoded and
-- decoded by bot/persistence.py (exact decimals, a few named dataclasses).

-- name: persistence_user_data()
-- Start-up (Application.initialize): every user's kept user_data. Only users
-- with something kept have a row (empty ones are deleted when written).
-- Index: none, the whole table is read.
select
    telegram_id,
    contents::text as contents
from persisted_user_data;

-- name: persistence_chat_data()
-- Start-up: every chat's kept chat_data.
-- Index: none, the whole table is read.
select
    chat_id,
    contents::text as contents
from persisted_chat_data;

-- name: persistence_conversations(max_idle_seconds)
-- Start-up: the state of every open conversation of every flow, in one
-- round trip. States idle for more than max_idle_seconds (the flows' own
-- timeout, whose job did not survive the restart) are deleted instead of
-- restored; null keeps them all.
-- Index: none, the whole (small) table is read.
with
oldest as (
    select coalesce(
        now() - make_interval(secs => :max_idle_seconds::double precision),
        '-infinity'::timestamptz
    ) as kept_since
),

lapsed as (
    delete from persisted_conversations as c
    using oldest
    where c.updated_at < oldest.kept_since
    returning 1
)

select
    c.name,
    c.conversation_key::text as conversation_key,
    c.state::text as state
from persisted_conversations as c
inner join oldest on c.updated_at >= oldest.kept_since;

-- name: persistence_write(user_ids, user_contents, chat_ids, chat_contents, flow_names, flow_keys, flow_states)$
-- One run of the persistence (every few seconds, and at shutdown), whatever
-- it holds, in one statement: each user's and chat's data saved, or deleted
-- where its contents are null (nothing left to keep, or dropped); each
-- conversation's state saved, or deleted where its state is null (ended).
-- The caller sends each key once. Ids travel as text arrays, which asyncpg
-- encodes without the type lookup a bigint[] costs on each new connection.
-- Answers how many rows it wrote or deleted.
-- Indexes: the three tables' primary keys.
with
users_in as (
    select
        u.telegram_id,
        u.contents::jsonb as contents
    from unnest(:user_ids::text[]::bigint[], :user_contents::text[]) as u (telegram_id, contents)
),

users_saved as (
    insert into persisted_user_data (telegram_id, contents)
    select
        telegram_id,
        contents
    from users_in
    where contents is not null
    on conflict (telegram_id) do update
        set contents = excluded.contents, updated_at = now()
    returning 1
),

users_dropped as (
    delete from persisted_user_data as d
    using users_in as u
    where d.telegram_id = u.telegram_id and u.contents is null
    returning 1
),

chats_in as (
    select
        c.chat_id,
        c.contents::jsonb as contents
    from unnest(:chat_ids::text[]::bigint[], :chat_contents::text[]) as c (chat_id, contents)
),

chats_saved as (
    insert into persisted_chat_data (chat_id, contents)
    select
        chat_id,
        contents
    from chats_in
    where contents is not null
    on conflict (chat_id) do update
        set contents = excluded.contents, updated_at = now()
    returning 1
),

chats_dropped as (
    delete from persisted_chat_data as d
    using chats_in as c
    where d.chat_id = c.chat_id and c.contents is null
    returning 1
),

conversations_in as (
    select
        c.name,
        c.conversation_key::jsonb as conversation_key,
        c.state::jsonb as state
    from unnest(:flow_names::text[], :flow_keys::text[], :flow_states::text[]) as c (name, conversation_key, state)
),

conversations_saved as (
    insert into persisted_conversations (name, conversation_key, state)
    select
        name,
        conversation_key,
        state
    from conversations_in
    where state is not null
    on conflict (name, conversation_key) do update
        set state = excluded.state, updated_at = now()
    returning 1
),

conversations_ended as (
    delete from persisted_conversations as p
    using conversations_in as c
    where
        p.name = c.name
        and p.conversation_key = c.conversation_key
        and c.state is null
    returning 1
)

select
    (select count(*) from users_saved)
    + (select count(*) from users_dropped)
    + (select count(*) from chats_saved)
    + (select count(*) from chats_dropped)
    + (select count(*) from conversations_saved)
    + (select count(*) from conversations_ended) as written;

-- name: persistence_test_user_data(telegram_id)$
-- tests: one user's kept user_data as stored, or null.
-- Index: persisted_user_data pkey.
select contents
from persisted_user_data
where telegram_id = :telegram_id;

-- name: persistence_test_conversations(telegram_id)
-- tests: the stored conversation states that involve a user (key = [chat, user]).
-- Index: none, the table is small.
select
    name,
    conversation_key,
    state
from persisted_conversations
where conversation_key @> jsonb_build_array(:telegram_id::bigint)
order by name;

-- name: persistence_test_age_conversations(seconds)!
-- tests: every stored conversation state made older, as after a long downtime.
-- Index: none, every row.
update persisted_conversations
set updated_at = updated_at - make_interval(secs => :seconds::double precision);
