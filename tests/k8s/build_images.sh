#!/usr/bin/env bash
# build_images.sh: build the broker and controller images with buildah (no Docker engine).
#   tests/k8s/build_images.sh [TAG]           (default tag: the chart's appVersion)
# Environment: IMAGES="broker controller" (which to build), IMAGES_OUT=build/images (where
# OCI archives go; "" to skip), BASE_IMAGE (default docker.io/library/debian:bookworm-slim),
# DEBIAN_MIRROR (default: the host's apt mirror), BUILDAH_STORAGE (default vfs).
#
# When no registry is reachable the base image is made locally: debootstrap
# --variant=minbase bookworm into a directory, `buildah from scratch`, add the rootfs, and
# commit it under the name the Containerfiles use, so FROM resolves without a pull.
set -euo pipefail
cd "$(dirname "$0")/../.."

TAG="${1:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/sluice/Chart.yaml)}"
IMAGES="${IMAGES:-broker controller}"
OUT="${IMAGES_OUT-build/images}"
BASE="${BASE_IMAGE:-docker.io/library/debian:bookworm-slim}"
STORAGE="${BUILDAH_STORAGE:-vfs}"
BUILDAH=(buildah --storage-driver "$STORAGE")

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

say() { printf '== %s\n' "$*"; }

need() {
    local missing=() p
    for p in "$@"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] ||
            missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]}"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# The first deb URI the host's apt uses: the only mirror known to be reachable.
host_mirror() {
    local m
    m="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)"
    [ -n "$m" ] || m="$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -1)"
    echo "${m:-http://deb.debian.org/debian}"
}

base_image() {
    if "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
        say "base image $BASE is present"
        return
    fi
    if "${BUILDAH[@]}" pull --quiet "$BASE" >/dev/null 2>&1; then
        say "pulled $BASE"
        return
    fi
    need debootstrap
    local mirror root ctr
    mirror="${DEBIAN_MIRROR:-$(host_mirror)}"
    root="$(mktemp -d /var/tmp/sluice-rootfs.XXXXXX)"
    say "no registry: debootstrap --variant=minbase bookworm from $mirror"
    "${SUDO[@]}" debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
    # Like the official slim image: no docs or caches; apt works with the same mirror,
    # and (as on the host) does not refuse a snapshot mirror's expired Release files.
    "${SUDO[@]}" sh -c "
        echo 'deb $mirror bookworm main' > '$root/etc/apt/sources.list'
        printf 'Acquire::Check-Valid-Until \"false\";\nAcquire::Check-Date \"false\";\n' \
            > '$root/etc/apt/apt.conf.d/99sluice-build'
        rm -rf '$root'/var/cache/apt/archives/*.deb '$root'/var/lib/apt/lists/* \
            '$root'/usr/share/doc/* '$root'/usr/share/man/*"
    "${SUDO[@]}" tar -C "$root" -cf "$root.tar" .
    ctr="$("${BUILDAH[@]}" from scratch)"
    "${BUILDAH[@]}" add "$ctr" "$root.tar" / >/dev/null
    "${BUILDAH[@]}" config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    "${BUILDAH[@]}" commit --quiet "$ctr" "$BASE" >/dev/null
    "${BUILDAH[@]}" rm "$ctr" >/dev/null
    "${SUDO[@]}" rm -rf "$root" "$root.tar"
    say "committed a local $BASE"
}

build() {
    local name="$1" file="images/$1.Containerfile"
    say "building sluice-$name:$TAG from $file"
    "${BUILDAH[@]}" bud --isolation chroot --pull=false --layers=false \
        -f "$file" -t "sluice-$name:$TAG" .
    if [ -n "$OUT" ]; then
        mkdir -p "$OUT"
        rm -f "$OUT/sluice-$name-$TAG.tar"
        "${BUILDAH[@]}" push --quiet "sluice-$name:$TAG" "oci-archive:$OUT/sluice-$name-$TAG.tar:sluice-$name:$TAG"
        say "wrote $OUT/sluice-$name-$TAG.tar"
    fi
}

need buildah
base_image
for img in $IMAGES; do
    build "$img"
done
"${BUILDAH[@]}" images
