"""Children that stand in for a benchmark cell's `islesbench run` (the runner's `child_command` prefix).

FAKE_CHILD behaves as the cell named in FAKE_CELLS (JSON: cell name -> done | segv | exit1 | error |
sleep:<seconds>; default done): it records its start (with its pid), end and environment in
OUT/children.jsonl, prints a
Keras-like epoch line, then dies, fails or writes a finished fake run (tests/fake_runs.py).

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
from fake_runs import DICE, write_fake_run
p = argparse.ArgumentParser(allow_abbrev=False)
p.add_argument("command")
p.add_argument("--arch")
p.add_argument("--loss", default="focal")
p.add_argument("--pretrained", default=None)
p.add_argument("--out")
p.add_argument("--folds", type=int)
args, _ = p.parse_known_args()
if args.arch == "threshold":
    name = "threshold"
elif args.arch == "pspnet":
    name = f"pspnet-{{args.pretrained or 'scratch'}}-{{args.loss}}"
else:
    name = f"{{args.arch}}-{{args.loss}}"
behaviour = json.loads(os.environ.get("FAKE_CELLS", "{{}}")).get(name, "done")
keys = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
log = os.path.join(args.out, "children.jsonl")
with open(log, "a") as f:
    f.write(json.dumps({{"name": name, "event": "start", "t": time.time(), "pid": os.getpid(), "env": {{k: os.environ.get(k) for k in keys}}}}) + "\\n")
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
write_fake_run(args.out, name, DICE[name], folds=list(range(args.folds)))
with open(log, "a") as f:
    f.write(json.dumps({{"name": name, "event": "end", "t": time.time()}}) + "\\n")
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
