#!/usr/bin/env bash
# Build what the pages serve besides the Python package's own files:
# the browser libraries (installed by npm from web/package-lock.json and
# copied into the static folder) and the compiled gettext catalogues.
# Needs node and npm for the first part; without them it says so, and the
# scanner page's browser tests skip with that reason.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENDOR=src/healthcode/web/static/vendor

"$PYTHON" -m healthcode.web.build

if ! command -v npm >/dev/null 2>&1; then
    echo "web-assets: npm is missing; the scanner page will have no QR decoder." >&2
    exit 0
fi
npm ci --prefix web --no-audit --no-fund --ignore-scripts --silent
mkdir -p "$VENDOR"
cp web/node_modules/jsqr/dist/jsQR.js "$VENDOR/jsQR.js"
cp web/node_modules/@noble/ed25519/index.js "$VENDOR/noble-ed25519.js"
cp web/node_modules/jsqr/LICENSE "$VENDOR/jsQR.LICENSE" 2>/dev/null || true
cp web/node_modules/@noble/ed25519/LICENSE "$VENDOR/noble-ed25519.LICENSE"
echo "web-assets: vendor files in $VENDOR"
