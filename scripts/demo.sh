#!/usr/bin/env bash
# The main job on the embedded synthetic benchmark: generate the data (kept
# if a matching copy exists), train the demo model (reused if its checkpoint
# exists), then score it with every OOD scorer on the synthetic OOD split
# (tools/ood_test.py: table, curves, heatmaps, ID mIoU), and deploy it:
# calibrate the energy threshold at 1 % ID false positives on the val set
# (tools/calibrate_ood.py), segment four OOD images with an "unknown" class
# (tools/ood_infer.py) and export model + scorer + threshold to ONNX,
# checked with onnxruntime (tools/export_onnx.py). FORCE_TRAIN=1 retrains.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
DATA=${MMSEG_OOD_DATA:-data/synthetic}
export MMSEG_OOD_DATA=$DATA
CONFIG=configs/synthetic/deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py
WORK=${DEMO_WORK_DIR:-work_dirs/demo}

t0=$SECONDS
echo "[demo] generating the synthetic benchmark in $DATA"
$PY tools/make_synthetic.py "$DATA"

# The Runner records its final checkpoint in last_checkpoint.
ckpt=$(cat "$WORK/last_checkpoint" 2>/dev/null || true)
if [[ -n $ckpt && -f $ckpt && -z ${FORCE_TRAIN:-} ]]; then
    echo "[demo] reusing the trained model $ckpt (FORCE_TRAIN=1 retrains)"
else
    echo "[demo] training $CONFIG"
    t1=$SECONDS
    $PY tools/train.py "$CONFIG" --work-dir "$WORK"
    echo "[demo] training took $((SECONDS - t1)) s"
    ckpt=$(cat "$WORK/last_checkpoint")
fi

echo "[demo] OOD evaluation of $ckpt on the synthetic OOD split"
$PY tools/ood_test.py "$CONFIG" "$ckpt" --work-dir "$WORK/ood" \
    --datasets synthetic_ood --show-dir "$WORK/ood/heatmaps" --show-num 4
echo "[demo] results: $WORK/ood/results.md, curves: $WORK/ood/curves/," \
    "heatmaps: $WORK/ood/heatmaps/synthetic_ood/"
echo "[demo] calibrating the energy threshold at 1 % ID false positives"
$PY tools/calibrate_ood.py "$CONFIG" "$ckpt" --scorer energy --id-fpr 0.01 \
    --work-dir "$WORK/deploy"
ood_images=$(ls "$DATA"/street/ood/images/*.png | head -4)
# shellcheck disable=SC2086  # four file names
$PY tools/ood_infer.py "$CONFIG" "$ckpt" \
    --calibration "$WORK/deploy/calibration.json" $ood_images \
    --out-dir "$WORK/deploy/infer"
$PY tools/export_onnx.py "$CONFIG" "$ckpt" \
    --calibration "$WORK/deploy/calibration.json" \
    --out "$WORK/deploy/model.onnx" --dynamic \
    --check-image "$(echo "$ood_images" | head -1)"
echo "[demo] deployment: $WORK/deploy/calibration.json, overlays and masks" \
    "in $WORK/deploy/infer/, $WORK/deploy/model.onnx"
echo "[demo] finished in $((SECONDS - t0)) s"
