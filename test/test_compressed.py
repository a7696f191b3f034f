"""Compressed frames: sizes read from the header, decompression bombs refused before any
decoding (in the pipeline and in the node over DDS, with its peak memory measured), and
JPEGs decoded at reduced scale when the model needs far fewer pixels."""
import struct
import zlib

import cv2
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from vision_msgs.msg import Classification

from edge_classifier.tools.encode import encode_compressed
from edge_classifier.frames import FrameError, compressed_size, compressed_to_frame
from edge_classifier.nv12 import Geometry

from ros_helpers import Diagnostics, Harness, proc_status_kib, ros_process, stop, wait_for

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def png_bomb(width, height):
    """A valid PNG of width x height black pixels in about 60 bytes per row: every row is
    the same full-flush deflate block, so 20000 x 20000 (1.2 GB decoded) is 1.6 MB."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    row = deflate.compress(bytes(1 + 3 * width)) + deflate.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    total = (1 + 3 * width) * height  # adler32 of zeros: a = 1, b = length mod 65521
    idat = b'\x78\xda' + row * height + last + struct.pack('>I', ((total % 65521) << 16) | 1)
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', idat) +
            chunk(b'IEND', b''))


def jpeg_declaring(jpeg, width, height):
    """A real JPEG whose frame header (SOF) is rewritten to declare width x height."""
    data = bytearray(jpeg)
    sof = next(i for i in range(2, len(data) - 1)
               if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2))
    data[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    return bytes(data)


def test_png_bomb_helper_is_a_real_png():
    small = png_bomb(640, 480)
    image = cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (480, 640, 3) and image.max() == 0


@pytest.mark.parametrize('kind, params', [('jpeg', []), ('png', []),
                                          ('jpeg', [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])])
def test_size_is_read_from_the_header(sample_bgr, kind, params):
    for name, bgr in sample_bgr.items():
        ok, buf = cv2.imencode('.jpg' if kind == 'jpeg' else '.png', bgr, params)
        assert ok
        assert compressed_size(buf) == (kind, bgr.shape[1], bgr.shape[0]), name


@pytest.mark.parametrize('data, words', [
    (b'\xff\xd8\xff\xe0\x00\x10JFIF\x00' + bytes(5) + b'\xff\xda\x00\x02',
     'without a frame header'),
    (b'\xff\xd8\x00\x00\x00\x00', 'no marker'),
    (b'\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDX' + bytes(20), 'IHDR'),
    (b'GIF89a' + bytes(30), 'neither JPEG nor PNG'),
])
def test_damaged_headers_are_frame_errors(data, words):
    with pytest.raises(FrameError, match=words):
        compressed_to_frame('jpeg', data)


def test_bombs_are_refused_before_decoding(sample_bgr):
    _, jpeg = encode_compressed(sample_bgr['coffee'], 'jpeg')
    for fmt, data, size in (('png', png_bomb(20000, 20000), '20000x20000'),
                            ('jpeg', jpeg_declaring(jpeg, 16000, 16000), '16000x16000')):
        with pytest.raises(FrameError) as err:
            compressed_to_frame(fmt, data)
        assert f'declares {size}' in str(err.value) and 'max_image_pixels' in str(err.value)
    # the limit is a parameter: a smaller one refuses a normal photo too
    with pytest.raises(FrameError, match='over max_image_pixels'):
        compressed_to_frame('jpeg', jpeg, max_pixels=1000)


@pytest.mark.parametrize('mode, size, src, factor', [
    ('resize_crop', 224, (640, 480), 1), ('resize_crop', 224, (1920, 1080), 4),
    ('resize_crop', 224, (4000, 3000), 8), ('resize_crop', 224, (1024, 512), 2),
    ('letterbox', 224, (1920, 1080), 4), ('stretch', 224, (1920, 1080), 4),
    ('stretch', 300, (1920, 1080), 2),
])
def test_reduction_keeps_what_the_model_needs(mode, size, src, factor):
    geometry = Geometry(size, size, mode, 256 if mode == 'resize_crop' else 0)
    assert geometry.reduction(*src) == factor
    w, h = -(-src[0] // factor), -(-src[1] // factor)
    if mode == 'resize_crop':
        assert min(w, h) >= 256
    else:
        assert w >= size and h >= size


def test_reduced_jpeg_decode_keeps_the_top5(classifier, sample_bgr):
    """1080p-class JPEGs of the sample photos: decoded at 1/4 scale, top-5 unchanged.

    Not astronaut: no ImageNet class fits it (top-1 football helmet 0.21 against bobsled
    0.10), and its ranks move between full decodes of 720, 1024 and 1200 px copies too."""
    geometry = classifier.geometry
    for name, bgr in sample_bgr.items():
        if name == 'astronaut':
            continue
        scale = 1080 / min(bgr.shape[:2])
        big = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        _, jpeg = encode_compressed(big, 'jpeg', quality=90)
        full = compressed_to_frame('jpeg', jpeg)
        reduced = compressed_to_frame('jpeg', jpeg, geometry=geometry)
        assert reduced.height == -(-full.height // 4), name
        top_full = [h.class_id for h in classifier.classify(full)]
        top_reduced = [h.class_id for h in classifier.classify(reduced)]
        assert top_full[0] == top_reduced[0], name
        assert set(top_full) == set(top_reduced), (name, top_full, top_reduced)


def test_a_flood_of_bombs_is_refused_by_the_node_within_bounded_memory(sample_bgr):
    """20000 x 20000 PNGs and 16000 x 16000 JPEGs (1.2 and 0.77 GB decoded) sent to a
    two-worker node: each is counted malformed, the peak RSS grows < 512 MiB, and a normal
    frame afterwards is still classified."""
    ros = Harness('bomb_test')
    proc = ros_process('edge_classifier.node', {
        'compressed_topics': ['/bomb/image/compressed'], 'image_topics': [],
        'output_topic': '/bomb/classification', 'workers': 2, 'diagnostics_period': 0.2})
    diag = Diagnostics(ros, 'edge_classifier')
    results = ros.collect(Classification, '/bomb/classification')
    pub = ros.node.create_publisher(CompressedImage, '/bomb/image/compressed', RELIABLE)
    _, jpeg = encode_compressed(sample_bgr['coffee'], 'jpeg')
    bombs = [('png', png_bomb(20000, 20000)), ('jpeg', jpeg_declaring(jpeg, 16000, 16000))]
    try:
        assert wait_for(lambda: pub.get_subscription_count() > 0, timeout=20)
        assert wait_for(lambda: diag.latest, timeout=10)
        before = proc_status_kib(proc.pid, 'VmHWM') / 1024
        for i in range(8):
            fmt, data = bombs[i % 2]
            msg = CompressedImage(format=fmt)
            msg.data = data
            msg.header.frame_id = f'bomb-{i}'
            pub.publish(msg)
            assert wait_for(lambda: diag.value('malformed') >= i + 1, timeout=10), diag.latest
        peak = proc_status_kib(proc.pid, 'VmHWM') / 1024
        good = CompressedImage(format='jpeg')
        good.data = jpeg
        good.header.frame_id = 'after-the-bombs'
        pub.publish(good)
        assert wait_for(lambda: any(m.header.frame_id == 'after-the-bombs' for m in results),
                        timeout=10)
        assert not any(m.header.frame_id.startswith('bomb-') for m in results)
    finally:
        code, _, err, _ = stop(proc)
        ros.close()
    print(f'8 decompression bombs: peak RSS {before:.0f} -> {peak:.0f} MiB')
    assert code == 0, err
    assert peak - before < 512, f'peak RSS grew {peak - before:.0f} MiB'
    assert 'over max_image_pixels' in err
