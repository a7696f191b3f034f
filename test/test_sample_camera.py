"""The sample camera's sources: bundled photos, a folder, a single image, a video file."""
import cv2
import numpy as np
import pytest

from edge_classifier.tools.sample_camera import CameraError, load_frames


def test_bundled_samples_and_resize():
    frames = load_frames('', 320, 240)
    assert {name for name, _ in frames} >= {'chelsea', 'coffee', 'camera'}
    assert all(img.shape == (240, 320, 3) for _, img in frames)


def test_folder_single_image_and_video(tmp_path, sample_bgr):
    cv2.imwrite(str(tmp_path / 'a.png'), sample_bgr['coffee'])
    cv2.imwrite(str(tmp_path / 'b.jpg'), sample_bgr['chelsea'])
    (tmp_path / 'notes.txt').write_text('not an image')
    assert [n for n, _ in load_frames(str(tmp_path))] == ['a', 'b']
    assert load_frames(str(tmp_path / 'a.png'))[0][1].shape == sample_bgr['coffee'].shape
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10, (160, 120))
    for i in range(5):
        writer.write(np.full((120, 160, 3), i * 40, np.uint8))
    writer.release()
    frames = load_frames(str(video))
    assert len(frames) == 5 and frames[0][0] == 'clip_0000'
    assert frames[0][1].shape == (120, 160, 3)


def test_bad_sources_are_clear(tmp_path):
    with pytest.raises(CameraError, match='does not exist'):
        load_frames(str(tmp_path / 'missing'))
    with pytest.raises(CameraError, match='no images'):
        load_frames(str(tmp_path))
    bad = tmp_path / 'x.mp4'
    bad.write_bytes(b'garbage')
    with pytest.raises(CameraError, match='no frames could be read'):
        load_frames(str(bad))
