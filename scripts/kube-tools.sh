#!/usr/bin/env bash
# kube-tools.sh installs the real Kubernetes parts that Keyport's tests run against
# (see ../shared/KUBE.md): etcd from Debian, kube-apiserver and kube-controller-manager
# built from the Go module proxy, kwok, helm and MinIO (a real S3-compatible server for
# the recording upload tests) built with `go install`, Dex (a real OIDC provider for the
# SSO tests) built from its module's source, Debian's chromium for the invite
# page's browser test, and (KUBE_E2E=1, `make kube-e2e`) the upstream e2e.test binary for
# the conformance tests.
# Everything lands in $KEYPORT_CACHE (default $HOME/.cache/keyport); each tool has a
# version stamp, so a second run does nothing.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:?set by the Makefile}"
KWOK_VERSION="${KWOK_VERSION:?set by the Makefile}"
HELM_VERSION="${HELM_VERSION:?set by the Makefile}"
MINIO_VERSION="${MINIO_VERSION:?set by the Makefile}"
DEX_VERSION="${DEX_VERSION:?set by the Makefile}"
DEX_API_VERSION="${DEX_API_VERSION:?set by the Makefile}"
CACHE="${KEYPORT_CACHE:-$HOME/.cache/keyport}"
BIN="$CACHE/bin"
STAMPS="$CACHE/stamps"
mkdir -p "$BIN" "$STAMPS"

log() { printf 'kube-tools: %s\n' "$*" >&2; }
stamped() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp() { printf '%s' "$2" >"$STAMPS/$1"; }

apt_install() {
  # apt_install PKG... installs Debian packages that are missing.
  local missing=()
  for p in "$@"; do
    # A removed package can linger as "config-files": only "install ok installed" counts.
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "need root to install: ${missing[*]} (run: sudo apt-get install -y ${missing[*]})"
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  if [ ! -f "$STAMPS/apt-updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    touch "$STAMPS/apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# system_path NAME: NAME on PATH outside $BIN (the Makefile puts $BIN first, and a link
# found there would be made to point at itself).
system_path() {
  PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$BIN" | paste -sd: -) command -v "$1"
}

# etcd (Debian bookworm ships 3.4.x as etcd-server).
if ! system_path etcd >/dev/null 2>&1; then
  apt_install etcd-server
fi
etcd_path=$(system_path etcd) || { log "etcd is still missing after installing etcd-server"; exit 1; }
ln -sf "$etcd_path" "$BIN/etcd"

# Chromium for the browser test of the invite page (driven headless by chromedp).
if ! system_path chromium >/dev/null 2>&1; then
  apt_install chromium
fi
chromium_path=$(system_path chromium) || { log "chromium is still missing after installing it"; exit 1; }
ln -sf "$chromium_path" "$BIN/chromium"

# kube-apiserver and kube-controller-manager (and kubectl when the machine has none),
# built from a throwaway module that pins every staging module k8s.io/kubernetes replaces.
# The version ldflags are what the upstream release build sets: without them the API
# server reports v0.0.0-master and version-gated e2e tests fail.
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
want_k8s="k8s-$K8S_VERSION-versioned"
if ! stamped k8s "$want_k8s" || [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kube-controller-manager" ]; then
  log "building kube-apiserver and kube-controller-manager $K8S_VERSION (about 10 minutes the first time)"
  mod="$CACHE/build/k8s-$K8S_VERSION"
  rm -rf "$mod" && mkdir -p "$mod"
  staging_ver="v0.${K8S_VERSION#v1.}"
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module keyport.local/k8sbuild"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$gomod" | awk -v v="$staging_ver" '{print "replace " $1 " => " $1 " " v}'
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  (cd "$mod" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" >/dev/null 2>&1 || go get "k8s.io/kubernetes@$K8S_VERSION")
  (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$mod" && CGO_ENABLED=0 go build -o "$BIN/" -ldflags "$ldflags" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
  stamp k8s "$want_k8s"
fi

if ! command -v kubectl >/dev/null 2>&1 && [ ! -x "$BIN/kubectl" ]; then
  log "building kubectl $K8S_VERSION (no kubectl on this machine)"
  mod="$CACHE/build/k8s-$K8S_VERSION"
  (cd "$mod" && go get "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" >/dev/null 2>&1 || true)
  (cd "$mod" && CGO_ENABLED=0 go build -o "$BIN/" -ldflags "$ldflags" k8s.io/kubernetes/cmd/kubectl)
fi
if command -v kubectl >/dev/null 2>&1 && [ ! -x "$BIN/kubectl" ]; then
  ln -sf "$(command -v kubectl)" "$BIN/kubectl"
fi

# kwok, plus the stage files shipped in its module.
want_kwok="kwok-$KWOK_VERSION"
if ! stamped kwok "$want_kwok" || [ ! -x "$BIN/kwok" ]; then
  log "building kwok $KWOK_VERSION"
  GOBIN="$BIN" CGO_ENABLED=0 go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rm -rf "$CACHE/kwok-stages" && mkdir -p "$CACHE/kwok-stages"
  cp -r "$dir/kustomize/stage/node/fast" "$CACHE/kwok-stages/node-fast"
  cp -r "$dir/kustomize/stage/node/heartbeat" "$CACHE/kwok-stages/node-heartbeat"
  cp -r "$dir/kustomize/stage/pod/fast" "$CACHE/kwok-stages/pod-fast"
  chmod -R u+w "$CACHE/kwok-stages"
  stamp kwok "$want_kwok"
fi

# helm.
want_helm="helm-$HELM_VERSION"
if ! stamped helm "$want_helm" || [ ! -x "$BIN/helm" ]; then
  log "building helm $HELM_VERSION"
  GOBIN="$BIN" CGO_ENABLED=0 go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  stamp helm "$want_helm"
fi

# MinIO, a real S3-compatible server for the recording upload tests
# (internal/testenv/minioenv). The module has no replace directives, so `go install` works.
want_minio="minio-$MINIO_VERSION"
if ! stamped minio "$want_minio" || [ ! -x "$BIN/minio" ]; then
  log "building minio $MINIO_VERSION"
  GOBIN="$BIN" CGO_ENABLED=0 go install "github.com/minio/minio@$MINIO_VERSION"
  stamp minio "$want_minio"
fi

# Dex, a real OpenID Connect provider for the SSO tests (internal/testenv/dexenv). Its
# go.mod replaces github.com/dexidp/dex/api/v2 with ./api/v2, a nested module that the
# module zip leaves out, so `go install` refuses it: the source is copied out of the
# module cache with api/v2 put back, and built as the main module (about 1.5 minutes).
want_dex="dex-$DEX_VERSION-$DEX_API_VERSION"
if ! stamped dex "$want_dex" || [ ! -x "$BIN/dex" ]; then
  log "building dex $DEX_VERSION"
  src="$CACHE/build/dex-$DEX_VERSION"
  rm -rf "$src"
  mkdir -p "$CACHE/build"
  dir=$(go mod download -json "github.com/dexidp/dex@$DEX_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  api=$(go mod download -json "github.com/dexidp/dex/api/v2@$DEX_API_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] && [ -n "$api" ] || { log "go mod download did not give dex's source directories"; exit 1; }
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  rm -rf "$src/api/v2"
  mkdir -p "$src/api"
  cp -r "$api" "$src/api/v2"
  chmod -R u+w "$src/api/v2"
  (cd "$src" && CGO_ENABLED=0 go build -o "$BIN/dex" ./cmd/dex)
  rm -rf "$src"
  stamp dex "$want_dex"
fi

# The upstream e2e test binary, for the conformance selection `make test` runs and for
# `make conformance` (KUBE_E2E=1, `make kube-e2e`; the quickstart does not need it): built
# from the same throwaway module as the control plane, with the same version ldflags (the
# framework checks them).
want_e2e="e2e-$K8S_VERSION"
if [ "${KUBE_E2E:-0}" = 1 ] && { ! stamped e2e "$want_e2e" || [ ! -x "$BIN/e2e.test" ]; }; then
  log "building the e2e test binary $K8S_VERSION (about 16 minutes the first time)"
  mod="$CACHE/build/k8s-$K8S_VERSION"
  [ -f "$mod/go.mod" ] || { log "$mod/go.mod is missing: remove $STAMPS/k8s and run make kube-tools"; exit 1; }
  (cd "$mod" && go get -t "k8s.io/kubernetes/test/e2e@$K8S_VERSION" >/dev/null 2>&1 || true)
  (cd "$mod" && CGO_ENABLED=0 go test -c -o "$BIN/e2e.test" -ldflags "$ldflags" k8s.io/kubernetes/test/e2e)
  stamp e2e "$want_e2e"
fi

log "ready in $BIN"
