#!/usr/bin/env bash
# Validates Kubernetes manifests against the Kubernetes API's JSON schemas, offline:
#
#   scripts/kubeconform.sh FILE...     kubeconform -strict on FILEs (exit 1 if any is invalid)
#
# kubeconform (Go module github.com/yannh/kubeconform) normally downloads its schemas from GitHub,
# which these machines cannot reach. The same schemas ship in the PyPI package kubernetes-validate
# (one folder per Kubernetes version); this script takes the folder of $K8S_VERSION from its wheel
# and makes its references local ($id and "/api/_definitions.json" point at kubernetes.io).
# Both are cached outside the work tree ($DTX_KUBECONFORM_CACHE), so a later run takes a second.
set -euo pipefail

readonly KUBECONFORM_VERSION=v0.8.0
readonly SCHEMA_PACKAGE=kubernetes-validate==1.37.0
readonly K8S_VERSION=${DTX_K8S_VERSION:-1.34.0}
readonly CACHE=${DTX_KUBECONFORM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dtx/kubeconform}
readonly BIN=$CACHE/kubeconform-$KUBECONFORM_VERSION
readonly SCHEMAS=$CACHE/schemas-${SCHEMA_PACKAGE#*==}
readonly SCHEMA_DIR=$SCHEMAS/v$K8S_VERSION-local-strict

die() { printf 'kubeconform: %s\n' "$1" >&2; exit "${2:-1}"; }
(($# > 0)) || die "usage: scripts/kubeconform.sh FILE..." 2
mkdir -p "$CACHE"

if [[ ! -x $BIN ]]; then
  command -v go >/dev/null 2>&1 || die "go not found: install Go 1.22 or newer to build kubeconform" 3
  GOBIN=$CACHE/gobin go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2 ||
    die "go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION failed"
  mv "$CACHE/gobin/kubeconform" "$BIN"
fi

if [[ ! -f $SCHEMA_DIR/.ready ]]; then
  command -v python3 >/dev/null 2>&1 || die "python3 not found: needed to fetch the schemas (pip download $SCHEMA_PACKAGE)" 3
  rm -rf "$SCHEMAS" "$CACHE/wheel" && mkdir -p "$SCHEMAS" "$CACHE/wheel"
  python3 -m pip download --disable-pip-version-check --no-deps -q "$SCHEMA_PACKAGE" -d "$CACHE/wheel" >&2 ||
    die "pip download $SCHEMA_PACKAGE failed"
  python3 - "$CACHE"/wheel/*.whl "$K8S_VERSION" "$SCHEMA_DIR" <<'PY' || die "unpacking the schemas failed"
import json, os, sys, zipfile
wheel, version, out = sys.argv[1:4]
prefix = f"kubernetes_validate/kubernetes-json-schema/v{version}-local-strict/"
os.makedirs(out, exist_ok=True)
count = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or not name.endswith(".json"):
            continue
        schema = json.loads(z.read(name))
        # Resolve references against the file, not kubernetes.io.
        schema.pop("$id", None)
        text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
        with open(os.path.join(out, os.path.basename(name)), "w") as f:
            f.write(text)
        count += 1
if count < 100:
    sys.exit(f"only {count} schemas for Kubernetes {version} in {wheel}")
PY
  rm -rf "$CACHE/wheel"
  touch "$SCHEMA_DIR/.ready"
fi

exec "$BIN" -strict -summary -kubernetes-version "$K8S_VERSION" \
  -schema-location "$SCHEMAS/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$@"
