"""The synthetic ISLES'24 cohort: BIDS layout, whole brain, varied orientation, a follow-up lesion tied to
the acute core and penumbra, determinism, and the command line."""

from __future__ import annotations

import argparse
import hashlib
import json

import numpy as np
import pytest

from islesbench import layouts
from islesbench.commands import synth as synth_command
from islesbench.data_prep import synth
from islesbench.data_prep.synth_isles24 import ORIENTATIONS, follow_up_lesion, make_subject, synthesize_isles24
from islesbench.errors import IslesbenchError


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_layout_orientations_and_record(tiny_isles24):
    meta = json.loads((tiny_isles24 / synth.COHORT_FILE).read_text())
    assert meta["layout"] == "isles24" and meta["seed"] == 5
    cases = layouts.discover_cohort(tiny_isles24)
    assert [c.case_id for c in cases] == [r["case_id"] for r in meta["cases"]]
    assert [c.split for c in cases] == ["TRAINING"] * 3 + ["TESTING"]
    for k, (case, record) in enumerate(zip(cases, meta["cases"])):
        loaded = layouts.load_case(case, modalities=("CT", "CTA", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax"))
        import nibabel as nib

        assert nib.aff2axcodes(loaded.affine) == ORIENTATIONS[k % 3] == tuple(record["orientation"])
        # whole brain: the head's slices span skull base to vertex (150 mm) along the superior axis
        superior = nib.aff2axcodes(loaded.affine).index("S" if "S" in nib.aff2axcodes(loaded.affine) else "I")
        assert loaded.shape[superior] * loaded.spacing[superior] >= 149.0
        # CTA is the NCCT plus contrast: never darker, brighter where there is blood volume
        assert np.all(loaded.volumes["CTA"] >= loaded.volumes["CT"] - 0.5)
        assert loaded.volumes["CTA"].max() >= 250
        if case.split == "TRAINING":
            assert loaded.mask.sum() * np.prod(loaded.spacing) / 1000 == pytest.approx(record["lesion_volume_ml"], abs=1e-3)


def test_follow_up_lesion_grows_from_the_core_into_the_penumbra():
    seen = set()
    for k in range(6):
        patient, _ = make_subject([1, k], 48, "core")
        final, story = follow_up_lesion(patient, np.random.default_rng([2, k]))
        assert np.all(final[patient.core])  # the acute core is infarcted
        assert np.all((patient.core | patient.penumbra)[final])  # growth stays in the penumbra
        seen.add(story["reperfused"])
        if not story["reperfused"] and patient.penumbra.sum() > patient.core.sum():
            assert final.sum() > patient.core.sum()
    assert seen == {True, False}
    free, _ = make_subject([1, 9], 48, "none")
    assert not follow_up_lesion(free, np.random.default_rng(0))[0].any()


def test_same_seed_same_bytes(tmp_path):
    kwargs = dict(cases=1, test_cases=1, size=32, log=lambda *_: None)
    synthesize_isles24(tmp_path / "a", seed=2, **kwargs)
    synthesize_isles24(tmp_path / "b", seed=2, **kwargs)
    synthesize_isles24(tmp_path / "c", seed=3, **kwargs)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")


def test_refuses_to_overwrite_real_data(tmp_path):
    (tmp_path / "raw_data" / "sub-01").mkdir(parents=True)
    with pytest.raises(IslesbenchError, match="not a synthetic cohort"):
        synthesize_isles24(tmp_path, cases=1, size=32, log=lambda *_: None)


def test_command_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    synth_command.configure_parser(parser)
    args = parser.parse_args(["--layout", "isles24", "--out", str(tmp_path / "c"), "--cases", "1", "--size", "32"])
    assert synth_command.run_command(args) == 0
    assert "isles24 layout" in capsys.readouterr().out
    assert layouts.resolve(tmp_path / "c").NAME == "isles24"
