"""Camera frames (sensor_msgs/Image and CompressedImage fields) to numpy arrays.

Message-free: functions take the message's fields (or any object that has them), so
they are tested with in-memory bytes. Raw images are zero-copy views of the message
buffer that honour `step` (row padding); nothing is converted here, the NV12 stage
picks the cheapest path per pixel format.
"""
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .errors import FrameError
from .params import DEFAULT_MAX_IMAGE_PIXELS


# ROS encoding -> (kind, channels or bytes per pixel for packed formats)
_PACKED = {
    'bgr8': ('bgr', 3), 'rgb8': ('rgb', 3), 'bgra8': ('bgra', 4), 'rgba8': ('rgba', 4),
    'mono8': ('gray', 1), '8UC1': ('gray', 1), '8UC3': ('bgr', 3), '8UC4': ('bgra', 4),
    'yuv422_yuy2': ('yuyv', 2), 'yuyv': ('yuyv', 2), 'yuv422': ('uyvy', 2), 'uyvy': ('uyvy', 2),
}
_PLANAR = {'nv12': 'nv12'}
_HIGH_DEPTH_HINT = ('16', '32', '64', 'bayer')
SUPPORTED_ENCODINGS = tuple(sorted(set(_PACKED) | set(_PLANAR)))
COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')
# image files the tools read (OpenCV decodes them)
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


@dataclass
class Frame:
    """A decoded frame. `kind` is one of bgr, rgb, bgra, rgba, gray, yuyv, uyvy, nv12.

    data: (H, W, C) for bgr/rgb/bgra/rgba, (H, W) for gray, (H, W, 2) for yuyv/uyvy
    (pairs of bytes per pixel), the Y plane (H, W) for nv12 with `uv` (H/2, W/2, 2).
    Arrays may be strided views of the message buffer.
    """
    kind: str
    data: np.ndarray
    uv: Optional[np.ndarray] = None

    @property
    def height(self):
        return self.data.shape[0]

    @property
    def width(self):
        return self.data.shape[1]


def _buffer(data):
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def image_to_frame(encoding, height, width, step, data):
    """Fields of a sensor_msgs/Image to a Frame (zero-copy where the layout allows)."""
    encoding = (encoding or '').strip()
    if not encoding:
        raise FrameError('empty encoding; expected one of ' + ', '.join(SUPPORTED_ENCODINGS))
    if height <= 0 or width <= 0:
        raise FrameError(f'{encoding} frame has zero size ({width}x{height})')
    buf = _buffer(data)
    size = buf.size
    if encoding in _PLANAR:
        if height % 2 or width % 2:
            raise FrameError(f'nv12 needs an even width and height, got {width}x{height}')
        if step < width:
            raise FrameError(f'nv12: step {step} is smaller than a row ({width} bytes)')
        expected = step * height * 3 // 2
        if size != expected:
            raise FrameError(f'nv12 {width}x{height}: data has {size} bytes, expected '
                             f'step x height x 3/2 = {expected}')
        rows = buf.reshape(height * 3 // 2, step)
        y = rows[:height, :width]
        uv = rows[height:, :width].reshape(height // 2, width // 2, 2)
        return Frame('nv12', y, uv)
    if encoding not in _PACKED:
        lowered = encoding.lower()
        if any(token in lowered for token in _HIGH_DEPTH_HINT):
            raise FrameError(f'encoding {encoding!r} is not 8 bits per channel; supported: '
                             + ', '.join(SUPPORTED_ENCODINGS))
        raise FrameError(f'unknown encoding {encoding!r}; supported: '
                         + ', '.join(SUPPORTED_ENCODINGS))
    kind, bpp = _PACKED[encoding]
    if kind in ('yuyv', 'uyvy') and width % 2:
        raise FrameError(f'{encoding} needs an even width (2 pixels share chroma), got {width}')
    row = width * bpp
    if step < row:
        raise FrameError(f'{encoding} {width}x{height}: step {step} is smaller than a row '
                         f'({row} bytes)')
    if size != step * height:
        raise FrameError(f'{encoding} {width}x{height}: data has {size} bytes, expected '
                         f'step x height = {step} x {height} = {step * height}')
    rows = buf.reshape(height, step)[:, :row]
    if kind == 'gray':
        return Frame(kind, rows)
    return Frame(kind, rows.reshape(height, width, bpp))


def image_msg_to_frame(msg):
    """A sensor_msgs/Image (or anything with its fields) to a Frame."""
    return image_to_frame(msg.encoding, msg.height, msg.width, msg.step, msg.data)


_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# JPEG start-of-frame markers (baseline, progressive, lossless, ...): not DHT/JPG/DAC
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Geometry.reduction() factor -> the imdecode flag that has libjpeg decode at that scale
_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
            4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def compressed_size(buf):
    """(kind, width, height) read from a JPEG or PNG header, without decoding anything."""
    head = bytes(buf[:32])
    if head[:8] == _PNG_MAGIC:
        if len(head) < 24 or head[12:16] != b'IHDR':
            raise FrameError('PNG without an IHDR chunk where the header must be')
        return 'png', int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')
    if head[:2] != b'\xff\xd8':
        raise FrameError(f'{len(buf)} bytes that are neither JPEG nor PNG (they start with '
                         f'{head[:8].hex()})')
    data, pos, end = memoryview(buf), 2, len(buf)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise FrameError(f'JPEG header damaged at byte {pos} (no marker)')
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker in _JPEG_SOF and pos + 9 <= end:
            height = (data[pos + 5] << 8) | data[pos + 6]
            width = (data[pos + 7] << 8) | data[pos + 8]
            return 'jpeg', width, height
        if marker == 0xDA or length < 2:  # scan data before any frame header
            break
        pos += 2 + length
    raise FrameError('JPEG without a frame header (SOF) before its image data')


def compressed_to_frame(fmt, data, max_pixels=DEFAULT_MAX_IMAGE_PIXELS, geometry=None):
    """Fields of a sensor_msgs/CompressedImage (jpeg or png) to a BGR Frame.

    The size is read from the header first: more than `max_pixels` (0: no limit) is refused
    before anything is decoded, so a small file declaring a huge image (a decompression
    bomb) costs nothing. With `geometry` (the model input's nv12.Geometry), a JPEG much
    larger than the model needs is decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself,
    never below what the geometry needs (`Geometry.reduction`).
    """
    fmt_l = (fmt or '').lower()
    if 'compresseddepth' in fmt_l or not any(token in fmt_l for token in COMPRESSED_FORMATS):
        raise FrameError(f'unsupported compressed format {fmt!r}; supported: jpeg, png')
    buf = _buffer(data)
    if buf.size == 0:
        raise FrameError(f'empty {fmt} image')
    kind, width, height = compressed_size(buf)
    if width <= 0 or height <= 0:
        raise FrameError(f'{kind} header declares a {width}x{height} image')
    if max_pixels and width * height > max_pixels:
        raise FrameError(f'{kind} header declares {width}x{height} = {width * height} pixels, '
                         f'over max_image_pixels ({max_pixels}); refused before decoding '
                         f'(raise the parameter if a camera really sends this)')
    _check_complete(buf, kind, fmt)
    factor = geometry.reduction(width, height) if kind == 'jpeg' and geometry is not None else 1
    image = cv2.imdecode(buf, _REDUCED[factor])
    if image is None:
        raise FrameError(f'could not decode {buf.size} bytes as {fmt} (corrupt or truncated)')
    return Frame('bgr', image)


def _check_complete(buf, kind, fmt):
    """Truncated JPEG/PNG (`kind` from compressed_size): libjpeg would decode the rest as
    grey and only warn."""
    tail = bytes(buf[-64:])
    if kind == 'jpeg' and b'\xff\xd9' not in tail:
        raise FrameError(f'truncated {fmt} image: {buf.size} bytes and no JPEG end-of-image '
                         f'marker')
    if kind == 'png' and b'IEND' not in tail:
        raise FrameError(f'truncated {fmt} image: {buf.size} bytes and no PNG IEND chunk')


def compressed_msg_to_frame(msg, max_pixels=DEFAULT_MAX_IMAGE_PIXELS, geometry=None):
    return compressed_to_frame(msg.format, msg.data, max_pixels, geometry)


def read_image(path):
    """Read an image file as a BGR Frame (decoded by OpenCV, like CompressedImage)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except IsADirectoryError:
        raise FrameError(f'{path}: a directory, not an image file') from None
    except FileNotFoundError:
        raise FrameError(f'{path}: no such file') from None
    except OSError as exc:
        raise FrameError(f'{path}: cannot read it: {exc.strerror or exc}') from None
    if data.size == 0:
        raise FrameError(f'{path}: empty file')
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise FrameError(f'{path}: not an image OpenCV can decode')
    return Frame('bgr', image)
