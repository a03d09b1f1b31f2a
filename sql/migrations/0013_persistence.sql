-- Conversations that survive a restart: python-telegram-bot's persistence
-- (bot/persistence.py) keeps each flow's state and the users' and chats'
-- data here instead of in memory only. Documents are JSON, never pickles:
-- readable here, and never code to run when loaded.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- One user's user_data, less the cached flow contexts (those are refetched).
-- A row exists only while there is something to keep: an empty user_data is
-- deleted, not stored. No foreign key: people talk to the bot before they
-- have an account.
create table persisted_user_data (
    telegram_id bigint primary key,
    contents jsonb not null check (jsonb_typeof(contents) = 'object'),
    updated_at timestamptz not null default now()
);

-- One chat's chat_data, the same way.
create table persisted_chat_data (
    chat_id bigint primary key,
    contents jsonb not null check (jsonb_typeof(contents) = 'object'),
    updated_at timestamptz not null default now()
);

-- Where each open conversation stands: per flow (the ConversationHandler's
-- name) and conversation key (a JSON array, [chat id, user id] for our
-- flows). An ended conversation is deleted. updated_at is when the state was
-- last written: a state idle longer than the flows' timeout is not restored.
create table persisted_conversations (
    name text not null,
    conversation_key jsonb not null check (jsonb_typeof(conversation_key) = 'array'),
    state jsonb not null,
    updated_at timestamptz not null default now(),
    primary key (name, conversation_key)
);
