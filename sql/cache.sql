-- Cache invalidation: the listener's own connection (bot/cache.py). The
-- notifications themselves come from triggers (migration 0011).

-- name: cache_keepalive()$
-- The invalidation listener's keep-alive on its dedicated connection: a
-- connection that cannot answer this is given up and opened again (then
-- every cached context is dropped, since notifications may have been missed).
select true as alive;

-- name: cache_test_terminate_backend(backend_pid)$
-- tests: ends one server session of this database (the listener's), as an
-- administrator or a failover would. Ask from another connection.
select pg_terminate_backend(a.pid) as ended
from pg_stat_activity as a
where a.pid = :backend_pid and a.datname = current_database();
