-- Outbox: the sender's queue of notifications (migration 0012 writes the
-- rows, in the transactions of the movements), and the delivery-deadline
-- reminders queued into it.

-- name: outbox_claim(batch)
-- Sender (bot/outbox.py), first statement of its transaction: up to `batch`
-- rows due, the longest due first, locked FOR UPDATE SKIP LOCKED so that a
-- second sender takes other rows and no row is delivered twice; the lock
-- holds until the sender records the results and commits (a sender that dies
-- first leaves its rows to the next one). With each row, everything its text
-- is rendered from, so that a batch costs this one read: the escrow and its
-- currency, the buyer's name, the dispute with its opener, the message with
-- its sender and their part, the cashout with its bank.
-- Indexes: outbox_due; escrows, disputes, dispute_messages, cashouts,
-- users, currencies, banks (pk).
with
due as (
    select o.id
    from outbox as o
    where o.sent_at is null and o.failed_at is null and o.next_attempt_at <= now()
    order by o.next_attempt_at, o.id
    limit :batch
    for update skip locked
)

select
    o.id,
    o.telegram_id,
    o.kind,
    o.payload,
    o.attempts,
    o.created_at,
    e.id as escrow_id,
    e.ref as escrow_ref,
    e.description as escrow_description,
    e.status::text as escrow_status,
    e.amount as escrow_amount,
    e.buyer_fee as escrow_buyer_fee,
    e.seller_fee as escrow_seller_fee,
    e.delivery_deadline,
    e.auto_release_at,
    coalesce(nullif(bu.first_name, ''), bu.username) as buyer_name,
    d.id as dispute_id,
    d.reason as dispute_reason,
    d.resolution::text as dispute_resolution,
    coalesce(nullif(op.first_name, ''), op.username) as opener_name,
    case when d.opened_by_id = e.buyer_id then 'buyer' else 'seller' end as opener_role,
    m.body as message_body,
    coalesce(nullif(se.first_name, ''), se.username) as sender_name,
    case
        when m.sender_id = e.buyer_id then 'buyer'
        when m.sender_id = e.seller_id then 'seller'
        else 'admin'
    end as sender_role,
    co.id as cashout_id,
    co.amount as cashout_amount,
    co.fee as cashout_fee,
    co.failure_reason as cashout_failure_reason,
    co.destination::text as cashout_destination,
    co.network as cashout_network,
    co.address as cashout_address,
    coalesce(bk.name, co.bank_code) as cashout_bank,
    co.account_number as cashout_account_number,
    co.account_name as cashout_account_name,
    c.code as currency,
    c.decimals
from due
inner join outbox as o on due.id = o.id
left join dispute_messages as m on m.id = (o.payload ->> 'message_id')::bigint
left join disputes as d on d.id = coalesce((o.payload ->> 'dispute_id')::bigint, m.dispute_id)
left join escrows as e on e.id = coalesce((o.payload ->> 'escrow_id')::bigint, d.escrow_id)
left join cashouts as co on co.id = (o.payload ->> 'cashout_id')::bigint
left join banks as bk on co.bank_code = bk.code
left join users as bu on e.buyer_id = bu.id
left join users as op on d.opened_by_id = op.id
left join users as se on m.sender_id = se.id
left join currencies as c on c.code = coalesce(e.currency, co.currency, o.payload ->> 'currency')
order by o.next_attempt_at, o.id;

-- name: outbox_settle(ids, outcomes, delays, reasons)!
-- Sender, last statement of its transaction: what became of each claimed
-- row. 'sent' and 'failed' settle it; 'retry' counts the attempt and sets
-- when to try again (`delays`, seconds from now); 'defer' only moves it
-- later (a rate limit: no attempt was made). `reasons` is the error, kept
-- in failed_reason. Index: outbox (pk).
update outbox as o
set
    attempts = o.attempts + case when r.outcome = 'defer' then 0 else 1 end,
    sent_at = case when r.outcome = 'sent' then clock_timestamp() else o.sent_at end,
    failed_at = case when r.outcome = 'failed' then clock_timestamp() else o.failed_at end,
    failed_reason = coalesce(r.reason, o.failed_reason),
    next_attempt_at = case
        when r.outcome in ('retry', 'defer')
            then clock_timestamp() + make_interval(secs => r.delay)
        else o.next_attempt_at
    end
from
    unnest(
        :ids::bigint[], :outcomes::text[], :delays::float8[], :reasons::text[]
    ) as r (id, outcome, delay, reason)
where o.id = r.id;

-- name: outbox_queue_reminders()$
-- Reminder job (bot/outbox.py): for each accepted escrow whose delivery
-- deadline is within a lead (24 h, 8 h, 2 h, 30 min) and still ahead, claims
-- (escrow, lead) in escrow_reminders and queues a reminder to the seller for
-- the nearest lead newly claimed; leads passed meanwhile (a short deadline,
-- a job that was down) are claimed with it and never sent. Two runs at once:
-- the second waits on the first's claims, then finds them taken. Returns
-- how many reminders were queued.
-- Indexes: escrows_delivery_deadline, escrow_reminders (pk), users (pk).
with
leads (minutes) as (
    values (1440), (480), (120), (30)
),

due as (
    select
        e.id as escrow_id,
        l.minutes
    from escrows as e
    inner join leads as l
        on e.delivery_deadline <= now() + make_interval(mins => l.minutes)
    where
        e.status = 'accepted'
        and e.delivery_deadline > now()
        and e.delivery_deadline <= now() + interval '1440 minutes'
),

claimed as (
    insert into escrow_reminders (escrow_id, lead_minutes)
    select
        due.escrow_id,
        due.minutes
    from due
    -- One order for every run, so that two runs wait on each other, never deadlock.
    order by due.escrow_id, due.minutes
    on conflict do nothing
    returning escrow_id, lead_minutes
),

nearest as (
    select distinct on (c.escrow_id)
        c.escrow_id,
        c.lead_minutes
    from claimed as c
    order by c.escrow_id, c.lead_minutes
),

queued as (
    insert into outbox (telegram_id, kind, payload)
    select
        u.telegram_id,
        'delivery_reminder' as kind,
        jsonb_build_object('escrow_id', n.escrow_id, 'lead_minutes', n.lead_minutes) as payload
    from nearest as n
    inner join escrows as e on n.escrow_id = e.id
    inner join users as u on e.seller_id = u.id
    order by n.escrow_id
    returning id
)

select count(*) as queued from queued;

-- name: outbox_prune(keep_days, batch)$
-- Sender, now and then: deletes up to `batch` rows delivered or given up
-- more than `keep_days` ago; returns how many. Index: outbox_settled.
with
old as (
    select o.id
    from outbox as o
    where
        (o.sent_at is not null or o.failed_at is not null)
        and o.created_at < now() - make_interval(days => :keep_days)
    order by o.created_at
    limit :batch
    for update skip locked
),

deleted as (
    delete from outbox as o
    using old
    where o.id = old.id
    returning o.id
)

select count(*) as deleted from deleted;

-- name: outbox_test_rows()
-- tests: every outbox row, oldest first.
select
    id,
    telegram_id,
    kind,
    payload,
    attempts,
    next_attempt_at,
    sent_at,
    failed_at,
    failed_reason,
    next_attempt_at <= now() as due
from outbox
order by id;

-- name: outbox_test_make_due()!
-- tests: every row waiting for a retry is due now, as the clock would make it.
update outbox
set next_attempt_at = now()
where sent_at is null and failed_at is null;

-- name: outbox_test_age(days)!
-- tests: every row was made `days` ago.
update outbox
set created_at = created_at - make_interval(days => :days);

-- name: outbox_test_kinds()$
-- tests: the outbox_kind check constraint as written, to compare with
-- bot/data/outbox.py's OutboxKind.
select pg_get_constraintdef(c.oid) as definition
from pg_constraint as c
where c.conname = 'outbox_kind' and c.conrelid = 'outbox'::regclass;

-- name: outbox_test_set_delivery_deadline(escrow_id, minutes)!
-- tests: an accepted escrow's delivery deadline `minutes` from now.
update escrows
set delivery_deadline = now() + make_interval(mins => :minutes)
where id = :escrow_id;

-- name: outbox_test_reminders()
-- tests: the reminders claimed, per escrow and lead.
select
    escrow_id,
    lead_minutes
from escrow_reminders
order by escrow_id, lead_minutes;

-- name: outbox_test_seconds_until(outbox_id)$
-- tests: seconds from now until the row is due (negative: due already).
select date_part('epoch', next_attempt_at - clock_timestamp())::float8 as wait_seconds
from outbox
where id = :outbox_id;

-- name: outbox_test_terminate(pid)$
-- tests: ends a session of the server (the sender's listener), as a failover would.
select pg_terminate_backend(:pid) as ended;
