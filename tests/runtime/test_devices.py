"""Device choice: $DEEPSPARK_DEVICE, and PyTorch models asked for a GPU this build lacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepspark.errors import InvalidParameterError
from deepspark.runtime.threads import task_gpu


@pytest.mark.parametrize(("value", "gpu"), [("cpu", None), ("cuda", 0), ("CUDA:3", 3)])
def test_deepspark_device_overrides_spark(
    monkeypatch: pytest.MonkeyPatch, value: str, gpu: int | None
) -> None:
    monkeypatch.setenv("DEEPSPARK_DEVICE", value)
    assert task_gpu() == gpu


def test_bad_deepspark_device_says_what_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSPARK_DEVICE", "gpu0")
    with pytest.raises(InvalidParameterError, match="'cpu', 'cuda' or 'cuda:N'"):
        task_gpu()


def test_outside_a_task_runs_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPSPARK_DEVICE", raising=False)
    assert task_gpu() is None


def test_torchscript_asked_for_a_missing_gpu_runs_on_cpu(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from deepspark.models import torch as torch_backend

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the fallback cannot happen")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1))
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.trace(net.eval(), torch.zeros(1, 3, 8, 8)), str(path))
    torch_backend._WARNED.discard("torch-cuda")
    with pytest.warns(RuntimeWarning, match="sees 0 CUDA device"):
        model = torch_backend.TorchScriptModel(path, input_shapes=[(-1, 3, 8, 8)], gpu=0)
    assert model.device == "cpu"
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict({"input": x})["output"], want, atol=1e-6)


def test_torchscript_tf32_constants_are_rewritten(tmp_path: Path) -> None:
    """Traced convolutions carry allow_tf32=True; a GPU load turns it off (CPU results
    are unchanged, so this shows the rewrite itself)."""
    torch = pytest.importorskip("torch")
    from deepspark.models.torch import _full_fp32_convolutions

    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Conv2d(4, 2, 3))
    ).eval()
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 3, 8, 8)), str(path))
    module = torch.jit.load(str(path))

    def flags() -> list[bool]:
        return [
            list(node.inputs())[-1].toIValue()
            for sub in module.modules()
            for node in sub.graph.findAllNodes("aten::_convolution")
        ]

    assert flags() == [True, True]
    assert _full_fp32_convolutions(module) == 2
    assert flags() == [False, False]
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        torch.testing.assert_close(module(x), net(x))
