-- Ledger accounts found by index. `is not distinct from` cannot use the
-- unique index past its first two columns, so posting to a wallet read every
-- account of that kind and currency (tens of milliseconds at 100,000 users).
-- Each owner kind now has its own lookup with plain equality and `is null`,
-- which the indexes serve: a wallet's accounts by ledger_accounts_wallet, the
-- others by ledger_accounts_one.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

create or replace function ledger_account(
    p_kind account_kind,
    p_currency text,
    p_wallet_id bigint default null,
    p_escrow_id bigint default null,
    p_provider payment_provider default null
) returns bigint
language plpgsql as $$
declare
    v_id bigint;
begin
    -- Found, else created; a concurrent first use may win the insert: look again once.
    for attempt in 1..2 loop
        if p_wallet_id is not null then
            select a.id into v_id
            from ledger_accounts as a
            where a.wallet_id = p_wallet_id
                and a.kind = p_kind
                and a.currency = p_currency
                and a.escrow_id is null
                and a.provider is null;
        elsif p_escrow_id is not null then
            select a.id into v_id
            from ledger_accounts as a
            where a.kind = p_kind
                and a.currency = p_currency
                and a.wallet_id is null
                and a.escrow_id = p_escrow_id
                and a.provider is null;
        else
            select a.id into v_id
            from ledger_accounts as a
            where a.kind = p_kind
                and a.currency = p_currency
                and a.wallet_id is null
                and a.escrow_id is null
                and a.provider is not distinct from p_provider;
        end if;
        exit when v_id is not null or attempt = 2;
        insert into ledger_accounts (kind, currency, wallet_id, escrow_id, provider)
        values (p_kind, p_currency, p_wallet_id, p_escrow_id, p_provider)
        on conflict do nothing
        returning id into v_id;
        exit when v_id is not null;
    end loop;
    return v_id;
end;
$$;
