#!/usr/bin/env bash
# The measured comparison of the training-time methods on the synthetic
# objects benchmark: train the baseline, IBE, SCrIBE, entropy maximization
# and UOI + CE with the same schedule (each reused if its checkpoint exists,
# and its evaluation if a complete results.json newer than it exists;
# FORCE_TRAIN=1 retrains and re-evaluates), validated every 50 iterations with each class's
# IoU (training curves: WORK/curves/), score each with tools/ood_test.py on
# the objects OOD split, and print one table (ID mIoU, AUROC / AP / FPR95
# of the relevant scorers).
#
# FINETUNE=1: as users run IBE / SCrIBE, from a trained model: the baseline
# is trained from scratch first, converted (tools/convert_checkpoint.py) and
# every variant is fine-tuned from it for the same schedule, against the
# baseline fine-tuned equally long (the control, "baseline").
# EXTRA_OPTIONS="k=v ..." adds --cfg-options to every training and
# evaluation (e.g. a shorter schedule for a smoke run). SEED=N trains the
# variants with randomness.seed=N into WORK[/finetune]-seedN (a fine-tune
# still starts from the seed-0 scratch baseline).
# RERANK=1 (with FINETUNE=1): the UOI paper's measurement, proposal
# re-ranking by eq. 17 (tools/rerank_proposals.py): candidates from the
# scratch baseline, picked by each plain-head variant (WORK/reranking/).
# The UOI diagnosis (docs/en/results/training_comparisons.md): FINETUNE=1 with the variants uoi-ce-noclip
# (the collapse, measured), uoi-ce (clipped), uoi-ce-ftlr-noclip (a lower
# fine-tune lr alone), uoi-ce-patch4-noclip (coarse soft labels alone), uoi.
# The controlled changes of the IBE diagnosis are variants too:
# baseline-600it and ibe-600it (twice the schedule), ibe-aux (auxiliary head
# wrapped as IBE), lr10 and ibe-lr10 (classifier learning rate x10).
#     bash scripts/compare_ood_training.sh [VARIANT ...]
#     bash scripts/compare_ood_training.sh baseline ibe ibe-aux lr10 ibe-lr10 \
#         baseline-600it ibe-600it
#     FINETUNE=1 bash scripts/compare_ood_training.sh [baseline ibe scribe]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
export MMSEG_OOD_DATA=${MMSEG_OOD_DATA:-data/synthetic}
WORK=${COMPARE_WORK_DIR:-work_dirs/compare}
VARIANTS=("$@")
if [[ ${#VARIANTS[@]} -eq 0 ]]; then
    VARIANTS=(baseline ibe scribe entropy-max uoi-ce)
fi
config() {  # VARIANT[-600it] -> its config
    local v=${1%-600it} tag="" iters=300it
    [[ $v != "$1" ]] && iters=600it
    [[ $v != baseline ]] && tag="-$v"
    local cfg="configs/synthetic/deeplabv3plus_r18-d8${tag}_1xb8-${iters}_synthetic-objects-128x128.py"
    if [[ ! -f $cfg ]]; then
        echo "[compare] no config for variant '$1': $cfg" >&2
        return 1
    fi
    echo "$cfg"
}
# shellcheck disable=SC2206  # k=v words
EXTRA=(${EXTRA_OPTIONS:-})
CURVES=(train_cfg.val_interval=50 val_evaluator.type=PerClassIoUMetric
        "${EXTRA[@]}")

train() {  # train WORK_DIR CONFIG [--cfg-options ...]: unless trained
    local dir=$1 cfg=$2; shift 2
    local ckpt
    ckpt=$(cat "$dir/last_checkpoint" 2>/dev/null || true)
    if [[ -z $ckpt || ! -f $ckpt || -n ${FORCE_TRAIN:-} ]]; then
        echo "[compare] training $dir: $cfg" >&2
        $PY tools/train.py "$cfg" --work-dir "$dir" \
            --cfg-options "${CURVES[@]}" "$@" >&2
        ckpt=$(cat "$dir/last_checkpoint")
    fi
    echo "$ckpt"
}

for v in "${VARIANTS[@]}"; do config "$v" > /dev/null; done  # all known
if [[ -n ${RERANK:-} && -z ${FINETUNE:-} ]]; then
    echo '[compare] RERANK=1 needs FINETUNE=1 (the scratch baseline makes the candidates)' >&2
    exit 1
fi
$PY tools/make_synthetic.py "$MMSEG_OOD_DATA" --variants objects
if [[ -n ${FINETUNE:-} ]]; then
    # the starting point: the baseline from scratch (seed 0, whatever SEED)
    start=$(train "$WORK/scratch-baseline" "$(config baseline)")
    WORK=$WORK/finetune
fi
if [[ -n ${SEED:-} ]]; then  # another seed: its own work dirs
    WORK=$WORK-seed$SEED
    CURVES+=("randomness.seed=$SEED")
fi
dirs=()
for v in "${VARIANTS[@]}"; do
    cfg=$(config "$v")
    init=()
    if [[ -n ${FINETUNE:-} ]]; then
        from=$start
        head=${v%%-*}  # ibe-600it: an IBE head
        if [[ $head == ibe || $head == scribe ]]; then
            from=$WORK/init/$v.pth
            $PY tools/convert_checkpoint.py "$start" --to "$head" \
                --background-index 0 --out "$from" --config "$cfg"
        fi
        init=("load_from=$from")
    fi
    ckpt=$(train "$WORK/$v" "$cfg" "${init[@]}")
    dirs+=("$WORK/$v")
    # a complete evaluation of this very checkpoint is reused
    if [[ -z ${FORCE_TRAIN:-} && -f $WORK/$v/ood/results.json ]] && \
        [[ $WORK/$v/ood/results.json -nt $ckpt ]] && \
        ! grep -q '"complete": false' "$WORK/$v/ood/results.json"; then
        echo "[compare] reusing the OOD evaluation of $v"
    else
        echo "[compare] OOD evaluation of $v ($ckpt)"
        $PY tools/ood_test.py "$cfg" "$ckpt" --work-dir "$WORK/$v/ood" \
            --datasets synthetic_objects_ood \
            ${EXTRA[@]+--cfg-options "${EXTRA[@]}"}
    fi
done
$PY tools/training_curves.py "${dirs[@]}" --names "${VARIANTS[@]}" \
    --out "$WORK/curves"
$PY tools/compare_results.py "$WORK" "${VARIANTS[@]}" \
    --out "$WORK/comparison.md"
if [[ -n ${RERANK:-} ]]; then
    # the UOI paper's measurement (eq. 17): every plain-head variant
    # re-ranks candidates made from the scratch baseline's output
    nets=()
    for v in "${VARIANTS[@]}"; do
        head=${v%%-*}
        [[ $head == ibe || $head == scribe ]] && continue
        nets+=("$v=$(cat "$WORK/$v/last_checkpoint")")
    done
    $PY tools/rerank_proposals.py "$(config baseline)" \
        --checkpoints "${nets[@]}" --proposals "$start" \
        --work-dir "$WORK/reranking" ${EXTRA[@]+--cfg-options "${EXTRA[@]}"}
fi
