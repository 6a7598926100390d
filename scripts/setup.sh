#!/usr/bin/env bash
# Sets up a fresh machine for this project: the venv with the package and its test tools, the pinned
# helm binaries (Helm 4 and Helm 3), checkov in a venv of its own, and rabbitmq-server where missing.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.venv"
python=${PYTHON:-python3}

say() { printf '[setup] %s\n' "$*"; }

# rabbitmq-server: the demo and the tests that restart a broker start private nodes of it.
if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing rabbitmq-server via apt"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    else
        say "rabbitmq-server is missing and this is not root with apt: install it to run the demo's private broker"
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
fi
say "installing the package and its test tools"
"$venv/bin/pip" install -q -e "$root[test]"

# checkov pins old versions of shared libraries (packaging), so it lives in a venv of its own.
tools="$root/.tools"
if [ ! -x "$tools/checkov/bin/checkov" ]; then
    say "installing checkov into $tools/checkov"
    "$python" -m venv "$tools/checkov"
    "$tools/checkov/bin/pip" install -q --upgrade pip
    "$tools/checkov/bin/pip" install -q 'checkov>=3.2,<4'
fi
ln -sf "$tools/checkov/bin/checkov" "$venv/bin/checkov"

"$root/scripts/install-helm.sh" "$venv"
# docker.io, debootstrap and chromium for the container tests (tests/container), as root with apt.
"$root/scripts/setup-docker.sh"

# actionlint, which lints .github/workflows in the tests: its PyPI package only downloads a release binary,
# so it is built from its Go module instead.
actionlint_version=v1.7.12
actionlint="$tools/actionlint/$actionlint_version/actionlint"
if [ ! -x "$actionlint" ] && command -v go >/dev/null 2>&1; then
    say "building actionlint $actionlint_version from its Go module"
    GOBIN=$(dirname "$actionlint") GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
        go install "github.com/rhysd/actionlint/cmd/actionlint@$actionlint_version"
fi
[ -x "$actionlint" ] && ln -sf "$actionlint" "$venv/bin/actionlint"

# helm-docs, which writes the chart README's values table (scripts/chart-docs.sh; checked by
# tests/chart/test_docs.py), built from its Go module like actionlint.
if command -v go >/dev/null 2>&1; then
    say "helm-docs"
    "$root/scripts/build-helm-docs.sh" >/dev/null
fi
say "done: activate with 'source .venv/bin/activate'"
