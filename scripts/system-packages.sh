#!/usr/bin/env bash
# Debian packages the project needs beyond Python: a CJK font for printed
# paper-code cards, Chromium for the browser tests of the pages, and a Java
# runtime for the Spark jobs. Installs what is missing when it can (root with apt-get);
# otherwise says what is missing, and the tests that need it skip with that
# reason.
set -euo pipefail

PACKAGES=(fonts-noto-cjk chromium openjdk-17-jre-headless)

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "system-packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "system-packages: missing ${missing[*]} (needs root and apt-get);" \
         "the tests that need them will skip and say so."
fi
