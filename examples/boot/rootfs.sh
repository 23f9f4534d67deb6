#!/bin/sh
# Build the bootable example rootfs as a tarball with mmdebstrap (run as root).
#
#   examples/boot/rootfs.sh OUT.tar [SUITE]
#
# Until `strata build` (Stratafiles) lands, this stands in for a Stratafile with
# `BOOTSTRAP bookworm --variant minbase --include …`. The result is turned into a template with
# `strata template create`, then imaged with boot.wks (see README.md next to this file).
set -eu
out=${1:?usage: rootfs.sh OUT.tar [SUITE]}
suite=${2:-bookworm}
here=$(cd "$(dirname "$0")" && pwd)

# The marker unit prints a line the boot test waits for once userspace is up.
mmdebstrap --variant=minbase --mode=root \
  --include=linux-image-amd64,initramfs-tools,systemd,systemd-sysv,udev,systemd-boot-efi \
  --customize-hook="install -m 0644 '$here/strata-boot-marker.service' \"\$1/etc/systemd/system/\"" \
  --customize-hook='mkdir -p "$1/etc/systemd/system/multi-user.target.wants"' \
  --customize-hook='ln -sf ../strata-boot-marker.service "$1/etc/systemd/system/multi-user.target.wants/strata-boot-marker.service"' \
  --customize-hook='echo strata-boot > "$1/etc/hostname"' \
  --customize-hook='printf "LABEL=rootfs / ext4 defaults 0 1\n" > "$1/etc/fstab"' \
  "$suite" "$out"
