#!/usr/bin/env bash
# The one command that sets up a fresh machine and runs every check: lint, types, and the pytest suite
# (unit, chart, integration against a private RabbitMQ node the session starts and stops, e2e on a live cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "[test] ruff";  ruff check src tests benchmarks
echo "[test] mypy";  mypy
echo "[test] pytest"; pytest "$@"
