"""Backends: ONNX Runtime on real models; the BPU adapter against a fake hobot_dnn that
follows the board's documented API."""
import os
import sys
import threading

import numpy as np
import pytest

from edge_classifier.backends import BackendError, create_backend
from edge_classifier.backends.bpu import MODULES
from edge_classifier.backends.onnxruntime import PROBE_EVERY, core_groups
from edge_classifier.frames import Frame, read_image
from edge_classifier.nv12 import Geometry, to_nv12

from helpers import FAKE_BPU, FAKE_HBM, compiled_model, tiny_config, tiny_onnx


@pytest.fixture
def fake_hobot_dnn(monkeypatch):
    monkeypatch.syspath_prepend(FAKE_BPU)
    for name in [m for m in sys.modules if m.startswith('hobot_dnn')]:
        monkeypatch.delitem(sys.modules, name)
    import hobot_dnn.pyeasy_dnn as dnn
    dnn.CALLS.clear()
    return dnn


def test_onnxruntime_backend_on_the_default_model(default_cfg, samples):
    with create_backend(default_cfg, backend='onnxruntime') as backend:
        assert backend.name == 'onnxruntime' and not backend.untrained
        nv12 = to_nv12(read_image(samples['coffee']), Geometry.from_config(default_cfg))
        scores = backend.infer([nv12, nv12])
        assert scores.shape == (2, 1000) and scores.dtype == np.float32
        assert int(np.argmax(scores[0])) == 967  # espresso
        assert np.allclose(scores[0], scores[1], atol=1e-5)


def _idle_between_frames(backend):
    """As a camera at its pace: the next run starts long after the last one ended (not
    back to back), however long a run takes on this machine (a fixed sleep shorter than
    half a run on a slow one would make it back to back)."""
    backend._last_end = float('-inf')


def test_adaptive_threads_one_thread_per_inference_only_under_load(default_cfg, samples):
    """ort_adaptive_threads: sparse inferences use the wide session; inferences that
    overlap go to the single-threaded one, with the same scores."""
    nv12 = to_nv12(read_image(samples['coffee']), Geometry.from_config(default_cfg))
    cfg = default_cfg.replace(workers=2, ort_intra_op_threads=0, ort_adaptive_threads=True)
    with create_backend(cfg, backend='onnxruntime') as backend:
        assert backend._narrow is not None
        first = backend.infer([nv12])
        for _ in range(3):
            _idle_between_frames(backend)
            assert np.array_equal(backend.infer([nv12]), first)
        assert backend.narrow_runs == 0
        results = []

        def loop():
            results.extend(backend.infer([nv12]) for _ in range(20))

        threads = [threading.Thread(target=loop) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert backend.narrow_runs >= 10, 'back-to-back runs of two workers stay narrow'
        for scores in results:
            assert np.allclose(scores, first, atol=1e-5)
            assert int(np.argmax(scores)) == 967
    for off in (cfg.replace(ort_adaptive_threads=False), cfg.replace(workers=1),
                cfg.replace(ort_intra_op_threads=1)):
        with create_backend(off, backend='onnxruntime') as backend:
            assert backend._narrow is None


ADAPTIVE = dict(workers=2, ort_intra_op_threads=0, ort_adaptive_threads=True)


class _SessionSpy:
    """Wraps an ORT session: which threads ran on it, and whether two runs overlapped."""

    def __init__(self, session):
        self.session, self.runs, self.overlapped = session, 0, 0
        self.cpus = []          # the CPUs the calling thread could run on, each run
        self._active, self._lock = 0, threading.Lock()

    def run(self, *args):
        with self._lock:
            self._active += 1
            self.runs += 1
            self.overlapped += self._active > 1
            self.cpus.append(os.sched_getaffinity(0))
        try:
            return self.session.run(*args)
        finally:
            with self._lock:
                self._active -= 1


def test_adaptive_threads_really_run_on_the_session_they_choose(default_cfg, samples):
    """Not only the counter: sparse runs execute on the wide session (ORT's default thread
    count), overlapping runs on the single-threaded one."""
    nv12 = to_nv12(read_image(samples['coffee']), Geometry.from_config(default_cfg))
    cfg = default_cfg.replace(workers=2, ort_intra_op_threads=0, ort_adaptive_threads=True)
    with create_backend(cfg, backend='onnxruntime') as backend:
        wide, narrow = _SessionSpy(backend.session), _SessionSpy(backend._narrow)
        assert backend._narrow.get_session_options().intra_op_num_threads == 1
        assert backend.session.get_session_options().intra_op_num_threads != 1
        backend.session, backend._narrow = wide, narrow
        for _ in range(3):
            _idle_between_frames(backend)
            backend.infer([nv12])
        assert (wide.runs, narrow.runs) == (3, 0)
        barrier = threading.Barrier(2)

        def loop():
            barrier.wait()
            for _ in range(20):
                backend.infer([nv12])

        threads = [threading.Thread(target=loop) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wide.runs + narrow.runs == 43
        assert narrow.runs >= 10 and narrow.runs == backend.narrow_runs
        assert narrow.overlapped > 0 and wide.overlapped == 0, \
            'two runs at once never share the wide session'


def _thread_cpus():
    """{thread id: the CPUs it may run on} of this process's threads (Linux /proc)."""
    cpus = {}
    for tid in os.listdir('/proc/self/task'):
        try:
            cpus[int(tid)] = os.sched_getaffinity(int(tid))
        except OSError:   # ended meanwhile
            pass
    return cpus


def _two_cores():
    return len(core_groups(os.sched_getaffinity(0))) >= 2


@pytest.mark.skipif(not hasattr(os, 'sched_getaffinity') or not _two_cores(),
                    reason='pinning needs at least 2 cores')
def test_the_wide_session_and_the_worker_running_it_are_on_different_cores(
        default_cfg, samples):
    """ONNX Runtime's helper once queued behind the worker that called the run, on the
    same CPU, while the other idled (perf sched; a third of the runs took 18 ms, not 7):
    the wide session's helpers are pinned one per core, the worker running it to the
    remaining core for that run only; narrow runs and the worker afterwards are not."""
    nv12 = to_nv12(read_image(samples['coffee']), Geometry.from_config(default_cfg))
    allowed = os.sched_getaffinity(0)
    groups = core_groups(allowed)
    before = set(_thread_cpus())
    with create_backend(default_cfg.replace(**ADAPTIVE), backend='onnxruntime') as backend:
        pinning = backend.pinning
        assert pinning.caller == set(groups[0]) and pinning.threads == len(groups)
        assert backend.session.get_session_options().intra_op_num_threads == len(groups)
        helpers = [cpus for tid, cpus in _thread_cpus().items() if tid not in before]
        for group in groups[1:]:
            assert set(group) in helpers, f'no ONNX Runtime thread pinned to {group}'
        wide, narrow = _SessionSpy(backend.session), _SessionSpy(backend._narrow)
        backend.session, backend._narrow = wide, narrow
        expected = backend.infer([nv12])
        for _ in range(3):
            _idle_between_frames(backend)
            assert np.array_equal(backend.infer([nv12]), expected)
        backend._running = 1       # as if another worker's run were in flight: narrow
        assert np.allclose(backend.infer([nv12]), expected, atol=1e-5)
        backend._running = 0
        assert wide.cpus == [pinning.caller] * 4 and narrow.cpus == [allowed]
        assert os.sched_getaffinity(0) == allowed, 'the worker is unpinned after the run'
    off = default_cfg.replace(**{**ADAPTIVE, 'ort_intra_op_threads': 2})   # the user's count
    with create_backend(off, backend='onnxruntime') as backend:
        assert backend.pinning is None


def test_core_groups_put_smt_siblings_together(tmp_path):
    """One group per physical core, as ONNX Runtime counts its default threads; a CPU
    whose topology is unreadable is a core of its own."""
    for cpu, package, core in [(0, 0, 0), (1, 0, 1), (2, 0, 0), (3, 0, 1), (4, 1, 0)]:
        topology = tmp_path / f'cpu{cpu}' / 'topology'
        topology.mkdir(parents=True)
        (topology / 'physical_package_id').write_text(f'{package}\n')
        (topology / 'core_id').write_text(f'{core}\n')
    assert core_groups({3, 2, 1, 0, 4, 7}, tmp_path) == [[0, 2], [1, 3], [4], [7]]
    assert core_groups({1, 3}, tmp_path) == [[1, 3]]


def test_a_pin_the_kernel_refuses_runs_the_inference_where_the_thread_is(default_cfg,
                                                                         samples):
    """A cpuset that changed under the node (a CPU taken away): the run goes on unpinned."""
    nv12 = to_nv12(read_image(samples['coffee']), Geometry.from_config(default_cfg))
    with create_backend(default_cfg.replace(**ADAPTIVE), backend='onnxruntime') as backend:
        if backend.pinning is None:
            pytest.skip('pinning needs at least 2 cores')
        expected = backend.infer([nv12])
        before = os.sched_getaffinity(0)
        backend.pinning.caller = {max(before) + 4096}   # no such CPU
        _idle_between_frames(backend)
        assert np.array_equal(backend.infer([nv12]), expected)
        assert os.sched_getaffinity(0) == before


class _TimedSession:
    """A session stand-in on a test clock: each run takes `ms` of it (a list: its runs in
    turn, the last one repeated)."""

    def __init__(self, clock, ms, log, name):
        self.ms = list(ms) if isinstance(ms, (list, tuple)) else [ms]
        self.clock, self.log, self.name = clock, log, name

    def run(self, *args):
        self.log.append(self.name)
        self.clock.now += (self.ms.pop(0) if len(self.ms) > 1 else self.ms[0]) / 1000
        return [np.zeros((1, 1000), np.float32)]


class _Clock:
    now = 100.0

    def __call__(self):
        return self.now


def _camera(cfg, wide_ms, narrow_ms, frames, hz=30.0, overlap=(), gap_ms=None):
    """A camera at `hz` (or a flood: each frame `gap_ms` after the last one ended) into the
    adaptive backend on a test clock; frames in `overlap` start while another worker's
    inference runs. Which session each frame ran on."""
    clock, log = _Clock(), []
    with create_backend(cfg, backend='onnxruntime') as backend:
        backend.clock = clock
        backend.session = _TimedSession(clock, wide_ms, log, 'wide')
        backend._narrow = _TimedSession(clock, narrow_ms, log, 'narrow')
        blob = np.zeros((1, 3, 224, 224), np.float32)
        for i in range(frames):
            clock.now = (clock.now + gap_ms / 1000 if gap_ms is not None else
                         max(clock.now, 100.0 + i / hz))
            backend._running = int(i in overlap)
            backend.run_blob(blob)
    return log


def _probes(frames):
    """At most how many of `frames` runs alone went to the other session to measure it."""
    return frames // PROBE_EVERY + 1


def test_sparse_frames_go_back_to_the_wide_session_after_a_narrow_run(default_cfg):
    """A slow CPU at 30 Hz: one thread takes 24 ms, two 14 ms, a frame comes every 33 ms.
    After one run went narrow (it overlapped another), the next sparse frames run wide
    again (a margin of half the last run, 24 ms, once kept every later frame narrow); back
    to back (a flood), the frames run narrow."""
    cfg = default_cfg.replace(**ADAPTIVE)
    log = _camera(cfg, 14, 24, frames=60, overlap={30})
    assert log[30] == 'narrow' and log[31] == 'wide'
    assert log[31:].count('narrow') <= _probes(29)
    log = _camera(cfg, 14, 24, frames=40, gap_ms=1)
    assert log[:2] == ['wide'] * 2      # (the first run is cold: the second one measures)
    assert log[2:].count('wide') <= _probes(38)


@pytest.mark.parametrize('wide_ms, narrow_ms, best', [
    (6, 9.3, 'wide'),     # an idle 2-core VM (Lite0)
    (14, 24, 'wide'),     # a slower CPU
    (25, 15, 'narrow'),   # a CPU quota of 0.8 core: two threads wait on each other
])
def test_a_frame_alone_runs_on_the_session_that_was_faster_alone_here(
        default_cfg, wide_ms, narrow_ms, best):
    """Each session's first run is cold (the workers' warm-up: 52 ms where a frame then
    took 6, once enough to keep a 30 Hz camera narrow) and does not count; after a few
    frames of each, a 30 Hz camera's frames run on the faster one, and now and then one on
    the other (measured again)."""
    log = _camera(default_cfg.replace(**ADAPTIVE), [52, wide_ms], [30, narrow_ms], frames=100)
    settled = log[12:]
    other = len(settled) - settled.count(best)
    assert 0 < other <= _probes(len(settled)), log


def test_the_choice_follows_the_machine_when_its_load_changes(default_cfg):
    """The wide session is faster (6 ms against 15) until other processes take the CPU
    (25 ms from its 31st run on): within a few frames the camera's frames run narrow."""
    log = _camera(default_cfg.replace(**ADAPTIVE), [52] + [6] * 30 + [25], [30, 15],
                  frames=120)
    assert log[12:30].count('wide') >= 18 - _probes(18)
    assert log[-60:].count('narrow') >= 60 - _probes(60), log


def test_channel_order_bgr_reverses_the_channels_of_the_onnx_input(default_cfg):
    """A pure red frame: channel 0 of the blob is red for rgb models, blue for bgr ones."""
    red = np.zeros((224, 224, 3), np.uint8)
    red[..., 2] = 255
    nv12 = to_nv12(Frame('bgr', red), Geometry.from_config(default_cfg))
    cfg = default_cfg.replace(mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])
    rgb = create_backend(cfg, backend='onnxruntime').preprocess([nv12])[0].copy()
    bgr = create_backend(cfg.replace(channel_order='bgr'),
                         backend='onnxruntime').preprocess([nv12])[0].copy()
    assert rgb[0].mean() > 200 and rgb[2].mean() < 40
    assert np.array_equal(bgr, rgb[::-1])


def test_preprocess_is_nv12_to_rgb_normalized_nchw(default_cfg):
    backend = create_backend(default_cfg, backend='onnxruntime')
    nv12 = np.full(224 * 224 * 3 // 2, 128, np.uint8)
    nv12[:224 * 224] = 235  # Y=235, U=V=128: white in limited range
    blob = backend.preprocess([nv12])
    assert blob.shape == (1, 3, 224, 224) and blob.dtype == np.float32
    assert np.allclose(blob, (255 - 127) / 128, atol=0.02)


def test_missing_model_names_path_and_fix(tmp_path):
    cfg = tiny_config(tmp_path, onnx_path='nope.onnx')
    with pytest.raises(BackendError) as err:
        create_backend(cfg).load()
    message = str(err.value)
    assert str(tmp_path / 'nope.onnx') in message and 'onnx_path' in message
    assert 'copy the model to' in message  # no source to prepare it from


def test_corrupt_model_file(tmp_path):
    cfg = tiny_config(tmp_path)
    (tmp_path / 'tiny.onnx').write_bytes(b'\x08\x01garbage' * 10)
    with pytest.raises(BackendError, match='cannot load .*tiny.onnx'):
        create_backend(cfg).load()


def test_input_size_mismatch_is_reported(tmp_path):
    cfg = tiny_config(tmp_path)
    tiny_onnx(tmp_path / 'tiny.onnx', size=64)
    with pytest.raises(BackendError, match=r'\[N, 3, 32, 32\]'):
        create_backend(cfg).load()


def test_class_count_mismatch_is_reported(tmp_path):
    cfg = tiny_config(tmp_path)
    tiny_onnx(tmp_path / 'tiny.onnx', classes=7)
    with create_backend(cfg) as backend, pytest.raises(BackendError, match='outputs 7 scores'):
        backend.infer([np.zeros(32 * 32 * 3 // 2, np.uint8)])


def test_untrained_metadata_is_detected_and_fixed_batch_models_work(tmp_path):
    cfg = tiny_config(tmp_path)
    tiny_onnx(tmp_path / 'tiny.onnx', batch=1, weights='untrained')
    with create_backend(cfg) as backend:
        assert backend.untrained and 'UNTRAINED' in backend.describe()
        assert backend.infer([np.zeros(1536, np.uint8)] * 3).shape == (3, 10)


def test_unknown_backend_name(tmp_path):
    with pytest.raises(BackendError, match="unknown backend 'tpu'"):
        create_backend(tiny_config(tmp_path), backend='tpu')


def test_bpu_without_hobot_dnn_says_what_to_do(tmp_path, monkeypatch):
    # (the submodules too: a test with the fake module before this one leaves them imported)
    for name in ('hobot_dnn', 'hobot_dnn_rdkx5', *MODULES):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(BackendError, match='hobot_dnn.*backend: onnxruntime'):
        create_backend(tiny_config(tmp_path), backend='bpu').load()
    # auto falls back to ONNX Runtime off the board
    assert create_backend(tiny_config(tmp_path, backend='auto')).name == 'onnxruntime'


def test_bpu_backend_matches_onnxruntime_on_the_same_nv12(
        default_cfg, samples, tmp_path, fake_hobot_dnn):
    bin_path = compiled_model(tmp_path / 'lite0.bin', default_cfg.resolve(default_cfg.onnx_path),
                              default_cfg)
    cfg = default_cfg.replace(bpu_path=str(bin_path), bpu_core_id=1, bpu_priority=7)
    geometry = Geometry.from_config(cfg)
    nv12 = [to_nv12(read_image(samples[n]), geometry) for n in ('chelsea', 'coffee')]
    with create_backend(cfg, backend='bpu') as bpu, \
            create_backend(cfg, backend='onnxruntime') as ort_backend:
        assert bpu.name == 'bpu'
        a, b = bpu.infer(nv12), ort_backend.infer(nv12)
    assert a.shape == (2, 1000)
    assert np.allclose(a, b, atol=1e-3)
    assert fake_hobot_dnn.CALLS == [{'core_id': 1, 'priority': 7}] * 2
    # auto picks the BPU where hobot_dnn imports and the .bin exists
    assert create_backend(cfg.replace(backend='auto')).name == 'bpu'


def test_bpu_checks_the_compiled_input(default_cfg, tmp_path, fake_hobot_dnn):
    onnx_path = default_cfg.resolve(default_cfg.onnx_path)
    cases = [({'tensor_type': 'RGB'}, 'input tensor type is RGB'),
             ({'shape': [1, 3, 256, 256]}, 'model input is 256x256'),
             ({'layout': 'NHWC', 'shape': [1, 224, 224, 3]}, None)]
    for overrides, error in cases:
        bin_path = compiled_model(tmp_path / 'm.bin', onnx_path, default_cfg, **overrides)
        backend = create_backend(default_cfg.replace(bpu_path=str(bin_path)), backend='bpu')
        if error:
            with pytest.raises(BackendError, match=error):
                backend.load()
        else:
            backend.load()
    with pytest.raises(BackendError, match='not found'):
        create_backend(default_cfg.replace(bpu_path=str(tmp_path / 'x.bin')), backend='bpu').load()


def test_preprocess_matches_the_numpy_reference_with_per_channel_std(default_cfg):
    import cv2
    cfg = default_cfg.replace(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
    backend = create_backend(cfg, backend='onnxruntime')
    nv12 = [np.random.default_rng(i).integers(0, 256, 224 * 336, dtype=np.uint8)
            for i in range(2)]
    blob = backend.preprocess(nv12)
    for i, buf in enumerate(nv12):
        rgb = cv2.cvtColor(buf.reshape(336, 224), cv2.COLOR_YUV2RGB_NV12).astype(np.float32)
        ref = ((rgb - np.float32(cfg.mean)) / np.float32(cfg.std)).transpose(2, 0, 1)
        assert np.abs(blob[i] - ref).max() < 1e-5


@pytest.mark.parametrize('spinning, allow, stop', [('never', '0', None), ('in_run', '1', '1'),
                                                   ('always', '1', None)])
@pytest.mark.parametrize('optimization, level', [('all', 'ORT_ENABLE_ALL'),
                                                 ('basic', 'ORT_ENABLE_BASIC'),
                                                 ('extended', 'ORT_ENABLE_EXTENDED'),
                                                 ('disable', 'ORT_DISABLE_ALL')])
def test_sessions_are_made_as_the_config_says(tmp_path, spinning, allow, stop, optimization,
                                              level):
    """Both sessions (wide and single-threaded): CPU only, sequential, quiet, the threads,
    spinning and graph optimization of the config."""
    import onnxruntime as ort
    cfg = tiny_config(tmp_path, ort_spinning=spinning, ort_intra_op_threads=3,
                      ort_graph_optimization=optimization)
    with create_backend(cfg) as backend:
        backend.load()
        sessions = [backend.session, backend._narrow]
        for session, threads in zip(sessions, (3, 1)):
            opts = session.get_session_options()
            assert session.get_providers() == ['CPUExecutionProvider']
            assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (threads, 1)
            assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
            assert opts.graph_optimization_level == getattr(ort.GraphOptimizationLevel, level)
            assert opts.log_severity_level == 3
            assert opts.get_session_config_entry('session.intra_op.allow_spinning') == allow
            if stop is None:
                with pytest.raises(Exception):
                    opts.get_session_config_entry('session.force_spinning_stop')
            else:
                assert opts.get_session_config_entry('session.force_spinning_stop') == stop


def test_backend_messages_name_the_file_the_config_and_the_fix(tmp_path, default_cfg):
    cfg = tiny_config(tmp_path)
    with create_backend(cfg) as backend:
        assert backend.describe() == f'onnxruntime {tmp_path}/tiny.onnx (UNTRAINED (random ' \
                                     'weights))'
        assert (backend.width, backend.height, backend.num_classes) == (32, 32, 10)
        with pytest.raises(BackendError) as err:
            backend._check_output(np.zeros((2, 7)), 2)
        assert str(err.value) == (f'{tmp_path}/tiny.onnx: model outputs 7 scores per image, '
                                  f'config {tmp_path}/tiny.yaml says 10 (num_classes)')
        scores = backend._check_output(np.ones(20, np.float64), 2)
        assert scores.shape == (2, 10) and scores.dtype == np.float32
    assert not backend.loaded
    with create_backend(default_cfg) as trained:
        assert trained.describe().endswith('efficientnet_lite0.onnx (trained)')
    with pytest.raises(BackendError) as err:
        create_backend(tiny_config(tmp_path, onnx_path='nope.onnx')).load()
    assert str(err.value) == (
        f'onnxruntime: model file {tmp_path}/nope.onnx not found (onnx_path in '
        f'{tmp_path}/tiny.yaml). Fix: copy the model to {tmp_path}/nope.onnx; or point '
        'onnx_path / models_dir at the file')


def test_a_broken_hobot_dnn_install_is_reported_per_module(tmp_path, monkeypatch):
    """Not installed (ImportError) and installed but broken (a missing .so: OSError): each
    module named with its reason, then what to do off the board."""
    from edge_classifier.backends.bpu import BpuBackend, import_dnn
    broken = tmp_path / 'hobot_dnn'
    broken.mkdir()
    (broken / '__init__.py').write_text('')
    (broken / 'pyeasy_dnn.py').write_text("raise OSError('libdnn.so: cannot open')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith('hobot_dnn')]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, 'hobot_dnn_rdkx5', None)
    monkeypatch.setitem(sys.modules, 'hobot_dnn_rdkx5.pyeasy_dnn', None)
    with pytest.raises(BackendError) as err:
        import_dnn()
    assert str(err.value) == (
        "the BPU backend needs the board's hobot_dnn Python API (RDK X5 image, or `pip install "
        "hobot-dnn-rdkx5` on the board); not importable here: hobot_dnn.pyeasy_dnn: OSError: "
        "libdnn.so: cannot open; hobot_dnn_rdkx5.pyeasy_dnn: import of "
        "hobot_dnn_rdkx5.pyeasy_dnn halted; None in sys.modules. Off the board use backend: "
        "onnxruntime")
    with pytest.raises(BackendError) as err:
        BpuBackend(tiny_config(tmp_path)).infer([np.zeros(1536, np.uint8)])
    assert str(err.value) == 'bpu backend used before load()'


# ---- the newer runtime, hbm_runtime, and the board's preinstalled models ---------------------
@pytest.fixture
def only_hbm_runtime(monkeypatch):
    yield _only_hbm_runtime(monkeypatch)
    sys.modules.pop('hbm_runtime', None)   # later tests: not importable again


def _only_hbm_runtime(monkeypatch):
    """A board with hbm_runtime (the fake) and no hobot_dnn."""
    monkeypatch.syspath_prepend(FAKE_HBM)
    for name in ('hobot_dnn', 'hobot_dnn_rdkx5', *MODULES):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, 'hbm_runtime', raising=False)
    import hbm_runtime
    hbm_runtime.CALLS.clear()
    hbm_runtime.SCHEDULING.clear()
    return hbm_runtime


def test_hbm_runtime_runs_the_compiled_model_with_the_packed_nv12_and_its_scheduling(
        default_cfg, samples, tmp_path, only_hbm_runtime):
    bin_path = compiled_model(tmp_path / 'lite0.bin', default_cfg.resolve(default_cfg.onnx_path),
                              default_cfg, name='lite0')
    cfg = default_cfg.replace(bpu_path=str(bin_path), bpu_core_id=2, bpu_priority=7)
    geometry = Geometry.from_config(cfg)
    nv12 = [to_nv12(read_image(samples[n]), geometry) for n in ('chelsea', 'coffee')]
    with create_backend(cfg, backend='bpu') as hbm, \
            create_backend(cfg, backend='onnxruntime') as ort_backend:
        assert type(hbm).__name__ == 'HbmBackend' and hbm.name == 'bpu'
        assert hbm.describe() == f'bpu (hbm_runtime) {bin_path}'
        scores = hbm.infer(nv12)
        assert np.allclose(scores, ort_backend.infer(nv12), atol=1e-3)
    assert int(np.argmax(scores[1])) == 967
    assert only_hbm_runtime.SCHEDULING == [{'priority': {'lite0': 7}, 'bpu_cores': {'lite0': [1]}}]
    assert only_hbm_runtime.CALLS == [{'model': 'lite0', 'input': 'images'}] * 2
    with create_backend(cfg.replace(bpu_core_id=0, bpu_priority=0), backend='bpu'):
        assert only_hbm_runtime.SCHEDULING[-1] == {'priority': {'lite0': 0}, 'bpu_cores': {}}
    assert create_backend(cfg.replace(backend='auto')).name == 'bpu'   # only hbm_runtime here
    with pytest.raises(BackendError, match='model input is 256x256'):
        create_backend(cfg.replace(bpu_path=str(compiled_model(
            tmp_path / 'big.bin', default_cfg.resolve(default_cfg.onnx_path), default_cfg,
            shape=[1, 3, 256, 256]))), backend='bpu').load()


def test_both_adapters_give_identical_scores_on_the_same_nv12(default_cfg, samples, tmp_path,
                                                              monkeypatch, fake_hobot_dnn):
    bin_path = compiled_model(tmp_path / 'lite0.bin', default_cfg.resolve(default_cfg.onnx_path),
                              default_cfg)
    cfg = default_cfg.replace(bpu_path=str(bin_path))
    nv12 = [to_nv12(read_image(samples['chelsea']), Geometry.from_config(cfg))]
    with create_backend(cfg, backend='bpu') as pyeasy:
        assert type(pyeasy).__name__ == 'BpuBackend'     # hobot_dnn first where both import
        first = pyeasy.infer(nv12)
    try:
        _only_hbm_runtime(monkeypatch)
        with create_backend(cfg, backend='bpu') as hbm:
            assert type(hbm).__name__ == 'HbmBackend'
            assert np.array_equal(hbm.infer(nv12), first)
    finally:
        sys.modules.pop('hbm_runtime', None)


def test_without_either_runtime_the_error_names_both(tmp_path, monkeypatch):
    for name in ('hobot_dnn', 'hobot_dnn_rdkx5', *MODULES, 'hbm_runtime'):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(BackendError) as err:
        create_backend(tiny_config(tmp_path), backend='bpu').load()
    assert 'hobot_dnn.pyeasy_dnn' in str(err.value) and 'hbm_runtime' in str(err.value)
    assert 'backend: onnxruntime' in str(err.value)


def test_a_relative_bpu_path_is_found_among_the_boards_preinstalled_models(
        default_cfg, tmp_path, fake_hobot_dnn):
    board, models = tmp_path / 'opt_hobot_model_x5_basic', tmp_path / 'models'
    board.mkdir()
    models.mkdir()
    name = 'mobilenetv2_224x224_nv12.bin'
    compiled_model(board / name, default_cfg.resolve(default_cfg.onnx_path), default_cfg)
    cfg = default_cfg.replace(bpu_path=name, models_dir=str(models),
                              board_model_dirs=['/nonexistent/dir', str(board)])
    backend = create_backend(cfg, backend='auto')
    assert backend.name == 'bpu' and backend.model_path == board / name
    assert backend.describe() == f"bpu (hobot_dnn) {board / name}, from the board's models " \
                                 f"({board})"
    compiled_model(models / name, default_cfg.resolve(default_cfg.onnx_path), default_cfg)
    assert create_backend(cfg, backend='bpu').model_path == models / name   # its own first
    (models / name).unlink()
    (board / name).unlink()
    with pytest.raises(BackendError) as err:
        create_backend(cfg, backend='bpu').load()
    assert f'{models / name} not found (bpu_path in ' in str(err.value)
    assert f', nor in /nonexistent/dir, {board}). Fix: copy' in str(err.value)
    assert create_backend(cfg, backend='auto').name == 'onnxruntime'


class _Runtime:
    """An hbm_runtime double for the adapter's error paths (the fake in test/fake_hbm is the
    documented API's happy path): `spec` says what the runtime reports or raises."""
    spec = {}

    def __init__(self, path):
        if 'load' in self.spec:
            raise RuntimeError(self.spec['load'])
        self.model_names = self.spec.get('names', ['m'])
        self.input_names = {'m': self.spec.get('inputs', ['images'])}
        self.output_names = {'m': self.spec.get('outputs', ['scores'])}
        self.input_shapes = {'m': {'images': self.spec.get('shape', (1, 3, 32, 32))}}

    def set_scheduling_params(self, **kwargs):
        if 'scheduling' in self.spec:
            raise ValueError(self.spec['scheduling'])

    def run(self, inputs):
        (name, tensors), = inputs.items()
        (_, arr), = tensors.items()
        assert arr.shape == (1, 48, 32, 1) and arr.dtype == np.uint8
        return {name: {'scores': np.arange(10, dtype=np.float64).reshape(1, 10, 1, 1)}}


@pytest.mark.parametrize('spec, message', [
    ({'load': 'bad magic'}, 'hbm_runtime cannot load {bin}: bad magic'),
    ({'names': []}, 'hbm_runtime loaded no model from {bin}'),
    ({'inputs': ['y', 'uv']}, "{bin}: model m has inputs ['y', 'uv'] and outputs ['scores']; "
                              "this package feeds one NV12 input"),
    ({'outputs': []}, "{bin}: model m has inputs ['images'] and outputs []; this package "
                      "feeds one NV12 input"),
    ({'shape': (1, 32, 32)}, '{bin}: unexpected input shape (1, 32, 32)'),
    ({'shape': (1, 3, 32, 64)}, '{bin}: model input is 64x32 (NCHW (1, 3, 32, 64)), the config '
                                'expects 32x32'),
    ({'scheduling': 'no such core'}, "hbm_runtime refused the scheduling parameters "
                                     "{{'priority': {{'m': 0}}}} (bpu_priority, bpu_core_id): "
                                     "no such core"),
])
def test_hbm_runtime_adapter_says_what_is_wrong(tmp_path, monkeypatch, spec, message):
    import types
    monkeypatch.setattr(_Runtime, 'spec', spec)
    for name in ('hobot_dnn', 'hobot_dnn_rdkx5', *MODULES):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, 'hbm_runtime', types.SimpleNamespace(HB_HBMRuntime=_Runtime))
    cfg = tiny_config(tmp_path, backend='bpu', bpu_path=str(tmp_path / 'm.bin'))
    (tmp_path / 'm.bin').write_text('compiled')
    with pytest.raises(BackendError) as err:
        create_backend(cfg).load()
    assert str(err.value) == message.format(bin=tmp_path / 'm.bin')


def test_hbm_runtime_adapter_scores_before_load_missing_files_and_a_broken_install(
        tmp_path, monkeypatch):
    import types
    from edge_classifier.backends.hbm import HbmBackend, import_hbm
    monkeypatch.setattr(_Runtime, 'spec', {})
    monkeypatch.setitem(sys.modules, 'hbm_runtime', types.SimpleNamespace(HB_HBMRuntime=_Runtime))
    (tmp_path / 'm.bin').write_text('compiled')
    cfg = tiny_config(tmp_path, bpu_path=str(tmp_path / 'm.bin'))
    backend = HbmBackend(cfg)
    with pytest.raises(BackendError, match=r'^bpu backend used before load\(\)$'):
        backend.infer([np.zeros(1536, np.uint8)])
    with backend:
        scores = backend.infer([np.zeros(1536, np.uint8)] * 2)
        assert backend.describe() == f'bpu (hbm_runtime) {tmp_path / "m.bin"}'
    assert scores.dtype == np.float32 and scores.shape == (2, 10) and scores[0, 9] == 9
    assert backend.rt is None and not backend.loaded
    with pytest.raises(BackendError) as err:
        HbmBackend(cfg.replace(bpu_path=str(tmp_path / 'gone.bin'))).load()
    assert f'{tmp_path / "gone.bin"} not found (bpu_path in {tmp_path / "tiny.yaml"}). Fix' \
        in str(err.value)                            # absolute: looked nowhere else
    with pytest.raises(BackendError) as err:
        HbmBackend(cfg.replace(bpu_path='gone.bin', board_model_dirs=['/b'])).load()
    assert f'{tmp_path / "gone.bin"} not found (bpu_path in {tmp_path / "tiny.yaml"}, nor ' \
           f'in /b). Fix' in str(err.value)
    broken = tmp_path / 'site'
    broken.mkdir()
    (broken / 'hbm_runtime.py').write_text("raise OSError('libhbm.so: cannot open')\n")
    monkeypatch.delitem(sys.modules, 'hbm_runtime')
    monkeypatch.syspath_prepend(str(broken))
    with pytest.raises(BackendError, match=r'^hbm_runtime: OSError: libhbm.so: cannot open$'):
        import_hbm()
    sys.modules.pop('hbm_runtime', None)
