#!/usr/bin/env bash
# Create the project's virtual environment and install everything mmseg_ood
# needs, step by step. Each finished step leaves a stamp in $VENV/.stamps, so
# a second run skips it (pip's wheel cache makes even a fresh venv fast: the
# mmcv wheel built from source is reused).
#
# Usage: scripts/bootstrap.sh            (VENV=.venv PYTHON=python3 by default)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$here/.venv}
PYTHON=${PYTHON:-python3}
STAMPS=$VENV/.stamps

# Pins, and why.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}   # the local CPU wheel; CUDA users: docs/en/get_started/install.md
MMCV_SPEC='mmcv==2.1.0'                   # mmseg 1.2.2 rejects mmcv >= 2.2.0; mmcv-lite lacks mmcv.ops
MMENGINE_SPEC='mmengine==0.10.7'
MMSEG_SPEC='mmsegmentation==1.2.2'
# mmseg builds MaskFormer / Mask2Former heads only with mmdet, and ConvNeXt /
# PoolFormer backbones only with mmpretrain. Their last releases are the ones
# whose import-time checks accept mmcv 2.1.0: mmdet 3.3.0 wants mmcv
# >= 2.0.0rc4, < 2.2.0; mmpretrain 1.2.0 wants mmcv >= 2.0.0, < 2.4.0 (both
# mmengine < 1.0). Both are pure Python: no build.
MMDET_SPEC='mmdet==3.3.0'
MMPRETRAIN_SPEC='mmpretrain==1.2.0'
# pkg_resources must exist: mmcv 2.1.0's setup.py imports it, and so does
# mmengine 0.10.7 at run time (resolving `mmseg::` config paths). torch 2.13
# requires setuptools >= 77.0.3; setuptools 81 removed pkg_resources.
SETUPTOOLS_SPEC='setuptools>=77.0.3,<81'

log() { printf '\n[bootstrap] %s\n' "$*"; }

step() {  # step NAME COMMAND...: run COMMAND once per venv
    local name=$1; shift
    if [[ -f $STAMPS/$name ]]; then
        log "$name: done already (remove $STAMPS/$name to redo)"
        return
    fi
    log "$name ..."
    local t0=$SECONDS
    "$@"
    mkdir -p "$STAMPS"
    touch "$STAMPS/$name"
    log "$name: finished in $((SECONDS - t0)) s"
}

pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }

make_venv() { "$PYTHON" -m venv "$VENV"; }
torch() { pip install "$TORCH_SPEC"; }
# After torch, which would otherwise pull the newest setuptools.
build_tools() { pip install -U pip wheel ninja "$SETUPTOOLS_SPEC"; }
mmengine() { pip install "$MMENGINE_SPEC" 'opencv-python' 'numpy' 'packaging'; }
mmcv() {
    # Ops are compiled against the installed torch: no build isolation.
    # pip caches the resulting wheel, so later venvs reuse it.
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        pip install --no-build-isolation "$MMCV_SPEC"
    "$VENV/bin/python" -c 'import mmcv.ops' \
        || { echo "mmcv was installed without its compiled ops" >&2; return 1; }
}
mmseg() { pip install "$MMSEG_SPEC" ftfy regex; }
model_zoo_extras() { pip install "$MMDET_SPEC" "$MMPRETRAIN_SPEC"; }
project() {
    # Dependencies not pinned above come from setup.cfg: the core, every
    # optional extra (all), the test tools (dev) and the documentation
    # site's (docs).
    pip install --no-build-isolation -e "$here[all,dev,docs]"
    # mmpretrain's models import torchvision, which has no CPU build for
    # torch 2.13: mmseg_ood lets them import without it (docs/en/compatibility.md)
    "$VENV/bin/python" -c 'import mmseg_ood, mmdet.models, mmpretrain.models' \
        || { echo "mmseg_ood cannot import the model-zoo extras" >&2; return 1; }
}

[[ -x $VENV/bin/python ]] || rm -rf "$STAMPS"
step venv make_venv
step torch torch
step build-tools build_tools
step mmengine mmengine
step mmcv mmcv
step mmseg mmseg
step model-zoo-extras model_zoo_extras
# The project step reruns when setup.cfg changes.
cfg_hash=$(sha1sum "$here/setup.cfg" | cut -c1-12)
step "project-$cfg_hash" project
log "environment ready: $VENV"
