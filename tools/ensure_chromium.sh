#!/usr/bin/env bash
# Headless Chromium for the built-site test (tests/test_site.py). Installs Debian's
# package when it is missing and we are root; otherwise says what to run.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "Headless Chromium is needed by tests/test_site.py: install it (e.g. 'sudo apt-get install chromium')." >&2
exit 1
