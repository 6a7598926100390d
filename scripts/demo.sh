#!/usr/bin/env bash
# Sets up a fresh machine and runs the original example on it: broker, worker, producer and Flower.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/taskqueue demo "$@"
