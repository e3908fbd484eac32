"""The worker manifest (`worker.yml`, schema_version "0.3"), after REFERENCE.md §1, and its parser.

Legacy top-level inputs/outputs/secrets are lifted under `exec`. Validation messages keep
msgspec's `$.path` and are prefixed with the file, e.g.
``workers/x/worker.yml: Expected `str` ... - at `$.name` ``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from floom_git.codec import load_yaml
from floom_git.errors import InvalidManifest
from floom_git.schemas.base import Strict
from floom_git.schemas.patterns import explain, matching

SECRET_NAME_WORDS = ("a name of 1 to 64 uppercase letters, digits and underscores, starting with "
                     "a letter (e.g. `OPENAI_API_KEY`)")
Slug = Annotated[str, matching(
    r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$",
    "3 to 64 lowercase letters, digits and dashes, starting and ending with a letter or digit "
    "(e.g. `word-count`)")]
Ident = Annotated[str, matching(
    r"^[A-Za-z_][A-Za-z0-9_]*$",
    "a name of letters, digits and underscores that does not start with a digit (e.g. "
    "`min_length`)", max_length=64)]
SecretName = Annotated[str, matching(r"^[A-Z][A-Z0-9_]{0,63}$", SECRET_NAME_WORDS)]
SemVer = Annotated[str, matching(
    r"^\d+\.\d+\.\d+(-[A-Za-z0-9.-]+)?$",
    "a version MAJOR.MINOR.PATCH such as `1.0.0` (optionally `-beta.1`)")]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
Description = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Tag = Annotated[str, matching(
    r"^[^/\s][^/]{0,39}$",
    "a tag of 1 to 40 characters without `/`, not starting with a space")]
Visibility = Literal["private", "workspace", "shared", "public"]
FieldType = Literal["string", "text", "number", "integer", "boolean", "textarea", "select", "url",
                    "json", "date"]


class Bounds(Strict, kw_only=True):
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None


class Field(Strict, kw_only=True):
    name: Ident
    kind: Literal["scalar", "file"] = "scalar"
    type: FieldType | None = None
    label: str | None = None
    description: str | None = None
    required: bool = False
    default: Any = None
    enum: list[Any] | None = None
    options: list[Any] | None = None
    examples: list[Any] | None = None
    bounds: Bounds | None = None
    format: str | None = None
    placeholder: str | None = None
    media_type: str | None = None
    path: str | None = None
    accepts: list[str] | None = None
    max_size_mb: Annotated[float, msgspec.Meta(gt=0)] | None = None
    accept_csv: bool | None = None
    columns: list[str] | None = None
    json_required_keys: list[str] | None = None


class Exec(Strict, kw_only=True):
    entry: str | None = None
    command: str | None = None
    runtime: Literal["python311", "python", "node22", "node20", "bash", "skill",
                     "none"] | None = None
    runner: str | None = None
    mode: Literal["agent", "pure-script", "hybrid"] | None = None
    disable_tools: list[str] = []
    inputs: list[Field] = []
    outputs: list[Field] = []
    secrets: list[SecretName] = []
    contexts: list[Any] = []


class WebhookSpec(Strict, kw_only=True):
    secret: bool = True
    allowed_methods: list[str] = msgspec.field(default_factory=lambda: ["POST"])


class Trigger(Strict, kw_only=True):
    type: Literal["manual", "schedule", "cron", "scheduled", "webhook", "composio"] = "manual"
    cron: str | None = None
    timezone: str | None = None
    every: str | None = None
    at: str | None = None
    webhook: WebhookSpec | None = None
    composio: dict[str, Any] | None = None


class Approvals(Strict, kw_only=True):
    required: bool = False
    label: str = "Approve action"
    expires_hours: Annotated[float, msgspec.Meta(gt=0)] | None = None


class Limits(Strict, kw_only=True):
    max_tool_iterations: Annotated[int, msgspec.Meta(ge=1)] = 12
    max_output_tokens: Annotated[int, msgspec.Meta(ge=1)] = 1_000_000
    max_total_tokens: Annotated[int, msgspec.Meta(ge=1)] = 1_000_000
    timeout_seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)] = 300
    memory_mb: Annotated[int, msgspec.Meta(ge=16)] | None = None


class Author(Strict, kw_only=True):
    name: str
    email: Annotated[str, matching(r"@", "an email address (with an `@`)")] | None = None


class Manifest(Strict, kw_only=True):
    schema_version: Literal["0.3"]
    name: Slug
    title: Title
    version: SemVer
    exec: Exec
    description: Description | None = None
    long_description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    use_cases: list[str] | None = None
    example_input: dict[str, Any] | None = None
    example_output: str | None = None
    how_it_works: str | None = None
    is_example: bool | None = None
    system_worker: bool | None = None
    archived: bool = False
    archive_reason: str | None = None
    visibility: Visibility = "private"
    paused: bool = False
    enabled: bool | None = None
    folder: str | None = None
    tags: Annotated[list[Tag], msgspec.Meta(max_length=8)] = []
    entrypoint: str | None = None
    system_prompt: str | None = None
    model: str | None = None
    limits: Limits = msgspec.field(default_factory=Limits)
    targets: list[str] | None = None
    authors: list[Author] = []
    license: str | None = None
    homepage: str | None = None
    repository: str | None = None
    capabilities: dict[str, Any] | None = None
    trigger: Trigger | None = None
    triggers: list[Trigger] | None = None
    connections: list[Any] = []
    contexts: list[Any] = []
    approvals: Approvals = msgspec.field(default_factory=Approvals)
    calls: list[Slug] = []
    resources: dict[str, Any] | None = None
    llm_intensive: bool | None = None
    retry: dict[str, Any] | None = None
    notify: dict[str, Any] | None = None
    # Saved inputs of automated runs (PATCH /workers/{id} `input_values`); a run's own inputs win.
    input_values: dict[str, Any] | None = None

    # -- derived views --------------------------------------------------------------------
    @property
    def entry(self) -> str:
        if self.exec.entry:
            return self.exec.entry
        if self.exec.mode in ("pure-script", "hybrid"):
            return "run.py"
        if self.exec.mode == "agent":
            return "SKILL.md"
        if self.exec.command and self.exec.runtime in ("python311", "python", "node22", "bash"):
            return "run.py"
        return self.entrypoint or "SKILL.md"

    @property
    def mode(self) -> str:
        return "agent" if self.entry.endswith(".md") else "script"

    @property
    def command(self) -> str | None:
        if self.exec.command:
            return self.exec.command
        entry = self.entry
        for suffix, prog in ((".py", "python"), (".sh", "bash"), (".js", "node")):
            if entry.endswith(suffix):
                return f"{prog} {entry}"
        return None

    @property
    def all_triggers(self) -> list[Trigger]:
        if self.triggers:
            return list(self.triggers)
        return [self.trigger or Trigger()]

    @property
    def trigger_type(self) -> str:
        kind = self.all_triggers[0].type
        return "schedule" if kind in ("cron", "scheduled") else kind

    @property
    def connection_slugs(self) -> list[str]:
        """The app slug of each declared connection, in order, once each."""
        out: list[str] = []
        for item in self.connections:
            slug = item if isinstance(item, str) else None
            if isinstance(item, dict):
                slug = next((item[k] for k in ("slug", "app", "name", "id")
                             if isinstance(item.get(k), str)), None)
            if slug and slug not in out:
                out.append(slug)
        return out

    @property
    def context_mounts(self) -> list[tuple[str, bool]]:
        """(name, writeable) of each declared context pack (top level and under exec), once each."""
        out: dict[str, bool] = {}
        for item in [*self.contexts, *self.exec.contexts]:
            name = (
                item
                if isinstance(item, str)
                else item.get("name")
                if isinstance(item, dict)
                else None
            )
            if isinstance(name, str) and name not in out:
                out[name] = bool(isinstance(item, dict) and item.get("writeable"))
        return list(out.items())

    @property
    def effective_description(self) -> str:
        return self.description or self.title


LIFTED = ("inputs", "outputs", "secrets")
_ENTRY_RE = re.compile(r"^[A-Za-z0-9_.-][A-Za-z0-9_./-]*$")


def parse_manifest(data: bytes | str, *, where: str, folder: str | None = None) -> Manifest:
    """Parse and validate worker.yml text. `folder` (the worker id) must equal `name` if given.

    Raises InvalidManifest whose message starts with `where`.
    """
    raw = load_yaml(data, where=where) if not isinstance(data, dict) else data
    if not isinstance(raw, dict):
        raise InvalidManifest(f"{where}: expected a YAML mapping at the top level")
    raw = dict(raw)
    if isinstance(raw.get("exec"), dict) and "connections" in raw["exec"]:
        raise InvalidManifest(f"{where}: `connections` must be a top-level field, not under exec")
    if any(key in raw for key in LIFTED):
        exec_block = dict(raw.get("exec") or {})
        for key in LIFTED:
            if key in raw:
                value = raw.pop(key)
                exec_block.setdefault(key, value)
        raw["exec"] = exec_block
    try:
        manifest = msgspec.convert(raw, Manifest, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidManifest(f"{where}: {explain(exc, Manifest)}") from None
    problems = _semantic_problems(manifest)
    if problems:
        raise InvalidManifest(f"{where}: {problems[0]}")
    if folder is not None and manifest.name != folder:
        raise InvalidManifest(
            f"{where}: name '{manifest.name}' must equal its folder name '{folder}' - at `$.name`"
        )
    return manifest


def _semantic_problems(m: Manifest) -> list[str]:
    out: list[str] = []
    # The field patterns end in `$`, which also matches before a final newline; no name,
    # secret or input may carry one.
    named = [("$.name", m.name)] + [(f"$.exec.secrets[{i}]", s) for i,
                                    s in enumerate(m.exec.secrets)]
    named += [(f"$.exec.inputs[{i}].name", f.name) for i, f in enumerate(m.exec.inputs)]
    named += [(f"$.exec.outputs[{i}].name", f.name) for i, f in enumerate(m.exec.outputs)]
    for at, value in named:
        if value != value.strip():
            out.append(f"'{value.strip()}' must not carry surrounding whitespace - at `{at}`")
    entry = m.exec.entry
    if entry is not None:
        if not _ENTRY_RE.match(entry) or ".." in entry.split("/"):
            out.append(f"exec.entry '{entry}' must be a relative path - at `$.exec.entry`")
        elif not entry.endswith((".md", ".py", ".sh", ".js")):
            out.append(
                "exec.entry must end in .md (agent) or .py/.sh/.js (script) - at `$.exec.entry`"
            )
    names: set[str] = set()
    for i, f in enumerate(m.exec.inputs):
        at = f"`$.exec.inputs[{i}]`"
        if f.name in names:
            out.append(f"duplicate input name '{f.name}' - at {at}")
        names.add(f.name)
        if f.kind == "scalar" and f.type == "select" and not (f.enum or f.options):
            out.append(f"select input '{f.name}' needs `options` or `enum` - at {at}")
        if f.kind == "file" and f.type is not None:
            out.append(f"file input '{f.name}' must not set a scalar type - at {at}")
    for i, t in enumerate(m.all_triggers):
        at = f"`$.triggers[{i}]`"
        if t.type in ("schedule", "cron", "scheduled") and not (t.cron or t.every):
            out.append(f"a schedule trigger needs `cron` - at {at}")
    if m.use_cases is not None and not 3 <= len(m.use_cases) <= 5:
        out.append("use_cases must list 3 to 5 items - at `$.use_cases`")
    return out
