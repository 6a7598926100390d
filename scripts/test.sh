#!/usr/bin/env bash
# The one command that sets up a fresh machine and runs every check: lint, types, and the pytest suite:
# unit, chart, integration (against a private RabbitMQ node the session starts and stops), and e2e (on a
# simulated Kubernetes cluster the session starts and stops; its binaries are built from Go modules the
# first time, which takes tens of minutes and prints its progress; KUBECONFIG=... uses a cluster of yours).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
if [ -z "${KUBECONFIG:-}" ]; then
    echo "[test] cluster binaries"; ./scripts/build-cluster.sh >/dev/null
fi
echo "[test] promtool"; ./scripts/build-promtool.sh >/dev/null  # the PrometheusRule's unit tests
echo "[test] ruff";  ruff check src tests benchmarks scripts
echo "[test] mypy";  mypy
echo "[test] pytest"; pytest "$@"
