"""The fixtures of the whole suite: a tiny synthetic cohort and its prepared records (built once per session),
fake run folders for the report and grid tests, and the inputs of the tiny tuning search.

Helpers that tests import by name live in plain modules beside this file (fake_runs, subprocess_harness,
benchmark_scripts, tuning/tune_helpers), never here."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from fake_runs import build_fake_runs


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """8 synthetic training cases + 1 test case at 64x64, in the ISLES 2018 layout."""
    from islesbench.data_prep.synth import synthesize_cohort

    root = tmp_path_factory.mktemp("cohort")
    synthesize_cohort(root, cases=8, seed=3, test_cases=1, size=64)
    return root


@pytest.fixture(scope="session")
def tiny_prepared(tiny_cohort, tmp_path_factory):
    """The tiny cohort prepared on a 48x48 grid into 2 folds."""
    from islesbench.data_prep.prepare import prepare_cohort

    out = tmp_path_factory.mktemp("prepared")
    return prepare_cohort(tiny_cohort, out, folds=2, seed=0, grid=48)


@pytest.fixture(scope="session")
def tiny_isles24(tmp_path_factory):
    """Three synthetic ISLES'24 subjects at 48x48 in-plane (stored RAS, LPS and PSR) plus one test subject."""
    from islesbench.data_prep.synth_isles24 import synthesize_isles24

    root = tmp_path_factory.mktemp("isles24") / "cohort"
    synthesize_isles24(root, cases=3, seed=5, test_cases=1, size=48, log=lambda *_: None)
    return root


@pytest.fixture
def fake_runs(tmp_path):
    """A fresh fake runs folder (with its raw cohort) that a test may change."""
    return build_fake_runs(tmp_path)


@pytest.fixture(scope="module")
def built_report(tmp_path_factory):
    """(runs folder, report folder) built once, for tests that only read the report."""
    from islesbench.reports.report import build_report

    root = tmp_path_factory.mktemp("built")
    runs = build_fake_runs(root)
    out = root / "report"
    build_report(runs, out)
    return runs, out


# The tiny search of the tuning tests: small enough for seconds per fold on two CPU cores.
TUNE_BASE_CONFIG = {"train": {"steps_per_epoch": 2, "batch_size": 4}}
TUNE_SPACE = {"base_width": [4, 8], "depth": 2, "input_size": [32, 48]}


@pytest.fixture(scope="session")
def tune_inputs(tmp_path_factory):
    """(base config file, search-space file) of the tiny search."""
    root = tmp_path_factory.mktemp("tune_inputs")
    (root / "base.json").write_text(json.dumps(TUNE_BASE_CONFIG))
    (root / "space.json").write_text(json.dumps(TUNE_SPACE))
    return root / "base.json", root / "space.json"
