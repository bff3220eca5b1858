"""The usage sink that counts what it passes on: every proxied call ends in exactly one usage record."""

from __future__ import annotations

import time
from typing import Generic, Protocol, TypeVar

from core.metrics import Metrics, UsageFacts, first_chunk_at

Record = TypeVar("Record", bound=UsageFacts)
Accepted = TypeVar("Accepted", bound=UsageFacts, contravariant=True)


class RecordSink(Protocol[Accepted]):
    async def record(self, record: Accepted) -> None: ...


class MeteredUsageSink(Generic[Record]):
    """A usage.records.UsageSink around another: counts the record, then hands it on."""

    def __init__(self, inner: RecordSink[Record], metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def record(self, record: Record) -> None:
        first = first_chunk_at.get()
        first_ms = None
        if first is not None:
            # latency_ms was taken a moment ago from the call's start: the start is that far back from now.
            first_ms = max(0.0, record.latency_ms - (time.monotonic() - first) * 1000)
        self._metrics.usage(record, first_chunk_ms=first_ms)
        await self._inner.record(record)
