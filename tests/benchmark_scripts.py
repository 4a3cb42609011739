"""Load a script of benchmarks/ (not a package) as a module, for the tests of the robustness drivers; list
the ops of a training step, for the tests of which kernels run."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    """benchmarks/<name>.py as the module `name` (registered first: its dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def training_step_ops(model, x, y) -> list:
    """[(op name, op type)] that TensorFlow ran, after Grappler and oneDNN's rewrites, in one `train_on_batch`
    of a compiled `model` (traced by a first step), by `benchmarks/models.py`'s profiler reader; the test is
    skipped where TensorFlow runs without oneDNN, whose kernels these tests are about."""
    import pytest
    from tensorflow.python.util import _pywrap_util_port

    if not _pywrap_util_port.IsMklEnabled():
        pytest.skip("TensorFlow runs without oneDNN here (TF_ENABLE_ONEDNN_OPTS=0 or not an x86 build)")
    model.train_on_batch(x, y)  # trace and optimise first
    return [(name, op_type) for name, op_type, _ in load("models").profiled_ops(lambda: model.train_on_batch(x, y))]
