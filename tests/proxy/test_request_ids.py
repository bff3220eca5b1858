"""Request IDs: unique, fixed shape, and not a readable counter."""

from __future__ import annotations

import re

from proxy.request_ids import new_request_id


def test_request_ids_are_unique_and_opaque() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in ids)
    # Consecutive IDs share no obvious structure (a counter would share most leading digits).
    assert len({i[4:12] for i in ids[:1000]}) == 1000
