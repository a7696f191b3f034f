"""BGR images to sensor_msgs/Image and CompressedImage payloads, in every encoding the
node reads: what the sample camera, the bag tool and the benchmarks publish and the tests
round-trip (development tooling: the node itself only decodes, frames.py). Message-free:
returns the fields; the caller fills a message.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from ..nv12 import bgr_to_nv12

RAW_ENCODINGS = ('bgr8', 'rgb8', 'bgra8', 'rgba8', 'mono8', 'yuv422_yuy2', 'uyvy', 'nv12')
COMPRESSED = ('jpeg', 'png')
ENCODINGS = RAW_ENCODINGS + COMPRESSED
_CONVERSIONS = {'rgb8': cv2.COLOR_BGR2RGB, 'bgra8': cv2.COLOR_BGR2BGRA,
                'rgba8': cv2.COLOR_BGR2RGBA, 'mono8': cv2.COLOR_BGR2GRAY}
# byte offset of Y and of the chroma sample in each 2-byte pixel of the 4:2:2 layouts
_YUV422 = {'yuv422_yuy2': (0, 1), 'uyvy': (1, 0)}


@dataclass
class Raw:
    encoding: str
    height: int
    width: int
    step: int
    data: bytes


def encode_raw(bgr, encoding, row_padding=0):
    """A BGR image as Image fields in `encoding`; row_padding adds bytes to each row."""
    h, w = bgr.shape[:2]
    if encoding in ('yuv422_yuy2', 'uyvy', 'nv12'):
        h, w = h - h % 2, w - w % 2
        bgr = bgr[:h, :w]
    if encoding == 'bgr8':
        arr = bgr
    elif encoding == 'nv12':
        arr = bgr_to_nv12(np.ascontiguousarray(bgr)).reshape(h * 3 // 2, w)
    elif encoding in _YUV422:
        arr = _yuv422(bgr, *_YUV422[encoding])
    elif encoding in _CONVERSIONS:
        arr = cv2.cvtColor(bgr, _CONVERSIONS[encoding])
    else:
        raise ValueError(f'unknown raw encoding {encoding!r}; expected one of '
                         + ', '.join(RAW_ENCODINGS))
    rows = arr.reshape(arr.shape[0], -1)
    if row_padding:
        rows = np.concatenate([rows, np.zeros((rows.shape[0], row_padding), np.uint8)], axis=1)
    rows = np.ascontiguousarray(rows)
    return Raw(encoding, h, w, rows.shape[1], rows.tobytes())


def _yuv422(bgr, y_at, c_at):
    """YUYV / UYVY from the NV12 conversion (BT.601 limited range, each chroma row used
    for two image rows). OpenCV's own BGR2YUV_YUYV arrived in 4.7; Ubuntu 22.04 has 4.5."""
    h, w = bgr.shape[:2]
    nv12 = bgr_to_nv12(np.ascontiguousarray(bgr))
    uv = nv12[h * w:].reshape(h // 2, w // 2, 2).repeat(2, axis=0)
    out = np.empty((h, w, 2), np.uint8)
    out[:, :, y_at] = nv12[:h * w].reshape(h, w)
    out[:, 0::2, c_at] = uv[:, :, 0]
    out[:, 1::2, c_at] = uv[:, :, 1]
    return out


def encode_compressed(bgr, fmt, quality=90):
    """A BGR image as CompressedImage fields (format, data)."""
    if fmt == 'jpeg':
        ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    elif fmt == 'png':
        ok, buf = cv2.imencode('.png', bgr)
    else:
        raise ValueError(f'unknown compressed format {fmt!r}; expected jpeg or png')
    if not ok:
        raise ValueError(f'OpenCV could not encode a {bgr.shape} image as {fmt}')
    return fmt, buf.tobytes()
