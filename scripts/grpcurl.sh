#!/usr/bin/env bash
# grpcurl (Go module github.com/fullstorydev/grpcurl, the version pinned in test/grpcurl/go.mod),
# built the way scripts/compat.sh builds dtm's Go client: `go build -mod=readonly` into .cache/,
# outside git's view (the first build downloads the modules; later ones take a second or two).
#
# Usage:
#   scripts/grpcurl.sh build         build .cache/tools/grpcurl and print its path
#   scripts/grpcurl.sh [args...]     build if needed, then run grpcurl with the arguments
# test/e2e/grpcurl.test.ts runs the README's grpcurl commands with it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/.cache/tools/grpcurl"
readonly GO_MIN_MINOR=22

die() { printf 'grpcurl.sh: %s\n' "$1" >&2; exit "${2:-1}"; }

build() {
  command -v go >/dev/null 2>&1 ||
    die "go not found: install Go 1.${GO_MIN_MINOR} or newer (https://go.dev/dl/) and put it on PATH" 3
  mkdir -p "$(dirname "$BIN")"
  (cd "$ROOT/test/grpcurl" && GOFLAGS="${GOFLAGS:-} -mod=readonly" go build -o "$BIN" github.com/fullstorydev/grpcurl/cmd/grpcurl) ||
    die "building grpcurl failed (go build in test/grpcurl)"
}

case "${1:-}" in
  build) build; printf '%s\n' "$BIN" ;;
  *) [[ -x $BIN ]] || build; exec "$BIN" "$@" ;;
esac
