"""PNG previews and thumbnails (data/archive/previews.py): valid PNGs of the right size for
images, compressed images, cubes and spectra; flat, NaN and big images; orientation."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.io import fits as afits
from PIL import Image

from astrocloud.data.archive import synthetic
from astrocloud.data.archive.fits import FitsRejected, read_fits
from astrocloud.data.archive.previews import (
    image_png,
    make_previews,
    open_hdu,
    read_spectrum,
    spectrum_png,
    thumbnail_png,
)

WHEN = datetime(2024, 3, 1, 20, 15, 3, tzinfo=UTC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png(data: bytes) -> Image.Image:
    assert data.startswith(PNG_MAGIC)
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def write(path, data) -> str:
    afits.PrimaryHDU(np.asarray(data)).writeto(path, overwrite=True)
    return str(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("previews")


@pytest.fixture(scope="module")
def image(folder):
    return synthetic.write_image(folder / "field.fits", ra=10, dec=20, date_obs=WHEN)


@pytest.fixture(scope="module")
def spectrum(folder):
    return synthetic.write_spectrum(folder / "star.fits", ra=10, dec=20, date_obs=WHEN)


def test_an_image_preview_is_an_8_bit_grey_png_of_the_image_size(image):
    picture = png(image_png(image))
    assert (picture.format, picture.mode, picture.size) == ("PNG", "L", (256, 256))


def test_the_longest_side_of_a_preview_is_at_most_the_size(folder):
    path = write(folder / "wide.fits",
                 np.random.default_rng(1).normal(100, 5, (300, 500)).astype(np.float32))
    assert png(image_png(path, size=128)).size == (128, 77)


def test_an_asinh_stretch_gives_a_png_too(image):
    assert png(image_png(image, stretch="asinh")).size == (256, 256)


def test_an_unknown_stretch_is_refused(image):
    with pytest.raises(ValueError, match="stretch"):
        image_png(image, stretch="histeq")


def test_north_is_up_as_stored_with_the_last_fits_row_at_the_top(folder):
    data = np.random.default_rng(2).normal(100, 1, (64, 64)).astype(np.float32)
    data[-4:, :] = 1000.0          # the last FITS rows: the top of the picture
    pixels = np.asarray(png(image_png(write(folder / "top.fits", data))))
    assert pixels[:4].mean() == 255
    assert pixels[-4:].mean() < 255


def test_a_constant_image_is_mid_grey(folder):
    path = write(folder / "flat.fits", np.full((40, 60), 7.0, np.float32))
    pixels = np.asarray(png(image_png(path)))
    assert pixels.shape == (40, 60)
    assert set(np.unique(pixels)) == {128}


def test_nan_pixels_are_black(folder):
    data = np.random.default_rng(3).normal(100, 5, (50, 50)).astype(np.float32)
    data[:10, :] = np.nan          # the bottom ten FITS rows
    pixels = np.asarray(png(image_png(write(folder / "nan.fits", data))))
    assert pixels[-10:].max() == 0


def test_an_all_nan_image_is_a_black_png(folder):
    path = write(folder / "allnan.fits", np.full((30, 30), np.nan, np.float32))
    assert set(np.unique(np.asarray(png(image_png(path))))) == {0}


def test_a_big_image_is_reduced_to_the_preview_size(folder):
    data = np.random.default_rng(4).normal(1000, 10, (4096, 4096)).astype(np.float32)
    path = write(folder / "big.fits", data)
    assert png(image_png(path)).size == (1024, 1024)


def test_a_cube_previews_its_middle_plane(folder):
    cube = np.zeros((3, 32, 32), np.float32)
    cube[1] = np.arange(32, dtype=np.float32)[None, :]     # a gradient only in the middle
    pixels = np.asarray(png(image_png(write(folder / "cube.fits", cube))))
    assert pixels.shape == (32, 32)
    assert pixels[:, 0].mean() < pixels[:, -1].mean()


def test_a_tile_compressed_image_previews(folder):
    path = synthetic.write_image(folder / "rice.fits", ra=10, dec=20, date_obs=WHEN,
                                 compress="rice")
    assert png(image_png(path)).size == (256, 256)


def test_an_image_thumbnail_is_192_pixels(image):
    assert png(thumbnail_png(image)).size == (192, 192)


def test_a_spectrum_plot_has_the_requested_size(spectrum):
    assert png(spectrum_png(spectrum, title="star")).size == (800, 400)


def test_a_spectrum_thumbnail_is_a_small_plot(spectrum):
    picture = png(thumbnail_png(spectrum))
    assert picture.size == (192, 128)


def test_a_spectrum_is_read_with_its_wavelengths_in_metres(spectrum):
    with open_hdu(spectrum) as hdu:
        flux, wave, error, unit = read_spectrum(hdu)
    assert (flux.size, unit, error) == (2000, "adu", None)
    assert (wave[0], wave[-1]) == (pytest.approx(370e-9), pytest.approx(900e-9))


def test_a_table_spectrum_is_read_from_its_columns(folder):
    table = afits.BinTableHDU.from_columns([
        afits.Column(name="WAVE", format="D", unit="nm", array=np.linspace(400, 700, 300)),
        afits.Column(name="FLUX", format="E", array=np.full(300, 5.0)),
        afits.Column(name="ERR", format="E", array=np.full(300, 0.5)),
    ])
    path = folder / "table_spec.fits"
    afits.HDUList([afits.PrimaryHDU(), table]).writeto(path, overwrite=True)
    with open_hdu(path) as hdu:
        flux, wave, error, _unit = read_spectrum(hdu)
    assert (wave[0], wave[-1]) == (pytest.approx(400e-9), pytest.approx(700e-9))
    assert float(np.median(flux / error)) == pytest.approx(10.0)


def test_make_previews_gives_a_preview_and_a_thumbnail_for_an_image(image):
    made = make_previews(image, read_fits(image))
    assert {k: png(v).size for k, v in made.items()} == {"preview": (256, 256),
                                                         "thumbnail": (192, 192)}


def test_make_previews_plots_a_spectrum(spectrum):
    made = make_previews(spectrum, read_fits(spectrum))
    assert {k: png(v).size for k, v in made.items()} == {"preview": (800, 400),
                                                         "thumbnail": (192, 128)}


def test_make_previews_makes_nothing_for_a_plain_table(folder):
    path = synthetic.write_catalog(folder / "cat.fits", n_rows=10)
    with afits.open(path, mode="update") as hdul:
        hdul[0].header["DATE-OBS"] = "2024-03-01"
    assert make_previews(path, read_fits(path)) == {}


def test_a_preview_of_a_file_that_is_not_fits_is_refused(folder):
    path = folder / "notes.fits"
    path.write_text("not FITS\n")
    with pytest.raises(FitsRejected):
        image_png(path)
