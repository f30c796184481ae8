"""The one byte-range parser behind every file endpoint."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from astrocloud.core.web.ranges import RangeNotSatisfiable, parse_byte_range


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("", None), ("bytes=0-9", (0, 10)), ("bytes=5-", (5, 100)),
    ("bytes=-10", (90, 100)), ("bytes=90-500", (90, 100)), ("BYTES = 1-1", (1, 2)),
])
def test_satisfiable_ranges(header, expected):
    assert parse_byte_range(header, 100) == expected


@pytest.mark.parametrize("header", [
    "bytes=100-", "bytes=5-1", "bytes=0-1,3-4", "items=0-1", "bytes=-", "bytes=x-1",
    "bytes=1-x", "bytes=³-4", "bytes=1", "bytes=" + "9" * 40 + "-",
])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeNotSatisfiable):
        parse_byte_range(header, 100)


@given(st.text(max_size=40), st.integers(0, 10**6))
def test_any_header_is_a_range_none_or_unsatisfiable(header, size):
    try:
        span = parse_byte_range(header, size)
    except RangeNotSatisfiable:
        return
    assert span is None or 0 <= span[0] < span[1] <= size
