"""The SMTP mailer against a real SMTP server on loopback (aiosmtpd): plain, STARTTLS with a
login, implicit TLS, refusals, an unreachable and a silent server, the configuration.

`smtp_server()` and `Inbox` are shared with tests/test_onboarding_smtp.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.mailer import SUBJECT, Mailer, MailError

CODE = "482913"
TO = "nkem@example.com"
SENDER = "LockBay <codes@lockbay.example>"


# --- a mail server on loopback ------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    login: str | None  # who authenticated, if anyone

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    @property
    def html(self) -> str | None:
        part = self.message.get_body(("html",))
        return part.get_content() if part is not None else None


class Inbox:
    """An aiosmtpd handler keeping every mail it takes; `refuse_rcpt`/`refuse_data` make it
    answer that SMTP reply instead (a mail refused after its data is kept in `refused`)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refused: list[Received] = []
        self.refuse_rcpt: str | None = None
        self.refuse_data: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        auth = session.auth_data if session.authenticated else None
        mail = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            message=BytesParser(policy=policy.default).parsebytes(raw),
            tls=server.transport.get_extra_info("ssl_object") is not None,
            login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
        )
        if self.refuse_data:
            self.refused.append(mail)
            return self.refuse_data
        self.received.append(mail)
        return "250 Message accepted"


class LoopbackController(Controller):
    """aiosmtpd's threaded Controller on 127.0.0.1, on a port the kernel picked: the socket
    is bound before the server starts, so no other process can take the port meanwhile."""

    def __init__(self, handler, **kwargs) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        super().__init__(handler, hostname="127.0.0.1", port=port, **kwargs)

    def _create_server(self):
        return self.loop.create_server(
            self._factory_invoker, sock=self._socket, ssl=self.ssl_context
        )


@contextmanager
def smtp_server(**kwargs) -> Iterator[tuple[LoopbackController, Inbox]]:
    """A running SMTP server and its inbox; `start()` returns once it answers."""
    inbox = Inbox()
    # A fixed EHLO name: aiosmtpd would otherwise ask DNS for this machine's.
    controller = LoopbackController(inbox, server_hostname="mail.test", **kwargs)
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


@dataclass(frozen=True)
class Certificates:
    server: ssl.SSLContext  # the server's certificate for 127.0.0.1
    client: ssl.SSLContext  # trusts that certificate only


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    """A self-signed certificate for 127.0.0.1, made here (cryptography)."""
    folder: Path = tmp_path_factory.mktemp("smtp-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "LockBay test SMTP")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return Certificates(server=server, client=ssl.create_default_context(cafile=str(cert_file)))


def plain_mailer(controller: Controller, **kwargs) -> Mailer:
    options = dict(tls="none", sender=SENDER, timeout_seconds=5)
    return Mailer(controller.hostname, controller.port, **(options | kwargs))


async def send(mailer: Mailer, email: str = TO, code: str = CODE) -> None:
    await asyncio.wait_for(mailer(email, code), 30)


# --- sending --------------------------------------------------------------------------------


async def test_the_code_arrives_in_plain_smtp(caplog):
    with smtp_server() as (controller, inbox), caplog.at_level(logging.DEBUG):
        await send(plain_mailer(controller))

    [mail] = inbox.received
    assert mail.mail_from == "codes@lockbay.example" and mail.rcpt_tos == [TO]
    m = mail.message
    assert (m["From"], m["To"], m["Subject"]) == (SENDER, TO, SUBJECT)
    assert m["Message-ID"].endswith("@lockbay.example>") and m["Date"]
    assert m["Auto-Submitted"] == "auto-generated"
    assert f"Your LockBay confirmation code is {CODE}" in mail.text
    assert "expires in 10 minutes" in mail.text
    assert f"<b>{CODE}</b>" in mail.html and "expires in 10 minutes" in mail.html
    assert not mail.tls and mail.login is None
    # Logged that it went, to whom, and never the code.
    ours = [r for r in caplog.records if r.name.startswith("bot")]
    assert any(TO in r.getMessage() for r in ours)
    assert not any(CODE in r.getMessage() for r in ours)


async def test_plain_text_only_when_html_is_off():
    with smtp_server() as (controller, inbox):
        await send(plain_mailer(controller, html=False, code_ttl_seconds=300))
    [mail] = inbox.received
    assert not mail.message.is_multipart() and mail.html is None
    assert CODE in mail.text and "expires in 5 minutes" in mail.text


async def test_starttls_then_login(certificates):
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (b"bot@lockbay.example", b"s3cret pw ")
        return AuthResult(success=ok, auth_data=auth_data)

    with smtp_server(
        tls_context=certificates.server, require_starttls=True, authenticator=authenticator
    ) as (controller, inbox):
        mailer = Mailer(
            controller.hostname,
            controller.port,
            tls="starttls",
            user="bot@lockbay.example",
            password="s3cret pw ",
            ssl_context=certificates.client,
        )
        await send(mailer)

    [mail] = inbox.received
    assert mail.tls and mail.login == "bot@lockbay.example"
    assert [login[1:] for login in logins] == [(b"bot@lockbay.example", b"s3cret pw ")]
    # Without LOCKBAY_SMTP_FROM, the login is the sender.
    assert mail.message["From"] == "bot@lockbay.example" and CODE in mail.text


async def test_a_wrong_password_is_a_mail_error(certificates):
    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False)

    with smtp_server(tls_context=certificates.server, authenticator=authenticator) as (
        controller,
        inbox,
    ):
        mailer = Mailer(
            controller.hostname,
            controller.port,
            user="bot",
            password="wrong",
            sender=SENDER,
            ssl_context=certificates.client,
        )
        with pytest.raises(MailError, match="refused the mail: 535"):
            await send(mailer)
    assert inbox.received == []


async def test_implicit_tls(certificates):
    with smtp_server(ssl_context=certificates.server) as (controller, inbox):
        mailer = Mailer(
            controller.hostname,
            controller.port,
            tls="tls",
            sender=SENDER,
            ssl_context=certificates.client,
        )
        await send(mailer)
    [mail] = inbox.received
    assert mail.tls and CODE in mail.text


async def test_an_untrusted_certificate_is_refused(certificates):
    with smtp_server(tls_context=certificates.server) as (controller, inbox):
        # The system's trust store does not know the test certificate.
        mailer = Mailer(controller.hostname, controller.port, tls="starttls", sender=SENDER)
        with pytest.raises(MailError, match="CERTIFICATE_VERIFY_FAILED"):
            await send(mailer)
    assert inbox.received == []


async def test_starttls_never_falls_back_to_plain_text():
    with smtp_server() as (controller, inbox):  # offers no STARTTLS
        mailer = Mailer(controller.hostname, controller.port, tls="starttls", sender=SENDER)
        with pytest.raises(MailError, match="STARTTLS"):
            await send(mailer)
    assert inbox.received == []


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "said"),
    [
        ("refuse_rcpt", "refused the recipient: 550 5.1.1 No such mailbox"),
        ("refuse_data", "refused the mail: 554 5.7.1 Looks like spam"),
    ],
)
async def test_a_refusing_server_is_a_mail_error(refusal, said):
    reply = said.rpartition(": ")[2]
    with smtp_server() as (controller, inbox):
        setattr(inbox, refusal, reply)
        with pytest.raises(MailError) as e:
            await send(plain_mailer(controller))
    assert said in str(e.value) and f"127.0.0.1:{controller.port}" in str(e.value)
    assert CODE not in str(e.value)
    assert inbox.received == []


async def test_a_closed_port_is_a_mail_error_at_once():
    # Bound and not listening: the port is this test's, and connecting to it is refused.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        mailer = Mailer("127.0.0.1", port, tls="none", sender=SENDER, timeout_seconds=5)
        started = time.monotonic()
        with pytest.raises(MailError, match=f"could not reach the SMTP server 127.0.0.1:{port}"):
            await send(mailer)
    assert time.monotonic() - started < 5


async def test_a_silent_server_is_a_mail_error_within_the_timeout():
    # Listening but never accepting: the connection opens and no greeting ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        mailer = Mailer("127.0.0.1", port, tls="none", sender=SENDER, timeout_seconds=0.3)
        started = time.monotonic()
        with pytest.raises(MailError, match="timed out"):
            await send(mailer)
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 3


# --- configuration ------------------------------------------------------------------------------


def test_no_host_no_mailer():
    assert Mailer.from_env({}) is None
    assert Mailer.from_env({"LOCKBAY_SMTP_HOST": "  ", "LOCKBAY_SMTP_PORT": "25"}) is None


def test_defaults_are_starttls_on_587():
    mailer = Mailer.from_env({"LOCKBAY_SMTP_HOST": "smtp.example.com"})
    assert (mailer.host, mailer.port, mailer.tls) == ("smtp.example.com", 587, "starttls")
    assert mailer.sender == "LockBay <no-reply@smtp.example.com>"
    assert mailer.user is None and mailer.timeout_seconds == 10


def test_everything_from_the_environment():
    mailer = Mailer.from_env(
        {
            "LOCKBAY_SMTP_HOST": "smtp.example.com",
            "LOCKBAY_SMTP_PORT": "2465",
            "LOCKBAY_SMTP_TLS": "TLS",
            "LOCKBAY_SMTP_USER": "apikey",
            "LOCKBAY_SMTP_PASSWORD": "pw ",
            "LOCKBAY_SMTP_FROM": SENDER,
            "LOCKBAY_SMTP_TIMEOUT_SECONDS": "2.5",
        }
    )
    assert (mailer.port, mailer.tls, mailer.user, mailer.password) == (2465, "tls", "apikey", "pw ")
    assert mailer.sender == SENDER and mailer.timeout_seconds == 2.5
    assert "pw" not in repr(mailer)
    implicit = Mailer.from_env({"LOCKBAY_SMTP_HOST": "h.example", "LOCKBAY_SMTP_TLS": "tls"})
    assert implicit.port == 465
    plain = Mailer.from_env({"LOCKBAY_SMTP_HOST": "h.example", "LOCKBAY_SMTP_TLS": "none"})
    assert plain.port == 25


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"LOCKBAY_SMTP_TLS": "ssl"}, "LOCKBAY_SMTP_TLS must be one of none, starttls, tls"),
        ({"LOCKBAY_SMTP_PORT": "smtp"}, "LOCKBAY_SMTP_PORT must be a number"),
        ({"LOCKBAY_SMTP_TIMEOUT_SECONDS": "soon"}, "LOCKBAY_SMTP_TIMEOUT_SECONDS must be"),
        ({"LOCKBAY_SMTP_USER": "bot"}, "needs a password"),
        ({"LOCKBAY_SMTP_PASSWORD": "pw"}, "needs a password"),
        ({"LOCKBAY_SMTP_FROM": "LockBay"}, "sender must be an e-mail address"),
    ],
)
def test_a_malformed_setting_is_named(env, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        Mailer.from_env({"LOCKBAY_SMTP_HOST": "smtp.example.com", **env})
