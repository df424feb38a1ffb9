#!/usr/bin/env bash
# kubeconfig.sh: write a kubeconfig for the test API server (tests/k8s/apiserver.py).
#   tests/k8s/kubeconfig.sh OUT SERVER_URL [TOKEN] [NAMESPACE] [CA_FILE]
# e.g. tests/k8s/kubeconfig.sh /tmp/kc http://127.0.0.1:6443 "" default
# kubectl sends a token only over https: start apiserver.py with --tls-cert/--tls-key and
# pass the certificate as CA_FILE (tests/k8s/kube_harness.py does all of this).
set -euo pipefail
out="${1:?usage: kubeconfig.sh OUT SERVER_URL [TOKEN] [NAMESPACE] [CA_FILE]}"
server="${2:?server URL}"
token="${3:-}"
ns="${4:-default}"
ca="${5:-}"
{
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    echo "- name: sluice-test"
    echo "  cluster:"
    echo "    server: $server"
    [ -z "$ca" ] || echo "    certificate-authority: $ca"
    echo "users:"
    echo "- name: sluice-test"
    if [ -n "$token" ]; then
        echo "  user:"
        echo "    token: $token"
    else
        echo "  user: {}"
    fi
    echo "contexts:"
    echo "- name: sluice-test"
    echo "  context:"
    echo "    cluster: sluice-test"
    echo "    user: sluice-test"
    echo "    namespace: $ns"
    echo "current-context: sluice-test"
} >"$out"
