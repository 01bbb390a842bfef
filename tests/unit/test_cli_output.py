"""What the CLI prints: tables that fit the terminal (plain columns on a pipe), the repetitions'
progress bar on a terminal's stderr only, `--json` on every command that prints results, and
PAPER:ROW (or a bare row id) wherever a row is taken. In-process (tests/conftest.py invoke_cli)."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

from pack import console
from tests.conftest import REPO, invoke_cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ROW = "latent-bridge:wire-compression"


def visible(text: str) -> list[str]:
    return ANSI.sub("", text).splitlines()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A home (copies of manifests/ and expected/) with one finished two-repetition smoke run of ROW."""
    base = tmp_path_factory.mktemp("out")
    shutil.copytree(REPO / "manifests", base / "home" / "manifests")
    shutil.copytree(REPO / "expected", base / "home" / "expected")
    env = {"PACK_HOME": str(base / "home"), "PACK_RUNS": str(base / "runs"), "PACK_PLAIN": None}

    def pack(*args, **extra):
        return invoke_cli(args, env=env | extra, cwd=base)

    res = pack("run", ROW, "--reps", "2", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    pack.base, pack.run = base, json.loads(res.stdout)[0]["run_dir"]
    pack.stderr_of_run = res.stderr
    return pack


# ------------------------------------------------------------------ console.py
def test_plain_tables_align_columns_and_never_wrap():
    text = console.table(
        ["A", "LONG HEADER", "WHY"], [["x", None, "w" * 300], ["yy", "z", "short"]], fancy=False
    )
    lines = text.splitlines()
    assert lines[0] == "A   LONG HEADER  WHY"
    assert lines[1] == "x   —            " + "w" * 300  # None is a dash; the last column is never cut
    assert lines[2] == "yy  z            short"


@pytest.mark.parametrize("width", [40, 72, 120])
def test_terminal_tables_fit_the_width_and_keep_every_character(width):
    rows = [[f"paper:row-{i}", "PASS", "measured 1.5, expected 1.5 (±1%) " * 4] for i in range(3)]
    text = console.table(["ROW", "VERDICT", "WHY"], rows, fancy=True, max_width=width)
    lines = visible(text)
    assert max(len(x) for x in lines) <= width, text
    squeezed = "".join("".join(lines).split())
    for r in rows:  # folded, never cut with an ellipsis
        assert all("".join(c.split()) in squeezed for c in r)
    if width >= 72:
        assert any("paper:row-0" in x for x in lines)  # ids stay whole where there is room


def test_progress_is_drawn_on_a_terminal_only(monkeypatch):
    monkeypatch.delenv("PACK_PLAIN", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    tty = Terminal()
    with console.progress(3, "row reps", stream=tty) as bar:
        bar.kept()
        bar.advance()
        bar.advance()
    shown = ANSI.sub("", tty.getvalue())
    assert "row reps" in shown and "3/3" in shown and "ETA" in shown and "elapsed" in shown
    for stream, total, env in ((io.StringIO(), 3, None), (Terminal(), 1, None), (Terminal(), 3, "1")):
        if env:
            monkeypatch.setenv("PACK_PLAIN", env)
        with console.progress(total, "row reps", stream=stream) as bar:
            bar.advance()
        assert stream.getvalue() == ""


def test_a_piped_run_draws_no_progress_bar(project):
    assert "rep 2/2: done" in project.stderr_of_run  # the log lines are there
    assert "ETA" not in project.stderr_of_run and "━" not in project.stderr_of_run


def test_commands_draw_tables_that_fit_a_terminal(project, monkeypatch):
    monkeypatch.setattr(console, "is_terminal", lambda stream=None: True)
    bundle = project.base / "fits.tar.gz"
    assert project("bundle", ROW, "-o", bundle).returncode == 0
    env_a = f"{project.run}/env.json"
    env_b = project.base / "env_b.json"
    doc = json.loads(open(env_a).read())
    doc["packages"] = {k: "9.9.9-a-much-longer-version-string-than-any-real-one" for k in doc["packages"]}
    env_b.write_text(json.dumps(doc))
    for args in (
        ["list"],
        ["status", "latent-bridge"],
        ["verify", ROW],
        ["diff", ROW, bundle],
        ["env", "--diff", env_a, env_b],
        ["plan", "paperB", "--hw", "g6e.xlarge"],
    ):
        res = project(*args, COLUMNS="72")
        assert res.returncode in (0, 1), (args, res.stderr)
        lines = visible(res.stdout)
        assert lines and max(len(x) for x in lines) <= 72, (args, res.stdout)
    res = project("list", "latent-bridge", COLUMNS="72")
    assert "─" in res.stdout  # drawn by rich, not the plain columns


# ------------------------------------------------------------------ --json everywhere
def test_every_command_that_prints_results_has_json(project):
    bundle = project.base / "b.tar.gz"
    env_json = f"{project.run}/env.json"
    docs = {}
    for name, args in {
        "list": ["list", "--json"],
        "show": ["show", ROW, "--json"],
        "plan": ["plan", "latent-bridge", "--hw", "cpu", "--scale", "smoke", "--json"],
        "validate": ["validate", "--json"],
        "run": ["run", ROW, "--resume", "--reps", "2", "--json"],
        "verify": ["verify", ROW, "--json"],
        "report": ["report", ROW, "--out", project.base / "rep", "--json"],
        "env --diff": ["env", "--diff", env_json, env_json, "--json"],
        "bundle": ["bundle", ROW, "-o", bundle, "--json"],
        "diff": ["diff", ROW, bundle, "--json"],
        "status": ["status", ROW, "--json"],
    }.items():
        res = project(*args)
        assert res.returncode in (0, 1), (name, res.stdout, res.stderr)
        docs[name] = json.loads(res.stdout)  # stdout is exactly one JSON document
    assert any(r["row"] == "wire-compression" for r in docs["list"])
    assert docs["show"]["row"] == "wire-compression"
    assert [i["row"] for i in docs["plan"]["rows_ok"]]
    assert docs["validate"]["ok"] is True and docs["validate"]["problems"] == []
    assert docs["run"][0]["up_to_date"] is True and docs["run"][0]["row"] == ROW
    assert docs["verify"]["rows"][0]["row"] == "wire-compression"
    assert docs["env --diff"] == []
    assert sorted(Path(f).name for f in docs["report"]["files"]) == [
        "junit.xml",
        "report.html",
        "report.json",
        "report.md",
    ]
    assert docs["bundle"]["bundle"] == str(bundle) and len(docs["bundle"]["runs"]) == 1
    assert docs["diff"]["rows"] and all(m["within"] for m in docs["diff"]["rows"][0]["metrics"])
    assert {(r["row"], r["scale"]) for r in docs["status"]["rows"]} == {
        ("wire-compression", "smoke"),
        ("wire-compression", "full"),
    }


def test_validate_json_lists_every_problem_and_exits_2(project, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(project.base / "home", home)
    (home / "manifests" / "broken.yaml").write_text("paper: broken\nrows: 3\n")
    res = invoke_cli(["validate", "--json"], env={"PACK_HOME": str(home)}, cwd=tmp_path)
    doc = json.loads(res.stdout)
    assert res.returncode == 2 and doc["ok"] is False
    assert doc["problems"] and all("broken.yaml" in p for p in doc["problems"])


# ------------------------------------------------------------------ PAPER:ROW everywhere
@pytest.mark.parametrize("ref", [ROW, "wire-compression"])
def test_a_row_is_named_the_same_way_everywhere(project, ref):
    bundle = project.base / f"{ref.replace(':', '_')}.tar.gz"
    for args in (
        ["list", ref],
        ["show", ref],
        ["plan", ref, "--hw", "cpu", "--scale", "smoke"],
        ["run", ref, "--resume", "--reps", "2"],
        ["verify", ref],
        ["status", ref],
        ["bundle", ref, "-o", bundle],
        ["report", ref, "--out", project.base / "rep-ref"],
        ["diff", ref, ref],
    ):
        res = project(*args)
        assert res.returncode in (0, 1), (args, res.stdout, res.stderr)
        assert "wire-compression" in res.stdout or args[0] in ("bundle", "report"), (args, res.stdout)
    listed = project("list", ref, "--json")
    assert [r["row"] for r in json.loads(listed.stdout)] == ["wire-compression"]
    planned = json.loads(project("plan", ref, "--hw", "cpu", "--scale", "smoke", "--json").stdout)
    assert [i["row"] for i in planned["rows_ok"] + planned["refused"]] == ["wire-compression"]


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["show"],
        ["plan", "--hw", "cpu"],
        ["run"],
        ["verify"],
        ["status"],
        ["diff", ROW],
    ],
)
def test_a_misspelt_row_is_one_sentence_with_the_close_match(project, args):
    res = project(*args[:1], "latent-bridge:wire-compresion", *args[1:])
    assert res.returncode == 2, (args, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "wire-compression" in res.stderr, (args, res.stderr)


def test_forensics_inputs_take_a_row_too(home, tmp_path):
    from pack.cli_forensics import collect

    run = tmp_path / "runs" / "forensics" / "exp0" / "20260101T000000Z-smoke-0"
    (run / "summary").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    uniform = run / "summary" / "exp0.json"
    uniform.write_text(json.dumps({"experiment_metadata": {}, "runs": []}))
    assert collect(["forensics:exp0"]) == collect(["exp0"]) == [uniform]
    res = invoke_cli(
        ["export", "forensics:exp1", "--format", "compact", "-o", tmp_path / "x.json"], cwd=tmp_path
    )
    assert res.returncode == 2 and "neither a forensics JSON file" in res.stderr, res.stderr
