#!/usr/bin/env bash
# Installs Stripe's official Node library, pinned by the committed
# tests/stripe-libraries/package-lock.json, into .tools/stripe-node for the
# end-to-end test of Stripe's libraries through the broker
# (tests/tests/e2e/stripe_libraries.rs). `npm ci` installs exactly the lockfile,
# integrity hashes checked. Idempotent: does nothing when the lockfile installed
# there is the committed one. Prints the install's node_modules on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

source_dir="tests/stripe-libraries"
dir=".tools/stripe-node"

command -v npm >/dev/null || { echo "install-stripe-node: needs node and npm (Node 20 or later)" >&2; exit 1; }
if [ -d "$dir/node_modules/stripe" ] && cmp -s "$source_dir/package-lock.json" "$dir/package-lock.json"; then
  echo "$PWD/$dir/node_modules"
  exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
cp "$source_dir/package.json" "$source_dir/package-lock.json" "$dir/"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
node -e "console.error('stripe', require('$PWD/$dir/node_modules/stripe/package.json').version)"
echo "$PWD/$dir/node_modules"
