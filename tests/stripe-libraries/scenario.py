"""The payments scenario with Stripe's official Python library (PyPI `stripe`,
pinned by scripts/install-stripe-python.sh), unchanged but for its address:
run by tests/tests/e2e/stripe_libraries.rs through the broker's --stripe-listen
address and directly against stripe-sim. scenario.cjs is the same scenario in
Node; both read scenario.json and print one line per case (`ok`, `FAIL …`,
`skip`), and exit non-zero when a case failed.

Environment: as scenario.cjs says.
"""

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import stripe

SCENARIO = json.loads((Path(__file__).parent / "scenario.json").read_text())
BASE = os.environ["STRIPE_BASE"]
MODE = os.environ["SCENARIO_MODE"]
RUN = os.environ["SCENARIO_RUN"]
SIM = os.environ["SIM_URL"]
NEVER_REDIRECT = {"enabled": True, "allow_redirects": "never"}


def client(key, max_network_retries=0):
    return stripe.StripeClient(
        key, base_addresses={"api": BASE}, max_network_retries=max_network_retries
    )


STRIPE = client(os.environ["STRIPE_KEY"])
PIS = STRIPE.v1.payment_intents
# Every PaymentIntent the script was answered with, to find in a list.
CREATED = set()


def meta(**extra):
    return {"order_id": RUN, **extra}


def charge(amount, **extra):
    params = {"amount": amount, "currency": "usd", "payment_method": "pm_card_visa",
              "confirm": True, "automatic_payment_methods": NEVER_REDIRECT, "metadata": meta(), **extra}
    pi = PIS.create({k: v for k, v in params.items() if v is not None})
    CREATED.add(pi.id)
    return pi


class Expected(AssertionError):
    pass


def check(condition, what):
    if not condition:
        raise Expected(what)


def equal(got, want, what=""):
    check(got == want, f"{what} {got!r} != {want!r}".strip())


def raises(call, error_class):
    try:
        call()
    except error_class as err:
        return err
    except Exception as err:  # noqa: BLE001 - the class is what is checked
        raise Expected(f"expected {error_class.__name__}, got {type(err).__name__}: {err}") from err
    raise Expected(f"expected {error_class.__name__}, nothing was raised")


def sim(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(SIM + path, data=data, method=method,
                                     headers={"content-type": "application/json"} if data else {})
    with urllib.request.urlopen(request) as response:
        text = response.read()
    return json.loads(text) if text else None


def at_sim(marker):
    """What stripe-sim received and holds that carries `marker`."""
    requests = [r for r in sim("GET", "/_sim/requests")["data"]
                if marker in (r.get("body") or "") or marker in (r.get("query") or "")]
    intents = [pi for pi in sim("GET", "/_sim/payment_intents")["data"]
               if (pi.get("metadata") or {}).get("marker") == marker]
    return requests, intents


def retried(key_var, fault, tries, marker):
    """The library retries with one Idempotency-Key until the fault is spent,
    and stripe-sim ends up holding exactly one PaymentIntent."""
    sim("DELETE", "/_sim/faults")
    staged = sim("POST", "/_sim/faults", {"method": "POST", "path": "/v1/payment_intents", **fault})
    retrying = client(os.environ[key_var], 3)
    pi = retrying.v1.payment_intents.create({
        "amount": SCENARIO["retry_amount"], "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": True, "automatic_payment_methods": NEVER_REDIRECT, "metadata": meta(marker=marker)})
    CREATED.add(pi.id)
    equal(pi.status, "succeeded")
    requests, intents = at_sim(marker)
    equal(len(requests), tries, "requests at stripe-sim:")
    equal(len([r for r in requests if r["fault"] == staged["id"]]), fault.get("count", 1), "faulted:")
    keys = {r["headers"].get("idempotency-key") for r in requests}
    equal(len(keys), 1, f"one Idempotency-Key for every try {keys}:")
    equal([p["id"] for p in intents], [pi.id], "exactly one PaymentIntent:")


def stripe_shaped(err, status, code):
    """Python's library passes no `code` to its permission and rate-limit
    errors (as for Stripe's own); the whole error object is `err.error`."""
    equal(err.http_status, status)
    check(err.error is not None, "an error object")
    equal(err.error.code, code, "error.code")
    equal(err.error.type, "invalid_request_error", "a broker refusal is Stripe-shaped: error.type")
    check(err.user_message, "a message")


def automatic_create_confirm():
    pi = charge(2000, receipt_email="buyer@example.com")
    check(isinstance(pi, stripe.PaymentIntent), type(pi).__name__)
    equal(pi.status, "succeeded")
    equal(pi.amount_received, 2000)
    equal(pi.automatic_payment_methods.enabled, True)
    equal(pi.metadata["order_id"], RUN)
    equal(PIS.retrieve(pi.id).status, "succeeded")


def confirm_later():
    pi = PIS.create({"amount": 1500, "currency": "usd", "automatic_payment_methods": NEVER_REDIRECT,
                     "metadata": meta()})
    CREATED.add(pi.id)
    equal(pi.status, "requires_payment_method")
    done = PIS.confirm(pi.id, {"payment_method": "pm_card_visa"})
    equal(done.id, pi.id)
    equal(done.status, "succeeded")
    equal(done.amount_received, 1500)


def manual_capture():
    pi = charge(3000, capture_method="manual")
    equal(pi.status, "requires_capture")
    equal(pi.amount_capturable, 3000)
    captured = PIS.capture(pi.id)
    equal(captured.status, "succeeded")
    equal(captured.amount_received, 3000)


def partial_capture():
    pi = charge(4000, capture_method="manual")
    equal(pi.status, "requires_capture")
    captured = PIS.capture(pi.id, {"amount_to_capture": 2500})
    equal(captured.status, "succeeded")
    equal(captured.amount_received, 2500)


def cancel():
    pi = PIS.create({"amount": 1000, "currency": "usd", "automatic_payment_methods": NEVER_REDIRECT,
                     "metadata": meta()})
    CREATED.add(pi.id)
    canceled = PIS.cancel(pi.id, {"cancellation_reason": "requested_by_customer"})
    equal(canceled.status, "canceled")
    equal(canceled.cancellation_reason, "requested_by_customer")


def three_d_secure():
    redirect = charge(2500, payment_method="pm_card_threeDSecure2Required", automatic_payment_methods=None,
                      return_url="https://shop.example/back")
    equal(redirect.status, "requires_action")
    sdk = charge(2500, payment_method="pm_card_threeDSecure2Required")
    equal(sdk.status, "requires_action")
    if MODE == "broker":
        # Blanked: Stripe's redirect URL carries the client secret in its query.
        equal(redirect.next_action, None)
        equal(sdk.next_action, None)
    else:
        equal(redirect.next_action.type, "redirect_to_url")
        url = redirect.next_action.redirect_to_url.url
        check(url.startswith("http") and "payment_intent_client_secret=" + redirect.client_secret in url,
              "a redirect URL with the client secret, as Stripe's")
        equal(redirect.next_action.redirect_to_url.return_url, "https://shop.example/back")
        equal(sdk.next_action.type, "use_stripe_sdk")
    off_session = raises(lambda: charge(2500, payment_method="pm_card_authenticationRequired",
                                        error_on_requires_action=True), stripe.CardError)
    CREATED.add(off_session.error.payment_intent.id)
    equal(off_session.code, "authentication_required")
    for pi in (redirect, sdk):
        equal(PIS.cancel(pi.id).status, "canceled")


def declines():
    for d in SCENARIO["declines"]:
        where = d["payment_method"]
        err = raises(lambda: charge(1100, payment_method=where), stripe.CardError)
        equal(err.http_status, 402, where)
        equal(err.error.type, "card_error", where)
        equal(err.code, d["code"], where)
        equal(err.error.decline_code, d["decline_code"], where)
        equal(err.param, d.get("param"), where)
        equal(err.error.payment_intent.status, "requires_payment_method", where)
        equal(err.error.payment_intent.last_payment_error.decline_code, d["decline_code"], where)
        CREATED.add(err.error.payment_intent.id)


def refunds():
    pi = charge(5000)
    refunds = STRIPE.v1.refunds
    partial = refunds.create({"payment_intent": pi.id, "amount": 2000, "reason": "requested_by_customer"})
    check(isinstance(partial, stripe.Refund), type(partial).__name__)
    equal((partial.amount, partial.status, partial.payment_intent), (2000, "succeeded", pi.id))
    equal(refunds.create({"payment_intent": pi.id}).amount, 3000)
    err = raises(lambda: refunds.create({"payment_intent": pi.id}), stripe.InvalidRequestError)
    equal(err.code, "charge_already_refunded")
    after = PIS.retrieve(pi.id, {"expand": ["latest_charge"]})
    equal(after.latest_charge.amount_refunded, 5000)
    equal(after.latest_charge.refunded, True)


def retry_after_503():
    retried("STRIPE_RETRY_503_KEY", {"kind": "status", "status": 503, "count": 2}, 3, f"{RUN}-503")


def retry_after_dropped_answer():
    retried("STRIPE_RETRY_DROP_KEY", {"kind": "drop_after_commit", "count": 1}, 2, f"{RUN}-drop")


def cap_refusal():
    marker = f"{RUN}-over-cap"
    capped = client(os.environ["STRIPE_CAPPED_KEY"])
    err = raises(lambda: capped.v1.payment_intents.create({
        "amount": SCENARIO["over_cap_amount"], "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": True, "automatic_payment_methods": NEVER_REDIRECT, "metadata": meta(marker=marker)}),
        stripe.RateLimitError)
    stripe_shaped(err, 429, "cap_exhausted")
    equal(len(at_sim(marker)[0]), 0, "nothing forwarded:")


def out_of_scope():
    marker = f"{RUN}-customer"
    capped = client(os.environ["STRIPE_CAPPED_KEY"])
    err = raises(lambda: capped.v1.customers.create({"email": "buyer@example.com", "description": marker}),
                 stripe.PermissionError)
    stripe_shaped(err, 403, "endpoint_not_allowed")
    equal(len(at_sim(marker)[0]), 0, "nothing forwarded:")


def list_auto_pagination():
    limit = 3
    first = PIS.list({"limit": limit})
    equal(len(first.data), limit)
    equal(first.has_more, True)
    ids = [pi.id for pi in PIS.list({"limit": limit}).auto_paging_iter()]
    check(len(ids) > limit, f"more than one page: {len(ids)}")
    equal(len(set(ids)), len(ids), "no PaymentIntent twice:")
    # What stripe-sim holds for this run, whether or not an answer reached the script.
    held = [pi["id"] for pi in sim("GET", "/_sim/payment_intents")["data"]
            if (pi.get("metadata") or {}).get("order_id") == RUN]
    equal(sorted(ids), sorted(held), "every PaymentIntent of this run at stripe-sim, and only those:")
    check(CREATED <= set(ids), f"every PaymentIntent the script was answered: {CREATED - set(ids)}")


def search():
    batch = [charge(amount, metadata=meta(batch="search")).id for amount in (601, 602, 603)]
    query = f"metadata['order_id']:'{RUN}' AND metadata['batch']:'search'"
    page = PIS.search({"query": query, "limit": 2})
    check(isinstance(page, stripe.SearchResultObject), type(page).__name__)
    check(len(page.data) >= 2, f"a first page: {len(page.data)}")
    equal(page.has_more, True)
    found = [pi.id for pi in PIS.search({"query": query, "limit": 2}).auto_paging_iter()]
    equal(sorted(found), sorted(batch))


def main():
    sim("DELETE", "/_sim/faults")
    failed = 0
    for name in SCENARIO["cases"]:
        if MODE != "broker" and name in SCENARIO["broker_only"]:
            print(f"skip {name}", flush=True)
            continue
        start = time.monotonic()
        try:
            globals()[name]()
            print(f"ok {name} ({(time.monotonic() - start) * 1000:.0f} ms)", flush=True)
        except Exception as err:  # noqa: BLE001 - every case reports, then the next runs
            failed += 1
            detail = str(err) if isinstance(err, Expected) else f"{type(err).__name__}: {err}"
            print(f"FAIL {name}: {' '.join(detail.split())}", flush=True)
    sim("DELETE", "/_sim/faults")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
