#!/usr/bin/env bash
# Mask2Former on the synthetic street benchmark: the baseline with every
# post-hoc score, its outlier-supervised fine-tunes (RbA's outlier loss with
# the paper's trained parameters; UNO's negative class; Mask2Anomaly's
# margin loss), and the per-pixel
# DeepLabV3+ with entropy maximization beside them
# (docs/en/results/mask_classification.md).
#     bash scripts/mask2former_comparison.sh
# For each seed in SEEDS (default "0 1 2"): train the Mask2Former baseline
# (300 iterations), fine-tune it three ways (100 iterations each), and run
# tools/ood_test.py on the street OOD split with the mask-level scores; the
# Maskomaly query selection is fitted on a second, disjoint street OOD set
# (generated with another seed). The DeepLabV3+ entropy-maximization
# fine-tune runs with seed 0 (DEEPLAB=0 skips it). Then one table per kind
# of metric over the seeds (mean ± sd, min-max). Checkpoints that exist
# are reused (FORCE_TRAIN=1 retrains); each training's time is written next
# to it (train_seconds.txt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
export MMSEG_OOD_DATA=${MMSEG_OOD_DATA:-data/synthetic}
REF_DATA=${REF_DATA:-data/synthetic_reference}
WORK=${M2F_WORK_DIR:-work_dirs/mask2former_comparison}
SEEDS=${SEEDS:-0 1 2}
CFG=configs/synthetic
BASE_CFG=$CFG/mask2former_r18_1xb8-300it_synthetic-street-128x256.py
RBA_CFG=$CFG/mask2former_r18-rba-ft_1xb8-100it_synthetic-street-128x256.py
UNO_CFG=$CFG/mask2former_r18-uno-ft_1xb8-100it_synthetic-street-128x256.py
M2A_CFG=$CFG/mask2former_r18-mask2anomaly-ft_1xb8-100it_synthetic-street-128x256.py
DL_CFG=$CFG/deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py
EM_CFG=$CFG/deeplabv3plus_r18-d8-entropy-max-ft_1xb8-100it_synthetic-street-128x256.py
MASK_SCORERS=(msp entropy max_logit energy rba no_object eam mask2anomaly
              mask2anomaly:flip=True maskomaly)

t0=$SECONDS
$PY tools/make_synthetic.py "$MMSEG_OOD_DATA" --variants street
# the reference set of the query selection: 20 street OOD images drawn with
# another seed, disjoint from the evaluated split
$PY tools/make_synthetic.py "$REF_DATA" --variants street --seed 1 \
    --num-train 1 --num-val 1 --num-ood 20 --num-image-ood 1 --num-proxy 1
mkdir -p "$WORK"
REF_PRESET=$WORK/synthetic_ood_reference.py
cat > "$REF_PRESET" <<PRESET
# A second street OOD split (make_synthetic --seed 1): the labelled
# reference set Maskomaly's query selection is fitted on.
ood_dataset = dict(
    type='SyntheticOODDataset', data_root='$REF_DATA/street/ood')
component_preset = 'obstacle_track'
smiyc_name = 'synthetic_ood_reference'
PRESET

checkpoint() {  # the Runner records its final checkpoint in last_checkpoint
    local ckpt
    ckpt=$(cat "$1/last_checkpoint" 2>/dev/null || true)
    if [[ -n $ckpt && -f $ckpt && -z ${FORCE_TRAIN:-} ]]; then
        echo "$ckpt"
    fi
}
train() {  # CONFIG WORK_DIR SEED [LOAD_FROM]
    local opts=(randomness.seed="$3")
    if [[ -n ${4:-} ]]; then opts+=(load_from="$4"); fi
    if [[ -z $(checkpoint "$2") ]]; then
        echo "[m2f] training $1 (seed $3) into $2"
        local t1=$SECONDS
        $PY tools/train.py "$1" --work-dir "$2" --cfg-options "${opts[@]}"
        echo $((SECONDS - t1)) > "$2/train_seconds.txt"
    fi
}
evaluate() {  # CONFIG WORK_DIR SCORER...
    local config=$1 dir=$2
    shift 2
    if [[ ! -f $dir/ood/results.json || -n ${FORCE_TRAIN:-} ]]; then
        $PY tools/ood_test.py "$config" "$(cat "$dir/last_checkpoint")" \
            --work-dir "$dir/ood" --datasets synthetic_ood --scorers "$@" \
            --tune-on "$REF_PRESET"
    fi
}

for seed in $SEEDS; do
    root=$WORK/seed$seed
    train "$BASE_CFG" "$root/mask2former" "$seed"
    base=$(cat "$root/mask2former/last_checkpoint")
    train "$RBA_CFG" "$root/rba_ft" "$seed" "$base"
    train "$UNO_CFG" "$root/uno_ft" "$seed" "$base"
    train "$M2A_CFG" "$root/mask2anomaly_ft" "$seed" "$base"
    evaluate "$BASE_CFG" "$root/mask2former" "${MASK_SCORERS[@]}"
    evaluate "$RBA_CFG" "$root/rba_ft" "${MASK_SCORERS[@]}"
    evaluate "$UNO_CFG" "$root/uno_ft" "${MASK_SCORERS[@]}" uno
    evaluate "$M2A_CFG" "$root/mask2anomaly_ft" "${MASK_SCORERS[@]}"
done

# the per-pixel model beside them: DeepLabV3+ and its entropy-maximization
# fine-tune, seed 0 (DEEPLAB=0 skips it, e.g. in a run over some seeds only)
dl=$WORK/seed0/deeplabv3plus
if [[ ${DEEPLAB:-1} != 0 ]]; then
    train "$DL_CFG" "$dl" 0
    train "$EM_CFG" "$WORK/seed0/deeplabv3plus_entropy_max" 0 \
        "$(cat "$dl/last_checkpoint")"
    for name in deeplabv3plus deeplabv3plus_entropy_max; do
        dir=$WORK/seed0/$name
        if [[ ! -f $dir/ood/results.json || -n ${FORCE_TRAIN:-} ]]; then
            $PY tools/ood_test.py "$DL_CFG" "$(cat "$dir/last_checkpoint")" \
                --work-dir "$dir/ood" --datasets synthetic_ood \
                --scorers msp entropy max_logit energy
        fi
    done
fi

roots=()
for seed in $SEEDS; do roots+=("$WORK/seed$seed"); done
spread=()  # over the seeds when there are several
if (( ${#roots[@]} > 1 )); then spread=(--seed-roots "${roots[@]:1}"); fi
scorers=("${MASK_SCORERS[@]}" uno)
for columns in "auroc ap fpr95" "siou ppv mean_f1"; do
    # shellcheck disable=SC2086  # the column names
    $PY tools/compare_results.py "${roots[0]}" mask2former rba_ft uno_ft \
        mask2anomaly_ft \
        --dataset synthetic_ood --scorers "${scorers[@]}" \
        --columns $columns "${spread[@]}" \
        --out "$WORK/table_${columns// /_}.md"
    [[ ${DEEPLAB:-1} == 0 ]] && continue
    # shellcheck disable=SC2086
    $PY tools/compare_results.py "$WORK/seed0" deeplabv3plus \
        deeplabv3plus_entropy_max --dataset synthetic_ood \
        --scorers msp entropy max_logit energy --columns $columns \
        --out "$WORK/table_deeplabv3plus_${columns// /_}.md"
done
for seed in $SEEDS; do
    for name in mask2former rba_ft uno_ft mask2anomaly_ft; do
        echo "training time, seed $seed, $name:" \
            "$(cat "$WORK/seed$seed/$name/train_seconds.txt" 2>/dev/null ||
               echo reused) s"
    done
done
echo "[m2f] finished in $((SECONDS - t0)) s; tables in $WORK/table_*.md"
