#!/usr/bin/env bash
# The main job on a fresh machine: set up, then build a base template from scratch and a
# product image on top of it, in the built-in local store, and show what was made.
# STRATA_QUICKSTART_SKIP_SETUP=1 skips scripts/setup.sh (the e2e test runs with it, after CI's
# own set-up); QUICKSTART_OUT names the flattened rootfs (default /tmp/quickstart-app-rootfs.tar.zst).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ "${STRATA_QUICKSTART_SKIP_SETUP:-}" != 1 ]; then bash scripts/setup.sh; fi
out=${QUICKSTART_OUT:-/tmp/quickstart-app-rootfs.tar.zst}
strata() { "$root/packages/cli/bin/strata.js" "$@"; }
cd examples/quickstart
strata build -f base.Stratafile -t quickstart/base .
strata build -f app.Stratafile -t quickstart/app .
strata inspect quickstart/app
strata flatten quickstart/app --rootfs "$out"
echo "rootfs of quickstart/app: $out"
