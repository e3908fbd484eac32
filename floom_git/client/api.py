"""The HTTP side of the client: one aiohttp session per command, JSON requests, server-sent event
streams, and bundle downloads and uploads that report progress. Every failure becomes a
ClientError whose message a person can act on."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Self

import aiohttp

from floom_git import __version__
from floom_git.client.config import Target
from floom_git.client.errors import ClientError

WORKSPACE_HEADER = "x-workeros-workspace"
CHUNK = 64 * 1024
Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


@dataclass(frozen=True)
class Event:
    """One server-sent event: its id (for resuming), its name and its data (JSON when it parses)."""

    id: int | None
    name: str
    data: Any


class Api:
    """`async with Api(target) as api:` then `await api.get("/workers")`; paths are under /api."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        headers = {"User-Agent": f"floom-git-cli/{__version__}", "Accept": "application/json"}
        if self.target.token:
            headers["Authorization"] = f"Bearer {self.target.token}"
        if self.target.workspace:
            headers[WORKSPACE_HEADER] = self.target.workspace
        timeout = aiohttp.ClientTimeout(total=None, connect=15, sock_read=120)
        self._session = aiohttp.ClientSession(headers=headers, timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, path: str) -> str:
        return f"{self.target.server}/api{path}"

    # -- requests -------------------------------------------------------------------------------
    @asynccontextmanager
    async def send(self, method: str, path: str, *, what: str | None = None,
                   **kw: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response of a request, after turning transport failures and error statuses into
        ClientErrors. `what` names the resource for a 404 ("worker 'x'")."""
        assert self._session is not None, "use `async with Api(...)`"
        try:
            async with self._session.request(method, self.url(path), **kw) as resp:
                if resp.status >= 400:
                    raise await self._refusal(resp, what)
                yield resp
        except aiohttp.ClientConnectorError as exc:
            errno = exc.os_error.errno
            reason = os.strerror(errno) if errno else str(exc.os_error)
            raise ClientError(f"cannot reach the floom-git server at {self.target.server} "
                              f"({reason}); start it with `floom-git serve` "
                              "or point --server / FLOOM_URL at it") from None
        except aiohttp.ClientPayloadError as exc:
            raise ClientError(f"the connection to {self.target.server} broke off: {exc}") from None
        except aiohttp.ClientError as exc:
            raise ClientError(f"request to {self.target.server} failed: {exc}") from None
        except TimeoutError:
            raise ClientError(
                f"the server at {self.target.server} did not answer in time"
            ) from None

    async def request(self, method: str, path: str, *, what: str | None = None, **kw: Any) -> Any:
        async with self.send(method, path, what=what, **kw) as resp:
            body = await resp.read()
            if not body.strip():
                return None
            try:
                return json.loads(body)
            except ValueError:
                raise ClientError(f"{self.target.server} answered {method} {path} with something "
                                  "that is not JSON; is that a floom-git server?") from None

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return await self.request("POST", path, json=body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Any:
        return await self.request("PUT", path, json=body, **kw)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> Any:
        return await self.request("PATCH", path, json=body, **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.request("DELETE", path, **kw)

    async def _refusal(self, resp: aiohttp.ClientResponse, what: str | None) -> ClientError:
        raw = await resp.read()
        try:
            body = json.loads(raw)
            detail, reason = body.get("detail"), body.get("code")
        except (ValueError, AttributeError):
            detail = reason = None
        if not isinstance(detail, str):
            detail = raw.decode("utf-8", "replace").strip()[:200] or resp.reason or "no detail"
        status = resp.status
        if status == 401:
            if not self.target.token:
                message = (f"not signed in to {self.target.server}; run `floom-git login` "
                           "(or set FLOOM_TOKEN)")
            else:
                message = (f"the server refused the token from {self.target.token_source} "
                           f"({detail}); run `floom-git login`")
        elif status == 404 and what:
            message = f"{what} not found"
        elif status == 429:
            message = (
                f"{detail} (rate limited; retry after {resp.headers.get('Retry-After', '?')} s)"
            )
        else:
            message = f"{what + ': ' if what else ''}{detail} (HTTP {status})"
        return ClientError(message, status=status,
                           reason=reason if isinstance(reason, str) else None)

    # -- streams and bundles ----------------------------------------------------------------------
    async def events(self, path: str, after: int = 0) -> AsyncGenerator[Event, None]:
        """The events of an SSE stream after event id `after`, until the server ends it."""
        headers = {"Accept": "text/event-stream"}
        if after:
            headers["Last-Event-ID"] = str(after)
        timeout = aiohttp.ClientTimeout(total=None, connect=15, sock_read=300)
        async with self.send("GET", path, headers=headers, timeout=timeout) as resp:
            fields: dict[str, str] = {}
            data: list[str] = []
            async for line in _lines(resp):
                if not line:
                    if data:
                        yield _event(fields, "\n".join(data))
                    fields, data = {}, []
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name in ("id", "event"):
                    fields[name] = value

    async def download(self, path: str, progress: Progress, *, what: str | None = None) -> bytes:
        async with self.send("GET", path, what=what, headers={"Accept": "application/zip"}) as resp:
            total, chunks, done = resp.content_length, [], 0
            async for chunk in resp.content.iter_chunked(CHUNK):
                chunks.append(chunk)
                done += len(chunk)
                progress(done, total)
            return b"".join(chunks)

    async def upload(self, method: str, path: str, body: bytes, content_type: str,
                     progress: Progress, *, what: str | None = None) -> Any:
        """Send `body` in chunks, reporting each one as it is handed to the connection."""

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), CHUNK):
                yield body[start:start + CHUNK]
                progress(min(start + CHUNK, len(body)), len(body))

        return await self.request(method, path, what=what, data=chunks(),
                                  headers={"Content-Type": content_type})


async def _lines(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """Lines of a streamed body of any length (StreamReader.readline caps line length)."""
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            yield raw.rstrip(b"\r").decode("utf-8", "replace")
    if buffer:
        yield buffer.rstrip(b"\r").decode("utf-8", "replace")


def _event(fields: dict[str, str], data: str) -> Event:
    try:
        payload: Any = json.loads(data)
    except ValueError:
        payload = data
    raw_id = fields.get("id", "")
    return Event(id=int(raw_id) if raw_id.isdigit() else None, name=fields.get("event", "message"),
                 data=payload)
