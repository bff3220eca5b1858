import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from bench.budget import VARIANTS, drive, record_nothing, report, running, switched_off
from bench.passthrough import build_app
from localdev.mock_upstream import RunningMockUpstream, start_in_thread


@pytest.fixture(scope="module")
def mock() -> Iterator[RunningMockUpstream]:
    with start_in_thread() as running_mock:
        yield running_mock


def test_drive_makes_exactly_the_calls_asked_for_through_the_apps_asgi_interface(mock: RunningMockUpstream) -> None:
    async def scenario() -> dict[int, int]:
        app = build_app(mock.base_url)
        async with running(app):
            return (await drive(app, None, 37, 8)).statuses  # 37 does not divide by 8: the remainder is shared out

    mock.received.clear()
    assert asyncio.run(scenario()) == {200: 37}
    assert len(mock.received) == 37
    assert mock.received[-1].body["model"] == "bench-chat"


class Writer:
    async def record(self, record: Any) -> None:
        raise AssertionError("the real record() ran")


class Limiter:
    async def admit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the real admit() ran")


def test_a_variant_switches_its_features_off_on_the_instances_and_restores_them_after() -> None:
    built: Any = SimpleNamespace(usage=Writer(), limiter=Limiter())
    with switched_off(built, "no usage record"):
        assert built.usage.record is record_nothing
        assert "admit" not in vars(built.limiter)
    with switched_off(built, "neither"):
        admission = asyncio.run(built.limiter.admit(None, None, model_alias="m", estimated_plan_tokens=1))
        assert admission.headers == {}
        assert built.usage.record is record_nothing
    assert vars(built.usage) == {} and vars(built.limiter) == {}  # the classes' own methods again
    with pytest.raises(AssertionError, match="the real admit"):
        asyncio.run(built.limiter.admit())


def test_the_report_gives_each_feature_its_saving_against_liutong_and_every_variant_its_ratio_to_the_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    samples = dict(zip(VARIANTS, ([100.0, 110.0, 90.0], [250.0], [200.0], [220.0], [170.0]), strict=True))
    report(samples, rounds=3)
    out = capsys.readouterr().out
    assert "floor                 100.0" in out
    assert "liutong               250.0" in out and "2.50" in out
    assert "no usage record       200.0" in out and "50.0" in out
    assert "no limits             220.0" in out and "30.0" in out
    assert "neither               170.0" in out and "1.70" in out
    assert "Liutong's own code: 150.0 µs per call; without usage record and limits 70.0 µs" in out
