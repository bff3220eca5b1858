import asyncio
import logging
from datetime import datetime, timedelta

import pytest

from keystore.last_used import LastUsedRecorder
from keystore.repository import KeyRepository
from tests.keystore.conftest import NOW, make_record

HASH_A = "a" * 64
HASH_B = "b" * 64


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingWriter:
    def __init__(self, *, fail: bool = False) -> None:
        self.writes: list[tuple[str, datetime]] = []
        self.fail = fail

    async def record_last_used(self, key_hash: str, *, at: datetime) -> bool:
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("storage down")
        self.writes.append((key_hash, at))
        return True


async def settle(writer: RecordingWriter, count: int) -> None:
    for _ in range(200):
        if len(writer.writes) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"expected {count} writes, got {writer.writes}")


async def test_touch_writes_at_most_once_per_interval() -> None:
    clock, writer = FakeClock(), RecordingWriter()
    recorder = LastUsedRecorder(writer, min_interval_seconds=60, clock=clock)
    recorder.touch(HASH_A, NOW)
    await settle(writer, 1)
    for seconds in (10, 30, 59):
        clock.now = 1000 + seconds
        recorder.touch(HASH_A, NOW + timedelta(seconds=seconds))
    await asyncio.sleep(0.05)
    assert writer.writes == [(HASH_A, NOW)]
    clock.now = 1000 + 61
    recorder.touch(HASH_A, NOW + timedelta(seconds=61))
    await settle(writer, 2)
    assert writer.writes[1] == (HASH_A, NOW + timedelta(seconds=61))
    await recorder.close()
    assert len(writer.writes) == 2


async def test_keys_are_throttled_independently() -> None:
    clock, writer = FakeClock(), RecordingWriter()
    recorder = LastUsedRecorder(writer, clock=clock)
    recorder.touch(HASH_A, NOW)
    recorder.touch(HASH_B, NOW)
    await settle(writer, 2)
    assert sorted(h for h, _ in writer.writes) == [HASH_A, HASH_B]
    await recorder.close()


async def test_flush_and_close_write_throttled_uses() -> None:
    clock, writer = FakeClock(), RecordingWriter()
    recorder = LastUsedRecorder(writer, clock=clock)
    recorder.touch(HASH_A, NOW)
    await settle(writer, 1)
    clock.now += 5
    recorder.touch(HASH_A, NOW + timedelta(seconds=5))
    recorder.touch(HASH_A, NOW + timedelta(seconds=3))  # older: ignored
    await recorder.flush()
    assert writer.writes[-1] == (HASH_A, NOW + timedelta(seconds=5))
    clock.now += 5
    recorder.touch(HASH_B, NOW + timedelta(seconds=10))
    recorder.touch(HASH_A, NOW + timedelta(seconds=10))
    await recorder.close()
    later = NOW + timedelta(seconds=10)
    assert set(writer.writes[-2:]) == {(HASH_A, later), (HASH_B, later)}
    count = len(writer.writes)
    recorder.touch(HASH_A, NOW + timedelta(hours=1))  # after close: ignored
    await asyncio.sleep(0.02)
    assert len(writer.writes) == count


def test_touch_without_a_loop_waits_for_flush() -> None:
    writer = RecordingWriter()
    recorder = LastUsedRecorder(writer)
    recorder.touch(HASH_A, NOW)
    asyncio.run(recorder.flush())
    assert writer.writes == [(HASH_A, NOW)]


async def test_failures_are_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    writer = RecordingWriter(fail=True)
    recorder = LastUsedRecorder(writer, clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="liutong.keystore.last_used"):
        recorder.touch(HASH_A, NOW)
        await asyncio.sleep(0.05)
        await recorder.close()
    assert "aaaaaaaa" in caplog.text and HASH_A not in caplog.text


async def test_recorder_against_the_repository(repository: KeyRepository) -> None:
    _, record = make_record()
    await repository.insert(record)
    clock = FakeClock()
    recorder = LastUsedRecorder(repository, clock=clock)
    recorder.touch(record.key_hash, NOW)
    clock.now += 1
    recorder.touch(record.key_hash, NOW + timedelta(seconds=1))
    recorder.touch("c" * 64, NOW)  # unknown key: nothing written, nothing raised
    await recorder.close()
    stored = await repository.get_by_hash(record.key_hash)
    assert stored is not None and stored.last_used_at == NOW + timedelta(seconds=1)
