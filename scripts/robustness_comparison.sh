#!/usr/bin/env bash
# SCrIBE's robustness benchmark and representation analysis on the synthetic
# objects benchmark: baseline, IBE and SCrIBE (the existing configs; each
# trained if its checkpoint is missing, FORCE_TRAIN=1 retrains), then
#   tools/robustness_test.py    (every corruption and severity, with MSC and
#                                the objects OOD split)
#   tools/analyze_representation.py
#     bash scripts/robustness_comparison.sh
# ROBUST_IMAGES=N evaluates the first N test images only (default: all);
# ROBUST_SEVERITIES="1 3 5" a subset of the severities (default: 1 2 3 4 5).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
export MMSEG_OOD_DATA=${MMSEG_OOD_DATA:-data/synthetic}
WORK=${ROBUST_WORK_DIR:-work_dirs/robustness}
VARIANTS=(baseline ibe scribe)
config() {
    local tag=""
    [[ $1 != baseline ]] && tag="-$1"
    echo "configs/synthetic/deeplabv3plus_r18-d8${tag}_1xb8-300it_synthetic-objects-128x128.py"
}

t0=$SECONDS
$PY tools/make_synthetic.py "$MMSEG_OOD_DATA" --variants objects
models=()
for v in "${VARIANTS[@]}"; do
    cfg=$(config "$v")
    ckpt=$(cat "$WORK/$v/last_checkpoint" 2>/dev/null || true)
    if [[ -z $ckpt || ! -f $ckpt || -n ${FORCE_TRAIN:-} ]]; then
        echo "[robustness] training $v: $cfg"
        $PY tools/train.py "$cfg" --work-dir "$WORK/$v"
        ckpt=$(cat "$WORK/$v/last_checkpoint")
    fi
    models+=("$cfg" "$ckpt")
done
options=()
if [[ -n ${ROBUST_IMAGES:-} ]]; then
    options=(--cfg-options "test_dataloader.dataset.indices=$ROBUST_IMAGES")
fi
t1=$SECONDS
$PY tools/robustness_test.py "${models[@]}" --names "${VARIANTS[@]}" \
    --work-dir "$WORK/corruption" --corruptions all \
    --severities ${ROBUST_SEVERITIES:-1 2 3 4 5} \
    --msc --ood-datasets synthetic_objects_ood "${options[@]}"
echo "[robustness] robustness_test took $((SECONDS - t1)) s"
t1=$SECONDS
$PY tools/analyze_representation.py "${models[@]}" \
    --names "${VARIANTS[@]}" --work-dir "$WORK/representation" \
    "${options[@]}"
echo "[robustness] analyze_representation took $((SECONDS - t1)) s"
echo "[robustness] finished in $((SECONDS - t0)) s; tables:" \
    "$WORK/corruption/robustness.md, $WORK/representation/representation.md"
