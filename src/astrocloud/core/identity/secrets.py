"""Password hashing (argon2) and random tokens that are stored only as hashes."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TOKEN_PREFIX = "ac_"

_hashers: dict[tuple[int, int], PasswordHasher] = {}


def hasher(time_cost: int = 3, memory_cost_kib: int = 65536) -> PasswordHasher:
    key = (time_cost, memory_cost_kib)
    if key not in _hashers:
        _hashers[key] = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib)
    return _hashers[key]


def hash_password(password: str, ph: PasswordHasher) -> str:
    return ph.hash(password)


# A fixed hash to verify against when the user does not exist, so that a sign-in attempt
# takes as long for an unknown name as for a wrong password.
_DUMMY: dict[int, str] = {}


def verify_password(stored: str | None, password: str, ph: PasswordHasher) -> bool:
    if not stored:
        dummy = _DUMMY.setdefault(id(ph), ph.hash("no-such-user-password"))
        with contextlib.suppress(VerificationError, InvalidHashError):
            ph.verify(dummy, password)
        return False
    try:
        return ph.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token(nbytes: int = 32) -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    """Tokens are long random strings, so a plain SHA-256 is a sound at-rest hash."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token_for(session_token: str, secret_key: str) -> str:
    return hmac.new(secret_key.encode(), b"csrf:" + session_token.encode(), "sha256").hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
