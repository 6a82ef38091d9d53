#!/bin/sh
# Creates the namespace the worker uses, once Temporal answers, and registers
# the OrderId search attribute every checkout sets (idempotent).
set -eu
namespace=${TEMPORAL_NAMESPACE:-default}
until temporal operator cluster health --address "$TEMPORAL_ADDRESS"; do sleep 2; done
temporal operator namespace describe -n "$namespace" --address "$TEMPORAL_ADDRESS" \
  || temporal operator namespace create -n "$namespace" --address "$TEMPORAL_ADDRESS"
temporal operator search-attribute list -n "$namespace" --address "$TEMPORAL_ADDRESS" | grep -qw OrderId \
  || temporal operator search-attribute create -n "$namespace" --address "$TEMPORAL_ADDRESS" \
       --name OrderId --type Keyword
