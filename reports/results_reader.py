"""Reading a runs folder for the report: every run's configuration and per-case metrics, grouped.

Reads only the results layout (`islesbench.storage.run_layout`): each run's config.json, its folds' config.json
(what trained each fold: its provenance) and training.json (what the training resolved to:
`islesbench.storage.training_facts`), the patient map kept with the run (patients.json: which cases are one
patient), and `benchmark.json`; it never trains or predicts. A run without a patient map (older runs read
the prepared data's, when it is still where config.json says) is refused: counting each slab as a patient
would change the report's statistical unit without saying so. Repeats of one configuration over training
seeds (`<name>-seed<k>`) form one ConfigGroup, and only when every seed's config.json equals the others' but
for the seed (`SEED_FIELDS`): runs under one name that differ in anything else (a second `benchmark --seeds 2
--precision float32` into the same folder) are split into one group per configuration, each flagged
(`ConfigGroup.mixed`), never averaged into one seed spread.

A distance (HD, HD95, ASSD) is infinite when exactly one of prediction and reference is empty (the ISLES
2015–2018 evaluator's rule): plain means leave such cases out, which improves a row that misses a lesion.
The penalised values (`PENALTY`) replace an infinite distance by the diagonal of the case's field of view,
read from the header of the predicted mask the run wrote in the input's own geometry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from islesbench.config import base_name, read_json_file
from islesbench.errors import IslesbenchError
from islesbench.evaluation.files import read_case_metrics as read_rows
from islesbench.evaluation.names import CONVENTION_KEY, LEGACY_CONVENTION, METRIC_NAMES
from islesbench.grid.grid_file import benchmark_record_path
from islesbench.imaging import nifti_io
from islesbench.reports.claims import config_differences
from islesbench.reports.stats import is_finite
from islesbench.storage import run_layout, training_facts

# The per-case columns of validation/metrics.csv, in order.
METRIC_COLUMNS = METRIC_NAMES
# Keys under which an ensemble's config.json may list its member runs.
ENSEMBLE_MEMBER_KEYS = ("members", "runs", "run_dirs", "member_runs")
# The flattened config.json fields (reports/claims.py) in which repeats of one configuration over training seeds
# may differ; fields claims.IGNORED_FIELDS leaves out (name, provenance, paths) are not compared either.
SEED_FIELDS = ("train.seed",)
# The distance columns and how an infinite value (exactly one mask empty) is penalised. ISLES 2015–2018's evaluator
# reports infinity and ranks such a case last, which gives no number to average; this is BraTS's convention, the
# largest distance the image allows (BraTS: HD95 373.13 mm, the diagonal of its 240×240×155 1-mm grid).
DISTANCE_COLUMNS = ("hd", "hd95", "assd")
PENALTY = ("an infinite distance (exactly one of prediction and reference empty) counts as the diagonal of the "
           "case's field of view, √Σ(voxels·spacing)² over the three axes in mm, the largest distance the image "
           "allows (BraTS's convention, e.g. 373.13 mm on its 240×240×155 1-mm grid)")


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
    # fold -> the provenance records of what trained it (its config.json's `provenance`, then any
    # `provenance_earlier` of a resumed fold); [] when the fold records none
    fold_provenance: dict = field(default_factory=dict)
    diagonals: dict = field(default_factory=dict, repr=False)  # (fold, case) -> field-of-view diagonal, cached

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

    def field_of_view_diagonal(self, case: str, fold: int) -> float:
        """The diagonal (mm) of the case's image, from its predicted mask's header; NaN when that mask is absent
        or unreadable (the penalised value is then unknown and the case stays out, counted)."""
        key = (fold, case)
        if key not in self.diagonals:
            try:
                info = nifti_io.read_info(self.prediction_path(case, fold), ndim=3)
                self.diagonals[key] = math.sqrt(sum((n * s) ** 2 for n, s in zip(info.shape, info.spacing)))
            except nifti_io.NiftiFileError:
                self.diagonals[key] = float("nan")
        return self.diagonals[key]

    def value(self, row: dict, metric: str, penalised: bool = False) -> float:
        """A row's metric; with `penalised`, an infinite distance becomes the case's field-of-view diagonal."""
        v = row[metric]
        if penalised and metric in DISTANCE_COLUMNS and math.isinf(v):
            return self.field_of_view_diagonal(row["case"], row["fold"])
        return v

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
        run.fold_provenance[fold] = _fold_provenance(paths)
        run.training_facts[fold] = training_facts.read_training_facts(paths.training_facts)
    if not run.rows:
        return None
    return run


def _fold_provenance(paths: run_layout.FoldPaths) -> list:
    """The provenance records in a fold's config.json (empty when it has none or no config.json)."""
    if not paths.config.is_file():
        return []
    config = read_json_file(paths.config, "fold configuration")
    if not isinstance(config, dict):
        return []
    records = [config.get("provenance")] + list(config.get("provenance_earlier") or [])
    return [r for r in records if isinstance(r, dict) and r]


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
    mixed: str = ""  # non-empty when runs under this name held other configurations too: which, and how they differ

    @property
    def config(self) -> dict:
        """The configuration of the first seed (group_runs checked that the others differ in SEED_FIELDS only)."""
        return self.runs[0].config

    @property
    def cohort(self) -> str:
        return self.runs[0].cohort

    @property
    def is_ensemble(self) -> bool:
        return self.runs[0].is_ensemble

    @property
    def seeds(self) -> list:
        return [_seed(r.config) for r in self.runs]

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

    @property
    def provenance_records(self) -> list:
        """What trained each fold of each seed: its provenance records (None for a fold that records none)."""
        return [record for r in self.runs for fold in r.folds for record in (r.fold_provenance.get(fold) or [None])]

    def patient(self, case: str) -> str:
        return self.patient_of.get(case, case)

    def patient_values(self, metric: str, penalised: bool = False) -> dict:
        """patient -> the metric: mean over the patient's slabs (finite values), then over seeds.

        A patient whose slabs have no finite value in a seed is left out of that seed; a patient with no
        finite value in any seed is absent (its infinite distances are counted by `infinite_results`). With
        `penalised`, infinite distances count as the field-of-view diagonal (PENALTY) instead.
        """
        per_seed = [seed_patient_values(r, metric, self.patient, penalised) for r in self.runs]
        patients = set().union(*per_seed) if per_seed else set()
        out = {}
        for p in sorted(patients):  # a fixed order: the bootstrap resamples by position
            vals = [s[p] for s in per_seed if p in s]
            out[p] = sum(vals) / len(vals)
        return out

    def infinite_results(self, metrics=DISTANCE_COLUMNS) -> tuple[int, int]:
        """(results with an infinite value of any of `metrics`, all results): over every seed and case."""
        rows = [row for r in self.runs for row in r.rows]
        return sum(1 for row in rows if any(math.isinf(row[m]) for m in metrics)), len(rows)

    def seed_means(self, metric: str = "dice") -> list:
        """Per seed: the mean over patients of the metric."""
        out = []
        for r in self.runs:
            vals = list(seed_patient_values(r, metric, self.patient).values())
            out.append(sum(vals) / len(vals) if vals else float("nan"))
        return out


def seed_patient_values(run: "RunResults", metric: str, patient_of, penalised: bool = False) -> dict:
    """patient -> mean of the finite values of `metric` over the patient's cases, for one run (`penalised`:
    infinite distances as RunResults.value gives them)."""
    by_patient = {}
    for row in run.rows:
        v = run.value(row, metric, penalised)
        if is_finite(v):
            by_patient.setdefault(patient_of(row["case"]), []).append(float(v))
    return {p: sum(v) / len(v) for p, v in by_patient.items()}


def read_patients(run: RunResults) -> tuple[dict, str] | None:
    """case -> patient of a run, and where it came from: the map kept in its folder, else (runs made before
    it was kept) the prepared data's patients.json where config.json says it is; None when neither exists."""
    kept = run_layout.read_patient_map(run.run_dir)
    if kept is not None:
        return kept, str(run_layout.patient_map_path(run.run_dir))
    prepared = run.config.get("prepared")
    if prepared:
        path = Path(str(prepared)) / "patients.json"
        if path.is_file():
            data = read_json_file(path, "patients file")
            if not isinstance(data, dict) or not isinstance(data.get("patients"), dict):
                raise IslesbenchError(f"{path}: expected {{\"patients\": {{case: patient}}}}")
            return dict(data["patients"]), f"{path} (the prepared data {run.name} names; not kept with the run)"
    return None


def seed_config_differences(a: dict, b: dict) -> dict:
    """field -> (value in a, value in b) for every field but the seed (SEED_FIELDS) in which two runs differ."""
    return {k: v for k, v in config_differences(a, b).items() if k not in SEED_FIELDS}


def split_by_config(members: list) -> list:
    """Runs of one name (sorted by seed) as lists of runs with equal configurations but for the seed, the list
    holding the first seed first."""
    variants = []
    for run in members:
        same = next((v for v in variants if not seed_config_differences(v[0].config, run.config)), None)
        if same is None:
            variants.append([run])
        else:
            same.append(run)
    return variants


def group_runs(runs: list) -> list:
    """Runs grouped by configuration (seeds together), each group with its cohort's patient mapping.

    Runs share a group when they share cohort and name (less `-seed<k>`) and their config.json files differ in
    SEED_FIELDS only. Runs under one name with other configurations become groups of their own: the first
    seed's keeps the name, the others are named `<name> [seeds …]`, and every one of them says in `mixed` what
    differs, so that no table merges them and no claim calls them controlled. IslesbenchError when no run of
    the group (nor another run of its cohort) has a patient map.
    """
    by_name = {}
    for run in runs:
        by_name.setdefault((run.cohort, base_name({**run.config, "name": run.name})), []).append(run)
    groups = []
    for (_, name), members in sorted(by_name.items()):
        members.sort(key=lambda r: _seed(r.config))
        found = None
        for candidate in members + [r for r in runs if r.cohort == members[0].cohort]:
            found = read_patients(candidate)
            if found is not None:
                break
        if found is None:
            run = members[0]
            raise IslesbenchError(
                f"{run_layout.patient_map_path(run.run_dir)}: missing, and so is the prepared data's patients.json "
                f"({run.config.get('prepared') or 'config.json names no prepared data'}): the report will not count "
                "each slab as a patient; copy the prepared folder's patients.json there, or rerun `islesbench run` "
                "on the prepared data (finished folds are skipped)")
        patient_of, source = found
        variants = split_by_config(members)
        for i, variant in enumerate(variants):
            mixed = ""
            if len(variants) > 1:
                mixed = (f"the runs named {name} (seeds {', '.join(str(_seed(r.config)) for r in members)}) hold "
                         f"{len(variants)} configurations, split into separate rows: "
                         + "; ".join(f"seeds {_seed_list(v)}: " + ", ".join(
                             f"{k} {_clip(x)} → {_clip(y)}" for k, (x, y) in seed_config_differences(variants[0][0].config,
                                                                                      v[0].config).items())
                             for v in variants[1:]))
            label = name if i == 0 else f"{name} [seeds {_seed_list(variant)}]"
            groups.append(ConfigGroup(name=label, runs=variant, patient_of=patient_of, patient_source=source,
                                      mixed=mixed))
    return groups


def _seed(config: dict) -> int:
    return int((config.get("train") or {}).get("seed") or 0)


def _clip(value) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _seed_list(runs: list) -> str:
    return ", ".join(str(_seed(r.config)) for r in runs)


def _to_float(x) -> float:
    if x is None or x == "":
        return float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")
