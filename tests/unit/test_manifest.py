from pathlib import Path

import pytest

from pack.errors import ManifestError
from pack.manifest import load_manifest
from tests.conftest import write

GOOD = """
paper: demo
title: Demo paper
source: a test
defaults:
  reps: 2
  params: {shared: 1}
rows:
  - id: sweep
    cell: "Table 1"
    experiment: command
    target: {hardware: cpu}
    params: {executable: "true"}
    matrix: {rank: [256, 512]}
    metrics:
      "*.wall_s": {tolerance: {kind: rel, value: 0.5}}
"""


def test_defaults_merge_and_matrix_expand(home):
    m = load_manifest(write(home / "manifests" / "demo.yaml", GOOD))
    assert [r.id for r in m.rows] == ["sweep.rank-256", "sweep.rank-512"]
    r = m.rows[1]
    assert r.reps == 2 and r.params == {"shared": 1, "executable": "true", "rank": 512}
    assert r.at("smoke").params_hash() != m.rows[0].at("smoke").params_hash()


def test_three_mistakes_reported_at_once(home):
    bad = GOOD.replace("experiment: command", "experimnt: command\n    experiment: comand").replace(
        "hardware: cpu", "hardware: g6e.xlarg"
    )
    path = write(home / "manifests" / "demo.yaml", bad)
    with pytest.raises(ManifestError) as ei:
        load_manifest(path)
    msg = str(ei.value)
    assert "3 problems" in msg, msg
    assert "did you mean 'experiment'" in msg
    assert "unknown experiment 'comand'; did you mean 'command'" in msg
    assert "unknown hardware 'g6e.xlarg'" in msg and "g6e.xlarge" in msg
    assert f"{path}:" in msg  # every problem names the file and a line


def test_malformed_yaml_names_line(home):
    path = write(home / "manifests" / "demo.yaml", "paper: demo\nrows: [\n  - id: x\n")
    with pytest.raises(ManifestError) as ei:
        load_manifest(path)
    assert "malformed YAML" in str(ei.value) and str(path) in str(ei.value)


def test_tolerance_without_value(home):
    path = write(home / "manifests" / "demo.yaml", GOOD.replace("{kind: rel, value: 0.5}", "{kind: rel}"))
    with pytest.raises(ManifestError) as ei:
        load_manifest(path)
    assert "value" in str(ei.value) and "required" in str(ei.value)


def test_unknown_image(home):
    path = write(
        home / "manifests" / "demo.yaml", GOOD.replace("{hardware: cpu}", "{hardware: cpu, image: cu999}")
    )
    with pytest.raises(ManifestError) as ei:
        load_manifest(path)
    assert "unknown image 'cu999'" in str(ei.value)


def test_real_manifests_validate(home):
    from pack.manifest import all_manifests

    assert {m.paper for m in all_manifests()} >= {"latent-bridge", "local-ablation"}


def test_validate_cli_reports_all_and_exits_2(pack, home):
    bad = GOOD.replace("experiment: command", "experimnt: command\n    experiment: comand").replace(
        "hardware: cpu", "hardware: g6e.xlarg"
    )
    write(home / "manifests" / "demo.yaml", bad)
    res = pack("validate")
    assert res.returncode == 2
    assert "3 problems" in res.stderr and "Traceback" not in res.stderr


def test_expectation_for_missing_row(pack, home):
    write(
        home / "expected" / "latent-bridge" / "nope.yaml",
        """
        paper: latent-bridge
        row: nope
        expectations:
          - metric: x
            value: 1
            tolerance: {kind: exact}
            source: {seed: s.txt, table: t}
        """,
    )
    res = pack("validate")
    assert res.returncode == 2
    assert "row 'nope', which does not exist" in res.stderr and "Traceback" not in res.stderr


def test_unknown_key_in_expected_suggests(pack, home):
    write(
        home / "expected" / "latent-bridge" / "wire-compression.yaml",
        """
        paper: latent-bridge
        row: wire-compression
        expectations:
          - metric: text_bytes
            valeu: 1
            source: {seed: s.txt}
        """,
    )
    res = pack("validate")
    assert res.returncode == 2 and "did you mean 'value'" in res.stderr


def test_unknown_row_suggests(pack):
    res = pack("show", "wire-compresion")
    assert res.returncode == 2 and "did you mean 'wire-compression'" in res.stderr


def test_manifest_paper_must_match_file(home):
    path = write(home / "manifests" / "other.yaml", GOOD)
    with pytest.raises(ManifestError, match="must match the file name"):
        load_manifest(Path(path))
