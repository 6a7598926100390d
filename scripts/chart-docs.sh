#!/usr/bin/env bash
# Regenerates the chart's documentation from its values.yaml, the one source: README.md's values table
# (helm-docs, from the `# --` comments, into README.md.gotmpl's hand-written sections) and values.schema.json
# (scripts/values_schema.py, from the keys, their defaults and their `# @schema` comments). Run it after
# editing values.yaml or README.md.gotmpl and commit the results: tests/chart/test_docs.py fails when the
# committed files differ from what this writes. Usage: scripts/chart-docs.sh [CHART_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
chart=$(cd "${1:-charts/celery-rabbitmq}" && pwd)
python=${PYTHON:-$(pwd)/.venv/bin/python}
[ -x "$python" ] || python=python3

say() { printf '[chart-docs] %s\n' "$*" >&2; }

helm_docs=$(scripts/build-helm-docs.sh)
say "README.md from values.yaml and README.md.gotmpl ($helm_docs)"
"$helm_docs" --chart-search-root "$chart" --template-files README.md.gotmpl --sort-values-order file \
    --log-level warning
say "values.schema.json from values.yaml"
"$python" scripts/values_schema.py "$chart"
