"""sensor_msgs/Image and CompressedImage bytes -> arrays, every encoding, with padding."""
import cv2
import numpy as np
import pytest

from edge_classifier.tools.encode import RAW_ENCODINGS, encode_compressed, encode_raw
from edge_classifier.frames import (FrameError, compressed_size, compressed_to_frame,
                                    image_to_frame, read_image)
from edge_classifier.nv12 import Geometry


def to_bgr(frame):
    """Reference decode of a Frame to BGR (OpenCV's own conversions)."""
    codes = {'rgb': cv2.COLOR_RGB2BGR, 'bgra': cv2.COLOR_BGRA2BGR, 'rgba': cv2.COLOR_RGBA2BGR,
             'gray': cv2.COLOR_GRAY2BGR, 'yuyv': cv2.COLOR_YUV2BGR_YUYV,
             'uyvy': cv2.COLOR_YUV2BGR_UYVY}
    data = np.ascontiguousarray(frame.data)
    if frame.kind == 'bgr':
        return data
    if frame.kind == 'nv12':
        nv12 = np.concatenate([data.reshape(-1), np.ascontiguousarray(frame.uv).reshape(-1)])
        return cv2.cvtColor(nv12.reshape(frame.height * 3 // 2, frame.width),
                            cv2.COLOR_YUV2BGR_NV12)
    return cv2.cvtColor(data, codes[frame.kind])


@pytest.mark.parametrize('encoding', RAW_ENCODINGS)
@pytest.mark.parametrize('padding', [0, 7])
def test_every_encoding_round_trips_with_and_without_row_padding(sample_bgr, encoding, padding):
    bgr = sample_bgr['chelsea']  # 451 x 300: odd width, exercises the even crop of YUV
    raw = encode_raw(bgr, encoding, row_padding=padding)
    frame = image_to_frame(raw.encoding, raw.height, raw.width, raw.step, raw.data)
    assert (frame.width, frame.height) == (raw.width, raw.height)
    back = to_bgr(frame)
    ref = bgr[:raw.height, :raw.width]
    if encoding == 'mono8':
        ref = cv2.cvtColor(cv2.cvtColor(ref, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    tolerance = 0 if encoding in ('bgr8', 'rgb8', 'bgra8', 'rgba8', 'mono8') else 12
    err = np.abs(back.astype(int) - ref.astype(int)).mean()
    assert err <= tolerance, f'{encoding}: mean abs error {err}'


def test_raw_frames_are_views_of_the_message_buffer(sample_bgr):
    raw = encode_raw(sample_bgr['coffee'], 'bgr8', row_padding=16)
    buf = bytearray(raw.data)
    frame = image_to_frame('bgr8', raw.height, raw.width, raw.step, buf)
    assert not frame.data.flags['C_CONTIGUOUS']  # strided over the padding, not copied
    buf[0] = (buf[0] + 1) % 256
    assert frame.data[0, 0, 0] == buf[0]


def test_message_object_with_array_data_works(sample_bgr):
    import array
    raw = encode_raw(sample_bgr['camera'], 'mono8')
    frame = image_to_frame('mono8', raw.height, raw.width, raw.step, array.array('B', raw.data))
    assert frame.kind == 'gray' and frame.data.shape == (raw.height, raw.width)


@pytest.mark.parametrize('encoding, h, w, step, size, words', [
    ('bgr8', 4, 4, 12, 47, ['47 bytes', 'step x height', '48']),
    ('bgr8', 4, 4, 12, 49, ['49 bytes']),
    ('bgr8', 4, 4, 11, 44, ['step 11 is smaller than a row (12 bytes)']),
    ('bgr8', 0, 4, 12, 0, ['zero size']),
    ('rgb8', 4, 0, 0, 0, ['zero size']),
    ('nv12', 3, 4, 4, 18, ['even width and height']),
    ('nv12', 4, 4, 4, 20, ['expected step x height x 3/2 = 24']),
    ('yuv422_yuy2', 2, 3, 6, 12, ['even width']),
    ('uyvy', 2, 4, 8, 15, ['15 bytes']),
    ('', 2, 2, 6, 12, ['empty encoding']),
    ('hsv8', 2, 2, 6, 12, ["unknown encoding 'hsv8'", 'bgr8']),
    ('mono16', 2, 2, 4, 8, ["'mono16' is not 8 bits per channel"]),
    ('32FC1', 2, 2, 8, 16, ["'32FC1' is not 8 bits per channel"]),
    ('bgr8', 100000, 100000, 300000, 12, ['12 bytes']),
])
def test_inconsistent_frames_raise_one_error_type_saying_what_is_wrong(encoding, h, w, step,
                                                                       size, words):
    with pytest.raises(FrameError) as err:
        image_to_frame(encoding, h, w, step, bytes(size))
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_compressed_decodes_to_bgr(sample_bgr, fmt):
    bgr = sample_bgr['coffee']
    fmt_out, data = encode_compressed(bgr, fmt)
    frame = compressed_to_frame(fmt_out, data)
    assert frame.kind == 'bgr' and frame.data.shape == bgr.shape
    err = np.abs(frame.data.astype(int) - bgr.astype(int)).mean()
    assert err < (3 if fmt == 'jpeg' else 0.001)
    # image_transport's long format strings work too
    assert compressed_to_frame(f'bgr8; {fmt} compressed bgr8', data).data.shape == bgr.shape


@pytest.mark.parametrize('fmt, data, words', [
    ('jpeg', bytes(range(256)) * 4, ['1024 bytes that are neither JPEG nor PNG']),
    ('jpeg', b'', ['empty jpeg image']),
    ('tiff', b'II*\x00', ["unsupported compressed format 'tiff'"]),
    ('16UC1; compressedDepth', b'\x00' * 20, ['unsupported compressed format']),
])
def test_bad_compressed_frames(fmt, data, words):
    with pytest.raises(FrameError) as err:
        compressed_to_frame(fmt, data)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize('fmt, cut', [('jpeg', 200), ('jpeg', -10), ('png', 500),
                                      ('png', -5)])
def test_truncated_images_are_errors_not_grey_frames(sample_bgr, fmt, cut):
    _, data = encode_compressed(sample_bgr['coffee'], fmt)
    with pytest.raises(FrameError, match=f'truncated {fmt} image'):
        compressed_to_frame(fmt, data[:cut])


def test_read_image_errors(tmp_path):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not an image')
    with pytest.raises(FrameError, match='bad.png: not an image'):
        read_image(bad)
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(FrameError, match='empty file'):
        read_image(empty)


def test_max_image_pixels_is_inclusive_and_zero_means_no_limit(sample_bgr):
    bgr = sample_bgr['chelsea']
    h, w = bgr.shape[:2]
    data = cv2.imencode('.png', bgr)[1]
    assert compressed_to_frame('png', data, max_pixels=w * h).width == w   # exactly the limit
    with pytest.raises(FrameError, match='over max_image_pixels'):
        compressed_to_frame('png', data, max_pixels=w * h - 1)
    assert compressed_to_frame('png', data, max_pixels=0).height == h      # 0: no limit


@pytest.mark.parametrize('fmt', ['bgr8; jpeg compressed bgr8', 'rgb8; png compressed bgr8'])
def test_truncation_follows_the_bytes_whatever_the_format_string_says(sample_bgr, fmt):
    """image_transport writes 'bgr8; jpeg compressed bgr8': the check follows the kind of
    the bytes (a JPEG sent under a png format string is still checked as a JPEG)."""
    for ext, marker in (('.jpg', 'JPEG end-of-image'), ('.png', 'PNG IEND')):
        data = cv2.imencode(ext, sample_bgr['coffee'])[1].tobytes()
        assert compressed_to_frame(fmt, data).width == sample_bgr['coffee'].shape[1]
        with pytest.raises(FrameError, match=f'truncated .* no {marker}'):
            compressed_to_frame(fmt, data[:len(data) * 2 // 3])


# ---- compressed_size: the header parser that guards against decompression bombs --------
def _segment(marker, payload):
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, 'big') + payload


def _sof(marker, width, height):
    return _segment(marker, bytes([8]) + height.to_bytes(2, 'big') + width.to_bytes(2, 'big')
                    + bytes([3]) + bytes(9))


@pytest.mark.parametrize('sof', [0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCF])
def test_jpeg_size_is_read_from_any_frame_header_after_other_segments(sof):
    """SOF0-SOF15 (not DHT C4, JPG C8, DAC CC) after APP0, a comment, fill bytes, RSTn."""
    data = (b'\xff\xd8' + _segment(0xE0, b'JFIF\x00' + bytes(9)) + b'\xff\xff'
            + b'\xff\xd3' + b'\xff\x01' + _segment(0xFE, b'made by a test')
            + _sof(sof, 4097, 2049) + _segment(0xDA, bytes(10)))
    assert compressed_size(data) == ('jpeg', 4097, 2049)


@pytest.mark.parametrize('not_sof', [0xC4, 0xC8, 0xCC])
def test_tables_are_not_frame_headers(not_sof):
    data = (b'\xff\xd8' + _segment(not_sof, bytes([0, 1, 2, 3, 4, 5, 6, 7])) +
            _sof(0xC0, 640, 480))
    assert compressed_size(data) == ('jpeg', 640, 480)


@pytest.mark.parametrize('data, message', [
    (b'\xff\xd8' + _segment(0xDA, bytes(10)) + _sof(0xC0, 64, 64),
     'JPEG without a frame header (SOF) before its image data'),
    (b'\xff\xd8' + _segment(0xE0, bytes(4)), 'JPEG without a frame header'),
    (b'\xff\xd8\xff\xe0\x00\x01' + _sof(0xC0, 64, 64), 'JPEG without a frame header'),
    (b'\xff\xd8' + _segment(0xE0, bytes(4)) + b'\x00\xc0\x00\x11',
     'JPEG header damaged at byte 10 (no marker)'),
    (b'GIF89a' + bytes(30), '36 bytes that are neither JPEG nor PNG (they start with '
     '474946383961'),
    (b'\x89PNG\r\n\x1a\n' + bytes(4) + b'IDAT' + bytes(16), 'PNG without an IHDR chunk'),
    (b'\x89PNG\r\n\x1a\n' + bytes(4) + b'IHDR', 'PNG without an IHDR chunk'),
])
def test_damaged_headers_say_what_is_wrong(data, message):
    with pytest.raises(FrameError) as err:
        compressed_size(data)
    assert message in str(err.value)


def test_a_frame_header_cut_short_is_not_read_past_the_end():
    whole = b'\xff\xd8' + _sof(0xC0, 300, 200)
    assert compressed_size(whole[:11]) == ('jpeg', 300, 200)   # the size bytes are there
    with pytest.raises(FrameError, match='without a frame header'):
        compressed_size(whole[:10])


def test_png_size_from_ihdr_of_any_buffer_type(sample_bgr):
    data = cv2.imencode('.png', sample_bgr['coffee'][:37, :53])[1]
    h, w = 37, 53
    assert compressed_size(data) == ('png', w, h)
    assert compressed_size(data.tobytes()) == ('png', w, h)
    assert compressed_size(bytearray(data.tobytes())) == ('png', w, h)


def test_a_large_jpeg_is_decoded_reduced_as_far_as_the_model_allows_a_png_never(sample_bgr):
    big = cv2.resize(sample_bgr['coffee'], (1024, 768))
    geometry = Geometry(224, 224, 'resize_crop', 256)      # 768 / 2 = 384 >= 256; / 4: 192
    jpeg = cv2.imencode('.jpg', big)[1]
    assert compressed_to_frame('jpeg', jpeg, geometry=geometry).data.shape == (384, 512, 3)
    assert compressed_to_frame('jpeg', jpeg).data.shape == (768, 1024, 3)
    png = cv2.imencode('.png', big)[1]
    assert compressed_to_frame('png', png, geometry=geometry).data.shape == (768, 1024, 3)
    tall = cv2.imencode('.jpg', np.ascontiguousarray(big.transpose(1, 0, 2)))[1]
    assert compressed_to_frame('jpeg', tall, geometry=geometry).data.shape == (512, 384, 3)


@pytest.mark.parametrize('width, height', [(0, 64), (64, 0)])
def test_a_header_declaring_no_pixels_is_refused(width, height):
    png = bytearray(cv2.imencode('.png', np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    png[16:24] = width.to_bytes(4, 'big') + height.to_bytes(4, 'big')
    with pytest.raises(FrameError) as err:
        compressed_to_frame('png', bytes(png))
    assert str(err.value) == f'png header declares a {width}x{height} image'


def test_a_one_pixel_image_is_fine_and_the_refusal_gives_the_product():
    one = cv2.imencode('.png', np.zeros((1, 1, 3), np.uint8))[1]
    assert compressed_to_frame('png', one).data.shape == (1, 1, 3)
    wide = cv2.imencode('.png', np.zeros((3, 5, 3), np.uint8))[1]
    with pytest.raises(FrameError, match=r'png header declares 5x3 = 15 pixels, over '
                                         r'max_image_pixels \(14\); refused before decoding'):
        compressed_to_frame('png', wide, max_pixels=14)


def test_garbage_after_a_valid_header_is_a_decode_error():
    header = b'\xff\xd8' + bytes([0xFF, 0xC0, 0, 17, 8, 0, 16, 0, 16, 3]) + bytes(9)
    data = header + bytes(100) + b'\xff\xd9'
    with pytest.raises(FrameError) as err:
        compressed_to_frame('jpeg', data)
    assert str(err.value) == f'could not decode {len(data)} bytes as jpeg (corrupt or truncated)'


def test_format_strings_are_matched_without_case_and_depth_images_refused():
    png = cv2.imencode('.png', np.zeros((4, 4, 3), np.uint8))[1]
    assert compressed_to_frame('PNG', png).data.shape == (4, 4, 3)
    for fmt in ('16UC1; compressedDepth png', '32FC1; COMPRESSEDDEPTH png', None, ''):
        with pytest.raises(FrameError, match='unsupported compressed format'):
            compressed_to_frame(fmt, png)


def test_message_objects_are_read_field_by_field(sample_bgr):
    from types import SimpleNamespace
    from edge_classifier.frames import compressed_msg_to_frame, image_msg_to_frame
    bgr = np.ascontiguousarray(sample_bgr['coffee'][:30, :40])
    raw = encode_raw(bgr, 'rgb8', row_padding=4)
    frame = image_msg_to_frame(SimpleNamespace(encoding='rgb8', height=raw.height,
                                               width=raw.width, step=raw.step, data=raw.data))
    assert frame.kind == 'rgb' and np.array_equal(frame.data, bgr[:, :, ::-1])
    png = cv2.imencode('.png', bgr)[1].tobytes()
    msg = SimpleNamespace(format='png', data=png)
    assert np.array_equal(compressed_msg_to_frame(msg).data, bgr)
    with pytest.raises(FrameError, match='over max_image_pixels'):
        compressed_msg_to_frame(msg, max_pixels=40 * 30 - 1)
    big = SimpleNamespace(format='jpeg', data=cv2.imencode('.jpg', cv2.resize(bgr, (960, 720)))[1])
    geometry = Geometry(224, 224, 'resize_crop', 256)
    assert compressed_msg_to_frame(big, geometry=geometry).data.shape == (360, 480, 3)


SUPPORTED = ('8UC1, 8UC3, 8UC4, bgr8, bgra8, mono8, nv12, rgb8, rgba8, uyvy, yuv422, '
             'yuv422_yuy2, yuyv')


@pytest.mark.parametrize('args, message', [
    (('', 2, 2, 6, bytes(12)), 'empty encoding; expected one of ' + SUPPORTED),
    (('nv12', 2, 4, 2, bytes(12)), 'nv12: step 2 is smaller than a row (4 bytes)'),
    (('nv12', 2, 4, 4, bytes(11)), 'nv12 4x2: data has 11 bytes, expected step x height x '
     '3/2 = 12'),
    (('BAYER_RGGB16', 2, 2, 4, bytes(8)), "encoding 'BAYER_RGGB16' is not 8 bits per channel; "
     'supported: ' + SUPPORTED),
    (('weird', 2, 2, 6, bytes(12)), "unknown encoding 'weird'; supported: " + SUPPORTED),
    (('uyvy', 2, 3, 6, bytes(12)), 'uyvy needs an even width (2 pixels share chroma), got 3'),
    (('yuyv', 2, 3, 6, bytes(12)), 'yuyv needs an even width (2 pixels share chroma), got 3'),
])
def test_raw_frame_refusals_word_for_word(args, message):
    with pytest.raises(FrameError) as err:
        image_to_frame(*args)
    assert str(err.value) == message


def test_one_pixel_frames_are_frames():
    assert image_to_frame('mono8', 1, 1, 1, bytes([7])).data.shape == (1, 1)
    assert image_to_frame('bgr8', 1, 1, 3, bytes(3)).data.shape == (1, 1, 3)
    assert image_to_frame('nv12', 2, 2, 2, bytes(6)).data.shape == (2, 2)


def test_jpeg_parser_edge_cases():
    body = _sof(0xC0, 320, 240)
    big_app = _segment(0xE1, bytes(300))            # a length with a high byte (Exif)
    empty = bytes([0xFF, 0xFE, 0x00, 0x02])         # a comment of length 2: nothing inside
    for prefix in (b'\xff' + big_app,               # one fill byte before a marker
                   b'\xff\xd0\xff\xd7' + big_app,   # the first and the last RSTn
                   empty + big_app):
        assert compressed_size(b'\xff\xd8' + prefix + body) == ('jpeg', 320, 240), prefix[:6]
    with pytest.raises(FrameError) as err:
        compressed_size(b'GIF89a' + bytes(30))
    assert str(err.value) == ('36 bytes that are neither JPEG nor PNG (they start with '
                              '4749463839610000)')
    with pytest.raises(FrameError) as err:
        compressed_size(b'\xff\xd8' + _segment(0xDA, bytes(4)))
    assert str(err.value) == 'JPEG without a frame header (SOF) before its image data'


def test_png_size_from_a_bare_24_byte_header():
    head = b'\x89PNG\r\n\x1a\n' + (13).to_bytes(4, 'big') + b'IHDR' + \
        (70000).to_bytes(4, 'big') + (258).to_bytes(4, 'big')
    assert compressed_size(head) == ('png', 70000, 258)
    with pytest.raises(FrameError) as err:
        compressed_size(head[:23])
    assert str(err.value) == 'PNG without an IHDR chunk where the header must be'
