"""HTTP byte ranges (RFC 9110 §14): one parser for every endpoint that serves files."""

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
