"""The route-table entries of identity and tenancy: sign-in, tokens, the device flow, workspaces,
members and secrets.

`perm` "user" means any authenticated caller, without a workspace check; `extra` carries
`workspace_param` (authorize against that path parameter instead of the selected workspace)
and `rate` (the rate-limit bucket; GET routes answering a list are in "list" by default).
"""

from __future__ import annotations

from floom_git.http.handlers import auth, members, secrets, tokens, workspaces_api
from floom_git.http.route import Route
from floom_git.schemas import identity as s
from floom_git.schemas.api import Deleted

A = "auth"
T = "tokens"
WS = "workspaces"
SEC = "secrets"
ON_PATH = {"workspace_param": "id"}
PENDING_CODE = "the user code must name a device sign-in that is still pending"


def access_routes() -> list[Route]:
    return [
        # sign-in and sessions
        Route("POST", "/auth/login", auth.login, "public",
              "Password sign-in (JSON; from a browser only on this origin); sets the floom_session "
              "cookie", A, body=s.LoginIn, response=s.SessionOut, extra={"errors": (401, 403)}),
        Route("POST", "/auth/logout", auth.logout, "public",
              "End the session and clear its cookie (from this origin)", A, response=s.Done,
              extra={"errors": (403,)}),
        Route("POST", "/auth/refresh", auth.refresh, "user", "Mint a fresh session cookie", A,
              response=s.SessionOut, extra={"rate": "auth"}),
        Route("POST", "/auth/magic-link", auth.magic_link, "user",
              "A short-lived, one-time sign-in URL for yourself", A, response=s.MagicLinkOut,
              extra={"rate": "auth"}),
        Route("GET", "/auth/magic/{token}", auth.magic_consume, "public",
              "Use a magic link: starts a session", A, response=s.SessionOut,
              extra={"rate": "auth", "errors": (401,)}),
        Route("GET", "/auth/me", auth.me, "user",
              "Who you are, the active workspace and your role", A,
              response=s.Me),
        # personal and workspace tokens
        Route("GET", "/auth/tokens", tokens.list_personal, "user", "Your personal tokens", T,
              response=list[s.TokenOut]),
        Route("POST", "/auth/tokens", tokens.create_personal, "user",
              "Create a personal token (the value is shown once)", T, body=s.TokenCreate,
              response=s.TokenCreated, status=201, extra={"rate": "auth"}),
        Route("DELETE", "/auth/tokens/{id}", tokens.revoke_personal, "user",
              "Revoke one of your personal tokens", T, response=s.TokenOut),
        Route("GET", "/workspace/tokens", tokens.list_workspace, "admin",
              "Tokens of the active workspace", T, response=list[s.TokenOut]),
        Route("POST", "/workspace/tokens", tokens.create_workspace, "admin",
              "Create a workspace token (acts only in this workspace; value shown once)", T,
              body=s.TokenCreate, response=s.TokenCreated, status=201, extra={"rate": "auth"}),
        Route("DELETE", "/workspace/tokens/{id}", tokens.revoke_workspace, "admin",
              "Revoke a workspace token", T, response=s.TokenOut),
        # CLI device flow
        Route("POST", "/cli-auth/devices", auth.device_start, "public",
              "Start a CLI device sign-in", A, body=s.DeviceStart, response=s.DeviceOut, status=201,
              extra={"rate": "auth", "body_optional": True}),
        Route("POST", "/cli-auth/approve", auth.device_approve, "user",
              "Approve a device's user code as yourself", A, body=s.DeviceDecision,
              response=s.Done, extra={"rate": "auth", "validates": PENDING_CODE}),
        Route("POST", "/cli-auth/deny", auth.device_deny, "user", "Deny a device's user code", A,
              body=s.DeviceDecision, response=s.Done,
              extra={"rate": "auth", "validates": PENDING_CODE}),
        Route("POST", "/auth/cli-exchange", auth.cli_exchange, "public",
              "Exchange an approved device code for a token (once)", A, body=s.DeviceExchange,
              response=s.DeviceToken,
              extra={"rate": "poll", "errors": (403,),
                     "validates": "400 while the code is unknown, pending (code "
                                  "authorization_pending: poll again), expired or used "
                                  "(RFC 8628 polling)"}),
        # workspaces and members
        Route("GET", "/workspaces", workspaces_api.list_workspaces, "user",
              "Workspaces you belong to and the active one", WS, response=s.WorkspaceList,
              extra={"rate": "list"}),
        Route("POST", "/workspaces", workspaces_api.create_workspace, "user",
              "Create a workspace (a new git repository; you become its owner)", WS,
              body=s.WorkspaceCreate, response=s.WorkspaceOut, status=201,
              extra={"validates": "an id, or a name that yields one"}),
        Route("PATCH", "/workspaces/{id}", workspaces_api.update_workspace, "admin",
              "Rename or describe a workspace (a workspace.yml commit)", WS, body=s.WorkspacePatch,
              response=s.WorkspaceOut,
              extra={**ON_PATH, "validates": "give a name and/or a description; workspace.yml "
                                             "(its agent block included) must stay valid"}),
        Route("DELETE", "/workspaces/{id}", workspaces_api.delete_workspace, "owner",
              "Delete a workspace and its repository (not `default`)", WS, response=Deleted,
              extra=ON_PATH),
        Route("POST", "/workspaces/{id}/select", workspaces_api.select_workspace, "read",
              "Make this the active workspace (cookie floom_workspace)", WS,
              response=s.WorkspaceOut,
              extra=ON_PATH),
        Route("GET", "/workspaces/{id}/members", members.list_members, "read",
              "Members and invites",
              WS, response=s.MemberList, extra=ON_PATH),
        Route("POST", "/workspaces/{id}/members/invite", members.invite, "admin",
              "Invite by email (pending until that person signs in)", WS, body=s.MemberInvite,
              response=s.MemberOut, status=201, extra=ON_PATH),
        Route("PATCH", "/workspaces/{id}/members/{user_id}/role", members.set_role, "admin",
              "Change a member's role (user id, or email of a pending invite)", WS,
              body=s.MemberRoleIn, response=s.MemberOut, extra=ON_PATH),
        Route("DELETE", "/workspaces/{id}/members/{user_id}", members.remove, "admin",
              "Remove a member or withdraw an invite", WS, response=Deleted, extra=ON_PATH),
        # secrets
        Route("GET", "/secrets", secrets.list_secrets, "read",
              "Secret names, status and the workers that declare them (never values)", SEC,
              response=list[s.SecretOut]),
        Route("POST", "/secrets/{name}", secrets.set_secret, "admin", "Set a secret ({value})", SEC,
              body=s.SecretIn, response=s.SecretOut,
              extra={"validates": "the value is at most 32 KiB of UTF-8"}),
        Route("POST", "/secrets/{name}/test", secrets.test_secret, "admin", "Check a secret", SEC,
              response=s.SecretTest),
        Route("DELETE", "/secrets/{name}", secrets.delete_secret, "admin", "Delete a secret", SEC,
              response=Deleted),
        Route("GET", "/system/platform-config", secrets.platform_config, "read",
              "Supported providers and which secrets are set", "system", response=s.PlatformConfig),
    ]
