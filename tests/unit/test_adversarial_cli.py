"""Environment faults through the real CLI entry point: one sentence naming the path, exit 2, no traceback."""

from __future__ import annotations

import errno

import pytest

from pack import cli


def run_cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        cli.main(list(args))
    return e.value.code, capsys.readouterr().err


def test_a_file_where_the_runs_folder_is_expected_is_one_sentence(home, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    code, err = run_cli(capsys, "run", "wire-compression", "--out", str(afile))
    assert code == 2 and "internal error" not in err and "Traceback" not in err
    assert str(afile) in err and "a file is where a folder is expected" in err
    assert afile.read_text() == "not a folder"  # nothing already there is lost


@pytest.mark.parametrize("code", sorted(cli.ENV_FAULTS))
def test_every_environment_fault_is_a_sentence(monkeypatch, capsys, code):
    def boom(*a, **k):
        raise OSError(code, "simulated", "/some/path")

    monkeypatch.setattr(cli, "cli", type("C", (), {"main": staticmethod(boom)}))
    rc, err = run_cli(capsys)
    assert rc == 2 and err.startswith("pack: error: /some/path: simulated; ")


def test_an_unexpected_oserror_is_still_an_internal_error(monkeypatch, capsys):
    def boom(*a, **k):
        raise OSError(errno.EBADF, "bad fd")

    monkeypatch.setattr(cli, "cli", type("C", (), {"main": staticmethod(boom)}))
    rc, err = run_cli(capsys)
    assert rc == 3 and "internal error" in err
