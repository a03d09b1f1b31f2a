-- The history screen filtered by currency.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- History screen, one currency: a user's entries in that currency newest
-- first, keyset on (created_at, id). Without it a filtered page walks all of
-- the user's entries in other currencies to find its few. Built inside the
-- migration's transaction (no concurrently there): writes to ledger_entries
-- wait for the build.
-- squawk-ignore require-concurrent-index-creation
create index ledger_entries_user_currency
on ledger_entries (user_id, currency, created_at desc, id desc)
where user_id is not null;
