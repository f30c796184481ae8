"""Reading a FITS file into archive metadata, fast and without touching its data.

`read_fits` walks the headers of a file block by block (plain, gzip-compressed or tile-compressed
`.fz`), never reading the data array, and turns them into a `FitsSummary`: the kind of product,
the science HDU, the mapped fields a telescope writes (`DEFAULT_MAPPING`, overridable per
telescope), the observation time, the footprint on the sky and the spectral coverage, in the
units ObsCore wants. Ingest calls it for every file, so it parses the 80-character cards itself
and hands only the WCS to wcslib: about a millisecond for a small file.

A file the archive cannot take raises `FitsRejected` with a code and an English reason; a file
that is sound but imperfect (no WCS, an unknown filter) comes back with `warnings`.
Nothing here touches the database, storage or HTTP.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import os
import re
import warnings as pywarnings
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import numpy as np

from astrocloud.core.i18n import _

log = logging.getLogger(__name__)

BLOCK = 2880
CARD = 80
CARDS_PER_BLOCK = BLOCK // CARD
# A header longer than this is not a header but garbage without an END card.
MAX_HEADER_BLOCKS = 2000
MAX_HDUS = 1000
MJD_EPOCH = datetime(1858, 11, 17, tzinfo=UTC)
SPEED_OF_LIGHT = 299_792_458.0
GZIP_MAGIC = b"\x1f\x8b"
FITS_MAGIC = b"SIMPLE  ="
BITPIX_BYTES = {8: 1, 16: 2, 32: 4, 64: 8, -32: 4, -64: 8}

DEFAULT_MAPPING: dict[str, tuple[str, ...]] = {
    "date_obs": ("DATE-OBS", "DATE", "MJD-OBS"),
    "time_obs": ("TIME-OBS", "UT", "UTSTART", "UT-START"),
    "date_end": ("DATE-END", "MJD-END"),
    "exptime": ("EXPTIME", "EXPOSURE", "ITIME"),
    "target_name": ("OBJECT", "TARGET"),
    "instrument_name": ("INSTRUME",),
    "facility_name": ("TELESCOP",),
    "programme": ("PROPID", "PROGRAM", "PROG_ID"),
    "filter": ("FILTER", "FILTNAME", "FILTER1"),
    "observer": ("OBSERVER",),
    "obs_id": ("OBSID", "OBS_ID"),
    "dataproduct_type": ("DPTYPE",),
    "calib_level": ("CALIBLEV",),
    "ra": ("RA", "OBJCTRA"),
    "dec": ("DEC", "OBJCTDEC"),
    "seeing": ("SEEING",),
    "em_res_power": ("SPEC_RES", "RESPOWER"),
}

FLOAT_FIELDS = frozenset({"exptime", "seeing", "em_res_power"})
INT_FIELDS = frozenset({"calib_level"})
ANGLE_FIELDS = frozenset({"ra", "dec"})
DATE_FIELDS = frozenset({"date_obs", "date_end"})
KINDS = ("image", "spectrum", "cube", "table")
OBSCORE_TYPES = frozenset({"image", "cube", "spectrum", "sed", "timeseries", "visibility",
                           "event", "measurements"})
# Keywords that describe the HDU's layout rather than the observation.
COMMENTARY = frozenset({"COMMENT", "HISTORY", "", "CONTINUE", "END"})

# Common broad bands: centre and FWHM in nm (Bessell 2005 for UBVRI, Fukugita et al. 1996 for
# SDSS ugriz, 2MASS for JHKs). em_min/em_max are centre -/+ FWHM/2.
BANDS: dict[str, tuple[float, float]] = {
    "U": (366.0, 65.0), "B": (438.0, 97.0), "V": (545.0, 85.0), "R": (641.0, 160.0),
    "I": (798.0, 149.0),
    "u": (356.0, 60.0), "g": (483.0, 138.0), "r": (626.0, 138.0), "i": (767.0, 153.0),
    "z": (910.0, 137.0),
    "J": (1235.0, 162.0), "H": (1662.0, 251.0), "Ks": (2159.0, 262.0),
}
CLEAR_FILTERS = frozenset({"clear", "none", "open", "empty", "no", "nofilter", "free", "c",
                           "clr", "blank", "-", "n/a"})
_SYSTEM_UPPER = frozenset({"johnson", "bessell", "bes", "cousins", "jc", "kron", "harris"})
_SYSTEM_LOWER = frozenset({"sdss", "sloan", "prime", "ps1", "panstarrs", "des", "lsst"})
_FILTER_NOISE = frozenset({"filter", "band", "std", "standard", "broad", "2mass", "mko",
                           "bb", "ir"})

WAVELENGTH_UNITS = {"angstrom": 1e-10, "angstroms": 1e-10, "a": 1e-10, "aa": 1e-10,
                    "0.1nm": 1e-10, "nm": 1e-9, "nanometer": 1e-9, "nanometers": 1e-9,
                    "um": 1e-6, "micron": 1e-6, "microns": 1e-6, "mum": 1e-6, "m": 1.0,
                    "meter": 1.0, "cm": 1e-2, "mm": 1e-3, "pm": 1e-12}
FREQUENCY_UNITS = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9, "thz": 1e12}
LINEAR_SPECTRAL_CTYPES = frozenset({"", "WAVE", "AWAV", "LINEAR", "LAMBDA", "WAVELENGTH",
                                    "WAVELEN", "WAVE-WAV", "AWAV-WAV", "WAV", "PIXEL"})
WAVELENGTH_COLUMNS = ("wave", "wavelength", "lambda", "loglam", "wavelen", "wl", "lam", "wav",
                      "awav")
FLUX_COLUMNS = ("flux", "flux_density", "fluxdens", "flam", "f_lambda", "spec", "spectrum",
                "counts", "intensity")
ERROR_COLUMNS = ("err", "error", "sigma", "flux_err", "fluxerr", "err_flux", "error_flux",
                 "ivar", "invvar", "inverse_variance", "noise", "stat_error", "variance", "var")
CELESTIAL_PREFIXES = ("RA--", "DEC-", "GLON", "GLAT", "ELON", "ELAT", "SLON", "SLAT", "HPLN",
                      "HPLT")


class FitsRejected(Exception):
    """A file the archive cannot take as it is; quarantined with this reason."""

    def __init__(self, code: str, reason: str, /, **params: Any):
        self.code = code
        self.reason = reason
        self.params = params
        super().__init__(self.message())

    def message(self) -> str:
        """The English reason with its parameters filled in."""
        try:
            return self.reason % self.params if self.params else self.reason
        except (KeyError, TypeError, ValueError):
            return self.reason


@dataclass
class FitsSummary:
    """The archive's view of one FITS file: what it is, when, where on the sky, which band.

    `shape` follows numpy order (slowest axis first), like astropy's `hdu.shape`. Times are
    MJD (UTC), angles degrees (ICRS), wavelengths metres, as ObsCore has them.
    """

    kind: str
    hdu: int
    shape: tuple[int, ...]
    header: dict[str, object]
    fields: dict[str, object]
    date_obs: datetime
    t_min: float
    t_max: float
    t_exptime: float | None = None
    s_ra: float | None = None
    s_dec: float | None = None
    s_fov: float | None = None
    s_region: str | None = None
    corners: list[tuple[float, float]] | None = None
    s_resolution: float | None = None
    em_min: float | None = None
    em_max: float | None = None
    em_res_power: float | None = None
    o_ucd: str = ""
    dataproduct_type: str = "image"
    calib_level: int = 1
    warnings: list[str] = field(default_factory=list)
    # Not ObsCore columns, but what quality control needs to know about the WCS.
    pixscale_arcsec: float | None = None
    wcs_status: str = "missing"      # "ok", "missing" or "invalid"
    compressed: str | None = None    # None, "gzip" or "tile"
    n_hdus: int = 1


# --------------------------------------------------------------------------- header mapping

def merge_mapping(base: Mapping[str, Iterable[str]],
                  overrides: Mapping[str, Iterable[str] | str] | None,
                  ) -> dict[str, tuple[str, ...]]:
    """`base` with the fields of `overrides` replaced (a telescope's own keywords).

    A value may be one keyword or a sequence tried in order; an empty sequence switches the
    field off. Keywords are upper-cased. Anything else is a ValueError.
    """
    merged = {name: _keywords(name, kws) for name, kws in base.items()}
    for name, kws in (overrides or {}).items():
        if not isinstance(name, str) or not name:
            raise ValueError(_("A mapping field name must be a non-empty string, not %(name)r.")
                             % {"name": name})
        merged[name] = _keywords(name, kws)
    return merged


def _keywords(name: str, value: Iterable[str] | str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip() or len(item.strip()) > 70:
            raise ValueError(_("The keywords of mapping field %(name)s must be strings of "
                               "1 to 70 characters.") % {"name": name})
        out.append(item.strip().upper())
    return tuple(out)


_DEFAULT = merge_mapping(DEFAULT_MAPPING, None)


# --------------------------------------------------------------------------- card parsing

_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?\Z")
_KEYWORD = re.compile(r"[A-Z0-9_-]*\Z")
_UNPRINTABLE = re.compile(rb"[^\x20-\x7e]")


class _Card:
    """One parsed card: keyword, value (None when undefined) and whether the value was valid."""

    __slots__ = ("keyword", "value", "has_value", "valid", "image")

    def __init__(self, keyword: str, value: object, has_value: bool, valid: bool, image: str):
        self.keyword = keyword
        self.value = value
        self.has_value = has_value
        self.valid = valid
        self.image = image


def _parse_value(text: str) -> tuple[object, bool, bool]:
    """(value, is_string_continued, valid) of the value field of a card."""
    s = text.lstrip()
    if s.startswith("'"):
        # Strings: '' is an escaped quote; trailing blanks are insignificant.
        out = []
        i = 1
        n = len(s)
        while i < n:
            c = s[i]
            if c == "'":
                if i + 1 < n and s[i + 1] == "'":
                    out.append("'")
                    i += 2
                    continue
                value = "".join(out).rstrip()
                return value, value.endswith("&"), True
            out.append(c)
            i += 1
        return "".join(out).rstrip(), False, False
    token = s.split("/", 1)[0].strip()
    if not token:
        return None, False, True
    if token == "T":
        return True, False, True
    if token == "F":
        return False, False, True
    if _INT.match(token):
        return int(token), False, True
    if _FLOAT.match(token):
        return float(token.replace("D", "E").replace("d", "e")), False, True
    if token.startswith("(") and token.endswith(")"):
        return token, False, True          # a complex number, kept as text
    return token, False, False


def _parse_cards(raw: str) -> list[_Card]:
    """The cards of a header (up to and without END), CONTINUE strings joined."""
    cards: list[_Card] = []
    for start in range(0, len(raw), CARD):
        image = raw[start:start + CARD]
        keyword = image[:8].rstrip()
        if keyword == "END":
            break
        if keyword == "HIERARCH" and "=" in image:
            name, _sep, rest = image[9:].partition("=")
            value, _cont, valid = _parse_value(rest)
            cards.append(_Card(" ".join(name.split()).upper(), value, True, valid, image))
        elif image[8:10] == "= ":
            value, cont, valid = _parse_value(image[10:])
            cards.append(_Card(keyword, value, True, valid, image))
        elif keyword == "CONTINUE" and cards and isinstance(cards[-1].value, str) \
                and cards[-1].value.endswith("&"):
            value, _cont, valid = _parse_value(image[8:])
            if isinstance(value, str):
                cards[-1].value = cards[-1].value[:-1] + value
        else:
            cards.append(_Card(keyword, None, False, True, image))
    return cards


# --------------------------------------------------------------------------- HDU walking

@dataclass
class _Hdu:
    """One header-data unit found while walking a file: its cards and where its data lie."""

    index: int
    cards: list[_Card]
    raw: str
    values: dict[str, object]
    data_start: int
    data_bytes: int

    @property
    def xtension(self) -> str:
        if self.index == 0:
            return "PRIMARY"
        return str(self.values.get("XTENSION", "")).strip().upper()

    @property
    def is_compressed_image(self) -> bool:
        return self.xtension == "BINTABLE" and self.values.get("ZIMAGE") is True

    @property
    def naxes(self) -> list[int]:
        prefix = "ZNAXIS" if self.is_compressed_image else "NAXIS"
        n = self.values.get(prefix, 0)
        return [int(self.values.get(f"{prefix}{i}", 0)) for i in range(1, int(n) + 1)]


class _Source:
    """A byte stream over a plain or gzip-compressed file that can skip forward and knows,
    for plain files, how long it is."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._raw = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        head = self._raw.read(len(FITS_MAGIC))
        self._raw.seek(0)
        self.gzip = head.startswith(GZIP_MAGIC)
        self.size: int | None = None if self.gzip else os.fstat(self._raw.fileno()).st_size
        self.stream: IO[bytes] = gzip.GzipFile(fileobj=self._raw, mode="rb") if self.gzip \
            else self._raw
        self.head = head
        self.pos = 0

    def read(self, n: int) -> bytes:
        data = self.stream.read(n)
        self.pos += len(data)
        return data

    def skip(self, n: int) -> bool:
        """Move `n` bytes on; False when the file ends first."""
        if n <= 0:
            return True
        if not self.gzip:
            if self.pos + n > (self.size or 0):
                return False
            self._raw.seek(self.pos + n)
            self.pos += n
            return True
        # gzip cannot seek without decompressing; do it in bounded chunks.
        left = n
        while left:
            chunk = self.stream.read(min(left, 1 << 20))
            if not chunk:
                return False
            left -= len(chunk)
            self.pos += len(chunk)
        return True

    def close(self) -> None:
        if self.stream is not self._raw:
            self.stream.close()
        self._raw.close()

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_header(src: _Source, first: bool) -> str | None:
    """The raw text of the next header (whole cards, END excluded); None at the end of the
    HDUs (end of file, or trailing bytes that are not an extension)."""
    chunks: list[str] = []
    for n_block in range(MAX_HEADER_BLOCKS):
        block = src.read(BLOCK)
        if n_block == 0:
            if first and not block.startswith(FITS_MAGIC):
                if not block:
                    raise FitsRejected("not-fits", _("The file is empty."))
                raise FitsRejected("not-fits",
                                   _("The file is not FITS: it does not start with SIMPLE."))
            if not first and not block.startswith(b"XTENSION"):
                return None
        if len(block) < BLOCK:
            raise FitsRejected("truncated", _("The file ends inside a header (no END card)."))
        if _UNPRINTABLE.search(block):
            raise FitsRejected("corrupt", _("The header contains bytes that are not printable "
                                            "ASCII text, so it is damaged."))
        text = block.decode("ascii")
        chunks.append(text)
        for start in range(0, BLOCK, CARD):
            if text.startswith("END", start) and not text[start + 3:start + CARD].strip():
                return "".join(chunks)[: n_block * BLOCK + start]
    raise FitsRejected("corrupt", _("The header has no END card within %(blocks)d blocks."),
                       blocks=MAX_HEADER_BLOCKS)


def _int_value(values: Mapping[str, object], key: str, index: int) -> int:
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FitsRejected("corrupt", _("HDU %(hdu)d has no valid %(keyword)s keyword, so the "
                                        "header is damaged."), hdu=index, keyword=key)
    return value


def _data_size(values: Mapping[str, object], index: int) -> int:
    """Bytes of data an HDU declares (without padding)."""
    bitpix = values.get("BITPIX")
    if bitpix not in BITPIX_BYTES:
        raise FitsRejected("corrupt", _("HDU %(hdu)d has an invalid BITPIX (%(value)s), so the "
                                        "header is damaged."), hdu=index, value=bitpix)
    naxis = _int_value(values, "NAXIS", index)
    if naxis > 999:
        raise FitsRejected("corrupt", _("HDU %(hdu)d declares %(n)d axes, so the header is "
                                        "damaged."), hdu=index, n=naxis)
    if naxis == 0:
        return 0
    axes = [_int_value(values, f"NAXIS{i}", index) for i in range(1, naxis + 1)]
    if axes[0] == 0 and values.get("GROUPS") is True:
        axes = axes[1:]           # random groups: NAXIS1 = 0 is a placeholder
    count = math.prod(axes)
    pcount = values.get("PCOUNT", 0) if index else 0
    gcount = values.get("GCOUNT", 1) if index else 1
    if not isinstance(pcount, int) or not isinstance(gcount, int):
        raise FitsRejected("corrupt", _("HDU %(hdu)d has an invalid PCOUNT or GCOUNT, so the "
                                        "header is damaged."), hdu=index)
    return BITPIX_BYTES[bitpix] * gcount * (pcount + count)


def _walk(src: _Source, *, max_hdus: int = MAX_HDUS,
          warnings: list[str] | None = None) -> list[_Hdu]:
    """Every HDU of the file, checking each declares no more data than the file holds."""
    if not src.head:
        raise FitsRejected("not-fits", _("The file is empty."))
    hdus: list[_Hdu] = []
    try:
        while len(hdus) < max_hdus:
            index = len(hdus)
            raw = _read_header(src, first=index == 0)
            if raw is None:
                break
            cards = _parse_cards(raw)
            values: dict[str, object] = {}
            odd = []
            for card in cards:
                if card.has_value and card.keyword not in values:
                    values[card.keyword] = card.value
                if not _KEYWORD.match(card.keyword) and " " not in card.keyword:
                    odd.append(card.keyword)
            if odd and warnings is not None:
                warnings.append(_("HDU %(hdu)d has keywords that break the FITS rules: "
                                  "%(keywords)s.") % {"hdu": index,
                                                      "keywords": ", ".join(odd[:5])})
            if index == 0 and values.get("SIMPLE") is not True and warnings is not None:
                warnings.append(_("The primary header says SIMPLE = F: the file does not "
                                  "claim to conform to the FITS standard."))
            size = _data_size(values, index)
            start = src.pos
            padded = -(-size // BLOCK) * BLOCK
            hdus.append(_Hdu(index, cards, raw, values, start, size))
            if not src.skip(size):
                raise FitsRejected("truncated", _("HDU %(hdu)d declares %(declared)d bytes of "
                                                  "data but the file ends before them."),
                                   hdu=index, declared=size)
            if not src.skip(padded - size):
                if warnings is not None:
                    warnings.append(_("The last data block is not padded to 2880 bytes."))
                break
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if isinstance(exc, EOFError):
            raise FitsRejected("truncated", _("The compressed file ends early: %(error)s"),
                               error=str(exc)) from None
        raise FitsRejected("corrupt", _("The gzip stream is damaged: %(error)s"),
                           error=str(exc)) from None
    return hdus


# --------------------------------------------------------------------------- kinds

def _has_data(hdu: _Hdu) -> bool:
    if hdu.is_compressed_image:
        axes = hdu.naxes
        return bool(axes) and all(a > 0 for a in axes)
    if hdu.xtension in ("BINTABLE", "TABLE"):
        return hdu.data_bytes > 0 and int(hdu.values.get("NAXIS2", 0) or 0) > 0
    if hdu.xtension in ("PRIMARY", "IMAGE"):
        return hdu.data_bytes > 0
    return False


def table_columns(values: Mapping[str, object]) -> list[tuple[str, str]]:
    """(name, unit) of each column of a table header."""
    n = values.get("TFIELDS", 0)
    n = n if isinstance(n, int) else 0
    return [(str(values.get(f"TTYPE{i}", "")).strip(), str(values.get(f"TUNIT{i}", "")).strip())
            for i in range(1, n + 1)]


def find_column(columns: list[tuple[str, str]], names: Iterable[str]) -> int | None:
    """Index of the first column whose name (case-insensitive) is one of `names`."""
    lowered = [name.lower() for name, _unit in columns]
    for candidate in names:
        if candidate in lowered:
            return lowered.index(candidate)
    return None


def spectral_table_columns(values: Mapping[str, object]) -> tuple[int, int] | None:
    """Indexes of the wavelength and flux columns when a table holds a spectrum."""
    columns = table_columns(values)
    wave = find_column(columns, WAVELENGTH_COLUMNS)
    if wave is None:
        for i, (_name, unit) in enumerate(columns):
            if unit.lower() in WAVELENGTH_UNITS and unit.lower() not in ("m", "a"):
                wave = i
                break
    flux = find_column(columns, FLUX_COLUMNS)
    if wave is None or flux is None:
        return None
    return wave, flux


def _is_spectral_axis(values: Mapping[str, object]) -> bool:
    ctype = str(values.get("CTYPE1", "")).strip().upper()
    if ctype.startswith(("WAVE", "AWAV", "FREQ", "VELO", "VRAD", "VOPT", "ZOPT", "ENER",
                         "WAVN", "LAMBDA", "LOGLAM")):
        return True
    if "DC-FLAG" in values:
        return True
    unit = str(values.get("CUNIT1", "")).strip().lower()
    if unit in WAVELENGTH_UNITS and unit != "m":
        return True
    return "wavelength" in str(values.get("WAT1_001", "")).lower()


def _image_kind(axes: list[int], values: Mapping[str, object]) -> str:
    """image, spectrum or cube from the axis lengths (FITS order) and the spectral WCS."""
    significant = [a for a in axes if a > 1]
    if len(axes) == 1 or len(significant) <= 1:
        return "spectrum"
    # Multispec layouts (flux, error, mask rows along axis 1) are spectra, not images.
    if _is_spectral_axis(values) and math.prod(axes[1:]) <= 10:
        return "spectrum"
    if len(significant) >= 3:
        return "cube"
    return "image"


def _science(hdus: list[_Hdu]) -> tuple[_Hdu, str]:
    """The first HDU with data and its kind."""
    for hdu in hdus:
        if not _has_data(hdu):
            continue
        if hdu.is_compressed_image:
            return hdu, _image_kind(hdu.naxes, hdu.values)
        if hdu.xtension in ("PRIMARY", "IMAGE"):
            return hdu, _image_kind(hdu.naxes, hdu.values)
        if hdu.xtension in ("BINTABLE", "TABLE"):
            return hdu, "spectrum" if spectral_table_columns(hdu.values) else "table"
    raise FitsRejected("no-data", _("The file has no image, spectrum or table data: every HDU "
                                    "is empty."))


# Table and compression keywords that must not leak into the image header of a `.fz` file.
_TILE_DROP = re.compile(r"(NAXIS\d*|BITPIX|PCOUNT|GCOUNT|TFIELDS|TTYPE\d+|TFORM\d+|TUNIT\d+|"
                        r"TDIM\d+|TNULL\d+|TSCAL\d+|TZERO\d+|THEAP|ZIMAGE|ZCMPTYPE|ZNAME\d+|"
                        r"ZVAL\d+|ZTILE\d+|ZQUANTIZ|ZDITHER0|ZEXTEND|ZBLOCKED|ZPCOUNT|ZGCOUNT|"
                        r"ZHECKSUM|ZDATASUM|ZBLANK|ZMASKCMP|XTENSION|EXTEND)\Z")
_TILE_RENAME = {"ZSIMPLE": "SIMPLE", "ZTENSION": "XTENSION", "ZBITPIX": "BITPIX",
                "ZNAXIS": "NAXIS"}


def _image_cards(hdu: _Hdu) -> list[_Card]:
    """The cards of the image a tile-compressed HDU holds (its Z keywords renamed)."""
    if not hdu.is_compressed_image:
        return hdu.cards
    out = []
    for card in hdu.cards:
        key = card.keyword
        new = _TILE_RENAME.get(key)
        if new is None and re.fullmatch(r"ZNAXIS\d+", key):
            new = key[1:]
        if new is not None:
            out.append(_Card(new, card.value, True, card.valid, f"{new:<8}" + card.image[8:]))
        elif not _TILE_DROP.match(key):
            out.append(card)
    return out


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _card_dict(cards: Iterable[_Card], warnings: list[str] | None = None) -> dict[str, object]:
    out: dict[str, object] = {}
    for card in cards:
        if not card.has_value or card.keyword in COMMENTARY:
            continue
        if not card.valid and warnings is not None:
            warnings.append(_("The value of keyword %(keyword)s is not valid FITS and is kept "
                              "as text.") % {"keyword": card.keyword})
        out.setdefault(card.keyword, _json_value(card.value))
    return out


# --------------------------------------------------------------------------- values

_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(\.\d*)?)?)?"
                   r"\s*(?:Z|UTC?)?\Z", re.IGNORECASE)
_OLD_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{2})\Z")
_TIME = re.compile(r"(\d{1,2})[: ](\d{2})(?:[: ](\d{2})(\.\d*)?)?\Z")
_NON_UTC_SCALES = {"TT": "tt", "TDT": "tt", "ET": "tt", "TAI": "tai", "IAT": "tai", "TDB": "tdb",
                   "GPS": "tai", "TCG": "tcg", "TCB": "tcb"}


def mjd_to_datetime(mjd: float) -> datetime:
    """The UTC datetime of a Modified Julian Date."""
    return MJD_EPOCH + timedelta(days=float(mjd))


def datetime_to_mjd(when: datetime) -> float:
    """The Modified Julian Date of an aware (or naive UTC) datetime."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - MJD_EPOCH).total_seconds() / 86400.0


def parse_date(value: object, time_of_day: object = None) -> tuple[datetime, bool]:
    """(UTC datetime, had a time of day) of a FITS date value; ValueError when unparseable.

    Accepts ISO 8601 (`2024-03-01T20:15:03.25`), the pre-2000 `DD/MM/YY`, an MJD or JD number,
    and a separate time of day (`TIME-OBS`/`UT`) for dates without one.
    """
    if isinstance(value, bool):
        raise ValueError("a logical is not a date")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("not finite")
        mjd = value - 2400000.5 if value > 2400000.5 else value
        if not -20000 < mjd < 150000:      # about 1804 to 2269
            raise ValueError("out of range")
        return mjd_to_datetime(mjd), True
    text = str(value).strip()
    match = _DATE.match(text)
    if match:
        y, mo, d, h, mi, s, frac = match.groups()
        year, month, day = int(y), int(mo), int(d)
    else:
        old = _OLD_DATE.match(text)
        if not old:
            raise ValueError(f"not a date: {text!r}")
        day, month, year = int(old.group(1)), int(old.group(2)), 1900 + int(old.group(3))
        h = mi = s = frac = None
    if h is None and time_of_day is not None:
        tmatch = _TIME.match(str(time_of_day).strip())
        if tmatch:
            h, mi, s, frac = tmatch.groups()
    base = datetime(year, month, day, tzinfo=UTC)
    if not 1800 <= year <= 2300:
        raise ValueError("year out of range")
    if h is None:
        return base, False
    hours, minutes = int(h), int(mi)
    seconds = float((s or "0") + (frac or ""))
    if hours > 24 or minutes > 59 or seconds >= 61:
        raise ValueError("time out of range")
    return base + timedelta(hours=hours, minutes=minutes, seconds=seconds), True


def parse_angle(value: object, *, hours: bool) -> float:
    """Degrees from a header angle: a number (degrees) or sexagesimal text (hours for RA)."""
    if isinstance(value, bool) or value is None:
        raise ValueError("no angle")
    if isinstance(value, int | float):
        degrees = float(value)
    else:
        text = str(value).strip()
        parts = re.split(r"[:\s hdms°'\"]+", text.lower().strip("hdms°'\" "))
        parts = [p for p in parts if p]
        if len(parts) == 1:
            degrees = float(parts[0])
        elif 2 <= len(parts) <= 3:
            sign = -1.0 if parts[0].startswith("-") else 1.0
            nums = [abs(float(p)) for p in parts]
            if any(n >= 60 for n in nums[1:]):
                raise ValueError("minutes or seconds >= 60")
            degrees = sign * (nums[0] + nums[1] / 60 + (nums[2] if len(nums) > 2 else 0) / 3600)
            if hours:
                degrees *= 15.0
        else:
            raise ValueError(f"not an angle: {text!r}")
    if not math.isfinite(degrees):
        raise ValueError("not finite")
    return degrees


def _lookup(header: Mapping[str, object], keywords: Iterable[str]) -> tuple[str | None, object]:
    for keyword in keywords:
        value = header.get(keyword)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return keyword, value
    return None, None


def _normalise_fields(header: Mapping[str, object], mapping: Mapping[str, tuple[str, ...]],
                      warnings: list[str]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for name, keywords in mapping.items():
        keyword, value = _lookup(header, keywords)
        if keyword is None or name in DATE_FIELDS:
            fields[name] = None         # dates are read by _observation_time
            continue
        try:
            if name in FLOAT_FIELDS:
                number = float(value)  # type: ignore[arg-type]
                if not math.isfinite(number) or isinstance(value, bool):
                    raise ValueError
                fields[name] = number
            elif name in INT_FIELDS:
                if isinstance(value, bool):
                    raise ValueError
                number = float(value)  # type: ignore[arg-type]
                if number != int(number):
                    raise ValueError
                fields[name] = int(number)
            elif name in ANGLE_FIELDS:
                angle = parse_angle(value, hours=name == "ra" and isinstance(value, str))
                if name == "ra" and not 0 <= angle < 360 or name == "dec" and abs(angle) > 90:
                    raise ValueError
                fields[name] = angle
            else:
                fields[name] = str(value).strip() if not isinstance(value, bool) else value
        except (TypeError, ValueError):
            fields[name] = None
            warnings.append(_("Keyword %(keyword)s has a value that cannot be read as "
                              "%(field)s: %(value)s.") % {"keyword": keyword, "field": name,
                                                         "value": value})
    return fields


# --------------------------------------------------------------------------- time

def _observation_time(header: Mapping[str, object], mapping: Mapping[str, tuple[str, ...]],
                      fields: dict[str, object], warnings: list[str]) -> tuple[datetime, datetime
                                                                               | None]:
    keyword, value = _lookup(header, mapping.get("date_obs", ()))
    if keyword is None:
        raise FitsRejected("no-date-obs", _("The header has no DATE-OBS, so the observation time "
                                            "is unknown."))
    _tkey, time_of_day = _lookup(header, mapping.get("time_obs", ()))
    if keyword.upper().startswith("MJD") and isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    try:
        start, had_time = parse_date(value, time_of_day)
    except (TypeError, ValueError, OverflowError):
        raise FitsRejected("bad-date-obs", _("The observation date %(keyword)s = %(value)s "
                                             "cannot be read as a date."),
                           keyword=keyword, value=str(value)) from None
    if not had_time:
        warnings.append(_("%(keyword)s has no time of day; midnight UTC is assumed.")
                        % {"keyword": keyword})
    end = None
    end_key, end_value = _lookup(header, mapping.get("date_end", ()))
    if end_key is not None:
        try:
            end, _had = parse_date(end_value)
        except (TypeError, ValueError, OverflowError):
            warnings.append(_("%(keyword)s cannot be read as a date and is ignored.")
                            % {"keyword": end_key})
    timesys = str(header.get("TIMESYS", "UTC")).strip().upper()
    if timesys in _NON_UTC_SCALES:
        start = _to_utc(start, _NON_UTC_SCALES[timesys])
        end = _to_utc(end, _NON_UTC_SCALES[timesys]) if end else None
    fields["date_obs"] = start
    fields["date_end"] = end
    return start, end


def _to_utc(when: datetime, scale: str) -> datetime:
    from astropy.time import Time

    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore")
        utc = Time(when.replace(tzinfo=None), scale=scale).utc.to_datetime()
    return utc.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- sky

_WCS_KEY = re.compile(r"(WCSAXES|CTYPE\d|CRVAL\d|CRPIX\d|CDELT\d|CUNIT\d|CROTA\d|CD\d_\d|"
                      r"PC\d_\d|PC0\d_0\d|PV\d_\d+|PS\d_\d+|LONPOLE|LATPOLE|RADESYS|RADECSYS|"
                      r"EQUINOX|EPOCH|NAXIS\d?|MJD-OBS|DATE-OBS|A_\w+|B_\w+|AP_\w+|BP_\w+)\Z")


_NUMERIC_WCS = ("CRVAL", "CRPIX", "CDELT", "CD", "PC", "CROTA", "PV", "LONPOLE", "LATPOLE",
                "EQUINOX", "EPOCH")


@dataclass
class _Sky:
    centre: tuple[float, float] | None = None
    corners: list[tuple[float, float]] | None = None
    pixscale: float | None = None
    status: str = "missing"


def _to_icrs(lon: np.ndarray, lat: np.ndarray, lngtyp: str, radesys: str,
             equinox: float) -> tuple[np.ndarray, np.ndarray]:
    """ICRS degrees from the WCS's own celestial frame (FK5 J2000 is taken as ICRS: they
    differ by less than 0.03 arcsec)."""
    fk4 = radesys.startswith("FK4")
    if lngtyp == "RA" and (radesys in ("ICRS", "GAPPT") or radesys == "FK5" and (
            not math.isfinite(equinox) or equinox == 2000.0)):
        return lon, lat
    from astropy import units as u
    from astropy.coordinates import FK4, FK5, SkyCoord

    if lngtyp == "GLON":
        coord = SkyCoord(lon * u.deg, lat * u.deg, frame="galactic")
    elif lngtyp == "ELON":
        coord = SkyCoord(lon * u.deg, lat * u.deg, frame="geocentricmeanecliptic")
    elif lngtyp == "RA" and fk4:
        eq = equinox if math.isfinite(equinox) else 1950.0
        coord = SkyCoord(lon * u.deg, lat * u.deg, frame=FK4(equinox=f"B{eq}"))
    elif lngtyp == "RA":
        eq = equinox if math.isfinite(equinox) else 2000.0
        coord = SkyCoord(lon * u.deg, lat * u.deg, frame=FK5(equinox=f"J{eq}"))
    else:
        raise ValueError(f"unsupported celestial frame {lngtyp}")
    icrs = coord.icrs
    return icrs.ra.deg, icrs.dec.deg


def _celestial(cards: list[_Card], values: Mapping[str, object], axes: list[int],
               warnings: list[str]) -> _Sky:
    """The footprint of an image from its WCS; the problem as a warning when it is unusable."""
    from astropy.wcs import WCSSUB_CELESTIAL, Wcsprm

    text = "".join(c.image.ljust(CARD) for c in cards
                   if c.has_value and _WCS_KEY.match(c.keyword))
    ctypes = [str(values.get(f"CTYPE{i}", "")).upper() for i in range(1, len(axes) + 1)]
    claims_sky = any(c.startswith(CELESTIAL_PREFIXES) for c in ctypes)
    if not claims_sky and not any(k in values for k in ("CD1_1", "CRVAL1")):
        warnings.append(_("No WCS: the footprint is unknown."))
        return _Sky(status="missing")
    try:
        for card in cards:
            # wcslib silently drops a keyword it cannot parse and uses its default instead.
            if card.keyword.startswith(_NUMERIC_WCS) and _WCS_KEY.match(card.keyword) and (
                    isinstance(card.value, bool) or not isinstance(card.value, int | float)
                    or not math.isfinite(card.value)):
                raise ValueError(f"{card.keyword} = {card.value} is not a number")
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore")
            full = Wcsprm(header=text.encode("ascii"), relax=True, keysel=-1)
            # Not fix(): its cdfix would turn a singular CD matrix into a unit one.
            full.unitfix()
            full.celfix()
            full.set()
            if full.lng < 0 or full.lat < 0:
                if claims_sky:
                    raise ValueError("the celestial axes are not recognised")
                warnings.append(_("No WCS: the footprint is unknown."))
                return _Sky(status="missing")
            wcs = full.sub([WCSSUB_CELESTIAL])
            wcs.set()
            matrix = np.diag(wcs.get_cdelt()) @ wcs.get_pc()
            det = float(np.linalg.det(matrix))
            if not math.isfinite(det) or abs(det) < 1e-20:
                raise ValueError("the CD matrix is singular")
            lng_axis, lat_axis = full.lng, full.lat
            nx, ny = axes[lng_axis], axes[lat_axis]
            # Pixel edges, not centres: the footprint covers the whole detector.
            pix = np.array([[-0.5, -0.5], [nx - 0.5, -0.5], [nx - 0.5, ny - 0.5],
                            [-0.5, ny - 0.5], [(nx - 1) / 2, (ny - 1) / 2]], dtype=float)
            result = wcs.p2s(pix, 0)
            world = result["world"]
            if np.any(result["stat"]) or not np.all(np.isfinite(world)):
                raise ValueError("pixels of the image fall outside the projection")
            lon, lat = world[:, 0], world[:, 1]
            if np.any(np.abs(lat) > 90.0):
                raise ValueError("a declination beyond +-90 degrees")
            lon, lat = _to_icrs(lon, lat, full.lngtyp.strip(), full.radesys.strip().upper(),
                                float(full.equinox))
    except Exception as exc:  # wcslib raises a dozen exception types for bad WCS
        warnings.append(_("The WCS cannot be used (%(error)s): the footprint is unknown.")
                        % {"error": _wcs_error(exc)})
        return _Sky(status="invalid")
    lon = np.mod(lon, 360.0)
    corners = [(float(lon[i]), float(lat[i])) for i in range(4)]
    if _winding(corners) < 0:
        corners = [corners[0], corners[3], corners[2], corners[1]]
    pixscale = math.sqrt(abs(det)) * 3600.0
    return _Sky(centre=(float(lon[4]), float(lat[4])), corners=corners, pixscale=pixscale,
                status="ok")


def _wcs_error(exc: Exception) -> str:
    """The human part of a wcslib error (its first lines name C source files)."""
    lines = [line.strip().rstrip(".") for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("ERROR ")]
    return (useful or lines or [type(exc).__name__])[0]


Vec = tuple[float, float, float]


def _vec(lon: float, lat: float) -> Vec:
    lon_r, lat_r = math.radians(lon), math.radians(lat)
    return (math.cos(lat_r) * math.cos(lon_r), math.cos(lat_r) * math.sin(lon_r),
            math.sin(lat_r))


# Plain-Python vector algebra: numpy's per-call overhead dominates for a handful of 3-vectors.
def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _dot(a: Vec, b: Vec) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _norm(a: Vec) -> float:
    return math.sqrt(_dot(a, a))


def _angle(a: Vec, b: Vec) -> float:
    return math.degrees(math.atan2(_norm(_cross(a, b)), _dot(a, b)))


def _winding(corners: list[tuple[float, float]]) -> float:
    """Positive when the polygon runs counter-clockwise as seen on the sky (east left of
    north), as DALI/STC-S want."""
    vecs = [_vec(lon, lat) for lon, lat in corners]
    centre = tuple(sum(v[i] for v in vecs) for i in range(3))
    total = [0.0, 0.0, 0.0]
    for i, v in enumerate(vecs):
        c = _cross(v, vecs[(i + 1) % len(vecs)])
        total = [total[k] + c[k] for k in range(3)]
    # Seen from inside the sphere the sense flips relative to the outward normal.
    return -_dot(tuple(total), centre)  # type: ignore[arg-type]


def enclosing_diameter(points: list[tuple[float, float]]) -> float:
    """Diameter in degrees of the smallest circle on the sky holding every point (exact for
    the handful of corners of a footprint: every circle through two or three of them is
    tried)."""
    vecs = [_vec(lon, lat) for lon, lat in points]
    n = len(vecs)
    best = math.inf

    def holds(centre: Vec, radius: float) -> bool:
        return all(_angle(centre, v) <= radius + 1e-9 for v in vecs)

    def unit(v: Vec) -> Vec | None:
        length = _norm(v)
        return None if length == 0 else (v[0] / length, v[1] / length, v[2] / length)

    for i in range(n):
        for j in range(i + 1, n):
            centre = unit((vecs[i][0] + vecs[j][0], vecs[i][1] + vecs[j][1],
                           vecs[i][2] + vecs[j][2]))
            if centre is not None:
                radius = _angle(centre, vecs[i])
                if radius < best and holds(centre, radius):
                    best = radius
            for k in range(j + 1, n):
                d1 = tuple(vecs[j][m] - vecs[i][m] for m in range(3))
                d2 = tuple(vecs[k][m] - vecs[i][m] for m in range(3))
                centre = unit(_cross(d1, d2))  # type: ignore[arg-type]
                if centre is None:
                    continue
                if _dot(centre, vecs[i]) < 0:
                    centre = (-centre[0], -centre[1], -centre[2])
                radius = _angle(centre, vecs[i])
                if radius < best and holds(centre, radius):
                    best = radius
    return 2 * best if math.isfinite(best) else 0.0


def s_region(corners: list[tuple[float, float]]) -> str:
    """The STC-S polygon ObsCore publishes for a footprint."""
    return "POLYGON ICRS " + " ".join(f"{ra:.6f} {dec:.6f}" for ra, dec in corners)


# --------------------------------------------------------------------------- spectral

def band_of(name: object) -> str | None:
    """The key in BANDS of a filter name, "clear" for no filter, None when unknown."""
    text = str(name or "").strip()
    if not text or text.lower().replace(" ", "") in CLEAR_FILTERS:
        return "clear"
    tokens = [t for t in re.split(r"[\s_\-/:,.()\[\]]+", text) if t]
    lowered = {t.lower() for t in tokens}
    upper_sys = bool(lowered & _SYSTEM_UPPER)
    lower_sys = bool(lowered & _SYSTEM_LOWER) or "'" in text
    for token in tokens:
        core = token.rstrip("'").rstrip("+")
        if core.lower() in _SYSTEM_UPPER | _SYSTEM_LOWER | _FILTER_NOISE or not core:
            continue
        if core.lower() in ("ks", "k", "kshort", "k_s"):
            return "Ks"
        if core in ("J", "H", "j", "h"):
            return core.upper()
        if len(core) != 1:
            continue
        if lower_sys and core.lower() in "ugriz":
            return core.lower()
        if upper_sys and core.upper() in "UBVRI":
            return core.upper()
        if core in BANDS:
            return core
        if core.upper() in "BV":      # no lower-case b or v bands to confuse them with
            return core.upper()
    return None


def filter_range(name: object) -> tuple[float, float] | None | str:
    """(em_min, em_max) in metres of a filter, "clear" for none, None when unknown."""
    band = band_of(name)
    if band == "clear" or band is None:
        return band
    centre, width = BANDS[band]
    return (centre - width / 2) * 1e-9, (centre + width / 2) * 1e-9


def _unit_scale(values: Mapping[str, object], axis: int = 1) -> tuple[float, str, bool]:
    """(metres or Hz per unit, unit name, stated) of a spectral axis."""
    unit = str(values.get(f"CUNIT{axis}", "")).strip()
    if not unit:
        wat = str(values.get(f"WAT{axis}_001", ""))
        match = re.search(r"units=(\w+)", wat)
        unit = match.group(1) if match else ""
    key = unit.lower().replace(" ", "")
    if key in WAVELENGTH_UNITS:
        return WAVELENGTH_UNITS[key], unit, True
    if key in FREQUENCY_UNITS:
        return FREQUENCY_UNITS[key], unit, True
    if unit:
        raise ValueError(f"unknown spectral unit {unit!r}")
    return 1e-10, "Angstrom", False


def spectral_axis(values: Mapping[str, object], pixels: np.ndarray) -> np.ndarray | None:
    """Wavelengths in metres at 1-based pixel positions along axis 1, None without a usable
    spectral WCS (linear, log-linear (DC-FLAG/WAVE-LOG) or frequency axes)."""
    ctype = str(values.get("CTYPE1", "")).strip().upper()
    crval = values.get("CRVAL1")
    cdelt = values.get("CD1_1", values.get("CDELT1"))
    crpix = values.get("CRPIX1", 1.0)
    if not all(isinstance(v, int | float) and not isinstance(v, bool)
               for v in (crval, cdelt, crpix)) or not cdelt:
        return None
    try:
        scale, _unit, stated = _unit_scale(values)
    except ValueError:
        return None
    pixels = np.asarray(pixels, dtype=float)
    world = float(crval) + (pixels - float(crpix)) * float(cdelt)
    frequency_unit = stated and scale >= 1.0
    if ctype.startswith("FREQ") or frequency_unit:
        hertz = world * (scale if frequency_unit else 1.0)    # FITS default: Hz
        if np.any(hertz <= 0):
            return None
        return SPEED_OF_LIGHT / hertz
    if ctype == "WAVE-LOG":
        world = float(crval) * np.exp((pixels - float(crpix)) * float(cdelt) / float(crval))
    elif values.get("DC-FLAG") == 1 or ctype in ("LOGLAM", "LOG-LINEAR"):
        world = 10.0 ** world
    elif ctype not in LINEAR_SPECTRAL_CTYPES:
        return None
    if not stated:
        # FITS says metres, IRAF-style spectra without units mean Angstrom.
        scale = 1.0 if ctype.startswith(("WAVE", "AWAV")) and float(crval) < 1e-3 else 1e-10
    metres = world * scale
    if not np.all(np.isfinite(metres)) or np.any(metres <= 0):
        return None
    return metres


def _table_spectral_range(path: str, hdu: _Hdu, columns: tuple[int, int],
                          warnings: list[str]) -> tuple[float, float] | None:
    """Wavelength range of a tabulated spectrum: from the header when it says, else from the
    wavelength column alone."""
    values = hdu.values
    if isinstance(values.get("WAVELMIN"), int | float) and \
            isinstance(values.get("WAVELMAX"), int | float):
        return float(values["WAVELMIN"]) * 1e-9, float(values["WAVELMAX"]) * 1e-9  # ESO: nm
    wave_index = columns[0]
    name, unit = table_columns(values)[wave_index]
    try:
        scale = WAVELENGTH_UNITS.get(unit.lower().replace(" ", ""), 1e-10)
        from astropy.io import fits

        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore")
            with fits.open(path, lazy_load_hdus=True) as hdul:
                column = np.asarray(hdul[hdu.index].data[name], dtype=float).ravel()
        column = column[np.isfinite(column)]
        if not column.size:
            return None
        low, high = float(column.min()), float(column.max())
        if name.lower() == "loglam" or high < 10 and unit.lower() in ("", "log(angstrom)"):
            low, high = 10 ** low, 10 ** high
        return low * scale, high * scale
    except Exception as exc:  # a broken table column is a warning, not a rejection
        warnings.append(_("The wavelength column %(column)s cannot be read (%(error)s).")
                        % {"column": name, "error": exc})
        return None


def _band_ucd(em_min: float | None, em_max: float | None) -> str:
    if em_min is None or em_max is None:
        return "em.opt"
    centre = (em_min + em_max) / 2
    for limit, word in ((1e-8, "em.X-ray"), (3.2e-7, "em.UV"), (1.0e-6, "em.opt"),
                        (1.5e-6, "em.IR.J"), (1.8e-6, "em.IR.H"), (3.0e-6, "em.IR.K"),
                        (1e-3, "em.IR")):
        if centre < limit:
            return word
    return "em.mm"


# --------------------------------------------------------------------------- entry points

def read_fits(path: str | os.PathLike, mapping: Mapping | None = None) -> FitsSummary:
    """Summarise a FITS file from its headers alone (the data array is never read).

    `mapping` is a telescope's field -> keywords mapping (see `merge_mapping`); it defaults to
    DEFAULT_MAPPING. Raises FitsRejected for a file the archive must quarantine; OSError when
    the file cannot be opened at all.
    """
    mapping = _DEFAULT if mapping is None else merge_mapping(DEFAULT_MAPPING, mapping)
    path = os.fspath(path)
    warnings: list[str] = []
    with _Source(path) as src:
        try:
            hdus = _walk(src, warnings=warnings)
            return _summarise(path, hdus, mapping, warnings,
                              compressed="gzip" if src.gzip else None)
        except FitsRejected:
            raise
        except Exception as exc:  # the promise: every failure is a reasoned rejection
            log.warning("unexpected failure reading %s", path, exc_info=True)
            raise FitsRejected("corrupt", _("The file could not be read: %(error)s."),
                               error=f"{type(exc).__name__}: {exc}") from exc


def _summarise(path: str, hdus: list[_Hdu], mapping: Mapping[str, tuple[str, ...]],
               warnings: list[str], compressed: str | None) -> FitsSummary:
    science, kind = _science(hdus)
    primary = hdus[0]
    science_cards = _image_cards(science)
    header = _card_dict(primary.cards, warnings)
    if science is not primary:
        # The science HDU's own values win over the primary's.
        header.update({k: v for k, v in _card_dict(science_cards, warnings).items()
                       if k not in ("SIMPLE", "EXTEND")})
    science_values = _card_dict(science_cards)
    if science.is_compressed_image:
        compressed = "tile"
    axes = [int(science_values.get(f"NAXIS{i}", 0) or 0)
            for i in range(1, int(science_values.get("NAXIS", 0) or 0) + 1)]
    if kind == "table" or kind == "spectrum" and science.xtension in ("BINTABLE", "TABLE") \
            and not science.is_compressed_image:
        axes = [int(science.values.get("NAXIS2", 0) or 0)]
    fields = _normalise_fields(header, mapping, warnings)
    start, end = _observation_time(header, mapping, fields, warnings)
    t_min = datetime_to_mjd(start)
    exptime = fields.get("exptime")
    if exptime is None:
        warnings.append(_("No exposure time in the header: the observation is taken as "
                          "instantaneous."))
    elif exptime < 0:
        warnings.append(_("The exposure time is negative (%(value)s s).") % {"value": exptime})
        exptime = None
    t_max = datetime_to_mjd(end) if end is not None else t_min + (exptime or 0.0) / 86400.0
    if t_max < t_min:
        warnings.append(_("The end of the observation is before its start; the exposure time "
                          "is used instead."))
        t_max = t_min + (exptime or 0.0) / 86400.0

    summary = FitsSummary(kind=kind, hdu=science.index, shape=tuple(reversed(axes)),
                          header=header, fields=fields, date_obs=start, t_min=t_min,
                          t_max=t_max, t_exptime=exptime, warnings=warnings,
                          compressed=compressed, n_hdus=len(hdus))

    # Where on the sky: the WCS for images and cubes, the pointing keywords otherwise.
    if kind in ("image", "cube"):
        wcs_cards = science_cards
        if science is not primary and primary.values.get("INHERIT") is True:
            wcs_cards = [c for c in primary.cards if c.keyword not in science_values] + \
                science_cards
        sky = _celestial(wcs_cards, science_values, axes, warnings)
        summary.wcs_status = sky.status
        if sky.corners is not None and sky.centre is not None:
            summary.corners = sky.corners
            summary.s_ra, summary.s_dec = sky.centre
            summary.s_fov = enclosing_diameter(sky.corners)
            summary.s_region = s_region(sky.corners)
            summary.pixscale_arcsec = sky.pixscale
    if summary.s_ra is None and fields.get("ra") is not None and fields.get("dec") is not None:
        summary.s_ra, summary.s_dec = float(fields["ra"]), float(fields["dec"])
        if summary.wcs_status != "ok" and kind in ("image", "cube"):
            warnings.append(_("The position comes from the pointing keywords, not a WCS."))
    seeing = fields.get("seeing")
    summary.s_resolution = float(seeing) if seeing and seeing > 0 else summary.pixscale_arcsec

    _spectral_coverage(path, summary, science, science_values, axes, warnings)

    dptype = fields.get("dataproduct_type")
    summary.dataproduct_type = {"table": "measurements"}.get(kind, kind)
    if dptype:
        if str(dptype).lower() in OBSCORE_TYPES:
            summary.dataproduct_type = str(dptype).lower()
        else:
            warnings.append(_("The data product type %(value)s is not an ObsCore type and is "
                              "ignored.") % {"value": dptype})
    level = fields.get("calib_level")
    if level is not None:
        if 0 <= int(level) <= 4:
            summary.calib_level = int(level)
        else:
            warnings.append(_("The calibration level %(value)s is not between 0 and 4 and is "
                              "ignored.") % {"value": level})
    if kind == "image":
        summary.o_ucd = f"phot.flux.density;{_band_ucd(summary.em_min, summary.em_max)}"
    elif kind in ("spectrum", "cube"):
        summary.o_ucd = "phot.flux.density;em.wl"
    else:
        summary.o_ucd = "meta.record"
    return summary


def _spectral_coverage(path: str, summary: FitsSummary, science: _Hdu,
                       values: Mapping[str, object], axes: list[int],
                       warnings: list[str]) -> None:
    """em_min, em_max and em_res_power: the filter for images, the spectral axis for
    spectra."""
    fields = summary.fields
    if summary.kind in ("image", "cube") and not (summary.kind == "cube" and
                                                   _is_spectral_axis_any(values, axes)):
        name = fields.get("filter")
        band = filter_range(name)
        if band is None:
            warnings.append(_("The filter %(filter)s is not one of the common bands, so the "
                              "spectral range is unknown.") % {"filter": name})
        elif band != "clear":
            summary.em_min, summary.em_max = band  # type: ignore[misc]
            summary.em_res_power = (summary.em_min + summary.em_max) / 2 / \
                (summary.em_max - summary.em_min)
        return
    if summary.kind == "table":
        return
    wave: tuple[float, float] | None = None
    if summary.kind == "spectrum" and science.xtension in ("BINTABLE", "TABLE"):
        columns = spectral_table_columns(science.values)
        if columns is not None:
            wave = _table_spectral_range(path, science, columns, warnings)
        n = None
    else:
        axis = _spectral_axis_index(values, axes)
        n = axes[axis - 1] if axis else axes[0]
        wl = _axis_wavelengths(values, axis or 1, np.array([0.5, n + 0.5]))
        if wl is not None:
            wave = (float(wl.min()), float(wl.max()))
    if wave is None:
        warnings.append(_("No spectral WCS: the wavelength range is unknown."))
        return
    summary.em_min, summary.em_max = wave
    power = fields.get("em_res_power")
    if power:
        summary.em_res_power = float(power)
    elif n and summary.em_max > summary.em_min:
        # Without a stated resolving power, assume Nyquist sampling: two pixels per element.
        step = (summary.em_max - summary.em_min) / n
        summary.em_res_power = (summary.em_min + summary.em_max) / 2 / (2 * step)


def _spectral_axis_index(values: Mapping[str, object], axes: list[int]) -> int | None:
    """1-based index of the spectral axis of an image HDU (axis 1 for 1-D spectra)."""
    for i in range(1, len(axes) + 1):
        ctype = str(values.get(f"CTYPE{i}", "")).strip().upper()
        if ctype.startswith(("WAVE", "AWAV", "FREQ", "LAMBDA", "LOGLAM")):
            return i
    if _is_spectral_axis(values) or len(axes) == 1:
        return 1
    return None


def _is_spectral_axis_any(values: Mapping[str, object], axes: list[int]) -> bool:
    return any(str(values.get(f"CTYPE{i}", "")).strip().upper().startswith(
        ("WAVE", "AWAV", "FREQ", "VRAD", "VOPT", "VELO")) for i in range(1, len(axes) + 1))


def _axis_wavelengths(values: Mapping[str, object], axis: int,
                      pixels: np.ndarray) -> np.ndarray | None:
    if axis == 1:
        return spectral_axis(values, pixels)
    # Present the spectral axis of a cube as axis 1 to the 1-D reader.
    own = ("CTYPE", "CRVAL", "CDELT", "CRPIX", "CUNIT")
    renamed = {k: v for k, v in values.items()
               if k not in {f"{key}1" for key in own} | {"CD1_1", "DC-FLAG"}}
    for key in own:
        if f"{key}{axis}" in values:
            renamed[f"{key}1"] = values[f"{key}{axis}"]
    if f"CD{axis}_{axis}" in values:
        renamed["CD1_1"] = values[f"CD{axis}_{axis}"]
    return spectral_axis(renamed, pixels)


def header_text(path: str | os.PathLike, max_hdus: int = 8) -> str:
    """The headers of the first `max_hdus` HDUs as text, one card a line, for the header page.

    Raises FitsRejected for a file that is not readable FITS.
    """
    blocks: list[str] = []
    with _Source(path) as src:
        hdus = _walk(src, max_hdus=max_hdus)
    for hdu in hdus:
        name = str(hdu.values.get("EXTNAME", "")).strip()
        title = f"HDU {hdu.index}: {hdu.xtension}" + (f" {name}" if name else "")
        if hdu.is_compressed_image:
            title += " (tile-compressed image)"
        lines = [f"# {title}"]
        lines.extend(hdu.raw[i:i + CARD].rstrip() for i in range(0, len(hdu.raw), CARD))
        lines.append("END")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def locate_science(path: str | os.PathLike) -> tuple[int, str]:
    """(index, kind) of the science HDU of a file, without the checks `read_fits` makes on
    its metadata; FitsRejected when the file has no data at all or is not FITS."""
    with _Source(path) as src:
        try:
            hdus = _walk(src)
        except (OSError, ValueError) as exc:
            raise FitsRejected("corrupt", _("The file could not be read: %(error)s."),
                               error=str(exc)) from exc
    science, kind = _science(hdus)
    return science.index, kind
