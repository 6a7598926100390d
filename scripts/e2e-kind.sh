#!/usr/bin/env bash
# The e2e layer with real containers, for machines with Docker that can pull images: creates a kind cluster
# (a control plane and three workers in three zones), builds the project image, loads it into the cluster,
# runs tests/e2e against it (nothing skipped: Flower's task list and the helm test pod's sum run for real),
# and deletes the cluster afterwards, whatever happened.
#   scripts/e2e-kind.sh [PYTEST ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
KIND_VERSION=${KIND_VERSION:-v0.30.0}
say() { printf '[e2e-kind] %s\n' "$*" >&2; }

./scripts/setup.sh
kind=$(command -v kind || true)
if [ -z "$kind" ]; then
    kind="$root/.tools/kind/$KIND_VERSION/kind"
    if [ ! -x "$kind" ]; then
        say "building kind $KIND_VERSION from its Go module"
        GOBIN=$(dirname "$kind") go install "sigs.k8s.io/kind@$KIND_VERSION"
    fi
fi

name="tq-e2e-$$"
kubeconfig="$root/.tools/kind-$name.kubeconfig"
image_repository=celery-rabbitmq/taskqueue
image_tag="e2e-$(git rev-parse --short HEAD)"

cleanup() { "$kind" delete cluster --name "$name" --kubeconfig "$kubeconfig" || true; rm -f "$kubeconfig"; }
trap cleanup EXIT
say "creating kind cluster $name"
"$kind" create cluster --name "$name" --kubeconfig "$kubeconfig" --wait 180s --config - <<'KIND'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
    labels: {topology.kubernetes.io/zone: zone-a}
  - role: worker
    labels: {topology.kubernetes.io/zone: zone-b}
  - role: worker
    labels: {topology.kubernetes.io/zone: zone-c}
KIND
say "building $image_repository:$image_tag"
docker build -t "$image_repository:$image_tag" -f docker/Dockerfile .
"$kind" load docker-image "$image_repository:$image_tag" --name "$name"
# The KEDA CRDs, for the scenario that scales with KEDA (the simulated cluster applies the same files).
crds="$(./scripts/build-cluster.sh --data-only | tail -n 1)/crds"
kubectl --kubeconfig "$kubeconfig" apply --server-side -f "$crds"

say "running tests/e2e on $name"
KUBECONFIG="$kubeconfig" E2E_IMAGE_REPOSITORY="$image_repository" E2E_IMAGE_TAG="$image_tag" \
    .venv/bin/pytest tests/e2e "$@"
