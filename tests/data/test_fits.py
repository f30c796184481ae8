"""Reading FITS files into archive metadata (data/archive/fits.py): every field of the summary
on synthetic images and spectra, the compressed forms, the broken files ingest must quarantine
or warn about, and the per-telescope keyword mapping."""

from __future__ import annotations

import gzip
import json
import math
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from astropy.io import fits as afits
from astropy.wcs import WCS

from astrocloud.data.archive import synthetic
from astrocloud.data.archive.fits import (
    DEFAULT_MAPPING,
    FitsRejected,
    band_of,
    datetime_to_mjd,
    enclosing_diameter,
    header_text,
    merge_mapping,
    read_fits,
)

RA, DEC = 202.4696, 47.1952
WHEN = datetime(2024, 3, 1, 20, 15, 3, tzinfo=UTC)
PIXSCALE = 0.5          # arcsec
SHAPE = (256, 256)


def angular_distance(ra1, dec1, ra2, dec2) -> float:
    """Degrees between two positions (haversine)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(math.sqrt(h)))


def signed_area(corners) -> float:
    """Positive when the corners run counter-clockwise on the sky (east to the left)."""
    ra0 = corners[0][0]
    dec0 = sum(c[1] for c in corners) / len(corners)
    pts = [(-(ra - ra0) * math.cos(math.radians(dec0)), dec) for ra, dec in corners]
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fits")


@pytest.fixture(scope="module")
def image(folder):
    return synthetic.write_image(folder / "m51.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 exptime=120.0, propid="2024A-017", shape=SHAPE,
                                 pixscale_arcsec=PIXSCALE)


@pytest.fixture(scope="module")
def summary(image):
    return read_fits(image)


@pytest.fixture(scope="module")
def spectrum(folder):
    return synthetic.write_spectrum(folder / "star.fits", ra=10.5, dec=41.25, date_obs=WHEN,
                                    wave_range_nm=(370, 900), n=2000)


@pytest.fixture(scope="module")
def bad(folder):
    return synthetic.write_bad_files(folder / "bad")


# ---- images ------------------------------------------------------------------------------------

def test_an_image_is_kind_image_in_the_primary_hdu_with_its_shape(summary):
    assert (summary.kind, summary.hdu, summary.shape) == ("image", 0, SHAPE)


def test_the_wcs_centre_is_within_a_pixel_of_the_requested_position(summary):
    assert angular_distance(summary.s_ra, summary.s_dec, RA, DEC) * 3600 < PIXSCALE


def test_the_footprint_corners_are_the_outer_pixel_edges(summary, image):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # astropy notes it filled in MJD-OBS
        wcs = WCS(afits.getheader(image))
    ny, nx = SHAPE
    edges = [(-0.5, -0.5), (nx - 0.5, -0.5), (nx - 0.5, ny - 0.5), (-0.5, ny - 0.5)]
    expected = {tuple(np.round(wcs.all_pix2world([e], 0)[0], 6)) for e in edges}
    assert {tuple(np.round(c, 6)) for c in summary.corners} == expected


def test_each_corner_is_half_a_diagonal_from_the_centre(summary):
    half_diagonal = math.hypot(*SHAPE) / 2 * PIXSCALE / 3600
    for ra, dec in summary.corners:
        assert angular_distance(ra, dec, RA, DEC) == pytest.approx(half_diagonal, rel=1e-3)


def test_s_fov_is_the_diameter_of_the_circle_around_the_field(summary):
    assert summary.s_fov == pytest.approx(math.hypot(*SHAPE) * PIXSCALE / 3600, rel=1e-3)


def test_s_region_is_an_icrs_polygon_through_the_corners(summary):
    words = summary.s_region.split()
    assert words[:2] == ["POLYGON", "ICRS"]
    numbers = [float(w) for w in words[2:]]
    assert numbers == pytest.approx([v for corner in summary.corners for v in corner], abs=1e-6)


def test_the_footprint_runs_counter_clockwise_on_the_sky(summary):
    assert signed_area(summary.corners) > 0


def test_a_mirrored_image_still_gets_a_counter_clockwise_footprint(folder):
    scale = PIXSCALE / 3600
    path = synthetic.write_image(folder / "mirrored.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"CD1_1": scale})
    assert signed_area(read_fits(path).corners) > 0


def test_the_pixel_scale_is_the_spatial_resolution_without_a_seeing_keyword(summary):
    assert summary.s_resolution == pytest.approx(PIXSCALE)


def test_a_seeing_keyword_is_the_spatial_resolution(folder):
    path = synthetic.write_image(folder / "seeing.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"SEEING": 1.8})
    assert read_fits(path).s_resolution == pytest.approx(1.8)


def test_the_v_band_covers_502_to_588_nm(summary):
    assert (summary.em_min, summary.em_max) == (pytest.approx(502.5e-9),
                                                pytest.approx(587.5e-9))


def test_an_image_resolving_power_is_the_filter_centre_over_its_width(summary):
    assert summary.em_res_power == pytest.approx(545 / 85)


@pytest.mark.parametrize(("name", "band"), [
    ("V", "V"), ("Johnson V", "V"), ("Bessell-R", "R"), ("V_Bes 5", "V"), ("B", "B"),
    ("SDSS r", "r"), ("r'", "r"), ("sdss_g", "g"), ("g", "g"), ("i", "i"), ("z", "z"),
    ("u", "u"), ("U", "U"), ("Cousins I", "I"), ("J", "J"), ("H", "H"), ("Ks", "Ks"),
    ("K", "Ks"), ("Clear", "clear"), ("none", "clear"), ("", "clear"), ("Halpha", None),
    ("L", None),
])
def test_filter_names_map_to_common_bands(name, band):
    assert band_of(name) == band


def test_a_clear_filter_has_no_spectral_range(folder):
    path = synthetic.write_image(folder / "clear.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 filter="Clear")
    got = read_fits(path)
    assert (got.em_min, got.em_max, got.warnings) == (None, None, [])


def test_an_unknown_filter_is_a_warning_and_no_spectral_range(folder):
    path = synthetic.write_image(folder / "halpha.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 filter="Halpha 6563/50")
    got = read_fits(path)
    assert got.em_min is None
    assert got.warnings == ["The filter Halpha 6563/50 is not one of the common bands, so the "
                            "spectral range is unknown."]


def test_t_min_is_date_obs_and_t_max_adds_the_exposure_time(summary):
    assert summary.t_min == pytest.approx(datetime_to_mjd(WHEN), abs=1e-9)
    assert (summary.t_max - summary.t_min) * 86400 == pytest.approx(120.0, abs=1e-3)
    assert summary.t_exptime == 120.0


def test_t_min_is_the_mjd_of_date_obs(summary):
    # 2024-03-01 00:00 UTC is MJD 60370.
    assert summary.t_min == pytest.approx(60370 + (20 * 3600 + 15 * 60 + 3) / 86400, abs=1e-9)


def test_date_obs_is_an_aware_utc_datetime(summary):
    assert summary.date_obs == WHEN
    assert summary.date_obs.tzinfo is not None


def test_date_end_sets_t_max(folder):
    end = WHEN + timedelta(seconds=150)
    path = synthetic.write_image(folder / "end.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"DATE-END": end.strftime("%Y-%m-%dT%H:%M:%S")})
    got = read_fits(path)
    assert (got.t_max - got.t_min) * 86400 == pytest.approx(150.0, abs=1e-3)


def test_mjd_obs_stands_in_for_a_missing_date_obs(folder):
    path = synthetic.write_image(folder / "mjd.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"DATE-OBS": None, "MJD-OBS": 60370.5})
    assert read_fits(path).date_obs == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_a_date_without_time_takes_the_time_from_time_obs(folder):
    path = synthetic.write_image(folder / "timeobs.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"DATE-OBS": "2024-03-01", "TIME-OBS": "20:15:03"})
    assert read_fits(path).date_obs == WHEN


def test_a_date_without_any_time_is_midnight_with_a_warning(folder):
    path = synthetic.write_image(folder / "dateonly.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"DATE-OBS": "2024-03-01"})
    got = read_fits(path)
    assert got.date_obs == datetime(2024, 3, 1, tzinfo=UTC)
    assert got.warnings == ["DATE-OBS has no time of day; midnight UTC is assumed."]


def test_a_tt_date_is_converted_to_utc(folder):
    path = synthetic.write_image(folder / "tt.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"TIMESYS": "TT"})
    # TT - UTC = 32.184 s + 37 leap seconds in 2024.
    assert (WHEN - read_fits(path).date_obs).total_seconds() == pytest.approx(69.184, abs=1e-3)


def test_the_mapped_fields_are_read_and_normalised(summary):
    fields = summary.fields
    assert {k: fields[k] for k in ("target_name", "instrument_name", "facility_name",
                                   "programme", "filter", "observer", "exptime")} == {
        "target_name": "M 51", "instrument_name": "BFOSC", "facility_name": "Xinglong 2.16m",
        "programme": "2024A-017", "filter": "V", "observer": "A. Synthetic", "exptime": 120.0}


def test_sexagesimal_pointing_keywords_become_degrees(summary):
    assert summary.fields["ra"] == pytest.approx(RA, abs=1e-4)
    assert summary.fields["dec"] == pytest.approx(DEC, abs=1e-4)


def test_fields_missing_from_the_header_are_none(summary):
    assert (summary.fields["obs_id"], summary.fields["dataproduct_type"]) == (None, None)


def test_a_raw_image_defaults_to_calibration_level_1(summary):
    assert (summary.dataproduct_type, summary.calib_level) == ("image", 1)


def test_header_keywords_override_the_product_type_and_calibration_level(folder):
    path = synthetic.write_image(folder / "reduced.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"DPTYPE": "cube", "CALIBLEV": 2})
    got = read_fits(path)
    assert (got.dataproduct_type, got.calib_level) == ("cube", 2)


def test_an_image_has_an_optical_flux_ucd(summary):
    assert summary.o_ucd == "phot.flux.density;em.opt"


def test_the_header_is_json_safe_and_holds_every_valued_card(summary):
    assert json.loads(json.dumps(summary.header)) == summary.header
    assert summary.header["TELESCOP"] == "Xinglong 2.16m"
    assert summary.header["NAXIS1"] == 256


def test_a_sound_image_has_no_warnings(summary):
    assert summary.warnings == []


def test_only_the_headers_are_read_even_for_a_huge_image(folder):
    # A sparse 4 GB file: reading its data would take seconds and gigabytes.
    header = afits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = 32768
    header["NAXIS2"] = 32768
    header["DATE-OBS"] = "2024-03-01T20:15:03"
    path = folder / "huge.fits"
    raw = header.tostring().encode("ascii")
    with open(path, "wb") as out:
        out.write(raw)
        out.truncate(len(raw) + 32768 * 32768 * 4)
    assert read_fits(path).shape == (32768, 32768)


# ---- compressed files --------------------------------------------------------------------------

def test_a_fits_gz_file_is_read(folder):
    path = synthetic.write_image(folder / "gz.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 compress="gzip")
    got = read_fits(path)
    assert path.name == "gz.fits.gz"
    assert (got.kind, got.compressed, got.shape) == ("image", "gzip", SHAPE)
    assert angular_distance(got.s_ra, got.s_dec, RA, DEC) * 3600 < PIXSCALE


def test_gzip_is_recognised_by_its_magic_bytes_not_its_name(folder, image):
    path = folder / "disguised.fits"
    path.write_bytes(gzip.compress(image.read_bytes()))
    assert read_fits(path).compressed == "gzip"


def test_a_truncated_gzip_file_is_rejected_as_truncated(folder, image):
    path = folder / "cut.fits.gz"
    path.write_bytes(gzip.compress(image.read_bytes())[:20000])
    with pytest.raises(FitsRejected) as caught:
        read_fits(path)
    assert caught.value.code == "truncated"


def test_a_tile_compressed_fz_file_uses_the_compressed_image(folder):
    path = synthetic.write_image(folder / "rice.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 compress="rice")
    got = read_fits(path)
    assert path.name == "rice.fits.fz"
    assert (got.kind, got.hdu, got.shape, got.compressed) == ("image", 1, SHAPE, "tile")
    assert angular_distance(got.s_ra, got.s_dec, RA, DEC) * 3600 < PIXSCALE
    assert got.s_fov == pytest.approx(math.hypot(*SHAPE) * PIXSCALE / 3600, rel=1e-3)


def test_a_tile_compressed_header_shows_the_image_keywords(folder):
    path = synthetic.write_image(folder / "rice2.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 compress="rice")
    header = read_fits(path).header
    assert (header["NAXIS1"], header["BITPIX"]) == (256, 16)
    assert "ZIMAGE" not in header and "TFORM1" not in header


# ---- other layouts -----------------------------------------------------------------------------

def test_an_image_in_an_extension_is_the_science_hdu(folder, image):
    data = afits.getdata(image)
    primary = afits.PrimaryHDU()
    primary.header["DATE-OBS"] = "2024-03-01T20:15:03"
    primary.header["TELESCOP"] = "Xinglong 2.16m"
    ext = afits.ImageHDU(data=data, header=afits.getheader(image), name="SCI")
    path = folder / "mef.fits"
    afits.HDUList([primary, ext]).writeto(path, overwrite=True)
    got = read_fits(path)
    assert (got.hdu, got.kind, got.fields["facility_name"]) == (1, "image", "Xinglong 2.16m")
    assert angular_distance(got.s_ra, got.s_dec, RA, DEC) * 3600 < PIXSCALE


def test_a_three_dimensional_image_is_a_cube(folder):
    header = synthetic.image_header(ra=RA, dec=DEC, date_obs=WHEN, exptime=60, telescope="T",
                                    instrument="IFU", filter="V", object="x", propid=None,
                                    shape=(32, 32), pixscale_arcsec=0.5)
    path = folder / "cube.fits"
    afits.PrimaryHDU(np.zeros((5, 32, 32), np.float32), header=header).writeto(path)
    got = read_fits(path)
    assert (got.kind, got.shape, got.dataproduct_type) == ("cube", (5, 32, 32), "cube")
    assert angular_distance(got.s_ra, got.s_dec, RA, DEC) * 3600 < PIXSCALE


def test_a_cube_with_a_wavelength_axis_covers_its_range(folder):
    header = synthetic.image_header(ra=RA, dec=DEC, date_obs=WHEN, exptime=60, telescope="T",
                                    instrument="IFU", filter="V", object="x", propid=None,
                                    shape=(32, 32), pixscale_arcsec=0.5)
    header.update({"CTYPE3": "WAVE", "CUNIT3": "nm", "CRVAL3": 500.0, "CDELT3": 2.0,
                   "CRPIX3": 1.0})
    path = folder / "ifu.fits"
    afits.PrimaryHDU(np.zeros((10, 32, 32), np.float32), header=header).writeto(path)
    got = read_fits(path)
    assert (got.em_min, got.em_max) == (pytest.approx(499e-9), pytest.approx(519e-9))
    assert got.o_ucd == "phot.flux.density;em.wl"


def test_a_galactic_wcs_is_converted_to_icrs(folder):
    # The galactic centre: l = 0, b = 0 is RA 266.405, Dec -28.936 (ICRS).
    path = synthetic.write_image(folder / "gal.fits", ra=0.0, dec=0.0, date_obs=WHEN,
                                 extra_header={"CTYPE1": "GLON-TAN", "CTYPE2": "GLAT-TAN"})
    got = read_fits(path)
    assert angular_distance(got.s_ra, got.s_dec, 266.40499, -28.93617) < 1e-3


def test_a_table_with_a_date_is_kind_table(folder):
    path = synthetic.write_catalog(folder / "cat.fits", n_rows=20)
    with afits.open(path, mode="update") as hdul:
        hdul[0].header["DATE-OBS"] = "2024-03-01"
    got = read_fits(path)
    assert (got.kind, got.hdu, got.shape, got.dataproduct_type) == \
        ("table", 1, (20,), "measurements")


# ---- spectra -----------------------------------------------------------------------------------

def test_a_one_dimensional_image_is_a_spectrum(spectrum):
    got = read_fits(spectrum)
    assert (got.kind, got.shape, got.dataproduct_type) == ("spectrum", (2000,), "spectrum")


def test_a_spectrum_covers_its_wavelength_range_in_metres(spectrum):
    got = read_fits(spectrum)
    step = (900 - 370) / 1999 * 1e-9
    assert got.em_min == pytest.approx(370e-9 - step / 2)
    assert got.em_max == pytest.approx(900e-9 + step / 2)


def test_a_spectrum_takes_its_position_from_the_pointing_keywords(spectrum):
    got = read_fits(spectrum)
    assert (got.s_ra, got.s_dec, got.s_region) == (10.5, 41.25, None)


def test_a_spectrum_has_a_flux_per_wavelength_ucd(spectrum):
    assert read_fits(spectrum).o_ucd == "phot.flux.density;em.wl"


def test_a_spectrum_without_a_stated_resolving_power_assumes_nyquist_sampling(spectrum):
    got = read_fits(spectrum)
    step = (got.em_max - got.em_min) / 2000
    assert got.em_res_power == pytest.approx((got.em_min + got.em_max) / 2 / (2 * step))


def test_a_stated_resolving_power_is_used(folder):
    path = synthetic.write_spectrum(folder / "res.fits", ra=1, dec=2, date_obs=WHEN,
                                    extra_header={"SPEC_RES": 1800.0})
    assert read_fits(path).em_res_power == 1800.0


def test_a_wavelength_axis_in_nm_is_scaled_to_metres(folder):
    path = synthetic.write_spectrum(folder / "nm.fits", ra=1, dec=2, date_obs=WHEN, n=531,
                                    extra_header={"CUNIT1": "nm", "CRVAL1": 370.0,
                                                  "CDELT1": 1.0})
    got = read_fits(path)
    assert (got.em_min, got.em_max) == (pytest.approx(369.5e-9), pytest.approx(900.5e-9))


def test_a_log_linear_axis_is_read(folder):
    # LAMOST style: CRVAL1 and CD1_1 in log10(Angstrom), DC-FLAG = 1.
    path = synthetic.write_spectrum(folder / "loglin.fits", ra=1, dec=2, date_obs=WHEN, n=3000,
                                    extra_header={"CTYPE1": None, "CUNIT1": None,
                                                  "CRVAL1": 3.5682, "CDELT1": 1e-4,
                                                  "DC-FLAG": 1})
    got = read_fits(path)
    assert got.em_min == pytest.approx(10 ** (3.5682 - 0.5e-4) * 1e-10)
    assert got.em_max == pytest.approx(10 ** (3.5682 + 2999.5e-4) * 1e-10)


def test_a_multi_row_spectrum_image_is_a_spectrum(folder):
    # Old LAMOST layout: rows of flux, inverse variance, wavelength, masks along axis 1.
    header = afits.Header({"DATE-OBS": "2024-03-01T20:15:03", "CRVAL1": 3.5682,
                           "CD1_1": 1e-4, "CRPIX1": 1.0, "DC-FLAG": 1})
    path = folder / "multirow.fits"
    afits.PrimaryHDU(np.ones((5, 3909), np.float32), header=header).writeto(path)
    got = read_fits(path)
    assert (got.kind, got.shape) == ("spectrum", (5, 3909))
    assert got.em_max == pytest.approx(10 ** (3.5682 + 3908.5e-4) * 1e-10)


def test_a_binary_table_with_wavelength_and_flux_columns_is_a_spectrum(folder):
    loglam = np.linspace(3.58, 3.96, 500)
    table = afits.BinTableHDU.from_columns([
        afits.Column(name="flux", format="E", array=np.ones(500)),
        afits.Column(name="loglam", format="E", array=loglam),
        afits.Column(name="ivar", format="E", array=np.full(500, 4.0)),
    ])
    primary = afits.PrimaryHDU()
    primary.header["DATE-OBS"] = "2024-03-01T20:15:03"
    path = folder / "sdss.fits"
    afits.HDUList([primary, table]).writeto(path)
    got = read_fits(path)
    assert (got.kind, got.hdu) == ("spectrum", 1)
    assert got.em_min == pytest.approx(10 ** 3.58 * 1e-10, rel=1e-5)
    assert got.em_max == pytest.approx(10 ** 3.96 * 1e-10, rel=1e-5)


# ---- broken files ------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "code"), [
    ("truncated", "truncated"), ("not_fits", "not-fits"), ("no_date_obs", "no-date-obs"),
    ("bad_date_obs", "bad-date-obs"), ("corrupt_header", "corrupt"), ("empty", "no-data"),
])
def test_broken_files_are_rejected_with_a_code(bad, name, code):
    with pytest.raises(FitsRejected) as caught:
        read_fits(bad[name])
    assert caught.value.code == code


def test_a_rejection_explains_itself_in_a_sentence(bad):
    with pytest.raises(FitsRejected) as caught:
        read_fits(bad["no_date_obs"])
    assert caught.value.message() == ("The header has no DATE-OBS, so the observation time is "
                                      "unknown.")


def test_a_rejection_fills_its_parameters_into_the_reason(bad):
    with pytest.raises(FitsRejected) as caught:
        read_fits(bad["bad_date_obs"])
    assert caught.value.params == {"keyword": "DATE-OBS", "value": "the night of the storm"}
    assert str(caught.value) == caught.value.message() == (
        "The observation date DATE-OBS = the night of the storm cannot be read as a date.")


def test_an_empty_file_is_not_fits(folder):
    path = folder / "zero.fits"
    path.write_bytes(b"")
    with pytest.raises(FitsRejected) as caught:
        read_fits(path)
    assert (caught.value.code, caught.value.message()) == ("not-fits", "The file is empty.")


def test_a_header_with_a_non_numeric_naxis_is_corrupt(folder, image):
    raw = bytearray(image.read_bytes())
    at = raw.index(b"NAXIS1  =")
    raw[at:at + 80] = b"NAXIS1  = 'wide'".ljust(80)
    path = folder / "naxis.fits"
    path.write_bytes(bytes(raw))
    with pytest.raises(FitsRejected) as caught:
        read_fits(path)
    assert caught.value.code == "corrupt"


def test_a_file_without_wcs_warns_and_uses_the_pointing_keywords(bad):
    got = read_fits(bad["no_wcs"])
    assert (got.corners, got.s_region, got.s_fov, got.wcs_status) == (None, None, None,
                                                                       "missing")
    assert got.s_ra == pytest.approx(RA, abs=1e-4)
    assert got.s_dec == pytest.approx(DEC, abs=1e-4)
    assert "No WCS: the footprint is unknown." in got.warnings


def test_a_singular_cd_matrix_is_a_warning_not_a_rejection(bad):
    got = read_fits(bad["nonsense_wcs"])
    assert (got.corners, got.wcs_status) == (None, "invalid")
    assert got.s_ra == pytest.approx(RA, abs=1e-4)
    assert any("singular" in w for w in got.warnings)


@pytest.mark.parametrize("extra", [
    {"CTYPE1": "RA---XYZ", "CTYPE2": "DEC--XYZ"},     # unknown projection
    {"CRVAL2": 100.0},                                  # beyond the pole
    {"CD1_1": 0.0, "CD1_2": 0.0},                       # a zero row
])
def test_nonsensical_wcs_leaves_the_footprint_unknown(folder, extra):
    path = synthetic.write_image(folder / "nonsense.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header=extra)
    got = read_fits(path)
    assert (got.corners, got.wcs_status) == (None, "invalid")
    assert got.s_ra == pytest.approx(RA, abs=1e-4)


def test_a_nan_in_the_wcs_leaves_the_footprint_unknown(folder, image):
    raw = bytearray(image.read_bytes())
    at = raw.index(b"CRVAL1  =")
    raw[at:at + 80] = b"CRVAL1  =                  NAN".ljust(80)
    path = folder / "nan.fits"
    path.write_bytes(bytes(raw))
    got = read_fits(path)
    assert got.corners is None
    assert got.s_ra == pytest.approx(RA, abs=1e-4)


def test_reading_a_nonstandard_header_prints_and_raises_no_warnings(folder, capfd):
    path = synthetic.write_image(folder / "oldstyle.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"RADECSYS": "FK5", "RADESYS": None,
                                               "EPOCH": 2000.0, "EQUINOX": None,
                                               "CUNIT1": "DEG", "CUNIT2": "DEG"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = read_fits(path)
    assert got.corners is not None
    assert capfd.readouterr().err == ""


# ---- mapping and header text -------------------------------------------------------------------

def test_a_telescope_mapping_reads_its_own_keywords(folder):
    path = synthetic.write_image(folder / "prog.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"PROG": "XL-2024-03", "PROPID": None})
    got = read_fits(path, merge_mapping(DEFAULT_MAPPING, {"programme": ["PROG"]}))
    assert got.fields["programme"] == "XL-2024-03"


def test_a_mapping_replaces_the_defaults_of_its_fields_only():
    merged = merge_mapping(DEFAULT_MAPPING, {"programme": "prog", "target_name": ()})
    assert merged["programme"] == ("PROG",)
    assert merged["target_name"] == ()
    assert merged["date_obs"] == DEFAULT_MAPPING["date_obs"]


def test_a_mapping_with_a_non_string_keyword_is_refused():
    with pytest.raises(ValueError, match="programme"):
        merge_mapping(DEFAULT_MAPPING, {"programme": [42]})


def test_a_mapping_can_move_the_observation_date(folder):
    path = synthetic.write_image(folder / "utdate.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 extra_header={"DATE-OBS": None,
                                               "UTSTART": "2024-03-01T20:15:03"})
    assert read_fits(path, {"date_obs": ["UTSTART"]}).date_obs == WHEN


def test_header_text_shows_every_hdu_card_by_card(folder):
    path = synthetic.write_image(folder / "text.fits", ra=RA, dec=DEC, date_obs=WHEN,
                                 compress="rice")
    text = header_text(path)
    assert text.startswith("# HDU 0: PRIMARY\nSIMPLE  =")
    assert "# HDU 1: BINTABLE COMPRESSED_IMAGE (tile-compressed image)" in text
    assert "TELESCOP= 'Xinglong 2.16m'" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_header_text_of_a_non_fits_file_is_refused(bad):
    with pytest.raises(FitsRejected):
        header_text(bad["not_fits"])


def test_the_enclosing_circle_of_a_square_is_its_diagonal():
    corners = [(0.5, -0.5), (-0.5 % 360, -0.5), (-0.5 % 360, 0.5), (0.5, 0.5)]
    assert enclosing_diameter(corners) == pytest.approx(math.sqrt(2), rel=1e-4)
