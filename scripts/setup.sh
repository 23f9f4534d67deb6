#!/usr/bin/env bash
# Installs what Strata and its tests need on Debian 12 (as root), then the npm dependencies,
# then builds. Idempotent: packages already installed are not touched. Used by the quick start
# and by .ci/run, so a fresh machine and CI install the same things.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (mmdebstrap --mode=root, chroots, overlay mounts, device nodes)" >&2
  exit 1
fi

# What Strata and the tests use:
#   mmdebstrap, debian-archive-keyring   BOOTSTRAP and the minbase test fixture
#   skopeo, umoci                        independent OCI readers in the tests
#   tar, gzip, zstd, xz-utils            GNU tar, the zstd codec
#   attr, libcap2-bin                    getfattr/setfattr, setcap (security.capability), capsh (build sandbox)
#   util-linux                           unshare (build sandbox), findmnt, sfdisk helpers
#   jq                                   `strata inspect --json | jq`
#   e2fsprogs, dosfstools, mtools, fdisk ext4 and partitioned disk images
#   bmap-tools                           bmaptool flashes a disk image with its --bmap in the tests
#   docker-registry, apache2-utils, openssl   the registry tests (htpasswd, TLS)
#   qemu-system-x86, ovmf                the boot test
#   qemu-user-static, binfmt-support,    foreign architectures (arm64, armhf): steps run under
#     arch-test                          qemu-user through binfmt_misc; mmdebstrap needs arch-test
#   patchelf                             a foreign template's apt steps unpack with the host's dpkg
#                                        (copied beside its loader and libraries, set to load them)
#   qemu-system-arm, qemu-efi-aarch64,   the arm64 boot tests (EFI with AAVMF, and U-Boot)
#     u-boot-qemu
#   dpkg-dev                             dpkg-deb reads built .debs (DEBUILD, strata debs); local apt
#                                        repositories and a .dsc (dpkg-source) in the tests
#   strace                               the arm64 boot test lists what flatten and image run
#   file                                 the foreign architecture tests tell ARM binaries apart
#   chromium, fonts-liberation           the browser tests of `strata report` (headless, Playwright;
#                                        the font so that labels and screenshots have real text)
#   python3-jsonschema                   a second JSON schema validator for the SBOM tests
packages=(
  ca-certificates tar gzip isal zstd xz-utils attr libcap2-bin util-linux jq openssl
  mmdebstrap debian-archive-keyring dpkg-dev file
  skopeo umoci
  e2fsprogs dosfstools mtools fdisk bmap-tools
  docker-registry apache2-utils
  qemu-system-x86 ovmf
  qemu-user-static binfmt-support arch-test patchelf
  qemu-system-arm qemu-efi-aarch64 u-boot-qemu
  strace
  chromium fonts-liberation
  python3-jsonschema
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log=$(mktemp)
  echo "setup: installing ${missing[*]} (log: $log)"
  if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 200 "$log" >&2
    exit 1
  fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: Strata needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# The build sandbox needs overlayfs (built in on most kernels).
modprobe overlay 2>/dev/null || true

# Foreign architectures run through qemu-user, which binfmt_misc starts for their binaries.
# Containers and fresh machines often lack the mount; the handlers are then registered again.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null ||
    echo "setup: warning: could not mount binfmt_misc: foreign architectures will not build" >&2
fi
if [ -e "$binfmt/register" ] && [ ! -e "$binfmt/qemu-aarch64" ]; then
  update-binfmts --enable >/dev/null 2>&1 || true
fi
for h in qemu-aarch64 qemu-arm; do
  if [ ! -e "$binfmt/$h" ]; then
    echo "setup: warning: no binfmt handler $h: arm64/armhf will not build" >&2
  elif [ "$(head -n 1 "$binfmt/$h")" != enabled ]; then
    # A registered handler that was switched off (the missing-handler test does that, and
    # puts it back; a killed run may not have): on again.
    echo 1 >"$binfmt/$h"
  fi
done

npm ci --no-audit --no-fund --loglevel=error
npm run build
