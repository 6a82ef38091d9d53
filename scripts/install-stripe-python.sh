#!/usr/bin/env bash
# Installs Stripe's official Python library, pinned, into .tools/stripe-venv for
# the stripe-sim contract test (stripe-sim/contract/). A sibling of the venv that
# scripts/install-temporal.sh makes, so neither install disturbs the other.
# Idempotent: does nothing when it is already there. Prints the venv's python on
# its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

version="16.1.0"
venv=".tools/stripe-venv"
python="$venv/bin/python"

if [ -x "$python" ] && "$python" -c "import stripe, sys; sys.exit(stripe.VERSION != '$version')" 2>/dev/null; then
  echo "$PWD/$python"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "stripe==$version"
"$python" -c "import stripe; print('stripe', stripe.VERSION)" >&2
echo "$PWD/$python"
