-- Invalidation across bot processes: a committed change of a user's
-- balances, escrows or saved destinations sends NOTIFY on channel
-- 'lockbay_user' with the user's Telegram id, and every bot process LISTENs
-- (bot/cache.py) and drops that user's cached flow contexts.
--
-- Why triggers: every movement is covered, whichever query or function made
-- it, and a trigger adds no round trip. Why NOTIFY: PostgreSQL delivers it
-- only when the transaction commits (a rolled-back movement tells nobody)
-- and folds identical payloads of one transaction into one (a movement that
-- touches a user's wallet twice and an escrow sends one notification).
-- The triggers are statement-level with transition tables, like the
-- dashboard's (0009): one call per statement however many rows it changes,
-- and a statement that changes nothing watched notifies nobody.
-- Cost: a transaction that notified takes PostgreSQL's notify-queue lock
-- for its commit, so such commits queue one after another; a commit is
-- short, and the alternative (a process polling a table) costs a round
-- trip per poll.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- One notification per user among p_user_ids (duplicates and nulls are
-- fine). The channel's name lives here only.
create function notify_users(p_user_ids bigint[]) returns void
language plpgsql as $$
begin
    -- PERFORM runs the whole query: one pg_notify per matching user.
    perform pg_notify('lockbay_user', u.telegram_id::text)
    from users as u
    where u.id = any(p_user_ids);
end;
$$;

-- Wallets: balances that changed. A new wallet starts at zero (no change
-- to tell), and wallets are never deleted.
create function wallets_notify() returns trigger
language plpgsql as $$
begin
    perform notify_users(array(
        select n.user_id
        from new_rows as n
        inner join old_rows as o on n.id = o.id
        where n.available <> o.available or n.held <> o.held
    ));
    return null;
end;
$$;

-- Escrows: a new escrow (its buyer and seller), and a change of status or
-- of a party (both sides, before and after). Deadlines, payment details and
-- the like change only with a status; escrows are never deleted.
create function escrows_notify() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        perform notify_users(array(
            select p.user_id
            from new_rows as n
            cross join lateral (values (n.buyer_id), (n.seller_id)) as p (user_id)
        ));
    else
        perform notify_users(array(
            select p.user_id
            from new_rows as n
            inner join old_rows as o on n.id = o.id
            cross join lateral (
                values (n.buyer_id), (n.seller_id), (o.buyer_id), (o.seller_id)
            ) as p (user_id)
            where
                n.status <> o.status
                or n.buyer_id <> o.buyer_id
                or n.seller_id is distinct from o.seller_id
        ));
    end if;
    return null;
end;
$$;

-- Saved addresses and bank accounts (both tables have user_id): any insert,
-- update (label, holder name, last use, soft delete) or delete.
create function saved_destinations_notify() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        perform notify_users(array(select n.user_id from new_rows as n));
    elsif tg_op = 'DELETE' then
        perform notify_users(array(select o.user_id from old_rows as o));
    else
        perform notify_users(array(
            select n.user_id from new_rows as n
            union all
            select o.user_id from old_rows as o
        ));
    end if;
    return null;
end;
$$;

-- Transition tables allow one event per trigger, and no column list.
create trigger wallets_notify
after update on wallets
referencing old table as old_rows new table as new_rows
for each statement execute function wallets_notify();

create trigger escrows_notify_insert
after insert on escrows
referencing new table as new_rows
for each statement execute function escrows_notify();

create trigger escrows_notify_update
after update on escrows
referencing old table as old_rows new table as new_rows
for each statement execute function escrows_notify();

create trigger saved_addresses_notify_insert
after insert on saved_addresses
referencing new table as new_rows
for each statement execute function saved_destinations_notify();

create trigger saved_addresses_notify_update
after update on saved_addresses
referencing old table as old_rows new table as new_rows
for each statement execute function saved_destinations_notify();

create trigger saved_addresses_notify_delete
after delete on saved_addresses
referencing old table as old_rows
for each statement execute function saved_destinations_notify();

create trigger saved_bank_accounts_notify_insert
after insert on saved_bank_accounts
referencing new table as new_rows
for each statement execute function saved_destinations_notify();

create trigger saved_bank_accounts_notify_update
after update on saved_bank_accounts
referencing old table as old_rows new table as new_rows
for each statement execute function saved_destinations_notify();

create trigger saved_bank_accounts_notify_delete
after delete on saved_bank_accounts
referencing old table as old_rows
for each statement execute function saved_destinations_notify();
