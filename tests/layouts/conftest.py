"""Tiny cohorts in both layouts, built once per test module session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_isles24(tmp_path_factory):
    """Three synthetic ISLES'24 subjects at 48x48 in-plane (stored RAS, LPS and PSR) plus one test subject."""
    from islesbench.data_prep.synth_isles24 import synthesize_isles24

    root = tmp_path_factory.mktemp("isles24") / "cohort"
    synthesize_isles24(root, cases=3, seed=5, test_cases=1, size=48, log=lambda *_: None)
    return root
