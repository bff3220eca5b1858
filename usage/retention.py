"""How long usage is kept: raw per-request rows (the evidence for disputes and audits) and the hourly
aggregates that reports, the usage page and metering read (longer: a year of invoices and disputes).

Pure: no I/O. The hours before a cutoff may be deleted; a range reaching before it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.hours import floor_hour
from core.settings import Settings


@dataclass(frozen=True)
class RetentionPolicy:
    raw_days: int = 90
    aggregate_days: int = 400

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(settings.usage_raw_retention_days, settings.usage_aggregate_retention_days)

    def raw_cutoff(self, now: datetime) -> datetime:
        """The first hour whose raw rows are kept."""
        return floor_hour(now) - timedelta(days=self.raw_days)

    def aggregate_cutoff(self, now: datetime) -> datetime:
        """The first hour whose aggregates are kept."""
        return floor_hour(now) - timedelta(days=self.aggregate_days)
