import dataclasses

import pytest

from bench.common import DIRECT, FLOOR, LIUTONG
from bench.load import WrkResult, parse_bench_line
from bench.proxy import parse_args
from bench.report import Results, summarize_floor


def wrk(requests: int, p50: float, cpu: float) -> WrkResult:
    return WrkResult(requests=requests, seconds=1.0, p50_ms=p50, p90_ms=p50, p99_ms=p50 * 2, max_ms=p50 * 3,
                     errors=0, non2xx=0, cpu_ms=cpu)


def test_the_floor_summary_splits_liutongs_gap(capsys: pytest.CaptureFixture[str]) -> None:
    table = {DIRECT: wrk(4000, 8.0, 0.25), FLOOR: wrk(3600, 9.0, 0.4), LIUTONG: wrk(3200, 10.0, 0.6)}
    summarize_floor(Results(plain=table, stream=dict(table)))
    out = capsys.readouterr().out
    assert "the floor itself: throughput 0.90x direct, added p50 +1.00 ms" in out
    assert "Liutong throughput 0.89x the floor's; added p50 +1.00 ms, p99 +2.00 ms over the floor" in out
    assert "CPU ms/request: floor 0.400, Liutong 0.600 (1.50x): Liutong's own code +0.200 ms/request, 33%" in out
    assert "gap to direct (800 req/s) the floor has 400 req/s (50%), Liutong's own code the rest (50%)" in out
    assert "Azurite" not in out  # no storage measured, nothing said


def test_liutongs_local_storage_cpu_is_reported_apart(capsys: pytest.CaptureFixture[str]) -> None:
    liutong = dataclasses.replace(wrk(3200, 10.0, 0.6), storage_cpu_ms=0.31)
    summarize_floor(Results(plain={DIRECT: wrk(4000, 8.0, 0.25), FLOOR: wrk(3600, 9.0, 0.4), LIUTONG: liutong}))
    assert "Azurite (the usage table, local only) spent 0.310 ms CPU per request" in capsys.readouterr().out


def test_no_floor_no_floor_summary(capsys: pytest.CaptureFixture[str]) -> None:
    summarize_floor(Results(plain={DIRECT: wrk(4000, 8.0, 0.25), LIUTONG: wrk(3200, 10.0, 0.6)}))
    assert capsys.readouterr().out == ""


def test_legs_default_to_all_and_no_litellm_keeps_the_floor() -> None:
    assert parse_args([]).legs == {"liutong", "litellm", "floor"}
    assert parse_args(["--no-litellm"]).legs == {"liutong", "floor"}
    with pytest.raises(SystemExit):
        parse_args(["--legs", "liutong,nope"])


def test_parses_the_wrk_script_line() -> None:
    result = parse_bench_line("requests=100 duration_us=2000000 p50_us=1500 p90_us=2000 p99_us=3000 max_us=9000 "
                              "errors=1 non2xx=2")
    assert (result.rps, result.p50_ms, result.p99_ms, result.errors, result.non2xx) == (50.0, 1.5, 3.0, 1, 2)
