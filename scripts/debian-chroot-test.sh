#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the README's test command (scripts/deps.sh && make test) for one
# commit of this repository inside a stock Debian 12 (bookworm) root, as a
# new user on a fresh machine would: a minbase debootstrap with only
# build-essential and git added, Debian's default /etc/hosts, run as root.
# Needs root on a Debian host (debootstrap, mount, chroot).
#   scripts/debian-chroot-test.sh CHROOT_DIR [COMMIT]
# CHROOT_DIR is made with debootstrap when it does not exist yet and reused
# after that; COMMIT defaults to HEAD. The exit status is make test's; its
# output is also left in CHROOT_DIR/root/juggle-test.log.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 CHROOT_DIR [COMMIT]" >&2
    exit 2
fi
root=$1
repo=$(cd "$(dirname "$0")/.." && git rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse --verify "${2:-HEAD}^{commit}")
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "$(id -u)" -ne 0 ]; then
    echo "$0: needs root (debootstrap, mount, chroot)" >&2
    exit 2
fi

if [ ! -x "$root/usr/bin/apt-get" ]; then
    if ! command -v debootstrap >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
    fi
    debootstrap --variant=minbase bookworm "$root" "$mirror"
fi

# Debian's default /etc/hosts (netbase's), if debootstrap left none: the
# one that made preload_resolve fail on a stock machine.
if [ ! -s "$root/etc/hosts" ]; then
    printf '%s\n' '127.0.0.1	localhost' \
        '::1		localhost ip6-localhost ip6-loopback' \
        'ff02::1		ip6-allnodes' 'ff02::2		ip6-allrouters' \
        > "$root/etc/hosts"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"

mounted=""
cleanup() {
    # Innermost first: dev/pts and dev/shm live under dev.
    for m in $mounted; do
        umount "$root/$m" || umount -l "$root/$m" || true
    done
}
trap cleanup EXIT INT TERM
for m in proc sys dev dev/pts dev/shm; do
    if ! mountpoint -q "$root/$m"; then
        mkdir -p "$root/$m"
        mount --bind "/$m" "$root/$m"
        mounted="$m $mounted"
    fi
done

chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -qq && apt-get install -y -qq build-essential git'

# A fresh clone of the commit, outside the host's build trees.
work="$root/root/juggle-test"
rm -rf "$work"
git clone -q --no-local "$repo" "$work"
git -C "$work" checkout -q --detach "$commit"
echo "debian-chroot-test: $(git -C "$work" log -1 --format='%h %s')"

log="$root/root/juggle-test.log"
status="$root/root/juggle-test.status"
# tee keeps the output live; the status file keeps make's exit status.
{
    rc=0
    chroot "$root" /usr/bin/env -i HOME=/root \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
        sh -c 'cd /root/juggle-test && scripts/deps.sh && make test' 2>&1 \
        || rc=$?
    echo "$rc" > "$status"
} | tee "$log"
exit "$(cat "$status")"
