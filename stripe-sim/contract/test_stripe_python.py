"""Stripe's official Python library against stripe-sim: the flows Keylease uses.

Run by stripe-sim's `contract` test (cargo test), which starts a simulator and
sets STRIPE_SIM_URL. Each check reads what the library returns (its objects
and its exception classes), not the simulator's JSON.
"""

import os
import time
import unittest
import uuid

import stripe

NEVER_REDIRECT = {"enabled": True, "allow_redirects": "never"}


def client(secret=None):
    return stripe.StripeClient(
        secret or "sk_test_contract_" + uuid.uuid4().hex[:12],
        base_addresses={"api": os.environ["STRIPE_SIM_URL"]},
        max_network_retries=0,
    )


class PaymentIntents(unittest.TestCase):
    def setUp(self):
        self.stripe = client()
        self.pis = self.stripe.v1.payment_intents

    def charge(self, amount=2000, pm="pm_card_visa", **extra):
        params = {"amount": amount, "currency": "usd", "payment_method": pm, "confirm": True,
                  "automatic_payment_methods": NEVER_REDIRECT, **extra}
        return self.pis.create(params)

    def test_library_pins_the_simulators_default_version(self):
        self.assertEqual(stripe.api_version, "2026-10-28.endive")

    def test_create_and_confirm_then_retrieve_with_expand(self):
        pi = self.charge(metadata={"order_id": "o-1"}, receipt_email="buyer@example.com")
        self.assertIsInstance(pi, stripe.PaymentIntent)
        self.assertEqual(pi.status, "succeeded")
        self.assertEqual(pi.amount_received, 2000)
        self.assertEqual(pi.automatic_payment_methods.allow_redirects, "never")
        self.assertEqual(pi.receipt_email, "buyer@example.com")
        self.assertEqual(pi.metadata["order_id"], "o-1")
        fetched = self.pis.retrieve(pi.id, {"expand": ["latest_charge", "payment_method"]})
        self.assertIsInstance(fetched.latest_charge, stripe.Charge)
        self.assertTrue(fetched.latest_charge.paid)
        self.assertEqual(fetched.latest_charge.payment_method_details.card.last4, "4242")
        self.assertIsInstance(fetched.payment_method, stripe.PaymentMethod)

    def test_two_step_create_then_confirm_with_a_return_url(self):
        pi = self.pis.create({"amount": 500, "currency": "usd"})
        self.assertEqual(pi.status, "requires_payment_method")
        self.assertTrue(pi.automatic_payment_methods.enabled)
        with self.assertRaises(stripe.InvalidRequestError) as refused:
            self.pis.confirm(pi.id, {"payment_method": "pm_card_visa"})
        self.assertIn("A `return_url` must be specified", refused.exception.user_message)
        done = self.pis.confirm(pi.id, {"payment_method": "pm_card_visa", "return_url": "https://shop.example/back"})
        self.assertEqual(done.status, "succeeded")

    def test_params_real_integrations_send_are_accepted(self):
        pi = self.pis.create({"amount": 700, "currency": "usd", "allowed_payment_method_types": ["card"],
                              "description": "d", "statement_descriptor_suffix": "KEYLEASE",
                              "payment_method_options": {"card": {"request_three_d_secure": "automatic"}}})
        self.assertEqual(pi.payment_method_types, ["card"])
        self.assertIsNone(pi.automatic_payment_methods)
        with self.assertRaises(stripe.InvalidRequestError) as unknown:
            self.pis.create({"amount": 700, "currency": "usd", "colour": "red"})
        self.assertEqual(unknown.exception.code, "parameter_unknown")
        self.assertEqual(unknown.exception.param, "colour")

    def test_a_decline_raises_card_error_with_the_payment_intent(self):
        with self.assertRaises(stripe.CardError) as declined:
            self.charge(pm="pm_card_chargeDeclinedInsufficientFunds")
        error = declined.exception
        self.assertEqual(error.http_status, 402)
        self.assertEqual(error.code, "card_declined")
        self.assertEqual(error.error.decline_code, "insufficient_funds")
        self.assertEqual(error.error.payment_intent.status, "requires_payment_method")

    def test_three_d_secure_requires_action_or_declines_off_session(self):
        pi = self.charge(pm="pm_card_threeDSecure2Required")
        self.assertEqual(pi.status, "requires_action")
        self.assertEqual(pi.next_action.type, "use_stripe_sdk")
        with self.assertRaises(stripe.CardError) as off:
            self.charge(pm="pm_card_authenticationRequired", customer="cus_1", off_session=True)
        self.assertEqual(off.exception.code, "authentication_required")
        canceled = self.pis.cancel(pi.id)
        self.assertEqual(canceled.status, "canceled")

    def test_idempotent_replay_and_conflict(self):
        params = {"amount": 1200, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True,
                  "automatic_payment_methods": NEVER_REDIRECT}
        first = self.pis.create(params, {"idempotency_key": "contract-1"})
        again = self.pis.create(params, {"idempotency_key": "contract-1"})
        self.assertEqual(again.id, first.id)
        self.assertEqual(again.last_response.headers.get("idempotent-replayed"), "true")
        with self.assertRaises(stripe.IdempotencyError):
            self.pis.create({**params, "amount": 1300}, {"idempotency_key": "contract-1"})
        listed = self.pis.list({"limit": 10})
        self.assertEqual([p.id for p in listed.data], [first.id])

    def test_refunds_full_and_partial(self):
        pi = self.charge(amount=3000)
        partial = self.stripe.v1.refunds.create({"payment_intent": pi.id, "amount": 1000, "reason": "requested_by_customer"})
        self.assertIsInstance(partial, stripe.Refund)
        self.assertEqual((partial.amount, partial.status), (1000, "succeeded"))
        rest = self.stripe.v1.refunds.create({"payment_intent": pi.id})
        self.assertEqual(rest.amount, 2000)
        with self.assertRaises(stripe.InvalidRequestError) as done:
            self.stripe.v1.refunds.create({"payment_intent": pi.id})
        self.assertEqual(done.exception.code, "charge_already_refunded")
        listed = self.stripe.v1.refunds.list({"payment_intent": pi.id})
        self.assertEqual(sorted(r.amount for r in listed.auto_paging_iter()), [1000, 2000])
        charge = self.stripe.v1.charges.retrieve(pi.latest_charge)
        self.assertTrue(charge.refunded)

    def test_search_by_metadata_with_paging(self):
        order = "o-" + uuid.uuid4().hex[:8]
        ids = [self.charge(amount=100 + i, metadata={"order_id": order}).id for i in range(3)]
        self.charge(metadata={"order_id": "someone-else"})
        query = f"metadata['order_id']:'{order}' AND status:'succeeded'"
        deadline = time.monotonic() + 10
        while True:
            found = self.pis.search({"query": query, "limit": 2})
            if found.data or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertIsInstance(found, stripe.SearchResultObject)
        self.assertTrue(found.has_more)
        every = [p.id for p in found.auto_paging_iter()]
        self.assertEqual(sorted(every), sorted(ids))


if __name__ == "__main__":
    unittest.main()
