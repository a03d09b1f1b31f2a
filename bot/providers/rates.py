"""Exchange rates: fetched from a configured HTTP source, stored with their time.

The source (LOCKBAY_RATES_URL) answers `GET` with one JSON object:

    {
      "crypto_usd": {"BTC": "97250.12", "ETH": 3120.5, "LTC": "82.10", "USDT": "1.0002"},
      "usd_ngn": "1580.25"
    }

`crypto_usd` gives US dollars per unit of each coin, `usd_ngn` naira per US dollar: the
two legs every quote multiplies (`sql/exchange.sql`, exchange_lock_rate). Rates are JSON
numbers or numeric strings, read as Decimal (never a float). Coins we do not carry are
skipped when stored. An answer without `usd_ngn`, with no coin, or with a rate that is no
positive number is malformed: nothing of it is stored. A small adapter in front of any
market-data API can serve this shape.

Each row is stored with the database's time of the fetch (`exchange_rates.fetched_at`).
When the source stops answering, no new rows come; once the newest is older than
`platform_settings.rate_max_age_seconds`, quotes are refused (StaleRate) until a
refresh succeeds again.

`schedule_rates(job_queue, interval)` runs `rates_job` on python-telegram-bot's JobQueue;
the job reads the pool from `bot_data["pool"]` and the client from
`bot_data["rates_client"]` (a `RatesClient`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.data.exchange import StoredRate, store_rates
from bot.providers.http import (
    HttpSettings,
    ProviderError,
    ProviderHttp,
    ProviderMalformed,
    decimal_field,
    env_text,
)

log = logging.getLogger(__name__)

PROVIDER = "rates"
JOB_NAME = "exchange-rates"
BOT_DATA_CLIENT = "rates_client"
DEFAULT_INTERVAL_SECONDS = 60

_CODE = re.compile(r"[A-Z][A-Z0-9]{1,9}")
_MAX_ADJUSTED = 19  # numeric(38, 18): at most 20 digits before the point
_DECIMALS = Decimal("1e-18")


@dataclass(frozen=True, slots=True)
class Rate:
    base: str
    quote: str
    rate: Decimal  # quote per unit of base


def _rate(value: Any, name: str) -> Decimal:
    rate = decimal_field({name: value}, name, PROVIDER)
    if rate is None:
        raise ProviderMalformed(PROVIDER, f"{name} is missing")
    if rate <= 0 or rate.adjusted() > _MAX_ADJUSTED:
        raise ProviderMalformed(PROVIDER, f"{name} is not a usable rate: {value}")
    exponent = rate.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -18:
        rate = rate.quantize(_DECIMALS)  # the column keeps 18 decimals; so do we, exactly
        if rate <= 0:
            raise ProviderMalformed(PROVIDER, f"{name} is not a usable rate: {value}")
    return rate


def parse_rates(answer: Mapping[str, Any]) -> list[Rate]:
    """The source's answer as rates: each coin -> USD, then USD -> NGN.
    ProviderMalformed for anything but the documented shape."""
    coins = answer.get("crypto_usd")
    if not isinstance(coins, dict) or not coins:
        raise ProviderMalformed(PROVIDER, "the answer has no crypto_usd rates")
    rates = []
    for code, value in coins.items():
        if not isinstance(code, str) or not _CODE.fullmatch(code.upper()):
            raise ProviderMalformed(PROVIDER, f"crypto_usd names no currency: {code!r}")
        rates.append(Rate(code.upper(), "USD", _rate(value, f"crypto_usd.{code}")))
    rates.append(Rate("USD", "NGN", _rate(answer.get("usd_ngn"), "usd_ngn")))
    return rates


class RatesClient:
    """The rates source over HTTP: one GET, with the timeouts and retries of
    `bot.providers.http`."""

    def __init__(
        self,
        *,
        url: str,
        api_key: str | None = None,
        source: str | None = None,
        settings: HttpSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the rates URL is not an http(s) URL: {url!r}")
        self.source = source or parts.netloc  # what exchange_rates.source records
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.http = ProviderHttp(
            PROVIDER,
            f"{parts.scheme}://{parts.netloc}",
            headers={"x-api-key": api_key} if api_key else None,
            settings=settings,
            transport=transport,
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, settings: HttpSettings | None = None
    ) -> RatesClient:
        """From LOCKBAY_RATES_URL, and optionally LOCKBAY_RATES_API_KEY (sent as
        `x-api-key`) and LOCKBAY_RATES_SOURCE (the name stored with each rate; default the
        URL's host). ValueError when the URL is missing."""
        env = os.environ if environ is None else environ
        return cls(
            url=env_text(env, "LOCKBAY_RATES_URL"),
            api_key=env.get("LOCKBAY_RATES_API_KEY", "").strip() or None,
            source=env.get("LOCKBAY_RATES_SOURCE", "").strip() or None,
            settings=settings or HttpSettings.from_env(env),
        )

    async def __aenter__(self) -> RatesClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def fetch(self) -> list[Rate]:
        """The source's current rates. ProviderError (ProviderUnavailable, ProviderRefused,
        ProviderMalformed) when there are none to be had."""
        answer = await self.http.request("GET", self._path)
        assert answer is not None  # only look-ups answer None
        return parse_rates(answer)


async def refresh_rates(pool, client: RatesClient) -> list[StoredRate]:
    """Fetches the rates and stores them, stamped now: the rows stored (coins we do not
    carry are skipped). ProviderError from the fetch stores nothing."""
    rates = await client.fetch()
    stored = await store_rates(
        pool, rates=[(r.base, r.quote, r.rate) for r in rates], source=client.source
    )
    skipped = sorted({r.base for r in rates} - {s.base for s in stored} - {"USD"})
    if skipped:
        log.info("rates for currencies we do not carry were skipped: %s", ", ".join(skipped))
    return stored


async def rates_job(context) -> None:
    """python-telegram-bot job: one refresh. A source that fails is logged; the quotes go
    on with the rates stored, and refuse once those are too old."""
    pool = context.bot_data["pool"]
    client: RatesClient = context.bot_data[BOT_DATA_CLIENT]
    try:
        stored = await refresh_rates(pool, client)
    except ProviderError as e:
        log.warning("exchange rates not refreshed: %s", e)
        return
    log.debug("exchange rates refreshed: %d stored", len(stored))


def schedule_rates(job_queue, interval_seconds: float = DEFAULT_INTERVAL_SECONDS):  # float-ok
    """Runs `rates_job` now and then every `interval_seconds` on `job_queue` (an
    Application's JobQueue, whose bot_data holds "pool" and "rates_client"). Keep the
    interval well under platform_settings.rate_max_age_seconds. Returns the Job; a second
    call replaces the first schedule."""
    if interval_seconds <= 0:
        raise ValueError("interval_seconds must be more than 0")
    for job in job_queue.get_jobs_by_name(JOB_NAME):
        job.schedule_removal()
    return job_queue.run_repeating(rates_job, interval=interval_seconds, first=0, name=JOB_NAME)
