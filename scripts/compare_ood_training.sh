#!/usr/bin/env bash
# Issue 6's measured comparison on the synthetic objects benchmark: train the
# baseline, IBE, SCrIBE, entropy maximization and UOI + CE with the same
# schedule (each reused if its checkpoint exists; FORCE_TRAIN=1 retrains),
# score each with tools/ood_test.py on the objects OOD split, and print one
# table (ID mIoU, AUROC / AP / FPR95 of the relevant scorers).
#     bash scripts/compare_ood_training.sh [VARIANT ...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
export MMSEG_OOD_DATA=${MMSEG_OOD_DATA:-data/synthetic}
WORK=${COMPARE_WORK_DIR:-work_dirs/compare}
VARIANTS=("$@")
if [[ ${#VARIANTS[@]} -eq 0 ]]; then
    VARIANTS=(baseline ibe scribe entropy-max uoi-ce)
fi
config() {
    local tag=""
    [[ $1 != baseline ]] && tag="-$1"
    echo "configs/synthetic/deeplabv3plus_r18-d8${tag}_1xb8-300it_synthetic-objects-128x128.py"
}

$PY tools/make_synthetic.py "$MMSEG_OOD_DATA" --variants objects
for v in "${VARIANTS[@]}"; do
    cfg=$(config "$v")
    ckpt=$(cat "$WORK/$v/last_checkpoint" 2>/dev/null || true)
    if [[ -z $ckpt || ! -f $ckpt || -n ${FORCE_TRAIN:-} ]]; then
        echo "[compare] training $v: $cfg"
        $PY tools/train.py "$cfg" --work-dir "$WORK/$v"
        ckpt=$(cat "$WORK/$v/last_checkpoint")
    fi
    echo "[compare] OOD evaluation of $v ($ckpt)"
    $PY tools/ood_test.py "$cfg" "$ckpt" --work-dir "$WORK/$v/ood" \
        --datasets synthetic_objects_ood
done
$PY tools/compare_results.py "$WORK" "${VARIANTS[@]}" \
    --out "$WORK/comparison.md"
