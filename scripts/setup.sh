#!/usr/bin/env bash
# Set up everything `make test` and `make demo` need, from nothing, idempotently:
#   1. Debian packages (container runtime, CNI plugins, Prometheus, wrk, lua) if missing;
#   2. .venv/ with the project installed (editable) and its test extras;
#   3. the local cluster's binaries, built from Go modules into ~/.cache/modeldeploy
#      (first run: see README for how long), and our container images.
# A second run finds everything in place and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

DEBIAN_PACKAGES=(
    containerd runc containernetworking-plugins iptables conntrack iproute2 podman
    debootstrap wrk lua5.4 openssl python3-venv
    # promtool for the rule unit tests (the cluster's own Prometheus is built from Go: the
    # packaged 2.42 lacks Kubernetes discovery), and a C toolchain for the static pause image.
    prometheus gcc libc6-dev
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    # Debian's prometheus package would start a system service; policy-rc.d keeps it off.
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
    $SUDO rm -f /usr/sbin/policy-rc.d
else
    say "Debian packages: all present"
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
    say "creating .venv and installing modeldeploy with its test extras"
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    # An earlier layout needed a start-up hook here; the current one needs none.
    rm -f .venv/lib/python3*/site-packages/00-modeldeploy-stdlib-operator.pth
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[server,operator,test]"
    rm -f .venv/.installed-*
    touch "$stamp"
else
    say ".venv: up to date"
fi

if [ "${MODELDEPLOY_SKIP_CLUSTER_BUILD:-}" != 1 ] && [ -f e2e/cluster/__main__.py ]; then
    say "local cluster: binaries and images (cached under ~/.cache/modeldeploy)"
    .venv/bin/python -m e2e.cluster build
fi
