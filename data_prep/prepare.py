"""Validate an ISLES-layout cohort and write slice/volume TFRecords, the manifest and patient-grouped folds.

Every case is validated first; without --skip-bad any fault stops the run before anything is written,
listing all faults at once. Each case is written to temporary names and renamed, its manifest entry last,
so a re-run skips cases whose records are complete and whose inputs are unchanged, and a killed run
continues where it stopped. See islesbench.preprocessing for the normalisation and resampling, and
islesbench.manifest for the layout written.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np

from islesbench import isles, manifest, preprocessing, records
from islesbench.atomic import remove_stale_temporaries, write_json_atomic
from islesbench.config import DEFAULT_MODALITIES, read_json_file
from islesbench.errors import CohortError, IslesbenchError
from islesbench.data_prep import patients as patients_mod

SYNTHETIC_MARKER = "synthetic_cohort.json"


def configure_parser(parser) -> None:
    parser.add_argument("--data", required=True, help="raw cohort in the ISLES 2018 layout (TRAINING/ and/or TESTING/)")
    parser.add_argument("--out", required=True, help="prepared directory to write")
    parser.add_argument("--folds", type=int, default=5, help="number of patient-grouped cross-validation folds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--skip-bad", action="store_true", help="skip malformed cases (named) instead of stopping")
    parser.add_argument("--jobs", type=int, default=1, help="cases prepared in parallel")
    parser.add_argument("--grid", type=int, default=256, help="in-plane grid side the slices are resampled to")
    parser.add_argument("--patients", default=None, help="CSV `case,patient`; default: inferred from the headers")
    parser.add_argument("--modalities", default=",".join(DEFAULT_MODALITIES), help="input channels, comma separated")


def run_command(args) -> int:
    prepare_cohort(args.data, args.out, folds=args.folds, seed=args.seed, skip_bad=args.skip_bad,
                   jobs=args.jobs, grid=args.grid, patients_csv=args.patients,
                   modalities=tuple(m.strip() for m in args.modalities.split(",") if m.strip()))
    return 0


def cohort_label(raw) -> str:
    """`synthetic (seed S)` for the built-in cohort, else the raw folder's name."""
    raw = Path(raw)
    marker = raw / SYNTHETIC_MARKER
    if marker.is_file():
        return f"synthetic (seed {json.loads(marker.read_text()).get('seed')})"
    return raw.resolve().name


def input_fingerprint(case: isles.CaseFiles, modalities, grid: int) -> str:
    """Changes when any input file or preparation setting changes."""
    h = hashlib.sha256()
    h.update(json.dumps([records.SCHEMA_VERSION, list(modalities), grid, preprocessing.describe_rules()]).encode())
    for mod in sorted(case.files):
        st = Path(case.files[mod]).stat()
        h.update(f"{mod}:{Path(case.files[mod]).name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _geometry(case: isles.CaseFiles, modalities):
    import nibabel as nib

    img = nib.load(str(case.files[modalities[0]]))
    return img.shape[:3], img.affine, tuple(float(z) for z in img.header.get_zooms()[:3])


def _case_is_current(paths: manifest.PreparedPaths, case_id: str, fingerprint: str) -> bool:
    entry_file = paths.case_entry_file(case_id)
    if not (entry_file.is_file() and paths.slices_file(case_id).is_file() and paths.volume_file(case_id).is_file()):
        return False
    try:
        return json.loads(entry_file.read_text()).get("input_fingerprint") == fingerprint
    except json.JSONDecodeError:
        return False


def prepare_case(case: isles.CaseFiles, out: str, modalities, grid: int, fingerprint: str) -> dict:
    """Write one case's slice and volume records, then its manifest entry; return the entry."""
    paths = manifest.PreparedPaths(Path(out))
    c = isles.load_case(case, modalities=modalities, with_mask=case.split != "TESTING")
    params = preprocessing.normalization_params(c.volumes, modalities)
    image, mask = preprocessing.case_to_records_arrays(c.volumes, c.mask, modalities, params, grid)
    spacing = preprocessing.grid_spacing(c.spacing, c.shape[:2], grid)
    depth = image.shape[0]
    records.write_records(paths.slices_file(c.case_id), (
        records.slice_example(c.case_id, z, depth, image[z], mask[z], spacing) for z in range(depth)))
    records.write_records(paths.volume_file(c.case_id), [records.volume_example(c.case_id, image, mask, spacing)])
    voxel_ml = float(np.prod(c.spacing)) / 1000.0
    entry = {
        "case_id": c.case_id,
        "split": case.split or "TRAINING",
        "source": {m: str(Path(p).resolve()) for m, p in sorted(case.files.items())},
        "shape": list(c.shape),
        "spacing": list(c.spacing),
        "affine": np.asarray(c.affine).tolist(),
        "grid_spacing": list(spacing),
        "num_slices": depth,
        "lesion_slices": int(mask.reshape(depth, -1).any(axis=1).sum()),
        "lesion_volume_ml": float(c.mask.sum()) * voxel_ml if c.mask is not None else None,
        "normalization": params,
        "records": {"slices": str(paths.slices_file(c.case_id).relative_to(paths.root)),
                    "volume": str(paths.volume_file(c.case_id).relative_to(paths.root))},
        "input_fingerprint": fingerprint,
    }
    write_json_atomic(paths.case_entry_file(c.case_id), entry)
    return entry


def _prepare_case_job(job):
    case, out, modalities, grid, fingerprint = job
    t0 = time.time()
    entry = prepare_case(case, out, modalities, grid, fingerprint)
    return entry, time.time() - t0


def validate_cohort(cases, modalities, skip_bad: bool):
    """Validate every case; return the good ones (raise CohortError listing all faults unless skip_bad)."""
    faults, good = [], []
    for i, case in enumerate(cases, 1):
        problems = isles.validate_case(case, modalities=modalities)
        print(f"[validate {i}/{len(cases)}] {case.case_id}: {'ok' if not problems else f'{len(problems)} fault(s)'}",
              flush=True)
        if problems:
            faults.extend(problems)
            if skip_bad:
                print(f"  skipping {case.case_id}: " + "; ".join(problems), flush=True)
        else:
            good.append(case)
    if faults and not skip_bad:
        raise CohortError(faults)
    if not good:
        raise IslesbenchError("no valid case to prepare")
    return good


def prepare_cohort(raw, out, folds: int = 5, seed: int = 0, skip_bad: bool = False, jobs: int = 1,
                   grid: int = 256, patients_csv=None, modalities=DEFAULT_MODALITIES) -> manifest.PreparedData:
    """Validate, write records for every case (resuming), then the manifest, patients and splits."""
    modalities = tuple(modalities)
    unknown = [m for m in modalities if m not in isles.MAP_MODALITIES]
    if unknown:
        raise IslesbenchError(f"unknown modalities {unknown}; choose from {', '.join(isles.MAP_MODALITIES)}")
    if grid % 8 or grid < 32:
        raise IslesbenchError(f"--grid must be a multiple of 8 and >= 32, not {grid}")
    cases = isles.discover_cohort(raw)
    good = validate_cohort(cases, modalities, skip_bad)
    training = [c for c in good if c.split != "TESTING"]
    if patients_csv:
        patient_of = patients_mod.read_patients_csv(patients_csv, [c.case_id for c in training])
        patient_method = f"from {patients_csv}"
    else:
        geometries = {c.case_id: patients_mod.slab_geometry(*_geometry(c, modalities)) for c in training}
        patient_of, warnings = patients_mod.infer_patients(geometries)
        for w in warnings:
            print(f"warning: {w}", flush=True)
        patient_method = "inferred from headers (same in-plane geometry, abutting z-ranges)"
    pairs = {}
    for case_id, patient in patient_of.items():
        pairs.setdefault(patient, []).append(case_id)
    multi = [v for v in pairs.values() if len(v) > 1]
    print(f"patients: {len(pairs)} for {len(patient_of)} training cases; two-slab patients: "
          + (", ".join("+".join(v) for v in multi) or "none"), flush=True)

    paths = manifest.PreparedPaths(Path(out))
    paths.records_dir.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_temporaries(paths.root)
    if removed:
        print(f"removed {removed} partial file(s) of an interrupted run", flush=True)

    jobs_todo, entries = [], {}
    for case in good:
        fp = input_fingerprint(case, modalities, grid)
        if _case_is_current(paths, case.case_id, fp):
            entries[case.case_id] = json.loads(paths.case_entry_file(case.case_id).read_text())
        else:
            jobs_todo.append((case, str(paths.root), modalities, grid, fp))
    print(f"preparing {len(jobs_todo)} case(s), {len(entries)} already done", flush=True)
    t0 = time.time()
    if jobs > 1 and len(jobs_todo) > 1:
        # spawn, not fork: TensorFlow's runtime does not survive a fork.
        with multiprocessing.get_context("spawn").Pool(min(jobs, len(jobs_todo))) as pool:
            results = pool.imap_unordered(_prepare_case_job, jobs_todo)
            for i, (entry, dt) in enumerate(results, 1):
                entries[entry["case_id"]] = entry
                _progress(i, len(jobs_todo), entry, dt)
    else:
        for i, job in enumerate(jobs_todo, 1):
            entry, dt = _prepare_case_job(job)
            entries[entry["case_id"]] = entry
            _progress(i, len(jobs_todo), entry, dt)

    order = [c.case_id for c in good]
    for case_id in order:
        entries[case_id]["patient"] = patient_of.get(case_id)
    write_json_atomic(paths.patients, {"method": patient_method, "patients": patient_of})
    manifest.write_manifest(paths, {
        "schema_version": records.SCHEMA_VERSION,
        "source": str(Path(raw).resolve()),
        "cohort": cohort_label(raw),
        "grid": grid,
        "modalities": list(modalities),
        "normalization": preprocessing.describe_rules(),
        "cases": [entries[c] for c in order],
    })
    _write_splits_if_needed(paths, patient_of, entries, folds, seed)
    print(f"prepared {len(order)} case(s) in {time.time() - t0:.1f} s -> {paths.root}", flush=True)
    return manifest.PreparedData(paths.root)


def _progress(i, n, entry, seconds):
    vol = entry["lesion_volume_ml"]
    vol_text = "test case" if vol is None else f"lesion {vol:.1f} mL"
    print(f"[prepare {i}/{n}] {entry['case_id']}: {entry['num_slices']} slices, {vol_text}, {seconds:.1f} s",
          flush=True)


def _write_splits_if_needed(paths, patient_of, entries, folds, seed):
    """Keep splits.json when it still fits this cohort; regenerate or refuse (with the reason) when not.

    Kept: it covers exactly these cases with `folds` folds, was made with this seed and patient mapping,
    or was edited by hand (its folds differ from the ones it was generated with) and still groups by
    patient. Regenerated: a generated split whose seed, patient mapping, folds or cases changed. Refused:
    a hand-edited split that no longer fits, or that puts one patient on both sides.
    """
    if paths.splits.is_file():
        existing = read_json_file(paths.splits, "splits file")
        if not isinstance(existing, dict) or not isinstance(existing.get("folds"), list):
            raise IslesbenchError(f"{paths.splits}: expected an object with a 'folds' list")
        stale = _stale_split_reasons(existing, patient_of, folds, seed)
        edited = existing.get("folds_fingerprint") not in (None, manifest.fingerprint(existing.get("folds")))
        if not stale:
            manifest.check_folds_by_patient(existing["folds"], patient_of, paths.splits)
            print(f"keeping existing {paths.splits}", flush=True)
            return
        if edited:
            raise IslesbenchError(f"{paths.splits} was edited by hand but no longer fits: {'; '.join(stale)} "
                                  "(delete it to regenerate, or fix it)")
        print(f"regenerating {paths.splits}: {'; '.join(stale)}", flush=True)
    lesion = {c: entries[c]["lesion_volume_ml"] or 0.0 for c in patient_of}
    fold_list = patients_mod.patient_grouped_folds(patient_of, lesion, folds, seed)
    manifest.write_splits(paths, fold_list, seed, "patient-grouped, stratified by lesion volume", patient_of)
    for k, f in enumerate(fold_list):
        print(f"fold {k}: {len(f['train'])} train / {len(f['val'])} val cases", flush=True)


def _stale_split_reasons(existing: dict, patient_of: dict, folds: int, seed: int) -> list[str]:
    """Why an existing splits.json does not fit this cohort, seed and patient mapping (empty: it fits)."""
    reasons = []
    existing_folds = existing.get("folds") or []
    covered = {c for f in existing_folds for c in f.get("val", [])}
    if covered != set(patient_of):
        reasons.append("it covers other cases")
    if len(existing_folds) != folds:
        reasons.append(f"it has {len(existing_folds)} folds, not {folds}")
    if existing.get("seed") != seed:
        reasons.append(f"it was made with seed {existing.get('seed')}, not {seed}")
    recorded = existing.get("patients_fingerprint")
    if recorded is None or recorded != manifest.fingerprint(patient_of):
        reasons.append("the patient mapping changed" if recorded else "it records no patient mapping")
    return reasons
