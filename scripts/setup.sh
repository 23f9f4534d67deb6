#!/usr/bin/env bash
# Installs what Strata and its tests need on Debian 12, then the npm dependencies, then builds.
# Run as root. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  ca-certificates tar zstd attr libcap2-bin util-linux jq openssl
  mmdebstrap debian-archive-keyring apt-utils dpkg-dev
  skopeo umoci
  docker-registry apache2-utils
  e2fsprogs dosfstools mtools fdisk
  qemu-system-x86 ovmf systemd-boot-efi
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log=$(mktemp)
  echo "setup: installing ${missing[*]}"
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log"
    exit 1
  fi
  rm -f "$log"
fi
# The build sandbox needs overlayfs.
modprobe overlay 2>/dev/null || true

npm ci --no-audit --no-fund
npm run build
