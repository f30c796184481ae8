"""PNG previews and thumbnails of archived files: images, cubes and spectra.

Images are shown north up as stored (FITS row 1 at the bottom), scaled with zscale or an
asinh stretch (astropy.visualization) into 8-bit grey. Big images are block-averaged band by
band while they are read, so memory stays bounded and a 4k x 4k frame previews in a fraction of
a second. Cubes show their middle plane. Spectra are plotted with matplotlib's Agg canvas (no
pyplot, so it is safe in worker threads) against wavelength in nm.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.visualization import (
    AsinhStretch,
    ImageNormalize,
    LinearStretch,
    PercentileInterval,
    ZScaleInterval,
)
from PIL import Image

from astrocloud.core.i18n import _
from astrocloud.data.archive.fits import (
    ERROR_COLUMNS,
    WAVELENGTH_UNITS,
    FitsRejected,
    FitsSummary,
    find_column,
    locate_science,
    spectral_axis,
    spectral_table_columns,
    table_columns,
)

STRETCHES = ("zscale", "asinh")
# Rows read at a time while block-averaging a big image: bounds memory to a few tens of MB.
BAND_PIXELS = 8_000_000


@contextmanager
def open_hdu(path: str | os.PathLike, hdu: int | None = None) -> Iterator[Any]:
    """The science HDU (or HDU `hdu`) of a file, opened with memory mapping and astropy's
    warnings silenced; FitsRejected when it cannot be opened."""
    index = locate_science(path)[0] if hdu is None else hdu
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            hdul = fits.open(os.fspath(path), lazy_load_hdus=True)
        except (OSError, ValueError) as exc:
            raise FitsRejected("corrupt", _("The file could not be read: %(error)s."),
                               error=str(exc)) from exc
        try:
            try:
                selected = hdul[index]
            except (IndexError, KeyError) as exc:
                raise FitsRejected("no-data", _("The file has no HDU %(hdu)s."),
                                   hdu=index) from exc
            yield selected
        finally:
            hdul.close()


def _block_mean(chunk: np.ndarray, k: int) -> np.ndarray:
    rows, cols = chunk.shape[0] // k, chunk.shape[1] // k
    blocks = chunk[:rows * k, :cols * k].reshape(rows, k, cols, k)
    if np.isnan(blocks).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN blocks stay NaN
            return np.nanmean(blocks, axis=(1, 3))
    return blocks.mean(axis=(1, 3))


def read_plane(hdu, size: int | None = None) -> np.ndarray:
    """A 2-D float32 view of an image HDU (the middle plane of a cube), block-averaged so its
    longest side is at most about 2 x `size` when `size` is given."""
    shape = tuple(hdu.shape)
    if len(shape) < 2:
        raise ValueError("not an image")
    lead = tuple(n // 2 for n in shape[:-2])
    ny, nx = shape[-2:]
    k = max(1, max(ny, nx) // size) if size else 1
    section = hdu.section if hasattr(hdu, "section") else hdu.data
    if k == 1:
        return np.asarray(section[lead + (slice(None), slice(None))], dtype=np.float32)
    band = max(k, (BAND_PIXELS // max(nx, 1)) // k * k)
    out = []
    for r0 in range(0, ny - ny % k, band):
        r1 = min(r0 + band, ny - ny % k)
        chunk = np.asarray(section[lead + (slice(r0, r1), slice(0, nx - nx % k))],
                           dtype=np.float32)
        out.append(_block_mean(chunk, k))
    return np.vstack(out)


def scale_to_bytes(plane: np.ndarray, stretch: str = "zscale") -> np.ndarray:
    """8-bit grey levels of an image: zscale limits with a linear stretch, or an asinh stretch
    between the 0.25 and 99.75 percentiles; NaNs become black, a flat image mid-grey."""
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}, not {stretch!r}")
    finite = np.isfinite(plane)
    values = plane[finite]
    if not values.size:
        return np.zeros(plane.shape, dtype=np.uint8)
    if stretch == "zscale":
        vmin, vmax = ZScaleInterval().get_limits(values)
        transform = LinearStretch()
    else:
        vmin, vmax = PercentileInterval(99.5).get_limits(values)
        transform = AsinhStretch(0.1)
    if not (math.isfinite(vmin) and math.isfinite(vmax)) or vmax <= vmin:
        grey = np.full(plane.shape, 128, dtype=np.uint8)
        grey[~finite] = 0
        return grey
    norm = ImageNormalize(vmin=vmin, vmax=vmax, stretch=transform, clip=True)
    with np.errstate(invalid="ignore"):
        scaled = np.asarray(norm(np.where(finite, plane, vmin)).filled(0.0))
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def _fit(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if max(width, height) <= size:
        return image
    ratio = size / max(width, height)
    return image.resize((max(1, round(width * ratio)), max(1, round(height * ratio))),
                        Image.Resampling.LANCZOS)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _image(path: str | os.PathLike, hdu: int | None, size: int, stretch: str) -> Image.Image:
    with open_hdu(path, hdu) as selected:
        try:
            plane = read_plane(selected, size)
        except (ValueError, TypeError, OSError) as exc:
            raise FitsRejected("no-data", _("HDU %(hdu)s has no image to preview (%(error)s)."),
                               hdu=hdu, error=str(exc)) from exc
    grey = scale_to_bytes(plane, stretch)
    # FITS puts row 1 at the bottom; PNG at the top.
    return _fit(Image.fromarray(np.ascontiguousarray(grey[::-1]), mode="L"), size)


def image_png(path: str | os.PathLike, *, hdu: int | None = None, size: int = 1024,
              stretch: str = "zscale") -> bytes:
    """An 8-bit grey PNG of an image (a cube's middle plane), longest side <= `size`."""
    return _png(_image(path, hdu, size, stretch))


def thumbnail_png(path: str | os.PathLike, *, hdu: int | None = None, size: int = 192) -> bytes:
    """A small PNG: the image scaled down, or for a spectrum a bare plot of it."""
    index, kind = locate_science(path) if hdu is None else (hdu, None)
    if kind is None:
        with open_hdu(path, index) as selected:
            kind = "spectrum" if _is_spectrum_hdu(selected) else "image"
    if kind == "spectrum":
        return spectrum_png(path, hdu=index, size=(size, max(1, size * 2 // 3)), compact=True)
    return image_png(path, hdu=index, size=size)


def _is_spectrum_hdu(hdu) -> bool:
    if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
        return spectral_table_columns(dict(hdu.header.items())) is not None
    shape = tuple(hdu.shape or ())
    return len([n for n in shape if n > 1]) == 1


def read_spectrum(hdu) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, str]:
    """(flux, wavelength in metres or None, 1-sigma error or None, flux unit) of a spectrum HDU:
    a 1-D image (the first row of a multi-row one) or a table with wavelength and flux
    columns."""
    values = dict(hdu.header.items())
    if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
        found = spectral_table_columns(values)
        if found is None:
            raise ValueError("the table has no wavelength and flux columns")
        columns = table_columns(values)
        (wave_name, wave_unit), (flux_name, flux_unit) = columns[found[0]], columns[found[1]]
        data = hdu.data
        wave = np.asarray(data[wave_name], dtype=float).ravel()
        flux = np.asarray(data[flux_name], dtype=float).ravel()
        if wave_name.lower() == "loglam":
            wave = 10.0 ** wave
        wave = wave * WAVELENGTH_UNITS.get(wave_unit.lower().replace(" ", ""), 1e-10)
        error = None
        err_index = find_column(columns, ERROR_COLUMNS)
        if err_index is not None:
            err_name = columns[err_index][0]
            raw = np.asarray(data[err_name], dtype=float).ravel()
            error = _as_sigma(err_name, raw)
        return flux, wave, error, flux_unit
    data = np.asarray(hdu.data, dtype=float)
    while data.ndim > 1:
        data = data[0]
    pixels = np.arange(1, data.size + 1, dtype=float)
    wave = spectral_axis(values, pixels)
    return data, wave, None, str(values.get("BUNIT", "")).strip()


def _as_sigma(name: str, values: np.ndarray) -> np.ndarray:
    """1-sigma errors from an error, variance or inverse-variance column."""
    lowered = name.lower()
    with np.errstate(divide="ignore", invalid="ignore"):
        if lowered in ("ivar", "invvar", "inverse_variance"):
            return np.where(values > 0, 1.0 / np.sqrt(values), np.nan)
        if lowered in ("variance", "var"):
            return np.sqrt(values)
    return values


def spectrum_png(path: str | os.PathLike, *, hdu: int | None = None,
                 size: tuple[int, int] = (800, 400), title: str = "",
                 compact: bool = False) -> bytes:
    """A PNG plot of a spectrum, `size` pixels (width, height), flux against wavelength in nm
    (against pixel number when there is no spectral WCS). `compact` drops labels and ticks
    for thumbnails."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with open_hdu(path, hdu) as selected:
        try:
            flux, wave, _error, unit = read_spectrum(selected)
        except (ValueError, TypeError, KeyError) as exc:
            raise FitsRejected("no-data", _("HDU %(hdu)s has no spectrum to plot (%(error)s)."),
                               hdu=hdu, error=str(exc)) from exc
    width, height = size
    dpi = 100
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    if compact:
        axes = figure.add_axes((0.02, 0.04, 0.96, 0.92))
        axes.set_axis_off()
    else:
        axes = figure.add_subplot(1, 1, 1)
    x = wave * 1e9 if wave is not None else np.arange(1, flux.size + 1)
    axes.plot(x, flux, linewidth=0.6 if not compact else 0.8, color="#1f4e79")
    finite = flux[np.isfinite(flux)]
    if finite.size:
        low, high = np.percentile(finite, [0.5, 99.5])
        pad = (high - low) * 0.08 or 1.0
        axes.set_ylim(low - pad, high + pad)
    if not compact:
        axes.set_xlabel("Wavelength (nm)" if wave is not None else "Pixel")
        axes.set_ylabel(f"Flux ({unit})" if unit else "Flux")
        if title:
            axes.set_title(title)
        figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def make_previews(path: str | os.PathLike, summary: FitsSummary) -> dict[str, bytes]:
    """The preview and thumbnail PNGs of a summarised file (nothing for plain tables)."""
    if summary.kind in ("image", "cube"):
        preview = _image(path, summary.hdu, 1024, "zscale")
        return {"preview": _png(preview), "thumbnail": _png(_fit(preview, 192))}
    if summary.kind == "spectrum":
        title = str(summary.fields.get("target_name") or "")
        return {"preview": spectrum_png(path, hdu=summary.hdu, title=title),
                "thumbnail": spectrum_png(path, hdu=summary.hdu, size=(192, 128),
                                          compact=True)}
    return {}
