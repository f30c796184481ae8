"""Automatic quality control of archived observations.

Every file gets a grade, "pass", "warn" or "fail" (the worst of its checks), the measured values
and one line per check that says, with the numbers, why. The checks:

- header: the required keywords are there, the exposure time is positive, DATE-OBS parses;
- WCS (images): present and usable, a plausible pixel scale, a footprint of sane size;
- image statistics: sigma-clipped background and noise (sep.Background), saturated fraction;
- sources (sep.extract): how many, their median FWHM in arcsec (through the WCS pixel scale)
  and median ellipticity over good stars (unflagged, unsaturated);
- spectra: the median S/N, from an error column or extension, or else estimated from the flux
  itself with the DER_SNR estimator (Stoehr et al. 2008).

Limits come from a per-instrument `QCConfig` that staff edit (TOML/JSON -> `from_dict`).
Source detection runs on a central cut-out of at most 2048 x 2048 pixels, so a big frame costs
about the same as a small one.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import sep
from astropy.io import fits

from astrocloud.core.i18n import _
from astrocloud.data.archive.fits import FitsRejected, FitsSummary, parse_date
from astrocloud.data.archive.previews import open_hdu, read_spectrum

GRADES = ("pass", "warn", "fail")
MAX_CUTOUT = 2048
SATURATE_KEYWORDS = ("SATURATE", "SATLEVEL", "SATUR", "MAXLIN")
ERROR_EXTNAMES = ("ERROR", "ERR", "SIGMA", "NOISE", "STAT", "IVAR", "INVVAR", "VARIANCE", "VAR")
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
MIN_GOOD_STARS = 3
MAX_FWHM_STARS = 300


@dataclass
class QCConfig:
    """Quality limits of one instrument; pairs are (warn, fail) thresholds."""

    required_keywords: tuple[str, ...] = ("DATE-OBS", "EXPTIME", "OBJECT", "INSTRUME",
                                          "TELESCOP")
    saturation: float | None = None      # ADU; else the SATURATE keyword; else the dtype max
    max_saturated_fraction: tuple[float, float] = (0.001, 0.01)
    max_fwhm_arcsec: tuple[float, float] = (2.5, 4.0)
    max_ellipticity: tuple[float, float] = (0.2, 0.4)
    min_sources: tuple[int, int] = (10, 3)    # warn below the first, fail below the second
    min_snr: tuple[float, float] = (20.0, 5.0)  # spectra
    detect_threshold: float = 5.0             # sigma
    pixel_scale_arcsec: tuple[float, float] = (0.01, 100.0)   # plausible range
    max_fov_deg: float = 30.0

    _MAXIMA = ("max_saturated_fraction", "max_fwhm_arcsec", "max_ellipticity")
    _MINIMA = ("min_sources", "min_snr")

    @classmethod
    def from_dict(cls, data: Mapping) -> QCConfig:
        """A config from staff-edited settings; anything missing keeps its default.

        Raises ValueError naming the bad setting and what it should be.
        """
        if not isinstance(data, Mapping):
            raise ValueError(_("The QC settings must be a table of name = value pairs."))
        known = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(_("Unknown QC setting %(key)r; the settings are: %(known)s.")
                                 % {"key": key, "known": ", ".join(known)})
            values[key] = _validate(key, value)
        return cls(**values)

    def to_dict(self) -> dict:
        """The settings as plain lists and numbers (TOML/JSON-ready; no entry for None)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def _number(key: str, value: object, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value < 0 or integer and value != int(value):
        kind = _("a whole number of at least 0") if integer else _("a number of at least 0")
        raise ValueError(_("QC setting %(key)s must be %(kind)s, not %(value)r.")
                         % {"key": key, "kind": kind, "value": value})
    return int(value) if integer else float(value)


def _validate(key: str, value: object) -> object:
    if key == "required_keywords":
        if isinstance(value, str) or not isinstance(value, list | tuple) or not all(
                isinstance(k, str) and k.strip() and len(k.strip()) <= 70 for k in value):
            raise ValueError(_("QC setting required_keywords must be a list of keyword "
                               "names."))
        return tuple(k.strip().upper() for k in value)
    if key == "saturation":
        if value is None:
            return None
        number = _number(key, value)
        if number <= 0:
            raise ValueError(_("QC setting saturation must be above 0, not %(value)r.")
                             % {"value": value})
        return number
    if key in ("detect_threshold", "max_fov_deg"):
        number = _number(key, value)
        if number <= 0:
            raise ValueError(_("QC setting %(key)s must be above 0, not %(value)r.")
                             % {"key": key, "value": value})
        return number
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(_("QC setting %(key)s must be a pair of numbers, not %(value)r.")
                         % {"key": key, "value": value})
    integer = key == "min_sources"
    first, second = (_number(key, v, integer=integer) for v in value)
    if key in QCConfig._MAXIMA and first > second:
        raise ValueError(_("QC setting %(key)s: the warning limit (%(warn)s) must not be above "
                         "the failure limit (%(fail)s).")
                         % {"key": key, "warn": first, "fail": second})
    if key in QCConfig._MINIMA and first < second:
        raise ValueError(_("QC setting %(key)s: the warning limit (%(warn)s) must not be below "
                         "the failure limit (%(fail)s).")
                         % {"key": key, "warn": first, "fail": second})
    if key == "pixel_scale_arcsec" and (first <= 0 or first >= second):
        raise ValueError(_("QC setting pixel_scale_arcsec must be a range (low, high) with "
                           "0 < low < high."))
    return (first, second)


@dataclass
class QCResult:
    """The verdict on one file: its grade, what was measured and each check's outcome."""

    grade: str
    values: dict[str, float | int | None] = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)

    def reasons(self) -> list[str]:
        """The reasons of the checks that did not pass, worst first."""
        bad = [c for c in self.checks if c["grade"] != "pass"]
        bad.sort(key=lambda c: -GRADES.index(c["grade"]))
        return [c["reason"] for c in bad]


class _Checks:
    """Collects checks; each reason is an English msgid with parameters, stored formatted and
    also as msgid + params so a page can show it translated."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, name: str, grade: str, value: object, limit: object, message: str, /,
            **params: object) -> None:
        """Record one check's outcome."""
        self.items.append({"name": name, "grade": grade, "value": value, "limit": limit,
                           "reason": message % params, "message": message,
                           "params": {k: _plain(v) for k, v in params.items()}})

    def maximum(self, name: str, value: float, limits: tuple[float, float], message: str, /,
                **params: object) -> None:
        """A check that fails above its limits (warn, fail)."""
        warn, fail = limits
        grade = "fail" if value > fail else "warn" if value > warn else "pass"
        self.add(name, grade, value, fail if grade == "fail" else warn, message,
                 value=value, warn=warn, fail=fail, **params)

    def minimum(self, name: str, value: float, limits: tuple[float, float], message: str, /,
                **params: object) -> None:
        """A check that fails below its limits (warn, fail)."""
        warn, fail = limits
        grade = "fail" if value < fail else "warn" if value < warn else "pass"
        self.add(name, grade, value, fail if grade == "fail" else warn, message,
                 value=value, warn=warn, fail=fail, **params)


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_qc(path: str | os.PathLike, summary: FitsSummary,
           config: QCConfig | None = None) -> QCResult:
    """Grade a file that `read_fits` summarised, with the limits of `config` (defaults when
    None). Problems reading the data are failed checks, not exceptions."""
    config = config or QCConfig()
    checks = _Checks()
    values: dict[str, float | int | None] = {}
    _header_checks(summary, config, checks)
    if summary.kind in ("image", "cube"):
        _wcs_checks(summary, config, checks)
        try:
            with open_hdu(path, summary.hdu) as hdu:
                data, dtype_max = central_cutout(hdu)
        except (FitsRejected, OSError, ValueError, TypeError) as exc:
            checks.add("data", "fail", None, None, _("The image data cannot be read: "
                                                     "%(error)s."), error=str(exc))
        else:
            _image_checks(data, dtype_max, summary, config, checks, values)
    elif summary.kind == "spectrum":
        try:
            with open_hdu(path, summary.hdu) as hdu:
                flux, _wave, error, _unit = read_spectrum(hdu)
            if error is None:
                error = _error_extension(path, summary.hdu, flux.size)
        except (FitsRejected, OSError, ValueError, TypeError, KeyError) as exc:
            checks.add("data", "fail", None, None, _("The spectrum cannot be read: %(error)s."),
                       error=str(exc))
        else:
            _spectrum_checks(flux, error, config, checks, values)
    grade = max((c["grade"] for c in checks.items), key=GRADES.index, default="pass")
    # The result is stored as JSON: no numpy scalars, no NaN.
    return QCResult(grade=grade, values={k: _json_safe(v) for k, v in values.items()},
                    checks=[{k: _json_safe(v) for k, v in c.items()} for c in checks.items])


def _json_safe(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------- header and WCS

def _header_checks(summary: FitsSummary, config: QCConfig, checks: _Checks) -> None:
    header = summary.header
    missing = [k for k in config.required_keywords
               if header.get(k) is None or isinstance(header.get(k), str) and
               not str(header.get(k)).strip()]
    if missing:
        checks.add("required_keywords", "fail", len(missing), 0,
                   _("Required keywords are missing: %(keywords)s."),
                   keywords=", ".join(missing))
    else:
        checks.add("required_keywords", "pass", 0, 0,
                   _("All %(n)d required keywords are present."),
                   n=len(config.required_keywords))
    exptime = summary.fields.get("exptime")
    if exptime is None:
        checks.add("exptime", "fail", None, 0, _("The exposure time is missing or unreadable."))
    elif exptime <= 0:
        checks.add("exptime", "fail", exptime, 0,
                   _("The exposure time is %(value)s s; it must be above 0."), value=exptime)
    else:
        checks.add("exptime", "pass", exptime, 0, _("The exposure time is %(value)s s."),
                   value=exptime)
    raw = header.get("DATE-OBS")
    if raw is None:
        checks.add("date_obs", "warn", None, None,
                   _("DATE-OBS is missing; the observation time %(when)s comes from another "
                     "keyword."), when=summary.date_obs.isoformat())
        return
    try:
        parse_date(raw, header.get("TIME-OBS") or header.get("UT"))
    except (TypeError, ValueError, OverflowError):
        checks.add("date_obs", "fail", None, None,
                   _("DATE-OBS = %(value)s is not a valid date."), value=str(raw))
    else:
        checks.add("date_obs", "pass", None, None, _("DATE-OBS %(value)s is a valid date."),
                   value=str(raw))


def _wcs_checks(summary: FitsSummary, config: QCConfig, checks: _Checks) -> None:
    if summary.wcs_status == "missing":
        checks.add("wcs", "warn", None, None,
                   _("The image has no WCS, so its footprint on the sky is unknown."))
        return
    if summary.wcs_status != "ok" or summary.pixscale_arcsec is None:
        problem = next((w for w in summary.warnings if "WCS" in w), "")
        checks.add("wcs", "warn", None, None,
                   _("The WCS is unusable, so the footprint on the sky is unknown: "
                     "%(problem)s"), problem=problem)
        return
    scale = summary.pixscale_arcsec
    low, high = config.pixel_scale_arcsec
    if not low <= scale <= high:
        checks.add("wcs", "warn", scale, [low, high],
                   _("The WCS pixel scale of %(scale).4g arcsec is outside the plausible "
                     "range %(low)s to %(high)s arcsec."), scale=scale, low=low, high=high)
    elif summary.s_fov is not None and summary.s_fov > config.max_fov_deg:
        checks.add("wcs", "warn", summary.s_fov, config.max_fov_deg,
                   _("The WCS footprint is %(fov).1f degrees across, more than the %(limit)s "
                     "degrees this instrument can see."), fov=summary.s_fov,
                   limit=config.max_fov_deg)
    else:
        checks.add("wcs", "pass", scale, [low, high],
                   _("The WCS is valid: %(scale).3f arcsec per pixel, %(fov).3f degrees "
                     "across."), scale=scale, fov=summary.s_fov or 0.0)


# --------------------------------------------------------------------------- images

def _dtype_max(hdu) -> float | None:
    """The largest value the stored integers can hold (after BZERO), None for floats."""
    header = hdu.header    # a CompImageHDU shows the header of the image it holds
    bitpix = header.get("BITPIX")
    if not isinstance(bitpix, int) or bitpix < 0:
        return None
    bzero = header.get("BZERO", 0) or 0
    bscale = header.get("BSCALE", 1) or 1
    return float((2 ** (bitpix - 1) - 1) * bscale + bzero) if bitpix > 8 else \
        float(255 * bscale + bzero)


def central_cutout(hdu) -> tuple[np.ndarray, float | None]:
    """A native float32 copy of at most MAX_CUTOUT x MAX_CUTOUT central pixels (the middle
    plane of a cube) and the saturation implied by the storage type."""
    shape = tuple(hdu.shape)
    if len(shape) < 2:
        raise ValueError("not an image")
    lead = tuple(n // 2 for n in shape[:-2])
    ny, nx = shape[-2:]
    y0 = max(0, (ny - MAX_CUTOUT) // 2)
    x0 = max(0, (nx - MAX_CUTOUT) // 2)
    window = lead + (slice(y0, y0 + min(ny, MAX_CUTOUT)), slice(x0, x0 + min(nx, MAX_CUTOUT)))
    data = np.array(hdu.section[window], dtype=np.float32, order="C")
    return data, _dtype_max(hdu)


def _saturation(config: QCConfig, summary: FitsSummary,
                dtype_max: float | None) -> tuple[float | None, str]:
    if config.saturation is not None:
        return config.saturation, "config"
    for keyword in SATURATE_KEYWORDS:
        value = summary.header.get(keyword)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value), keyword
    return dtype_max, "dtype"


def _image_checks(data: np.ndarray, dtype_max: float | None, summary: FitsSummary,
                  config: QCConfig, checks: _Checks, values: dict) -> None:
    finite = np.isfinite(data)
    if not finite.any():
        checks.add("data", "fail", 0, None, _("The image has no finite pixel values."))
        return
    saturation, source = _saturation(config, summary, dtype_max)
    saturated = finite & (data >= saturation) if saturation is not None else \
        np.zeros(data.shape, dtype=bool)
    fraction = float(saturated.sum()) / float(finite.sum())
    values["saturation_level"] = saturation
    values["saturated_fraction"] = fraction if saturation is not None else None
    if saturation is None:
        checks.add("saturation", "pass", None, None,
                   _("No saturation level is known (floating-point data without a SATURATE "
                     "keyword)."))
    else:
        checks.maximum("saturation", fraction, config.max_saturated_fraction,
                       _("%(percent).3f%% of the pixels are saturated (at or above %(level)s "
                         "ADU from %(source)s; limits %(warn_percent).3g%% / "
                         "%(fail_percent).3g%%)."),
                       percent=fraction * 100, level=saturation, source=source,
                       warn_percent=config.max_saturated_fraction[0] * 100,
                       fail_percent=config.max_saturated_fraction[1] * 100)

    mask = ~finite | saturated
    clean = np.where(finite, data, 0.0).astype(np.float32)
    try:
        background = sep.Background(clean, mask=mask, bw=64, bh=64, fw=3, fh=3)
    except Exception as exc:  # sep reports its C errors as plain Exceptions
        checks.add("background", "fail", None, None,
                   _("The background cannot be measured: %(error)s."), error=str(exc))
        return
    values["background"] = float(background.globalback)
    values["noise"] = float(background.globalrms)
    subtracted = clean - background.back()
    _source_checks(subtracted, mask, float(background.globalrms), float(background.globalback),
                   saturation, summary, config, checks, values)


def _source_checks(data: np.ndarray, mask: np.ndarray, noise: float, sky: float,
                   saturation: float | None, summary: FitsSummary, config: QCConfig,
                   checks: _Checks, values: dict) -> None:
    if not noise > 0:
        checks.add("sources", "fail", 0, config.min_sources[1],
                   _("The image has no noise (a constant image), so no sources can be "
                     "detected."))
        values["n_sources"] = 0
        return
    sep.set_extract_pixstack(2_000_000)
    sep.set_sub_object_limit(4096)
    try:
        objects = sep.extract(data, config.detect_threshold, err=noise, mask=mask, minarea=5)
    except Exception as exc:  # sep: pixel stack or deblending overflow in crowded fields
        checks.add("sources", "warn", None, None,
                   _("Source detection failed (%(error)s): the field may be too crowded."),
                   error=str(exc))
        return
    n = len(objects)
    values["n_sources"] = n
    checks.minimum("sources", n, config.min_sources,
                   _("%(value)d sources were detected above %(sigma)s sigma (limits "
                     "%(warn)d / %(fail)d)."), sigma=config.detect_threshold)
    if n == 0:
        values.update(fwhm_pixels=None, fwhm_arcsec=None, ellipticity=None, n_good_stars=0)
        return
    ny, nx = data.shape
    edge = 8
    good = (objects["flag"] == 0) & (objects["npix"] >= 5) & (objects["b"] > 0.3) & \
        (objects["x"] > edge) & (objects["x"] < nx - edge) & \
        (objects["y"] > edge) & (objects["y"] < ny - edge)
    if saturation is not None:
        good &= objects["peak"] + sky < 0.9 * saturation
    stars = objects[good]
    values["n_good_stars"] = len(stars)
    if len(stars) < MIN_GOOD_STARS:
        values.update(fwhm_pixels=None, fwhm_arcsec=None, ellipticity=None)
        return
    fwhm_pixels, n_measured = _fwhm(data, mask, stars, objects)
    ellipticity = float(np.median(1.0 - stars["b"] / stars["a"]))
    values["fwhm_pixels"] = fwhm_pixels
    values["ellipticity"] = ellipticity
    scale = summary.pixscale_arcsec
    values["fwhm_arcsec"] = fwhm_pixels * scale if fwhm_pixels and scale else None
    if values["fwhm_arcsec"] is not None:
        checks.maximum("fwhm", values["fwhm_arcsec"], config.max_fwhm_arcsec,
                       _("The median FWHM of %(n)d stars is %(value).2f arcsec (limits "
                         "%(warn)s / %(fail)s arcsec)."), n=n_measured)
    checks.maximum("ellipticity", ellipticity, config.max_ellipticity,
                   _("The median ellipticity of %(n)d stars is %(value).2f (limits %(warn)s / "
                     "%(fail)s)."), n=len(stars))


def _half_light(data: np.ndarray, mask: np.ndarray, x: np.ndarray, y: np.ndarray,
                rmax: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        radius, flags = sep.flux_radius(data, x, y, rmax, 0.5, mask=mask, subpix=5)
    return np.where((flags == 0) & np.isfinite(radius) & (radius > 0), radius, np.nan)


def _fwhm(data: np.ndarray, mask: np.ndarray, stars: np.ndarray,
          objects: np.ndarray) -> tuple[float | None, int]:
    """(median FWHM in pixels, stars measured). For a Gaussian star the half-light radius is
    exactly half the FWHM. A first pass gives the rough size; the second measures within two
    FWHM of stars with no other source within two FWHM, because blends inflate the radius."""
    first = _half_light(data, mask, stars["x"], stars["y"], np.clip(8.0 * stars["a"], 5, 60))
    if not np.isfinite(first).any():
        return None, 0
    rough = 2.0 * float(np.nanmedian(first))
    # The brightest stars suffice; bounding them bounds the neighbour search's memory.
    stars = np.sort(stars, order="flux")[::-1][:MAX_FWHM_STARS]
    nearest = np.empty(len(stars))
    for start in range(0, len(stars), 100):
        batch = stars[start:start + 100]
        distance = np.hypot(batch["x"][:, None] - objects["x"][None, :],
                            batch["y"][:, None] - objects["y"][None, :])
        distance[distance < 0.5] = np.inf       # the star itself
        nearest[start:start + 100] = distance.min(axis=1)
    isolated = nearest > 2.0 * rough
    chosen = stars[isolated] if isolated.sum() >= MIN_GOOD_STARS else stars
    rmax = np.full(len(chosen), float(np.clip(2.0 * rough, 3.0, 60.0)))
    second = _half_light(data, mask, chosen["x"], chosen["y"], rmax)
    if np.isfinite(second).sum() < MIN_GOOD_STARS:
        return 2.0 * float(np.nanmedian(first)), int(np.isfinite(first).sum())
    return 2.0 * float(np.nanmedian(second)), int(np.isfinite(second).sum())


# --------------------------------------------------------------------------- spectra

def _error_extension(path: str | os.PathLike, science: int, n: int) -> np.ndarray | None:
    """1-sigma errors from an ERROR/IVAR/VARIANCE extension of the same length, if any."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(os.fspath(path), lazy_load_hdus=True) as hdul:
            for index, hdu in enumerate(hdul):
                name = str(hdu.header.get("EXTNAME", "")).strip().upper()
                if index == science or name not in ERROR_EXTNAMES or \
                        not isinstance(hdu, fits.ImageHDU):
                    continue
                data = np.asarray(hdu.data, dtype=float).ravel()
                if data.size != n:
                    continue
                with np.errstate(divide="ignore", invalid="ignore"):
                    if name in ("IVAR", "INVVAR"):
                        return np.where(data > 0, 1.0 / np.sqrt(data), np.nan)
                    if name in ("VARIANCE", "VAR"):
                        return np.sqrt(data)
                return data
    return None


def der_snr(flux: np.ndarray) -> float | None:
    """The DER_SNR estimate of a spectrum's S/N from its flux alone (Stoehr et al. 2008)."""
    flux = np.asarray(flux, dtype=float)
    flux = flux[np.isfinite(flux)]
    if flux.size < 5:
        return None
    signal = float(np.median(flux))
    noise = 0.6052697 * float(np.median(np.abs(2.0 * flux[2:-2] - flux[:-4] - flux[4:])))
    if noise <= 0:
        return None
    return signal / noise


def _spectrum_checks(flux: np.ndarray, error: np.ndarray | None, config: QCConfig,
                     checks: _Checks, values: dict) -> None:
    snr: float | None
    if error is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.asarray(flux, float) / np.asarray(error, float)
        ratio = ratio[np.isfinite(ratio) & (np.asarray(error, float) > 0)]
        snr = float(np.median(ratio)) if ratio.size else None
        source = "errors"
    else:
        snr = der_snr(flux)
        source = "DER_SNR"
    values["snr"] = snr
    if snr is None:
        checks.add("snr", "fail", None, config.min_snr[1],
                   _("The S/N of the spectrum cannot be measured (no usable flux)."))
        return
    checks.minimum("snr", snr, config.min_snr,
                   _("The median S/N of the spectrum is %(value).1f (from %(source)s; limits "
                     "%(warn)s / %(fail)s)."), source=source)
