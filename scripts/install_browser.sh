#!/usr/bin/env bash
# Debian's Chromium for the HTML report's browser test
# (tests/reports/test_html_report.py drives it with Playwright's
# executable_path; Playwright's own browser download is not used). Run by
# `make test`. Where it cannot be installed (not root, no apt-get, no
# package registry), it says so and the browser test skips with the reason.
set -uo pipefail

log() { printf '\n[browser] %s\n' "$*"; }

for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        log "$name: $(command -v "$name") ($("$name" --version 2>/dev/null))"
        exit 0
    fi
done
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "no Chromium, and no root apt-get to install it: the browser test will skip"
    exit 0
fi
log "installing Debian's chromium ..."
t0=$SECONDS
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; then
    log "chromium installed in $((SECONDS - t0)) s: $(chromium --version 2>/dev/null)"
else
    log "apt-get could not install chromium: the browser test will skip"
fi
exit 0
