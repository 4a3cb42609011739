#!/usr/bin/env bash
# nnU-Net v2 (2-D) on islesbench's folds of the synthetic cohort, on a CPU, with a stated reduced budget, then
# imported as a row of islesbench's report. Every step's wall time is appended to WORKDIR/times.txt.
#
#   benchmarks/nnunet/run_nnunet_cpu.sh WORKDIR [FOLD ...]          (default: folds 0 1 2 3 4)
#
# nnU-Net lives in its own environment (it needs PyTorch; islesbench never imports it):
#   python -m venv /tmp/nnunet-venv && /tmp/nnunet-venv/bin/pip install nnunetv2
# Environment: NNUNET_VENV (default /tmp/nnunet-venv), ISLESBENCH (default: islesbench on PATH), the budget
# ISLESBENCH_NNUNET_EPOCHS / _ITERATIONS / _VAL_ITERATIONS (nnUNetTrainer_islesbenchCPU.py; defaults 4 / 25 / 2).
# Re-running skips what is done (the cohort, prepared data and export are resumable; a finished fold is skipped,
# an unfinished one continues from its last epoch).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mkdir -p "$1" && cd "$1" && pwd); shift
FOLDS=${*:-0 1 2 3 4}
NNUNET_BIN=${NNUNET_VENV:-/tmp/nnunet-venv}/bin
ISLESBENCH=${ISLESBENCH:-islesbench}
TRAINER=nnUNetTrainer_islesbenchCPU
export nnUNet_raw=$WORK/nnUNet_raw nnUNet_preprocessed=$WORK/nnUNet_preprocessed nnUNet_results=$WORK/nnUNet_results
export nnUNet_n_proc_DA=${nnUNet_n_proc_DA:-1} nnUNet_compile=f
export ISLESBENCH_NNUNET_EPOCHS=${ISLESBENCH_NNUNET_EPOCHS:-4} ISLESBENCH_NNUNET_ITERATIONS=${ISLESBENCH_NNUNET_ITERATIONS:-25}
export ISLESBENCH_NNUNET_VAL_ITERATIONS=${ISLESBENCH_NNUNET_VAL_ITERATIONS:-2}
cd "$WORK"

timed() {  # timed NAME COMMAND...: run it, append "NAME SECONDS" to times.txt
    local name=$1; shift
    local t0; t0=$(date +%s.%N)
    "$@"
    echo "$name $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$t0" "$(date +%s.%N)")" >> times.txt
}

[ -f cohort/synthetic_cohort.json ] || timed synth nice -n 19 "$ISLESBENCH" synth --out cohort --cases 20 --seed 0
timed prepare nice -n 19 "$ISLESBENCH" prepare --data cohort --out prep --folds 5 --seed 0
timed export nice -n 19 "$ISLESBENCH" export --format nnunet --data prep --out nnUNet_raw --dataset-id 501 --name ISLES \
    --preprocessed nnUNet_preprocessed
# nnU-Net finds a trainer by class name inside its own package.
cp "$HERE/$TRAINER.py" "$("$NNUNET_BIN/python" -c 'import nnunetv2, os; print(os.path.dirname(nnunetv2.__file__))')/training/nnUNetTrainer/"
if [ ! -f nnUNet_preprocessed/Dataset501_ISLES/nnUNetPlans.json ]; then
    timed plan_and_preprocess nice -n 19 "$NNUNET_BIN/nnUNetv2_plan_and_preprocess" -d 501 -c 2d --verify_dataset_integrity -np 1
fi
# The folds nnU-Net trains on are islesbench's: planning must have left the exported splits_final.json in place.
cmp nnUNet_raw/Dataset501_ISLES/splits_final.json nnUNet_preprocessed/Dataset501_ISLES/splits_final.json
MODEL=nnUNet_results/Dataset501_ISLES/${TRAINER}__nnUNetPlans__2d
for k in $FOLDS; do
    if [ -f "$MODEL/fold_$k/checkpoint_final.pth" ]; then continue; fi
    resume=(); [ -f "$MODEL/fold_$k/checkpoint_latest.pth" ] && resume=(--c)
    timed "train_and_validate_fold_$k" nice -n 19 "$NNUNET_BIN/nnUNetv2_train" 501 2d "$k" -tr "$TRAINER" -device cpu "${resume[@]}"
done
# --force: a re-run with more folds replaces the row its earlier run imported (same model folder, more folds)
timed import "$ISLESBENCH" import --name nnunet-2d-cpu --pred "$MODEL" --data prep --out runs --folds "$(echo $FOLDS | tr ' ' ,)" --force \
    --description "nnU-Net v2 2d, $TRAINER: $ISLESBENCH_NNUNET_EPOCHS epochs x $ISLESBENCH_NNUNET_ITERATIONS iterations, CPU"
