"""A run's inputs: the manifest of the commit a run pins, and the values given checked against
its declared inputs (schemas/fields.py holds the check of each type), with saved values and
defaults filled in."""

from __future__ import annotations

from typing import Any

from floom_git import paths
from floom_git.errors import Conflict, InvalidInput
from floom_git.schemas.fields import check_value
from floom_git.schemas.manifest import Manifest, parse_manifest
from floom_git.services.workspaces import Workspace

_manifests: dict[str, Manifest] = {}  # blob id -> parsed manifest (blobs never change)


def committed_manifest(ws: Workspace, worker_id: str,
                       sha: str | None = None) -> tuple[Manifest, str]:
    """The worker's manifest at commit `sha` (default: tip of main) and that commit's full sha."""
    commit = ws.repo.resolve(sha) if sha else ws.repo.tip()
    where = f"{paths.worker_dir(worker_id)}/{paths.MANIFEST}"
    blob = ws.repo.entry(commit, where)
    if commit is None or blob is None:
        raise Conflict(f"Worker {worker_id} is not committed yet (on-disk edits are synced after a "
                       "short quiet period); retry in a moment")
    key = str(blob.id)
    manifest = _manifests.get(key)
    if manifest is None:
        manifest = parse_manifest(blob.read_raw(), where=where, folder=worker_id)
        if len(_manifests) > 4096:
            _manifests.clear()
        _manifests[key] = manifest
    return manifest, str(commit.id)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def validate_inputs(manifest: Manifest, given: dict[str, Any]) -> dict[str, Any]:
    """Effective inputs: given values checked and converted, defaults filled in. Raises
    InvalidInput `Missing required inputs: a, b` or naming the bad input."""
    out = dict(given)
    missing = [f.name for f in manifest.exec.inputs
               if f.required and _empty(out.get(f.name)) and f.default is None]
    if missing:
        raise InvalidInput("Missing required inputs: " + ", ".join(missing))
    for f in manifest.exec.inputs:
        if _empty(out.get(f.name)):
            if f.default is not None:
                out[f.name] = f.default
            continue
        out[f.name] = check_value(f, out[f.name], f"inputs.{f.name}")
    return out


def check_given(manifest: Manifest, values: dict[str, Any], where: str = "input_values") -> None:
    """Check the values given for declared inputs (none is required here); InvalidInput naming
    the first bad one."""
    for f in manifest.exec.inputs:
        if not _empty(values.get(f.name)):
            check_value(f, values[f.name], f"{where}.{f.name}")


def with_saved(manifest: Manifest, given: dict[str, Any] | None) -> dict[str, Any]:
    """The inputs a run starts from: the worker's saved `input_values`, then the run's own."""
    return {**(manifest.input_values or {}), **(given or {})}


def missing_required(manifest: Manifest, given: dict[str, Any]) -> list[str]:
    given = with_saved(manifest, given)
    return [f.name for f in manifest.exec.inputs
            if f.required and _empty(given.get(f.name)) and f.default is None]
