"""The wallet screen as the user reads it."""

from __future__ import annotations

from bot.data.wallet import WalletContext
from bot.money import format_amount, format_usd


def render_wallet(ctx: WalletContext) -> str:
    lines = [f"💼 Wallet of {ctx.user.first_name or ctx.user.username or 'you'}", ""]
    for w in ctx.wallets:
        value = f" ≈ {format_usd(w.usd_value)}" if w.usd_value is not None else " (no rate)"
        held = f", {format_amount(w.held, w.currency, w.decimals)} on hold" if w.held else ""
        lines.append(f"{format_amount(w.available, w.currency, w.decimals)}{held}{value}")
    lines += ["", f"Total ≈ {format_usd(ctx.total_usd)}"]
    if ctx.addresses or ctx.bank_accounts:
        lines += ["", "Saved destinations:"]
        lines += [f"• {a.label or a.currency} {a.network}: {a.address}" for a in ctx.addresses]
        lines += [
            f"• {b.label or b.bank_name}: {b.account_number} ({b.account_name})"
            for b in ctx.bank_accounts
        ]
    if ctx.cashouts_in_flight:
        lines += ["", f"Cashouts in flight ({ctx.cashouts_in_flight_count}):"]
        lines += [
            f"• #{c.id} {format_amount(c.amount, c.currency, _decimals(ctx, c.currency))}"
            f" — {c.status.value}"
            for c in ctx.cashouts_in_flight
        ]
    return "\n".join(lines)


def _decimals(ctx: WalletContext, currency: str) -> int:
    wallet = ctx.wallet(currency)
    return wallet.decimals if wallet else 2


def handlers() -> list:
    return []
