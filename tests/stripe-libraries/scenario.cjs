// The payments scenario with Stripe's official Node library (npm `stripe`,
// pinned in package-lock.json), unchanged but for its address: run by
// tests/tests/e2e/stripe_libraries.rs through the broker's --stripe-listen
// address and directly against stripe-sim. scenario.py is the same scenario
// in Python; both read scenario.json and print one line per case
// (`ok`, `FAIL …`, `skip`), and exit non-zero when a case failed.
//
// Environment: STRIPE_BASE (http://host:port), STRIPE_KEY, STRIPE_RETRY_503_KEY,
// STRIPE_RETRY_DROP_KEY, STRIPE_CAPPED_KEY (broker only), SCENARIO_MODE
// (`broker` or `direct`), SCENARIO_RUN (unique per run: metadata and markers),
// SIM_URL (stripe-sim's control API, to stage faults and count what arrived).
'use strict';

const assert = require('node:assert/strict');
const Stripe = require('stripe');
const scenario = require('./scenario.json');

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = new URL(env('STRIPE_BASE'));
const MODE = env('SCENARIO_MODE');
const RUN = env('SCENARIO_RUN');
const SIM = env('SIM_URL');
const NEVER_REDIRECT = {enabled: true, allow_redirects: 'never'};
const { errors } = Stripe;

function client(key, maxNetworkRetries = 0) {
  return new Stripe(key, {
    host: BASE.hostname,
    port: BASE.port,
    protocol: BASE.protocol.replace(':', ''),
    maxNetworkRetries,
  });
}

const stripe = client(env('STRIPE_KEY'));
// Every PaymentIntent the script was answered with, to find in a list.
const created = new Set();

function meta(extra = {}) {
  return {order_id: RUN, ...extra};
}

async function charge(amount, extra = {}) {
  const pi = await stripe.paymentIntents.create({
    amount, currency: 'usd', payment_method: 'pm_card_visa', confirm: true,
    automatic_payment_methods: NEVER_REDIRECT, metadata: meta(), ...extra,
  });
  created.add(pi.id);
  return pi;
}

async function raises(call, errorClass) {
  try {
    await call();
  } catch (err) {
    assert.ok(err instanceof errorClass, `expected ${errorClass.name}, got ${err.constructor.name}: ${err.message}`);
    return err;
  }
  assert.fail(`expected ${errorClass.name}, nothing was raised`);
}

async function sim(method, path, body) {
  const response = await fetch(SIM + path, {
    method,
    headers: body ? {'content-type': 'application/json'} : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.ok(response.ok, `stripe-sim ${method} ${path}: ${response.status}`);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// What stripe-sim received and holds that carries `marker`.
async function atSim(marker) {
  const requests = (await sim('GET', '/_sim/requests')).data
    .filter((r) => (r.body || '').includes(marker) || (r.query || '').includes(marker));
  const intents = (await sim('GET', '/_sim/payment_intents')).data
    .filter((pi) => pi.metadata && pi.metadata.marker === marker);
  return {requests, intents};
}

// The library retries with one Idempotency-Key until the fault is spent,
// and stripe-sim ends up holding exactly one PaymentIntent.
async function retried(keyVar, fault, tries, marker) {
  await sim('DELETE', '/_sim/faults');
  const staged = await sim('POST', '/_sim/faults', {method: 'POST', path: '/v1/payment_intents', ...fault});
  const retrying = client(env(keyVar), 3);
  const pi = await retrying.paymentIntents.create({
    amount: scenario.retry_amount, currency: 'usd', payment_method: 'pm_card_visa', confirm: true,
    automatic_payment_methods: NEVER_REDIRECT, metadata: meta({marker}),
  });
  created.add(pi.id);
  assert.equal(pi.status, 'succeeded');
  const {requests, intents} = await atSim(marker);
  assert.equal(requests.length, tries, `requests at stripe-sim: ${requests.length}`);
  assert.equal(requests.filter((r) => r.fault === staged.id).length, fault.count || 1);
  const keys = new Set(requests.map((r) => r.headers['idempotency-key']));
  assert.equal(keys.size, 1, `one Idempotency-Key for every try: ${[...keys]}`);
  assert.deepEqual(intents.map((p) => p.id), [pi.id], 'exactly one PaymentIntent');
}

function stripeShaped(err, status, code) {
  assert.equal(err.statusCode, status);
  assert.equal(err.code, code);
  assert.equal(err.rawType, 'invalid_request_error', 'a broker refusal is Stripe-shaped: error.type');
  assert.ok(err.message, 'a message');
}

const cases = {
  async automatic_create_confirm() {
    const pi = await charge(2000, {receipt_email: 'buyer@example.com'});
    assert.equal(pi.object, 'payment_intent');
    assert.equal(pi.status, 'succeeded');
    assert.equal(pi.amount_received, 2000);
    assert.equal(pi.automatic_payment_methods.enabled, true);
    assert.equal(pi.metadata.order_id, RUN);
    const again = await stripe.paymentIntents.retrieve(pi.id);
    assert.equal(again.status, 'succeeded');
  },

  async confirm_later() {
    const pi = await stripe.paymentIntents.create({
      amount: 1500, currency: 'usd', automatic_payment_methods: NEVER_REDIRECT, metadata: meta(),
    });
    created.add(pi.id);
    assert.equal(pi.status, 'requires_payment_method');
    const done = await stripe.paymentIntents.confirm(pi.id, {payment_method: 'pm_card_visa'});
    assert.equal(done.id, pi.id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.amount_received, 1500);
  },

  async manual_capture() {
    const pi = await charge(3000, {capture_method: 'manual'});
    assert.equal(pi.status, 'requires_capture');
    assert.equal(pi.amount_capturable, 3000);
    const captured = await stripe.paymentIntents.capture(pi.id);
    assert.equal(captured.status, 'succeeded');
    assert.equal(captured.amount_received, 3000);
  },

  async partial_capture() {
    const pi = await charge(4000, {capture_method: 'manual'});
    assert.equal(pi.status, 'requires_capture');
    const captured = await stripe.paymentIntents.capture(pi.id, {amount_to_capture: 2500});
    assert.equal(captured.status, 'succeeded');
    assert.equal(captured.amount_received, 2500);
  },

  async cancel() {
    const pi = await stripe.paymentIntents.create({
      amount: 1000, currency: 'usd', automatic_payment_methods: NEVER_REDIRECT, metadata: meta(),
    });
    created.add(pi.id);
    const canceled = await stripe.paymentIntents.cancel(pi.id, {cancellation_reason: 'requested_by_customer'});
    assert.equal(canceled.status, 'canceled');
    assert.equal(canceled.cancellation_reason, 'requested_by_customer');
  },

  async three_d_secure() {
    const redirect = await charge(2500, {
      payment_method: 'pm_card_threeDSecure2Required', automatic_payment_methods: undefined,
      return_url: 'https://shop.example/back',
    });
    assert.equal(redirect.status, 'requires_action');
    const sdk = await charge(2500, {payment_method: 'pm_card_threeDSecure2Required'});
    assert.equal(sdk.status, 'requires_action');
    if (MODE === 'broker') {
      // Blanked: Stripe's redirect URL carries the client secret in its query.
      assert.equal(redirect.next_action, null);
      assert.equal(sdk.next_action, null);
    } else {
      assert.equal(redirect.next_action.type, 'redirect_to_url');
      const url = redirect.next_action.redirect_to_url.url;
      assert.match(url, /^https?:\/\//);
      assert.ok(url.includes(`payment_intent_client_secret=${redirect.client_secret}`), url);
      assert.equal(redirect.next_action.redirect_to_url.return_url, 'https://shop.example/back');
      assert.equal(sdk.next_action.type, 'use_stripe_sdk');
    }
    const offSession = await raises(
      () => charge(2500, {payment_method: 'pm_card_authenticationRequired', error_on_requires_action: true}),
      errors.StripeCardError,
    );
    created.add(offSession.payment_intent.id);
    assert.equal(offSession.code, 'authentication_required');
    for (const pi of [redirect, sdk]) {
      assert.equal((await stripe.paymentIntents.cancel(pi.id)).status, 'canceled');
    }
  },

  async declines() {
    for (const d of scenario.declines) {
      const err = await raises(() => charge(1100, {payment_method: d.payment_method}), errors.StripeCardError);
      const where = d.payment_method;
      assert.equal(err.statusCode, 402, where);
      assert.equal(err.rawType, 'card_error', where);
      assert.equal(err.code, d.code, where);
      assert.equal(err.decline_code, d.decline_code, where);
      assert.equal(err.param ?? undefined, d.param, where);
      assert.equal(err.payment_intent.status, 'requires_payment_method', where);
      assert.equal(err.payment_intent.last_payment_error.decline_code, d.decline_code, where);
      created.add(err.payment_intent.id);
    }
  },

  async refunds() {
    const pi = await charge(5000);
    const partial = await stripe.refunds.create({payment_intent: pi.id, amount: 2000, reason: 'requested_by_customer'});
    assert.equal(partial.object, 'refund');
    assert.equal(partial.amount, 2000);
    assert.equal(partial.status, 'succeeded');
    assert.equal(partial.payment_intent, pi.id);
    const rest = await stripe.refunds.create({payment_intent: pi.id});
    assert.equal(rest.amount, 3000);
    const err = await raises(() => stripe.refunds.create({payment_intent: pi.id}), errors.StripeInvalidRequestError);
    assert.equal(err.code, 'charge_already_refunded');
    const after = await stripe.paymentIntents.retrieve(pi.id, {expand: ['latest_charge']});
    assert.equal(after.latest_charge.amount_refunded, 5000);
    assert.equal(after.latest_charge.refunded, true);
  },

  async retry_after_503() {
    await retried('STRIPE_RETRY_503_KEY', {kind: 'status', status: 503, count: 2}, 3, `${RUN}-503`);
  },

  async retry_after_dropped_answer() {
    await retried('STRIPE_RETRY_DROP_KEY', {kind: 'drop_after_commit', count: 1}, 2, `${RUN}-drop`);
  },

  async cap_refusal() {
    const marker = `${RUN}-over-cap`;
    const capped = client(env('STRIPE_CAPPED_KEY'));
    const err = await raises(() => capped.paymentIntents.create({
      amount: scenario.over_cap_amount, currency: 'usd', payment_method: 'pm_card_visa', confirm: true,
      automatic_payment_methods: NEVER_REDIRECT, metadata: meta({marker}),
    }), errors.StripeRateLimitError);
    stripeShaped(err, 429, 'cap_exhausted');
    assert.equal((await atSim(marker)).requests.length, 0, 'nothing forwarded');
  },

  async out_of_scope() {
    const capped = client(env('STRIPE_CAPPED_KEY'));
    const marker = `${RUN}-customer`;
    const err = await raises(
      () => capped.customers.create({email: 'buyer@example.com', description: marker}),
      errors.StripePermissionError,
    );
    stripeShaped(err, 403, 'endpoint_not_allowed');
    assert.equal((await atSim(marker)).requests.length, 0, 'nothing forwarded');
  },

  async list_auto_pagination() {
    const limit = 3;
    const first = await stripe.paymentIntents.list({limit});
    assert.equal(first.data.length, limit);
    assert.equal(first.has_more, true);
    const all = await stripe.paymentIntents.list({limit}).autoPagingToArray({limit: 1000});
    const ids = all.map((pi) => pi.id);
    assert.ok(ids.length > limit);
    assert.equal(new Set(ids).size, ids.length, 'no PaymentIntent twice');
    // What stripe-sim holds for this run, whether or not an answer reached the script.
    const held = (await sim('GET', '/_sim/payment_intents')).data
      .filter((pi) => pi.metadata && pi.metadata.order_id === RUN).map((pi) => pi.id);
    assert.deepEqual([...ids].sort(), held.sort(), 'every PaymentIntent of this run at stripe-sim, and only those');
    assert.ok([...created].every((id) => ids.includes(id)), 'every PaymentIntent the script was answered');
  },

  async search() {
    const batch = [];
    for (const amount of [601, 602, 603]) {
      batch.push((await charge(amount, {metadata: meta({batch: 'search'})})).id);
    }
    const query = `metadata['order_id']:'${RUN}' AND metadata['batch']:'search'`;
    const page = await stripe.paymentIntents.search({query, limit: 2});
    assert.equal(page.object, 'search_result');
    assert.ok(page.data.length >= 2);
    assert.equal(page.has_more, true);
    const found = await stripe.paymentIntents.search({query, limit: 2}).autoPagingToArray({limit: 100});
    assert.deepEqual(found.map((pi) => pi.id).sort(), [...batch].sort());
  },
};

async function main() {
  await sim('DELETE', '/_sim/faults');
  let failed = 0;
  for (const name of scenario.cases) {
    if (MODE !== 'broker' && scenario.broker_only.includes(name)) {
      console.log(`skip ${name}`);
      continue;
    }
    const start = Date.now();
    try {
      await cases[name]();
      console.log(`ok ${name} (${Date.now() - start} ms)`);
    } catch (err) {
      failed += 1;
      const detail = err instanceof assert.AssertionError ? err.message : `${err.constructor.name}: ${err.message}`;
      console.log(`FAIL ${name}: ${detail.replace(/\s+/g, ' ')}`);
    }
  }
  await sim('DELETE', '/_sim/faults');
  // Exits at once: a timer of stripe-node's (its 80 s request timeout,
  // left behind by the dropped answer) would otherwise hold the process.
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.log(`FAIL scenario: ${err.stack}`);
  process.exit(2);
});
