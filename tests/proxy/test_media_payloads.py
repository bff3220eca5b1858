"""The multipart reader and the upload's duration, without a server."""

from __future__ import annotations

import httpx
import pytest

from core.errors import InvalidRequest
from proxy.media_payloads import audio_seconds, wav_seconds
from proxy.multipart import MAX_PARTS, parse_form
from tests.proxy.media_fixtures import wav


def encoded(files: dict[str, tuple[str, bytes]], data: dict[str, str]) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x", files=files, data=data)
    return request.read(), request.headers["content-type"]


def test_parts_are_found_in_place_and_a_field_can_be_replaced() -> None:
    audio = b"RIFF\r\n--not-a-boundary\r\n" + bytes(range(256)) * 10
    raw, content_type = encoded({"file": ("a b\".wav", audio)}, {"model": "alias", "language": "fr"})
    form = parse_form(raw, content_type)
    file = form.part("file")
    assert file is not None and form.content(file) == audio and file.filename == "a b%22.wav"
    assert form.text("model") == "alias" and form.text("language") == "fr" and form.text("missing") is None
    model = form.part("model")
    assert model is not None
    again = parse_form(form.replaced(model, b"whisper-1"), content_type)
    assert again.text("model") == "whisper-1" and again.content(again.part("file") or file) == audio


def test_a_preamble_and_a_quoted_boundary_are_read() -> None:
    raw = b'preamble\r\n--a:b\r\nContent-Disposition: form-data; name="model"\r\n\r\nm\r\n--a:b--\r\n'
    assert parse_form(raw, 'multipart/form-data; boundary="a:b"').text("model") == "m"


@pytest.mark.parametrize("raw", [
    b"",
    b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm",  # never closed
    b"--b\r\nContent-Disposition: form-data\r\n\r\nm\r\n--b--",  # no name
    b"--b\r\nContent-Disposition: form-data; name=\"m\"" + b"x" * 9000 + b"\r\n\r\nm\r\n--b--",  # header too long
    b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n" * (MAX_PARTS + 1) + b"--b--",  # too many
])
def test_malformed_forms_are_refused_naming_the_file(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_form(raw, "multipart/form-data; boundary=b")
    assert caught.value.param == "file" and caught.value.status_code == 400


def test_a_file_where_a_text_field_belongs_is_refused() -> None:
    raw, content_type = encoded({"model": ("m.txt", b"m")}, {})
    with pytest.raises(InvalidRequest) as caught:
        parse_form(raw, content_type).text("model")
    assert caught.value.param == "model"


def test_wav_duration_comes_from_its_header_and_other_audio_from_its_size() -> None:
    assert wav_seconds(wav(2.5)) == pytest.approx(2.5)
    assert wav_seconds(wav(1, rate=16000)) == pytest.approx(1)
    assert wav_seconds(b"RIFF\x00\x00\x00\x00WAVE") is None
    assert wav_seconds(b"ID3") is None
    assert audio_seconds(b"\x00" * 32_000) == 2
