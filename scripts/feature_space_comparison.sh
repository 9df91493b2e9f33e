#!/usr/bin/env bash
# The feature-space scorers (ReAct, ASH, DICE, ViM, Mahalanobis, relative
# Mahalanobis, kNN, ODIN) beside the logit scorers, on both synthetic
# benchmarks, over training seeds: the comparison of
# docs/en/results/feature_space.md. Not run by CI (about an hour on 2 cores).
# Finished steps are reused (a checkpoint named in last_checkpoint, a
# complete results.json, the fitted statistics file in the run's work dir).
#
#     bash scripts/feature_space_comparison.sh [train] [test] [table] [dice]
#         [odin]
#     SEEDS="0 1 2" FEATURE_WORK_DIR=work_dirs/feature_space \
#         bash scripts/feature_space_comparison.sh
#
# Parts: train (the DeepLabV3+ R18 street and objects baselines, one per
# seed, OMP_NUM_THREADS=1, two at a time), test (ood_test with every
# scorer, its feature statistics fitted on the config's val split:
# --fit-on val), table (compare_results over the seeds, WORK/*.md), dice
# (DICE's sparsity 0-90 against energy, with the statistics the test part
# fitted: WORK/dice_sweep.txt), odin (ODIN without its perturbation and
# without its temperature, beside it: WORK/odin_ablation.txt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
export MMSEG_OOD_DATA=${MMSEG_OOD_DATA:-data/synthetic}
WORK=${FEATURE_WORK_DIR:-work_dirs/feature_space}
# shellcheck disable=SC2206  # words
SEEDS=(${SEEDS:-0 1 2})
PARTS=("$@")
if [[ ${#PARTS[@]} -eq 0 ]]; then PARTS=(train test table dice odin); fi
for part in "${PARTS[@]}"; do
    case $part in train|test|table|dice|odin) ;;
        *) echo "[feature_space] unknown part '$part'" \
               "(train test table dice odin)" >&2
           exit 1 ;;
    esac
done
CFG=configs/synthetic
declare -A CONFIG=(
    [street]=$CFG/deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py
    [objects]=$CFG/deeplabv3plus_r18-d8_1xb8-300it_synthetic-objects-128x128.py)
declare -A DATASET=([street]=synthetic_ood [objects]=synthetic_objects_ood)
LOGIT_SCORERS=(msp entropy max_logit energy sml norm n_energy)
FEATURE_SCORERS=(react ash dice vim mahalanobis rmd knn odin)

trained() {  # trained WORK_DIR: its checkpoint, if training finished
    local ckpt
    ckpt=$(cat "$1/last_checkpoint" 2>/dev/null || true)
    [[ -n $ckpt && -f $ckpt ]] && echo "$ckpt"
    return 0
}
train() {  # train BENCHMARK SEED
    local dir=$WORK/seed$2/$1 start
    [[ -n $(trained "$dir") ]] && return 0
    echo "[feature_space] training $dir" >&2
    mkdir -p "$dir"
    start=$(date +%s)
    OMP_NUM_THREADS=1 $PY tools/train.py "${CONFIG[$1]}" --work-dir "$dir" \
        --cfg-options "randomness.seed=$2" > "$dir/train.log" 2>&1
    echo $(( $(date +%s) - start )) > "$dir/train_seconds.txt"
}

dice_sweep() {  # dice_sweep DIR: energy, and DICE at 0-90 % sparsity with
    # the statistics the test part fitted
    echo energy
    for p in 0 50 70 90; do
        echo "dice:sparsity=$p,stats_file=$1/ood/feature_statistics_val.npz"
    done
}
odin_ablation() {  # ODIN without its perturbation, without its temperature
    printf '%s\n' msp odin odin:epsilon=0 odin:temperature=1
}
ablate() {  # ablate NAME SCORERS_OF OUT: for every model, ood_test on the
    # scorers `SCORERS_OF DIR` prints (into DIR/ood_NAME); a summary of all
    # of them in WORK/OUT
    local name=$1 scorers_of=$2 out=$3 s b dir scorers
    for s in "${SEEDS[@]}"; do
        for b in street objects; do
            dir=$WORK/seed$s/$b
            [[ -f $dir/ood_$name/results.json ]] && continue
            mapfile -t scorers < <("$scorers_of" "$dir")
            OMP_NUM_THREADS=${TEST_THREADS:-1} $PY tools/ood_test.py \
                "${CONFIG[$b]}" "$(trained "$dir")" \
                --work-dir "$dir/ood_$name" --datasets "${DATASET[$b]}" \
                --scorers "${scorers[@]}" --no-id-eval \
                > "$dir/ood_$name.log" 2>&1 &
        done
        wait
    done
    for s in "${SEEDS[@]}"; do
        for b in street objects; do
            $PY - "$WORK/seed$s/$b/ood_$name/results.json" <<'PYEOF'
import json, sys
res = json.load(open(sys.argv[1]))
(dataset, rows), = res['results'].items()
print(sys.argv[1])
for name, r in rows.items():
    print(f"  {name.split(',stats_file')[0]:22s} AUROC {100 * r['auroc']:6.2f}"
          f"  AP {100 * r['ap']:6.2f}  FPR95 {100 * r['fpr95']:6.2f}")
PYEOF
        done
    done > "$WORK/$out"
    cat "$WORK/$out"
}

$PY tools/make_synthetic.py "$MMSEG_OOD_DATA" >&2
for part in "${PARTS[@]}"; do
    case $part in
    train)
        jobs_=()
        for s in "${SEEDS[@]}"; do
            for b in street objects; do jobs_+=("$b $s"); done
        done
        for ((i = 0; i < ${#jobs_[@]}; i += 2)); do
            # shellcheck disable=SC2086  # "BENCHMARK SEED"
            train ${jobs_[i]} &
            if (( i + 1 < ${#jobs_[@]} )); then
                # shellcheck disable=SC2086
                train ${jobs_[i+1]} &
            fi
            wait
        done
        ;;
    test)
        for s in "${SEEDS[@]}"; do
            for b in street objects; do
                dir=$WORK/seed$s/$b
                out=$dir/ood
                if [[ -f $out/results.json ]] && \
                        ! grep -q '"complete": false' "$out/results.json"; then
                    continue
                fi
                echo "[feature_space] ood_test $dir" >&2
                OMP_NUM_THREADS=${TEST_THREADS:-1} $PY tools/ood_test.py \
                    "${CONFIG[$b]}" "$(trained "$dir")" --work-dir "$out" \
                    --datasets "${DATASET[$b]}" \
                    --scorers "${LOGIT_SCORERS[@]}" "${FEATURE_SCORERS[@]}" \
                    --fit-on val > "$dir/ood_test.log" 2>&1 &
            done
            wait
        done
        ;;
    table)
        for b in street objects; do
            more=()
            for s in "${SEEDS[@]:1}"; do more+=("$WORK/seed$s"); done
            spread=()
            (( ${#more[@]} )) && spread=(--seed-roots "${more[@]}")
            for columns in "auroc ap fpr95" "siou ppv mean_f1"; do
                # shellcheck disable=SC2086  # the column names
                $PY tools/compare_results.py "$WORK/seed${SEEDS[0]}" "$b" \
                    --dataset "${DATASET[$b]}" \
                    --scorers "${LOGIT_SCORERS[@]}" "${FEATURE_SCORERS[@]}" \
                    --columns $columns ${spread[@]+"${spread[@]}"} \
                    --out "$WORK/table_${b}_${columns// /_}.md"
            done
        done
        for s in "${SEEDS[@]}"; do
            for b in street objects; do
                $PY - "$WORK/seed$s/$b/ood/results.json" <<'PYEOF'
import json, sys
res = json.load(open(sys.argv[1]))
fit = next(iter(res['fitted'].values()))
print(f"{sys.argv[1]}: fit pass {fit.get('pass_seconds', 'reused')} s, "
      f"{fit['pixels']} ID pixels")
PYEOF
            done
        done
        ;;
    dice) ablate dice dice_sweep dice_sweep.txt ;;
    odin) ablate odin odin_ablation odin_ablation.txt ;;
    esac
done
