"""Sending an email over SMTP as configured by FLOOM_SMTP_URL: smtp://[user:password@]host[:port]
(port 25), smtps:// (TLS from the start, port 465), `?starttls=true` to upgrade a plain
connection. Blocking (smtplib); callers run it in a thread."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

TIMEOUT = 30.0


def check_url(url: str) -> None:
    """ValueError unless `url` is an smtp:// or smtps:// URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("FLOOM_SMTP_URL must look like smtp://[user:password@]host[:port]")


def send(url: str, sender: str, to: list[str], subject: str, text: str) -> None:
    """Deliver one message to `to`; raises OSError / smtplib.SMTPException on failure."""
    check_url(url)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(text)
    secure = parts.scheme == "smtps"
    port = parts.port or (465 if secure else 25)
    assert parts.hostname is not None
    client: smtplib.SMTP = (smtplib.SMTP_SSL(parts.hostname, port, timeout=TIMEOUT,
                                             context=ssl.create_default_context())
                            if secure else smtplib.SMTP(parts.hostname, port, timeout=TIMEOUT))
    with client:
        if not secure and query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"):
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)
