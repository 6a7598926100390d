#!/usr/bin/env bash
# Builds the simulated cluster's binaries from Go modules, once, into .tools/cluster/<versions>/bin:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  from k8s.io/kubernetes
#   etcd                                                              from go.etcd.io/etcd/server/v3
#   kwok, kwokctl                                                     from sigs.k8s.io/kwok
# and beside them the data the cluster starts with, from the same projects' modules: KWOK's own stages
# (stages.yaml, storage-class.yaml) and the CRDs of the chart's optional features (crds/: KEDA's ScaledObject
# and TriggerAuthentication, the Prometheus Operator's ServiceMonitor and PrometheusRule).
# Nothing is downloaded but Go modules. A second run finds the binaries and does nothing; a run on a
# machine whose Go caches are warm only relinks. Prints its progress (a cold build takes tens of minutes).
#   scripts/build-cluster.sh              build (or check) and print the bin directory on the last line
#   scripts/build-cluster.sh --data-only  only the stages and CRDs (for kind); print their directory
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

KUBERNETES_VERSION=${KUBERNETES_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.8}   # the etcd client k8s.io/kubernetes $KUBERNETES_VERSION requires
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
KEDA_VERSION=${KEDA_VERSION:-v2.16.1}  # the oldest KEDA the chart supports
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}

key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_keda-${KEDA_VERSION}"
dest="$root/.tools/cluster/$key"
bin="$dest/bin"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl)
# The CRDs' sources, written beside them: data fetched by an older script (fewer CRDs) is fetched again,
# without rebuilding the binaries (the CRD versions are not part of $key).
crd_versions="keda-$KEDA_VERSION prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"

say() { printf '[build-cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

binaries_complete() {
    for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || return 1; done
}
data_complete() {
    [ -s "$dest/stages.yaml" ] && [ -s "$dest/storage-class.yaml" ] \
        && [ "$(cat "$dest/crds/versions.txt" 2>/dev/null)" = "$crd_versions" ]
}
module_dir() { go mod download -json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'; }
if [ "${1:-}" != --data-only ] && binaries_complete && data_complete; then
    echo "$bin"
    exit 0
fi
command -v go >/dev/null || { say "Go is needed (go.dev): none on PATH"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$bin" "$dest/src"
kwok_src="$dest/src/kwok"
mkdir -p "$kwok_src"
printf 'module celery-rabbitmq/cluster-build/kwok\n\ngo 1.24\n\nrequire sigs.k8s.io/kwok %s\n' \
    "$KWOK_VERSION" >"$kwok_src/go.mod"
echo "package main" >"$kwok_src/doc.go"

fetch_data() {
    # KWOK's stages (supplying any replaces all its defaults, so all are supplied) and the CRDs.
    kwok_dir=$(cd "$kwok_src" && module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")
    stages=(node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
            pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml
            volume/fast/pvc-provision.yaml volume/fast/pv-bind.yaml volume/fast/pvc-delete.yaml
            volume/fast/pv-delete.yaml)
    for s in "${stages[@]}"; do echo "---"; cat "$kwok_dir/kustomize/stage/$s"; done >"$dest/stages.yaml.tmp"
    mv "$dest/stages.yaml.tmp" "$dest/stages.yaml"
    cp "$kwok_dir/kustomize/stage/volume/fast/storage-class.yaml" "$dest/storage-class.yaml"
    say "fetching the KEDA $KEDA_VERSION CRDs"
    keda_dir=$(cd "$kwok_src" && module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")
    # A directory of this run's own (test sessions may fetch at the same time), renamed into place.
    tmp=$(mktemp -d "$dest/crds.XXXXXX")
    cp "$keda_dir"/config/crd/bases/keda.sh_{scaledobjects,triggerauthentications}.yaml "$tmp/"
    say "fetching the Prometheus Operator $PROMETHEUS_OPERATOR_VERSION CRDs"
    operator_dir=$(cd "$kwok_src" \
        && module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
    cp "$operator_dir"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml \
        "$tmp/"
    chmod u+w "$tmp"/*.yaml && chmod 755 "$tmp"  # the module cache is read-only; mktemp makes it 700
    echo "$crd_versions" >"$tmp/versions.txt"  # kubectl apply -f reads only .yaml/.yml/.json
    rm -rf "$dest/crds" && mv -T "$tmp" "$dest/crds" 2>/dev/null || rm -rf "$tmp"  # another run won: fine
}

if [ "${1:-}" = --data-only ]; then
    data_complete || fetch_data
    echo "$dest"
    exit 0
fi
data_complete || fetch_data
if binaries_complete; then
    echo "$bin"
    exit 0
fi
start=$(date +%s)

# --- Kubernetes: a wrapper module that replaces each staging module k8s.io/<name> (a ./staging path in
# the release's own go.mod) by its published v0.<minor>.<patch>.
k8s_src="$dest/src/kubernetes"
mkdir -p "$k8s_src"
say "resolving k8s.io/kubernetes@$KUBERNETES_VERSION"
gomod=$(cd "$k8s_src" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')
staging_version="v0.${KUBERNETES_VERSION#v1.}"
{
    echo "module celery-rabbitmq/cluster-build/kubernetes"
    echo
    echo "go $(awk '$1 == "go" {print $2; exit}' "$gomod")"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    awk -v v="$staging_version" '$2 == "=>" && $3 ~ /^\.\/staging\// {print "replace " $1 " => " $1 " " v}' "$gomod"
} >"$k8s_src/go.mod"
echo "package main" >"$k8s_src/doc.go"  # a package of its own, so go commands have a main module to work in
say "$(grep -c '^replace' "$k8s_src/go.mod") staging modules replaced by their $staging_version releases"

minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
packages=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do packages+=("k8s.io/kubernetes/cmd/$b"); done
say "downloading the modules of ${packages[*]}"
# Each at the pinned version: a bare package path would let go get move to the newest release.
(cd "$k8s_src" && go get "${packages[@]/%/@$KUBERNETES_VERSION}" >/dev/null)
for p in "${packages[@]}"; do
    [ -x "$bin/${p##*/}" ] && continue
    say "building ${p##*/} (Go compiles shared packages once; the first takes longest)"
    (cd "$k8s_src" && go build -trimpath -ldflags "$ldflags" -o "$bin/${p##*/}.tmp" "$p")
    mv "$bin/${p##*/}.tmp" "$bin/${p##*/}"
done

# --- etcd: its server module's main package, in a wrapper module (its own go.mod has local replaces).
etcd_src="$dest/src/etcd"
mkdir -p "$etcd_src"
printf 'module celery-rabbitmq/cluster-build/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$ETCD_VERSION" >"$etcd_src/go.mod"
echo "package main" >"$etcd_src/doc.go"
[ -x "$bin/etcd" ] || { say "building etcd $ETCD_VERSION"
(cd "$etcd_src" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null \
    && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
mv "$bin/etcd.tmp" "$bin/etcd"; }

# --- KWOK: the node and pod simulator, and kwokctl, which runs the cluster from the binaries above.
say "building kwok and kwokctl $KWOK_VERSION"
(cd "$kwok_src" && go get "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION" >/dev/null)
for b in kwok kwokctl; do
    [ -x "$bin/$b" ] && continue
    (cd "$kwok_src" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
        -o "$bin/$b.tmp" "sigs.k8s.io/kwok/cmd/$b")
    mv "$bin/$b.tmp" "$bin/$b"
done

say "built in $(( $(date +%s) - start )) s: $(du -sh "$bin" | cut -f1) of binaries in $bin"
"$bin/kube-apiserver" --version >&2
echo "$bin"
