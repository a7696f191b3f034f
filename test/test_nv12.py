"""NV12 conversion: byte-identical to the RDK zoo helper, every input format, geometry."""
import cv2
import numpy as np
import pytest

from edge_classifier.tools.encode import encode_raw
from edge_classifier.frames import Frame, image_to_frame
from edge_classifier.nv12 import (BLACK_U, BLACK_V, BLACK_Y, Geometry, bgr_to_nv12,
                                  color_to_nv12, nv12_size, nv12_to_rgb, to_nv12)
from edge_classifier.tools.rdk_nv12 import rdk_bgr2nv12


@pytest.mark.parametrize('h, w', [(2, 2), (224, 224), (480, 640), (300, 450), (1080, 1920),
                                  (6, 38)])
def test_byte_identical_to_rdk_helper_on_random_images(h, w):
    rng = np.random.default_rng(h * 10000 + w)
    bgr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    assert np.array_equal(bgr_to_nv12(bgr), rdk_bgr2nv12(bgr))


def test_byte_identical_to_rdk_helper_on_real_photos(sample_bgr):
    for name, bgr in sample_bgr.items():
        resized = cv2.resize(bgr, (224, 224))
        assert np.array_equal(bgr_to_nv12(resized), rdk_bgr2nv12(resized)), name
        even = np.ascontiguousarray(bgr[:bgr.shape[0] // 2 * 2, :bgr.shape[1] // 2 * 2])
        assert np.array_equal(bgr_to_nv12(even), rdk_bgr2nv12(even)), name


def test_preallocated_output_is_filled_and_returned():
    bgr = np.full((4, 6, 3), 200, np.uint8)
    out = np.empty(nv12_size(6, 4), np.uint8)
    assert bgr_to_nv12(bgr, out=out) is out
    assert np.array_equal(out, rdk_bgr2nv12(bgr))


def test_rgb_and_alpha_inputs_give_the_same_bytes_as_bgr(sample_bgr):
    bgr = cv2.resize(sample_bgr['astronaut'], (224, 224))
    ref = bgr_to_nv12(bgr)
    assert np.array_equal(color_to_nv12(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 'rgb'), ref)
    assert np.array_equal(color_to_nv12(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), 'bgra'), ref)
    assert np.array_equal(color_to_nv12(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA), 'rgba'), ref)


def test_resize_crop_geometry_matches_resize_256_then_centre_crop_224():
    g = Geometry(224, 224, 'resize_crop', 256)
    (x, y, w, h), dst = g.plan(640, 480)
    # short side 480 -> 256: scale 0.5333; a 224 crop is 420 source pixels, centred
    assert (w, h) == (420, 420) and (x, y) == (110, 30) and dst == (0, 0, 224, 224)
    (x, y, w, h), _ = g.plan(640, 480, align=2)
    assert x % 2 == y % 2 == w % 2 == h % 2 == 0


def test_letterbox_and_stretch_geometry():
    src, dst = Geometry(224, 224, 'letterbox').plan(640, 480)
    assert src == (0, 0, 640, 480) and dst == (0, 28, 224, 168)
    assert Geometry(224, 224, 'stretch').plan(640, 480) == ((0, 0, 640, 480), (0, 0, 224, 224))


def test_bgr_frame_path_is_crop_resize_then_rdk_bytes(sample_bgr):
    bgr = sample_bgr['coffee']
    g = Geometry(224, 224, 'resize_crop', 256)
    (x, y, w, h), _ = g.plan(bgr.shape[1], bgr.shape[0])
    expected = rdk_bgr2nv12(cv2.resize(bgr[y:y + h, x:x + w], (224, 224),
                                       interpolation=cv2.INTER_LINEAR))
    assert np.array_equal(to_nv12(Frame('bgr', bgr), g), expected)


def _frame(bgr, encoding):
    raw = encode_raw(bgr, encoding)
    return image_to_frame(raw.encoding, raw.height, raw.width, raw.step, raw.data)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgra8', 'rgba8', 'nv12', 'yuv422_yuy2', 'uyvy'])
@pytest.mark.parametrize('mode', ['resize_crop', 'letterbox', 'stretch'])
def test_every_input_format_lands_close_to_the_bgr_path(sample_bgr, encoding, mode):
    bgr = np.ascontiguousarray(sample_bgr['rocket'][:426, :640])
    g = Geometry(224, 224, mode, 256)
    ref = to_nv12(Frame('bgr', bgr), g).astype(int)
    got = to_nv12(_frame(bgr, encoding), g).astype(int)
    assert got.shape == (nv12_size(224, 224),)
    if encoding in ('rgb8', 'bgra8', 'rgba8'):
        assert np.array_equal(got, ref)
    else:  # resized in YUV: chroma subsampling differs slightly from the BGR route
        assert np.abs(got - ref).mean() < 3.0, encoding


def test_gray_frames_are_gray_in_nv12(sample_bgr):
    gray = cv2.cvtColor(sample_bgr['camera'], cv2.COLOR_BGR2GRAY)
    nv12 = to_nv12(Frame('gray', gray), Geometry(224, 224))
    uv = nv12[224 * 224:]
    assert np.all(np.abs(uv.astype(int) - 128) <= 1)


def test_letterbox_pads_with_black():
    white = np.full((100, 400, 3), 255, np.uint8)
    for frame in (Frame('bgr', white), _frame(white, 'nv12')):
        nv12 = to_nv12(frame, Geometry(224, 224, 'letterbox'))
        y = nv12[:224 * 224].reshape(224, 224)
        uv = nv12[224 * 224:].reshape(112, 112, 2)
        assert y[0, 0] == BLACK_Y and y[-1, -1] == BLACK_Y and y[112, 112] > 200
        assert tuple(uv[0, 0]) == (BLACK_U, BLACK_V)


def test_nv12_to_rgb_is_the_inverse_up_to_yuv_rounding(sample_bgr):
    bgr = cv2.resize(sample_bgr['chelsea'], (224, 224))
    rgb = nv12_to_rgb(bgr_to_nv12(bgr), 224, 224)
    assert np.abs(rgb.astype(int) - bgr[..., ::-1].astype(int)).mean() < 4


@pytest.mark.parametrize('geometry, size, factor', [
    # resize_crop with a short side: the short side must stay >= 256
    (Geometry(224, 224, 'resize_crop', 256), (4000, 3000), 8),   # 375 >= 256
    (Geometry(224, 224, 'resize_crop', 256), (4000, 2040), 4),   # /8: 255 < 256; /4: 510
    (Geometry(224, 224, 'resize_crop', 256), (4000, 2041), 8),   # 2041/8 rounds up to 256
    (Geometry(224, 224, 'resize_crop', 256), (1024, 512), 2),
    (Geometry(224, 224, 'resize_crop', 256), (1024, 511), 2),     # 511/2 -> 256
    (Geometry(224, 224, 'resize_crop', 256), (1024, 510), 1),
    (Geometry(224, 224, 'resize_crop', 256), (300, 256), 1),
    # without a short side (and letterbox, stretch): both sides >= the input's
    (Geometry(224, 224, 'resize_crop', 0), (1792, 1792), 8),
    (Geometry(224, 224, 'resize_crop', 0), (1792, 1785), 8),     # 1785/8 -> 224 (rounded up)
    (Geometry(224, 224, 'resize_crop', 0), (1792, 1784), 4),
    (Geometry(224, 160, 'letterbox'), (1792, 1280), 8),
    (Geometry(224, 160, 'letterbox'), (1791, 1280), 8),
    (Geometry(224, 160, 'letterbox'), (1784, 1280), 4),
    (Geometry(224, 160, 'stretch'), (448, 320), 2),
    (Geometry(224, 160, 'stretch'), (447, 320), 2),
    (Geometry(224, 160, 'stretch'), (446, 320), 1),
])
def test_jpeg_reduction_keeps_what_the_model_input_needs(geometry, size, factor):
    assert geometry.reduction(*size) == factor


@pytest.mark.parametrize('geometry, src, plan', [
    # no short side: the scale that makes both sides cover the input, crop centred
    (Geometry(224, 160, 'resize_crop', 0), (641, 481, 1), ((0, 11, 641, 458), (0, 0, 224, 160))),
    # align=2 (NV12 sources): even crop size and offsets, never outside the image
    (Geometry(224, 160, 'resize_crop', 0), (641, 481, 2), ((0, 10, 640, 458), (0, 0, 224, 160))),
    (Geometry(224, 224, 'resize_crop', 256), (333, 251, 1), ((56, 15, 220, 220),
                                                             (0, 0, 224, 224))),
    (Geometry(224, 224, 'resize_crop', 256), (333, 251, 2), ((56, 14, 220, 220),
                                                             (0, 0, 224, 224))),
    (Geometry(224, 224, 'resize_crop', 256), (1, 1, 1), ((0, 0, 1, 1), (0, 0, 224, 224))),
    # letterbox: aspect kept, content on even pixels and at least 2x2, centred
    (Geometry(224, 224, 'letterbox'), (480, 640, 1), ((0, 0, 480, 640), (28, 0, 168, 224))),
    (Geometry(224, 160, 'letterbox'), (1000, 3, 1), ((0, 0, 1000, 3), (0, 78, 224, 2))),
    (Geometry(224, 160, 'letterbox'), (3, 1000, 1), ((0, 0, 3, 1000), (110, 0, 2, 160))),
    (Geometry(200, 200, 'letterbox'), (999, 333, 1), ((0, 0, 999, 333), (0, 66, 200, 66))),
])
def test_plans_for_odd_sizes_and_aspect_ratios(geometry, src, plan):
    assert geometry.plan(*src) == plan


@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8', 'mono8', 'nv12'])
@pytest.mark.parametrize('mode, size', [('resize_crop', (64, 48)), ('letterbox', (64, 48)),
                                        ('stretch', (32, 32))])
def test_every_path_fills_the_callers_buffer(sample_bgr, encoding, mode, size):
    """The pool converts into preallocated buffers: whatever the path (whole frame, crop,
    grey, letterbox canvas, NV12 source), the result is written into `out`."""
    w, h = size
    raw = encode_raw(np.ascontiguousarray(cv2.resize(sample_bgr['coffee'], (w, h))), encoding)
    frame = image_to_frame(raw.encoding, raw.height, raw.width, raw.step, raw.data)
    geometry = Geometry(32, 32, mode, 0)
    out = np.full(nv12_size(32, 32), 3, np.uint8)
    result = to_nv12(frame, geometry, out=out)
    assert result is out
    assert np.array_equal(out, to_nv12(frame, geometry))
