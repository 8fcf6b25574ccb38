"""Import CrypTen 0.4.1 on current torch.

CrypTen's ONNX converter imports `torch.onnx._internal.registration`, which
torch removed in 2.9, and `import crypten` fails with it. Airlock never
converts ONNX models (`crypten.nn.from_pytorch` does not work on current
torch; the model is built directly in `model.py`), so a stand-in module
whose registry refuses any use lets the import succeed. Import CrypTen only
through `crypten()` here.
"""

from __future__ import annotations

import sys
import types
from typing import Any

_REMOVED = "torch.onnx._internal.registration"


class _NoOnnxRegistry:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("CrypTen's ONNX converter is not available on this torch")


def crypten() -> Any:
    """The crypten module, imported with the compatibility stand-in in place."""
    if _REMOVED not in sys.modules:
        try:
            __import__(_REMOVED)
        except ModuleNotFoundError:
            stand_in = types.ModuleType(_REMOVED)
            stand_in.registry = _NoOnnxRegistry()  # type: ignore[attr-defined]
            sys.modules[_REMOVED] = stand_in
    import crypten as module

    return module
