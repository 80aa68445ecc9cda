"""examples/transfer_learning.py: digits -> pretrained features -> LogisticRegression."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "transfer_learning.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("transfer_learning_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def test_digits_subset_accuracy_and_reload(spark, tmp_path: Path) -> None:
    """600 digits (450 to train, 150 held out): accuracy >= 0.90; the saved and
    reloaded pipeline predicts the held-out digits identically."""
    from pyspark.ml import PipelineModel

    example = _example()
    result = example.train_and_evaluate(spark, n=600, seed=0)
    assert (result.train_rows, result.test_rows) == (450, 150)
    assert result.accuracy >= 0.90, result.accuracy

    result.model.write().overwrite().save(str(tmp_path / "digits"))
    reloaded = PipelineModel.load(str(tmp_path / "digits"))
    assert [type(s).__name__ for s in reloaded.stages] == [
        "StringIndexerModel",
        "DeepImageFeaturizer",
        "LogisticRegressionModel",
    ]
    # a third of the held-out digits is enough to compare and keeps the test quick
    test = example.digits_dataframe(spark, n=600, seed=0).where("test AND id % 3 = 0")
    again = reloaded.transform(test).select("id", "label", "prediction", "probability")
    before = result.predictions.where("id % 3 = 0")
    assert again.count() == before.count() > 40
    assert example.same_predictions(before, again)


@pytest.mark.slow
def test_full_example_script() -> None:
    """The script as a user runs it, on all 1,797 digits."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(  # noqa: PLW1510 - the return code is asserted with stderr
        [sys.executable, str(EXAMPLE), "--master", "local[2]"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    accuracy = float(re.search(r"held-out accuracy ([0-9.]+)", proc.stdout).group(1))
    assert accuracy >= 0.90
    assert "predicts identically: True" in proc.stdout
