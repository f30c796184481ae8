"""Synthetic observations (data/archive/synthetic.py): images that look like a CCD's, spectra,
catalogs with units and UCDs in four formats, the broken files, and determinism by seed."""

from __future__ import annotations

import csv
import warnings
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits as afits
from astropy.io.votable import parse_single_table
from astropy.wcs import WCS

from astrocloud.data.archive import synthetic

WHEN = datetime(2024, 3, 1, 20, 15, 3, tzinfo=UTC)
COLUMNS = ["source_id", "ra", "dec", "gmag", "rmag", "gmag_err", "parallax"]


def write(path, **kwargs):
    kwargs.setdefault("ra", 150.1)
    kwargs.setdefault("dec", 2.2)
    kwargs.setdefault("date_obs", WHEN)
    return synthetic.write_image(path, **kwargs)


def quiet_wcs(header) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # astropy notes it filled in MJD-OBS
        return WCS(header)


def test_an_image_is_the_same_for_the_same_seed(tmp_path):
    assert write(tmp_path / "a.fits", seed=4).read_bytes() == \
        write(tmp_path / "b.fits", seed=4).read_bytes()


def test_another_seed_gives_another_image(tmp_path):
    assert write(tmp_path / "a.fits", seed=4).read_bytes() != \
        write(tmp_path / "b.fits", seed=5).read_bytes()


def test_an_image_is_unsigned_16_bit_counts_of_the_requested_shape(tmp_path):
    data = afits.getdata(write(tmp_path / "a.fits", shape=(100, 140)))
    assert (data.dtype, data.shape) == (np.dtype("uint16"), (100, 140))


def test_an_image_carries_the_observatory_keywords(tmp_path):
    header = afits.getheader(write(tmp_path / "a.fits", propid="2024B-003", filter="R",
                                   object="NGC 2403", exptime=300))
    assert {k: header[k] for k in ("TELESCOP", "INSTRUME", "FILTER", "OBJECT", "DATE-OBS",
                                   "EXPTIME", "PROPID", "RA", "DEC", "SATURATE", "GAIN")} == {
        "TELESCOP": "Xinglong 2.16m", "INSTRUME": "BFOSC", "FILTER": "R",
        "OBJECT": "NGC 2403", "DATE-OBS": "2024-03-01T20:15:03.000", "EXPTIME": 300.0,
        "PROPID": "2024B-003", "RA": "10:00:24.00", "DEC": "+02:12:00.0", "SATURATE": 65535,
        "GAIN": 1.0}
    assert header["OBSERVER"]


def test_an_aware_date_in_another_zone_is_written_in_utc(tmp_path):
    beijing = WHEN.astimezone(timezone(timedelta(hours=8)))
    assert afits.getheader(write(tmp_path / "a.fits", date_obs=beijing))["DATE-OBS"] == \
        "2024-03-01T20:15:03.000"


def test_the_wcs_puts_the_requested_position_at_the_centre(tmp_path):
    wcs = quiet_wcs(afits.getheader(write(tmp_path / "a.fits", shape=(200, 300))))
    ra, dec = wcs.all_pix2world([[149.5, 99.5]], 0)[0]
    assert (ra, dec) == (pytest.approx(150.1), pytest.approx(2.2))


def test_the_wcs_has_the_requested_pixel_scale_with_east_left(tmp_path):
    header = afits.getheader(write(tmp_path / "a.fits", pixscale_arcsec=0.8))
    assert (header["CD1_1"] * 3600, header["CD2_2"] * 3600) == (pytest.approx(-0.8),
                                                                pytest.approx(0.8))


def test_the_sky_has_poisson_and_read_noise(tmp_path):
    data = afits.getdata(write(tmp_path / "a.fits", n_stars=0, sky=400.0)).astype(float)
    assert np.median(data) == pytest.approx(400, abs=2)
    assert data.std() == pytest.approx(np.sqrt(400 + synthetic.READ_NOISE ** 2), rel=0.05)


def test_stars_rise_above_the_sky(tmp_path):
    data = afits.getdata(write(tmp_path / "a.fits", n_stars=30)).astype(float)
    assert data.max() > 200 + 20 * np.sqrt(200)


def test_saturated_stars_reach_the_saturation_level_and_bleed(tmp_path):
    data = afits.getdata(write(tmp_path / "a.fits", saturate_some=True))
    saturated = data == synthetic.SATURATION
    assert saturated.mean() > 0.01
    # A bleed trail: a column with a long run of saturated pixels.
    assert saturated.sum(axis=0).max() > 20


def test_without_saturate_some_nothing_saturates(tmp_path):
    assert afits.getdata(write(tmp_path / "a.fits")).max() < synthetic.SATURATION


def test_gzip_compression_writes_a_gzip_fits_gz(tmp_path):
    path = write(tmp_path / "a.fits", compress="gzip")
    assert path.name == "a.fits.gz"
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert afits.getdata(path).shape == (256, 256)


def test_rice_compression_writes_a_tile_compressed_fz(tmp_path):
    path = write(tmp_path / "a.fits", compress="rice")
    assert path.name == "a.fits.fz"
    with afits.open(path, disable_image_compression=True) as hdul:
        assert hdul[1].header["ZCMPTYPE"] == "RICE_1"
    with afits.open(path) as hdul:
        assert isinstance(hdul[1], afits.CompImageHDU)
        assert np.array_equal(hdul[1].data, afits.getdata(write(tmp_path / "b.fits")))


def test_an_unknown_compression_is_refused(tmp_path):
    with pytest.raises(ValueError, match="compress"):
        write(tmp_path / "a.fits", compress="bzip2")


def test_extra_header_cards_override_and_remove(tmp_path):
    header = afits.getheader(write(tmp_path / "a.fits",
                                   extra_header={"OBJECT": "Other", "GAIN": None, "X": 1}))
    assert (header["OBJECT"], "GAIN" in header, header["X"]) == ("Other", False, 1)


def test_a_spectrum_is_one_dimensional_with_a_spectral_wcs(tmp_path):
    path = synthetic.write_spectrum(tmp_path / "s.fits", ra=1, dec=2, date_obs=WHEN, n=1000,
                                    wave_range_nm=(400, 800))
    header = afits.getheader(path)
    assert afits.getdata(path).shape == (1000,)
    assert (header["CTYPE1"], header["CUNIT1"], header["CRVAL1"]) == ("WAVE", "Angstrom", 4000)
    assert header["CRVAL1"] + 999 * header["CDELT1"] == pytest.approx(8000)


def test_a_spectrum_has_the_requested_signal_to_noise(tmp_path):
    path = synthetic.write_spectrum(tmp_path / "s.fits", ra=1, dec=2, date_obs=WHEN, snr=40)
    flux = afits.getdata(path).astype(float)
    wave = np.linspace(370, 900, flux.size)
    clean = synthetic.spectrum_flux(wave)
    assert np.median(clean / np.abs(flux - clean) * 0.6745) == pytest.approx(40, rel=0.1)


def test_a_spectrum_has_absorption_lines(tmp_path):
    path = synthetic.write_spectrum(tmp_path / "s.fits", ra=1, dec=2, date_obs=WHEN, snr=200)
    flux = afits.getdata(path).astype(float)
    wave = np.linspace(370, 900, flux.size)
    h_alpha = flux[np.argmin(np.abs(wave - 656.3))]
    nearby = np.median(flux[(wave > 640) & (wave < 650)])
    assert h_alpha < 0.7 * nearby


def test_a_spectrum_can_carry_an_error_extension(tmp_path):
    path = synthetic.write_spectrum(tmp_path / "s.fits", ra=1, dec=2, date_obs=WHEN, snr=25,
                                    error_hdu=True)
    flux, error = afits.getdata(path, 0), afits.getdata(path, "ERROR")
    assert np.median(flux / error) == pytest.approx(25, rel=0.05)


def test_a_spectrum_is_the_same_for_the_same_seed(tmp_path):
    a = synthetic.write_spectrum(tmp_path / "a.fits", ra=1, dec=2, date_obs=WHEN, seed=2)
    b = synthetic.write_spectrum(tmp_path / "b.fits", ra=1, dec=2, date_obs=WHEN, seed=2)
    assert a.read_bytes() == b.read_bytes()


def test_a_fits_catalog_has_units_and_ucds(tmp_path):
    path = synthetic.write_catalog(tmp_path / "c.fits", n_rows=50)
    with afits.open(path) as hdul:
        table = hdul[1]
        assert table.columns.names == COLUMNS
        assert (table.columns["ra"].unit, table.columns["parallax"].unit) == ("deg", "mas")
        assert table.header["TUCD2"] == "pos.eq.ra;meta.main"
        assert len(table.data) == 50


def test_a_votable_catalog_has_units_and_ucds(tmp_path):
    path = synthetic.write_catalog(tmp_path / "c.vot", n_rows=30, format="votable")
    table = parse_single_table(str(path))
    assert [f.name for f in table.fields] == COLUMNS
    dec = table.get_field_by_id_or_name("dec")
    assert (str(dec.unit), dec.ucd) == ("deg", "pos.eq.dec;meta.main")
    assert len(table.array) == 30


def test_a_parquet_catalog_has_units_and_ucds(tmp_path):
    path = synthetic.write_catalog(tmp_path / "c.parquet", n_rows=40, format="parquet")
    table = pq.read_table(path)
    assert table.column_names == COLUMNS
    meta = table.schema.field("gmag").metadata
    assert (meta[b"unit"], meta[b"ucd"]) == (b"mag", b"phot.mag;em.opt.B")
    assert table.num_rows == 40


def test_a_csv_catalog_has_a_header_row_and_the_rows(tmp_path):
    path = synthetic.write_catalog(tmp_path / "c.csv", n_rows=25, format="csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == COLUMNS
    assert len(rows) == 26


def test_a_catalog_stays_within_its_sky_ranges(tmp_path):
    path = synthetic.write_catalog(tmp_path / "c.fits", n_rows=500, ra_range=(10, 20),
                                   dec_range=(-5, 5))
    data = afits.getdata(path, 1)
    assert data["ra"].min() >= 10 and data["ra"].max() <= 20
    assert data["dec"].min() >= -5 and data["dec"].max() <= 5


def test_a_catalog_is_the_same_for_the_same_seed(tmp_path):
    a = synthetic.write_catalog(tmp_path / "a.csv", n_rows=100, seed=9, format="csv")
    b = synthetic.write_catalog(tmp_path / "b.csv", n_rows=100, seed=9, format="csv")
    assert a.read_bytes() == b.read_bytes()


def test_an_unknown_catalog_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="format"):
        synthetic.write_catalog(tmp_path / "c.xlsx", n_rows=1, format="xlsx")


def test_the_bad_files_are_all_written(tmp_path):
    paths = synthetic.write_bad_files(tmp_path / "bad")
    assert set(paths) == {"truncated", "not_fits", "no_wcs", "nonsense_wcs", "no_date_obs",
                          "bad_date_obs", "corrupt_header", "empty"}
    assert all(p.is_file() and p.parent == tmp_path / "bad" for p in paths.values())


def test_the_truncated_file_stops_inside_its_data(tmp_path):
    path = synthetic.write_bad_files(tmp_path)["truncated"]
    raw = path.read_bytes()
    header_end = -(-(raw.index(b"END" + b" " * 77) + 80) // 2880) * 2880
    assert header_end < len(raw) < header_end + 64 * 64 * 2
