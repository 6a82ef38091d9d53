#!/bin/sh
# Creates the namespace the worker uses, once Temporal answers, and registers
# the OrderId search attribute every checkout sets (idempotent). Gives up with
# a non-zero exit when the frontend has not reported SERVING after TEMPORAL_HEALTH_ATTEMPTS
# tries TEMPORAL_HEALTH_INTERVAL seconds apart (default 60 x 2 s), as upstream's script
# does: a hang would keep the workers waiting on this job forever, and silently.
set -eu
namespace=${TEMPORAL_NAMESPACE:-default}
attempts=${TEMPORAL_HEALTH_ATTEMPTS:-60}
interval=${TEMPORAL_HEALTH_INTERVAL:-2}
attempt=1
until temporal operator cluster health --address "$TEMPORAL_ADDRESS"; do
  if [ "$attempt" -ge "$attempts" ]; then
    echo "create-namespace: Temporal at $TEMPORAL_ADDRESS is not SERVING after $attempts attempts" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep "$interval"
done
temporal operator namespace describe -n "$namespace" --address "$TEMPORAL_ADDRESS" \
  || temporal operator namespace create -n "$namespace" --address "$TEMPORAL_ADDRESS"
temporal operator search-attribute list -n "$namespace" --address "$TEMPORAL_ADDRESS" | grep -qw OrderId \
  || temporal operator search-attribute create -n "$namespace" --address "$TEMPORAL_ADDRESS" \
       --name OrderId --type Keyword
