"""Conversations in PostgreSQL: python-telegram-bot's `BasePersistence` on the bot's pool.

A user mid-flow carries on after the bot restarts. Kept (migration 0013, queries in
`sql/persistence.sql`): each persistent flow's conversation states (per flow name and
conversation key), user_data and chat_data. Not kept: bot_data (it holds the pool and
the settings), callback_data (buttons carry plain strings), and the cached flow
contexts, user_data["flows"] (bot.cache): a restarted bot refetches a context, one
round trip, and carries on from the user's choices, which are kept (`cache.CHOICES`).

**Serialisation: JSON (jsonb), not pickle.** A DBA can read and query the rows
(`contents -> 'choices'`); loading a row never runs code, whoever wrote it; a renamed
module or class does not make a whole row unreadable. JSON alone cannot say Decimal,
datetime, tuple or dataclass, so `Codec` tags them (`{"$decimal": "0.01"}`,
`{"$type": "exchange.Choices", ...}`); dataclasses only from `TYPES`, a short registry
under stable names. A value of any other type is not kept (logged), and a stored value
that no longer decodes (a type renamed or changed across a deploy) is left out on
load: either way only that one key, never the user's whole data. Money stays exact.

**Writes.** PTB does not write after each update: it notes which users, chats and
conversations an update touched, and every `update_interval` seconds (and at
shutdown) calls update_user_data / update_chat_data / update_conversation for each
of them, all at once (asyncio.gather), with deep copies. Those calls are collected
here into one batch and written by one statement (`persistence_write`): one round
trip per run whatever it holds, none when nothing was touched. A conversation's
state and the user_data it relies on are written in the same statement. A failed
write is kept and retried with the next run (newer values win) and at shutdown.

**Loading.** `Application.initialize` calls get_user_data, get_chat_data and
get_conversations for each persistent flow: three round trips at start (one query
for every flow's states). It runs before `post_init`, so `pool` may be a coroutine
function that opens the pool on first use. Conversation states idle for longer than
`max_idle_seconds` (the flows' timeout, whose job does not survive a restart) are
deleted instead of restored.

**Which handlers persist.** PTB refuses a persistent ConversationHandler in an
application without persistence, so `ui.flow()` asks `flows_persistent()`, true only
inside `persistent_flows()`, where an application with this persistence adds its
handlers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from telegram.ext import BasePersistence, PersistenceInput

from bot.cache import FLOWS
from bot.db import queries

log = logging.getLogger(__name__)

# How often PTB hands over what changed (seconds): a crash loses at most this much.
UPDATE_INTERVAL_SECONDS = 5

# --- which flows persist ------------------------------------------------------

_PERSISTENT_FLOWS: ContextVar[bool] = ContextVar("lockbay_persistent_flows", default=False)


def flows_persistent() -> bool:
    """Whether `ui.flow()` builds persistent ConversationHandlers right now."""
    return _PERSISTENT_FLOWS.get()


@contextmanager
def persistent_flows(enabled: bool = True) -> Iterator[None]:
    """Within it, `ui.flow()` builds persistent flows: add the handlers of an application
    that has a persistence here (and only those)."""
    token = _PERSISTENT_FLOWS.set(enabled)
    try:
        yield
    finally:
        _PERSISTENT_FLOWS.reset(token)


# --- serialisation ------------------------------------------------------------

# The dataclasses user_data may hold, by the stable name stored with them: renaming a
# class means changing its path here, never its name. Resolved on first use, so this
# module imports no handler.
TYPES: Mapping[str, str] = {
    "exchange.Choices": "bot.handlers.exchange:Choices",
    "wallet.Request": "bot.handlers.wallet:Request",
    "wallet.CryptoDestination": "bot.data.wallet:CryptoDestination",
    "wallet.BankDestination": "bot.data.wallet:BankDestination",
}


class NotKept(ValueError):
    """A value the codec cannot write, or a stored one it cannot read back."""


class Codec:
    """JSON with tags for what JSON lacks: Decimal (exact, as text), datetime, tuple,
    dicts with keys other than plain strings, and the dataclasses named in `types`."""

    def __init__(self, types: Mapping[str, str] = TYPES) -> None:
        self._paths = dict(types)
        self._by_name: dict[str, type] | None = None
        self._by_class: dict[type, str] = {}

    def _types(self) -> dict[str, type]:
        if self._by_name is None:
            by_name = {}
            for name, path in self._paths.items():
                module, _, attr = path.partition(":")
                by_name[name] = getattr(importlib.import_module(module), attr)
            self._by_class = {cls: name for name, cls in by_name.items()}
            self._by_name = by_name
        return self._by_name

    def encode(self, value: Any) -> Any:
        """`value` as plain JSON values, or NotKept."""
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            return value  # not money (money is Decimal); NaN is refused by dumps
        if isinstance(value, Decimal):
            return {"$decimal": str(value)}
        if isinstance(value, datetime):
            return {"$datetime": value.isoformat()}
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v) for v in value]}
        if isinstance(value, list):
            return [self.encode(v) for v in value]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in value):
                return {k: self.encode(v) for k, v in value.items()}
            return {"$items": [[self.encode(k), self.encode(v)] for k, v in value.items()]}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            self._types()
            name = self._by_class.get(type(value))
            if name is not None:
                fields = dataclasses.fields(value)
                return {
                    "$type": name,
                    **{f.name: self.encode(getattr(value, f.name)) for f in fields},
                }
        raise NotKept(f"{type(value).__name__} is not among the persisted types")

    def decode(self, value: Any) -> Any:
        """A value `encode` made, back; NotKept when it no longer fits the code."""
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "$decimal" in value:
            return Decimal(value["$decimal"])
        if "$datetime" in value:
            return datetime.fromisoformat(value["$datetime"])
        if "$tuple" in value:
            return tuple(self.decode(v) for v in value["$tuple"])
        if "$items" in value:
            return {self.decode(k): self.decode(v) for k, v in value["$items"]}
        if "$type" in value:
            cls = self._types().get(value["$type"])
            if cls is None:
                raise NotKept(f"unknown persisted type {value['$type']!r}")
            fields = {k: self.decode(v) for k, v in value.items() if k != "$type"}
            try:
                return cls(**fields)
            except TypeError as e:  # the dataclass changed since the row was written
                raise NotKept(f"{value['$type']}: {e}") from None
        return {k: self.decode(v) for k, v in value.items()}

    def dumps(self, value: Any) -> str:
        try:
            text = json.dumps(self.encode(value), ensure_ascii=False, allow_nan=False)
        except ValueError as e:  # NaN or infinity: jsonb has no such number
            raise NotKept(str(e)) from None
        if "\\u0000" in text:  # nor a NUL character: refused here, not by the batch
            raise NotKept("a NUL character")
        return text

    def loads(self, text: str) -> Any:
        return self.decode(json.loads(text))


# --- the persistence ----------------------------------------------------------

PoolSource = asyncpg.Pool | Callable[[], Awaitable[asyncpg.Pool]]
ConversationKey = tuple[int | str, ...]
Conversations = dict[ConversationKey, object]


@dataclasses.dataclass
class _Batch:
    """What one persistence run hands over; a key's last value wins. None deletes."""

    users: dict[int, str | None] = dataclasses.field(default_factory=dict)
    chats: dict[int, str | None] = dataclasses.field(default_factory=dict)
    conversations: dict[tuple[str, str], str | None] = dataclasses.field(default_factory=dict)
    done: asyncio.Future[None] | None = None
    reported: bool = False

    def __bool__(self) -> bool:
        return bool(self.users or self.chats or self.conversations)

    def under(self, newer: _Batch) -> None:
        """Fold this (older, unsaved) batch under `newer`: newer values win."""
        for mine, theirs in (
            (self.users, newer.users),
            (self.chats, newer.chats),
            (self.conversations, newer.conversations),
        ):
            for key, value in mine.items():
                theirs.setdefault(key, value)

    def params(self) -> dict[str, list[Any]]:
        conversations = list(self.conversations.items())
        return {
            "user_ids": [str(i) for i in self.users],  # text: see the query
            "user_contents": list(self.users.values()),
            "chat_ids": [str(i) for i in self.chats],
            "chat_contents": list(self.chats.values()),
            "flow_names": [name for (name, _), _ in conversations],
            "flow_keys": [key for (_, key), _ in conversations],
            "flow_states": [state for _, state in conversations],
        }


class PostgresPersistence(BasePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """Conversations, user_data and chat_data in PostgreSQL (see the module's docstring).

    `pool`: the bot's pool, or a coroutine function answering it (called at each use:
    Application.initialize loads before post_init, so it may have to open the pool).
    `max_idle_seconds`: conversation states idle longer than this are not restored.
    """

    def __init__(
        self,
        pool: PoolSource,
        *,
        max_idle_seconds: int | None = None,
        update_interval: float = UPDATE_INTERVAL_SECONDS,  # float-ok: seconds
        codec: Codec | None = None,
    ) -> None:
        super().__init__(
            store_data=PersistenceInput(bot_data=False, callback_data=False),
            update_interval=update_interval,
        )
        self._pool = pool
        self.max_idle_seconds = max_idle_seconds
        self.codec = codec or Codec()
        self._loaded: dict[str, Conversations] | None = None
        self._pending: _Batch | None = None
        self._unsaved: _Batch | None = None
        self._write_lock = asyncio.Lock()
        self._writes: set[asyncio.Task[None]] = set()

    async def pool(self) -> asyncpg.Pool:
        """The pool, asked for at each use: the application may open it late."""
        if isinstance(self._pool, asyncpg.Pool):
            return self._pool
        return await self._pool()

    # --- loading (Application.initialize) ---

    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        rows = queries.persistence_user_data(await self.pool())
        return {r["telegram_id"]: self._load(r["contents"], "user", r["telegram_id"])
                async for r in rows}  # fmt: skip

    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        rows = queries.persistence_chat_data(await self.pool())
        return {r["chat_id"]: self._load(r["contents"], "chat", r["chat_id"]) async for r in rows}

    async def get_conversations(self, name: str) -> Conversations:
        if self._loaded is None:
            # Every flow's states in one query; each flow then takes its own.
            loaded: dict[str, Conversations] = {}
            rows = queries.persistence_conversations(
                await self.pool(), max_idle_seconds=self.max_idle_seconds
            )
            async for r in rows:
                key = tuple(json.loads(r["conversation_key"]))
                try:
                    state = self.codec.loads(r["state"])
                except NotKept:
                    log.warning("conversation %s %s: state not restored", r["name"], key)
                    continue
                loaded.setdefault(r["name"], {})[key] = state
            self._loaded = loaded
        return self._loaded.pop(name, {})

    async def get_bot_data(self) -> dict[Any, Any]:
        return {}  # not kept: PersistenceInput(bot_data=False)

    async def get_callback_data(self) -> Any:
        return None  # not kept: PersistenceInput(callback_data=False)

    def _load(self, text: str, owner: str, owner_id: int) -> dict[Any, Any]:
        """A stored user_data or chat_data, less any key that no longer decodes."""
        stored = json.loads(text)
        items = stored["$items"] if "$items" in stored else list(stored.items())
        data: dict[Any, Any] = {}
        for raw_key, raw_value in items:
            try:
                data[self.codec.decode(raw_key)] = self.codec.decode(raw_value)
            except (NotKept, TypeError, ValueError) as e:
                log.warning("%s %s: %r not restored: %s", owner, owner_id, raw_key, e)
        return data

    # --- writing (Application.update_persistence) ---

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        kept = {k: v for k, v in data.items() if k != FLOWS}  # cached contexts: refetched
        contents = self._dump(kept, "user", user_id)
        batch = self._batch()
        batch.users[user_id] = contents
        await self._saved(batch)

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        contents = self._dump(data, "chat", chat_id)
        batch = self._batch()
        batch.chats[chat_id] = contents
        await self._saved(batch)

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        state = None if new_state is None else self.codec.dumps(new_state)
        batch = self._batch()
        batch.conversations[name, json.dumps(key)] = state  # None: ended, deleted
        await self._saved(batch)

    async def drop_user_data(self, user_id: int) -> None:
        batch = self._batch()
        batch.users[user_id] = None
        await self._saved(batch)

    async def drop_chat_data(self, chat_id: int) -> None:
        batch = self._batch()
        batch.chats[chat_id] = None
        await self._saved(batch)

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        pass  # not kept

    async def update_callback_data(self, data: Any) -> None:
        pass  # not kept

    # The data lives in this process's memory, the one copy that changes: nothing to
    # refresh from the database between updates.
    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        pass

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        pass

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        pass

    def _dump(self, data: Mapping[Any, Any], owner: str, owner_id: int) -> str | None:
        """The JSON to store, without the keys that cannot be kept; None when empty."""
        kept = {}
        for key, value in data.items():
            try:
                self.codec.dumps([key, value])  # each key on its own: one bad value costs one
            except NotKept as e:
                log.warning("%s %s: %r is not kept across restarts: %s", owner, owner_id, key, e)
                continue
            kept[key] = value
        return self.codec.dumps(kept) if kept else None

    def _batch(self) -> _Batch:
        """The batch of this run, written on the loop's next turn.

        PTB gathers a run's calls: they are all on the loop's ready queue before the
        first of them runs, so the write scheduled behind them takes them all.
        """
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = _Batch(done=loop.create_future())
            loop.call_soon(self._launch)
        return self._pending

    async def _saved(self, batch: _Batch) -> None:
        """Wait until `batch` is written; its failure is raised once, to PTB."""
        try:
            await asyncio.shield(batch.done)
        except Exception:
            if batch.reported:  # one failed write, one error, whatever the batch held
                return
            batch.reported = True
            raise

    def _launch(self) -> None:
        batch, self._pending = self._pending, None
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, batch: _Batch) -> None:
        async with self._write_lock:
            if self._unsaved is not None:
                self._unsaved.under(batch)
                self._unsaved = None
            try:
                if batch:
                    await queries.persistence_write(await self.pool(), **batch.params())
            except Exception as e:
                # Kept for the next run: PTB will not hand these over again by itself.
                self._unsaved = batch
                batch.done.set_exception(e)
            else:
                batch.done.set_result(None)

    async def flush(self) -> None:
        """At shutdown, after PTB's last run: wait for writes in flight, retry what a
        failed write left, and forget what was loaded (a new initialize reloads)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._unsaved is not None:
            retry = _Batch(done=asyncio.get_running_loop().create_future())
            await self._write(retry)
            if retry.done.exception() is not None:
                log.error(
                    "persistence: %d users' data and %d conversation states not saved",
                    len(retry.users),
                    len(retry.conversations),
                    exc_info=retry.done.exception(),
                )
        self._loaded = None
