#!/usr/bin/env bash
# Installs what the local services need under the repo's .local/ folder.
#   deploy/local/build.sh kafka      broker classpath -> .local/kafka/libs
#   deploy/local/build.sh ferretdb   FerretDB binary  -> .local/bin/courier-ferretdb
#   deploy/local/build.sh            both
# Idempotent: each step is skipped while its output is current.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
state="$root/.local"

die() {
    echo "build.sh: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is not on PATH; $2"
}

ensure_state_dir() {
    mkdir -p "$state"
}

build_kafka() {
    local pom="$here/kafka/pom.xml"
    local libs="$state/kafka/libs"
    local stamp="$libs/.complete"
    local want
    want="pom-sha256 $(sha256sum "$pom" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "kafka: classpath up to date in .local/kafka/libs"
        return
    fi
    need java "the local Kafka broker needs Java 17 or newer."
    need mvn "Maven 3.8+ is needed to fetch the Kafka jars."
    ensure_state_dir
    echo "kafka: fetching broker classpath into .local/kafka/libs (mvn package)"
    rm -rf "$libs"
    mkdir -p "$state/log"
    local log="$state/log/build-kafka.log"
    # Maven 3.8 prints stray colour codes even with -q, so keep its output in a
    # log and show it only when it fails.
    if ! mvn -B -q -Dstyle.color=never -f "$pom" package -Dkafka.libs.dir="$libs" \
        >"$log" 2>&1; then
        rm -rf "$libs"
        tail -n 40 "$log" >&2
        die "mvn failed to fetch the Kafka classpath; see .local/log/build-kafka.log."
    fi
    printf '%s\n' "$want" >"$stamp"
}

# FerretDB v1.24's SQLite backend indexes _id as `_ferretdb_sjson->"_id"` but
# updates with `_ferretdb_sjson->'$._id'`, an expression that index does not
# cover, so every update scans the whole table (120 ms a write at 3,500
# documents here). Building from a copy of the module with the two
# expressions made equal turns those writes into index look-ups.
patch_ferretdb() {
    local dest="$1"
    local mod
    (cd "$here/ferretdb" && go mod download github.com/FerretDB/FerretDB) ||
        die "go could not download the FerretDB module."
    mod="$(cd "$here/ferretdb" && go list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)"
    [[ -n "$mod" && -d "$mod" ]] || die "go did not give the FerretDB module's folder."
    rm -rf "$dest"
    mkdir -p "$(dirname "$dest")"
    cp -r "$mod" "$dest"
    chmod -R u+w "$dest"
    local meta="$dest/internal/backends/sqlite/metadata/metadata.go"
    local old="IDColumn = DefaultColumn + \"->'\$._id'\""
    local new='IDColumn = DefaultColumn + `->"_id"`'
    grep -qF "$old" "$meta" || die "the FerretDB _id patch no longer applies to $meta."
    OLD="$old" NEW="$new" perl -0pi -e 's/\Q$ENV{OLD}\E/$ENV{NEW}/' "$meta"
    grep -qF "$new" "$meta" || die "patching $meta failed."
}

build_ferretdb() {
    local src="$here/ferretdb"
    local out="$state/bin/courier-ferretdb"
    if [[ -x "$out" && "$out" -nt "$src/main.go" && "$out" -nt "$src/go.mod" &&
        "$out" -nt "$src/go.sum" && "$out" -nt "$here/build.sh" ]]; then
        echo "ferretdb: .local/bin/courier-ferretdb up to date"
        return
    fi
    need go "Go 1.24 or newer is needed to build the embedded FerretDB."
    ensure_state_dir
    mkdir -p "$state/bin" "$state/src"
    echo "ferretdb: building .local/bin/courier-ferretdb (go build, first build takes ~2 min)"
    local patched="$state/src/ferretdb"
    patch_ferretdb "$patched"
    printf 'go 1.24\n\nuse %s\n\nreplace github.com/FerretDB/FerretDB v1.24.2 => %s\n' \
        "$src" "$patched" >"$state/src/go.work"
    if ! (cd "$src" && GOWORK="$state/src/go.work" CGO_ENABLED=0 \
        go build -trimpath -buildvcs=false -o "$out.tmp" .); then
        rm -f "$out.tmp"
        die "go build of courier-ferretdb failed; see the Go output above."
    fi
    mv -f "$out.tmp" "$out"
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(kafka ferretdb)
for target in "${targets[@]}"; do
    case "$target" in
    kafka) build_kafka ;;
    ferretdb) build_ferretdb ;;
    *) die "unknown target '$target'; use kafka, ferretdb or nothing for both." ;;
    esac
done
