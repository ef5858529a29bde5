#!/usr/bin/env bash
# Builds kube-apiserver for the end-to-end tests from Debian's own `kubernetes` source package
# (bookworm ships 1.20.5+really1.20.2-1.1+deb12u1: upstream v1.20.2 plus Debian's patches; its
# binary package holds only kubectl, but the source tree is the whole of Kubernetes) with
# Debian's golang-go (1.19 on bookworm, which builds this tree as it is).
#
# The binary is cached OUTSIDE the repository, so it is built once per machine and every fresh
# clone (CI) finds it:
#   $KUBE_APISERVER_CACHE_DIR/kube-apiserver-v1.20.2/kube-apiserver
# with KUBE_APISERVER_CACHE_DIR defaulting to /var/cache/ingress-sidecar (root, or when that is
# writable), else ${XDG_CACHE_HOME:-~/.cache}/ingress-sidecar.
#
# Usage:
#   scripts/kube-apiserver/build.sh               build unless cached; print the binary's path
#   scripts/kube-apiserver/build.sh --print-path  print where the binary is (or would be); no build
#
# When not cached, it needs root (or sudo) for apt-get: it adds a deb-src entry for the release's
# main component if apt has none, installs golang-go, rsync, make, jq and dpkg-dev, runs
# `apt-get source kubernetes` into .go/debian-src/, links the tree into the GOPATH
# .go/src/k8s.io/kubernetes (as debian/rules does), and runs `make WHAT=cmd/kube-apiserver` there
# (about 4 minutes on 2 cores). .go/ is gitignored; delete it to reclaim ~2 GB once built.
set -euo pipefail

KUBE_VERSION=1.20.2   # upstream version expected inside Debian's source package

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ -n "${KUBE_APISERVER_CACHE_DIR:-}" ]; then
  cache_root=$KUBE_APISERVER_CACHE_DIR
elif [ "$(id -u)" = 0 ] || [ -w /var/cache/ingress-sidecar ] || { [ ! -e /var/cache/ingress-sidecar ] && [ -w /var/cache ]; }; then
  cache_root=/var/cache/ingress-sidecar
else
  cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/ingress-sidecar
fi
cache_dir=$cache_root/kube-apiserver-v$KUBE_VERSION
binary=$cache_dir/kube-apiserver

if [ "${1:-}" = --print-path ]; then
  echo "$binary"
  exit 0
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--print-path]" >&2
  exit 2
fi

log() { echo "kube-apiserver build: $*" >&2; }

if [ -x "$binary" ]; then
  log "cached: $binary ($(cat "$cache_dir/debian-version" 2>/dev/null || echo '?'))"
  echo "$binary"
  exit 0
fi

mkdir -p "$cache_dir"
# One build at a time per machine (two CI clones or a developer and CI at once).
exec 9>"$cache_root/.build.lock"
flock 9
if [ -x "$binary" ]; then
  log "cached (built meanwhile): $binary"
  echo "$binary"
  exit 0
fi

started=$(date +%s)
if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

# --- Debian source package -------------------------------------------------------------------
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
log "apt-get update"
"${sudo[@]}" apt-get update -qq
if ! apt-cache showsrc kubernetes >/dev/null 2>&1; then
  src_list=/etc/apt/sources.list.d/ingress-sidecar-deb-src.sources
  log "no deb-src entry for $codename main: adding $src_list"
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$codename" | "${sudo[@]}" tee "$src_list" >/dev/null
  "${sudo[@]}" apt-get update -qq
fi
deb_version=$(apt-cache showsrc kubernetes | awk '/^Version:/ { print $2 }' | sort -V | tail -n1)
if [ -z "$deb_version" ]; then
  log "apt has no source package 'kubernetes' for $codename (apt-cache showsrc kubernetes is empty)"
  exit 1
fi
case "$deb_version" in
  "$KUBE_VERSION"-* | *really"$KUBE_VERSION"-*) ;;
  *) log "Debian's kubernetes source is $deb_version, not upstream $KUBE_VERSION: update KUBE_VERSION in $0 and check the tests"; exit 1 ;;
esac
log "Debian source package: kubernetes $deb_version"

log "installing build dependencies: golang-go rsync make jq dpkg-dev"
"${sudo[@]}" apt-get install -y -qq --no-install-recommends golang-go rsync make jq dpkg-dev >/dev/null

gopath=$repo/.go
src_parent=$gopath/debian-src
upstream_dir=kubernetes-${deb_version%-*}   # dpkg-source's directory: <name>-<upstream version>
mkdir -p "$src_parent"
if [ ! -f "$src_parent/$upstream_dir/.ingress-sidecar-$deb_version" ]; then
  log "apt-get source kubernetes=$deb_version into $src_parent"
  rm -rf "${src_parent:?}/$upstream_dir"
  # --only-source: the name is the source package's; the files are written by the user running
  # this (apt's own sandbox user cannot write into the work tree, hence the harmless warning).
  (cd "$src_parent" && apt-get source -qq --only-source "kubernetes=$deb_version" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  [ -f "$src_parent/$upstream_dir/Makefile" ] || { log "apt-get source did not unpack $src_parent/$upstream_dir"; exit 1; }
  touch "$src_parent/$upstream_dir/.ingress-sidecar-$deb_version"
fi

# The GOPATH layout debian/rules uses: .go/src/k8s.io/kubernetes -> the unpacked tree.
mkdir -p "$gopath/src/k8s.io"
ln -sfn "../../debian-src/$upstream_dir" "$gopath/src/k8s.io/kubernetes"

# --- build -----------------------------------------------------------------------------------
log "$(go version); make WHAT=cmd/kube-apiserver (about 4 minutes on 2 cores)"
cd "$gopath/src/k8s.io/kubernetes"
# CGO_ENABLED=0 as in debian/rules: a static binary. GOCACHE stays under .go/ with the rest.
env GOPATH="$gopath" GOCACHE="$gopath/cache" CGO_ENABLED=0 GOFLAGS= make WHAT=cmd/kube-apiserver >&2
built=$gopath/src/k8s.io/kubernetes/_output/bin/kube-apiserver
"$built" --version >&2

install -m 0755 "$built" "$binary.tmp"
printf '%s\n' "$deb_version" > "$cache_dir/debian-version"
go version > "$cache_dir/go-version"
mv -f "$binary.tmp" "$binary"
log "built in $(( $(date +%s) - started )) s; cached: $binary"
echo "$binary"
