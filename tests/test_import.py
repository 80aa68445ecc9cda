"""`import deepspark` stays light: no deep-learning framework is imported."""

from __future__ import annotations

import json
import subprocess
import sys

FRAMEWORKS = ("torch", "tensorflow", "keras", "onnxruntime", "onnx", "cv2")


def test_import_deepspark_imports_no_framework() -> None:
    code = (
        "import sys, json, deepspark; "
        "print(json.dumps(sorted(m for m in %r if m in sys.modules)))" % (FRAMEWORKS,)
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_public_api_is_explicit() -> None:
    import deepspark

    assert "read_images" in deepspark.__all__
    assert "DeepImagePredictor" in deepspark.__all__
    for name in deepspark.__all__:
        assert hasattr(deepspark, name), name


def test_errors_share_one_base() -> None:
    import deepspark

    for name in deepspark.__all__:
        obj = getattr(deepspark, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, deepspark.DeepSparkError), name
