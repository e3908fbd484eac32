"""The README teaches what the server does: its tutorial runs, command by command, against a real
`./scripts/serve`; its links lead to files of the repository; its manifest reference names every
field the parser accepts; its configuration table names every variable the server reads."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import msgspec

from floom_git.schemas import manifest
from tests.test_serve import Server, free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_the_tutorial_runs_as_written(tmp_path: Path):
    tutorial = section(README.read_text(), "Tutorial")
    blocks = shell_blocks(tutorial)
    assert len(blocks) >= 7
    # The person's repository folder: the server's data, the .venv the tutorial activates.
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    server = Server(tmp_path, port, data="floom-data")
    try:
        server.read_until("  Clone:")
        script = "set -euo pipefail\n" + "\n".join(blocks).replace(
            "localhost:8000", f"localhost:{port}"
        )
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
               "GIT_TERMINAL_PROMPT": "0"}
        env = {
            k: v for k, v in env.items() if k not in ("FLOOM_URL", "FLOOM_TOKEN", "FLOOM_WORKSPACE")
        }
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        server.stop()
    out = done.stdout
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert '"outputs":{"greeting":"Bonjour, Ada!","length":13}' in out  # curl: the run's outputs
    assert '"type":"close"' in out and '"message":"greeting Ada"' in out  # SSE to the run's end
    assert '"greeting": "Hallo, Grace!"' in out  # the CLI client's run
    assert "runs: run_" in out  # floom/runs
    assert "rollback: restore greet to" in out
    assert "sync: on-disk edit to workers/greet/run.py | floom-sync" in out
    repo = tmp_path / "floom-default"
    assert "# second version" not in (repo / "workers" / "greet" / "run.py").read_text()


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out, fenced = set(), False
    for line in path.read_text().splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("#") and not fenced:
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_link_of_the_readme_and_docs_leads_somewhere():
    broken = []
    for page in [README, *DOCS]:
        for target in LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == [], "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    readme = README.read_text()
    assert [p.name for p in DOCS if f"(docs/{p.name})" not in readme] == []


def test_the_manifest_reference_names_every_field_the_parser_accepts():
    reference = section(README.read_text(), "`worker.yml` reference")
    structs = (manifest.Manifest, manifest.Exec, manifest.Field, manifest.Trigger,
               manifest.WebhookSpec, manifest.Approvals, manifest.Limits, manifest.Bounds,
               manifest.Author)
    missing = [f"{s.__name__}.{f.encode_name}" for s in structs
               for f in msgspec.structs.fields(s) if f"`{f.encode_name}`" not in reference
               and f"{f.encode_name}:" not in reference and f"{{{f.encode_name}" not in reference
               and f" {f.encode_name}}}" not in reference and f", {f.encode_name}" not in reference]
    assert missing == []
    for literal in (
        "string",
        "textarea",
        "select",
        "json",
        "date",
        "python311",
        "webhook",
        "composio",
    ):
        assert f"`{literal}`" in reference


def test_the_configuration_table_names_every_variable_the_server_reads():
    names = set()
    # config.py reads the server's settings; the client package its own three.
    for module in [
        ROOT / "floom_git" / "config.py",
        *(ROOT / "floom_git" / "client").rglob("*.py"),
    ]:
        names |= set(re.findall(r'"((?:FLOOM|WORKEROS|COMPOSIO)_[A-Z0-9_]+)"', module.read_text()))
    assert "FLOOM_PORT" in names and "FLOOM_CHAT_TIMEOUT_SECONDS" in names
    table = section(README.read_text(), "Configuration")
    assert sorted(n for n in names if f"`{n}`" not in table) == []
