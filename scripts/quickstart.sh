#!/usr/bin/env bash
# The main job on a fresh machine: set up, then build a base template from scratch and a
# product image on top of it, in the built-in local store, and show what was made.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
strata() { node packages/cli/bin/strata.js "$@"; }
cd examples/quickstart
strata build -f base.Stratafile -t quickstart/base .
strata build -f app.Stratafile -t quickstart/app .
strata inspect quickstart/app
strata flatten quickstart/app --rootfs /tmp/quickstart-app-rootfs.tar.zst
echo "rootfs of quickstart/app: /tmp/quickstart-app-rootfs.tar.zst"
