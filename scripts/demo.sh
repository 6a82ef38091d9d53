#!/usr/bin/env bash
# make demo: the local stack (Temporal dev server with its UI, stripe-sim, the
# broker on SQLite, a worker) and two checkouts, one fulfilled and one failed
# and refunded. Runs until Ctrl-C, then stops everything it started.
#
#   STRIPE_SECRET_KEY=sk_test_…  the broker talks to Stripe's test mode instead of stripe-sim
#   KEYLEASE_DEMO_ONCE=1         exit after the two checkouts (for tests)
#   KEYLEASE_DEMO_NO_BUILD=1     use the binaries already in KEYLEASE_DEMO_BIN_DIR (default target/debug)
#   KEYLEASE_DEMO_{TEMPORAL,UI,BROKER,SIM}_PORT   ports (7233, 8233, 8080, 12111)
#   KEYLEASE_DEMO_STATE          folder for databases and logs (default .tools/demo)
set -euo pipefail
cd "$(dirname "$0")/.."

temporal_port=${KEYLEASE_DEMO_TEMPORAL_PORT:-7233}
ui_port=${KEYLEASE_DEMO_UI_PORT:-8233}
broker_port=${KEYLEASE_DEMO_BROKER_PORT:-8080}
sim_port=${KEYLEASE_DEMO_SIM_PORT:-12111}
bin=${KEYLEASE_DEMO_BIN_DIR:-target/debug}
state=${KEYLEASE_DEMO_STATE:-.tools/demo}

temporal=$(scripts/install-temporal.sh | tail -n 1)
if [ -z "${KEYLEASE_DEMO_NO_BUILD:-}" ]; then
  echo "building…"
  cargo build --quiet -p keylease-broker -p stripe-sim -p keylease-worker
fi
for tool in keylease-broker stripe-sim keylease-worker; do
  [ -x "$bin/$tool" ] || { echo "demo: no $bin/$tool (build it, or unset KEYLEASE_DEMO_NO_BUILD)" >&2; exit 1; }
done

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$temporal_port" "$ui_port" "$broker_port" "$sim_port"; do
  if port_busy "$port"; then
    echo "demo: port $port is in use; set KEYLEASE_DEMO_*_PORT to free ones" >&2
    exit 1
  fi
done

mkdir -p "$state"
# Only the demo's own files: the folder may be one a user named.
rm -f "$state"/temporal.db* "$state"/broker.db* "$state"/*.log
pids=()
stop_all() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "demo: stopped"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 600); do
    port_busy "$port" && return 0
    sleep 0.1
  done
  echo "demo: $name did not listen on port $port; see $state/$name.log" >&2
  exit 1
}

# Checkouts set the OrderId search attribute; a namespace without it stalls them before they charge.
"$temporal" server start-dev --ip 127.0.0.1 --port "$temporal_port" --ui-port "$ui_port" \
  --db-filename "$state/temporal.db" --search-attribute OrderId=Keyword --log-level error >"$state/temporal.log" 2>&1 &
pids+=($!)

admin_token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
if [ -n "${STRIPE_SECRET_KEY:-}" ]; then
  case "$STRIPE_SECRET_KEY" in sk_test_*) ;; *) echo "demo: STRIPE_SECRET_KEY must be a test key (sk_test_…)" >&2; exit 1 ;; esac
  stripe_base=https://api.stripe.com
  stripe_secret=$STRIPE_SECRET_KEY
  echo "Stripe: test mode at $stripe_base"
else
  "$bin/stripe-sim" --listen "127.0.0.1:$sim_port" >"$state/stripe-sim.log" 2>&1 &
  pids+=($!)
  stripe_base=http://127.0.0.1:$sim_port
  stripe_secret=sk_test_keylease_demo
  echo "Stripe: stripe-sim at $stripe_base"
fi

KEYLEASE_BROKER_ADMIN_TOKEN=$admin_token KEYLEASE_STRIPE_SECRET_KEY=$stripe_secret \
KEYLEASE_STRIPE_API_BASE=$stripe_base KEYLEASE_BROKER_DATABASE_URL="sqlite://$state/broker.db" \
  "$bin/keylease-broker" --listen "127.0.0.1:$broker_port" >"$state/broker.log" 2>&1 &
pids+=($!)
wait_for_port "$temporal_port" temporal
wait_for_port "$broker_port" broker

# The admin token creates the worker's role and its token; the worker holds only that token.
worker_token=$(KEYLEASE_BROKER_URL=http://127.0.0.1:$broker_port KEYLEASE_BROKER_ADMIN_TOKEN=$admin_token \
  "$bin/keylease-worker" role setup --name demo-worker --max-key-usd-cap 1000 --daily-usd-cap 5000)
echo "Broker role demo-worker: keys labelled temporal-*, at most \$1,000 each and \$5,000 a day together"

export TEMPORAL_ADDRESS=127.0.0.1:$temporal_port KEYLEASE_TASK_QUEUE=payments
KEYLEASE_BROKER_URL=http://127.0.0.1:$broker_port KEYLEASE_PROXY_URL=http://127.0.0.1:$broker_port/stripe \
KEYLEASE_BROKER_TOKEN=$worker_token "$bin/keylease-worker" run >"$state/worker.log" 2>&1 &
pids+=($!)

run=$(date +%s)
ok_wf=demo-fulfilled-$run
failed_wf=demo-failed-$run
"$bin/keylease-worker" checkout --order-id "order-$run-1" --amount 4200 --currency usd \
  --payment-method pm_card_visa --workflow-id "$ok_wf" >/dev/null
"$bin/keylease-worker" fulfil --workflow-id "$ok_wf" --ok --wait 60s
"$bin/keylease-worker" checkout --order-id "order-$run-2" --amount 1999 --currency usd \
  --payment-method pm_card_visa --workflow-id "$failed_wf" >/dev/null
"$bin/keylease-worker" fulfil --workflow-id "$failed_wf" --failed --reason "out of stock" --wait 60s

for wf in "$ok_wf" "$failed_wf"; do
  result=$("$temporal" workflow result --address "$TEMPORAL_ADDRESS" --workflow-id "$wf" --output json)
  keys=$(python3 - "http://127.0.0.1:$broker_port/v1/keys?label_prefix=temporal-$wf-" "$admin_token" <<'PY'
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
print(urllib.request.urlopen(request, timeout=10).read().decode())
PY
)
  python3 - "$wf" "$result" "$keys" "http://127.0.0.1:$ui_port" <<'PY'
import json, sys
from datetime import datetime
wf, result, keys, ui = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])["keys"], sys.argv[4]
outcome = result.get("result", result)
if isinstance(outcome, list):
    outcome = outcome[0]
print(f"\n{wf}: {outcome.get('outcome')}")
for name in ("payment_intent_id", "refund_id", "reason", "error_type"):
    if outcome.get(name):
        print(f"  {name}: {outcome[name]}")
def at(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
for key in sorted(keys, key=lambda k: k["created_at"]):
    ttl = int((at(key["expires_at"]) - at(key["created_at"])).total_seconds())
    print(f"  key {key['id']} {key['label']}: TTL {ttl}s, {', '.join(key['allowed_endpoints'])}, "
          f"issued {key['created_at']}, {key['status']}" + (f" {key['revoked_at']}" if key.get("revoked_at") else ""))
print(f"  {ui}/namespaces/default/workflows/{wf}")
PY
done

echo
echo "Temporal UI: http://127.0.0.1:$ui_port   logs: $state/*.log"
if [ -n "${KEYLEASE_DEMO_ONCE:-}" ]; then
  exit 0
fi
echo "Running; Ctrl-C stops everything."
wait "${pids[@]}"
