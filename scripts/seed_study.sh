#!/usr/bin/env bash
# The seed study behind the seed-claims table (docs/en/results/seed_claims.md): every model a claim
# rests on, trained with 3 seeds, evaluated, and summarized as mean ± spread
# (tools/compare_results.py --seed-roots). Not run by CI: it takes hours on
# 2 cores. Every finished step is kept and reused (a checkpoint named in
# last_checkpoint, a complete results.json / robustness.json), so an
# interrupted study resumes where it stopped; FORCE_TRAIN=1 retrains.
#
#     bash scripts/seed_study.sh [PART ...]      # default: every part
#     SEEDS="0 1 2" SEED_WORK_DIR=work_dirs/seeds bash scripts/seed_study.sh
#
# Parts:
#   demo      the demo model (street) with each seed at the demo's 2 threads,
#             and seed 0 at 1 thread too (what the thread count changes);
#             claim (a) on street
#   scratch   the objects baseline from scratch, each seed; claim (a) on
#             objects
#   finetune  FINETUNE=1 scripts/compare_ood_training.sh baseline ibe scribe
#             entropy-max with each SEED (fine-tuned from the seed-0 scratch
#             baseline: the seed changes the fine-tune's data order and
#             crops); claims (b) and (d). Then, per seed, background IoU on
#             whole-image OOD (IBE Table 2) and robustness_test clean +
#             CORRUPTIONS at severity SEVERITY (ECE, non-distinctiveness eq. 4;
#             claim (c))
# Each part's summary goes to WORK/<part>.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
export PY
export MMSEG_OOD_DATA=${MMSEG_OOD_DATA:-data/synthetic}
WORK=${SEED_WORK_DIR:-work_dirs/seeds}
# shellcheck disable=SC2206  # words
SEEDS=(${SEEDS:-0 1 2})
# shellcheck disable=SC2206
CORRUPTIONS=(${CORRUPTIONS:-gaussian_noise motion_blur fog jpeg_compression})
SEVERITY=${SEVERITY:-5}
PARTS=("$@")
if [[ ${#PARTS[@]} -eq 0 ]]; then PARTS=(demo scratch finetune); fi
for part in "${PARTS[@]}"; do
    case $part in demo|scratch|finetune) ;;
        *) echo "[seed_study] unknown part '$part' (demo scratch finetune)" >&2
           exit 1 ;;
    esac
done
STREET=configs/synthetic/deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py
OBJECTS=configs/synthetic/deeplabv3plus_r18-d8_1xb8-300it_synthetic-objects-128x128.py
ALL_SCORERS=(msp entropy max_logit energy norm n_max_logit n_energy)

trained() {  # trained WORK_DIR: its checkpoint, if training finished
    local ckpt
    ckpt=$(cat "$1/last_checkpoint" 2>/dev/null || true)
    [[ -n $ckpt && -f $ckpt && -z ${FORCE_TRAIN:-} ]] && echo "$ckpt"
    return 0
}
evaluated() {  # evaluated DIR: a complete results.json is there
    [[ -f $1/results.json ]] && ! grep -q '"complete": false' "$1/results.json"
}
train_and_test() {  # CONFIG DIR DATASET THREADS SEED
    local cfg=$1 dir=$2 dataset=$3 threads=$4 seed=$5 ckpt
    ckpt=$(trained "$dir")
    if [[ -z $ckpt ]]; then
        echo "[seed_study] training $dir (seed $seed, $threads threads)" >&2
        OMP_NUM_THREADS=$threads $PY tools/train.py "$cfg" --work-dir "$dir" \
            --cfg-options "randomness.seed=$seed" >&2
        ckpt=$(cat "$dir/last_checkpoint")
    fi
    if ! evaluated "$dir/ood"; then
        OMP_NUM_THREADS=$threads $PY tools/ood_test.py "$cfg" "$ckpt" \
            --work-dir "$dir/ood" --datasets "$dataset" \
            --tune temperature=1,0.5,0.2,0.1,0.05,0.02,0.01 >&2
    fi
}
roots() {  # roots PREFIX: --seed-roots and the roots after the first
    local s out=()
    for s in "${SEEDS[@]:1}"; do out+=("$1$s"); done
    [[ ${#out[@]} -gt 0 ]] && echo --seed-roots "${out[@]}"
    return 0
}

$PY tools/make_synthetic.py "$MMSEG_OOD_DATA" >&2
mkdir -p "$WORK"
for part in "${PARTS[@]}"; do
    case $part in
    demo)
        for s in "${SEEDS[@]}"; do
            train_and_test "$STREET" "$WORK/demo/seed$s/t2" synthetic_ood 2 "$s"
        done
        train_and_test "$STREET" "$WORK/demo/seed${SEEDS[0]}/t1" synthetic_ood 1 \
            "${SEEDS[0]}"
        # shellcheck disable=SC2046  # one root per seed
        {
            echo "# Demo model (street), ${#SEEDS[@]} seeds at 2 threads"
            echo
            $PY tools/compare_results.py "$WORK/demo/seed${SEEDS[0]}" t2 \
                $(roots "$WORK/demo/seed") \
                --dataset synthetic_ood --scorers "${ALL_SCORERS[@]}"
            echo
            echo "# Seed ${SEEDS[0]} at 1 and 2 threads"
            echo
            $PY tools/compare_results.py "$WORK/demo/seed${SEEDS[0]}" t1 t2 \
                --dataset synthetic_ood --scorers "${ALL_SCORERS[@]}"
        } > "$WORK/demo.md.tmp" && mv "$WORK/demo.md.tmp" "$WORK/demo.md"
        ;;
    scratch)
        # seed 0 is the start of every fine-tune: one model, two names
        mkdir -p "$WORK/scratch/seed0" "$WORK/objects/scratch-baseline"
        [[ -e $WORK/scratch/seed0/baseline ]] || \
            ln -s ../../objects/scratch-baseline "$WORK/scratch/seed0/baseline"
        for s in "${SEEDS[@]}"; do
            train_and_test "$OBJECTS" "$WORK/scratch/seed$s/baseline" \
                synthetic_objects_ood 1 "$s"
        done
        # shellcheck disable=SC2046
        $PY tools/compare_results.py "$WORK/scratch/seed${SEEDS[0]}" baseline \
            $(roots "$WORK/scratch/seed") \
            --scorers "${ALL_SCORERS[@]}" --out "$WORK/scratch.md"
        ;;
    finetune)
        tables=()
        for s in "${SEEDS[@]}"; do
            root=$WORK/objects/finetune-seed$s
            SEED=$s COMPARE_WORK_DIR=$WORK/objects OMP_NUM_THREADS=1 \
                FINETUNE=1 bash scripts/compare_ood_training.sh \
                baseline ibe scribe entropy-max >&2
            tables+=("$root")
            for v in baseline ibe scribe; do
                cfg=configs/synthetic/deeplabv3plus_r18-d8-${v}_1xb8-300it_synthetic-objects-128x128.py
                [[ $v == baseline ]] && cfg=$OBJECTS
                out=$root/background_iou/$v
                evaluated "$out" || OMP_NUM_THREADS=1 $PY tools/ood_test.py \
                    "$cfg" "$(cat "$root/$v/last_checkpoint")" --work-dir "$out" \
                    --datasets synthetic_objects_image_ood_textures \
                    synthetic_objects_image_ood_gwn --no-id-eval >&2
            done
            if [[ ! -f $root/robustness/robustness.json ]]; then
                OMP_NUM_THREADS=1 $PY tools/robustness_test.py \
                    "$OBJECTS" "$(cat "$root/baseline/last_checkpoint")" \
                    configs/synthetic/deeplabv3plus_r18-d8-ibe_1xb8-300it_synthetic-objects-128x128.py \
                    "$(cat "$root/ibe/last_checkpoint")" \
                    configs/synthetic/deeplabv3plus_r18-d8-scribe_1xb8-300it_synthetic-objects-128x128.py \
                    "$(cat "$root/scribe/last_checkpoint")" \
                    --names baseline ibe scribe --work-dir "$root/robustness" \
                    --corruptions "${CORRUPTIONS[@]}" --severities "$SEVERITY" >&2
            fi
        done
        more=()
        [[ ${#tables[@]} -gt 1 ]] && more=(--seed-roots "${tables[@]:1}")
        $PY tools/compare_results.py "${tables[0]}" baseline ibe scribe \
            entropy-max ${more[@]+"${more[@]}"} \
            --scorers msp entropy max_logit energy background \
            --out "$WORK/finetune.md"
        $PY tools/seed_summary.py "${tables[@]}" \
            --out "$WORK/finetune-calibration.md"
        ;;
    esac
done
echo "[seed_study] summaries: $WORK/*.md"
