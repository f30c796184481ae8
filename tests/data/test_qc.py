"""Automatic quality control (data/archive/qc.py): grades with their reasons for good,
saturated, badly focused, starless and elongated images, for headers and WCS, for spectra;
and the validation of the per-instrument settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.io import fits as afits

from astrocloud.data.archive import synthetic
from astrocloud.data.archive.fits import read_fits
from astrocloud.data.archive.previews import open_hdu
from astrocloud.data.archive.qc import (
    MAX_CUTOUT,
    QCConfig,
    central_cutout,
    der_snr,
    run_qc,
)

WHEN = datetime(2024, 3, 1, 20, 15, 3, tzinfo=UTC)


def qc_of(path, config: QCConfig | None = None):
    return run_qc(path, read_fits(path), config)


def check(result, name: str) -> dict:
    return next(c for c in result.checks if c["name"] == name)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("qc")


@pytest.fixture(scope="module")
def good(folder):
    return qc_of(synthetic.write_image(folder / "good.fits", ra=10, dec=20, date_obs=WHEN))


@pytest.fixture(scope="module")
def saturated(folder):
    return synthetic.write_image(folder / "saturated.fits", ra=10, dec=20, date_obs=WHEN,
                                 saturate_some=True)


# ---- images ------------------------------------------------------------------------------------

def test_a_good_image_passes_every_check(good):
    assert good.grade == "pass"
    assert {c["grade"] for c in good.checks} == {"pass"}
    assert good.reasons() == []


def test_a_good_image_is_measured(good):
    values = good.values
    assert values["background"] == pytest.approx(200, abs=3)
    assert values["noise"] == pytest.approx(np.sqrt(200 + 25), rel=0.1)
    assert values["saturated_fraction"] == 0.0
    assert 40 <= values["n_sources"] <= 60
    assert values["fwhm_arcsec"] == pytest.approx(1.5, rel=0.1)
    assert values["ellipticity"] < 0.1


def test_every_check_has_a_name_grade_value_limit_and_reason(good):
    for item in good.checks:
        assert {"name", "grade", "value", "limit", "reason"} <= set(item)
        assert item["reason"].endswith(".")


def test_the_result_is_json_ready(good):
    assert json.loads(json.dumps({"values": good.values, "checks": good.checks},
                                 allow_nan=False))["values"] == good.values


def test_a_saturated_image_fails_with_the_saturated_fraction_as_reason(saturated):
    result = qc_of(saturated)
    assert result.grade == "fail"
    assert check(result, "saturation")["grade"] == "fail"
    fraction = result.values["saturated_fraction"]
    assert 0.01 < fraction < 0.05
    assert result.reasons() == [
        f"{fraction * 100:.3f}% of the pixels are saturated (at or above 65535.0 ADU from "
        f"SATURATE; limits 0.1% / 1%)."]


def test_a_saturated_image_only_warns_under_looser_limits(saturated):
    result = qc_of(saturated, QCConfig(max_saturated_fraction=(0.005, 0.05)))
    assert (result.grade, check(result, "saturation")["limit"]) == ("warn", 0.005)


def test_saturated_stars_are_left_out_of_the_image_quality(saturated):
    assert qc_of(saturated).values["fwhm_arcsec"] == pytest.approx(1.5, rel=0.1)


def test_a_configured_saturation_level_wins_over_the_keyword(folder):
    path = synthetic.write_image(folder / "lowsat.fits", ra=10, dec=20, date_obs=WHEN)
    result = qc_of(path, QCConfig(saturation=150.0))
    assert result.values["saturation_level"] == 150.0
    assert check(result, "saturation")["grade"] == "fail"


def test_without_a_saturate_keyword_the_storage_type_sets_the_level(folder):
    path = synthetic.write_image(folder / "nokey.fits", ra=10, dec=20, date_obs=WHEN,
                                 extra_header={"SATURATE": None})
    assert qc_of(path).values["saturation_level"] == 65535.0


def test_a_badly_focused_image_fails_on_fwhm(folder):
    path = synthetic.write_image(folder / "blurred.fits", ra=10, dec=20, date_obs=WHEN,
                                 seeing_arcsec=6.0, n_stars=25)
    result = qc_of(path)
    assert result.grade == "fail"
    assert result.values["fwhm_arcsec"] == pytest.approx(6.0, rel=0.15)
    assert check(result, "fwhm")["grade"] == "fail"
    assert result.reasons()[0].startswith("The median FWHM of ")
    assert "arcsec (limits 2.5 / 4.0 arcsec)." in result.reasons()[0]


def test_a_mediocre_seeing_warns_on_fwhm(folder):
    path = synthetic.write_image(folder / "soft.fits", ra=10, dec=20, date_obs=WHEN,
                                 seeing_arcsec=3.0)
    result = qc_of(path)
    assert (result.grade, check(result, "fwhm")["grade"]) == ("warn", "warn")


def test_an_image_without_stars_fails_on_the_source_count(folder):
    path = synthetic.write_image(folder / "empty_sky.fits", ra=10, dec=20, date_obs=WHEN,
                                 n_stars=0)
    result = qc_of(path)
    assert result.grade == "fail"
    assert result.values["n_sources"] == 0
    assert result.values["fwhm_arcsec"] is None
    assert result.reasons() == ["0 sources were detected above 5.0 sigma (limits 10 / 3)."]


def test_a_sparse_field_warns_on_the_source_count(folder):
    path = synthetic.write_image(folder / "sparse.fits", ra=10, dec=20, date_obs=WHEN,
                                 n_stars=6)
    result = qc_of(path)
    assert check(result, "sources")["grade"] == "warn"


def test_elongated_stars_fail_on_ellipticity(folder):
    path = synthetic.write_image(folder / "trailed.fits", ra=10, dec=20, date_obs=WHEN,
                                 ellipticity=0.5)
    result = qc_of(path)
    assert check(result, "ellipticity")["grade"] == "fail"
    assert result.values["ellipticity"] == pytest.approx(0.5, abs=0.1)


def test_a_tile_compressed_image_is_graded_like_the_plain_one(folder):
    plain = synthetic.write_image(folder / "same.fits", ra=10, dec=20, date_obs=WHEN, seed=3)
    packed = synthetic.write_image(folder / "same2.fits", ra=10, dec=20, date_obs=WHEN,
                                   seed=3, compress="rice")
    assert qc_of(plain).values == qc_of(packed).values


def test_a_constant_image_fails_source_detection(folder):
    path = synthetic.write_image(folder / "flat.fits", ra=10, dec=20, date_obs=WHEN,
                                 n_stars=0)
    with afits.open(path, mode="update") as hdul:
        hdul[0].data[:] = 500
    result = qc_of(path)
    assert check(result, "sources")["grade"] == "fail"


def test_detection_runs_on_a_central_cutout_of_a_big_image(folder):
    path = folder / "wide.fits"
    afits.PrimaryHDU(np.zeros((2100, 2600), np.float32)).writeto(path)
    with open_hdu(path) as hdu:
        data, _level = central_cutout(hdu)
    assert data.shape == (2048, MAX_CUTOUT)


# ---- header and WCS ----------------------------------------------------------------------------

def test_a_missing_required_keyword_fails_the_header_check(folder):
    path = synthetic.write_image(folder / "noobject.fits", ra=10, dec=20, date_obs=WHEN,
                                 extra_header={"OBJECT": None})
    result = qc_of(path)
    assert check(result, "required_keywords")["reason"] == ("Required keywords are missing: "
                                                            "OBJECT.")
    assert result.grade == "fail"


def test_the_required_keywords_follow_the_instrument_config(folder):
    path = synthetic.write_image(folder / "noairmass.fits", ra=10, dec=20, date_obs=WHEN)
    config = QCConfig(required_keywords=("DATE-OBS", "AIRMASS"))
    assert check(qc_of(path, config), "required_keywords")["grade"] == "fail"


def test_a_zero_exposure_time_fails(folder):
    path = synthetic.write_image(folder / "zero.fits", ra=10, dec=20, date_obs=WHEN,
                                 exptime=0.0)
    result = qc_of(path)
    assert check(result, "exptime")["reason"] == ("The exposure time is 0.0 s; it must be "
                                                  "above 0.")


def test_a_date_obs_from_another_keyword_warns(folder):
    path = synthetic.write_image(folder / "mjd.fits", ra=10, dec=20, date_obs=WHEN,
                                 extra_header={"DATE-OBS": None, "MJD-OBS": 60370.5})
    config = QCConfig(required_keywords=("EXPTIME",))
    assert check(qc_of(path, config), "date_obs")["grade"] == "warn"


def test_an_image_without_wcs_warns_and_skips_the_fwhm(folder):
    path = synthetic.write_image(folder / "nowcs.fits", ra=10, dec=20, date_obs=WHEN,
                                 extra_header=dict.fromkeys(synthetic.WCS_KEYWORDS))
    result = qc_of(path)
    assert result.grade == "warn"
    assert result.reasons() == ["The image has no WCS, so its footprint on the sky is "
                                "unknown."]
    assert result.values["fwhm_arcsec"] is None
    assert result.values["fwhm_pixels"] == pytest.approx(3.0, rel=0.1)


def test_a_singular_wcs_warns(folder):
    path = synthetic.write_image(folder / "singular.fits", ra=10, dec=20, date_obs=WHEN,
                                 extra_header={"CD1_1": 0.0, "CD2_2": 0.0})
    result = qc_of(path)
    assert check(result, "wcs")["grade"] == "warn"
    assert "singular" in check(result, "wcs")["reason"]


def test_an_implausible_pixel_scale_warns(folder):
    path = synthetic.write_image(folder / "huge_pixels.fits", ra=10, dec=20, date_obs=WHEN,
                                 pixscale_arcsec=200.0, seeing_arcsec=600.0)
    wcs = check(qc_of(path), "wcs")
    assert wcs["grade"] == "warn"
    assert "outside the plausible range" in wcs["reason"]


# ---- spectra -----------------------------------------------------------------------------------

def test_the_snr_of_a_spectrum_is_estimated_from_its_flux(folder):
    path = synthetic.write_spectrum(folder / "s50.fits", ra=1, dec=2, date_obs=WHEN, snr=50)
    result = qc_of(path)
    assert result.values["snr"] == pytest.approx(50, rel=0.15)
    assert result.grade == "pass"
    assert "from DER_SNR" in check(result, "snr")["reason"]


def test_the_snr_of_a_spectrum_comes_from_its_error_extension(folder):
    path = synthetic.write_spectrum(folder / "s50e.fits", ra=1, dec=2, date_obs=WHEN, snr=50,
                                    error_hdu=True)
    result = qc_of(path)
    assert result.values["snr"] == pytest.approx(50, rel=0.05)
    assert "from errors" in check(result, "snr")["reason"]


def test_a_noisy_spectrum_warns(folder):
    path = synthetic.write_spectrum(folder / "s10.fits", ra=1, dec=2, date_obs=WHEN, snr=10)
    assert check(qc_of(path), "snr")["grade"] == "warn"


def test_a_very_noisy_spectrum_fails(folder):
    path = synthetic.write_spectrum(folder / "s2.fits", ra=1, dec=2, date_obs=WHEN, snr=2)
    result = qc_of(path)
    assert (result.grade, check(result, "snr")["grade"]) == ("fail", "fail")


def test_der_snr_of_a_flat_noisy_signal():
    flux = 100 + np.random.default_rng(5).normal(0, 4, 5000)
    assert der_snr(flux) == pytest.approx(25, rel=0.05)


def test_der_snr_of_a_noiseless_signal_is_unknown():
    assert der_snr(np.full(100, 3.0)) is None


# ---- settings ----------------------------------------------------------------------------------

def test_empty_settings_are_the_defaults():
    assert QCConfig.from_dict({}) == QCConfig()


def test_settings_round_trip_through_a_dict():
    config = QCConfig(saturation=60000.0, max_fwhm_arcsec=(2.0, 3.0), min_sources=(20, 5),
                      required_keywords=("DATE-OBS", "AIRMASS"))
    assert QCConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_settings_become_tuples_and_upper_case_keywords():
    config = QCConfig.from_dict({"required_keywords": ["date-obs"], "min_snr": [30, 10]})
    assert (config.required_keywords, config.min_snr) == (("DATE-OBS",), (30.0, 10.0))


@pytest.mark.parametrize(("data", "message"), [
    ({"max_fwhm": [1, 2]}, "Unknown QC setting 'max_fwhm'"),
    ({"max_fwhm_arcsec": [4.0, 2.5]}, "must not be above the failure limit"),
    ({"min_sources": [3, 10]}, "must not be below the failure limit"),
    ({"min_sources": [10.5, 3]}, "must be a whole number"),
    ({"max_ellipticity": 0.3}, "must be a pair of numbers"),
    ({"max_ellipticity": ["a", "b"]}, "must be a number"),
    ({"detect_threshold": True}, "must be a number"),
    ({"detect_threshold": 0}, "must be above 0"),
    ({"saturation": -1}, "must be a number of at least 0"),
    ({"required_keywords": "DATE-OBS"}, "must be a list of keyword names"),
    ({"pixel_scale_arcsec": [5, 1]}, "must be a range"),
])
def test_bad_settings_are_refused_with_a_clear_message(data, message):
    with pytest.raises(ValueError, match=message):
        QCConfig.from_dict(data)


def test_settings_that_are_not_a_table_are_refused():
    with pytest.raises(ValueError, match="table of name = value pairs"):
        QCConfig.from_dict([("saturation", 1)])
