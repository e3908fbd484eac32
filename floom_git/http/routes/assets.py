"""Route-table entries: system info, workers, contexts and the workspace instructions."""

from __future__ import annotations

from typing import Any

from floom_git.http.handlers import contexts, system, workers, workspace
from floom_git.http.route import BOOL, OFFSET, PAGE, Route, limit
from floom_git.schemas import api
from floom_git.schemas.base import NOT_BLANK
from floom_git.schemas.run import WorkerPatch

W = "workers"
C = "contexts"
S = "workspace"

ROUTES: list[Route] = [
    Route("GET", "/healthz", system.healthz, "public", "Liveness check", "system", response=api.Health),
    Route("GET", "/health", system.health, "public", "Minimal health check", "system", response=api.Health),
    Route("GET", "/system/info", system.info, "read", "API version and environment", "system",
          response=api.SystemInfo),
    # workers
    Route("GET", "/workers", workers.list_workers, "read", "List workers", W,
          response=list[api.WorkerSummary], extra={"total_count": True},
          query=(limit("page size (default 100, at most 500)"), OFFSET,
                 ("status", "string", "only workers in this state",
                  {"enum": ["ready", "paused", "archived", "error", "needs_setup"]}),
                 ("starred", BOOL, "only starred (true) or unstarred (false)"),
                 ("q", "string", "substring of id, title or description"),
                 ("shape", "string", "list: inputs and long_description are null",
                  {"enum": ["full", "list"]}),
                 ("include_archived", BOOL, "include archived workers"))),
    Route("POST", "/workers/reload", workers.reload, "write", "Reload workers from disk", W,
          response=api.ReloadResult),
    Route("POST", "/workers", workers.create_worker, "write", "Create a worker from a manifest plus files",
          W, body=api.WorkerCreate, response=api.WorkerDetail, status=201,
          extra={"validates": "the files must hold a valid worker.yml and its entry file"}),
    Route("GET", "/workers/{id}", workers.get_worker, "read", "Worker detail", W, response=api.WorkerDetail),
    Route("DELETE", "/workers/{id}", workers.delete_worker, "write", "Delete a worker", W,
          response=api.Deleted),
    Route("PUT", "/workers/{id}", workers.put_worker, "write",
          "Update the worker's source ({worker_yml, run_py, skill_md, files}; other files stay)", W,
          body=api.WorkerCreate, response=api.WorkerDetail,
          extra={"validates": "the result must hold a valid worker.yml naming this worker"}),
    Route("PATCH", "/workers/{id}", workers.patch_worker, "write",
          "Worker settings: enabled, input_values, trigger_type + cron + timezone, visibility, "
          "name, description (one worker.yml commit), starred, webhook_secret_rotate", W,
          body=WorkerPatch, response=api.WorkerDetail,
          extra={"validates": "cron and timezone must parse; input_values must fit the "
                              "worker's inputs; the edited worker.yml must validate"}),
    Route("PUT", "/workers/{id}/files", workers.put_files, "write", "Replace all files of a worker", W,
          body=api.WorkerFilesPut, response=api.WorkerDetail,
          extra={"validates": "the files must hold a valid worker.yml and its entry file"}),
    Route("POST", "/workers/{id}/pause", workers.pause, "write", "Pause (no new runs)", W,
          response=api.WorkerDetail),
    Route("POST", "/workers/{id}/resume", workers.resume, "write", "Resume", W, response=api.WorkerDetail),
    Route("POST", "/workers/{id}/archive", workers.archive, "write", "Archive (soft-hide)", W,
          response=api.WorkerDetail),
    Route("POST", "/workers/{id}/restore", workers.restore, "write", "Restore an archived worker", W,
          response=api.WorkerDetail),
    Route("PATCH", "/workers/{id}/visibility", workers.set_visibility, "write", "Set visibility", W,
          body=api.WorkerVisibility, response=api.WorkerDetail),
    Route("GET", "/workers/{id}/versions", workers.list_versions, "read", "Version history (git)", W,
          response=list[api.Version], query=PAGE),
    Route("GET", "/workers/{id}/versions/{sha}", workers.version_files, "read",
          "Files of one version", W, response=api.VersionFiles),
    Route("POST", "/workers/{id}/rollback/{sha}", workers.rollback, "write",
          "Restore the worker as of a version (a new commit)", W, response=api.WorkerDetail),
    Route("GET", "/workers/{id}/sample-input", workers.sample_input, "read", "Example input values", W,
          response=dict[str, Any]),
    Route("GET", "/workers/{id}/bundle.zip", workers.bundle, "read", "Worker bundle as a ZIP", W,
          content_type="application/zip"),
    # contexts
    Route("GET", "/contexts", contexts.list_contexts, "read", "List context packs", C,
          response=list[api.ContextSummary], extra={"total_count": True}),
    Route("POST", "/contexts/{name}", contexts.create_context, "write", "Create a context pack", C,
          body=api.ContextCreate, response=api.ContextDetail, status=201,
          extra={"body_optional": True}),
    Route("GET", "/contexts/{name}", contexts.get_context, "read", "Context files and metadata", C,
          response=api.ContextDetail, query=(("path_prefix", "string", "only files under this prefix"),)),
    Route("DELETE", "/contexts/{name}", contexts.delete_context, "write", "Delete a context pack", C,
          response=api.Deleted),
    Route("POST", "/contexts/{name}/upload", contexts.upload, "write",
          "Bulk upload (multipart/form-data; fields path_prefix, create_if_missing)", C,
          response=api.UploadResult, status=201,
          extra={"multipart": True, "validates": "file names must be clean relative paths"}),
    Route("PUT", "/contexts/{name}/visibility", contexts.set_visibility, "write", "Set visibility", C,
          body=api.ContextVisibility, response=api.ContextDetail),
    Route("PATCH", "/contexts/{name}/sensitive", contexts.set_sensitive, "write",
          "Mark a pack sensitive (left out of exports) or not", C, body=api.ContextSensitive,
          response=api.ContextDetail),
    Route("GET", "/contexts/{name}/versions", contexts.list_versions, "read", "Context versions", C,
          response=list[api.Version], query=PAGE),
    Route("GET", "/contexts/{name}/versions/{sha}", contexts.version_files, "read",
          "Files of one version", C, response=api.VersionFiles),
    Route("POST", "/contexts/{name}/rollback/{sha}", contexts.rollback, "write",
          "Restore the context as of a version (a new commit)", C, response=api.ContextDetail),
    Route("GET", "/contexts/{name}/files/{path:.+}", contexts.read_file, "read",
          "Read a file: raw bytes, or {path, content, is_binary, encoding, size} with "
          "Accept: application/json", C, content_type="application/octet-stream",
          extra={"also": {"application/json": api.ContextFileOut}}),
    Route("PUT", "/contexts/{name}/files/{path:.+}", contexts.put_file, "write",
          "Create or update a file (raw body, or JSON {content, encoding})", C,
          body=api.ContextFileIn, response=api.WriteResult,
          extra={"raw_body": True, "validates": "the path must be a clean relative path and "
                                                "base64 content must decode"}),
    Route("DELETE", "/contexts/{name}/files/{path:.+}", contexts.delete_file, "write", "Delete a file", C,
          response=api.WriteResult),
    # workspace instructions
    Route("GET", "/workspace", workspace.get_instructions, "read",
          "workspace.md (text/markdown; JSON with Accept: application/json)", S,
          content_type="text/markdown", extra={"also": {"application/json": api.WorkspaceDoc}}),
    Route("PUT", "/workspace", workspace.put_instructions, "write",
          "Replace workspace.md (raw markdown, or JSON {content})", S, body=api.WorkspacePut,
          response=api.WorkspaceDoc,
          extra={"raw_body": ("text/markdown", "text/plain"),
                 "raw_schema": {"pattern": NOT_BLANK}}),
    Route("GET", "/workspace/versions", workspace.list_versions, "read", "Versions of workspace.md", S,
          response=list[api.Version], query=PAGE),
    Route("GET", "/workspace/versions/{sha}", workspace.get_version, "read",
          "workspace.md as of a version", S, response=api.WorkspaceDoc),
    Route("POST", "/workspace/rollback/{sha}", workspace.rollback, "write",
          "Restore workspace.md as of a version", S, response=api.WorkspaceDoc),
    Route("GET", "/workspace/changelog", workspace.changelog, "read",
          "History of workers, contexts and instructions, newest first", S,
          response=list[api.ChangelogEntry],
          query=(limit("at most 200 (default 50)"),
                 ("asset_types", "string", "comma list: worker,context,workspace_instructions",
                  {"pattern": "^(worker|context|workspace_instructions)"
                              "(,(worker|context|workspace_instructions))*$"}))),
]
