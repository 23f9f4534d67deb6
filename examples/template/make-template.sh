#!/usr/bin/env bash
# A base-platform team's template workflow, end to end:
#   rootfs (dir, .tar[.gz|.zst], or - for stdin) → template → inspect → one .tmpl.img file → load.
#
#   examples/template/make-template.sh ROOTFS [OUT_DIR]
#
# Without a rootfs at hand, make one first:
#   mmdebstrap --variant=minbase bookworm /tmp/minbase.tar
#
# Uses $STRATA_STORE (or the default store); set STRATA to run another strata binary.
# e2e/examples.test.ts runs this script in CI on a minbase rootfs.
set -euo pipefail
rootfs="${1:?usage: make-template.sh ROOTFS [OUT_DIR]}"
out="${2:-.}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
strata() { ${STRATA:-node "$repo/packages/cli/bin/strata.js"} "$@"; }

# 1. Make the template. The default exclusions (apt sources and credentials, host identity,
#    ssh host keys, machine-id, logs, tmp, run) apply and are recorded in its metadata.
strata template create "$rootfs" -t example/base:1.0 --name example-base \
  --feature ssh --feature networking --exclude 'usr/share/doc/*'

# 2. Look at it: a summary, then one field as JSON.
strata inspect example/base:1.0
strata inspect example/base:1.0 --json | jq -c .features

# 3. Ship it as one file, which any OCI tool reads (skopeo inspect oci-archive:FILE).
strata save example/base:1.0 -o "$out/example-base.tmpl.img"

# 4. On the receiving side: load it back under another tag; the digests are identical.
strata load "$out/example-base.tmpl.img" -t example/base:received
strata ls
