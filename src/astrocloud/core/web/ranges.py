"""HTTP byte ranges (RFC 9110 §14): one parser for every endpoint that serves files, strict
(unsatisfiable unless well-formed) or lenient (the whole body unless well-formed)."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]{1,19}")


class RangeNotSatisfiable(Exception):
    """The Range header cannot be served for a body of `size` bytes (answer 416)."""

    def __init__(self, size: int):
        super().__init__(f"bytes */{size}")
        self.size = size


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `bytes=` range; None means the whole body.

    Multiple ranges, other units and malformed values are unsatisfiable rather than errors,
    so clients fall back to the whole file."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    first, dash, last = (part.strip() for part in spec.partition("-"))
    if unit.strip().lower() != "bytes" or not dash or "," in spec or not (first or last) or \
            (first and not _DIGITS.fullmatch(first)) or (last and not _DIGITS.fullmatch(last)):
        raise RangeNotSatisfiable(size)
    if first:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    else:  # the last N bytes
        start, end = max(0, size - int(last)), size
    if start >= size or start >= end:
        raise RangeNotSatisfiable(size)
    return start, end


_SINGLE = re.compile(r"\s*bytes\s*=\s*([0-9]{1,19})?\s*-\s*([0-9]{1,19})?\s*", re.I)


def parse_byte_range_leniently(header: str | None, size: int) -> tuple[int, int] | None:
    """Like `parse_byte_range`, but only a well-formed single range can be unsatisfiable (it
    starts past the end, or asks for the last 0 bytes): anything malformed, another unit or a
    list of ranges means the whole body, which RFC 9110 §14.2 lets a server answer."""
    match = _SINGLE.fullmatch(header or "")
    if match is None or match.groups() == (None, None):
        return None
    first, last = match.groups()
    if first is not None and last is not None and int(last) < int(first):
        return None  # invalid, so ignored
    return parse_byte_range(header, size)
