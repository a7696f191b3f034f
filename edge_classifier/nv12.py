"""Frames to NV12 at the model's input size: the input format of the RDK X5 BPU models.

NV12: the Y plane (H x W) followed by interleaved U, V pairs at half resolution
(H/2 x W/2 x 2); H and W even. `bgr_to_nv12` produces exactly the bytes of the RDK model
zoo's `bgr2nv12_opencv` helper (OpenCV's BGR->I420, BT.601 limited range, chroma of each
2x2 block from its top-left pixel) without its temporary arrays (the helper itself, as the
RDK documentation gives it, is the reference for tests and benchmarks: tools/rdk_nv12.py).

`to_nv12(frame, geometry)` crops and resizes in the frame's own pixel format: NV12 and
YUV422 frames are resized plane by plane, never round-tripped through BGR.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from .frames import FrameError


def nv12_size(width, height):
    return width * height * 3 // 2


def _i420_to_nv12(i420, width, height, out):
    area = width * height
    quarter = area // 4
    out[:area] = i420[:area]
    uv = out[area:].reshape(height // 2, width // 2, 2)
    uv[..., 0] = i420[area:area + quarter].reshape(height // 2, width // 2)
    uv[..., 1] = i420[area + quarter:].reshape(height // 2, width // 2)
    return out


_TO_I420 = {'bgr': cv2.COLOR_BGR2YUV_I420, 'rgb': cv2.COLOR_RGB2YUV_I420,
            'bgra': cv2.COLOR_BGRA2YUV_I420, 'rgba': cv2.COLOR_RGBA2YUV_I420}


def color_to_nv12(image, kind='bgr', out=None):
    """A BGR/RGB/BGRA/RGBA image (even H, W) to NV12 bytes (1-D uint8)."""
    height, width = image.shape[:2]
    if height % 2 or width % 2:
        raise FrameError(f'NV12 needs an even width and height, got {width}x{height}')
    if out is None:
        out = np.empty(nv12_size(width, height), np.uint8)
    i420 = cv2.cvtColor(image, _TO_I420[kind])
    return _i420_to_nv12(i420.reshape(-1), width, height, out)


def bgr_to_nv12(bgr, out=None):
    """Byte-identical to the RDK helper (tools/rdk_nv12.py), faster."""
    return color_to_nv12(bgr, 'bgr', out)


def nv12_to_rgb(nv12, width, height, out=None, order='rgb'):
    """NV12 bytes to an H x W x 3 RGB (or BGR) image, as the float path feeds the model."""
    code = cv2.COLOR_YUV2RGB_NV12 if order == 'rgb' else cv2.COLOR_YUV2BGR_NV12
    return cv2.cvtColor(nv12.reshape(height * 3 // 2, width), code, dst=out)


# Black in YUV (BT.601 limited range, as OpenCV's BGR->I420): padding for letterbox.
_BLACK_YUV = cv2.cvtColor(np.zeros((2, 2, 3), np.uint8), cv2.COLOR_BGR2YUV_I420).reshape(-1)
BLACK_Y, BLACK_U, BLACK_V = int(_BLACK_YUV[0]), int(_BLACK_YUV[4]), int(_BLACK_YUV[5])


@dataclass(frozen=True)
class Geometry:
    """How a frame maps onto the model input: resize_crop | letterbox | stretch."""
    width: int
    height: int
    mode: str = 'resize_crop'
    short_side: int = 256

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.input_width, cfg.input_height, cfg.resize_mode, cfg.resize_short_side)

    def reduction(self, src_w, src_h):
        """The largest of 8, 4, 2 (else 1) a src_w x src_h image can be shrunk by before
        plan() without losing what the model input needs: the short side stays at least
        short_side (resize_crop), or both sides at least the input's."""
        for factor in (8, 4, 2):
            w, h = -(-src_w // factor), -(-src_h // factor)  # libjpeg rounds up
            if self.mode == 'resize_crop' and self.short_side:
                enough = min(w, h) >= self.short_side
            else:
                enough = w >= self.width and h >= self.height
            if enough:
                return factor
        return 1

    def plan(self, src_w, src_h, align=1):
        """(src_rect, dst_rect), rects as (x, y, w, h); align=2 keeps chroma aligned."""
        out_w, out_h = self.width, self.height
        if self.mode == 'stretch':
            return (0, 0, src_w, src_h), (0, 0, out_w, out_h)
        if self.mode == 'resize_crop':
            if self.short_side:
                scale = self.short_side / min(src_w, src_h)
            else:
                scale = max(out_w / src_w, out_h / src_h)
            crop_w = min(src_w, max(align, int(round(out_w / scale))))
            crop_h = min(src_h, max(align, int(round(out_h / scale))))
            crop_w -= crop_w % align
            crop_h -= crop_h % align
            x = (src_w - crop_w) // 2
            y = (src_h - crop_h) // 2
            x -= x % align
            y -= y % align
            return (x, y, crop_w, crop_h), (0, 0, out_w, out_h)
        # letterbox: keep the aspect ratio, pad with black; content kept on even pixels
        scale = min(out_w / src_w, out_h / src_h)
        dst_w = max(2, int(round(src_w * scale)) // 2 * 2)
        dst_h = max(2, int(round(src_h * scale)) // 2 * 2)
        dst_x = (out_w - dst_w) // 2 // 2 * 2
        dst_y = (out_h - dst_h) // 2 // 2 * 2
        return (0, 0, src_w, src_h), (dst_x, dst_y, dst_w, dst_h)


# Frame kinds whose chroma is shared by pixel pairs: their crops start and end on even pixels
YUV_KINDS = ('nv12', 'yuyv', 'uyvy')


def chroma_align(frame):
    """The pixel alignment a crop of `frame` needs (Geometry.plan's align): 2 for YUV."""
    return 2 if frame.kind in YUV_KINDS else 1


def _resize(image, width, height):
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _planes(out, width, height):
    area = width * height
    return out[:area].reshape(height, width), out[area:].reshape(height // 2, width // 2, 2)


def to_nv12(frame, geometry, out=None):
    """Crop/resize a Frame to the model input and return NV12 bytes (1-D uint8).

    `out`, a preallocated buffer of nv12_size(width, height) bytes, is filled and returned.
    """
    W, H = geometry.width, geometry.height
    if out is None:
        out = np.empty(nv12_size(W, H), np.uint8)
    yuv = frame.kind in YUV_KINDS
    (sx, sy, sw, sh), (dx, dy, dw, dh) = geometry.plan(frame.width, frame.height,
                                                       align=chroma_align(frame))
    full = (dx, dy, dw, dh) == (0, 0, W, H)
    if not yuv:
        roi = frame.data[sy:sy + sh, sx:sx + sw]
        kind = frame.kind
        if kind == 'gray':
            roi = cv2.cvtColor(_resize(roi, dw, dh), cv2.COLOR_GRAY2BGR)
            kind = 'bgr'
        else:
            roi = _resize(roi, dw, dh)
        if full:
            return color_to_nv12(roi, kind, out)
        canvas = np.zeros((H, W, roi.shape[2]), np.uint8)
        canvas[dy:dy + dh, dx:dx + dw] = roi
        return color_to_nv12(canvas, kind, out)

    if frame.kind == 'nv12':
        y_src = frame.data[sy:sy + sh, sx:sx + sw]
        uv_src = frame.uv[sy // 2:(sy + sh) // 2, sx // 2:(sx + sw) // 2]
    else:
        packed = frame.data[sy:sy + sh, sx:sx + sw]  # (h, w, 2) byte pairs
        quads = packed.reshape(sh, sw // 2, 4)  # Y0 U Y1 V (yuyv) or U Y0 V Y1 (uyvy)
        y_src = packed[..., 0] if frame.kind == 'yuyv' else packed[..., 1]
        u_idx, v_idx = (1, 3) if frame.kind == 'yuyv' else (0, 2)
        # 4:2:2 -> 4:2:0: each output chroma row comes from the resize below
        uv_src = np.stack((quads[..., u_idx], quads[..., v_idx]), axis=-1)
    y_out, uv_out = _planes(out, W, H)
    if not full:
        y_out[:] = BLACK_Y
        uv_out[..., 0] = BLACK_U
        uv_out[..., 1] = BLACK_V
    y_out[dy:dy + dh, dx:dx + dw] = _resize(np.ascontiguousarray(y_src), dw, dh)
    uv_out[dy // 2:(dy + dh) // 2, dx // 2:(dx + dw) // 2] = _resize(
        np.ascontiguousarray(uv_src), dw // 2, dh // 2)
    return out
