-- The admin dashboard's counters, kept by triggers in the transaction that
-- changes what they count, so the dashboard reads a few hundred counter rows
-- whatever the size of the tables; and indexes for the admin user search.
--
-- How a change reaches the counters:
-- 1. A statement-level trigger on each counted table (users, escrows,
--    disputes, cashouts, ledger_entries) turns the statement's transition
--    tables into deltas: each new row version counts +1, each old one -1, so
--    a status change decrements the old status and increments the new one,
--    and a bulk insert costs one trigger call. The deltas are queued in
--    dashboard_pending under the transaction's id.
-- 2. At commit, a deferred constraint trigger adds the transaction's queued
--    deltas to dashboard_counters, in one statement, in key order, on the
--    shard of the committing backend (pg_backend_pid() % 8). Counter rows
--    are locked only then, all in the same global order, and nothing else is
--    locked after them: the counters never hold up a movement mid-way and
--    can be part of no deadlock. A rolled-back transaction (or savepoint)
--    takes its queued deltas with it.
-- Consequences: a transaction sees its own changes in the counters only once
-- it has committed (the dashboard shows committed numbers); TRUNCATE of a
-- counted table is not counted (nothing truncates them).
-- Time: new users and ledger volume are kept per hour (UTC) of the row's
-- created_at, and the dashboard adds up the last 25 hourly buckets, so its
-- 24 h figures are exact to the hour: from the start of the hour 24 hours
-- ago, i.e. the last 24 to 25 hours.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

-- Created in 0003 and used by nothing until now; it lacked the time bucket.
-- squawk-ignore ban-drop-table
drop table dashboard_counters;

-- One counter per (bucket, metric, dimension, shard). `bucket` is
-- '-infinity' for all-time figures and the start of an hour (UTC) for the
-- hourly ones (new users, ledger volume). `dimension` is a currency or a
-- status, '' when the metric has none. The dashboard sums the shards.
-- The key leads with the bucket so that the dashboard's two ranges (the
-- all-time rows, the last 25 hours) stay short however much history piles up.
create table dashboard_counters (
    bucket timestamptz not null,
    metric text not null,
    dimension text not null default '',
    shard integer not null,
    value numeric(38, 18) not null,
    primary key (bucket, metric, dimension, shard),
    constraint dashboard_counters_shard check (shard between 0 and 15)
);

-- Deltas of transactions still running, flushed into dashboard_counters at
-- their commit. Unlogged: a row lives only as long as its transaction, which
-- a crash would roll back anyway.
create unlogged table dashboard_pending (
    xact xid8 not null,
    bucket timestamptz not null,
    metric text not null,
    dimension text not null,
    delta numeric(38, 18) not null
);

-- The flush: a transaction's deltas.
create index dashboard_pending_xact on dashboard_pending (xact);

-- One row per transaction with queued deltas: its insert schedules the one
-- flush of that transaction.
create unlogged table dashboard_pending_xacts (
    xact xid8 primary key
);

-- What one row version of each counted table contributes, times p_sign
-- (+1 for a new version, -1 for an old one). Zero terms are dropped later.

-- Users: all of them, the onboarded ones, and sign-ups per hour.
create function dashboard_terms_users(r users, p_sign integer)
returns table (bucket timestamptz, metric text, dimension text, delta numeric)
language sql stable
as $$
    select
        t.bucket,
        t.metric,
        '' as dimension,
        t.delta
    from (
        values
        ('-infinity'::timestamptz, 'users', p_sign::numeric),
        ('-infinity'::timestamptz, 'users_onboarded', (r.onboarding = 'complete')::integer * p_sign),
        (date_trunc('hour', r.created_at, 'UTC'), 'users_new', p_sign::numeric)
    ) as t (bucket, metric, delta)
$$;

-- Escrows: how many per status, and what the escrows holding money hold
-- (amount + buyer_fee while funded, accepted, delivered or disputed), per currency.
create function dashboard_terms_escrows(r escrows, p_sign integer)
returns table (bucket timestamptz, metric text, dimension text, delta numeric)
language sql stable
as $$
    select
        '-infinity'::timestamptz as bucket,
        t.metric,
        t.dimension,
        t.delta
    from (
        values
        ('escrows', r.status::text, p_sign::numeric),
        (
            'escrow_funds_held',
            r.currency,
            case
                when r.status in ('funded', 'accepted', 'delivered', 'disputed')
                    then (r.amount + r.buyer_fee) * p_sign
                else 0
            end
        )
    ) as t (metric, dimension, delta)
$$;

-- Disputes: the live ones (open or in review).
create function dashboard_terms_disputes(r disputes, p_sign integer)
returns table (bucket timestamptz, metric text, dimension text, delta numeric)
language sql stable
as $$
    select
        '-infinity'::timestamptz as bucket,
        'disputes_open' as metric,
        '' as dimension,
        (r.status in ('open', 'in_review'))::integer * p_sign::numeric as delta
$$;

-- Cashouts in flight (pending, approved, processing): how many and their
-- amount, per currency.
create function dashboard_terms_cashouts(r cashouts, p_sign integer)
returns table (bucket timestamptz, metric text, dimension text, delta numeric)
language sql stable
as $$
    select
        '-infinity'::timestamptz as bucket,
        t.metric,
        r.currency as dimension,
        t.delta * (r.status in ('pending', 'approved', 'processing'))::integer * p_sign
    from (
        values
        ('cashouts_in_flight', 1::numeric),
        ('cashouts_in_flight_amount', r.amount)
    ) as t (metric, delta)
$$;

-- Ledger entries: money moved, the positive side of every transfer, per
-- currency and hour.
create function dashboard_terms_ledger_entries(r ledger_entries, p_sign integer)
returns table (bucket timestamptz, metric text, dimension text, delta numeric)
language sql stable
as $$
    select
        date_trunc('hour', r.created_at, 'UTC') as bucket,
        'ledger_volume' as metric,
        r.currency as dimension,
        greatest(r.amount, 0) * p_sign as delta
$$;

-- The statement-level triggers of the counted tables: the statement's
-- transition tables (new_rows, old_rows) become deltas queued for the flush.
-- An update that changes nothing counted cancels out and queues nothing.

-- After a trigger queued deltas: make sure its transaction flushes them at commit.
create function dashboard_queued(p_queued boolean) returns void
language sql as $$
    insert into dashboard_pending_xacts (xact)
    select pg_current_xact_id()
    where p_queued
    on conflict do nothing
$$;

create function users_dashboard_count() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from new_rows as r cross join lateral dashboard_terms_users(r, 1) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    elsif tg_op = 'DELETE' then
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from old_rows as r cross join lateral dashboard_terms_users(r, -1) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    else
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from (
            select n.* from new_rows as r cross join lateral dashboard_terms_users(r, 1) as n
            union all
            select o.* from old_rows as r cross join lateral dashboard_terms_users(r, -1) as o
        ) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    end if;
    perform dashboard_queued(found);
    return null;
end;
$$;

create function escrows_dashboard_count() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from new_rows as r cross join lateral dashboard_terms_escrows(r, 1) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    elsif tg_op = 'DELETE' then
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from old_rows as r cross join lateral dashboard_terms_escrows(r, -1) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    else
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from (
            select n.* from new_rows as r cross join lateral dashboard_terms_escrows(r, 1) as n
            union all
            select o.* from old_rows as r cross join lateral dashboard_terms_escrows(r, -1) as o
        ) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    end if;
    perform dashboard_queued(found);
    return null;
end;
$$;

create function disputes_dashboard_count() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from new_rows as r cross join lateral dashboard_terms_disputes(r, 1) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    elsif tg_op = 'DELETE' then
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from old_rows as r cross join lateral dashboard_terms_disputes(r, -1) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    else
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from (
            select n.* from new_rows as r cross join lateral dashboard_terms_disputes(r, 1) as n
            union all
            select o.* from old_rows as r cross join lateral dashboard_terms_disputes(r, -1) as o
        ) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    end if;
    perform dashboard_queued(found);
    return null;
end;
$$;

create function cashouts_dashboard_count() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from new_rows as r cross join lateral dashboard_terms_cashouts(r, 1) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    elsif tg_op = 'DELETE' then
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from old_rows as r cross join lateral dashboard_terms_cashouts(r, -1) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    else
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from (
            select n.* from new_rows as r cross join lateral dashboard_terms_cashouts(r, 1) as n
            union all
            select o.* from old_rows as r cross join lateral dashboard_terms_cashouts(r, -1) as o
        ) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    end if;
    perform dashboard_queued(found);
    return null;
end;
$$;

create function ledger_entries_dashboard_count() returns trigger
language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from new_rows as r cross join lateral dashboard_terms_ledger_entries(r, 1) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    elsif tg_op = 'DELETE' then
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from old_rows as r cross join lateral dashboard_terms_ledger_entries(r, -1) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    else
        insert into dashboard_pending (xact, bucket, metric, dimension, delta)
        select pg_current_xact_id(), t.bucket, t.metric, t.dimension, sum(t.delta)
        from (
            select n.* from new_rows as r cross join lateral dashboard_terms_ledger_entries(r, 1) as n
            union all
            select o.* from old_rows as r cross join lateral dashboard_terms_ledger_entries(r, -1) as o
        ) as t
        group by t.bucket, t.metric, t.dimension
        having sum(t.delta) <> 0;
    end if;
    perform dashboard_queued(found);
    return null;
end;
$$;

-- At commit: the transaction's deltas into the counters, locked in key order.
create function dashboard_flush() returns trigger
language plpgsql as $$
begin
    with flushed as (
        delete from dashboard_pending as p
        where p.xact = new.xact
        returning p.bucket, p.metric, p.dimension, p.delta
    )
    insert into dashboard_counters as c (bucket, metric, dimension, shard, value)
    select f.bucket, f.metric, f.dimension, pg_backend_pid() % 8, sum(f.delta)
    from flushed as f
    group by f.bucket, f.metric, f.dimension
    having sum(f.delta) <> 0
    order by f.bucket, f.metric, f.dimension
    on conflict (bucket, metric, dimension, shard)
    do update set value = c.value + excluded.value;
    delete from dashboard_pending_xacts where xact = new.xact;
    return null;
end;
$$;

create constraint trigger dashboard_flush
after insert on dashboard_pending_xacts
deferrable initially deferred
for each row execute function dashboard_flush();

-- Transition tables allow one event per trigger: three triggers per table.
create trigger users_dashboard_insert
after insert on users
referencing new table as new_rows
for each statement execute function users_dashboard_count();

create trigger users_dashboard_update
after update on users
referencing old table as old_rows new table as new_rows
for each statement execute function users_dashboard_count();

create trigger users_dashboard_delete
after delete on users
referencing old table as old_rows
for each statement execute function users_dashboard_count();

create trigger escrows_dashboard_insert
after insert on escrows
referencing new table as new_rows
for each statement execute function escrows_dashboard_count();

create trigger escrows_dashboard_update
after update on escrows
referencing old table as old_rows new table as new_rows
for each statement execute function escrows_dashboard_count();

create trigger escrows_dashboard_delete
after delete on escrows
referencing old table as old_rows
for each statement execute function escrows_dashboard_count();

create trigger disputes_dashboard_insert
after insert on disputes
referencing new table as new_rows
for each statement execute function disputes_dashboard_count();

create trigger disputes_dashboard_update
after update on disputes
referencing old table as old_rows new table as new_rows
for each statement execute function disputes_dashboard_count();

create trigger disputes_dashboard_delete
after delete on disputes
referencing old table as old_rows
for each statement execute function disputes_dashboard_count();

create trigger cashouts_dashboard_insert
after insert on cashouts
referencing new table as new_rows
for each statement execute function cashouts_dashboard_count();

create trigger cashouts_dashboard_update
after update on cashouts
referencing old table as old_rows new table as new_rows
for each statement execute function cashouts_dashboard_count();

create trigger cashouts_dashboard_delete
after delete on cashouts
referencing old table as old_rows
for each statement execute function cashouts_dashboard_count();

create trigger ledger_entries_dashboard_insert
after insert on ledger_entries
referencing new table as new_rows
for each statement execute function ledger_entries_dashboard_count();

create trigger ledger_entries_dashboard_update
after update on ledger_entries
referencing old table as old_rows new table as new_rows
for each statement execute function ledger_entries_dashboard_count();

create trigger ledger_entries_dashboard_delete
after delete on ledger_entries
referencing old table as old_rows
for each statement execute function ledger_entries_dashboard_count();

-- Admin user search: a case-insensitive prefix of the username, first name
-- or e-mail. LIKE 'x%' can use a btree only through text_pattern_ops under
-- a non-C collation; the unique lower() indexes of 0001 serve equality.
-- squawk-ignore require-concurrent-index-creation
create index users_username_prefix on users (lower(username) text_pattern_ops);
-- squawk-ignore require-concurrent-index-creation
create index users_first_name_prefix on users (lower(first_name) text_pattern_ops);
-- squawk-ignore require-concurrent-index-creation
create index users_email_prefix on users (lower(email) text_pattern_ops);

-- Backfill: the counters of every row that exists now. The triggers above
-- took their tables' locks, so no write slips between this count and them.
insert into dashboard_counters (bucket, metric, dimension, shard, value)
select
    t.bucket,
    t.metric,
    t.dimension,
    0 as shard,
    sum(t.delta) as value
from (
    select d.* from users as r cross join lateral dashboard_terms_users(r, 1) as d
    union all
    select d.* from escrows as r cross join lateral dashboard_terms_escrows(r, 1) as d
    union all
    select d.* from disputes as r cross join lateral dashboard_terms_disputes(r, 1) as d
    union all
    select d.* from cashouts as r cross join lateral dashboard_terms_cashouts(r, 1) as d
    union all
    select d.* from ledger_entries as r cross join lateral dashboard_terms_ledger_entries(r, 1) as d
) as t
group by t.bucket, t.metric, t.dimension
having sum(t.delta) <> 0;
