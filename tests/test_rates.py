"""Exchange rates from a fake HTTP source into exchange_rates: exact, stamped with their
time, refused whole when malformed; quotes refused once the source has been silent past
rate_max_age_seconds, and served again after the next refresh."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
import seeding
from fake_providers import RATES_API_KEY, Answer, FakeRates, serve
from webhook_support import offline_bot

from bot.data.errors import StaleRate
from bot.data.exchange import exchange_context, lock_rate
from bot.db import queries
from bot.providers.http import HttpSettings, ProviderMalformed, ProviderUnavailable
from bot.providers.rates import (
    JOB_NAME,
    RatesClient,
    parse_rates,
    rates_job,
    refresh_rates,
    schedule_rates,
)

D = Decimal
ALICE = 52001
FAST = HttpSettings(timeout_seconds=5, max_attempts=3, backoff_seconds=0)
MARKET = {
    "crypto_usd": {
        "BTC": "97250.12",
        "ETH": D("3120.5"),
        "LTC": "82.10",
        "USDT": "1.0002",
        "DOGE": "0.31",  # not a currency we carry: skipped
    },
    "usd_ngn": "1580.25",
}


@pytest.fixture
async def source():
    fake = FakeRates(MARKET)
    async with serve(fake) as url:
        fake.client = RatesClient(
            url=f"{url}/v1/rates", api_key=RATES_API_KEY, source="fake-market", settings=FAST
        )
        async with fake.client:
            yield fake


async def stored_rates(pool) -> dict[tuple[str, str], object]:
    await seeding.user(pool, ALICE)
    ctx = await exchange_context(pool, telegram_id=ALICE)
    return {(r.base, r.quote): r for r in ctx.rates}


async def test_a_refresh_stores_every_leg_exactly_with_its_time_and_source(pool, source):
    stored = await refresh_rates(pool, source.client)
    got = {(s.base, s.quote): s for s in stored}
    assert set(got) == {("BTC", "USD"), ("ETH", "USD"), ("LTC", "USD"), ("USDT", "USD")} | {
        ("USD", "NGN")
    }
    assert got["BTC", "USD"].rate == D("97250.12") and got["ETH", "USD"].rate == D("3120.5")
    assert got["USD", "NGN"].rate == D("1580.25")
    assert {s.source for s in stored} == {"fake-market"}
    assert len({s.fetched_at for s in stored}) == 1  # one fetch, one time
    [request] = source.requests
    assert request.path == "/v1/rates" and request.headers["x-api-key"] == RATES_API_KEY

    rates = await stored_rates(pool)
    assert rates["BTC", "USD"].rate == D("97250.12") and not rates["BTC", "USD"].stale
    assert rates["USD", "NGN"].fetched_at == got["USD", "NGN"].fetched_at


async def test_the_newest_refresh_is_the_rate_that_quotes_use(pool, source):
    await refresh_rates(pool, source.client)
    source.body = {"crypto_usd": {"BTC": "100000"}, "usd_ngn": "1600"}
    await refresh_rates(pool, source.client)
    await seeding.user(pool, ALICE)
    quote = await lock_rate(
        pool, telegram_id=ALICE, from_currency="BTC", to_currency="NGN", amount=D("0.001")
    )
    assert quote.market_rate == D("160000000")  # 100000 USD x 1600 NGN, the newest legs
    assert (await stored_rates(pool))["ETH", "USD"].rate == D("3120.5")  # kept from the first


@pytest.mark.parametrize(
    "body, why",
    [
        ({"crypto_usd": {"BTC": "97000"}}, "usd_ngn is missing"),
        ({"crypto_usd": {}, "usd_ngn": "1500"}, "no crypto_usd"),
        ({"crypto_usd": {"BTC": "-1"}, "usd_ngn": "1500"}, "not a usable rate"),
        ({"crypto_usd": {"BTC": "lots"}, "usd_ngn": "1500"}, "not a number"),
        ({"crypto_usd": {"BTC": True}, "usd_ngn": "1500"}, "not a number"),
        ({"crypto_usd": {"b tc": "1"}, "usd_ngn": "1500"}, "names no currency"),
        ({"crypto_usd": {"BTC": "1e30"}, "usd_ngn": "1500"}, "not a usable rate"),
    ],
)
async def test_a_malformed_answer_stores_nothing(pool, source, body, why):
    source.body = body
    with pytest.raises(ProviderMalformed, match=why):
        await refresh_rates(pool, source.client)
    assert await queries.seed_is_fresh(pool)  # not one rate stored


async def test_a_non_json_answer_is_malformed_and_not_retried(pool, source):
    source.then(Answer.malformed())
    with pytest.raises(ProviderMalformed, match="not JSON"):
        await refresh_rates(pool, source.client)
    assert len(source.requests) == 1 and await queries.seed_is_fresh(pool)


def test_rates_past_18_decimals_are_kept_to_18_exactly():
    [rate, _] = parse_rates({"crypto_usd": {"usdt": "0.9999999999999999994"}, "usd_ngn": 1500})
    assert rate.base == "USDT" and rate.rate == D("0.999999999999999999")


async def test_quotes_are_refused_once_the_source_is_silent_too_long_and_served_after(pool, source):
    await refresh_rates(pool, source.client)
    await seeding.user(pool, ALICE)

    async def quote():
        return await lock_rate(
            pool, telegram_id=ALICE, from_currency="BTC", to_currency="NGN", amount=D("0.001")
        )

    assert (await quote()).market_rate == D("97250.12") * D("1580.25")

    # The source goes down: the refresh fails after its retries and stores nothing...
    source.then(*[Answer.status_code(503)] * 3)
    with pytest.raises(ProviderUnavailable):
        await refresh_rates(pool, source.client)
    assert len(source.requests) == 4
    # ...and time passes beyond what the platform accepts.
    max_age = (await exchange_context(pool, telegram_id=ALICE)).rate_max_age_seconds
    await queries.exchange_test_age_rates(pool, seconds=max_age + 1)
    with pytest.raises(StaleRate) as stale:
        await quote()
    assert stale.value.pair == "BTC/NGN"
    assert (await stored_rates(pool))["BTC", "USD"].stale

    # The source answers again: one refresh and quotes are served at the new rates.
    source.body = {"crypto_usd": {"BTC": "98000"}, "usd_ngn": "1590"}
    await refresh_rates(pool, source.client)
    assert (await quote()).market_rate == D("98000") * D("1590")


async def test_the_job_refreshes_from_bot_data_and_survives_a_dead_source(pool, source, caplog):
    context = SimpleNamespace(bot_data={"pool": pool, "rates_client": source.client})
    await rates_job(context)
    assert not await queries.seed_is_fresh(pool)
    source.then(*[Answer.status_code(500)] * 3)
    with caplog.at_level(logging.WARNING, logger="bot.providers.rates"):
        await rates_job(context)  # logged, not raised: the next run tries again
    assert "exchange rates not refreshed" in caplog.text


async def test_schedule_rates_puts_one_repeating_job_on_the_job_queue():
    async with offline_bot() as (app, _):
        job = schedule_rates(app.job_queue, 45)
        again = schedule_rates(app.job_queue, 30)
        assert job.name == again.name == JOB_NAME and job.callback is rates_job
        jobs = app.job_queue.get_jobs_by_name(JOB_NAME)
        assert [j.job.trigger.interval for j in jobs] == [timedelta(seconds=30)]
    with pytest.raises(ValueError):
        schedule_rates(None, 0)


def test_the_rates_client_is_configured_from_the_environment():
    client = RatesClient.from_env({"LOCKBAY_RATES_URL": "https://rates.example/v1/rates?pairs=all"})
    assert client.source == "rates.example" and client._path == "/v1/rates?pairs=all"
    with pytest.raises(ValueError, match="LOCKBAY_RATES_URL"):
        RatesClient.from_env({})
    with pytest.raises(ValueError):
        RatesClient(url="ftp://rates.example/")
