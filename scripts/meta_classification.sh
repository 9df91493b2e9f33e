#!/usr/bin/env bash
# The entropy-maximization paper's segment-wise evaluation on the synthetic
# street benchmark (its Tables 2 and 3, Fig. 7): the demo model (trained by
# `make demo`, or here if its checkpoint is missing) and an entropy-
# maximization fine-tune of it with the street outlier proxy; for each,
# tools/meta_classify.py (cross-validated meta classifier, --save), then
# tools/ood_test.py --meta-classifier, and one comparison table.
#     bash scripts/meta_classification.sh
# FORCE_TRAIN=1 retrains both models.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
export MMSEG_OOD_DATA=${MMSEG_OOD_DATA:-data/synthetic}
DEMO=${DEMO_WORK_DIR:-work_dirs/demo}
WORK=${META_WORK_DIR:-work_dirs/meta}
BASE_CFG=configs/synthetic/deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py
FT_CFG=configs/synthetic/deeplabv3plus_r18-d8-entropy-max-ft_1xb8-100it_synthetic-street-128x256.py

t0=$SECONDS
$PY tools/make_synthetic.py "$MMSEG_OOD_DATA" --variants street
checkpoint() {  # the Runner records its final checkpoint in last_checkpoint
    local ckpt
    ckpt=$(cat "$1/last_checkpoint" 2>/dev/null || true)
    if [[ -n $ckpt && -f $ckpt && -z ${FORCE_TRAIN:-} ]]; then
        echo "$ckpt"
    fi
}
base=$(checkpoint "$DEMO")
if [[ -z $base ]]; then
    echo "[meta] training the demo model $BASE_CFG"
    $PY tools/train.py "$BASE_CFG" --work-dir "$DEMO"
    base=$(cat "$DEMO/last_checkpoint")
fi
ft=$(checkpoint "$WORK/entropy-max")
if [[ -z $ft ]]; then
    echo "[meta] entropy-maximization fine-tune of $base"
    t1=$SECONDS
    $PY tools/train.py "$FT_CFG" --work-dir "$WORK/entropy-max" \
        --cfg-options load_from="$base"
    echo "[meta] fine-tuning took $((SECONDS - t1)) s"
    ft=$(cat "$WORK/entropy-max/last_checkpoint")
fi
for run in "baseline $BASE_CFG $base" "entropy-max $FT_CFG $ft"; do
    read -r name cfg ckpt <<< "$run"
    echo "[meta] meta classification of $name ($ckpt)"
    t1=$SECONDS
    $PY tools/meta_classify.py "$cfg" "$ckpt" --work-dir "$WORK/$name/meta" \
        --datasets synthetic_ood --thresholds 0.3 0.4 0.5 0.6 0.7 \
        --save "$WORK/$name/meta.json"
    echo "[meta] meta_classify of $name took $((SECONDS - t1)) s"
    $PY tools/ood_test.py "$cfg" "$ckpt" --work-dir "$WORK/$name/ood" \
        --datasets synthetic_ood --scorers msp entropy \
        --meta-classifier "$WORK/$name/meta.json" --no-id-eval
done
$PY tools/compare_results.py "$WORK" baseline entropy-max --segments \
    --dataset synthetic_ood --out "$WORK/comparison.md"
echo "[meta] finished in $((SECONDS - t0)) s; tables: $WORK/comparison.md"
