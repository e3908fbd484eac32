"""Identity and tenancy state kept in system/ (never in a workspace repository): users, tokens,
sessions, magic links, device codes and memberships, over one SystemStore and one server pepper."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from floom_git.services.identity.members import Members
from floom_git.services.identity.passwords import Passwords
from floom_git.services.identity.sessions import Devices, Keyed, MagicLinks, Sessions
from floom_git.services.identity.tokens import Tokens
from floom_git.services.identity.users import Users
from floom_git.services.secrets import load_or_create_key
from floom_git.storage.system_store import SystemStore

PEPPER_FILE = "token-pepper"
log = logging.getLogger("floom_git")


@dataclass(frozen=True)
class Lifetimes:
    session_seconds: int = 7 * 86400
    magic_link_seconds: int = 900
    device_code_seconds: int = 600


class Identity:
    def __init__(self, system_dir: Path, *, password_profile: str = "RFC_9106_LOW_MEMORY",
                 lifetimes: Lifetimes = Lifetimes()) -> None:
        self.store = SystemStore(system_dir)
        pepper = load_or_create_key(system_dir, PEPPER_FILE)
        keyed = Keyed(pepper)
        self.users = Users(self.store, Passwords(password_profile))
        self.tokens = Tokens(self.store, pepper)
        self.sessions = Sessions(self.store, keyed, lifetimes.session_seconds)
        self.magic = MagicLinks(self.store, keyed, lifetimes.magic_link_seconds)
        self.devices = Devices(self.store, keyed, lifetimes.device_code_seconds)
        self.members = Members(self.store)

    def set_clock(self, now: Callable[[], float]) -> None:
        """Use another clock everywhere (tests move time forward instead of sleeping)."""
        for part in (self.tokens, self.sessions, self.magic, self.devices, self.members):
            part.now = now

    def reset_clock(self) -> None:
        self.set_clock(time.time)

    async def record_usage_every(self, seconds: float) -> None:
        """Flush tokens' last-use times every `seconds`, off the event loop, until cancelled
        (requests never write them)."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await asyncio.to_thread(self.tokens.flush_usage)
            except Exception:
                log.exception("could not record token use")

    async def shutdown(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        self.tokens.flush_usage()
        self.store.close()


__all__ = ["Identity", "Lifetimes"]
