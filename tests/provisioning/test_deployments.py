import random

from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning.deployments import Deployment, apply_event
from provisioning.notifications import parse_event
from tests.provisioning.events import lifecycle, notification


def replay(payloads: list[dict[str, object]]) -> Deployment | None:
    record: Deployment | None = None
    for payload in payloads:
        updated = apply_event(record, parse_event(payload))
        if updated is not None:
            record = updated
    return record


def test_ordered_lifecycle_ends_deleted_with_plan() -> None:
    record = replay(lifecycle())
    assert record is not None
    assert record.state == "Deleted"
    assert record.revokes_keys and record.refuses_keys
    assert record.plan_id == "standard"


def test_replay_is_a_no_op() -> None:
    event = parse_event(notification())
    record = apply_event(None, event)
    assert record is not None
    assert apply_event(record, event) is None


def test_older_event_never_overwrites_newer_state() -> None:
    record = replay([notification("PUT", "Succeeded", event_time="2026-11-22T10:05:00Z")])
    stale = parse_event(notification("PUT", "Accepted", event_time="2026-11-22T10:00:00Z"))
    updated = apply_event(record, stale)
    assert updated is not None and record is not None
    assert (updated.state, updated.state_key, updated.plan) == (record.state, record.state_key, record.plan)
    assert updated.first_event_time < record.first_event_time


def test_nothing_moves_a_deployment_back_from_deleted() -> None:
    record = replay([notification("DELETE", "Deleted", event_time="2026-11-22T10:00:00Z")])
    later = parse_event(notification("PUT", "Succeeded", event_time="2026-11-23T10:00:00Z"))
    assert record is not None
    assert apply_event(record, later) is None


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=0, max_value=3))
def test_shuffled_and_replayed_history_ends_like_the_ordered_one(rng: random.Random, replays: int) -> None:
    history = lifecycle()
    delivered = history + [rng.choice(history) for _ in range(replays)]
    rng.shuffle(delivered)
    assert replay(delivered) == replay(history)


@settings(max_examples=100, deadline=None)
@given(st.permutations(range(3)))
def test_any_order_of_a_plan_change_keeps_the_latest_plan(order: list[int]) -> None:
    plans = [
        notification("PUT", "Succeeded", event_time="2026-11-22T10:00:00Z"),
        notification("PATCH", "Succeeded", event_time="2026-11-22T11:00:00Z", plan={"name": "pro"}),
        notification("PATCH", "Succeeded", event_time="2026-11-22T09:00:00Z", plan=None),
    ]
    record = replay([plans[i] for i in order])
    assert record is not None and record.plan_id == "pro"
