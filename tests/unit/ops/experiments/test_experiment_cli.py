"""`raftka experiment` refuses bad options before it starts anything (exit status 2).

The command runs in-process through its parser, not ``cli.main``, which would configure
structlog for the whole test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftka.client.cli.app import build_parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "kill,crash"], "unknown fault kind 'crash'"),
        (["--targets", "everyone"], "unknown target 'everyone'"),
        (["--broker-setting", "replica_lag_time_max_ms"], "wants KEY=VALUE"),
        (["--fault-interval", "0"], "must be positive"),
    ],
)
def test_bad_options_exit_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["experiment", "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "nothing was started or written"


def test_an_output_directory_in_use_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "report.json").write_text("{}")
    assert main(["experiment", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_a_bad_schedule_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schedule = tmp_path / "s.toml"
    schedule.write_text('[[fault]]\nkind = "kill"\n')
    assert main(["experiment", "--schedule", str(schedule), "--out", str(tmp_path / "o")]) == 2
    assert "missing 'target'" in capsys.readouterr().err
