-- The migration runner's own bookkeeping (`lockbay migrate`, tests, demo).

-- name: lock_migrations()$
-- Migration runner: one runner at a time, until its transaction ends.
select pg_advisory_xact_lock(hashtext('lockbay.migrate'));

-- name: create_schema_migrations#
-- Migration runner: the record of applied files.
create table if not exists schema_migrations (
    filename text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
);

-- name: applied_migrations()
-- Migration runner: what has run, with the checksum it had.
select
    filename,
    checksum
from schema_migrations
order by filename;

-- name: record_migration(filename, checksum)!
-- Migration runner: one file applied.
insert into schema_migrations (filename, checksum)
values (:filename, :checksum);

-- name: schema_enum_labels()
-- tests: every enum type with its labels in order, to compare with the
-- Python mirrors in bot/data/enums.py.
select
    t.typname,
    array_agg(e.enumlabel order by e.enumsortorder) as labels
from pg_type as t
inner join pg_enum as e on t.oid = e.enumtypid
group by t.typname;

-- name: schema_relation(relation_name)$
-- tests: the table of that name, or null when it does not exist.
select to_regclass(:relation_name)::text as relation;
