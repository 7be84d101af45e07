#!/usr/bin/env bash
# Fetch the vendored front-end files from the npm registry and check them against known hashes.
# Usage: scripts/vendor.sh          (fetch if missing or wrong)
#        scripts/vendor.sh --check  (only verify what is in static/vendor/)
set -euo pipefail
cd "$(dirname "$0")/.."
HTMX_VERSION=4.0.1
dest=static/vendor
# file in the npm package -> name in static/vendor -> sha256
files=(
  "dist/htmx.min.js htmx-${HTMX_VERSION}.min.js a0abb04f2f45a1f89d1d4844023245537e5e6014c87b144553e0607b4cc32130"
  "dist/ext/hx-sse.min.js hx-sse-${HTMX_VERSION}.min.js 18ef2761356ec1fe0bb6d92612315b37517a7c1e9856b661c5ae81fef239d103"
)
check() {
  local ok=0
  for entry in "${files[@]}"; do
    read -r _ name sum <<<"$entry"
    if [ ! -f "$dest/$name" ] || [ "$(sha256sum "$dest/$name" | cut -d' ' -f1)" != "$sum" ]; then
      echo "vendor: $dest/$name is missing or does not match its sha256" >&2
      ok=1
    fi
  done
  return $ok
}
if [ "${1:-}" = "--check" ]; then check; exit; fi
if check 2>/dev/null; then echo "vendor: htmx ${HTMX_VERSION} present and verified"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "htmx.org@${HTMX_VERSION}" --silent >/dev/null && tar xzf "htmx.org-${HTMX_VERSION}.tgz")
mkdir -p "$dest"
for entry in "${files[@]}"; do
  read -r src name _ <<<"$entry"
  cp "$tmp/package/$src" "$dest/$name"
done
check
echo "vendor: fetched htmx ${HTMX_VERSION} into $dest"
