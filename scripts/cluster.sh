#!/usr/bin/env bash
# A real Kubernetes control plane on this machine, with simulated nodes: kube-apiserver, kube-controller-
# manager, kube-scheduler and etcd built from Go modules (scripts/build-cluster.sh), run by kwokctl's binary
# runtime; KWOK plays three nodes in three zones, makes pods Running and Ready, completes bare pods that run
# to completion (helm test), and provisions PersistentVolumes. No container runs: images are never pulled.
#
#   scripts/cluster.sh up [NAME]     build if needed, start the cluster, print its kubeconfig path
#   scripts/cluster.sh down [NAME]   stop every process of the cluster (kwokctl, by PID) and remove it
#   scripts/cluster.sh env [NAME]    print the exports that point kubectl and helm at it
# NAME defaults to celery-rabbitmq. State lives in .tools/kwok/clusters/NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
command=${1:-}
name=${2:-celery-rabbitmq}
here="$root/scripts/cluster"
say() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

bin=$("$root/scripts/build-cluster.sh" | tail -n 1)
dist=$(dirname "$bin")
export KWOK_WORKDIR="$root/.tools/kwok"
export KWOK_KUBECTL_BINARY="$bin/kubectl"
kubeconfig="$KWOK_WORKDIR/clusters/$name/kubeconfig.yaml"
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

nodes() {
    local i=0
    for zone in zone-a zone-b zone-c; do
        i=$((i + 1))
        cat <<NODE
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-node-$i
    topology.kubernetes.io/region: local
    topology.kubernetes.io/zone: $zone
    type: kwok
status:
  allocatable: {cpu: "8", memory: 32Gi, pods: "110"}
  capacity: {cpu: "8", memory: 32Gi, pods: "110"}
NODE
    done
}

case "$command" in
up)
    if [ -f "$kubeconfig" ] && kubectl get --raw /readyz >/dev/null 2>&1; then
        say "cluster $name is already running"
        # CRDs added to the build since it started (server-side apply: idempotent).
        kubectl apply --server-side -f "$dist/crds/" >/dev/null
        kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
        echo "$kubeconfig"
        exit 0
    fi
    started=$(date +%s.%N)
    say "starting cluster $name (kwokctl, binary runtime)"
    # Supplying stages replaces KWOK's defaults: the defaults (node, pod, volume) come from the build's
    # copy of KWOK's own stage files, plus one stage of ours (scripts/cluster/pod-complete-unowned.yaml).
    "$bin/kwokctl" create cluster --name "$name" --runtime binary \
        --kube-apiserver-binary "$bin/kube-apiserver" \
        --kube-controller-manager-binary "$bin/kube-controller-manager" \
        --kube-scheduler-binary "$bin/kube-scheduler" \
        --kwok-controller-binary "$bin/kwok" \
        --etcd-binary "$bin/etcd" \
        --config "$dist/stages.yaml" --config "$here/pod-complete-unowned.yaml" \
        --wait 120s --timeout 180s --quiet-pull >&2
    nodes | kubectl apply -f - >/dev/null
    kubectl apply --server-side -f "$dist/storage-class.yaml" >/dev/null
    kubectl apply --server-side -f "$dist/crds/" >/dev/null
    kubectl wait --for=condition=Ready node --all --timeout=60s >/dev/null
    kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
    say "cluster $name is up in $(python3 -c "import time; print(round(time.time() - $started, 1))") s: $(kubectl get nodes --no-headers | wc -l) nodes, $("$bin/kube-apiserver" --version)"
    echo "$kubeconfig"
    ;;
down)
    if [ -d "$KWOK_WORKDIR/clusters/$name" ]; then
        "$bin/kwokctl" delete cluster --name "$name" >&2
    fi
    ;;
env)
    echo "export KUBECONFIG=$kubeconfig"
    echo "export PATH=$bin:\$PATH"
    ;;
*)
    echo "usage: $0 up|down|env [NAME]" >&2
    exit 2
    ;;
esac
