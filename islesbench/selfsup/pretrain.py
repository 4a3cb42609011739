"""Self-supervised pretraining of PSPNet's encoder on unlabelled CTP maps (the `islesbench pretrain`
command is islesbench.commands.pretrain; the benchmark's "selfsup" cells call it through
islesbench.grid.selfsup_cells).

The method (Models Genesis image restoration: restoring slices after local pixel shuffling, a non-linear
intensity transform and cut-outs; islesbench/data/restoration_pairs.py, islesbench/models/restoration.py)
and why it suits small unlabelled CTP cohorts are in the command's help.

`resolve_sources` turns --data values (raw cohorts, prepared once into OUT/prepared/, or prepared folders)
into prepared data with the `prepare` callable its caller passes (islesbench.data_prep.prepare.resolve_prepared;
this package never imports data_prep). `pretrain(..., exclude_fold=K, folds_of=...)` leaves out fold K's
validation patients (splits.json, patients.json) of every source that is the fine-tuning cohort (the same
raw source counts as the same cohort), and any case of any source whose content is one of theirs (a copy of
the fine-tuning cohort under another path; islesbench.storage.manifest.case_content_fingerprint), so fold K
can be fine-tuned from OUT/fold_K.keras without its validation cases ever having been seen. The record
stores every case's content fingerprint and the sha256 of the weights it describes, which is what ties it
to them (`run --pretrained`). Layout: islesbench/storage/pretrain_records.py.

Resumable like `run`: every epoch commits the model with its optimizer state and the history together
(islesbench/training/checkpoints.py's scheme), and the same call continues after a kill. TensorBoard logs,
history.csv and progress.png (loss and restorations of fixed slices) are in the state folder.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from islesbench.atomic import atomic_path, remove_stale_temporaries, write_json_atomic
from islesbench.config import apply_overrides, changed_fields, profile_config, read_json_file
from islesbench.data.restoration_pairs import GenesisConfig
from islesbench.errors import IslesbenchError
from islesbench.imaging.preprocessing import normalized_range
from islesbench.models.saving import load_checkpoint
from islesbench.runtime import precision as precisions
from islesbench.storage import history, manifest, pretrain_records, provenance, run_layout
from islesbench.training import checkpoints
from islesbench.training.callbacks import tensorboard_callbacks
from islesbench.training.checkpoints import EpochCommitter
from islesbench.training.compile import cosine_adamw

# Function-level imports: TensorFlow, keras, matplotlib and modules that import TensorFlow at their top
# (islesbench.data.pipeline, islesbench.models.restoration), so that `islesbench --help` stays fast.

PREVIEW_SLICES = 3
# Seed of the fixed batch whose targets give the output prior and whose first slices are the preview.
SAMPLE_SEED = 9_998


@dataclass
class PretrainConfig:
    """One pretraining: the encoder's width and input size (from the fine-tuning profile), the schedule."""

    method: str = pretrain_records.METHOD
    profile: str = "quick"
    encoder_width: float = 0.125
    input_size: int = 192
    epochs: int = 10
    steps_per_epoch: int = 40
    batch_size: int = 16
    learning_rate: float = 2e-3  # 1e-3 left the quick restoration far from converged in 400 steps
    weight_decay: float = 1e-4
    seed: int = 0
    precision: str = "auto"  # as train.precision (islesbench/runtime/precision.py); stored resolved in pretrain.json
    genesis: GenesisConfig = field(default_factory=GenesisConfig)

    def validate(self) -> "PretrainConfig":
        problems = list(self.genesis.validate())
        if self.method != pretrain_records.METHOD:
            problems.append(f"method must be {pretrain_records.METHOD!r}, not {self.method!r}")
        if self.input_size % 8 or self.input_size < 32:
            problems.append(f"input_size must be a multiple of 8 and >= 32, not {self.input_size}")
        if min(self.epochs, self.steps_per_epoch, self.batch_size) < 1:
            problems.append("epochs, steps_per_epoch and batch_size must be >= 1")
        if not 0 < self.encoder_width <= 4:
            problems.append(f"encoder_width must lie in (0, 4], not {self.encoder_width}")
        if self.precision not in precisions.PRECISIONS:
            problems.append(f"precision must be one of {', '.join(precisions.PRECISIONS)}, not {self.precision!r}")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, not {self.learning_rate}")
        if problems:
            raise IslesbenchError("invalid pretraining configuration:\n  - " + "\n  - ".join(problems))
        return self


def pretrain_profile(profile: str) -> PretrainConfig:
    """The profile's pretraining: the from-scratch PSPNet's encoder width and input size, and a schedule
    (quick: 400 steps of 16 slices, a few minutes on 2 cores; paper: 100 epochs of 100 steps, GPU)."""
    fine_tune = profile_config(profile, "pspnet", None)
    schedule = {"quick": (10, 40), "paper": (100, 100)}[profile]
    return PretrainConfig(profile=profile, encoder_width=fine_tune.model.encoder_width,
                          input_size=fine_tune.data.input_size, epochs=schedule[0], steps_per_epoch=schedule[1])


def pretrain_config(profile: str, overrides=(), epochs: int | None = None, seed: int | None = None) -> PretrainConfig:
    """The profile's PretrainConfig with each overrides dict applied in order, then the flags; validated."""
    config = pretrain_profile(profile)
    for extra in overrides:
        config = apply_overrides(config, extra)
    flags = {k: v for k, v in (("epochs", epochs), ("seed", seed)) if v is not None}
    config = apply_overrides(config, flags).validate()
    return apply_overrides(config, {"precision": precisions.resolve(config.precision)})


def resolve_one(data, out: Path, num_folds: int, split_seed: int, layout, sources=(), *,
                prepare) -> manifest.PreparedData:
    """A --data value as prepared data: a prepared folder as is, a raw cohort prepared under OUT/prepared/.

    `prepare` (data folder, runs root, num_folds, seed=, layout=, target=) -> PreparedData is
    islesbench.data_prep.prepare.resolve_prepared, passed by the caller.
    """
    data = Path(data)
    for given, prepared in sources:
        if data.exists() and Path(given).resolve() == data.resolve():
            return prepared
    target = pretrain_records.PretrainPaths(out).prepared(len(list(sources)), data.resolve().name)
    return prepare(data, out, num_folds, seed=split_seed, layout=layout, target=target)


def resolve_sources(data_dirs, out, num_folds: int = 5, split_seed: int = 0, layout=None, *, prepare) -> list:
    """[(the --data value, PreparedData)] for every --data, all with the same channels (`prepare`: as for
    resolve_one)."""
    sources = []
    for data in data_dirs:
        sources.append((str(data), resolve_one(data, Path(out), num_folds, split_seed, layout, sources,
                                               prepare=prepare)))
    first = sources[0][1].modalities
    for given, prepared in sources[1:]:
        if prepared.modalities != first:
            raise IslesbenchError(f"--data {given}: channels {', '.join(prepared.modalities)} differ from "
                                  f"{sources[0][0]}'s ({', '.join(first)}); pretrain on cohorts with the same channels")
    return sources


def excluded_patients(folds_of: manifest.PreparedData, fold: int) -> tuple[set, dict]:
    """Fold `fold`'s validation patients of the fine-tuning cohort, and its case -> patient mapping."""
    splits = folds_of.splits()
    if not 0 <= fold < len(splits):
        raise IslesbenchError(f"--exclude-fold {fold}: {folds_of.paths.splits} has {len(splits)} folds")
    patient_of = folds_of.patient_of()
    return {patient_of.get(c, c) for c in splits[fold]["val"]}, patient_of


def select_cases(sources, exclude_fold: int | None, folds_of) -> tuple[list, dict | None]:
    """Per source the cases read and the cases left out, and the exclusion record (None: nothing excluded).

    Left out: the excluded patients' cases of the fine-tuning cohort (same raw source), and every case of any
    source whose content fingerprint is one of theirs (the same images under another path or name)."""
    excluded = None
    patients, patient_of, key, left_out_content = set(), {}, None, set()
    if exclude_fold is not None:
        patients, patient_of = excluded_patients(folds_of, exclude_fold)
        key = pretrain_records.cohort_key(folds_of)
        left_out_content = set(folds_of.case_fingerprints(
            [c for c in folds_of.case_ids(split=None) if patient_of.get(c, c) in patients]).values())
    cohorts = []
    for given, prepared in sources:
        ids = sorted(prepared.case_ids(split=None))
        same = key is not None and pretrain_records.cohort_key(prepared) == key
        content = prepared.case_fingerprints(ids)
        dropped = [c for c in ids if (same and patient_of.get(c, c) in patients) or content[c] in left_out_content]
        used = [c for c in ids if c not in set(dropped)]
        if not used:
            raise IslesbenchError(f"--data {given}: no case left to pretrain on")
        cohorts.append({"data": given, "key": pretrain_records.cohort_key(prepared), "cohort": prepared.cohort_label,
                        "source": prepared.manifest.get("source"), "prepared": str(prepared.root.resolve()),
                        "n_cases": len(used), "n_slices": sum(int(prepared.cases[c]["num_slices"]) for c in used),
                        "cases_fingerprint": manifest.fingerprint(used), "cases": used, "excluded_cases": dropped})
    if exclude_fold is not None:
        excluded = {"fold": exclude_fold, "folds_of": key, "splits_fingerprint": manifest.fingerprint(folds_of.splits()),
                    "patients": sorted(patients),
                    "cases": sorted(c for cohort in cohorts for c in cohort["excluded_cases"])}
        if not any(c["key"] == key for c in cohorts):
            excluded["note"] = "the fine-tuning cohort is not among --data: nothing of it was read"
    return cohorts, excluded


def pretrain(config: PretrainConfig, sources, out, exclude_fold: int | None = None, folds_of=None,
             force: bool = False, verbose=None) -> Path:
    """Pretrain (or continue) one encoder; return the weights file. `sources` from resolve_sources."""
    paths = pretrain_records.PretrainPaths(Path(out))
    state, output = paths.state(exclude_fold), paths.output(exclude_fold)
    cohorts, excluded = select_cases(sources, exclude_fold, folds_of or sources[0][1])
    # per cohort, the content fingerprint of every case read: how `run --pretrained` recognises them anywhere
    fingerprints = [prepared.case_fingerprints(c["cases"]) for (_, prepared), c in zip(sources, cohorts)]
    record = {"method": config.method, "config": dataclasses.asdict(config), "cohorts": cohorts,
              "excluded": excluded, "output": output.name, "provenance": provenance.provenance(), "seconds": None,
              "case_fingerprints": fingerprints, "weights_sha256": None}
    what = f"fold {exclude_fold}" if exclude_fold is not None else "all cases"
    record_file = paths.record(exclude_fold)
    if record_file.is_file() and not force:
        previous = read_json_file(record_file, "pretraining record")
        # records from before the hash and the fingerprints lack them: not a change of configuration or data
        changed = changed_fields(previous, record,
                                 ignored=("provenance", "seconds", "case_fingerprints", "weights_sha256"))
        if changed:
            raise IslesbenchError(f"{state.root} holds a pretraining of another configuration or data (differs in: "
                                  f"{', '.join(changed)}); use another --out, or --force to replace it")
        if state.is_done() and output.is_file():
            if not previous.get("weights_sha256") or not previous.get("case_fingerprints"):
                # tie a record written before records were tied to their weights (the file this state exported)
                write_json_atomic(record_file, {**previous, "case_fingerprints": fingerprints,
                                                "weights_sha256": pretrain_records.weights_sha256(output)})
            print(f"pretrain {what}: finished earlier -> {output} (--force pretrains again)", flush=True)
            return output
    if force and state.root.exists():
        shutil.rmtree(state.root)
        output.unlink(missing_ok=True)
    state.root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(state.root)
    write_json_atomic(record_file, record)
    n_slices = sum(c["n_slices"] for c in cohorts)
    print(f"pretrain {what}: {config.method}, {sum(c['n_cases'] for c in cohorts)} cases ({n_slices} slices) from "
          f"{len(cohorts)} cohort(s)" + (f", {len(excluded['cases'])} case(s) of fold {exclude_fold}'s "
                                        f"{len(excluded['patients'])} validation patient(s) left out" if excluded else ""),
          flush=True)
    t0 = time.time()
    fit(config, sources, cohorts, state, verbose=verbose)
    export(state, output)
    rows = history.read_rows(state.history_csv)
    record["seconds"] = rows[-1].get(history.SECONDS) if rows else None  # training time over all resumes
    record["weights_sha256"] = pretrain_records.weights_sha256(output)  # ties the record to these weights
    write_json_atomic(record_file, record)
    run_layout.finish_fold(state)
    print(f"pretrain {what}: done in {time.time() - t0:.0f} s -> {output}", flush=True)
    return output


def _files_and_windows(sources, cohorts):
    files = []
    for (_, prepared), cohort in zip(sources, cohorts):
        files += prepared.slice_files(cohort["cases"])
    windows = [normalized_range(m) for m in sources[0][1].modalities]
    return files, windows


def build_compiled_restoration_model(config: PretrainConfig, channels: int, output_prior=None):
    """The restoration network, compiled: AdamW with cosine decay, mean squared error (Models Genesis' loss)."""
    from islesbench.models.restoration import build_restoration_model

    with precisions.policy(config.precision):
        model = build_restoration_model(channels, config.input_size, config.encoder_width, output_prior)
    model.compile(optimizer=cosine_adamw(config.learning_rate, config.weight_decay,
                                         config.epochs * config.steps_per_epoch),
                  loss="mse")
    # built before the first step, whose tf.function would otherwise create its variables and be traced twice
    model.optimizer.build(model.trainable_variables)
    return model


def fit(config: PretrainConfig, sources, cohorts, state, verbose=None) -> None:
    """Train until config.epochs, continuing from the last committed epoch."""
    import keras

    from islesbench.data import pipeline

    keras.utils.set_random_seed(config.seed)
    done = checkpoints.recover_last_epoch(state)
    latest = checkpoints.latest_epoch_checkpoint(state.backup_dir)[1]
    if done >= config.epochs:
        return
    files, windows = _files_and_windows(sources, cohorts)
    n_slices = sum(c["n_slices"] for c in cohorts)

    def sample(size: int):
        # Reading it decodes every slice once (the shuffle buffer holds them all): one such batch per process.
        batch = next(iter(pipeline.restoration_dataset(files, n_slices, config.input_size, size, SAMPLE_SEED, windows,
                                                   config.genesis)))
        return tuple(np.asarray(t) for t in batch)

    if latest is not None:
        model = load_checkpoint(latest)
        print(f"resuming after epoch {done}", flush=True)
        preview = sample(PREVIEW_SLICES)  # the same slices as the fresh start's: a batch's first elements
    else:
        distorted, target = sample(max(config.batch_size, PREVIEW_SLICES))
        # each output starts at its channel's mean target, measured on one seeded batch of the data
        model = build_compiled_restoration_model(config, len(windows),
                                                 output_prior=target[:config.batch_size].mean(axis=(0, 1, 2)))
        preview = distorted[:PREVIEW_SLICES], target[:PREVIEW_SLICES]
    stream = pipeline.restoration_dataset(files, n_slices, config.input_size, config.batch_size, config.seed, windows,
                                      config.genesis, skip_batches=done * config.steps_per_epoch)
    callbacks = [restoration_epoch_commit(state, done, config, preview, windows)]
    callbacks += tensorboard_callbacks(state.tensorboard_dir)
    verbose = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)
    model.fit(stream, epochs=config.epochs, initial_epoch=done, steps_per_epoch=config.steps_per_epoch,
              callbacks=callbacks, verbose=verbose, shuffle=False)


def restoration_epoch_commit(state, initial_epoch: int, config: PretrainConfig, preview, windows):
    """The pretraining's Keras callback: per epoch, history (with the training seconds over all resumes),
    random-generator states and the full model committed together as a fold's epochs are
    (checkpoints.EpochCommitter), then a progress line and the restoration picture."""
    import keras

    class RestorationEpochCommit(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.committer = EpochCommitter(state, initial_epoch)
            self.started = time.time()
            # training seconds of the epochs committed before this process (a resumed pretraining)
            rows = self.committer.rows
            self.before = float(rows[-1].get(history.SECONDS, 0.0)) if rows else 0.0

        def on_epoch_end(self, epoch, logs=None):
            done = epoch + 1
            spent = time.time() - self.started
            # no validation score in the rows: checkpoint_best is never linked, checkpoint_last is exported
            row = self.committer.commit(self.model, epoch, logs, **{history.SECONDS: round(self.before + spent, 1)})
            left = (config.epochs - done) * spent / (done - initial_epoch)
            print(f"pretrain epoch {done}/{config.epochs}: loss {row.get(history.LOSS, math.nan):.5f}, "
                  f"{row[history.SECONDS]:.0f} s so far, about {left / 60:.1f} min left", flush=True)
            try:
                plot_restoration_progress(self.committer.rows, self.model, preview, windows, state.progress_png)
            except Exception as exc:  # a picture must never stop training
                print(f"warning: progress plot not written: {exc}", file=sys.stderr)

    return RestorationEpochCommit()


def plot_restoration_progress(rows: list, model, preview, windows, path: Path) -> None:
    """progress.png: the restoration loss per epoch, and fixed slices (CBF and Tmax): target, input, restored."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    distorted, target = (np.asarray(t) for t in preview)
    restored = np.asarray(model(distorted, training=False))
    channels = [(0, "CBF"), (3, "Tmax")] if target.shape[-1] > 3 else [(0, "channel 0")]
    rows_shown = [(s, c, name) for s in range(len(target)) for c, name in channels]
    fig = plt.figure(figsize=(11, 1.3 + 1.15 * len(rows_shown)))
    grid = fig.add_gridspec(len(rows_shown), 2, width_ratios=[1.0, 2.3])
    ax = fig.add_subplot(grid[:, 0])
    ax.plot([r["epoch"] + 1 for r in rows], [r.get("loss", np.nan) for r in rows], marker="o")
    ax.set_yscale("log"), ax.set_xlabel("epoch"), ax.set_ylabel("restoration MSE (maps on [0, 1])")
    ax.grid(alpha=0.3, which="both"), ax.set_title("training loss")
    for i, (s, c, name) in enumerate(rows_shown):
        low, high = windows[c]
        shown_input = np.clip((distorted[s, ..., c] - low) / (high - low), 0, 1)  # the target's [0, 1] scale
        panel = np.concatenate([target[s, ..., c], shown_input, restored[s, ..., c]], axis=1)
        a = fig.add_subplot(grid[i, 1])
        # a window on the target's own range, so that low-contrast maps (Tmax) stay visible
        a.imshow(panel, cmap="gray", vmin=float(np.percentile(target[s, ..., c], 1)),
                 vmax=float(np.percentile(target[s, ..., c], 99.5)) + 1e-6)
        a.set_xticks([]), a.set_yticks([])
        a.set_ylabel(f"{name}, slice {s + 1}", fontsize=7)
        if i == 0:
            a.set_title("target | distorted input | restored", fontsize=9)
    fig.suptitle(f"{path.parent.parent.name}/{path.parent.name}: Models Genesis restoration")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def export(state, output: Path) -> None:
    """The finished model (checkpoint_last) as OUT's weights file, without the optimizer state."""
    import keras

    model = keras.saving.load_model(str(state.checkpoint_last), compile=False, safe_mode=True)
    with atomic_path(output) as tmp:
        model.save(str(tmp))  # not compiled: no optimizer state in the file
