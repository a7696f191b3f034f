"""The RDK model zoo's BGR->NV12 helper (`bgr2nv12_opencv`), as the RDK documentation gives
it: the reference that nv12.bgr_to_nv12 is tested byte-identical against and benchmarked
against (development tooling; the node uses nv12.py)."""
import cv2
import numpy as np


def rdk_bgr2nv12(image):
    """The RDK model zoo's BGR->NV12 helper (bgr2nv12_opencv), verbatim in behaviour."""
    height, width = image.shape[0], image.shape[1]
    area = height * width
    yuv420p = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).reshape((area * 3 // 2,))
    y = yuv420p[:area]
    uv_planar = yuv420p[area:].reshape((2, area // 4))
    uv_packed = uv_planar.transpose((1, 0)).reshape((area // 2,))
    nv12 = np.zeros_like(yuv420p)
    nv12[:area] = y
    nv12[area:] = uv_packed
    return nv12
