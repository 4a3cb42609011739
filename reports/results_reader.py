"""Reading a runs folder for the report: every run's configuration and per-case metrics, grouped.

Reads only the results layout (`islesbench.storage.run_layout`), each run's config.json, each fold's
training.json (`islesbench.storage.training_facts`), the prepared data's patients.json (which cases are
one patient) and `benchmark.json`; it never trains or predicts. Repeats of
one configuration over training seeds (`<name>-seed<k>`) form one ConfigGroup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from islesbench.config import base_name
from islesbench.errors import IslesbenchError
from islesbench.evaluation.files import read_case_metrics as read_rows
from islesbench.evaluation.names import CONVENTION_KEY, LEGACY_CONVENTION, METRIC_NAMES
from islesbench.grid.grid_file import benchmark_record_path
from islesbench.reports.stats import is_finite
from islesbench.storage import run_layout, training_facts

# The per-case columns of validation/metrics.csv, in order.
METRIC_COLUMNS = METRIC_NAMES
# Keys under which an ensemble's config.json may list its member runs.
ENSEMBLE_MEMBER_KEYS = ("members", "runs", "run_dirs", "member_runs")


@dataclass
class RunResults:
    """The validated cases of one configuration, as read from its run folder."""

    name: str
    run_dir: Path
    config: dict
    cohort: str
    rows: list  # per-case dicts: case, fold, and METRIC_COLUMNS
    folds: list = field(default_factory=list)  # folds with a metrics.csv
    unfinished_folds: list = field(default_factory=list)  # folds with metrics.csv but no DONE marker
    histories: dict = field(default_factory=dict)  # fold -> history.csv path
    training_facts: dict = field(default_factory=dict)  # fold -> its training.json (None: not recorded)
    is_ensemble: bool = False

    def values(self, metric: str) -> dict:
        """{case: value} of one metric."""
        return {r["case"]: r[metric] for r in self.rows}

    def mean(self, metric: str = "dice") -> float:
        """Mean over the cases where the metric is finite (NaN when there is none)."""
        vals = [v for v in self.values(metric).values() if is_finite(v)]
        return sum(vals) / len(vals) if vals else float("nan")

    def prediction_path(self, case: str, fold: int) -> Path:
        """The predicted mask of `case` (validated in `fold`)."""
        return run_layout.FoldPaths(self.run_dir / f"fold_{fold}").mask_path(case)

    def raw_data(self) -> str | None:
        """The raw ISLES-layout cohort the run was trained on, if its config records it."""
        for key in ("raw_data", "raw"):
            if self.config.get(key):
                return str(self.config[key])
        return None


def read_case_metrics(path) -> list[dict]:
    """Per-case rows of a validation/metrics.csv with every metric a float (`inf` kept, blanks NaN)."""
    return [{"case": str(r["case"]), **{c: _to_float(r.get(c)) for c in METRIC_COLUMNS},
             "convention": r.get(CONVENTION_KEY) or LEGACY_CONVENTION} for r in read_rows(path)]


def is_ensemble_config(config: dict, name: str) -> bool:
    """True for the output of `islesbench ensemble` (same layout as a run, no model of its own)."""
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    return (model.get("arch") == "ensemble" or config.get("kind") == "ensemble" or name.startswith("ensemble")
            or any(isinstance(config.get(k), list) for k in ENSEMBLE_MEMBER_KEYS))


def ensemble_members(config: dict) -> list[str]:
    """The run folders an ensemble averaged, as recorded in its config.json (empty if unrecorded)."""
    for key in ENSEMBLE_MEMBER_KEYS:
        if isinstance(config.get(key), list):
            return [Path(str(m)).name for m in config[key]]
    return []


def read_run(run_dir) -> RunResults | None:
    """A run folder's results (folds, or an ensemble laid out like a fold); None when it has none."""
    run_dir = Path(run_dir)
    config = run_layout.read_run_config(run_dir)
    name = str(config.get("name") or run_dir.name)
    cohort = str(config.get("cohort") or "unknown cohort (config.json has no 'cohort')")
    run = RunResults(name=name, run_dir=run_dir, config=config, cohort=cohort, rows=[],
                     is_ensemble=is_ensemble_config(config, name))
    for fold, paths in run_layout.list_folds(run_dir):
        if not paths.metrics_csv.exists():
            continue
        run.folds.append(fold)
        if not paths.is_done():
            run.unfinished_folds.append(fold)
        fold_rows = read_case_metrics(paths.metrics_csv)
        if paths.is_done():
            _check_cases_against_masks(paths, fold_rows)
        run.rows += [{**r, "fold": fold} for r in fold_rows]
        if paths.history_csv.exists():
            run.histories[fold] = paths.history_csv
        run.training_facts[fold] = training_facts.read_training_facts(paths.training_facts)
    if not run.rows:
        return None
    return run


def _check_cases_against_masks(paths: run_layout.FoldPaths, rows: list) -> None:
    """A finished fold's metrics.csv lists exactly the cases it wrote masks for; a file cut at a line
    boundary parses cleanly and would silently drop cases."""
    masks = {p.name[: -len(".nii.gz")] for p in paths.validation_dir.glob("*.nii.gz")
             if not p.name.endswith("_prob.nii.gz")}
    listed = {str(r["case"]) for r in rows}
    if masks and listed != masks:
        missing = sorted(masks - listed) or sorted(listed - masks)
        raise IslesbenchError(f"{paths.metrics_csv}: lists {len(listed)} case(s) but {paths.validation_dir} holds "
                              f"masks of {len(masks)} (e.g. {missing[0]} differs): truncated or edited?")


def collect_runs(runs_dir) -> tuple[list[RunResults], list[str]]:
    """Every run with results under `runs_dir`, and notes on folders that have none yet."""
    runs, notes = [], []
    for run_dir in run_layout.list_runs(runs_dir):
        try:
            run = read_run(run_dir)
        except (OSError, ValueError, KeyError, IslesbenchError) as exc:
            notes.append(f"{run_dir.name}: unreadable results ({exc})")
            continue
        if run is None:
            notes.append(f"{run_dir.name}: no validation/metrics.csv yet")
        else:
            runs.append(run)
    return runs, notes


def read_benchmark_record(runs_dir) -> dict | None:
    """`benchmark.json` of the runs folder, if `islesbench benchmark` wrote one."""
    path = benchmark_record_path(runs_dir)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


@dataclass
class ConfigGroup:
    """One configuration: its runs over training seeds (seed 0 first), cohort and patient mapping."""

    name: str
    runs: list  # RunResults, one per seed
    patient_of: dict = field(default_factory=dict)  # case -> patient (missing case: its own patient)
    patient_source: str = ""

    @property
    def config(self) -> dict:
        """The configuration of the first seed (the others differ in train.seed only)."""
        return self.runs[0].config

    @property
    def cohort(self) -> str:
        return self.runs[0].cohort

    @property
    def is_ensemble(self) -> bool:
        return self.runs[0].is_ensemble

    @property
    def seeds(self) -> list:
        return [int((r.config.get("train") or {}).get("seed") or 0) for r in self.runs]

    @property
    def folds(self) -> list:
        return sorted({f for r in self.runs for f in r.folds})

    @property
    def training_facts(self) -> dict:
        """{(seed, fold): that fold's training.json, or None where it was not recorded}."""
        return {(seed, fold): facts for seed, r in zip(self.seeds, self.runs)
                for fold, facts in r.training_facts.items()}

    @property
    def cases(self) -> list:
        return sorted({row["case"] for r in self.runs for row in r.rows})

    @property
    def convention(self) -> str:
        """The HD/ASSD convention of the group's rows (`islesbench.evaluation.names.CONVENTIONS`), or `mixed`."""
        found = {row.get("convention") for r in self.runs for row in r.rows}
        return found.pop() if len(found) == 1 else "mixed"

    @property
    def is_isles24(self) -> bool:
        """True for an ISLES'24 cohort (final infarct from acute CT): other anchors, other headline scores."""
        text = f"{self.cohort} {self.config.get('layout', '')}".lower()
        return "isles'24" in text or "isles24" in text

    @property
    def tuning(self) -> dict | None:
        """How the run's hyperparameters were tuned (None: not tuned)."""
        return self.config.get("tuning") or None

    def patient(self, case: str) -> str:
        return self.patient_of.get(case, case)

    def patient_values(self, metric: str) -> dict:
        """patient -> the metric: mean over the patient's slabs (finite values), then over seeds.

        A patient whose slabs have no finite value in a seed is left out of that seed; a patient with no
        finite value in any seed is absent (its infinite distances are counted separately).
        """
        per_seed = [seed_patient_values(r, metric, self.patient) for r in self.runs]
        patients = set().union(*per_seed) if per_seed else set()
        out = {}
        for p in sorted(patients):  # a fixed order: the bootstrap resamples by position
            vals = [s[p] for s in per_seed if p in s]
            out[p] = sum(vals) / len(vals)
        return out

    def seed_means(self, metric: str = "dice") -> list:
        """Per seed: the mean over patients of the metric."""
        out = []
        for r in self.runs:
            vals = list(seed_patient_values(r, metric, self.patient).values())
            out.append(sum(vals) / len(vals) if vals else float("nan"))
        return out


def seed_patient_values(run: "RunResults", metric: str, patient_of) -> dict:
    """patient -> mean of the finite values of `metric` over the patient's cases, for one run."""
    by_patient = {}
    for row in run.rows:
        v = row[metric]
        if is_finite(v):
            by_patient.setdefault(patient_of(row["case"]), []).append(float(v))
    return {p: sum(v) / len(v) for p, v in by_patient.items()}


def read_patients(config: dict) -> tuple[dict, str]:
    """case -> patient from the prepared data a run recorded, and where it came from."""
    prepared = config.get("prepared")
    if prepared:
        path = Path(str(prepared)) / "patients.json"
        try:
            return dict(json.loads(path.read_text())["patients"]), str(path)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return {}, "not recorded: every case counted as its own patient"


def group_runs(runs: list) -> list:
    """Runs grouped by configuration (seeds together), each group with its cohort's patient mapping."""
    by_name = {}
    for run in runs:
        by_name.setdefault((run.cohort, base_name({**run.config, "name": run.name})), []).append(run)
    groups = []
    for (_, name), members in sorted(by_name.items()):
        members.sort(key=lambda r: int((r.config.get("train") or {}).get("seed") or 0))
        patient_of, source = {}, "not recorded: every case counted as its own patient"
        for candidate in members + [r for r in runs if r.cohort == members[0].cohort]:
            patient_of, source = read_patients(candidate.config)
            if patient_of:
                break
        groups.append(ConfigGroup(name=name, runs=members, patient_of=patient_of, patient_source=source))
    return groups



def _to_float(x) -> float:
    if x is None or x == "":
        return float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")
