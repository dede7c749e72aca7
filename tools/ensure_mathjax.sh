#!/usr/bin/env bash
# MathJax 3, served by the book itself: the HTML pages load _static/mathjax/tex-chtml.js
# (_config.yml: sphinx.config.mathjax_path, html_static_path: [_mathjax]) instead of a CDN,
# so the built site renders its math offline and the site test (tests/test_site.py) can
# check MathJax's output in headless Chromium.
#
#   bash tools/ensure_mathjax.sh [DEST]      (DEST defaults to <repo>/_mathjax, git-ignored)
#
# Installs the npm package mathjax@$VERSION (with `npm pack`; Debian's npm is installed first
# when npm is missing and we are root; the tarball is checked against a pinned SHA-256) and
# copies the parts a page needs: tex-chtml.js, the TeX extensions it autoloads, the
# CommonHTML fonts, the menu and accessibility components. Returns at once when DEST
# already holds that version. Without network access, point MATHJAX_TGZ at a copy of the
# tarball (mathjax-$VERSION.tgz from `npm pack mathjax@$VERSION`).
set -euo pipefail
VERSION=3.2.2
SHA256=1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$REPO/_mathjax}"
TARGET="$DEST/mathjax"
STAMP="$TARGET/.vaelab-mathjax-$VERSION"

if [ -f "$STAMP" ] && [ -f "$TARGET/tex-chtml.js" ]; then exit 0; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -n "${MATHJAX_TGZ:-}" ]; then
  cp "$MATHJAX_TGZ" "$work/mathjax.tgz"
else
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "ensure_mathjax: installing Debian's npm" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
    else
      echo "ensure_mathjax: needs npm (e.g. 'apt-get install npm' as root), or MATHJAX_TGZ pointing" >&2
      echo "at a copy of mathjax-$VERSION.tgz ('npm pack mathjax@$VERSION' elsewhere)." >&2
      exit 1
    fi
  fi
  (cd "$work" && npm pack --silent "mathjax@$VERSION" >/dev/null)
  mv "$work/mathjax-$VERSION.tgz" "$work/mathjax.tgz"
fi
got="$(sha256sum "$work/mathjax.tgz" | cut -d' ' -f1)"
if [ "$got" != "$SHA256" ]; then
  echo "ensure_mathjax: mathjax-$VERSION.tgz has SHA-256 $got, expected $SHA256" >&2
  exit 1
fi
tar -xzf "$work/mathjax.tgz" -C "$work"
es5="$work/package/es5"
stage="$work/stage"
mkdir -p "$stage/input/tex" "$stage/output/chtml/fonts"
cp "$es5/tex-chtml.js" "$stage/"
cp -r "$es5/input/tex/extensions" "$stage/input/tex/"
cp -r "$es5/output/chtml/fonts/woff-v2" "$stage/output/chtml/fonts/"
cp -r "$es5/ui" "$es5/a11y" "$es5/sre" "$stage/"
cp "$work/package/LICENSE" "$stage/"
touch "$stage/.vaelab-mathjax-$VERSION"
mkdir -p "$DEST"
rm -rf "$TARGET"
mv "$stage" "$TARGET"
echo "MathJax $VERSION in $TARGET ($(du -sh "$TARGET" | cut -f1))"
