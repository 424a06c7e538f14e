import logging

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
        first = OnnxSession(graph)
        OnnxSession(graph)
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


def test_a_file_that_is_not_onnx_is_a_model_error(tmp_path):
    bad = tmp_path / "image.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        OnnxSession(bad)
