import logging

import numpy as np
import pytest

from indexers import onnx_session
from indexers.onnx_session import OnnxSession, default_threads
from mmsearch.errors import ConfigError, ModelError


@pytest.fixture()
def graph(resnet_dir):
    return resnet_dir / "image.onnx"


def test_unknown_device_names_the_choices(graph):
    with pytest.raises(ConfigError, match="device 'tpu' is not one of auto, cpu, cuda"):
        OnnxSession(graph, device="tpu")


def test_cuda_without_cuda_provider_says_how_to_fix(graph, monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ConfigError, match=r"mmsearch\[gpu\]"):
        OnnxSession(graph, device="cuda")


def test_cuda_listed_but_not_loaded_warns_once(graph, monkeypatch, caplog):
    """onnxruntime-gpu lists CUDA even when its libraries fail to load, then runs on CPU."""
    import onnxruntime

    real = onnxruntime.InferenceSession

    def fake_session(path, options, providers):
        assert providers[0] == "CUDAExecutionProvider"
        return real(path, options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(onnxruntime, "InferenceSession", fake_session)
    monkeypatch.setattr(onnx_session, "_warned", set())
    with caplog.at_level(logging.WARNING):
        first = OnnxSession(graph).warm()
        OnnxSession(graph).warm()
    assert not first.on_cuda and first.providers == ("CPUExecutionProvider",)
    warnings = [r for r in caplog.records if "could not load CUDA" in r.getMessage()]
    assert len(warnings) == 1


def test_threads_are_validated(graph, monkeypatch):
    with pytest.raises(ConfigError, match="threads=0"):
        OnnxSession(graph, threads=0)
    monkeypatch.setenv("MMSEARCH_THREADS", "two")
    with pytest.raises(ConfigError, match="MMSEARCH_THREADS='two'"):
        default_threads()
    monkeypatch.setenv("MMSEARCH_THREADS", "3")
    assert default_threads() == 3


def test_a_file_that_is_not_onnx_is_a_model_error_on_first_use(tmp_path):
    bad = tmp_path / "image.onnx"
    bad.write_bytes(b"not a protobuf")
    session = OnnxSession(bad)  # loads nothing yet
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        session.warm()
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        session.run({"pixel_values": np.zeros((1, 3, 8, 8), dtype=np.float32)})


def _pixels(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    return {"pixel_values": np.random.default_rng(seed).standard_normal((n, 3, 224, 224), dtype=np.float32)}


def test_sessions_are_made_on_first_use_one_per_lane(graph):
    session = OnnxSession(graph, device="cpu", threads=2)
    assert session.loaded == ()
    parallel = session.run(_pixels(2))
    assert session.loaded == ("parallel",)
    serial = session.run(_pixels(2), lane="serial")
    assert set(session.loaded) == {"parallel", "serial"}
    np.testing.assert_allclose(serial, parallel, atol=1e-5)
    threads = {lane: s.get_session_options().intra_op_num_threads for lane, s in session._sessions.items()}
    assert threads == {"parallel": 2, "serial": 1}


def test_one_thread_makes_a_single_session_for_both_lanes(graph):
    session = OnnxSession(graph, device="cpu", threads=1)
    session.run(_pixels(1))
    session.run(_pixels(1), lane="serial")
    assert session.loaded == ("serial",)


def test_run_many_runs_side_by_side_on_the_serial_lane_in_order(graph):
    session = OnnxSession(graph, device="cpu", threads=2)
    feeds = [_pixels(1, seed) for seed in range(5)]
    together = list(session.run_many(iter(feeds)))
    assert session.loaded == ("serial",)
    assert len(together) == 5
    for f, got in zip(feeds, together, strict=True):
        np.testing.assert_allclose(got, session.run(f, lane="serial"), atol=1e-6)
    assert not np.allclose(together[0], together[1])
