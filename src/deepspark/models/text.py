"""Text models: Hugging Face / sentence-transformers folders -> ONNX + tokenizer.

A text model is a folder as ``save_pretrained`` or sentence-transformers write it:
``config.json``, weights (``model.safetensors`` or ``pytorch_model.bin``) and a fast
tokenizer (``tokenizer.json``); a sentence-transformers folder adds ``modules.json``
and a pooling configuration (``1_Pooling/config.json``).

On the driver the network is exported once to ONNX with PyTorch (cached on local disk
by the content hash of its configuration and weights) and shipped with the tokenizer
to the executors, which only need ONNX Runtime and ``tokenizers``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepspark._deps import require
from deepspark._logging import get_logger
from deepspark.errors import (
    InvalidParameterError,
    ModelLoadError,
    ModelNotFoundError,
    SignatureError,
)
from deepspark.models.cache import (
    ShippedFile,
    cache_dir,
    file_sha256,
    read_record,
    ship_file,
    write_record,
)
from deepspark.models.loader import ModelRef

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from deepspark.models.base import Signature

__all__ = [
    "POOLING_MODES",
    "ResolvedTextModel",
    "TextModelFolder",
    "export_text_onnx",
    "inspect_folder",
    "resolve_text_model",
]

log = get_logger(__name__)

#: Pooling modes of sentence-transformers' ``Pooling`` module, in its concatenation order.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")

# sentence-transformers' legacy boolean keys (``pooling_mode_mean_tokens: true``...)
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}

_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Bump when the exported graph changes, so stale cache entries are not reused.
_EXPORT_VERSION = "1"


@dataclass(frozen=True)
class TextModelFolder:
    """What deepspark needs to know about a text model folder.

    Attributes
    ----------
    root : Path
        The folder the user gave.
    transformer_dir : Path
        Folder of the Hugging Face network (``root`` itself, or the Transformer
        module's sub-folder of a sentence-transformers model).
    pooling : tuple of str
        Pooling modes, from the sentence-transformers configuration; ``("mean",)``
        for a plain Hugging Face folder (as sentence-transformers does).
    max_seq_length : int or None
        sentence-transformers' ``max_seq_length``, when set.
    max_positions : int or None
        The network's ``max_position_embeddings``.
    """

    root: Path
    transformer_dir: Path
    pooling: tuple[str, ...]
    max_seq_length: int | None
    max_positions: int | None

    @property
    def config(self) -> dict[str, Any]:
        return _read_json(self.transformer_dir / "config.json")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ModelNotFoundError(
            f"{path} not found: a text model is a folder written by save_pretrained "
            "(config.json, weights, tokenizer.json) or by sentence-transformers"
        ) from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object")
    return data


def pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    """Pooling modes from a sentence-transformers ``Pooling`` config (old or new keys).

    >>> pooling_modes({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False})
    ('mean',)
    >>> pooling_modes({"pooling_mode": ["cls", "mean"]})
    ('cls', 'mean')
    """
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for k, m in _LEGACY_POOLING_KEYS.items() if config.get(k, False))
    modes = modes or ("mean",)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise ModelLoadError(
            f"unsupported pooling mode(s) {unknown}; supported: {', '.join(POOLING_MODES)}"
        )
    if config.get("include_prompt") is False:
        log.debug("include_prompt=False has no effect: deepspark adds no prompts")
    return modes


def inspect_folder(folder: str | Path) -> TextModelFolder:
    """Read a Hugging Face or sentence-transformers folder's structure (no framework).

    Raises
    ------
    ModelNotFoundError
        The folder or its ``config.json`` is missing.
    InvalidParameterError
        A sentence-transformers module deepspark cannot run (e.g. ``Dense``).
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ModelNotFoundError(
            f"text model folder not found: {root} (pass a folder written by save_pretrained "
            "or sentence-transformers, or modelName='all-MiniLM-L6-v2')"
        )
    transformer_dir, pooling, max_seq = root, ("mean",), None
    modules_file = root / "modules.json"
    if modules_file.is_file():
        try:
            modules = json.loads(modules_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {modules_file}: {exc}") from None
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            sub = root / module.get("path", "")
            if kind == "Transformer":
                transformer_dir = sub
                st_config = sub / "sentence_bert_config.json"
                if not st_config.is_file():
                    st_config = root / "sentence_bert_config.json"
                if st_config.is_file():
                    max_seq = _read_json(st_config).get("max_seq_length")
            elif kind == "Pooling":
                pooling = pooling_modes(_read_json(sub / "config.json"))
            elif kind != "Normalize":
                # Normalize is the `normalize` Param; Dense & co. would change the vectors.
                raise InvalidParameterError(
                    f"{root}: sentence-transformers module {kind!r} is not supported "
                    "(supported: Transformer, Pooling, Normalize)"
                )
    config = _read_json(transformer_dir / "config.json")
    positions = config.get("max_position_embeddings")
    return TextModelFolder(
        root=root,
        transformer_dir=transformer_dir,
        pooling=pooling,
        max_seq_length=int(max_seq) if max_seq else None,
        max_positions=int(positions) if isinstance(positions, int) else None,
    )


def _weight_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and p.name.endswith(_WEIGHT_SUFFIXES)
        and not p.name.startswith("training_args")
    )


def _folder_key(folder: Path, head: str) -> str:
    """Content hash of a model's configuration and weights, and what is exported."""
    digest = hashlib.sha256(f"deepspark-text-{_EXPORT_VERSION}-{head}".encode())
    weights = _weight_files(folder)
    if not weights:
        raise ModelNotFoundError(
            f"no weights in {folder}: expected model.safetensors or pytorch_model.bin "
            "(as save_pretrained writes)"
        )
    for path in [folder / "config.json", *weights]:
        digest.update(path.name.encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def export_text_onnx(folder: str | Path, head: str) -> Path:
    """Export a Hugging Face network to ONNX once; cached by content hash.

    Parameters
    ----------
    folder : str or Path
        Folder with ``config.json`` and the weights.
    head : {"embedding", "classification"}
        ``"embedding"``: the base model, output ``token_embeddings`` (batch, tokens,
        hidden). ``"classification"``: a sequence-classification model, output
        ``logits`` (batch, labels).

    Returns
    -------
    Path
        The cached ``.onnx`` file; inputs ``input_ids``, ``attention_mask`` and,
        when the network takes it, ``token_type_ids`` (all int64, batch x tokens).
    """
    folder = Path(folder)
    if head not in ("embedding", "classification"):
        raise InvalidParameterError(f"head must be 'embedding' or 'classification', got {head!r}")
    key = _folder_key(folder, head)
    target = cache_dir("models") / f"text-{head}-{key[:16]}.onnx"
    if target.is_file():
        return target

    torch = require("torch", "Exporting a text model to ONNX")
    transformers = require("transformers", "Exporting a text model to ONNX")
    log.info("exporting %s to ONNX (once): %s", folder, target)
    transformers.utils.logging.disable_progress_bar()
    auto = (
        transformers.AutoModel
        if head == "embedding"
        else transformers.AutoModelForSequenceClassification
    )
    try:
        # Eager attention traces to plain ONNX ops that every ONNX Runtime runs.
        net = auto.from_pretrained(str(folder), attn_implementation="eager").eval()
    except Exception as exc:
        raise ModelLoadError(
            f"transformers cannot load {folder}: {str(exc).splitlines()[0]}"
        ) from exc

    accepted = inspect.signature(net.forward).parameters
    names = [n for n in _TOKEN_INPUTS if n in accepted]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise SignatureError(
            f"{folder}: the network's forward() does not take input_ids and attention_mask"
        )
    output = "token_embeddings" if head == "embedding" else "logits"

    class Wrapper(torch.nn.Module):
        """Keyword inputs in a fixed order, one tensor out."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):  # type: ignore[no-untyped-def]
            out = self.inner(**dict(zip(names, tensors)), return_dict=True)
            return out.last_hidden_state if head == "embedding" else out.logits

    example = tuple(
        torch.zeros(2, 8, dtype=torch.long)
        if n == "token_type_ids"
        else torch.ones(2, 8, dtype=torch.long)
        for n in names
    )
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    axes[output] = {0: "batch", 1: "tokens"} if head == "embedding" else {0: "batch"}
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's tracer chatter
            torch.onnx.export(
                Wrapper(net).eval(),
                example,
                str(tmp),
                input_names=names,
                output_names=[output],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ModelLoadError(
            f"cannot export {folder} to ONNX: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    os.replace(tmp, target)  # atomic: concurrent exporters never see a partial file
    return target


# --------------------------------------------------------------------------------------
# Driver-side resolution
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedTextModel:
    """Everything the executors need for a text model; small and picklable."""

    ref: ModelRef
    tokenizer: ShippedFile
    input_names: tuple[str, ...]
    output_name: str
    max_length: int
    pad_id: int
    pad_token: str
    pooling: tuple[str, ...] = ("mean",)
    labels: tuple[str, ...] = ()
    activation: str = "softmax"


def _tokenizer_file(folder: Path) -> Path:
    """``tokenizer.json`` of ``folder``; converted once from a slow tokenizer if missing."""
    path = folder / "tokenizer.json"
    if path.is_file():
        return path
    transformers = require("transformers", "Converting a slow tokenizer to tokenizer.json")
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    except Exception as exc:
        raise ModelLoadError(
            f"{folder} has no tokenizer.json and transformers cannot load its tokenizer: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    if not getattr(tok, "is_fast", False):
        raise ModelLoadError(
            f"{folder} has no tokenizer.json and its tokenizer has no fast version; save "
            "a fast tokenizer with save_pretrained"
        )
    digest = hashlib.sha256()
    for item in sorted(folder.iterdir()):
        if item.is_file() and ("token" in item.name or item.name in ("vocab.txt", "merges.txt")):
            digest.update(item.name.encode() + file_sha256(item).encode())
    target = cache_dir("models") / f"tokenizer-{digest.hexdigest()[:16]}.json"
    if not target.is_file():
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tok.backend_tokenizer.save(str(tmp))
        os.replace(tmp, target)
    return target


def _padding(tokenizer_path: Path, config: dict[str, Any]) -> tuple[int, str]:
    """(pad id, pad token) from tokenizer.json's padding, its [PAD]/<pad> token or config."""
    tokenizers = require("tokenizers", "Tokenizing text")
    tok = tokenizers.Tokenizer.from_file(str(tokenizer_path))
    if tok.padding:
        return int(tok.padding["pad_id"]), str(tok.padding["pad_token"])
    for token in ("[PAD]", "<pad>", "<|pad|>"):
        token_id = tok.token_to_id(token)
        if token_id is not None:
            return int(token_id), token
    pad_id = config.get("pad_token_id")
    if isinstance(pad_id, int):
        return pad_id, tok.id_to_token(pad_id) or ""
    return 0, ""  # padded positions are masked out, so any id works


def _labels(config: dict[str, Any], num_outputs: int) -> tuple[str, ...]:
    id2label = config.get("id2label") or {}
    return tuple(
        str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(num_outputs)
    )


def _activation(config: dict[str, Any], num_labels: int) -> str:
    """As transformers' text-classification pipeline: sigmoid for multi-label or 1 label."""
    if config.get("problem_type") == "multi_label_classification" or num_labels == 1:
        return "sigmoid"
    return "softmax"


def _checked_signature(ref: ModelRef) -> Signature:
    """The ONNX model's signature, checked by loading the file once per content hash.

    Loading all-MiniLM-L6-v2 in ONNX Runtime takes ~0.3 s and holds ~100 MB in the
    driver, which never runs it: the signature of a file that loaded is kept in a small
    JSON record keyed by its hash, and later jobs (and processes) read that instead.
    """
    from deepspark.models.base import Signature
    from deepspark.models.loader import BACKENDS

    data = read_record("signatures", ref.file.sha256)
    if data is not None:
        try:
            return Signature.from_json(data)
        except (KeyError, TypeError, ValueError):
            pass  # a damaged record: load the file and write it again
    # Not ModelRef.load: its per-process cache would keep the session in the driver.
    signature = BACKENDS[ref.framework](
        ref.file.driver_path, 1, None, **dict(ref.options)
    ).signature
    write_record("signatures", ref.file.sha256, signature.to_json())
    return signature


def resolve_text_model(
    spark: SparkSession,
    *,
    model_name: str | None,
    model: str | None,
    task: str,
    max_length: int,
) -> ResolvedTextModel:
    """Resolve, export, validate and ship a text model; ``task`` is "embedding" or
    "classification". Every problem is raised here, before any Spark task starts."""
    from deepspark.models.resolve import local_model_path
    from deepspark.models.zoo import get_named_model

    if max_length < 2:
        raise InvalidParameterError(f"maxLength must be >= 2, got {max_length}")
    if model:
        folder = inspect_folder(local_model_path(model))
        onnx_path = export_text_onnx(folder.transformer_dir, task)
    else:
        if task != "embedding":
            raise InvalidParameterError(
                "TextClassifier needs model=<folder of a Hugging Face sequence-classification "
                "model>; there is no named text classifier"
            )
        named = get_named_model(model_name or "all-MiniLM-L6-v2")
        if named.task != "text-embedding" or named.folder is None:
            raise InvalidParameterError(
                f"model '{named.name}' is a {named.task} model, not a text-embedding model"
            )
        folder = inspect_folder(named.folder())
        onnx_path = named.export()

    config = folder.config
    if folder.max_positions and max_length > folder.max_positions:
        log.info(
            "maxLength %d capped to the model's %d positions", max_length, folder.max_positions
        )
        max_length = folder.max_positions
    tokenizer_path = _tokenizer_file(folder.transformer_dir)
    pad_id, pad_token = _padding(tokenizer_path, config)

    sc = spark.sparkContext
    ref = ModelRef("onnx", ship_file(sc, onnx_path))
    signature = _checked_signature(ref)  # on the driver: a bad file fails here
    inputs = tuple(signature.input_names)
    if not {"input_ids", "attention_mask"} <= set(inputs):
        raise SignatureError(f"{onnx_path} does not take input_ids and attention_mask: {signature}")
    output = "token_embeddings" if task == "embedding" else "logits"
    labels: tuple[str, ...] = ()
    activation = "softmax"
    if task == "classification":
        num = config.get("num_labels") or len(config.get("id2label") or {}) or None
        spec = next(s for s in signature.outputs if s.name == output)
        width = spec.shape[-1] if spec.shape and spec.shape[-1] > 0 else num
        if not width:
            raise SignatureError(f"cannot tell the number of labels of {folder.root}")
        labels = _labels(config, int(width))
        activation = _activation(config, int(width))
    return ResolvedTextModel(
        ref=ref,
        tokenizer=ship_file(sc, tokenizer_path),
        input_names=inputs,
        output_name=output,
        max_length=int(max_length),
        pad_id=pad_id,
        pad_token=pad_token,
        pooling=folder.pooling,
        labels=labels,
        activation=activation,
    )
