"""The leak-free ensemble of validation probability maps (`ensemble_runs`): the `islesbench ensemble`
command (islesbench.commands.ensemble, whose help states the rules) and the benchmark's nested
ensemble call it. `check_compatible_members` refuses members from different cohorts, prepared data or
folds, naming the two runs and the difference; the output is an ordinary run folder, so reports read
it like any run. Its config.json records the flags of flagged members (`member_flags`,
islesbench.storage.selection): an ensemble of a member tuned non-nested or pretrained on its validation
cases is flagged like that member, however its members were chosen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from islesbench import layouts
from islesbench.atomic import write_json_atomic
from islesbench.errors import IslesbenchError
from islesbench.evaluation.aggregate import summarize
from islesbench.evaluation.files import read_case_metrics
from islesbench.inference.validation_output import write_validation
from islesbench.storage import manifest, provenance, run_layout, selection


def _validated_cases(run_root: Path) -> dict:
    """case -> (fold paths, threshold) for every finished fold of a run."""
    cases = {}
    for k, paths in run_layout.list_folds(run_root):
        if not paths.is_done():
            continue
        threshold = run_layout.read_threshold(paths.threshold_json)
        for p in sorted(paths.validation_dir.glob("*_prob.nii*")):
            case_id = p.name.split("_prob.nii")[0]
            cases[case_id] = (k, paths, threshold)
    return cases


def check_compatible_members(members: list) -> None:
    """Refuse members that were not trained and validated on the same cohort, prepared data and folds.

    `members` holds (run folder, config, case -> (fold, paths, threshold)); the message names the two
    runs and what differs. Averaging maps of different folds would leak (a case one member trained on).
    """
    first_run, first, first_cases = members[0]
    for run, config, cases in members[1:]:
        pair = f"{first_run} and {run}"
        if first.get("cohort") != config.get("cohort"):
            raise IslesbenchError(f"ensemble members come from different cohorts: {pair} "
                                  f"({first.get('cohort')!r} vs {config.get('cohort')!r})")
        if not _same_prepared_data(first.get("prepared"), config.get("prepared")):
            raise IslesbenchError(f"ensemble members were built on different prepared data: {pair} "
                                  f"({first.get('prepared')} vs {config.get('prepared')})")
        fp_a, fp_b = first.get("splits_fingerprint"), config.get("splits_fingerprint")
        if fp_a and fp_b and fp_a != fp_b:
            raise IslesbenchError(f"ensemble members were trained on different folds: {pair} "
                                  f"(splits fingerprint {fp_a} vs {fp_b})")
        moved = sorted((c for c in set(first_cases) & set(cases) if first_cases[c][0] != cases[c][0]),
                       key=layouts.natural_key)
        if moved:
            c = moved[0]
            raise IslesbenchError(f"ensemble members were trained on different folds: {pair} ({len(moved)} "
                                  f"case(s) validated in other folds, e.g. {c} in fold {first_cases[c][0]} vs "
                                  f"fold {cases[c][0]})")
        for k in {f for f, _, _ in first_cases.values()} & {f for f, _, _ in cases.values()}:
            a = {c for c, v in first_cases.items() if v[0] == k}
            b = {c for c, v in cases.items() if v[0] == k}
            if a != b:
                c = sorted(a ^ b, key=layouts.natural_key)[0]
                raise IslesbenchError(f"ensemble members were trained on different folds: {pair} (fold {k} "
                                      f"validates {c} in only one of them)")


def _same_prepared_data(a, b) -> bool:
    """Same folder, or two folders with the same manifest (a moved or copied prepared directory)."""
    if a == b:
        return True
    if not a or not b:
        return False
    try:
        return manifest.PreparedData(a).manifest["cases"] == manifest.PreparedData(b).manifest["cases"]
    except (IslesbenchError, KeyError, TypeError):
        return False


def ensemble_runs(run_dirs: list, out_dir: Path, force: bool = False, folds=None, record: dict | None = None) -> dict:
    """Write the ensemble of `run_dirs` into `out_dir` (results layout) and return its summary.

    `folds` limits it to those folds (a nested selection has other members per fold); `record` is
    added to every config.json written (how the members were chosen).
    """
    if len(run_dirs) < 1:
        raise IslesbenchError("an ensemble needs at least one run folder")
    members = []
    for run in run_dirs:
        if not (Path(run) / "config.json").is_file():
            raise IslesbenchError(f"{run}: not a run folder (no config.json)")
        cases = _validated_cases(Path(run))
        if not cases:
            raise IslesbenchError(f"{run}: no finished fold with validation probability maps")
        members.append((Path(run), run_layout.read_run_config(run), cases))
    check_compatible_members(members)
    common = sorted(set.intersection(*(set(c) for _, _, c in members)), key=layouts.natural_key)
    if not common:
        raise IslesbenchError("the runs share no validated case (were they run on the same cohort?)")
    prepared = manifest.PreparedData(members[0][1]["prepared"])
    config = {"name": out_dir.name, "model": {"arch": "ensemble", "pretrained": None},
              "loss": {"name": "mean of members"}, "members": [m[1]["name"] for m in members],
              "member_runs": [str(m[0].resolve()) for m in members],
              "cohort": members[0][1].get("cohort"), "prepared": members[0][1]["prepared"],
              "raw_data": members[0][1].get("raw_data"), "profile": members[0][1].get("profile"),
              # the members' folds (check_compatible_members: they agree), so the ensemble pairs with rows made
              # elsewhere on the same folds (islesbench import)
              "splits_fingerprint": next((m[1]["splits_fingerprint"] for m in members
                                          if m[1].get("splits_fingerprint")), None),
              "member_flags": selection.member_flags({m[1].get("name", m[0].name): m[1] for m in members}),
              **(record or {})}
    write_json_atomic(out_dir / "config.json", config)
    run_layout.write_patient_map(out_dir, prepared.patient_record())
    by_fold = {}
    for case_id in common:
        by_fold.setdefault(members[0][2][case_id][0], []).append(case_id)
    all_rows = []
    for k in sorted(by_fold):
        if folds is not None and k not in folds:
            continue
        paths = run_layout.FoldPaths(out_dir / f"fold_{k}")
        if paths.is_done() and not force:
            all_rows += read_case_metrics(paths.metrics_csv)
            continue
        run_layout.prepare_fold_dir(paths)
        write_json_atomic(paths.config, {**config, "fold": k, "provenance": provenance.provenance()})
        thresholds = {c: float(np.mean([m[2][c][2] for m in members])) for c in by_fold[k]}
        threshold = float(np.mean(list(thresholds.values())))
        write_json_atomic(paths.threshold_json, {"threshold": threshold, "chosen_on": "mean of the members' thresholds"})

        def probability_of(case_id):
            maps = [layouts.read_nifti(m[2][case_id][1].probability_path(case_id))[0] for m in members]
            return np.mean(maps, axis=0).astype(np.float32)

        write_validation(paths, prepared, by_fold[k], probability_of, threshold)
        run_layout.finish_fold(paths)
        all_rows += read_case_metrics(paths.metrics_csv)
    return summarize(all_rows)
