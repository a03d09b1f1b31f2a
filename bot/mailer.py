"""E-mail over SMTP: the one-time codes of onboarding.

`Mailer` is the async callable `(email, code) -> None` that the onboarding
handler finds in `bot_data["mailer"]`. It uses the standard library only:
smtplib, run in a worker thread (`asyncio.to_thread`) so the event loop never
waits on the mail server, with one connection per mail (codes are rare, and a
kept connection would be dropped by the server between them). Every failure
raises MailError, which the handler answers with "we could not send the e-mail".

Configured by the environment (`Mailer.from_env`): LOCKBAY_SMTP_HOST (none: no
mailer), LOCKBAY_SMTP_PORT, LOCKBAY_SMTP_USER and LOCKBAY_SMTP_PASSWORD,
LOCKBAY_SMTP_FROM, LOCKBAY_SMTP_TLS (`none`, `starttls` or `tls` for implicit
TLS) and LOCKBAY_SMTP_TIMEOUT_SECONDS. TLS certificates are always verified, and
`starttls` never falls back to plain text when the server does not offer it.

The code itself is never logged, nor put in an error message.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

log = logging.getLogger(__name__)

TLS_MODES = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
DEFAULT_TIMEOUT_SECONDS = 10.0  # float-ok: seconds
# What platform_settings.otp_ttl_seconds says unless an operator changed it; the mailer
# is told only (email, code), so the mail states this lifetime.
DEFAULT_CODE_TTL_SECONDS = 600
SUBJECT = "Your LockBay confirmation code"


class MailError(Exception):
    """The mail was not handed over to the SMTP server; says why (never with the code)."""


class _ClosingConnect:
    """smtplib connects inside the constructor and leaves the socket open when the banner
    never comes (a timeout): close it before the error leaves."""

    def connect(self, host: str = "localhost", port: int = 0, source_address=None):
        try:
            return super().connect(host, port, source_address)  # type: ignore[misc]
        except BaseException:
            self.close()  # type: ignore[attr-defined]
            raise


class _SMTP(_ClosingConnect, smtplib.SMTP):
    pass


class _SMTP_SSL(_ClosingConnect, smtplib.SMTP_SSL):
    pass


class Mailer:
    """Sends a confirmation code by SMTP; `await mailer(email, code)`."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        tls: str = "starttls",
        user: str | None = None,
        password: str | None = None,
        sender: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,  # float-ok: seconds
        code_ttl_seconds: int = DEFAULT_CODE_TTL_SECONDS,
        html: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not host:
            raise ValueError("an SMTP host is needed")
        if tls not in TLS_MODES:
            raise ValueError(f"TLS must be one of {', '.join(TLS_MODES)}, not {tls!r}")
        if bool(user) != bool(password):
            raise ValueError("an SMTP user needs a password, and a password a user")
        if timeout_seconds <= 0:
            raise ValueError("the SMTP timeout must be more than 0 seconds")
        if code_ttl_seconds <= 0:
            raise ValueError("a code's lifetime must be more than 0 seconds")
        self.host = host
        self.port = port or DEFAULT_PORTS[tls]
        self.tls = tls
        self.user = user or None
        self.password = password or None
        self.sender = sender or (user if user and "@" in user else f"LockBay <no-reply@{host}>")
        if "@" not in parseaddr(self.sender)[1]:
            raise ValueError(f"the sender must be an e-mail address, not {self.sender!r}")
        self.timeout_seconds = timeout_seconds
        self.code_ttl_seconds = code_ttl_seconds
        self.html = html
        # Verifies certificates and host names; tests pass one that trusts their own CA.
        self.ssl_context = ssl_context or ssl.create_default_context()
        if self.user and tls == "none":
            log.warning("SMTP credentials for %s will travel without TLS", host)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Mailer | None:
        """The mailer the environment configures, or None without LOCKBAY_SMTP_HOST.
        ValueError naming the setting when one is malformed."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(name, "").strip()

        host = get("LOCKBAY_SMTP_HOST")
        if not host:
            return None
        tls = get("LOCKBAY_SMTP_TLS").lower() or "starttls"
        if tls not in TLS_MODES:
            raise ValueError(f"LOCKBAY_SMTP_TLS must be one of {', '.join(TLS_MODES)}, not {tls!r}")
        port = get("LOCKBAY_SMTP_PORT")
        timeout = get("LOCKBAY_SMTP_TIMEOUT_SECONDS")
        try:
            port_number = int(port) if port else None
        except ValueError:
            raise ValueError(f"LOCKBAY_SMTP_PORT must be a number, not {port!r}") from None
        try:
            seconds = float(timeout) if timeout else DEFAULT_TIMEOUT_SECONDS  # float-ok: seconds
        except ValueError:
            raise ValueError(
                f"LOCKBAY_SMTP_TIMEOUT_SECONDS must be a number, not {timeout!r}"
            ) from None
        return cls(
            host,
            port_number,
            tls=tls,
            user=get("LOCKBAY_SMTP_USER") or None,
            # Not stripped: a password may well end in a space.
            password=env.get("LOCKBAY_SMTP_PASSWORD") or None,
            sender=get("LOCKBAY_SMTP_FROM") or None,
            timeout_seconds=seconds,
        )

    def __repr__(self) -> str:  # no password in logs or tracebacks
        return f"Mailer({self.host}:{self.port}, tls={self.tls}, user={self.user!r})"

    async def __call__(self, email: str, code: str) -> None:
        """Mails `code` to `email`; MailError when the server did not take it."""
        message = self.compose(email, code)
        await asyncio.to_thread(self._send, message)
        log.info("confirmation code mailed to %s", email)

    def compose(self, email: str, code: str) -> EmailMessage:
        """The mail: plain text, with an HTML alternative unless `html` is off."""
        minutes = math.ceil(self.code_ttl_seconds / 60)
        lifetime = f"{minutes} minute{'' if minutes == 1 else 's'}"
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = email
        message["Subject"] = SUBJECT
        message["Date"] = formatdate(usegmt=True)
        domain = parseaddr(self.sender)[1].rpartition("@")[2]
        message["Message-ID"] = make_msgid(domain=domain)
        # RFC 3834: no vacation replies to an automatic mail.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(
            f"Your LockBay confirmation code is {code}\n\n"
            f"Type it in the chat with the LockBay bot. It expires in {lifetime}.\n\n"
            "If you did not ask for it, ignore this e-mail: nothing happens without the code.\n"
        )
        if self.html:
            message.add_alternative(
                "<p>Your LockBay confirmation code is</p>"
                f'<p style="font-size:28px;letter-spacing:4px"><b>{code}</b></p>'
                f"<p>Type it in the chat with the LockBay bot. It expires in {lifetime}.</p>"
                "<p>If you did not ask for it, ignore this e-mail: nothing happens without "
                "the code.</p>",
                subtype="html",
            )
        return message

    def _send(self, message: EmailMessage) -> None:
        """One SMTP session (in a worker thread); every socket step bounded by the timeout."""
        where = f"{self.host}:{self.port}"
        client: smtplib.SMTP | None = None
        try:
            if self.tls == "tls":
                client = _SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_seconds, context=self.ssl_context
                )
            else:
                client = _SMTP(self.host, self.port, timeout=self.timeout_seconds)
            if self.tls == "starttls":
                # Raises SMTPNotSupportedError when not offered: never on in plain text.
                client.starttls(context=self.ssl_context)
            if self.user:
                client.login(self.user, self.password or "")
            client.send_message(message)
        except smtplib.SMTPRecipientsRefused as e:
            answers = "; ".join(f"{c} {_text(t)}" for c, t in e.recipients.values())
            raise MailError(f"the SMTP server {where} refused the recipient: {answers}") from e
        except smtplib.SMTPResponseException as e:
            raise MailError(
                f"the SMTP server {where} refused the mail: {e.smtp_code} {_text(e.smtp_error)}"
            ) from e
        except smtplib.SMTPException as e:
            raise MailError(f"SMTP with {where} failed: {_reason(e)}") from e
        except OSError as e:  # refused, unreachable, timed out, TLS handshake or certificate
            stage = "reach" if client is None else "talk to"
            raise MailError(f"could not {stage} the SMTP server {where}: {_reason(e)}") from e
        finally:
            if client is not None:
                _close(client)


def _close(client: smtplib.SMTP) -> None:
    # The mail is taken (or refused) by now: a failing goodbye changes nothing.
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _text(answer: bytes | str) -> str:
    return answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__
