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
