"""Fixtures of the tuning tests: the tiny search's base configuration and search space."""

from __future__ import annotations

import json
import pytest

# Small enough for seconds per fold on two CPU cores.
BASE_CONFIG = {"train": {"steps_per_epoch": 2, "batch_size": 4}}
SPACE = {"base_width": [4, 8], "depth": 2, "input_size": [32, 48]}


@pytest.fixture(scope="session")
def tune_inputs(tmp_path_factory):
    """(base config file, search-space file) of the tiny search."""
    root = tmp_path_factory.mktemp("tune_inputs")
    (root / "base.json").write_text(json.dumps(BASE_CONFIG))
    (root / "space.json").write_text(json.dumps(SPACE))
    return root / "base.json", root / "space.json"


