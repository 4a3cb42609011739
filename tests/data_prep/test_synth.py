"""The synthetic cohort: ISLES layout, determinism, physiology, two-slab patients, difficulty."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from islesbench.commands import synth as synth_command
from islesbench.data_prep import synth
from islesbench.errors import IslesbenchError
from islesbench.layouts import discover_cohort, load_case, load_pwi, validate_case
from islesbench.layouts.isles2018 import MAP_MODALITIES

SIZE = 64


def _digests(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "cohort"
    synth.synthesize_cohort(out, cases=6, seed=3, test_cases=2, size=SIZE, log=lambda *_: None)
    return out


def test_layout_and_reader(cohort):
    cases = discover_cohort(cohort)
    assert [c.split for c in cases] == ["TRAINING"] * 6 + ["TESTING"] * 2
    assert [c.case_id for c in cases] == [f"case_{n}" for n in range(1, 9)]
    ids = []
    for case in cases:
        assert validate_case(case, modalities=MAP_MODALITIES + ("CT_4DPWI",)) == []
        expected = {"CT", "CT_4DPWI", "CT_CBF", "CT_CBV", "CT_MTT", "CT_Tmax"} | (
            {"OT"} if case.split == "TRAINING" else set()
        )
        assert set(case.files) == expected
        for modality, path in case.files.items():
            folder = path.parent
            assert folder.parent == case.directory
            assert folder.name == path.name[: -len(".nii")]
            assert folder.name.startswith(f"SMIR.Brain.XX.O.{modality}.")
            ids.append(folder.name.rsplit(".", 1)[1])
    assert len(ids) == len(set(ids))  # unique file IDs
    meta = json.loads((cohort / synth.COHORT_FILE).read_text())
    assert meta["seed"] == 3 and meta["parameters"] == {"cases": 6, "test_cases": 2, "size": SIZE}
    assert {f"{r['split']}/{r['case_id']}" for r in meta["cases"]} == {f"{c.split}/{c.case_id}" for c in cases}


def test_loaded_geometry_matches_record(cohort):
    meta = {r["case_id"]: r for r in json.loads((cohort / synth.COHORT_FILE).read_text())["cases"]}
    for case_files in discover_cohort(cohort / "TRAINING"):
        case = load_case(case_files)
        record = meta[case.case_id]
        assert list(case.shape) == record["shape"] and case.shape[:2] == (SIZE, SIZE)
        assert 2 <= case.shape[2] <= 22
        assert case.spacing == pytest.approx(tuple(record["spacing_mm"]))
        assert 0.8 <= case.spacing[0] <= 1.0 and 4 <= case.spacing[2] <= 12
        ml = case.mask.sum() * np.prod(case.spacing) / 1000
        assert ml == pytest.approx(record["lesion_volume_ml"], abs=1e-3)
        # MTT = 60 CBV / CBF, as read back through the headers' scaling
        cbf, cbv, mtt = (case.volumes[m] for m in ("CT_CBF", "CT_CBV", "CT_MTT"))
        brain = cbf > 0
        np.testing.assert_allclose(mtt[brain], 60 * cbv[brain] / cbf[brain], rtol=1e-4)
        assert not mtt[~brain].any() and not cbv[~brain].any()
        # CT in HU: air, brain and bone
        ct = case.volumes["CT"]
        assert ct.min() < -900 and ct.max() > 400
        assert 15 < np.median(ct[brain]) < 45
        pwi, dt = load_pwi(case_files)
        assert pwi.shape[:3] == case.shape and 16 <= pwi.shape[3] <= 20 and dt == record["frame_interval_s"]


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kwargs = dict(cases=3, test_cases=1, size=32, log=lambda *_: None)
    synth.synthesize_cohort(tmp_path / "a", seed=5, **kwargs)
    synth.synthesize_cohort(tmp_path / "b", seed=5, **kwargs)
    synth.synthesize_cohort(tmp_path / "c", seed=6, **kwargs)
    a, b, c = (_digests(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c
    # a re-run into the same folder replaces the previous cohort (no duplicate modality files)
    synth.synthesize_cohort(tmp_path / "a", seed=6, **kwargs)
    assert _digests(tmp_path / "a") == c
    assert not list((tmp_path / "a").rglob(".*tmp*"))


def test_refuses_to_overwrite_real_data(tmp_path):
    (tmp_path / "TRAINING" / "case_1").mkdir(parents=True)
    with pytest.raises(IslesbenchError, match="not a synthetic cohort"):
        synth.synthesize_cohort(tmp_path, cases=1, size=32, log=lambda *_: None)


def test_physiology():
    for i in range(3):
        p = synth.make_patient([11, i], 256, slabs=1, lesion_kind="core")  # calibrated size
        maps, labels = p.maps, p.labels
        normal = ~p.penumbra
        gm, wm = (labels == synth.GM) & normal, (labels == synth.WM) & normal
        assert 50 <= np.median(maps["CT_CBF"][gm]) <= 70
        assert 3.0 <= np.median(maps["CT_CBV"][gm]) <= 5.0
        assert 3.5 <= np.median(maps["CT_MTT"][gm]) <= 5.0
        assert 16 <= np.median(maps["CT_CBF"][wm]) <= 30
        assert 1.3 <= np.median(maps["CT_CBV"][wm]) <= 2.7
        assert 4.0 <= np.median(maps["CT_MTT"][wm]) <= 6.0
        assert np.median(maps["CT_Tmax"][gm | wm]) <= 2.0
        assert 30 <= np.median(maps["CT"][gm]) <= 46 and 22 <= np.median(maps["CT"][wm]) <= 34
        assert np.median(maps["CT"][labels == synth.BONE]) > 500
        core = p.core
        assert core.any() and np.all(p.penumbra[core])
        penumbra = p.penumbra & ~core
        assert penumbra.sum() > core.sum() * 0.3
        # core: CBF < 30 % of normal in most of it (a patchy part keeps moderate flow but has
        # collapsed CBV and very long Tmax, see synth), reduced CBV, Tmax > 6 (mostly > 10)
        rcbf = maps["CT_CBF"][core] / p.cbf_reference
        assert np.percentile(rcbf, 35) < 0.3 and np.median(rcbf) < 0.4
        assert np.median(maps["CT_CBV"][core]) < 0.8 * np.median(maps["CT_CBV"][gm | wm])
        assert np.median(maps["CT_Tmax"][core]) > 9
        # penumbra: CBF above 30 %, CBV not reduced, Tmax > 6
        assert np.median(maps["CT_CBF"][penumbra]) / p.cbf_reference > 0.3
        assert np.median(maps["CT_Tmax"][penumbra]) > 6
        # one hemisphere only
        x = np.nonzero(p.penumbra)[0]
        assert (x < 128).all() or (x >= 128).all()
    free = synth.make_patient([11, 9], 64, slabs=1, lesion_kind="none")
    assert not free.core.any() and not free.penumbra.any()


def test_two_slab_patients_recorded(tmp_path):
    synth.synthesize_cohort(tmp_path, cases=12, seed=0, size=32, log=lambda *_: None)
    meta = json.loads((tmp_path / synth.COHORT_FILE).read_text())
    records = {r["case_id"]: r for r in meta["cases"]}
    assert sum(r["lesion"] != "core" for r in records.values()) >= 1  # some lesion-free cases
    pairs = [cases for cases in meta["patients"].values() if len(cases) == 2]
    assert pairs, "expected at least one two-slab patient"
    cases = {c.case_id: c for c in discover_cohort(tmp_path)}
    for pair in pairs:
        first, second = (load_case(cases[c.split("/")[1]]) for c in pair)
        assert np.array_equal(first.affine[:, :2], second.affine[:, :2])  # same in-plane geometry
        assert first.affine[0, 3] == second.affine[0, 3] and first.affine[1, 3] == second.affine[1, 3]
        dz = first.spacing[2]
        assert second.affine[2, 3] == pytest.approx(first.affine[2, 3] + first.shape[2] * dz, abs=1e-3)
    # single-slab patients never look adjacent to another case
    singles = [c for cs in meta["patients"].values() if len(cs) == 1 for c in cs]
    origins = {c: tuple(load_case(cases[c.split("/")[1]]).affine[:2, 3]) for c in singles}
    assert len(set(origins.values())) == len(origins)


def contralateral_rcbf(cbf: np.ndarray) -> np.ndarray:
    """CBF over the mean CBF of the mirrored hemisphere in the same slice (the RAPID-like reference)."""
    half = cbf.shape[0] // 2
    ref = np.zeros_like(cbf)
    for z in range(cbf.shape[2]):
        left, right = cbf[:half, :, z], cbf[half:, :, z]
        ref[:half, :, z] = right[right > 0].mean() if (right > 0).any() else 1.0
        ref[half:, :, z] = left[left > 0].mean() if (left > 0).any() else 1.0
    return np.where(cbf > 0, cbf / np.maximum(ref, 1e-6), 0)


def _dice(a, b) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2 * np.logical_and(a, b).sum() / total


def test_rcbf_threshold_is_imperfect_but_maps_together_do_better(tmp_path):
    synth.synthesize_cohort(tmp_path, cases=8, seed=1, size=96, log=lambda *_: None)
    plain, combined = [], []
    for case_files in discover_cohort(tmp_path):
        case = load_case(case_files)
        if not case.mask.any():
            continue
        rcbf = contralateral_rcbf(case.volumes["CT_CBF"])
        rule = rcbf < 0.3
        rule &= case.volumes["CT_CBF"] > 0
        plain.append(_dice(rule, case.mask))
        combined.append(_dice(rule & (case.volumes["CT_Tmax"] > 6), case.mask))
    assert len(plain) >= 5
    plain, combined = float(np.mean(plain)), float(np.mean(combined))
    assert 0.2 < plain < 0.75, plain  # non-trivial, far from perfect
    assert combined > plain + 0.1, (plain, combined)


def test_command_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    synth_command.configure_parser(parser)
    args = parser.parse_args(["--out", str(tmp_path / "c"), "--cases", "2", "--size", "32", "--seed", "4"])
    assert (args.test_cases, args.seed) == (0, 4)
    assert synth_command.run_command(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("synth: TRAINING/case_") for line in lines) == 2
    assert "wrote 2 case(s)" in lines[-1]
