#!/usr/bin/env bash
# Debian packages the test suite needs: Chromium (driven by Playwright), CJK fonts, litmus
# (neon's WebDAV conformance suite), STILTS and, next to a local PostgreSQL 15, the q3c and
# pgsphere extensions.
# Installed only when missing; needs root (or sudo).
set -euo pipefail
packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || packages+=(fonts-noto-cjk)
command -v litmus >/dev/null 2>&1 || packages+=(litmus)  # the WebDAV conformance suite
# q3c, the spatial index of source catalogs on PostgreSQL (the tests run without it too, with
# HEALPix instead), for a local PostgreSQL 15 server
if [ -d /usr/lib/postgresql/15 ] && [ ! -f /usr/share/postgresql/15/extension/q3c.control ]; then
  packages+=(postgresql-15-q3c)
fi
# pgsphere, the alternative spatial index measured against q3c by the VO benchmarks
if [ -d /usr/lib/postgresql/15 ] && [ ! -f /usr/share/postgresql/15/extension/pg_sphere.control ]; then
  packages+=(postgresql-15-pgsphere)
fi
# STILTS: taplint, votlint and datalinklint, the judges of our VO services
command -v stilts >/dev/null 2>&1 || packages+=(stilts)
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "please install as root: ${packages[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "Installing Debian packages: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${packages[@]}"
