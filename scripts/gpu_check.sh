#!/usr/bin/env bash
# The GPU checks of mmseg_ood in one call, for a lent machine without
# network (docs/en/get_started/gpu_check.md).
#
#   bash scripts/gpu_check.sh prepare      # here, with PyPI: fills .gpu_wheels/
#   bash scripts/gpu_check.sh run OUT_DIR  # there (or here, on the CPU)
#
# prepare downloads the pure-Python wheels (Python 3.12) of what the lent
# machine lacks (mmengine, mmsegmentation and their small dependencies,
# setuptools < 81 for mmcv's setup.py, ninja for a parallel build) and
# mmcv 2.1.0's source archive into .gpu_wheels/ (ignored by git; carried to
# the machine).
#
# run installs them under $GPU_CHECK_WORK (pip --target; the machine's own
# torch stays in use), builds mmcv's ops for the CPU only (building its
# CUDA ops would take most of a 10-minute call, an estimate;
# DeepLabV3+ calls no mmcv op; if the build fails, a stub lets mmcv.ops
# import and raises when an op is called), then runs each check under its
# own time limit, carrying on after a failure:
#   agreement      benchmarks/device_agreement.py  CPU vs GPU scores/metrics
#   scoring-fp32   benchmarks/scoring_overhead.py  DeepLabV3+ R50, 1024x2048
#   scoring-fp16   the same under torch.autocast float16 (bfloat16 on a CPU)
#   metric         benchmarks/metric_device.py     metrics fed GPU tensors
#   training       benchmarks/training_step_time.py on the device
#   ood-test       benchmarks/ood_test_throughput.py ood_test vs tools/test.py
# Results: OUT_DIR/results.json (every step's status, time and headline
# numbers), OUT_DIR/log.txt and one JSON per check (8 files at most).
#
# Environment: GPU_CHECK_PYTHON (python3), GPU_CHECK_DEVICE (auto: cuda if
# torch sees one), GPU_CHECK_QUICK=1 (tiny sizes, to test the script on a
# CPU), GPU_CHECK_DEADLINE (seconds for the whole run: 570 on a GPU, 3000
# otherwise), GPU_CHECK_INSTALL (auto: install only if mmcv.ops, mmengine
# and mmseg do not import; force; skip), GPU_CHECK_MMCV (build | stub),
# GPU_CHECK_WORK (/tmp/gpu_check_work), GPU_CHECK_COMMIT, MAX_JOBS.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
WHEELS=$REPO/.gpu_wheels
MMCV_VERSION=2.1.0
# pure-Python wheels (py3-none-any) the lent machine lacks
PURE=(mmengine==0.10.7 mmsegmentation==1.2.2 addict==2.4.0 termcolor==3.3.0
      yapf==0.43.0 platformdirs==4.14.9 prettytable==3.19.0 wcwidth==0.9.5
      ftfy==6.3.1 setuptools==80.10.2)
# binary wheels for CPython 3.12 on x86-64 Linux
BINARY=(ninja==1.13.2)

prepare() {
    local py=${GPU_CHECK_PIP_PYTHON:-}
    if [[ -z $py ]]; then
        if [[ -x .venv/bin/python ]]; then py=.venv/bin/python; else py=python3; fi
    fi
    mkdir -p "$WHEELS"
    "$py" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux_2_12_x86_64 \
        --platform manylinux2010_x86_64 --platform manylinux_2_5_x86_64 \
        --platform manylinux1_x86_64 -d "$WHEELS" "${PURE[@]}" "${BINARY[@]}" \
        || return 1
    # the source archive; --no-build-isolation: pip reads its metadata with
    # this environment's torch (mmcv's setup.py imports torch)
    "$py" -m pip download --no-deps --no-binary :all: --no-build-isolation \
        -d "$WHEELS" "mmcv==$MMCV_VERSION" || return 1
    git rev-parse --short HEAD > "$WHEELS/commit.txt" 2>/dev/null || true
    echo "== Requires-Dist of the wheels (the lent machine has numpy, scipy,"
    echo "   matplotlib, opencv-python-headless, pyyaml, rich, regex, packaging)"
    for w in "$WHEELS"/*.whl; do
        echo "-- $(basename "$w")"
        unzip -p "$w" '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
            | sed 's/^/   /'
    done
    echo "== .gpu_wheels: $(du -sh "$WHEELS" | cut -f1) in $(ls "$WHEELS" | wc -l) files"
}

# --- run ---------------------------------------------------------------------

log() { echo "[gpu_check $(( SECONDS - START ))s] $*"; }

# step NAME BUDGET_S COMMAND...: run under min(budget, time left), record it
step() {
    local name=$1 budget=$2; shift 2
    local left=$(( DEADLINE - (SECONDS - START) - RESERVE ))
    (( budget > left )) && budget=$left
    if (( budget < 15 )); then
        log "$name: skipped (${left}s left of the deadline)"
        printf '%s\tskipped\t\t0\t%s\n' "$name" "$budget" >> "$STEPS"
        return 0
    fi
    log "$name: start (limit ${budget}s): $*"
    local t0=$SECONDS rc status
    timeout -k 5 "$budget" "$@"
    rc=$?
    case $rc in
        0) status=ok ;;
        124|137) status=timeout ;;
        *) status=failed ;;
    esac
    log "$name: $status (rc $rc) in $(( SECONDS - t0 ))s"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" \
        "$(( SECONDS - t0 ))" "$budget" >> "$STEPS"
}

stub_ops() {
    cat > "$1/mmcv/_ext.py" <<'EOF'
"""Stand-in for mmcv's compiled ops (scripts/gpu_check.sh: the build failed
or was skipped): mmcv.ops imports, calling an op raises."""


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)

    def op(*args, **kwargs):
        raise RuntimeError(f'mmcv op {name!r} is not built (gpu_check stub)')
    return op
EOF
}

install() {
    INSTALL_METHOD=preinstalled MMCV_OPS=preinstalled BUILD_S=0
    local mode=${GPU_CHECK_INSTALL:-auto}
    if [[ $mode == skip ]] || { [[ $mode == auto ]] && \
            $PY -c 'import mmcv.ops, mmengine, mmseg' 2>/dev/null; }; then
        log "install: mmcv, mmengine and mmseg already import ($mode)"
        return 0
    fi
    local t0=$SECONDS site=$WORK/site src=$WORK/mmcv-$MMCV_VERSION
    [[ -d $WHEELS ]] || { log "install: no $WHEELS (run prepare, carry it)"; return 1; }
    mkdir -p "$site"
    if $PY -m pip --version >/dev/null 2>&1; then
        INSTALL_METHOD="pip install --no-index --no-deps --target"
        $PY -m pip install -q --no-index --no-deps --upgrade --target "$site" \
            "$WHEELS"/*.whl || return 1
    else  # a wheel is a zip archive: unpacked, it is installed
        INSTALL_METHOD="unzip (no pip)"
        for w in "$WHEELS"/*.whl; do $PY -m zipfile -e "$w" "$site"; done
    fi
    export PATH=$site/bin:$site/ninja/data/bin:$PATH
    if [[ ! -d $src ]]; then
        tar xzf "$WHEELS/mmcv-$MMCV_VERSION.tar.gz" -C "$WORK" || return 1
    fi
    if compgen -G "$src/mmcv/_ext*.so" >/dev/null; then
        MMCV_OPS="cpu (built before)"
    elif [[ ${GPU_CHECK_MMCV:-build} == build ]]; then
        local jobs=${MAX_JOBS:-$CORES} b0=$SECONDS
        local left=$(( DEADLINE - (SECONDS - START) - 200 ))
        (( left > 300 )) && left=300
        log "install: building mmcv $MMCV_VERSION's ops for the CPU" \
            "(MAX_JOBS=$jobs, ninja: $(command -v ninja || echo none)," \
            "limit ${left}s)"
        ( cd "$src" && PYTHONPATH=$site CUDA_VISIBLE_DEVICES= FORCE_CUDA=0 \
            MMCV_WITH_OPS=1 MAX_JOBS=$jobs timeout -k 5 "$left" \
            $PY setup.py build_ext --inplace > "$WORK/mmcv_build.log" 2>&1 )
        local rc=$?
        BUILD_S=$(( SECONDS - b0 ))
        if (( rc == 0 )); then
            MMCV_OPS="cpu (built in ${BUILD_S}s, MAX_JOBS=$jobs)"
        else
            tail -20 "$WORK/mmcv_build.log"
            MMCV_OPS="stub (build failed, rc $rc after ${BUILD_S}s)"
            stub_ops "$src"
        fi
    else
        MMCV_OPS="stub (GPU_CHECK_MMCV=stub)"
        stub_ops "$src"
    fi
    export PYTHONPATH=$site:$src:$REPO${PYTHONPATH:+:$PYTHONPATH}
    log "install: $INSTALL_METHOD; mmcv ops: $MMCV_OPS; $(( SECONDS - t0 ))s"
    $PY -c 'import mmcv, mmcv.ops, mmengine, mmseg, mmseg_ood
print("mmcv", mmcv.__version__, mmcv.__file__)
print("mmengine", mmengine.__version__, "mmseg", mmseg.__version__)'
}

summary() {
    $PY - "$OUT" "$STEPS" <<'EOF'
import datetime, json, os, sys
out, steps_file = sys.argv[1:3]
env = os.environ
steps = []
for line in open(steps_file):
    name, status, rc, seconds, budget = line.rstrip('\n').split('\t')
    steps.append(dict(name=name, status=status, rc=int(rc) if rc else None,
                      seconds=int(seconds), budget_s=int(budget)))
files = dict(agreement='device_agreement.json',
             **{'scoring-fp32': 'scoring_overhead_fp32.json',
                'scoring-fp16': 'scoring_overhead_fp16.json',
                'scoring-bf16': 'scoring_overhead_bf16.json',
                'ood-test': 'ood_test_throughput.json'},
             metric='metric_device.json', training='training_step_time.json')


def read(name):
    try:
        with open(os.path.join(out, files[name])) as f:
            return json.load(f)
    except (OSError, ValueError, KeyError):
        return None


head = {}
for s in steps:
    r = read(s['name'])
    s['file'] = files.get(s['name']) if r else None
    if r is None:
        continue
    if s['name'].startswith('scoring'):
        head[s['name']] = {m: dict(ratio_median=v['ratio_median'],
                                   plain_median_s=v['plain_median_s'])
                           for m, v in r['results'].items()}
    elif s['name'] == 'agreement':
        head['agreement'] = dict(agree=r['agree'], comparisons={
            k: dict(agree=v['agree'], pred_changed=v['pred_changed'],
                    max_rel_diff=max(x['max_rel_diff']
                                     for x in v['scorers'].values()))
            for k, v in r['comparisons'].items()})
    elif s['name'] == 'metric':
        head['metric'] = {k: r[k] for k in (
            'speedup_histogram_core', 'speedup_vs_accumulator',
            'bincount_equal', 'max_metric_difference')}
    elif s['name'] == 'training':
        head['training'] = {k: v['ratio'] for k, v in r['results'].items()}
    elif s['name'] == 'ood-test':
        head['ood-test'] = r['results']['median_images_per_s']
result = dict(
    schema=1, date=datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds'),
    commit=env.get('GPU_CHECK_COMMIT'), device=env.get('GPU_DEVICE_NAME'),
    quick=env.get('QUICK') == '1', deadline_s=int(env['DEADLINE']),
    install=dict(method=env.get('INSTALL_METHOD'),
                 mmcv_ops=env.get('MMCV_OPS'),
                 mmcv_build_s=int(env.get('BUILD_S') or 0),
                 seconds=int(env.get('INSTALL_S') or 0),
                 ok=env.get('INSTALL_OK') == '1'),
    steps=steps, headline=head)
tmp = os.path.join(out, '.results.json.tmp')
with open(tmp, 'w') as f:
    json.dump(result, f, indent=2)
os.replace(tmp, os.path.join(out, 'results.json'))
print('\n== gpu_check summary ==')
print(f"device {result['device']}  commit {result['commit']}  "
      f"install: {result['install']}")
for s in steps:
    print(f"{s['name']:14s} {s['status']:8s} {s['seconds']:5d} s "
          f"(limit {s['budget_s']} s)  {s['file'] or ''}")
print(json.dumps(head, indent=1))
EOF
}

run() {
    OUT=${1:?usage: gpu_check.sh run OUT_DIR}
    mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
    exec > >(tee -a "$OUT/log.txt") 2>&1
    START=$SECONDS RESERVE=20
    PY=${GPU_CHECK_PYTHON:-python3}
    WORK=${GPU_CHECK_WORK:-/tmp/gpu_check_work}
    QUICK=${GPU_CHECK_QUICK:-0}
    mkdir -p "$WORK"
    STEPS=$WORK/steps.tsv
    : > "$STEPS"
    local dev=${GPU_CHECK_DEVICE:-auto}
    if [[ $dev == auto ]]; then
        dev=$($PY -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null || echo cpu)
    fi
    DEADLINE=${GPU_CHECK_DEADLINE:-$([[ $dev == cuda ]] && echo 570 || echo 3000)}
    GPU_CHECK_COMMIT=${GPU_CHECK_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null \
        || cat "$WHEELS/commit.txt" 2>/dev/null || echo unknown)}
    export GPU_CHECK_COMMIT QUICK DEADLINE
    CORES=$(getconf _NPROCESSORS_ONLN)  # nproc obeys OMP_NUM_THREADS
    log "device $dev, python $($PY -c 'import sys; print(sys.version.split()[0])')," \
        "commit $GPU_CHECK_COMMIT, quick $QUICK, deadline ${DEADLINE}s, $CORES cores"
    $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
    command -v nvcc >/dev/null && nvcc --version | tail -1 || log "nvcc: none"
    command -v c++ >/dev/null && c++ --version | head -1 || log "c++: none"
    GPU_DEVICE_NAME=$($PY -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")' 2>/dev/null)
    export GPU_DEVICE_NAME

    local t0=$SECONDS
    if install; then INSTALL_OK=1; else INSTALL_OK=0; log "install failed"; fi
    INSTALL_S=$(( SECONDS - t0 ))
    export INSTALL_METHOD MMCV_OPS BUILD_S INSTALL_OK INSTALL_S
    export PYTHONPATH=${PYTHONPATH:-}${PYTHONPATH:+:}$REPO
    # on a CPU: two CPU runs agree?, and bfloat16, the CPU's half precision
    # (float16 convolutions are emulated there: minutes for one image)
    local agree_dev=(cpu cuda) tf32=both half=fp16
    [[ $dev == cpu ]] && agree_dev=(cpu cpu) tf32=default half=bf16
    local B=benchmarks
    # each benchmark's sizes and each step's limit (s): the quick sizes test
    # the script on a CPU; the others are the GPU run's
    local agree scoring metric training oodtest limits
    if [[ $QUICK == 1 ]]; then
        agree=(--images 2 --size 64 128)
        scoring=(--size 128 256 --repeats 2)
        metric=(--images 2 --size 256 512 --repeats 1)
        training=(--rounds 1 --batch 2 --size 64 --warmup 1)
        oodtest=(--images 2 --size 64 128 --repeats 1)
        limits=(300 300 300 300 300)   # agreement scoring metric training ood-test
    else
        agree=(--images 4 --size 512 1024)
        scoring=(--size 1024 2048 --repeats 10)
        metric=(--images 8 --size 1024 2048 --repeats 3)
        training=(--rounds 3)
        oodtest=(--images 16 --size 512 1024 --repeats 1)
        limits=(75 60 45 75 100)
    fi
    step agreement "${limits[0]}" $PY $B/device_agreement.py \
        --devices "${agree_dev[@]}" "${agree[@]}" --tf32 $tf32 \
        --json "$OUT/device_agreement.json"
    for amp in fp32 $half; do
        step scoring-$amp "${limits[1]}" $PY $B/scoring_overhead.py \
            "${scoring[@]}" --device $dev --models deeplabv3plus \
            --amp "$([[ $amp == fp32 ]] && echo none || echo $amp)" \
            --json "$OUT/scoring_overhead_$amp.json"
    done
    step metric "${limits[2]}" $PY $B/metric_device.py "${metric[@]}" \
        --device $dev --json "$OUT/metric_device.json"
    step training "${limits[3]}" $PY $B/training_step_time.py "${training[@]}" \
        --device $dev --json "$OUT/training_step_time.json"
    step ood-test "${limits[4]}" $PY $B/ood_test_throughput.py "${oodtest[@]}" \
        --json "$OUT/ood_test_throughput.json"
    summary
    log "done in $(( SECONDS - START ))s; results in $OUT"
}

case ${1:-} in
    prepare) prepare ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash scripts/gpu_check.sh prepare | run OUT_DIR" >&2; exit 2 ;;
esac
