#!/usr/bin/env bash
# Installs what the browser tests need: Debian's Chromium (driven headless by Playwright for
# Python, which is pinned in requirements.txt). Idempotent: does nothing when Chromium is there.
# Playwright's own browser download is never used (`playwright install` is not run).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version
