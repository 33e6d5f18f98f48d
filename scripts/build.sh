#!/usr/bin/env bash
# Configures and builds relay into build/ (warnings are errors). Extra
# arguments go to cmake, e.g. -DRELAY_SANITIZE=address,undefined.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${RELAY_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DRELAY_WERROR=ON "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
