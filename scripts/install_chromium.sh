#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright's own browser download is not used).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""; if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "Installing Chromium from Debian's packages..."
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
