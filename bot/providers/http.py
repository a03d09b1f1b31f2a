"""The outgoing side of every provider: one httpx.AsyncClient per provider, with timeouts,
retries and strict reading of the answers.

- Every request has a timeout (`HttpSettings.timeout_seconds`).
- A request is retried, with exponential backoff, only when it timed out, the connection
  failed, or the provider answered 5xx; `HttpSettings.max_attempts` bounds the tries. A 4xx
  is the provider's answer to this request and is never retried (`ProviderRefused`).
- An answer that is not a JSON object, or lacks a field we need, is `ProviderMalformed`.
- Amounts stay exact: answers are read with `parse_float=Decimal`, and requests carry
  Decimals as exact JSON numbers (`dumps_exact`) or as strings, never through a float.

The backoff's base delay is a setting: 0 in tests, so that retries wait for nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

log = logging.getLogger(__name__)


# --- errors ---------------------------------------------------------------------


class ProviderError(Exception):
    """A provider call that did not give an answer we can act on."""

    def __init__(self, provider: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message
        self.status = status  # the HTTP status, when there was an answer


class ProviderRefused(ProviderError):
    """The provider answered 4xx (or said `error` in a 2xx): it refused this request.
    Never retried: the same request would be refused again."""


class ProviderUnavailable(ProviderError):
    """Timeouts, connection failures or 5xx answers, on every attempt. Whether the provider
    acted on the request is unknown: look it up by our reference before trying again."""


class ProviderMalformed(ProviderError):
    """An answer that is not JSON, not an object, or lacks a field we need. Whether the
    provider acted on the request is unknown, as for ProviderUnavailable."""


# --- settings -------------------------------------------------------------------


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts and retries of the provider clients."""

    timeout_seconds: float = 10.0  # float-ok: seconds, per attempt
    max_attempts: int = 3
    backoff_seconds: float = 0.5  # float-ok: the first retry's delay, doubled on each retry
    max_backoff_seconds: float = 8.0  # float-ok: seconds

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be more than 0")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise ValueError("backoff delays cannot be negative")

    def backoff(self, retry: int) -> float:  # float-ok: seconds
        """The delay before retry number `retry` (1 for the first retry)."""
        return min(self.backoff_seconds * 2 ** (retry - 1), self.max_backoff_seconds)

    @property
    def worst_case_seconds(self) -> float:  # float-ok: seconds
        """The longest one call can take, every attempt timing out."""
        waits = sum(self.backoff(r) for r in range(1, self.max_attempts))
        return self.max_attempts * self.timeout_seconds + waits

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpSettings:
        """From LOCKBAY_HTTP_TIMEOUT_SECONDS, LOCKBAY_HTTP_MAX_ATTEMPTS,
        LOCKBAY_HTTP_BACKOFF_SECONDS, LOCKBAY_HTTP_MAX_BACKOFF_SECONDS; defaults for unset."""
        env = os.environ if environ is None else environ
        default = cls()

        def number(name: str, fallback: float, kind: type = float) -> Any:  # float-ok: seconds
            raw = env.get(name, "").strip()
            if not raw:
                return fallback
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number, not {raw!r}") from None

        return cls(
            timeout_seconds=number("LOCKBAY_HTTP_TIMEOUT_SECONDS", default.timeout_seconds),
            max_attempts=number("LOCKBAY_HTTP_MAX_ATTEMPTS", default.max_attempts, int),
            backoff_seconds=number("LOCKBAY_HTTP_BACKOFF_SECONDS", default.backoff_seconds),
            max_backoff_seconds=number(
                "LOCKBAY_HTTP_MAX_BACKOFF_SECONDS", default.max_backoff_seconds
            ),
        )


def env_text(environ: Mapping[str, str] | None, name: str, default: str | None = None) -> str:
    """A required setting (or its default); ValueError naming it when it is missing."""
    env = os.environ if environ is None else environ
    value = env.get(name, "").strip() or default
    if not value:
        raise ValueError(f"{name} is not set")
    return value


# --- JSON, exactly ----------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def loads_exact(raw: bytes) -> Any:
    """JSON with every number that has a fraction as Decimal; NaN and Infinity refused."""
    return json.loads(raw, parse_float=Decimal, parse_constant=_no_constants)


def dumps_exact(value: Any) -> bytes:
    """JSON bytes with each Decimal written as the exact JSON number it is (`format 'f'`),
    never through a float."""
    numbers: dict[str, str] = {}
    nonce = secrets.token_hex(8)

    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            if not obj.is_finite():
                raise ValueError(f"{obj} is not a JSON number")
            token = f"@{nonce}:{len(numbers)}@"
            numbers[token] = format(obj, "f")
            return token
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    text = json.dumps(value, default=default, separators=(",", ":"))
    for token, number in numbers.items():
        text = text.replace(f'"{token}"', number)
    return text.encode()


# --- reading answers ------------------------------------------------------------


def field(data: Mapping[str, Any], name: str, provider: str, *, where: str = "") -> Any:
    """`data[name]`, or ProviderMalformed naming the missing field."""
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ProviderMalformed(provider, f"the answer has no {where}{name}")
    return value


def text_field(data: Mapping[str, Any], name: str, provider: str, *, where: str = "") -> str:
    value = field(data, name, provider, where=where)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ProviderMalformed(provider, f"{where}{name} in the answer is not text")
    return str(value).strip()


def object_field(data: Mapping[str, Any], name: str, provider: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ProviderMalformed(provider, f"the answer has no {name} object")
    return value


def decimal_field(
    data: Mapping[str, Any], name: str, provider: str, *, where: str = ""
) -> Decimal | None:
    """An optional amount: a JSON number or numeric string as Decimal; None when absent."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ProviderMalformed(provider, f"{where}{name} in the answer is not a number")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except ArithmeticError:
        raise ProviderMalformed(provider, f"{where}{name} in the answer is not a number") from None
    if not amount.is_finite():
        raise ProviderMalformed(provider, f"{where}{name} in the answer is not a number")
    return amount


def _message(response: httpx.Response) -> str:
    """What the provider said about a refusal, short and without control characters."""
    try:
        body = loads_exact(response.content)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        for key in ("message", "error", "error_message", "detail"):
            if isinstance(body.get(key), str) and body[key].strip():
                return body[key].strip()[:300]
    text = response.text.strip()
    return "".join(c for c in text[:300] if c.isprintable()) or response.reason_phrase


# --- the client -----------------------------------------------------------------

RETRIED_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class ProviderHttp:
    """One provider's HTTP client: base URL, credentials in headers, timeouts and retries.

    Use as `async with ProviderHttp(...) as http:`, or call `aclose()`.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        settings: HttpSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.settings = settings or HttpSettings()
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"accept": "application/json", **(headers or {})},
            timeout=httpx.Timeout(self.settings.timeout_seconds),
            follow_redirects=False,
            transport=transport,
        )

    async def __aenter__(self) -> ProviderHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        not_found: bool = False,
    ) -> dict[str, Any] | None:
        """The provider's JSON object answer to one request, retried as the module says.

        `body` goes as exact JSON. With `not_found`, a 404 answers None (a look-up that
        found nothing) instead of raising ProviderRefused.
        """
        content = dumps_exact(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        attempts = self.settings.max_attempts
        why, last_status = "no attempt was made", None
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.settings.backoff(attempt - 1))
            try:
                response = await self._client.request(
                    method, path, params=params, content=content, headers=headers
                )
            except httpx.TimeoutException:
                why, last_status = f"timed out after {self.settings.timeout_seconds} s", None
            except RETRIED_ERRORS as e:
                why, last_status = f"connection failed ({type(e).__name__})", None
            else:
                status = response.status_code
                if status >= 500:
                    why, last_status = f"answered {status}", status
                elif status == 404 and not_found:
                    return None
                elif status >= 400:
                    raise ProviderRefused(
                        self.provider,
                        f"{method} {path} refused ({status}): {_message(response)}",
                        status=status,
                    )
                elif status >= 300 or status < 200:
                    raise ProviderMalformed(
                        self.provider, f"{method} {path} answered {status}", status=status
                    )
                else:
                    return self._read(response, method, path)
            log.warning(
                "%s %s %s: %s (attempt %d of %d)",
                self.provider,
                method,
                path,
                why,
                attempt,
                attempts,
            )
        raise ProviderUnavailable(
            self.provider, f"{method} {path} {why}, {attempts} attempt(s)", status=last_status
        )

    def _read(self, response: httpx.Response, method: str, path: str) -> dict[str, Any]:
        try:
            data = loads_exact(response.content)
        except (ValueError, RecursionError):
            raise ProviderMalformed(
                self.provider,
                f"{method} {path} answered {response.status_code} with something not JSON",
                status=response.status_code,
            ) from None
        if not isinstance(data, dict):
            raise ProviderMalformed(
                self.provider,
                f"{method} {path} answered with JSON that is not an object",
                status=response.status_code,
            )
        return data
