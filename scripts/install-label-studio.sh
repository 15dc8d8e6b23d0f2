#!/usr/bin/env bash
# Installs a real Label Studio 1.23.2 for the end-to-end tests, in its own
# virtual environment (its dependency pins differ from the backend's), plus
# Debian's chromium for browser tests. Safe to run again: it does nothing when
# everything is already in place.
set -euo pipefail

LABEL_STUDIO_VERSION="1.23.2"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${LABEL_STUDIO_VENV:-$REPO_ROOT/.venv-label-studio}"
PYTHON="${PYTHON:-python3}"

installed_version() {
    # `label-studio --version` hangs, so ask pip's metadata instead.
    "$VENV_DIR/bin/python" - <<'PY' 2>/dev/null || true
import importlib.metadata
print(importlib.metadata.version("label-studio"))
PY
}

install_label_studio() {
    if [[ -x "$VENV_DIR/bin/label-studio" && "$(installed_version)" == "$LABEL_STUDIO_VERSION" ]]; then
        echo "label-studio $LABEL_STUDIO_VERSION already installed in $VENV_DIR"
        return
    fi
    echo "installing label-studio $LABEL_STUDIO_VERSION into $VENV_DIR"
    [[ -x "$VENV_DIR/bin/python" ]] || "$PYTHON" -m venv "$VENV_DIR"
    "$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "label-studio==$LABEL_STUDIO_VERSION"
    local version
    version="$(installed_version)"
    if [[ "$version" != "$LABEL_STUDIO_VERSION" ]]; then
        echo "label-studio install failed: found version '$version', wanted $LABEL_STUDIO_VERSION" >&2
        exit 1
    fi
}

install_chromium() {
    if [[ "${SKIP_CHROMIUM:-0}" == "1" ]]; then
        return
    fi
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
        echo "chromium and chromedriver already installed"
        return
    fi
    local sudo=""
    if [[ "$(id -u)" != "0" ]]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # The package lists are often fresh enough; refresh them only when needed.
    if ! $sudo apt-get install -y --no-install-recommends chromium chromium-driver; then
        $sudo apt-get update
        $sudo apt-get install -y --no-install-recommends chromium chromium-driver
    fi
}

install_label_studio
install_chromium
