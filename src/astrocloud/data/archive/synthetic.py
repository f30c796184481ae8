"""Realistic synthetic observations for the demo and the tests.

Images are what a CCD camera writes: unsigned 16-bit counts, a real TAN WCS, Poisson sky noise
with read noise, Gaussian stars of the requested seeing, and, on request, saturated stars with
bleed trails. Spectra are 1-D with a linear spectral WCS, a stellar continuum with absorption
lines and Gaussian noise of the requested S/N. Catalogs carry units and UCDs. `write_bad_files`
writes the broken inputs the archive must quarantine or warn about.

Everything is deterministic for a given seed.
"""

from __future__ import annotations

import gzip
import io
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from astropy.io import fits

SATURATION = 65535
GAIN = 1.0          # e-/ADU
READ_NOISE = 5.0    # e-
WCS_KEYWORDS = ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2",
                "CD2_1", "CD2_2", "CUNIT1", "CUNIT2", "RADESYS", "EQUINOX", "WCSAXES")

# Strong absorption lines of a solar-type star: (centre nm, depth, sigma nm).
STELLAR_LINES = ((393.4, 0.6, 0.8), (396.8, 0.55, 0.8), (410.2, 0.3, 0.6), (434.0, 0.35, 0.6),
                 (486.1, 0.4, 0.6), (517.3, 0.25, 0.4), (589.2, 0.35, 0.4), (656.3, 0.45, 0.6),
                 (850.0, 0.2, 0.5), (854.2, 0.25, 0.5), (866.2, 0.22, 0.5))


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _fits_date(when: datetime) -> str:
    return _utc(when).replace(tzinfo=None).isoformat(timespec="milliseconds")


def _sexagesimal(degrees: float, *, hours: bool) -> str:
    value = degrees / 15.0 if hours else abs(degrees)
    whole = int(value)
    minutes = int((value - whole) * 60)
    seconds = ((value - whole) * 60 - minutes) * 60
    if hours:
        return f"{whole:02d}:{minutes:02d}:{seconds:05.2f}"
    sign = "-" if degrees < 0 else "+"
    return f"{sign}{whole:02d}:{minutes:02d}:{seconds:04.1f}"


def _apply_extra(header: fits.Header, extra: Mapping | None) -> None:
    """Extra cards override the generated ones; a None value removes a card."""
    for key, value in (extra or {}).items():
        if value is None:
            header.remove(key, ignore_missing=True, remove_all=True)
        else:
            header[key] = value


def _add_star(image: np.ndarray, x: float, y: float, flux: float, sigma: float,
              ellipticity: float, angle: float) -> None:
    """Add a Gaussian star of total `flux` centred on (x, y) (0-based pixels)."""
    sig_a = sigma / math.sqrt(max(1.0 - ellipticity, 1e-3))
    sig_b = sig_a * (1.0 - ellipticity)
    radius = int(math.ceil(6 * sig_a))
    ny, nx = image.shape
    x0, x1 = max(int(x) - radius, 0), min(int(x) + radius + 1, nx)
    y0, y1 = max(int(y) - radius, 0), min(int(y) + radius + 1, ny)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dx, dy = xx - x, yy - y
    c, s = math.cos(angle), math.sin(angle)
    u = (dx * c + dy * s) / sig_a
    v = (-dx * s + dy * c) / sig_b
    image[y0:y1, x0:x1] += flux / (2 * math.pi * sig_a * sig_b) * np.exp(-0.5 * (u * u + v * v))


def _write(hdul: fits.HDUList, path: Path, compress: str | None) -> Path:
    if compress == "gzip":
        if not path.name.endswith(".gz"):
            path = path.with_name(path.name + ".gz")
        buffer = io.BytesIO()
        hdul.writeto(buffer, output_verify="exception")
        # mtime=0 keeps the bytes identical for the same seed.
        path.write_bytes(gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0))
    else:
        if compress == "rice" and not path.name.endswith(".fz"):
            path = path.with_name(path.name + ".fz")
        hdul.writeto(path, overwrite=True, output_verify="exception")
    return path


def image_header(*, ra: float, dec: float, date_obs: datetime, exptime: float, telescope: str,
                 instrument: str, filter: str, object: str, propid: str | None,
                 shape: tuple[int, int], pixscale_arcsec: float) -> fits.Header:
    """The header a camera at a telescope writes, with a TAN WCS centred on (ra, dec)."""
    ny, nx = shape
    scale = pixscale_arcsec / 3600.0
    h = fits.Header()
    h["TELESCOP"] = (telescope, "Telescope")
    h["INSTRUME"] = (instrument, "Instrument")
    h["FILTER"] = (filter, "Filter name")
    h["OBJECT"] = (object, "Target")
    h["IMAGETYP"] = ("object", "Frame type")
    h["OBSERVER"] = ("A. Synthetic", "Observer")
    if propid is not None:
        h["PROPID"] = (propid, "Proposal / programme identifier")
    h["DATE-OBS"] = (_fits_date(date_obs), "UTC start of the exposure")
    h["EXPTIME"] = (float(exptime), "[s] Exposure time")
    h["RA"] = (_sexagesimal(ra, hours=True), "Pointing right ascension (hours)")
    h["DEC"] = (_sexagesimal(dec, hours=False), "Pointing declination (degrees)")
    h["EQUINOX"] = (2000.0, "Equinox of the coordinates")
    h["RADESYS"] = ("ICRS", "Reference frame")
    h["CTYPE1"] = "RA---TAN"
    h["CTYPE2"] = "DEC--TAN"
    h["CUNIT1"] = "deg"
    h["CUNIT2"] = "deg"
    h["CRVAL1"] = float(ra)
    h["CRVAL2"] = float(dec)
    h["CRPIX1"] = (nx + 1) / 2.0
    h["CRPIX2"] = (ny + 1) / 2.0
    h["CD1_1"] = -scale          # east to the left, north up
    h["CD1_2"] = 0.0
    h["CD2_1"] = 0.0
    h["CD2_2"] = scale
    h["SATURATE"] = (SATURATION, "[adu] Saturation level")
    h["GAIN"] = (GAIN, "[e-/adu] Gain")
    h["RDNOISE"] = (READ_NOISE, "[e-] Read noise")
    h["BUNIT"] = "adu"
    h["ORIGIN"] = "AstroCloud synthetic data"
    return h


def write_image(path: str | os.PathLike, *, ra: float, dec: float, date_obs: datetime,
                exptime: float = 60.0, telescope: str = "Xinglong 2.16m",
                instrument: str = "BFOSC", filter: str = "V", object: str = "M 51",
                propid: str | None = None, shape: tuple[int, int] = (256, 256),
                pixscale_arcsec: float = 0.5, seeing_arcsec: float = 1.5, n_stars: int = 60,
                sky: float = 200.0, seed: int = 0, saturate_some: bool = False,
                compress: str | None = None, extra_header: Mapping | None = None,
                ellipticity: float = 0.0) -> Path:
    """Write a CCD image of a star field and return its path.

    `compress` is None, "gzip" (".gz" appended when missing) or "rice" (a tile-compressed
    CompImageHDU, ".fz" appended when missing). `saturate_some` adds bright stars whose
    cores saturate and bleed along columns (about 2% of the pixels of the default image).
    `ellipticity` elongates every star (tracking or optics trouble). `extra_header` cards
    override the generated ones; a None value removes a card.
    """
    if compress not in (None, "gzip", "rice"):
        raise ValueError(f"compress must be None, 'gzip' or 'rice', not {compress!r}")
    rng = np.random.default_rng(seed)
    ny, nx = shape
    sigma = seeing_arcsec / pixscale_arcsec / (2 * math.sqrt(2 * math.log(2)))
    angle = rng.uniform(0, math.pi)
    electrons = np.full(shape, sky * GAIN, dtype=np.float64)
    margin = 3
    for _ in range(n_stars):
        x, y = rng.uniform(margin, nx - margin), rng.uniform(margin, ny - margin)
        flux = 10 ** rng.uniform(3.3, 5.3)
        _add_star(electrons, x, y, flux * GAIN, sigma, ellipticity, angle)
    bright: list[tuple[float, float, float]] = []
    if saturate_some:
        for _ in range(6):
            x, y = rng.uniform(10, nx - 10), rng.uniform(10, ny - 10)
            flux = 20 * SATURATION * 2 * math.pi * sigma * sigma
            _add_star(electrons, x, y, flux * GAIN, sigma, ellipticity, angle)
            bright.append((x, y, flux))
    counts = rng.poisson(electrons).astype(np.float64)
    counts += rng.normal(0.0, READ_NOISE, size=shape)
    counts /= GAIN
    for x, y, flux in bright:
        # Charge above full well spills along the column: a bleed trail either side.
        length = min(int(flux * 0.8 / (SATURATION * 3)), ny // 3)
        cx, cy = int(round(x)), int(round(y))
        counts[max(cy - length // 2, 0):cy + length // 2 + 1, max(cx - 1, 0):cx + 2] = SATURATION
    data = np.clip(np.rint(counts), 0, SATURATION).astype(np.uint16)

    header = image_header(ra=ra, dec=dec, date_obs=date_obs, exptime=exptime,
                          telescope=telescope, instrument=instrument, filter=filter,
                          object=object, propid=propid, shape=shape,
                          pixscale_arcsec=pixscale_arcsec)
    _apply_extra(header, extra_header)
    if compress == "rice":
        hdul = fits.HDUList([fits.PrimaryHDU(),
                             fits.CompImageHDU(data=data, header=header,
                                               compression_type="RICE_1")])
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=header)])
    return _write(hdul, Path(path), compress)


def spectrum_flux(wavelength_nm: np.ndarray, temperature: float = 5800.0) -> np.ndarray:
    """A noiseless stellar spectrum: a black body with the strongest absorption lines."""
    lam = wavelength_nm * 1e-9
    planck = 1.0 / (lam ** 5 * (np.exp(1.4387769e-2 / (lam * temperature)) - 1.0))
    continuum = planck / planck.max() * 1000.0
    profile = np.ones_like(wavelength_nm)
    for centre, depth, width in STELLAR_LINES:
        profile -= depth * np.exp(-0.5 * ((wavelength_nm - centre) / width) ** 2)
    return continuum * np.clip(profile, 0.05, None)


def write_spectrum(path: str | os.PathLike, *, ra: float, dec: float, date_obs: datetime,
                   telescope: str = "LAMOST", instrument: str = "LRS", object: str = "star",
                   propid: str | None = None, wave_range_nm: tuple[float, float] = (370, 900),
                   n: int = 2000, snr: float = 50.0, seed: int = 0,
                   extra_header: Mapping | None = None, exptime: float = 1800.0,
                   error_hdu: bool = False) -> Path:
    """Write a 1-D spectrum with a linear spectral WCS (Angstrom) and return its path.

    Noise is Gaussian with sigma = flux / snr. With `error_hdu` an ERROR image extension holds
    the 1-sigma uncertainty of every pixel.
    """
    rng = np.random.default_rng(seed)
    lo, hi = wave_range_nm
    wavelength = np.linspace(lo, hi, n)
    flux = spectrum_flux(wavelength)
    error = flux / snr
    noisy = (flux + rng.normal(0.0, 1.0, size=n) * error).astype(np.float32)

    h = fits.Header()
    h["TELESCOP"] = telescope
    h["INSTRUME"] = instrument
    h["OBJECT"] = object
    h["OBSERVER"] = "A. Synthetic"
    if propid is not None:
        h["PROPID"] = propid
    h["DATE-OBS"] = (_fits_date(date_obs), "UTC start of the exposure")
    h["EXPTIME"] = (float(exptime), "[s] Exposure time")
    h["RA"] = (float(ra), "[deg] Fibre right ascension")
    h["DEC"] = (float(dec), "[deg] Fibre declination")
    h["RADESYS"] = "ICRS"
    h["CTYPE1"] = "WAVE"
    h["CUNIT1"] = "Angstrom"
    h["CRPIX1"] = 1.0
    h["CRVAL1"] = lo * 10.0
    h["CDELT1"] = (hi - lo) * 10.0 / (n - 1)
    h["BUNIT"] = "adu"
    h["ORIGIN"] = "AstroCloud synthetic data"
    _apply_extra(h, extra_header)
    hdus: list = [fits.PrimaryHDU(data=noisy, header=h)]
    if error_hdu:
        hdus.append(fits.ImageHDU(data=error.astype(np.float32), name="ERROR"))
    return _write(fits.HDUList(hdus), Path(path), None)


CATALOG_COLUMNS = (
    # name, unit, UCD, description
    ("source_id", "", "meta.id;meta.main", "Unique source identifier"),
    ("ra", "deg", "pos.eq.ra;meta.main", "Right ascension (ICRS)"),
    ("dec", "deg", "pos.eq.dec;meta.main", "Declination (ICRS)"),
    ("gmag", "mag", "phot.mag;em.opt.B", "g-band magnitude"),
    ("rmag", "mag", "phot.mag;em.opt.R", "r-band magnitude"),
    ("gmag_err", "mag", "stat.error;phot.mag;em.opt.B", "Uncertainty of gmag"),
    ("parallax", "mas", "pos.parallax", "Parallax"),
)


def catalog_rows(n_rows: int, seed: int = 0, ra_range: tuple[float, float] = (0, 360),
                 dec_range: tuple[float, float] = (-30, 90)) -> dict[str, np.ndarray]:
    """The columns of a synthetic star catalog, uniform on the sky within the ranges."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(ra_range[0], ra_range[1], n_rows)
    sin_lo, sin_hi = np.sin(np.radians(dec_range[0])), np.sin(np.radians(dec_range[1]))
    dec = np.degrees(np.arcsin(rng.uniform(sin_lo, sin_hi, n_rows)))
    # Star counts rise towards faint magnitudes.
    gmag = 22.0 - rng.exponential(2.0, n_rows).clip(0, 9)
    rmag = gmag - rng.uniform(0.1, 1.2, n_rows)
    gmag_err = 0.002 + 10 ** (0.4 * (gmag - 24.5))
    parallax = np.abs(rng.normal(0.4, 0.5, n_rows))
    return {"source_id": np.arange(1, n_rows + 1, dtype=np.int64) + 10_000_000 * seed,
            "ra": ra, "dec": dec, "gmag": gmag.astype(np.float32),
            "rmag": rmag.astype(np.float32), "gmag_err": gmag_err.astype(np.float32),
            "parallax": parallax.astype(np.float32)}


def write_catalog(path: str | os.PathLike, *, n_rows: int, seed: int = 0,
                  ra_range: tuple[float, float] = (0, 360),
                  dec_range: tuple[float, float] = (-30, 90), format: str = "fits") -> Path:
    """Write a star catalog as "fits", "csv", "votable" or "parquet" and return its path.

    Units and UCDs travel in the metadata: TUNITn/TUCDn in FITS, unit and ucd attributes in
    VOTable, field metadata in Parquet (CSV has only the column names).
    """
    columns = catalog_rows(n_rows, seed, ra_range, dec_range)
    path = Path(path)
    if format == "fits":
        cols = [fits.Column(name=name, unit=unit or None, array=columns[name],
                            format={"int64": "K", "float64": "D", "float32": "E"}[
                                str(columns[name].dtype)])
                for name, unit, _ucd, _doc in CATALOG_COLUMNS]
        table = fits.BinTableHDU.from_columns(cols, name="CATALOG")
        for i, (_name, _unit, ucd, doc) in enumerate(CATALOG_COLUMNS, start=1):
            table.header[f"TUCD{i}"] = ucd
            table.header[f"TCOMM{i}"] = doc
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)
    elif format == "csv":
        with open(path, "w", encoding="ascii") as out:
            out.write(",".join(name for name, *_ in CATALOG_COLUMNS) + "\n")
            for i in range(n_rows):
                out.write(f"{columns['source_id'][i]},{columns['ra'][i]:.8f},"
                          f"{columns['dec'][i]:.8f},{columns['gmag'][i]:.4f},"
                          f"{columns['rmag'][i]:.4f},{columns['gmag_err'][i]:.4f},"
                          f"{columns['parallax'][i]:.4f}\n")
    elif format == "votable":
        from astropy.io.votable.tree import Field, Resource, TableElement, VOTableFile

        votable = VOTableFile()
        resource = Resource()
        votable.resources.append(resource)
        table = TableElement(votable, name="catalog")
        resource.tables.append(table)
        datatypes = {"int64": "long", "float64": "double", "float32": "float"}
        for name, unit, ucd, doc in CATALOG_COLUMNS:
            fld = Field(votable, name=name, datatype=datatypes[str(columns[name].dtype)],
                        unit=unit or None, ucd=ucd)
            fld.description = doc
            table.fields.append(fld)
        table.create_arrays(n_rows)
        for name, *_ in CATALOG_COLUMNS:
            table.array[name] = columns[name]
        votable.to_xml(str(path))
    elif format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = [pa.field(name, pa.from_numpy_dtype(columns[name].dtype),
                           metadata={"unit": unit, "ucd": ucd, "description": doc})
                  for name, unit, ucd, doc in CATALOG_COLUMNS]
        schema = pa.schema(fields)
        table = pa.Table.from_arrays([pa.array(columns[f.name]) for f in fields], schema=schema)
        pq.write_table(table, path)
    else:
        raise ValueError(f"format must be fits, csv, votable or parquet, not {format!r}")
    return path


def write_bad_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Write the broken inputs ingest must handle, one of each, and return their paths.

    Rejected: truncated, not_fits, no_date_obs, bad_date_obs, corrupt_header, empty (a header
    without data). Accepted with a warning: no_wcs, nonsense_wcs (a singular CD matrix); both
    keep the RA/DEC pointing keywords.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    when = datetime(2024, 3, 1, 20, 15, 3, tzinfo=UTC)
    common = {"ra": 202.4696, "dec": 47.1952, "date_obs": when, "shape": (64, 64),
              "n_stars": 10}
    paths: dict[str, Path] = {}

    paths["truncated"] = write_image(folder / "truncated.fits", **common)
    size = paths["truncated"].stat().st_size
    with open(paths["truncated"], "r+b") as f:
        f.truncate(size - 2 * 2880)   # the data stop half-way

    paths["not_fits"] = folder / "not_fits.fits"
    paths["not_fits"].write_text("Observing log, night of 2024-03-01.\nNot a FITS file.\n",
                                 encoding="ascii")

    paths["no_wcs"] = write_image(folder / "no_wcs.fits", **common,
                                  extra_header=dict.fromkeys(WCS_KEYWORDS))
    paths["nonsense_wcs"] = write_image(folder / "nonsense_wcs.fits", **common,
                                        extra_header={"CD1_1": 0.0, "CD2_2": 0.0})
    paths["no_date_obs"] = write_image(folder / "no_date_obs.fits", **common,
                                       extra_header={"DATE-OBS": None})
    paths["bad_date_obs"] = write_image(folder / "bad_date_obs.fits", **common,
                                        extra_header={"DATE-OBS": "the night of the storm"})

    paths["corrupt_header"] = write_image(folder / "corrupt_header.fits", **common)
    raw = bytearray(paths["corrupt_header"].read_bytes())
    garbage = np.random.default_rng(7).integers(128, 256, 1200, dtype=np.uint8).tobytes()
    raw[400:1600] = garbage           # a disk error over the middle of the header
    paths["corrupt_header"].write_bytes(bytes(raw))

    header = image_header(ra=202.4696, dec=47.1952, date_obs=when, exptime=60.0,
                          telescope="Xinglong 2.16m", instrument="BFOSC", filter="V",
                          object="M 51", propid=None, shape=(64, 64), pixscale_arcsec=0.5)
    paths["empty"] = folder / "empty.fits"
    fits.PrimaryHDU(header=header).writeto(paths["empty"], overwrite=True)
    return paths
