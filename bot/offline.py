"""The bot offline: a stand-in for Telegram's servers and a driver that plays users.

`FakeTelegram` is a python-telegram-bot `BaseRequest`: the real `Bot` talks to
it instead of api.telegram.org. It answers `getMe`, records every method call
(`sendMessage`, `editMessageText`, `answerCallbackQuery`, ...) and refuses
what Telegram would refuse: texts over 4,096 characters, callback data over
64 bytes, HTML that does not parse.

`Chat` plays one user: it turns what they type or press into real update
payloads, feeds them through `Application.process_update`, and answers what
the user saw and what it cost in database round trips. The tests and
`lockbay demo` both drive the bot through it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from typing import Any

from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

from bot import db

BOT_ID = 5_000_000_001
BOT_USERNAME = "lockbay_bot"
MESSAGE_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64
# Telegram's HTML parse mode knows these tags, nothing else.
HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
             "tg-spoiler", "span", "blockquote", "tg-emoji"}  # fmt: skip


class TelegramRefused(AssertionError):
    """The bot sent something the real Telegram would answer with 400 Bad Request."""


class _HtmlCheck(HTMLParser):
    """Parses a message the way Telegram's HTML mode would, and counts its visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.visible = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in HTML_TAGS:
            raise TelegramRefused(f"unsupported tag <{tag}>")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            raise TelegramRefused(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.visible += len(data.encode("utf-16-le")) // 2


def _check_text(text: str, parse_mode: str | None) -> str:
    """The text as the user reads it, or TelegramRefused."""
    if parse_mode == "HTML":
        check = _HtmlCheck()
        check.feed(text)
        check.close()
        if check.open:
            raise TelegramRefused(f"unclosed <{check.open[-1]}>")
        length = check.visible
    else:
        length = len(text.encode("utf-16-le")) // 2
    if not text.strip():
        raise TelegramRefused("message text is empty")
    if length > MESSAGE_LIMIT:
        raise TelegramRefused(f"message is {length} characters, over {MESSAGE_LIMIT}")
    return text


def _check_keyboard(markup: Any) -> list[list[tuple[str, str]]]:
    rows = []
    for row in (markup or {}).get("inline_keyboard", []):
        buttons = []
        for b in row:
            data = b.get("callback_data")
            if data is not None and len(data.encode()) > CALLBACK_DATA_LIMIT:
                raise TelegramRefused(f"callback data over {CALLBACK_DATA_LIMIT} bytes: {data!r}")
            buttons.append((b["text"], data if data is not None else b.get("url", "")))
        rows.append(buttons)
    return rows


@dataclass
class Sent:
    """One message as it stands in a chat (after any edits)."""

    chat_id: int
    message_id: int
    text: str
    buttons: list[list[tuple[str, str]]]  # rows of (label, callback data or url)
    edits: int = 0

    @property
    def callbacks(self) -> list[str]:
        return [data for row in self.buttons for _, data in row]

    def button(self, label_part: str) -> str:
        """The callback data of the first button whose label contains `label_part`."""
        for row in self.buttons:
            for label, data in row:
                if label_part in label:
                    return data
        raise AssertionError(f"no button with {label_part!r} in {self.buttons}")


@dataclass
class Call:
    method: str
    params: dict[str, Any]


class FakeTelegram(BaseRequest):
    """Telegram's Bot API, answered in-process."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], Sent] = {}
        self._ids = itertools.count(1)
        # chat ids that have blocked the bot: sending to them answers 403
        self.blocked_by: set[int] = set()
        # Failures to answer next, per method: (status, retry_after) each (see fail_next).
        self._failures: dict[str, list[tuple[int, int | None]]] = {}
        self._waiters: list[tuple[str, asyncio.Future[Call]]] = []

    @property
    def read_timeout(self) -> float | None:  # float-ok: seconds
        return None

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data else {}
        call = Call(name, params)
        self.calls.append(call)
        for waiter in [w for w in self._waiters if w[0] == name]:
            self._waiters.remove(waiter)
            if not waiter[1].done():
                waiter[1].set_result(call)
        failures = self._failures.get(name)
        if failures:
            status, retry_after = failures.pop(0)
            return status, _answer_error(status, _FAILURES.get(status, "Error"), retry_after)
        chat_id = params.get("chat_id")
        if chat_id is not None and int(chat_id) in self.blocked_by:
            return 403, _answer_error(403, "Forbidden: bot was blocked by the user")
        handler = getattr(self, f"_{name}", None)
        try:
            result = handler(params) if handler else True
        except TelegramRefused as e:
            return 400, _answer_error(400, f"Bad Request: {e}")
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "LockBay",
            "username": BOT_USERNAME,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        text = _check_text(params["text"], params.get("parse_mode"))
        sent = Sent(
            chat_id=int(params["chat_id"]),
            message_id=next(self._ids),
            text=text,
            buttons=_check_keyboard(params.get("reply_markup")),
        )
        self.messages[(sent.chat_id, sent.message_id)] = sent
        return _message_json(sent)

    def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (int(params["chat_id"]), int(params["message_id"]))
        sent = self.messages.get(key)
        if sent is None:
            raise TelegramRefused(f"editMessageText: no message {key}")
        text = _check_text(params["text"], params.get("parse_mode"))
        buttons = _check_keyboard(params.get("reply_markup"))
        if text == sent.text and buttons == sent.buttons:
            raise TelegramRefused("editMessageText: message is not modified")
        sent.text, sent.buttons = text, buttons
        sent.edits += 1
        return _message_json(sent)

    def _editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        sent = self.messages[(int(params["chat_id"]), int(params["message_id"]))]
        sent.buttons = _check_keyboard(params.get("reply_markup"))
        return _message_json(sent)

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        retry_after: int | None = None,
        method: str = "sendMessage",
    ) -> None:
        """Answer the next `count` calls of `method` with an error: 500 (Telegram having
        trouble), or 429 with `retry_after` seconds (flood control). The call is recorded."""
        self._failures.setdefault(method, []).extend([(status, retry_after)] * count)

    def next_call(self, method: str) -> asyncio.Future[Call]:
        """A future for the next call of `method` (for updates processed in the background)."""
        future: asyncio.Future[Call] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, future))
        return future

    def sent_to(self, chat_id: int) -> list[Sent]:
        """Every message in one chat, oldest first."""
        return [m for (c, _), m in sorted(self.messages.items()) if c == chat_id]


_FAILURES = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}


def _answer_error(code: int, description: str, retry_after: int | None = None) -> bytes:
    answer: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        answer["parameters"] = {"retry_after": retry_after}
        answer["description"] = f"{description}: retry after {retry_after}"
    return json.dumps(answer).encode()


def _message_json(sent: Sent) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": sent.message_id,
        "date": int(time.time()),
        "chat": {"id": sent.chat_id, "type": "private"},
        "from": {"id": BOT_ID, "is_bot": True, "first_name": "LockBay"},
        "text": sent.text,
    }
    if sent.buttons:
        message["reply_markup"] = {
            "inline_keyboard": [
                [{"text": label, "callback_data": data} for label, data in row]
                for row in sent.buttons
            ]
        }
    return message


_update_ids = itertools.count(1)


@dataclass
class Step:
    """What one update did: the messages the user saw change, and what it cost."""

    replies: list[Sent]  # messages sent or edited in this chat, in order
    calls: list[Call]  # every Bot API call the update made, to anyone
    round_trips: int
    elapsed_ms: float  # float-ok: latency for display
    statements: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The last message the user saw change (what is on their screen now)."""
        if not self.replies:
            raise AssertionError("the bot showed nothing")
        return self.replies[-1].text

    @property
    def screen(self) -> Sent:
        if not self.replies:
            raise AssertionError("the bot showed nothing")
        return self.replies[-1]

    @property
    def alerts(self) -> list[str]:
        """Texts of answerCallbackQuery pop-ups / toasts."""
        return [c.params["text"] for c in self.calls if c.method == "answerCallbackQuery"
                and c.params.get("text")]  # fmt: skip

    def to(self, chat_id: int) -> list[str]:
        """Texts this update sent to another chat (notifications to the other party)."""
        return [
            c.params["text"]
            for c in self.calls
            if c.method == "sendMessage" and int(c.params["chat_id"]) == chat_id
        ]


class Chat:
    """One Telegram user in a private chat with the bot.

    With `app.bot_data["after_update"]` set (bot.outbox.deliver_due), each update is
    preceded and followed by an outbox delivery pass, neither measured: a step's `to()`
    shows the notifications that step committed, and only those.
    """

    def __init__(
        self,
        app: Application,
        telegram: FakeTelegram,
        user_id: int,
        first_name: str = "Test",
        username: str | None = None,
    ) -> None:
        self.app = app
        self.telegram = telegram
        self.user = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            self.user["username"] = username
        self.id = user_id
        self._message_ids = itertools.count(1_000_000)
        self.total_round_trips = 0
        # A handler that raised fails the step (the app's error handler recorded it).
        self.strict = True

    @property
    def last(self) -> Sent:
        """The newest message the bot has in this chat."""
        mine = self.telegram.sent_to(self.id)
        if not mine:
            raise AssertionError("the bot has sent nothing to this chat")
        return mine[-1]

    async def send(self, text: str) -> Step:
        """The user types `text` (a command when it starts with /)."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": self.id, "type": "private"},
            "from": self.user,
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return await self._feed({"update_id": next(_update_ids), "message": message})

    async def press(self, data: str, on: Sent | None = None) -> Step:
        """The user presses the button carrying `data` on message `on` (the newest by default)."""
        message = on or self.last
        query = {
            "id": str(next(_update_ids)),
            "from": self.user,
            "chat_instance": str(self.id),
            "data": data,
            "message": _message_json(message),
        }
        return await self._feed({"update_id": next(_update_ids), "callback_query": query})

    async def tap(self, label_part: str, on: Sent | None = None) -> Step:
        """The user presses the button whose label contains `label_part`."""
        message = on or self.last
        return await self.press(message.button(label_part), on=message)

    async def _feed(self, payload: dict[str, Any]) -> Step:
        update = Update.de_json(payload, self.app.bot)
        # bot.outbox's delivery, when the app has it: notifications left by what ran
        # before this update (another step's stragglers, direct data calls) go out first,
        # so that the step is shown only what it caused itself.
        hook = self.app.bot_data.get("after_update")
        if hook:
            await hook(self.app)
        before_calls = len(self.telegram.calls)
        before = {k: (m.text, m.edits) for k, m in self.telegram.messages.items()}
        started = time.perf_counter()
        async with db.meter.measure() as m:
            await self.app.process_update(update)
        elapsed = (time.perf_counter() - started) * 1000
        if hook:
            # The notifications this update committed, delivered outside its measurement.
            await hook(self.app)
        self.total_round_trips += m.round_trips
        errors = self.app.bot_data.get("errors", [])
        if self.strict and errors:
            raise errors.pop()
        # Snapshots: a later edit must not change what this step showed.
        replies = [
            replace(sent, buttons=[list(row) for row in sent.buttons])
            for key, sent in sorted(self.telegram.messages.items())
            if key[0] == self.id and before.get(key) != (sent.text, sent.edits)
        ]
        return Step(
            replies=replies,
            calls=self.telegram.calls[before_calls:],
            round_trips=m.round_trips,
            elapsed_ms=elapsed,
            statements=m.statements,
        )
