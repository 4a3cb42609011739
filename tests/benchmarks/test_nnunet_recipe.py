"""benchmarks/nnunet: the nnU-Net recipe is a valid script, its trainer changes only the budget (and test-time
mirroring), and nothing of it reaches islesbench (nnU-Net and PyTorch live in their own environment)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "benchmarks" / "nnunet" / "run_nnunet_cpu.sh"
TRAINER = ROOT / "benchmarks" / "nnunet" / "nnUNetTrainer_islesbenchCPU.py"


def test_recipe_is_valid_bash_and_imports_what_it_exports():
    subprocess.run(["bash", "-n", str(RECIPE)], check=True)
    text = RECIPE.read_text()
    assert "--preprocessed nnUNet_preprocessed" in text  # the folds go where nnU-Net reads them
    assert "cmp nnUNet_raw/Dataset501_ISLES/splits_final.json nnUNet_preprocessed/Dataset501_ISLES/splits_final.json" in text
    assert "import --name nnunet-2d-cpu" in text and "--data prep" in text


def test_trainer_subclasses_nnunets_default_and_sets_only_the_budget():
    tree = ast.parse(TRAINER.read_text())
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imports |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("islesbench") for m in imports)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    assert cls.name == TRAINER.stem and [b.id for b in cls.bases] == ["nnUNetTrainer"]
    assigned = {t.attr for n in ast.walk(cls) if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Attribute)}
    assert assigned == {"num_epochs", "num_iterations_per_epoch", "num_val_iterations_per_epoch", "save_every",
                        "inference_allowed_mirroring_axes"}


def test_islesbench_never_depends_on_torch_or_nnunet():
    text = (ROOT / "pyproject.toml").read_text().lower()
    assert "nnunet" not in text and "torch" not in text


@pytest.mark.slow
def test_trainer_loads_in_nnunets_environment():
    python = next((p for p in filter(None, (os.environ.get("NNUNET_PYTHON"), sys.executable))
                   if subprocess.run([p, "-c", "import nnunetv2"], capture_output=True).returncode == 0), None)
    if python is None:
        pytest.skip("nnunetv2 is not importable here nor in $NNUNET_PYTHON (install it in its own environment)")
    code = (f"import importlib.util as u; s = u.spec_from_file_location('t', {str(TRAINER)!r}); m = u.module_from_spec(s); "
            "s.loader.exec_module(m); from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer; "
            f"assert issubclass(m.{TRAINER.stem}, nnUNetTrainer)")
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
