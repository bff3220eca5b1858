"""multipart/form-data (RFC 7578), read only as far as the proxy needs: where each part is, and its name.

The caller's bytes go upstream unchanged (or with one text part spliced), so a part is kept as offsets into
the body rather than copied; the audio is never decoded, copied or kept beyond the call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InvalidRequest

# Bounds on what a caller can make the parser do; an OpenAI SDK upload has well under ten parts.
MAX_PARTS = 64
MAX_HEADER_BYTES = 8 * 1024
MAX_TEXT_FIELD_BYTES = 64 * 1024
_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)
_PARAM = re.compile(rb';\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    start: int  # of the content, in the whole body
    end: int


@dataclass(frozen=True)
class Form:
    raw: bytes
    content_type: str
    parts: tuple[Part, ...]

    def part(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)

    def content(self, part: Part) -> bytes:
        return self.raw[part.start:part.end]

    def text(self, name: str) -> str | None:
        """A text field's value; a file or a field too large to be a setting is refused."""
        part = self.part(name)
        if part is None:
            return None
        if part.filename is not None or part.end - part.start > MAX_TEXT_FIELD_BYTES:
            raise InvalidRequest(f"'{name}' must be a text field.", param=name, code="invalid_type")
        try:
            return self.content(part).decode()
        except UnicodeDecodeError:
            raise InvalidRequest(f"'{name}' is not valid UTF-8.", param=name, code="invalid_value") from None

    def replaced(self, part: Part, value: bytes) -> bytes:
        """The body with one part's content replaced, boundary and everything else unchanged."""
        return self.raw[:part.start] + value + self.raw[part.end:]


def _not_multipart(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="file", code="invalid_multipart")


def parse_form(raw: bytes, content_type: str | None) -> Form:
    media_type = (content_type or "").split(";")[0].strip().lower()
    found = _BOUNDARY.search(content_type or "")
    if media_type != "multipart/form-data" or found is None:
        raise _not_multipart("Content-Type must be multipart/form-data with a boundary.")
    delimiter = b"\r\n--" + (found.group(1) or found.group(2)).encode("latin-1")
    at = _first_part(raw, delimiter)
    parts: list[Part] = []
    while not raw.startswith(b"--", at):
        if len(parts) == MAX_PARTS or not raw.startswith(b"\r\n", at):
            raise _not_multipart("The multipart body is malformed.")
        part, at = _part(raw, at + 2, delimiter)
        parts.append(part)
    return Form(raw, content_type or "", tuple(parts))


def _first_part(raw: bytes, delimiter: bytes) -> int:
    """Where the first delimiter ends; it has no CRLF before it when the body has no preamble."""
    if raw.startswith(delimiter[2:]):
        return len(delimiter) - 2
    at = raw.find(delimiter)
    if at < 0:
        raise _not_multipart("The multipart body has no part.")
    return at + len(delimiter)


def _part(raw: bytes, at: int, delimiter: bytes) -> tuple[Part, int]:
    """The part whose headers start at `at`, and where its closing delimiter ends."""
    headers_end = raw.find(b"\r\n\r\n", at, at + MAX_HEADER_BYTES)
    end = raw.find(delimiter, headers_end + 4) if headers_end >= 0 else -1
    if end < 0:
        raise _not_multipart("The multipart body is malformed or truncated.")
    params = _disposition(raw[at:headers_end])
    name = params.get("name")
    if name is None:
        raise _not_multipart("A multipart part has no name.")
    part = Part(name=name, filename=params.get("filename"), start=headers_end + 4, end=end)
    return part, end + len(delimiter)


def _disposition(headers: bytes) -> dict[str, str]:
    for line in headers.split(b"\r\n"):
        field, _, value = line.partition(b":")
        if field.strip().lower() == b"content-disposition":
            return {
                m.group(1).decode("latin-1").lower(): (m.group(2) if m.group(2) is not None else m.group(3))
                .decode("utf-8", "replace")
                for m in _PARAM.finditer(value)
            }
    return {}
