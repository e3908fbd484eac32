"""A local OAuth 2 authorization server speaking the real protocol for the tests: the
authorization endpoint (redirects back with a code), the token endpoint (authorization_code with
PKCE S256 and client_secret_post, refresh_token), issuing short-lived access tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web


@dataclass
class FakeAuthServer:
    client_id: str = "floom-test-client"
    client_secret: str = "floom-test-secret"
    expires_in: int = 30  # shorter than the client's refresh leeway: the first use refreshes
    refuse_refresh: bool = False
    issued: set[str] = field(default_factory=set)  # access tokens handed out (a shared set)
    grants: list[str] = field(default_factory=list)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (challenge, redirect)
    refresh_tokens: set[str] = field(default_factory=set)
    base: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        return app

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id or q.get("response_type") != "code":
            return web.json_response({"error": "invalid_request"}, status=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return web.json_response(
                {"error": "invalid_request", "error_description": "PKCE"}, status=400
            )
        code = secrets.token_urlsafe(16)
        self.codes[code] = (q["code_challenge"], q["redirect_uri"])
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

    def _tokens(self, expires_in: int) -> web.Response:
        access, refresh = f"at-{secrets.token_hex(4)}", f"rt-{secrets.token_hex(4)}"
        self.issued.add(access)
        self.refresh_tokens.add(refresh)
        return web.json_response({"access_token": access, "refresh_token": refresh,
                                  "token_type": "Bearer", "expires_in": expires_in})

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = str(form.get("grant_type"))
        self.grants.append(grant)
        if grant == "authorization_code":
            challenge, redirect = self.codes.pop(str(form.get("code")), (None, None))
            verifier = str(form.get("code_verifier", ""))
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(
                b"="
            )
            if (
                challenge is None
                or digest.decode() != challenge
                or form.get("redirect_uri") != redirect
            ):
                return web.json_response({"error": "invalid_grant"}, status=400)
            return self._tokens(self.expires_in)
        if grant == "refresh_token":
            if self.refuse_refresh or str(form.get("refresh_token")) not in self.refresh_tokens:
                return web.json_response({"error": "invalid_grant",
                                          "error_description": "refresh token revoked"}, status=400)
            self.refresh_tokens.discard(str(form.get("refresh_token")))
            return self._tokens(3600)
        return web.json_response({"error": "unsupported_grant_type"}, status=400)
