"""LockBay: escrowed trades, a custodial wallet and cashouts, as a Telegram bot."""
