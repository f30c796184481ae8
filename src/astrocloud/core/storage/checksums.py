"""Checksums of stored bytes, written "<algorithm>:<hex>" (`xxh3-128:…`, `blake3:…`,
`sha256:…`).

Every stored file records the checksum of its bytes in the algorithm configured when it was
written (`ASTROCLOUD_STORAGE_CHECKSUM`); reads, replication, the sweep and the site agents
verify a file in the algorithm its own record names, so files written under another setting
keep verifying. The checksum guards replicas against bit rot, truncation and bad transfers
between our own sites — not against an adversary (agents are reached with signed URLs) — so
the default is XXH3-128: a 128-bit hash with excellent error detection that runs at memory
speed, where SHA-256 would cap every transfer at about 1.4 GB/s on a CPU with SHA-NI. BLAKE3
(cryptographic, SIMD) and SHA-256 remain available. See docs/performance.md, "Storage".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Protocol

import blake3
import xxhash

DEFAULT = "xxh3-128"


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    "xxh3-128": xxhash.xxh3_128,
    "blake3": blake3.blake3,
    "sha256": hashlib.sha256,
}


class UnknownAlgorithm(ValueError):
    """A checksum names an algorithm this platform does not know."""


def new(algorithm: str) -> Hasher:
    """A fresh hasher of `algorithm`."""
    try:
        return ALGORITHMS[algorithm]()
    except KeyError:
        raise UnknownAlgorithm(f"unknown checksum algorithm {algorithm!r}") from None


def split(checksum: str) -> tuple[str, str]:
    """("algorithm", "hex") of a recorded checksum; a bare hex string is taken as SHA-256 (the
    form site agents of earlier versions answer with)."""
    algorithm, sep, hexdigest = checksum.partition(":")
    if not sep:
        return "sha256", checksum
    if algorithm not in ALGORITHMS:
        raise UnknownAlgorithm(f"unknown checksum algorithm {algorithm!r}")
    return algorithm, hexdigest


def join(algorithm: str, hexdigest: str) -> str:
    return f"{algorithm}:{hexdigest}"


def of_chunks(algorithm: str, chunks: Iterable[bytes]) -> str:
    """The "<algorithm>:<hex>" checksum of streamed bytes."""
    digest = new(algorithm)
    for chunk in chunks:
        digest.update(chunk)
    return join(algorithm, digest.hexdigest())
