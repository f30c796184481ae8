"""Languages: English and Simplified Chinese through gettext catalogues compiled by Babel.

The language of a request comes from `?lang=`, then the language cookie, then the user's saved
preference, then `Accept-Language`, then the configured default.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGUAGES: dict[str, str] = {"en": "English", "zh-CN": "简体中文"}
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "astrocloud_lang"

_ALIASES = {"zh": "zh-CN", "zh-cn": "zh-CN", "zh-hans": "zh-CN", "zh-hans-cn": "zh-CN",
            "zh_cn": "zh-CN", "en": "en", "en-us": "en", "en-gb": "en"}


def normalise(tag: str | None) -> str | None:
    """Map a language tag to one we support, or None."""
    if not tag:
        return None
    tag = tag.strip().lower().replace("_", "-")
    if tag in _ALIASES:
        return _ALIASES[tag]
    base = tag.split("-", 1)[0]
    return _ALIASES.get(base)


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an Accept-Language header (q-values honoured)."""
    if not header:
        return None
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:32]):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = normalise(tag)
        if lang and q > 0:
            choices.append((-q, index, lang))
    return sorted(choices)[0][2] if choices else None


@lru_cache(maxsize=8)
def translations(language: str) -> NullTranslations:
    if language == "en":
        return NullTranslations()
    babel_name = language.replace("-", "_")
    return Translations.load(str(LOCALE_DIR), [babel_name], DOMAIN)


def gettext(language: str, message: str, **params) -> str:
    text = translations(language).gettext(message)
    return text % params if params else text


def ngettext(language: str, singular: str, plural: str, n: int, **params) -> str:
    text = translations(language).ngettext(singular, plural, n)
    params.setdefault("num", n)
    return text % params


def babel_locale(language: str) -> Locale:
    return Locale.parse(language.replace("-", "_"))


def _(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return message
