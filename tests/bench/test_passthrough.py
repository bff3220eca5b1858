from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from bench.passthrough import build_app
from localdev.mock_upstream import RunningMockUpstream, start_in_thread

CHAT = "/v1/chat/completions"
BODY = {"model": "bench-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def mock() -> Iterator[RunningMockUpstream]:
    with start_in_thread() as running:
        yield running


@pytest.fixture
def client(mock: RunningMockUpstream) -> Iterator[TestClient]:
    with TestClient(build_app(mock.base_url)) as test_client:  # runs the lifespan: the pooled session
        yield test_client


def test_forwards_the_body_and_returns_the_upstreams_answer(client: TestClient, mock: RunningMockUpstream) -> None:
    mock.received.clear()
    response = client.post(CHAT, json=BODY, headers={"authorization": "Bearer not-checked"})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]
    assert mock.received[-1].body == BODY
    assert "authorization" not in mock.received[-1].headers


def test_streams_the_chunks_through(client: TestClient) -> None:
    response = client.post(CHAT, json={**BODY, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.text.splitlines() if line.startswith("data:")]
    assert len(lines) > 2
    assert lines[-1] == "data: [DONE]"


def test_passes_the_upstreams_error_status_through(client: TestClient, mock: RunningMockUpstream) -> None:
    mock.config.fail_status = 429
    try:
        response = client.post(CHAT, json=BODY)
    finally:
        mock.config.fail_status = None
    assert response.status_code == 429
    assert "error" in response.json()
