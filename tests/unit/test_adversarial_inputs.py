"""Expectation values that can never match: numeric text under an exact rule is refused by pack validate."""

from __future__ import annotations

import pytest

from pack import cli


@pytest.mark.parametrize("value", ["1e400", "'79367'", "'nan'", "'1.5'"])
def test_numeric_text_value_is_refused_with_file_and_line(home, capsys, value):
    f = home / "expected" / "local-ablation" / "int6-clip-search.yaml"
    text = f.read_text()
    assert "value: 79367" in text
    f.write_text(text.replace("value: 79367", f"value: {value}"))
    with pytest.raises(SystemExit) as e:
        cli.main(["validate"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "int6-clip-search.yaml:" in err and "reads as a number" in err


def test_the_shipped_expectations_still_validate(home, capsys):
    try:
        cli.main(["validate"])
    except SystemExit as e:
        assert e.code == 0, capsys.readouterr().err
