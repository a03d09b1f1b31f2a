-- Notifications through a transactional outbox: what the other party, a
-- user or an admin is told about a movement is a row of `outbox`, written by
-- the triggers below in the transaction of the movement itself. A movement
-- that rolls back leaves no row; a committed one leaves its rows until the
-- sender (bot/outbox.py) has delivered them, whatever happens to the process
-- that made them.
--
-- A row names its recipient (a Telegram id), its kind, and in `payload` the
-- ids the text is rendered from (escrow_id, dispute_id, message_id,
-- cashout_id), plus facts of the moment that the rows do not keep (what a
-- deposit credited, the balance it left, what a resolution paid each side).
-- The text itself is rendered by the sender, in Python.
--
-- Who is told what (the party who acted sees the result on their own screen
-- and is not told again):
--   escrows:   a new escrow -> its seller (an invited seller once they
--              join); funded -> the seller; accepted, declined, delivered,
--              refunded -> the buyer; released by the buyer -> the seller;
--              released automatically -> both; cancelled -> the seller. A
--              refund tells the buyer only: the movement does not record
--              whether the seller or an admin made it. Escrow changes made by
--              a dispute are told by the dispute's rows.
--   disputes:  opened -> the other party and every admin (users.is_admin);
--              resolved -> the buyer and the seller, each with what they got.
--   dispute_messages: the other parties, and the admin handling the dispute
--              (every admin while none does).
--   cashouts:  approved, paid, failed (an admin's rejection too) -> its user.
--   deposits:  a provider payment credited (webhook_events processed with a
--              deposit transfer) -> the payer, at commit, when what the
--              payment paid for (an escrow, an exchange) is settled too.
--
-- Rows made with a past created_at (the benchmark's scale seeding backfills
-- history) tell nobody: only what happens now is news.
--
-- Each insert into outbox sends NOTIFY on channel 'lockbay_outbox' (empty
-- payload, so one per transaction), delivered at commit: a sender LISTENs
-- and wakes at once instead of at its next poll.
--
-- Delivery-deadline reminders: `escrow_reminders` records each reminder
-- queued, one per (escrow, lead), so that a reminder is queued once however
-- many job runs (and processes) see it due.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create table outbox (
    id bigint generated always as identity primary key,
    telegram_id bigint not null,
    kind text not null,
    payload jsonb not null default '{}',
    created_at timestamptz not null default now(),
    -- Tries at Telegram that ended (sent, failed, or to be retried).
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    sent_at timestamptz,
    -- Given up: blocked by the user, refused by Telegram, out of retries.
    failed_at timestamptz,
    -- Why it failed, or the last error of a row still being retried.
    failed_reason text,
    -- bot/data/outbox.py's OutboxKind mirrors this list (a test compares them).
    constraint outbox_kind check (
        kind in (
            'escrow_created', 'escrow_funded', 'escrow_accepted', 'escrow_declined',
            'escrow_delivered', 'escrow_released', 'escrow_auto_released', 'escrow_refunded',
            'escrow_cancelled', 'delivery_reminder', 'dispute_opened', 'dispute_opened_admin',
            'dispute_message', 'dispute_resolved', 'deposit_credited', 'cashout_approved',
            'cashout_paid', 'cashout_failed'
        )
    ),
    constraint outbox_payload check (jsonb_typeof(payload) = 'object'),
    constraint outbox_attempts check (attempts >= 0),
    constraint outbox_settled_once check (sent_at is null or failed_at is null)
);

-- The sender's queue: rows still to deliver, the longest due first. Small:
-- a row leaves it once sent or failed.
create index outbox_due on outbox (next_attempt_at, id)
where sent_at is null and failed_at is null;

-- Pruning: delivered and failed rows, oldest first.
create index outbox_settled on outbox (created_at)
where sent_at is not null or failed_at is not null;

-- One row per reminder queued: the unique key is the "once".
create table escrow_reminders (
    escrow_id bigint not null references escrows (id),
    -- Minutes before the delivery deadline: 1440, 480, 120 or 30.
    lead_minutes integer not null,
    created_at timestamptz not null default now(),
    primary key (escrow_id, lead_minutes),
    constraint escrow_reminders_lead check (lead_minutes > 0)
);

-- Reminder job: accepted escrows by delivery deadline. Small: an escrow
-- leaves it once delivered, disputed or closed. Built inside the migration's
-- transaction (no concurrently there): escrow writes wait for the build.
-- squawk-ignore require-concurrent-index-creation
create index escrows_delivery_deadline on escrows (delivery_deadline)
where status = 'accepted';

-- Dispute notifications: the admins, without a scan of users.
-- squawk-ignore require-concurrent-index-creation
create index users_admins on users (id) where is_admin;

-- The transfer that a statement of this transaction posted for an escrow,
-- of one of p_kinds: now() is the transaction's start, which every transfer
-- of the transaction carries as created_at (ledger_transfers_created).
create function outbox_escrow_transfer(p_escrow_id bigint, p_kinds transfer_kind[])
returns bigint
language sql stable as $$
    select t.id
    from ledger_transfers as t
    where t.created_at = now() and t.escrow_id = p_escrow_id and t.kind = any(p_kinds)
    order by t.id desc
    limit 1
$$;

-- Escrows: a new one (statement-level: a bulk insert costs one call).
create function outbox_escrows_insert() returns trigger
language plpgsql as $$
begin
    insert into outbox (telegram_id, kind, payload)
    select
        s.telegram_id,
        'escrow_created',
        jsonb_build_object('escrow_id', n.id, 'status', n.status)
    from new_rows as n
    inner join users as s on n.seller_id = s.id
    where n.created_at >= now() and n.status in ('awaiting_payment', 'funded')
    order by n.id;
    return null;
end;
$$;

-- Escrows: a change of status, told to whoever did not make it.
create function outbox_escrows_update() returns trigger
language plpgsql as $$
begin
    insert into outbox (telegram_id, kind, payload)
    select
        u.telegram_id,
        r.kind,
        jsonb_build_object('escrow_id', n.id, 'status', n.status)
    from new_rows as n
    inner join old_rows as o on n.id = o.id
    cross join lateral (
        -- Nobody pressed anything: the auto-release job released it, as its
        -- transfer's memo says (escrow_auto_release_batch).
        select
            o.status = 'delivered' and n.status = 'completed'
            and exists (
                select 1
                from ledger_transfers as t
                where t.id = outbox_escrow_transfer(n.id, array['escrow_release'::transfer_kind])
                    and t.memo like '% released automatically'
            ) as auto
    ) as a
    cross join lateral (
        values
        (
            -- An invited seller who joined: the escrow is theirs now.
            'escrow_created',
            n.seller_id,
            o.seller_id is null and n.seller_id is not null
            and n.status in ('awaiting_payment', 'funded')
        ),
        ('escrow_funded', n.seller_id, o.status = 'awaiting_payment' and n.status = 'funded'),
        ('escrow_accepted', n.buyer_id, o.status = 'funded' and n.status = 'accepted'),
        ('escrow_declined', n.buyer_id, o.status = 'funded' and n.status = 'declined'),
        ('escrow_delivered', n.buyer_id, o.status = 'accepted' and n.status = 'delivered'),
        (
            'escrow_released',
            n.seller_id,
            o.status in ('accepted', 'delivered') and n.status = 'completed' and not a.auto
        ),
        ('escrow_auto_released', n.buyer_id, a.auto),
        ('escrow_auto_released', n.seller_id, a.auto),
        (
            'escrow_refunded',
            n.buyer_id,
            o.status in ('funded', 'accepted', 'delivered') and n.status = 'refunded'
        ),
        ('escrow_cancelled', n.seller_id, o.status = 'awaiting_payment' and n.status = 'cancelled')
    ) as r (kind, user_id, applies)
    inner join users as u on r.user_id = u.id
    where r.applies
    order by n.id, r.kind;
    return null;
end;
$$;

-- Disputes: opened (the other party, and the admins who are not parties).
create function outbox_disputes_insert() returns trigger
language plpgsql as $$
begin
    insert into outbox (telegram_id, kind, payload)
    select
        u.telegram_id,
        r.kind,
        jsonb_build_object('dispute_id', n.id)
    from new_rows as n
    inner join escrows as e on n.escrow_id = e.id
    cross join lateral (
        select
            'dispute_opened' as kind,
            p.user_id
        from (values (e.buyer_id), (e.seller_id)) as p (user_id)
        where p.user_id <> n.opened_by_id
        union all
        select
            'dispute_opened_admin' as kind,
            a.id as user_id
        from users as a
        where a.is_admin and a.id not in (e.buyer_id, coalesce(e.seller_id, 0), n.opened_by_id)
    ) as r
    inner join users as u on r.user_id = u.id
    where n.created_at >= now()
    order by n.id, r.kind, u.telegram_id;
    return null;
end;
$$;

-- Disputes: resolved. Each side is told what reached their wallet, read
-- from the resolution's transfer (no entry: nothing).
create function outbox_disputes_update() returns trigger
language plpgsql as $$
begin
    insert into outbox (telegram_id, kind, payload)
    select
        u.telegram_id,
        'dispute_resolved',
        jsonb_build_object(
            'dispute_id', n.id,
            'role', p.role,
            'amount', coalesce((
                select sum(le.amount)
                from ledger_entries as le
                where
                    le.transfer_id = outbox_escrow_transfer(
                        n.escrow_id,
                        array['escrow_refund', 'escrow_release', 'escrow_split']::transfer_kind[]
                    )
                    and le.user_id = p.user_id
            ), 0)
        )
    from new_rows as n
    inner join old_rows as o on n.id = o.id
    inner join escrows as e on n.escrow_id = e.id
    cross join lateral (values ('buyer', e.buyer_id), ('seller', e.seller_id)) as p (role, user_id)
    inner join users as u on p.user_id = u.id
    where n.status = 'resolved' and o.status <> 'resolved'
    order by n.id, p.role;
    return null;
end;
$$;

-- Dispute messages: the parties but the sender, and the handling admin
-- (every admin while none handles it). The statement that posts also takes
-- the dispute for an admin; this runs after it, so it sees who handles it.
create function outbox_dispute_messages_insert() returns trigger
language plpgsql as $$
begin
    insert into outbox (telegram_id, kind, payload)
    select
        r.telegram_id,
        'dispute_message',
        jsonb_build_object('message_id', r.message_id)
    from (
        select distinct
            m.id as message_id,
            u.telegram_id
        from new_rows as m
        inner join disputes as d on m.dispute_id = d.id
        inner join escrows as e on d.escrow_id = e.id
        cross join lateral (
            select e.buyer_id as user_id
            union all
            select e.seller_id
            union all
            select d.admin_id
            union all
            select a.id
            from users as a
            where a.is_admin and d.admin_id is null
        ) as p
        inner join users as u on p.user_id = u.id
        where m.created_at >= now() and p.user_id <> m.sender_id
    ) as r
    order by r.message_id, r.telegram_id;
    return null;
end;
$$;

-- Cashouts: the user told of each decision and result.
create function outbox_cashouts_update() returns trigger
language plpgsql as $$
begin
    insert into outbox (telegram_id, kind, payload)
    select
        u.telegram_id,
        case n.status
            when 'approved' then 'cashout_approved'
            when 'completed' then 'cashout_paid'
            -- An admin's rejection too: its failure_reason says so (bot/outbox.py).
            else 'cashout_failed'
        end,
        jsonb_build_object('cashout_id', n.id)
    from new_rows as n
    inner join old_rows as o on n.id = o.id
    inner join users as u on n.user_id = u.id
    where
        n.status is distinct from o.status
        and (
            (o.status = 'pending' and n.status = 'approved')
            or n.status in ('completed', 'failed')
        )
    order by n.id;
    return null;
end;
$$;

-- A provider payment credited: at commit (a deferred constraint trigger),
-- once what the payment was for has been paid from the wallet or refused in
-- the same transaction. The payload keeps what the text needs and the rows
-- will not: the amount credited, the balance at commit, whether this
-- payment paid the escrow or made the exchange, what the order still needed.
create function outbox_deposit_credited() returns trigger
language plpgsql as $$
declare
    v_entry record;
    v_payload jsonb;
begin
    select
        le.amount,
        le.currency,
        w.available,
        u.telegram_id
    into v_entry
    from ledger_transfers as t
    inner join ledger_entries as le on t.id = le.transfer_id
    inner join ledger_accounts as a on le.account_id = a.id
    inner join wallets as w on a.wallet_id = w.id
    inner join users as u on w.user_id = u.id
    where t.id = new.transfer_id and t.kind = 'deposit' and a.kind = 'wallet_available';
    if not found then
        return null;  -- a payout's event, or no credit: nothing to tell here
    end if;
    v_payload := jsonb_build_object(
        'event_id', new.id,
        'order_ref', new.order_ref,
        'currency', v_entry.currency,
        'amount', v_entry.amount,
        'available', v_entry.available,
        'difference', new.payload -> '_lockbay' -> 'difference'
    );
    v_payload := v_payload || coalesce(
        (
            select jsonb_build_object('order_kind', 'deposit', 'order_id', d.id)
            from deposit_orders as d
            where d.ref = new.order_ref
        ),
        (
            select jsonb_build_object(
                'order_kind', 'escrow',
                'order_id', e.id,
                'escrow_id', e.id,
                'status', e.status,
                'paid', e.status <> 'awaiting_payment' and e.funded_at = now(),
                'needed', e.amount + e.buyer_fee
            )
            from escrows as e
            where e.payment_reference = new.order_ref
        ),
        (
            select jsonb_build_object(
                'order_kind', 'exchange',
                'order_id', x.id,
                'status', x.status,
                'paid', x.status = 'completed' and x.completed_at = now(),
                'needed', x.from_amount,
                'to_amount', x.to_amount,
                'to_currency', x.to_currency,
                'to_decimals', tc.decimals
            )
            from exchange_orders as x
            inner join currencies as tc on x.to_currency = tc.code
            where x.payment_reference = new.order_ref
        ),
        '{}'::jsonb
    );
    insert into outbox (telegram_id, kind, payload)
    values (v_entry.telegram_id, 'deposit_credited', v_payload);
    return null;
end;
$$;

-- Wake the senders: NOTIFY is delivered at commit, and one per transaction.
create function outbox_wake() returns trigger
language plpgsql as $$
begin
    if exists (select 1 from new_rows) then
        perform pg_notify('lockbay_outbox', '');
    end if;
    return null;
end;
$$;

create trigger outbox_escrows_insert
after insert on escrows
referencing new table as new_rows
for each statement execute function outbox_escrows_insert();

create trigger outbox_escrows_update
after update on escrows
referencing old table as old_rows new table as new_rows
for each statement execute function outbox_escrows_update();

create trigger outbox_disputes_insert
after insert on disputes
referencing new table as new_rows
for each statement execute function outbox_disputes_insert();

create trigger outbox_disputes_update
after update on disputes
referencing old table as old_rows new table as new_rows
for each statement execute function outbox_disputes_update();

create trigger outbox_dispute_messages_insert
after insert on dispute_messages
referencing new table as new_rows
for each statement execute function outbox_dispute_messages_insert();

create trigger outbox_cashouts_update
after update on cashouts
referencing old table as old_rows new table as new_rows
for each statement execute function outbox_cashouts_update();

create constraint trigger outbox_deposit_credited
after update of processed_at on webhook_events
deferrable initially deferred
for each row
when (old.processed_at is null and new.processed_at is not null and new.transfer_id is not null)
execute function outbox_deposit_credited();

create trigger outbox_wake
after insert on outbox
referencing new table as new_rows
for each statement execute function outbox_wake();
