#!/usr/bin/env bash
# Builds promtool (Prometheus's rule checker and rule unit-test runner) from the Go module
# github.com/prometheus/prometheus, once, into .tools/promtool/<version>/bin/promtool. The chart's
# PrometheusRule is checked and unit-tested with it (tests/chart/test_alerts.py). Nothing is downloaded but
# Go modules. A second run finds the binary and does nothing. Prints its progress and, on the last line, the
# binary's path. PROMETHEUS_MODULE_VERSION v0.3xx.y is Prometheus v3.xx.y.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PROMETHEUS_MODULE_VERSION=${PROMETHEUS_MODULE_VERSION:-v0.316.0}  # Prometheus v3.16.0

dest="$root/.tools/promtool/prometheus-${PROMETHEUS_MODULE_VERSION}"
bin="$dest/bin/promtool"

# shellcheck source=scripts/lib/go-tool.sh
. "$root/scripts/lib/go-tool.sh"
go_tool_start build-promtool "$bin"

# A wrapper module requiring Prometheus at the pinned version (its own go.mod has no replace directives).
src="$dest/src"
mkdir -p "$src" "$dest/bin"
printf 'module celery-rabbitmq/promtool-build\n\ngo 1.24\n\nrequire github.com/prometheus/prometheus %s\n' \
    "$PROMETHEUS_MODULE_VERSION" >"$src/go.mod"
echo "package main" >"$src/doc.go"  # a package of its own, so go commands have a main module to work in

say "downloading the modules of github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION"
(cd "$src" && go get "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" >/dev/null)
version="3.$(echo "${PROMETHEUS_MODULE_VERSION#v0.3}" | sed -E 's/^0*([0-9]+)\./\1./')"
say "building promtool (Prometheus $version)"
(cd "$src" && go build -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$version" \
    -o "$bin.tmp" github.com/prometheus/prometheus/cmd/promtool)
mv "$bin.tmp" "$bin"
go_tool_built
"$bin" --version >&2
echo "$bin"
