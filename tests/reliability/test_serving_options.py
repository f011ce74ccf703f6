"""``stock-serve``'s bounds are positive numbers: anything else is one line naming the option."""

from __future__ import annotations

import pytest

from stock_assets.mlflow_ops.serving.server import parse_args


@pytest.mark.parametrize(
    "option",
    ["--read-timeout=0", "--read-timeout=nan", "--max-waiting=-1", "--workers=0", "--workers=x"],
)
def test_serving_bounds_must_be_positive(option: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args([option])
    assert exit_info.value.code == 2
    name, value = option.split("=")
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last
        == f"stock-serve: error: argument {name}: expected a positive "
        + ("float" if name == "--read-timeout" else "int")
        + f", got {value!r}"
    )


def test_serving_bounds_are_read() -> None:
    args = parse_args(["--read-timeout", "2.5", "--max-waiting", "8", "--max-request-bytes", "9"])
    assert (args.read_timeout, args.max_waiting, args.max_request_bytes) == (2.5, 8, 9)
