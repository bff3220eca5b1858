import argparse

import pytest

from bench.common import DIRECT, FLOOR, LIUTONG
from bench.streams import Step, flex_concurrency, holds, largest_held, parse_args, report


def step(target: str, streams: int, *, ttft_p99: float = 2.0, late_p99: float = 2.0, errors: int = 0,
         cpu_s: float | None = 1.0) -> Step:
    return Step(target, streams, 1.0, ttft_p99, 0.5, late_p99, errors, cpu_s, 30.0, 0.1, 32.0)


def test_a_step_holds_within_the_added_ttft_and_lateness_it_allows_over_direct_at_the_same_n() -> None:
    direct = step(DIRECT, 500, ttft_p99=5.0, late_p99=3.0)
    assert holds(step(LIUTONG, 500, ttft_p99=55.0, late_p99=13.0), direct)
    assert not holds(step(LIUTONG, 500, ttft_p99=55.1, late_p99=3.0), direct)
    assert not holds(step(LIUTONG, 500, ttft_p99=5.0, late_p99=13.1), direct)
    assert not holds(step(LIUTONG, 500, errors=1), direct)


def test_the_largest_n_held_is_the_largest_step_that_held_not_the_last_one_run() -> None:
    steps = {(DIRECT, n): step(DIRECT, n) for n in (100, 250, 500)}
    steps |= {(LIUTONG, 100): step(LIUTONG, 100), (LIUTONG, 250): step(LIUTONG, 250),
              (LIUTONG, 500): step(LIUTONG, 500, late_p99=40.0)}
    assert largest_held(steps, LIUTONG) == 250
    assert largest_held(steps, FLOOR) == 0


def test_the_flex_default_takes_liutongs_share_of_the_core_and_headroom_in_multiples_of_25() -> None:
    assert flex_concurrency(1000, 0.5) == 400
    assert flex_concurrency(750, 0.55) == 325
    assert flex_concurrency(10, 0.5) == 25  # never below one step of 25


def test_the_report_prints_the_ratio_and_the_suggested_default(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(steps=[100, 250], duration=30.0)
    steps = {(DIRECT, n): step(DIRECT, n) for n in (100, 250)}
    steps |= {(FLOOR, 100): step(FLOOR, 100), (FLOOR, 250): step(FLOOR, 250, cpu_s=6.0),
              (LIUTONG, 100): step(LIUTONG, 100), (LIUTONG, 250): step(LIUTONG, 250, cpu_s=6.0)}
    report(steps, args)
    out = capsys.readouterr().out
    assert "floor 250, Liutong 250: Liutong 1.00x" in out
    assert "0.800 ms, floor 0.800 ms (1.00x)" in out
    assert "= 100" in out  # 250 x 0.5 x 0.8


def test_steps_are_parsed_in_the_order_given() -> None:
    assert parse_args(["--steps", "100, 250,500"]).steps == [100, 250, 500]
    assert parse_args([]).ramp == 10.0
