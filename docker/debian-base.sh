#!/usr/bin/env bash
# A stand-in for the official base image (python:3.11.13-slim-bookworm) on machines that cannot pull from a
# registry: the same Debian release (bookworm) and Python minor version (3.11), made from Debian's own
# packages with debootstrap and loaded with `docker import`. The project Dockerfile builds on it unchanged:
#
#   docker build --build-arg BASE_IMAGE="$(docker/debian-base.sh)" -f docker/Dockerfile -t celery-rabbitmq:0.1.0 .
#
# Differences from the official image, none of which the Dockerfile depends on: Debian's Python (3.11.2 in
# /usr/bin, `python` from python-is-python3) instead of a 3.11.x built from source in /usr/local; pip only
# inside a venv (python3-venv), as the Dockerfile uses it.
#
# Built once: the root filesystem is cached as a tar under $BASE_CACHE_DIR (default .tools/docker-base),
# keyed by the tag below; a later run only imports it (seconds) or finds the image already there. Bump
# REVISION when the recipe changes. Needs root and debootstrap to build the tar, only a Docker engine after.
# Prints the image reference on stdout; progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
PYTHON_MINOR=3.11
REVISION=1
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# What python:3.11-slim-bookworm carries besides Python: CA certificates, /etc/services and friends, tzdata.
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata
IMAGE=${BASE_IMAGE_NAME:-celery-rabbitmq-base}
TAG="${SUITE}-python${PYTHON_MINOR}-r${REVISION}"
REF="$IMAGE:$TAG"
CACHE=${BASE_CACHE_DIR:-$PWD/.tools/docker-base}
ARCHIVE="$CACHE/$TAG.tar"
DOCKER=${DOCKER:-docker}

say() { printf '[debian-base] %s\n' "$*" >&2; }

if "$DOCKER" image inspect "$REF" >/dev/null 2>&1; then
    echo "$REF"
    exit 0
fi

if [ ! -s "$ARCHIVE" ]; then
    [ "$(id -u)" = 0 ] || { say "building the base needs root (debootstrap); run as root once"; exit 1; }
    command -v debootstrap >/dev/null || { say "debootstrap is missing: apt-get install debootstrap"; exit 1; }
    mkdir -p "$CACHE"
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    partial="$ARCHIVE.$$.tmp"  # per process: two first runs at once must not write one file
    trap 'rm -rf "$rootfs" "$partial"' EXIT
    chmod 0755 "$rootfs"  # mktemp's 0700 would become the image's /
    say "debootstrap --variant=minbase $SUITE from $MIRROR (once; cached as $ARCHIVE)"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >&2
    # The apt sources of the official image (release, updates, security), and their updates applied now,
    # as the official image has them at its build.
    rm -f "$rootfs/etc/apt/sources.list"
    cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    chroot "$rootfs" apt-get -q update >&2
    DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get -q -y upgrade >&2
    rm -f "$rootfs/etc/resolv.conf"  # the engine writes its own into each container
    version=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ "$version" = "$PYTHON_MINOR" ] || { say "$SUITE ships Python $version, not $PYTHON_MINOR"; exit 1; }
    # What the official slim image leaves out too: package lists, caches, documentation.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    # The engine provides /dev, /proc and /sys; device nodes in the tar would only get in the way.
    tar --numeric-owner --xattrs -C "$rootfs" --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* \
        -cf "$partial" .
    mv "$partial" "$ARCHIVE"
fi

say "importing $ARCHIVE as $REF"
"$DOCKER" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase $SUITE + $PACKAGES" \
    "$ARCHIVE" "$REF" >/dev/null
echo "$REF"
