#!/usr/bin/env bash
# Builds helm-docs (the chart README's values table from values.yaml's `# --` comments) from its Go module
# github.com/norwoodj/helm-docs, once, into .tools/helm-docs/<version>/helm-docs. scripts/chart-docs.sh
# regenerates the README with it and tests/chart/test_docs.py checks the committed one. Nothing is
# downloaded but Go modules. A second run finds the binary and does nothing. Prints its progress and, on the
# last line, the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

HELM_DOCS_VERSION=${HELM_DOCS_VERSION:-v1.14.2}

dest="$root/.tools/helm-docs/$HELM_DOCS_VERSION"
bin="$dest/helm-docs"

say() { printf '[build-helm-docs %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi
command -v go >/dev/null || { say "Go is needed (go.dev): none on PATH"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
start=$(date +%s)
mkdir -p "$dest"
say "building github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
GOBIN="$dest" go install -trimpath -ldflags "-s -w" \
    "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
say "built in $(( $(date +%s) - start )) s: $(du -sh "$bin" | cut -f1) at $bin"
echo "$bin"
