#!/usr/bin/env bash
# Builds the test-only OpenTelemetry Collector in internal/testcollector into
# ${OTELCOL_BIN:-<repo>/.cache/otelcol-test}. The end-to-end tests in
# internal/testpeer start that binary.
#
# A stamp file next to the binary (<binary>.sha256) records the sha256 of the
# module's go.mod, go.sum, main.go and components.go. When the binary exists
# and the stamp matches, the build is skipped. A cold build takes minutes (it
# downloads the Collector modules); a cached one takes seconds.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO/internal/testcollector"
BIN="${OTELCOL_BIN:-$REPO/.cache/otelcol-test}"
STAMP="$BIN.sha256"

sum="$(cd "$SRC" && cat go.mod go.sum main.go components.go | sha256sum | cut -d' ' -f1)"

if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$sum" ]]; then
	echo "build-collector: $BIN is up to date (sha256 $sum), build skipped"
	exit 0
fi

mkdir -p "$(dirname "$BIN")"
tmp="$BIN.tmp.$$"
trap 'rm -f "$tmp"' EXIT

start=$SECONDS
# GOWORK=off: build this module on its own, whatever workspace surrounds it.
# -buildvcs=false: the repository may have no commits yet.
(cd "$SRC" && GOWORK=off go build -buildvcs=false -trimpath -ldflags='-s -w' -o "$tmp" .)
mv -f "$tmp" "$BIN"
printf '%s\n' "$sum" >"$STAMP"

echo "build-collector: built $BIN in $((SECONDS - start))s (sha256 $sum)"
