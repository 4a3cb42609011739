"""Children that stand in for a benchmark cell's `islesbench run` (the runner's `child_command` prefix).

FAKE_CHILD behaves as the cell named in FAKE_CELLS (JSON: cell name -> done | segv | exit1 | error |
sleep:<seconds>; default done): it records its start (with its pid), end and environment in
OUT/children.jsonl, prints a
Keras-like epoch line, then dies, fails or writes a finished fake run (tests/fake_runs.py). As the
benchmark's `islesbench pretrain --exclude-fold K --out RUNS/pretraining/selfsup` it is the cell named
"pretraining" (its events named pretraining-fold<K>, in RUNS/children.jsonl) and writes fold_<K>.keras
with its pretrain.json.

SEGV_WRAPPER is the real `islesbench run`, except that the child whose argv contains SEGV_ARGS sends
itself SIGSEGV right after its first epoch's history.csv is committed (mid-fold, as a crash in native code
would end it).
"""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

FAKE_CHILD = f"""
import argparse, json, os, signal, sys, time
sys.path.insert(0, {str(TESTS)!r})
from islesbench.runtime.child_env import die_with_parent
die_with_parent()  # as `islesbench run` does: never outlive the benchmark (or the Ray worker) that started it
from fake_runs import DICE, config_with, write_fake_run
p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("command")
p.add_argument("--arch")
p.add_argument("--loss", default="focal")
p.add_argument("--pretrained", default=None)
p.add_argument("--out")
p.add_argument("--folds", type=int)
p.add_argument("--exclude-fold")
args, _ = p.parse_known_args()
runs = args.out
if args.command == "pretrain":
    name = "pretraining"
    runs = os.path.dirname(os.path.dirname(os.path.abspath(args.out)))
elif args.arch == "threshold":
    name = "threshold"
elif args.arch == "pspnet":
    tag = "selfsup" if (args.pretrained or "").endswith("selfsup") else (args.pretrained or "scratch")
    name = f"pspnet-{{tag}}-{{args.loss}}"
else:
    name = f"{{args.arch}}-{{args.loss}}"
behaviour = json.loads(os.environ.get("FAKE_CELLS", "{{}}")).get(name, "done")
keys = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
log = os.path.join(runs, "children.jsonl")
event_name = f"pretraining-fold{{args.exclude_fold}}" if name == "pretraining" else name
with open(log, "a") as f:
    f.write(json.dumps({{"name": event_name, "event": "start", "t": time.time(), "pid": os.getpid(), "env": {{k: os.environ.get(k) for k in keys}}}}) + "\\n")
print("Epoch 1/1 - fake keras line", flush=True)
if behaviour == "segv":
    os.kill(os.getpid(), signal.SIGSEGV)
if behaviour == "exit1":
    raise RuntimeError("a bug in training")
if behaviour == "error":
    print("islesbench run: error: ImageNet weights for the ResNet-50 encoder are not available offline", file=sys.stderr)
    sys.exit(2)
if behaviour.startswith("sleep:"):
    time.sleep(float(behaviour.split(":")[1]))
if name == "pretraining":
    k = args.exclude_fold
    os.makedirs(os.path.join(args.out, f"fold_{{k}}"), exist_ok=True)
    with open(os.path.join(args.out, f"fold_{{k}}", "pretrain.json"), "w") as f:
        json.dump({{"method": "models-genesis", "cohorts": [{{"n_cases": 9}}], "excluded": {{"cases": ["a", "b"]}},
                   "seconds": 1.5}}, f)
    with open(os.path.join(args.out, f"fold_{{k}}.keras"), "wb") as f:
        f.write(b"weights")
    print(f"pretrain fold {{k}}: done", flush=True)
else:
    config = None if name in DICE else config_with(args.arch, args.pretrained, args.loss)
    write_fake_run(args.out, name, DICE.get(name, DICE["pspnet-scratch-focal"]), folds=list(range(args.folds)),
                   config=config)
with open(log, "a") as f:
    f.write(json.dumps({{"name": event_name, "event": "end", "t": time.time()}}) + "\\n")
"""

SEGV_WRAPPER = """
import os, signal, sys
if os.environ.get("SEGV_ARGS") and os.environ["SEGV_ARGS"] in " ".join(sys.argv[1:]):
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        out = real_replace(src, dst, *a, **k)
        if os.path.basename(str(dst)) == "history.csv":
            os.kill(os.getpid(), signal.SIGSEGV)
        return out
    os.replace = replace
sys.argv[0] = "islesbench"
from islesbench.cli import main
sys.exit(main())
"""
