"""Fixtures shared by the usage tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.settings import Settings
from core.tables import Tables


@pytest.fixture
def settings(tables: Tables, make_settings: Callable[..., Settings]) -> Settings:
    """The settings of the test's tables (the `tables` fixture has created every table, quota and balances too)."""
    return make_settings()
