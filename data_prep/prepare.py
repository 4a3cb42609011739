"""Preparing a cohort (`prepare_cohort`; the `islesbench prepare` command is islesbench.commands.prepare,
whose help states the rules: validate all first, write each case atomically, resume, stream channel by
channel), and resolving a --data value of the later commands to prepared data (`resolve_prepared`).

See islesbench.layouts for the layouts, islesbench.imaging.preprocessing for the normalisation and
resampling, and islesbench.storage.manifest for the layout written.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np

from islesbench import layouts
from islesbench.atomic import remove_stale_temporaries, write_json_atomic
from islesbench.config import DEFAULT_MODALITIES, read_json_file
from islesbench.data_prep import patients as patients_mod
from islesbench.errors import CohortError, IslesbenchError
from islesbench.imaging import preprocessing
from islesbench.storage import manifest, records

SYNTHETIC_MARKER = "synthetic_cohort.json"


def resolve_prepared(data_dir, runs_root, num_folds: int, seed: int = 0, layout: str | None = None,
                     target=None) -> manifest.PreparedData:
    """A prepared directory as is, or a raw cohort (of `layout`, detected when None) prepared (resumably)
    into `target` (default RUNS/prepared): what the --data of `run`, `tune`, `benchmark` and `pretrain` names."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise IslesbenchError(f"--data {data_dir} does not exist")
    if manifest.is_prepared_dir(data_dir):
        return manifest.PreparedData(data_dir)
    target = Path(runs_root) / "prepared" if target is None else Path(target)
    return prepare_cohort(data_dir, target, folds=num_folds, seed=seed, layout=layout)


def cohort_label(raw) -> str:
    """`synthetic (seed S)` (`synthetic ISLES'24 (seed S)`) for a built-in cohort, else the raw folder's name."""
    raw = Path(raw)
    marker = raw / SYNTHETIC_MARKER
    if marker.is_file():
        meta = read_json_file(marker, "synthetic cohort record")
        if not isinstance(meta, dict):
            raise IslesbenchError(f"{marker}: a synthetic cohort record must hold a JSON object")
        # The ISLES 2018 label stays as it was (run folders record it); other layouts say which they are.
        kind = "synthetic ISLES'24" if meta.get("layout") == "isles24" else "synthetic"
        return f"{kind} (seed {meta.get('seed')})"
    return raw.resolve().name


def input_fingerprint(case: layouts.CaseFiles, modalities, grid: int, slice_mm: float | None = None) -> str:
    """Changes when any input file or preparation setting changes."""
    h = hashlib.sha256()
    h.update(json.dumps([records.SCHEMA_VERSION, list(modalities), grid, preprocessing.describe_rules()]).encode())
    h.update(json.dumps([manifest.MANIFEST_VERSION, slice_mm, preprocessing.CANONICAL_AXCODES]).encode())
    for mod in sorted(case.files):
        st = Path(case.files[mod]).stat()
        h.update(f"{mod}:{Path(case.files[mod]).name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _geometry(case: layouts.CaseFiles, modalities):
    import nibabel as nib  # imported here only, as islesbench.imaging.nifti_io does, to keep start-up fast

    img = nib.load(str(case.files[modalities[0]]))
    return img.shape[:3], img.affine, tuple(float(z) for z in img.header.get_zooms()[:3])


def _case_is_current(paths: manifest.PreparedPaths, case_id: str, fingerprint: str) -> bool:
    entry_file = paths.case_entry_file(case_id)
    if not (entry_file.is_file() and paths.slices_file(case_id).is_file() and paths.volume_file(case_id).is_file()):
        return False
    try:  # a damaged entry (e.g. a kill mid-write on a filesystem without atomic rename) is prepared again
        entry = json.loads(entry_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(entry, dict) and entry.get("input_fingerprint") == fingerprint


def prepare_case(case: layouts.CaseFiles, out: str, modalities, grid: int, fingerprint: str,
                 slice_mm: float | None = None) -> dict:
    """Write one case's slice and volume records, then its manifest entry; return the entry.

    Streams: each channel is read, reoriented and resampled to the target slice count (in-plane kept),
    then normalised (the brain mask from CBF and CT at that sampling, as predict computes it), put on
    the in-plane grid, and its full-resolution copy dropped before the next channel is read.
    """
    paths = manifest.PreparedPaths(Path(out))
    first = layouts.load_volume(case, modalities[0])
    shape, affine, native_spacing = first[0].shape, first[1], first[2]
    sampling = preprocessing.plan_sampling(shape, affine, native_spacing, grid, slice_mm)

    def canonical(m):
        return preprocessing.to_canonical_volume(layouts.load_volume(case, m)[0], sampling)

    loaded = {modalities[0]: preprocessing.to_canonical_volume(first[0], sampling)}
    del first
    brain = None
    if any(preprocessing.RULES.get(m, preprocessing.DEFAULT_RULE)["kind"] != "fixed" for m in modalities):
        for m in ("CT_CBF", "CT"):
            if m in modalities and m not in loaded:
                loaded[m] = canonical(m)
        brain = preprocessing.brain_mask({m: loaded[m] for m in ("CT_CBF", "CT") if m in loaded} or loaded)
    params, channels = {}, []
    for m in modalities:
        volume = loaded.pop(m) if m in loaded else canonical(m)
        params[m] = preprocessing.channel_params(m, volume, brain)
        channels.append(preprocessing.canonical_to_target(preprocessing.normalize_channel(volume, params[m]), sampling))
        del volume
    loaded.clear()
    image = preprocessing.stack_channels(channels)
    del channels
    mask_raw = None
    if case.split != "TESTING" and layouts.MASK in case.files:
        mask_raw = layouts.load_volume(case, layouts.MASK)[0]
    mask = preprocessing.mask_to_target(mask_raw, sampling)
    spacing = sampling.grid_spacing
    depth = image.shape[0]
    records.write_records(paths.slices_file(case.case_id), (
        records.slice_example(case.case_id, z, depth, image[z], mask[z], spacing) for z in range(depth)))
    records.write_records(paths.volume_file(case.case_id), [records.volume_example(case.case_id, image, mask, spacing)])
    voxel_ml = float(np.prod(native_spacing)) / 1000.0
    entry = {
        "case_id": case.case_id,
        "split": case.split or "TRAINING",
        "source": {m: str(Path(p).resolve()) for m, p in sorted(case.files.items())},
        "shape": list(shape),
        "spacing": list(native_spacing),
        "affine": np.asarray(affine).tolist(),
        "grid_spacing": list(spacing),
        "sampling": sampling.to_json(),
        "num_slices": depth,
        "lesion_slices": int(mask.reshape(depth, -1).any(axis=1).sum()),
        "lesion_volume_ml": float(mask_raw.sum()) * voxel_ml if mask_raw is not None else None,
        "normalization": params,
        "records": {"slices": str(paths.slices_file(case.case_id).relative_to(paths.root)),
                    "volume": str(paths.volume_file(case.case_id).relative_to(paths.root))},
        "input_fingerprint": fingerprint,
    }
    write_json_atomic(paths.case_entry_file(case.case_id), entry)
    return entry


def _prepare_case_job(job):
    case, out, modalities, grid, fingerprint, slice_mm = job
    t0 = time.time()
    entry = prepare_case(case, out, modalities, grid, fingerprint, slice_mm)
    return entry, time.time() - t0


def validate_cohort(cases, modalities, skip_bad: bool):
    """Validate every case; return the good ones (raise CohortError listing all faults unless skip_bad)."""
    faults, good = [], []
    for i, case in enumerate(cases, 1):
        problems = layouts.validate_case(case, modalities=modalities)
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
                   grid: int = 256, patients_csv=None, modalities=DEFAULT_MODALITIES, layout: str | None = None,
                   slice_mm: float | None = None) -> manifest.PreparedData:
    """Validate, write records for every case (resuming), then the manifest, patients and splits.

    `layout` None detects it from `raw`; `slice_mm` None takes the layout's DEFAULT_SLICE_MM.
    Over 80 lines: the checks, the resumable per-case loop and the writes are one ordered transaction
    (the manifest is written last, so a killed run never leaves a manifest naming missing records).
    """
    modalities = tuple(modalities)
    inputs = [m for m in layouts.CHANNELS if m not in (layouts.MASK, layouts.PWI)]
    unknown = [m for m in modalities if m not in inputs]
    if unknown:
        raise IslesbenchError(f"unknown modalities {unknown}; choose from {', '.join(inputs)}")
    if grid % 8 or grid < 32:
        raise IslesbenchError(f"--grid must be a multiple of 8 and >= 32, not {grid}")
    layout_module = layouts.resolve(raw, layout)
    slice_mm = layout_module.DEFAULT_SLICE_MM if slice_mm is None else float(slice_mm)
    if slice_mm is not None and not slice_mm > 0:
        raise IslesbenchError(f"--slice-mm must be positive, not {slice_mm}")
    cases = layout_module.discover_cohort(raw)
    print(f"layout {layout_module.NAME}: {len(cases)} case(s); slices "
          + ("kept as stored" if slice_mm is None else f"resampled to {slice_mm:g} mm"), flush=True)
    good = validate_cohort(cases, modalities, skip_bad)
    training = [c for c in good if c.split != "TESTING"]
    if patients_csv:
        patient_of = patients_mod.read_patients_csv(patients_csv, [c.case_id for c in training])
        patient_method = f"from {patients_csv}"
    elif training and all(c.patient for c in training):
        patient_of = {c.case_id: c.patient for c in training}
        patient_method = f"recorded by the {layout_module.NAME} layout (one subject, one patient)"
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
        fp = input_fingerprint(case, modalities, grid, slice_mm)
        if _case_is_current(paths, case.case_id, fp):
            entries[case.case_id] = json.loads(paths.case_entry_file(case.case_id).read_text())
        else:
            jobs_todo.append((case, str(paths.root), modalities, grid, fp, slice_mm))
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
        "manifest_version": manifest.MANIFEST_VERSION,
        "source": str(Path(raw).resolve()),
        "layout": layout_module.NAME,
        "cohort": cohort_label(raw),
        "grid": grid,
        "slice_mm": slice_mm,
        "canonical_axcodes": "".join(preprocessing.CANONICAL_AXCODES),
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
