#!/usr/bin/env bash
# Fetches what the deployment tests check against into the repo's .local/:
#   .local/bin/kustomize                       built from its Go module
#   .local/schemas/compose-spec.json           the Compose Specification's schema
#   .local/schemas/keda.sh_scaledobjects.yaml  KEDA's ScaledObject CRD
# Everything comes through the Go module proxy, at the versions pinned below.
# Idempotent: a second run with the same versions does nothing.
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.1
COMPOSE_GO_VERSION=v2.16.2
KEDA_VERSION=v2.21.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
state="$root/.local"
stamp="$state/schemas/.complete"
want="kustomize $KUSTOMIZE_VERSION compose-go $COMPOSE_GO_VERSION keda $KEDA_VERSION"

die() {
    echo "tools.sh: $*" >&2
    exit 1
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$state/bin/kustomize" ]]; then
    echo "deploy tools: up to date in .local/ ($want)"
    touch "$stamp"
    exit 0
fi
command -v go >/dev/null 2>&1 || die "go is not on PATH; Go 1.24 or newer builds kustomize."
mkdir -p "$state/bin" "$state/schemas"

# Outside any module, so that the repo's own go.mod files play no part.
cd "$state"

echo "deploy tools: building kustomize $KUSTOMIZE_VERSION into .local/bin (first build ~1 min)"
GOBIN="$state/bin" GOFLAGS=-buildvcs=false \
    go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" ||
    die "go install of kustomize $KUSTOMIZE_VERSION failed; see the Go output above."

module_dir() {
    local dir
    dir="$(go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -n "$dir" && -d "$dir" ]] || die "go mod download $1 gave no module folder."
    printf '%s\n' "$dir"
}

echo "deploy tools: fetching the compose-spec schema (compose-go $COMPOSE_GO_VERSION)"
compose="$(module_dir "github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION")"
install -m 0644 "$compose/schema/compose-spec.json" "$state/schemas/compose-spec.json"

echo "deploy tools: fetching KEDA's ScaledObject CRD (keda $KEDA_VERSION)"
keda="$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")"
install -m 0644 "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" \
    "$state/schemas/keda.sh_scaledobjects.yaml"

printf '%s\n' "$want" >"$stamp"
