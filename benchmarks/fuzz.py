"""Fuzz every door a file comes in by: a seeded corpus of corrupted inputs through the islesbench CLI.

    python benchmarks/fuzz.py [--work /tmp/islesbench-fuzz] [--seed 0] [--size 216] [--jobs 2]

Builds a tiny base once (a synthetic cohort, its prepared records, a 1-epoch U-Net run over 2 folds,
flat prediction/reference folders), then makes `--size` corrupted inputs from it, each a copy of the
base (hard links) with ONE file damaged:

- NIfTI (raw cohort maps and masks, predictions, references, validation masks): random bit flips in
  the header, truncation of .nii and .nii.gz at a random offset, dims zero, negative or huge (10^12
  voxels), invalid datatype codes, vox_offset past the end, scl_slope 0 or NaN, qform and sform that
  disagree, a 4-D file where a 3-D one is expected;
- `.keras` checkpoints (truncated, bytes flipped, config.json in the zip replaced, weights removed, empty);
- JSON the project wrote (config, threshold, summary, manifest, splits, per-case entries, benchmark
  record, synthetic cohort record): truncated, binary garbage, wrong type, a key removed, not UTF-8;
- CSV (metrics.csv, history.csv): truncated, garbage, header only, text in a number column, a column removed;
- TFRecords (slice and volume records): truncated, payload bytes flipped, empty, random bytes.

Each runs through the command that reads it (`prepare`, `evaluate`, `predict`, `report`, and `run` for
records) as an in-process CLI call (`islesbench.cli.main`) in one of `--jobs` worker processes, which
import TensorFlow once (`--subprocess`: a fresh `python -m islesbench` per input), each call bounded by a
timeout (a worker past it is killed: a hang). Verdicts: `accepted` (exit 0 and its outputs complete: the
damage was benign, e.g. scl_slope 0 means unscaled, or the file is one the command does not read),
`warned` (exit 0, complete outputs, and a warning naming the damaged file, e.g. a learning-curve figure
left out of a report), `named` (exit 2, no traceback, the message names the damaged file), or a failure: `traceback`, `hang`, `unnamed` (exit 2 without naming the file),
`exit-N` (another status), `partial-output` (a temporary file left, or a failed call left its output).
Prints the counts per command and verdict; exits 1 when any input failed.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from islesbench.runtime.child_env import child_env

TIMEOUT_S = 180
GOOD = ("accepted", "warned", "named")
TINY_RUN = {"model": {"base_width": 4, "depth": 2}, "data": {"input_size": 32},
            "train": {"batch_size": 4, "steps_per_epoch": 2, "epochs": 1}}


class Worker:
    """A long-lived `python fuzz.py --worker` process that runs CLI calls in-process (TensorFlow is
    imported once, not once per input); a call past its timeout kills the worker (a hang) and the next
    call starts a fresh one."""

    def __init__(self, log_path: Path):
        self.log_path, self.proc = Path(log_path), None

    def _start(self):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], env=child_env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(self.log_path, "ab"), text=True, bufsize=1)

    def call(self, args, timeout: float) -> subprocess.CompletedProcess:
        """`islesbench ARGS` in the worker: exit status (None on a hang), stdout, stderr with any traceback."""
        import select

        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(json.dumps([str(a) for a in args]) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:  # a hang, or the worker died (counts the same: no answer)
            self.close()
            return subprocess.CompletedProcess(args, None, "", "")
        answer = json.loads(line)
        return subprocess.CompletedProcess(args, answer["rc"], answer["stdout"], answer["stderr"])

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def worker_loop() -> int:
    """Serve `Worker.call`: one JSON list of CLI arguments per stdin line, one JSON answer per line."""
    import contextlib
    import traceback

    real_stdout = sys.stdout
    from islesbench.cli import main as cli_main

    for line in sys.stdin:
        args = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli_main(args)
            except SystemExit as exc:  # argparse
                rc = exc.code if isinstance(exc.code, int) else 2
            except BaseException:  # what a user would have seen as a traceback
                traceback.print_exc(file=err)
                rc = 1
        try:
            import keras

            keras.backend.clear_session(free_memory=True)
        except Exception:
            pass
        real_stdout.write(json.dumps({"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}) + "\n")
        real_stdout.flush()
    return 0


def cli(*args, cwd=None, timeout=TIMEOUT_S) -> subprocess.CompletedProcess:
    """`python -m islesbench ARGS` with TensorFlow quiet and no GPU; never raises on a timeout."""
    try:
        return subprocess.run([sys.executable, "-m", "islesbench", *map(str, args)], cwd=cwd, env=child_env(),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return subprocess.CompletedProcess(exc.cmd, None, out, err)


# --------------------------------------------------------------------------------------------------
# the base everything is damaged from


def build_base(work: Path, seed: int = 0) -> Path:
    """cohort/, prepared/, runs/ (unet over 2 folds), pred/ and ref/ under work/base (built once)."""
    base = Path(work) / "base"
    if (base / "READY").is_file():
        return base
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    steps = [("synth", "--out", base / "cohort", "--cases", 4, "--test-cases", 1, "--seed", seed, "--size", 48),
             ("prepare", "--data", base / "cohort", "--out", base / "prepared", "--folds", 2, "--grid", 32)]
    (base / "tiny.json").write_text(json.dumps(TINY_RUN))
    steps.append(("run", "--arch", "unet", "--data", base / "prepared", "--config", base / "tiny.json",
                  "--out", base / "runs"))
    for step in steps:
        done = cli(*step, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"building the fuzz base failed at {step[0]}:\n{done.stderr[-3000:]}")
    # Flat folders for evaluate: the run's validation masks against the cohort's OT masks, half as .nii.
    (base / "pred").mkdir()
    (base / "ref").mkdir()
    import nibabel as nib

    for mask in sorted((base / "runs").glob("unet-focal/fold_*/validation/case_*.nii.gz")):
        if mask.name.endswith("_prob.nii.gz"):
            continue
        case = mask.name[: -len(".nii.gz")]
        ot = next((base / "cohort" / "TRAINING" / case).glob("*OT*/*.nii*"))
        suffix = ".nii" if int(case.split("_")[1]) % 2 else ".nii.gz"
        nib.save(nib.load(str(mask)), str(base / "pred" / f"{case}{suffix}"))
        nib.save(nib.load(str(ot)), str(base / "ref" / f"{case}{'.nii.gz' if suffix == '.nii' else '.nii'}"))
    (base / "READY").write_text("ok\n")
    return base


# --------------------------------------------------------------------------------------------------
# mutations: each takes (path, rng) and damages that one file in place


def _raw_nifti(path: Path) -> tuple[bytearray, bool]:
    data = path.read_bytes()
    gz = data[:2] == b"\x1f\x8b"
    return bytearray(gzip.decompress(data) if gz else data), gz


def _write_nifti(path: Path, raw: bytes, gz: bool) -> None:
    path.write_bytes(gzip.compress(bytes(raw), mtime=0) if gz else bytes(raw))


def _set_header(path: Path, **fields) -> None:
    import nibabel as nib

    raw, gz = _raw_nifti(path)
    hdr = np.frombuffer(bytes(raw[:348]), dtype=nib.Nifti1Header.template_dtype).copy()
    for name, value in fields.items():
        hdr[name] = value
    raw[:348] = hdr.tobytes()
    _write_nifti(path, raw, gz)


def _header(path: Path):
    import nibabel as nib

    raw, _ = _raw_nifti(path)
    return np.frombuffer(bytes(raw[:348]), dtype=nib.Nifti1Header.template_dtype).copy()[0]


def nifti_header_flip(path, rng):
    raw, gz = _raw_nifti(path)
    for _ in range(rng.randint(1, 4)):
        raw[rng.randrange(348)] ^= 1 << rng.randrange(8)
    _write_nifti(path, raw, gz)


def truncate(path, rng):
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(len(data))])


def nifti_dims(path, rng):
    dim = _header(path)["dim"].copy()
    kind = rng.choice(["zero", "negative", "huge", "dim0"])
    if kind == "zero":
        dim[rng.randint(1, 3)] = 0
    elif kind == "negative":
        dim[rng.randint(1, 3)] = -rng.randint(1, 500)
    elif kind == "huge":
        dim[:4] = [3, 10000, 10000, 10000]  # 10^12 voxels
    else:
        dim[0] = rng.choice([0, -1, 8, 300])
    _set_header(path, dim=dim)


def nifti_datatype(path, rng):
    _set_header(path, datatype=rng.choice([0, 1, 3, 32, 128, 999, -4, 1792, 2304, 6]))


def nifti_vox_offset(path, rng):
    size = len(_raw_nifti(path)[0])
    _set_header(path, vox_offset=rng.choice([size + 4096, 1e9, 100, -352, float("nan")]))


def nifti_scl_slope(path, rng):
    _set_header(path, scl_slope=rng.choice([0.0, float("nan")]))


def nifti_qform_sform(path, rng):
    h = _header(path)
    srow = h["srow_x"].copy()
    srow[3] += rng.choice([5.0, 50.0, -120.0])
    _set_header(path, srow_x=srow, sform_code=1, qform_code=1)


def nifti_4d(path, rng):
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    stacked = np.stack([data] * rng.randint(2, 3), axis=-1)
    out = nib.Nifti1Image(stacked, img.affine)
    buf = out.to_bytes()
    _write_nifti(path, buf, str(path).endswith(".gz"))


NIFTI_MUTATIONS = {"header-flip": nifti_header_flip, "truncate": truncate, "dims": nifti_dims,
                   "datatype": nifti_datatype, "vox-offset": nifti_vox_offset, "scl-slope": nifti_scl_slope,
                   "qform-sform": nifti_qform_sform, "4d": nifti_4d}
NIFTI_WEIGHTS = {"header-flip": 6, "truncate": 6, "dims": 3, "datatype": 2, "vox-offset": 2, "scl-slope": 1,
                 "qform-sform": 1, "4d": 1}


def bytes_flip(path, rng):
    data = bytearray(path.read_bytes())
    for _ in range(rng.randint(1, 16)):
        data[rng.randrange(len(data))] ^= 0xFF
    path.write_bytes(bytes(data))


def empty(path, rng):
    path.write_bytes(b"")


def random_bytes(path, rng):
    path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096))))


def keras_bad_config(path, rng):
    _rezip(path, {"config.json": rng.choice([b"{not json", b"[]", b'{"class_name": "Nope", "config": {}}'])})


def keras_no_weights(path, rng):
    _rezip(path, {"model.weights.h5": None})


def _rezip(path: Path, replace: dict) -> None:
    with zipfile.ZipFile(path) as src:
        items = {name: src.read(name) for name in src.namelist()}
    for name, content in replace.items():
        if content is None:
            items.pop(name, None)
        else:
            items[name] = content
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for name, content in items.items():
            dst.writestr(name, content)
    path.write_bytes(buf.getvalue())


KERAS_MUTATIONS = {"truncate": truncate, "bytes-flip": bytes_flip, "bad-config": keras_bad_config,
                   "no-weights": keras_no_weights, "empty": empty}


def json_wrong_type(path, rng):
    path.write_text(rng.choice(["[]", '"text"', "42", "null", '[{"threshold": 0.5}]']))


def json_drop_key(path, rng):
    data = json.loads(path.read_text())
    if isinstance(data, dict) and data:
        data.pop(rng.choice(sorted(data)))
    path.write_text(json.dumps(data))


def not_utf8(path, rng):
    path.write_bytes(b"\xff\xfe\x00" + path.read_bytes()[:40] + b"\x80\x81")


JSON_MUTATIONS = {"truncate": truncate, "garbage": random_bytes, "wrong-type": json_wrong_type,
                  "drop-key": json_drop_key, "not-utf8": not_utf8}


def csv_header_only(path, rng):
    path.write_text(path.read_text().splitlines()[0] + "\n")


def csv_text_in_numbers(path, rng):
    lines = path.read_text().splitlines()
    if len(lines) > 1:
        cells = lines[1].split(",")
        cells[rng.randrange(1, len(cells))] = rng.choice(["abc", "1.2.3", "--", "0x1g"])
        lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def csv_drop_column(path, rng):
    rows = [line.split(",") for line in path.read_text().splitlines()]
    if rows and len(rows[0]) > 1:
        k = rng.randrange(len(rows[0]))
        rows = [r[:k] + r[k + 1:] for r in rows]
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")


CSV_MUTATIONS = {"truncate": truncate, "garbage": random_bytes, "header-only": csv_header_only,
                 "text-in-numbers": csv_text_in_numbers, "drop-column": csv_drop_column}
RECORD_MUTATIONS = {"truncate": truncate, "bytes-flip": bytes_flip, "empty": empty, "garbage": random_bytes}


# --------------------------------------------------------------------------------------------------
# the corpus: which file of the base, which damage, which command reads it


@dataclass(frozen=True)
class FuzzInput:
    """One corrupted input: `target` (relative to the base) damaged by `mutation` with `seed`."""

    id: int
    command: str
    target: str
    family: str
    mutation: str
    seed: int


def _files(base: Path, pattern: str) -> list[str]:
    # the 4-D PWI series is no model input: no command reads it, so damaging it proves nothing
    return sorted(str(p.relative_to(base)) for p in base.glob(pattern) if p.is_file() and "4DPWI" not in p.name)


def _training_cases(base: Path) -> set:
    """Cases the folds use (a TESTING case's records are read by no command: damaging them proves nothing)."""
    folds = json.loads((base / "prepared" / "splits.json").read_text())["folds"]
    return {c for f in folds for c in f["train"] + f["val"]}


def make_corpus(base: Path, seed: int = 0, size: int = 216) -> list[FuzzInput]:
    """`size` inputs spread over the commands and formats, the same list for the same seed and base."""
    rng = random.Random(seed)
    pools = {
        # (command, family): (target files, weight)
        ("evaluate", "nifti"): (_files(base, "pred/*.nii*") + _files(base, "ref/*.nii*"), 22),
        ("prepare", "nifti"): (_files(base, "cohort/TRAINING/case_*/*/*.nii*"), 20),
        ("prepare", "json"): (["prepared/splits.json", "prepared/manifest.json", "cohort/synthetic_cohort.json"]
                              + _files(base, "prepared/records/*.json")[:2], 4),
        ("predict", "nifti"): (_files(base, "cohort/TESTING/case_*/*/*.nii*"), 12),
        ("predict", "keras"): (_files(base, "runs/unet-focal/fold_*/checkpoint_last.keras"), 8),
        ("predict", "json"): (["runs/unet-focal/config.json"] + _files(base, "runs/unet-focal/fold_*/threshold.json"), 4),
        ("report", "csv"): (_files(base, "runs/unet-focal/fold_*/validation/metrics.csv")
                            + _files(base, "runs/unet-focal/fold_*/history.csv"), 8),
        ("report", "json"): (["runs/unet-focal/config.json"]
                             + _files(base, "runs/unet-focal/fold_*/validation/summary.json"), 4),
        ("report", "nifti"): (_files(base, "runs/unet-focal/fold_*/validation/case_*.nii.gz"), 6),
        ("run", "tfrecord"): ([f for f in _files(base, "prepared/records/*.tfrecord")
                               if Path(f).name.split(".")[0] in _training_cases(base)], 6),
    }
    families = {"nifti": (NIFTI_MUTATIONS, NIFTI_WEIGHTS), "keras": (KERAS_MUTATIONS, None),
                "json": (JSON_MUTATIONS, None), "csv": (CSV_MUTATIONS, None), "tfrecord": (RECORD_MUTATIONS, None)}
    keys = sorted(pools)
    weights = [pools[k][1] for k in keys]
    corpus = []
    for i in range(size):
        # every pool at least once, then by weight
        command, family = keys[i] if i < len(keys) else rng.choices(keys, weights)[0]
        mutations, mweights = families[family]
        names = sorted(mutations)
        mutation = rng.choices(names, [mweights[n] for n in names] if mweights else None)[0]
        target = rng.choice(pools[(command, family)][0])
        corpus.append(FuzzInput(i, command, target, family, mutation, rng.randrange(2**31)))
    return corpus


def _mutate(item: FuzzInput, path: Path) -> None:
    table = {"nifti": NIFTI_MUTATIONS, "keras": KERAS_MUTATIONS, "json": JSON_MUTATIONS, "csv": CSV_MUTATIONS,
             "tfrecord": RECORD_MUTATIONS}[item.family]
    data = path.read_bytes()
    path.unlink()  # the base shares this inode (hard link): write a new file
    path.write_bytes(data)
    table[item.mutation](path, random.Random(item.seed))


# --------------------------------------------------------------------------------------------------
# running one input


def _command_line(item: FuzzInput, ws: Path) -> tuple[list, list]:
    """(CLI arguments, outputs that must exist after exit 0 and must not after a failure)."""
    out = ws / "out"
    if item.command == "evaluate":
        return ["evaluate", "--pred", ws / "pred", "--ref", ws / "ref", "--out", out], \
            [out / "metrics.csv", out / "summary.json"]
    if item.command == "prepare":
        target = ws / "prepared" if item.target.startswith("prepared/") else out
        return ["prepare", "--data", ws / "cohort", "--out", target, "--folds", 2, "--grid", 32], \
            ([target / "manifest.json"] if target == out else [])
    if item.command == "predict":
        return ["predict", "--model", ws / "runs/unet-focal", "--input", ws / "cohort/TESTING", "--out", out], \
            [out / "case_5.nii.gz"]
    if item.command == "report":
        return ["report", ws / "runs", "--out", out], [out / "report.md", out / "report.html"]
    if item.command == "run":
        return ["run", "--arch", "unet", "--data", ws / "prepared", "--config", ws / "tiny.json", "--fold", 0,
                "--out", out], [out / "unet-focal/fold_0/DONE"]
    raise ValueError(item.command)


def run_input(base: Path, item: FuzzInput, scratch: Path, timeout: float = TIMEOUT_S, worker=None) -> dict:
    """Damage a hard-linked copy of the base, run its command (in `worker`, else as a subprocess), judge."""
    ws = scratch / f"input_{item.id:04d}"
    shutil.rmtree(ws, ignore_errors=True)
    shutil.copytree(base, ws, copy_function=os.link)
    target = ws / item.target
    _mutate(item, target)
    args, outputs = _command_line(item, ws)
    t0 = time.time()
    done = worker.call(args, timeout) if worker is not None else cli(*args, timeout=timeout)
    seconds = time.time() - t0
    verdict, reason = judge(done, item, target, outputs, ws)
    result = {**asdict(item), "verdict": verdict, "reason": reason, "seconds": round(seconds, 2),
              "exit": done.returncode, "stderr_tail": done.stderr.strip()[-600:]}
    if verdict in GOOD:
        shutil.rmtree(ws, ignore_errors=True)
    return result


def judge(done, item: FuzzInput, target: Path, outputs: list, ws: Path) -> tuple[str, str]:
    """The verdict on one call (see the module docstring) and why."""
    if done.returncode is None:
        return "hang", f"no exit within the timeout"
    if "Traceback (most recent call last)" in done.stderr:
        return "traceback", done.stderr.strip().splitlines()[-1][:300]
    temporaries = [str(p) for p in ws.rglob(".*.tmp-*")]
    if temporaries:
        return "partial-output", f"temporary file left: {temporaries[0]}"
    if done.returncode == 0:
        missing = [str(p) for p in outputs if not p.is_file()]
        if missing:
            return "partial-output", f"exit 0 without {missing[0]}"
        if any(n in done.stderr for n in (str(target), str(target.relative_to(ws)))):
            return "warned", done.stderr.strip().splitlines()[-1][:300]  # finished, the damaged file named
        return "accepted", ""
    if done.returncode != 2:
        return f"exit-{done.returncode}", done.stderr.strip()[-300:]
    left = [str(p) for p in outputs if p.exists()]
    if left:
        return "partial-output", f"failed but wrote {left[0]}"
    message = done.stderr.strip()
    names = {str(target), str(target.relative_to(ws))}  # the file itself, not just a name like metrics.csv
    if not any(n in message for n in names):
        return "unnamed", message[-300:]
    if not re.search(rf"islesbench {item.command}: error: ", message):
        return "unnamed", "no 'islesbench COMMAND: error:' line"
    return "named", message.splitlines()[0][:300]


def run_corpus(base: Path, corpus: list, scratch: Path, jobs: int = 2, timeout: float = TIMEOUT_S,
               log=print, in_process: bool = True) -> list[dict]:
    """Every input of `corpus`, `jobs` at a time (each job a worker process running the CLI in-process,
    or with `in_process=False` a fresh `python -m islesbench` per input); one progress line each."""
    import queue

    scratch.mkdir(parents=True, exist_ok=True)
    workers = queue.Queue()
    for k in range(max(1, jobs)):
        workers.put(Worker(scratch / f"worker{k}.log") if in_process else None)

    def one(item):
        worker = workers.get()
        try:
            result = run_input(base, item, scratch, timeout, worker)
        finally:
            workers.put(worker)
        if log:
            log(f"[{item.id:4d}] {item.command:<8} {item.family:<8} {item.mutation:<15} {item.target:<60} "
                f"{result['verdict']:<14} {result['seconds']:6.1f} s  {result['reason'][:120]}")
        return result

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results = list(pool.map(one, corpus))
    finally:
        while not workers.empty():
            worker = workers.get()
            if worker is not None:
                worker.close()
    return results


def counts(results: list) -> dict:
    """{command: {verdict: n}} plus a total row."""
    table: dict = {}
    for r in results:
        for key in (r["command"], "total"):
            table.setdefault(key, {}).setdefault(r["verdict"], 0)
            table[key][r["verdict"]] += 1
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/islesbench-fuzz", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=216, help="number of corrupted inputs")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per call before it counts as a hang")
    parser.add_argument("--subprocess", action="store_true",
                        help="a fresh `python -m islesbench` per input (slower) instead of in-process calls")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_loop()
    t0 = time.time()
    base = build_base(args.work, seed=args.seed)
    corpus = make_corpus(base, seed=args.seed, size=args.size)
    scratch = args.work / f"inputs-seed{args.seed}"
    shutil.rmtree(scratch, ignore_errors=True)
    results = run_corpus(base, corpus, scratch, jobs=args.jobs, timeout=args.timeout, in_process=not args.subprocess)
    (args.work / f"results-seed{args.seed}.json").write_text(json.dumps(results, indent=1))
    table = counts(results)
    verdicts = sorted({v for row in table.values() for v in row}, key=lambda v: (v not in GOOD, v))
    print(f"\n{len(results)} corrupted inputs, seed {args.seed}, {time.time() - t0:.0f} s "
          f"({args.jobs} at a time, {'a process per call' if args.subprocess else 'in-process CLI calls'}, "
          f"each bounded by {args.timeout:.0f} s)")
    print(f"{'command':<10}" + "".join(f"{v:>16}" for v in verdicts))
    for command in sorted(table, key=lambda c: (c == "total", c)):
        print(f"{command:<10}" + "".join(f"{table[command].get(v, 0):>16}" for v in verdicts))
    bad = [r for r in results if r["verdict"] not in GOOD]
    print(f"tracebacks {sum(r['verdict'] == 'traceback' for r in results)}, hangs "
          f"{sum(r['verdict'] == 'hang' for r in results)}, unnamed {sum(r['verdict'] == 'unnamed' for r in results)}, "
          f"partial output {sum(r['verdict'] == 'partial-output' for r in results)}; "
          f"details in {args.work / f'results-seed{args.seed}.json'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
