"""services: the worker's services are built once, and what they hold is then kept out of full collections."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import services


def test_freezing_moves_the_live_heap_out_of_the_collectors_reach() -> None:
    before = gc.get_freeze_count()
    kept = [object() for _ in range(10)]  # alive now, so frozen
    try:
        services.freeze_startup_heap()
        assert gc.get_freeze_count() >= before + len(kept)
    finally:
        gc.unfreeze()  # the rest of the test session collects as before


async def test_the_first_use_builds_the_services_once_then_freezes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    frozen: list[bool] = []

    async def create(settings: Any) -> Any:
        built.append(object())
        return built[-1]

    monkeypatch.setattr(services, "_current", None)
    monkeypatch.setattr(services, "get_settings", lambda: None)
    monkeypatch.setattr(services.Services, "create", create)
    monkeypatch.setattr(services, "freeze_startup_heap", lambda: frozen.append(True))
    first, again = await services.get_services(), await services.get_services()
    assert first is again is built[0] and len(built) == 1 and frozen == [True]
