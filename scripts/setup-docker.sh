#!/usr/bin/env bash
# What the container tests (tests/container) and benchmarks/bench_image.py need, installed where missing
# when run as root with apt (scripts/setup.sh calls it; so does the tests' engine fixture):
#   docker.io    dockerd, and Debian's docker client, which builds with DOCKER_BUILDKIT=1 without buildx
#   debootstrap  docker/debian-base.sh: the bookworm + Python 3.11 base where no registry can be reached
#   chromium     Flower's Tasks and Broker tabs in a real browser (driven by Playwright, which never
#                downloads a browser of its own here)
# Starts nothing: the tests use the Docker engine that answers, else start a dockerd of their own (own
# data-root, exec-root, socket; no bridge, no iptables rules) and stop it by PID (tests/container/engine.py).
# Elsewhere it only says what is missing; the container tests then skip, saying why.
set -euo pipefail

say() { printf '[setup-docker] %s\n' "$*"; }
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
has dockerd || missing+=(docker.io)
has debootstrap || missing+=(debootstrap)
has chromium || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${missing[*]}: install them (apt-get install ${missing[*]}) to run tests/container"
    exit 0
fi
say "installing ${missing[*]} via apt"
apt-get update -qq
# --no-install-recommends: no desktop extras with chromium; docker.io's own dependencies (containerd,
# runc, tini, iptables) are hard dependencies and come anyway.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
say "installed ${missing[*]}"
