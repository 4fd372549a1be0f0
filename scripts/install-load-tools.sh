#!/usr/bin/env bash
# Installs wrk, the load generator proof/load.py drives reads with (Debian's package). Idempotent:
# does nothing when wrk is there. Without it, proof/load.py reads with Python threads instead.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends wrk || { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends wrk; }
wrk --version | head -1 || true
