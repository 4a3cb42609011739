"""Shared fixtures: a tiny synthetic cohort and its prepared records, built once per test session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest


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
