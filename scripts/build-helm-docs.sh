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

# shellcheck source=scripts/lib/go-tool.sh
. "$root/scripts/lib/go-tool.sh"
go_tool_start build-helm-docs "$bin"
mkdir -p "$dest"
say "building github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
GOBIN="$dest" go install -trimpath -ldflags "-s -w" \
    "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
go_tool_built
echo "$bin"
