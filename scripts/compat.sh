#!/usr/bin/env bash
# The dtm-client compatibility suite: dtm's own Go client (github.com/dtm-labs/client, in
# test/compat/go) and Python client (PyPI dtmcli, in test/compat/python) against a running dtx.
# test/e2e/compat.test.ts runs it all; this script builds what it needs, outside git's view:
#
#   .cache/compat/gobin/compat.test   the Go cases (`go test -c`; Go's build cache makes a
#                                     rebuild with no change take a second or two)
#   .cache/compat/venv                a venv with test/compat/python/requirements.txt, rebuilt
#                                     only when that file or the Python version changes
#
# Usage:
#   scripts/compat.sh [setup]          build both
#   scripts/compat.sh go [flags]       run the Go cases      (needs DTX_HTTP_URL, DTX_GRPC_ADDR for TestGrpc*)
#   scripts/compat.sh python [flags]   run the Python cases  (needs DTX_HTTP_URL)
# dtx must run with DTX_TEST_CONTROL=1 (the cases drive its cron through /api/dtx/test/cron).
# Missing Go or Python is an error (exit 3) that says what to install: never a silent pass.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.cache/compat"
GO_DIR="$ROOT/test/compat/go"
PY_DIR="$ROOT/test/compat/python"
GO_BIN="$CACHE/gobin/compat.test"
VENV="$CACHE/venv"
REQS="$PY_DIR/requirements.txt"
readonly GO_MIN_MINOR=22 # go.mod says go 1.22 (net/http patterns)

say() { printf 'compat: %s\n' "$*"; }
die() { printf 'compat: %s\n' "$1" >&2; exit "${2:-1}"; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

need_go() {
  command -v go >/dev/null 2>&1 ||
    die "go not found: install Go 1.${GO_MIN_MINOR} or newer (https://go.dev/dl/, or 'apt-get install golang-go' where Debian's is new enough) and put it on PATH" 3
  local minor
  minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  [[ $minor =~ ^[0-9]+$ && $minor -ge $GO_MIN_MINOR ]] ||
    die "$(go env GOVERSION) is too old: the Go cases need Go 1.${GO_MIN_MINOR} or newer" 3
}

need_python() {
  command -v python3 >/dev/null 2>&1 ||
    die "python3 not found: install Python 3.9 or newer with venv and pip ('apt-get install python3 python3-venv python3-pip')" 3
  python3 -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null ||
    die "$(python3 --version 2>&1) cannot build the venv: need Python 3.9 or newer with the venv and ensurepip modules ('apt-get install python3-venv')" 3
}

build_go() {
  need_go
  local t
  t=$(now)
  mkdir -p "$(dirname "$GO_BIN")"
  # -mod=readonly: go.mod and go.sum are pinned; the first build downloads the modules.
  (cd "$GO_DIR" && GOFLAGS="${GOFLAGS:-} -mod=readonly" go test -c -o "$GO_BIN" .) ||
    die "building the Go cases failed (go test -c in test/compat/go)"
  say "go cases built: ${GO_BIN#"$ROOT"/} ($(took "$t"), $(go env GOVERSION))"
}

build_venv() {
  need_python
  local t want have=""
  t=$(now)
  want=$( { sha256sum "$REQS" | cut -d' ' -f1; python3 --version 2>&1; } | sha256sum | cut -d' ' -f1)
  [[ -f $VENV/.requirements.sha256 ]] && have=$(<"$VENV/.requirements.sha256")
  if [[ $have == "$want" && -x $VENV/bin/python ]]; then
    say "venv up to date: ${VENV#"$ROOT"/}"
    return
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed ('apt-get install python3-venv'?)" 3
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQS" ||
    { rm -rf "$VENV"; die "pip install -r test/compat/python/requirements.txt failed"; }
  printf '%s\n' "$want" >"$VENV/.requirements.sha256"
  say "venv built: ${VENV#"$ROOT"/} ($(took "$t"), $("$VENV/bin/python" --version 2>&1))"
}

need_dtx() {
  [[ -n ${DTX_HTTP_URL:-} ]] || die "DTX_HTTP_URL is not set: start dtx with DTX_TEST_CONTROL=1 and pass its URL" 2
}

run_go() {
  need_dtx
  [[ -x $GO_BIN ]] || build_go
  local skip=()
  # Without DTX_GRPC_ADDR the TestGrpc* cases cannot run: leave them out, and say so.
  if [[ -z ${DTX_GRPC_ADDR:-} ]]; then
    say "DTX_GRPC_ADDR is not set: not running the TestGrpc* cases"
    skip=(-test.skip '^TestGrpc')
  fi
  exec "$GO_BIN" -test.v -test.count=1 -test.timeout=10m "${skip[@]}" "$@"
}

run_python() {
  need_dtx
  [[ -x $VENV/bin/python ]] || build_venv
  cd "$PY_DIR"
  # No bytecode or pytest cache in the work tree.
  PYTHONDONTWRITEBYTECODE=1 exec "$VENV/bin/python" -m pytest -v -p no:cacheprovider "$@" test_dtmcli.py
}

case "${1:-setup}" in
  setup)
    t0=$(now)
    build_go
    build_venv
    say "setup done in $(took "$t0")"
    ;;
  go) shift; run_go "$@" ;;
  python) shift; run_python "$@" ;;
  -h | --help | help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (setup, go, python)" 2 ;;
esac
