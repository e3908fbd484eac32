"""The built-in tools on their own: context files stay inside their mounts, outputs are checked
against the declared fields, `disable_tools` and the first user message."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from floom_git.agents.context_tools import READ_CHUNK, context_tools
from floom_git.agents.outputs import OutputSink, output_tools
from floom_git.agents.prompt import first_message
from floom_git.agents.tools import BadArguments, Finished, ToolError, select_tools
from floom_git.schemas.manifest import Field
from tests.agents.helpers import BRIEF, SCORE


@pytest.fixture
def mounts(tmp_path: Path) -> dict[str, Path]:
    company = tmp_path / "company"
    (company / "docs").mkdir(parents=True)
    (company / "about.md").write_text("About us")
    (company / "docs" / "long.txt").write_text("x" * (READ_CHUNK + 10))
    (company / "logo.png").write_bytes(b"\x89PNG\x00\x00")
    (tmp_path / "secret.txt").write_text("do not read")
    os.symlink(tmp_path / "secret.txt", company / "link.txt")
    os.symlink(tmp_path, company / "up")
    return {"company": company}


async def call(tools, tool: str, **args):
    return await {t.name: t for t in tools}[tool].fn(args)


async def test_list_files_lists_mounted_files_without_links(mounts):
    tools = context_tools(mounts)
    listed = await call(tools, "list_files")
    assert [f["path"] for f in listed["files"]] == [
        "context/company/about.md", "context/company/docs/long.txt", "context/company/logo.png"]
    only = await call(tools, "list_files", prefix="context/company/docs/")
    assert len(only["files"]) == 1


async def test_read_file_pages_long_files(mounts):
    tools = context_tools(mounts)
    first = await call(tools, "read_file", path="context/company/docs/long.txt")
    assert len(first["content"]) == READ_CHUNK and first["next_offset"] == READ_CHUNK
    rest = await call(tools, "read_file", path="context/company/docs/long.txt",
                      offset=first["next_offset"])
    assert rest["content"] == "x" * 10 and "next_offset" not in rest
    assert (await call(tools, "read_file", path="./context/company/about.md"))[
        "content"
    ] == "About us"


@pytest.mark.parametrize("path,message", [
    ("context/company/../../secret.txt", "without '.', '..'"),
    ("context/company/link.txt", "symbolic links"),
    ("context/company/up/secret.txt", "symbolic links"),
    ("context/other/x.md", "not in a mounted context (mounted: context/company/)"),
    ("/etc/passwd", "not in a mounted context"),
    ("context/company/nope.md", "no such file"),
    ("context/company/docs", "is a directory"),
    ("context/company/logo.png", "binary file"),
])
async def test_read_file_refuses(mounts, path: str, message: str):
    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await call(context_tools(mounts), "read_file", path=path)


async def test_tool_arguments_checked_against_schema(mounts):
    with pytest.raises(BadArguments, match=r"\$.offset"):
        await call(context_tools(mounts), "read_file", path="context/company/about.md", offset=-1)
    with pytest.raises(BadArguments, match="unknown field `mode`"):
        await call(context_tools(mounts), "list_files", mode="all")


async def test_outputs_checked_against_declared_fields(tmp_path: Path):
    report = Field(name="report", kind="file", media_type="application/json",
                   json_required_keys=["title"])
    table = Field(name="table", kind="file", media_type="text/csv", columns=["a", "b"])
    level = Field(name="level", type="select", options=["low", "high"])
    sink = OutputSink([BRIEF, SCORE, report, table, level], tmp_path)
    tools = output_tools(sink)
    for name, value, message in [
        ("nope", 1, "not a declared output"),
        ("score", "high", "outputs.score: expected a number"),
        ("brief", {"a": 1}, "a file output takes the file's text"),
        ("report", "{not json", "not valid JSON"),
        ("report", '{"other": 1}', "lacks title"),
        ("table", "a,c\n1,2\n", "CSV header lacks b"),
        ("level", "medium", "must be one of low, high"),
    ]:
        with pytest.raises(ToolError, match=message):
            await call(tools, "write_output", name=name, value=value)
    assert sink.values == {} and not (tmp_path / "out").exists()
    await call(tools, "write_output", name="report", value='{"title": "T"}')
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == {"title": "T"}
    assert sink.values == {"report": "out/report.json"}


async def test_finish_with_outputs_all_or_nothing(tmp_path: Path):
    sink = OutputSink([BRIEF, SCORE], tmp_path)
    tools = output_tools(sink)
    with pytest.raises(ToolError, match="missing outputs: brief; nothing was written"):
        await call(tools, "finish_with_outputs", outputs={"score": 1})
    assert sink.values == {}
    done = await call(tools, "finish_with_outputs", outputs={"brief": "# B", "score": "2"})
    assert isinstance(done, Finished) and done.outputs == {"brief": "out/brief.md", "score": 2}


async def test_outputs_without_declarations_take_any_identifier(tmp_path: Path):
    sink = OutputSink([], tmp_path)
    await call(output_tools(sink), "write_output", name="answer", value={"n": 42})
    assert sink.values == {"answer": {"n": 42}} and sink.missing() == []
    with pytest.raises(ToolError, match="an output name is"):
        await call(output_tools(sink), "write_output", name="../x", value=1)


def test_optional_outputs_still_need_one(tmp_path: Path):
    optional = OutputSink(
        [Field(name="a", type="string"), Field(name="b", type="string")], tmp_path
    )
    assert optional.missing() == ["a", "b"]
    optional.values["b"] = "x"
    assert optional.missing() == []


@pytest.mark.parametrize("path", ["../x.md", "out/../x.md", "brief.md", "out/", "/out/x"])
async def test_file_output_path_must_stay_under_out(tmp_path: Path, path: str):
    sink = OutputSink([Field(name="f", kind="file", path=path)], tmp_path)
    with pytest.raises(ToolError, match="must be under out/"):
        sink.check("f", "text")


def test_select_tools_drops_disabled_and_refuses_duplicates(mounts):
    tools = context_tools(mounts)
    assert [t.name for t in select_tools(tools, ["read_file", "web_search"])] == ["list_files"]
    with pytest.raises(ValueError, match="two tools are named list_files"):
        select_tools(tools + tools)


def test_first_message_names_inputs_contexts_and_outputs():
    text = first_message({"topic": "Onboarding"}, [BRIEF, SCORE], ["company"],
                         ["read_file", "finish_with_outputs"])
    assert '"topic": "Onboarding"' in text and "context/company/" in text
    assert "- brief (file out/brief.md, give its full text; required)" in text
    assert "finish_with_outputs" in text
    bare = first_message({}, [BRIEF], ["company"], ["write_output"])
    assert "context/company/" not in bare and "write_output" in bare
