#!/usr/bin/env python3
"""How an idle machine slows the broker: a `GET /healthz` and a key issue +
revoke pair over one kept connection, back to back and after idle spells
(issue 24, BENCHMARKS.md "a fourth sitting"). Needs the release binaries:
cargo build --release -p keylease-broker -p stripe-sim, then
python3 bench/probes/idle_broker.py [pairs per figure]"""
import http.client, json, os, subprocess, sys, time, socket, statistics, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

rel = f"{ROOT}/target/release"
d = tempfile.mkdtemp(dir=f"{ROOT}/target")
sim_port, broker_port = free_port(), free_port()
sim = subprocess.Popen([f"{rel}/stripe-sim"], env={**os.environ, "STRIPE_SIM_LISTEN": f"127.0.0.1:{sim_port}", "KEYLEASE_LOG_FORMAT": "json"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
broker = subprocess.Popen([f"{rel}/keylease-broker"], env={**os.environ,
    "KEYLEASE_BROKER_LISTEN": f"127.0.0.1:{broker_port}",
    "KEYLEASE_BROKER_DATABASE_URL": f"sqlite://{d}/b.db",
    "KEYLEASE_BROKER_ADMIN_TOKEN": "admin_token_probe_1234567890abcdef",
    "KEYLEASE_STRIPE_SECRET_KEY": "sk_test_probe", "KEYLEASE_STRIPE_API_BASE": f"http://127.0.0.1:{sim_port}",
    "KEYLEASE_LOG_FORMAT": "json", "RUST_LOG": "info"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", broker_port); c.request("GET", "/healthz"); r = c.getresponse(); r.read()
            if r.status == 200: break
        except Exception: time.sleep(0.1)
    conn = http.client.HTTPConnection("127.0.0.1", broker_port)
    conn.connect(); conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    H = {"Authorization": "Bearer admin_token_probe_1234567890abcdef", "Content-Type": "application/json"}
    body = json.dumps({"label": "temporal-wf-charge", "vendor": "stripe", "daily_usd_cap": 50.0,
        "allowed_endpoints": ["POST /v1/payment_intents", "GET /v1/payment_intents/*", "POST /v1/payment_intents/*/cancel", "GET /v1/payment_intents", "GET /v1/payment_intents/search"],
        "expires_in": 72, "metadata": {"run_id": "r", "attempt": "1", "activity_type": "charge"},
        "allowed_metadata": {"order_id": "o-1"}})
    def pair():
        t0 = time.perf_counter()
        conn.request("POST", "/v1/keys", body, H); r = conn.getresponse(); b = r.read()
        t1 = time.perf_counter()
        assert r.status == 201, (r.status, b)
        kid = json.loads(b)["id"]
        t2 = time.perf_counter()
        conn.request("DELETE", f"/v1/keys/{kid}", headers=H); r = conn.getresponse(); r.read()
        t3 = time.perf_counter()
        assert r.status == 204, r.status
        return (t1 - t0) + (t3 - t2)
    def health():
        t0 = time.perf_counter(); conn.request("GET", "/healthz"); r = conn.getresponse(); r.read(); return time.perf_counter() - t0
    for gap in [0, 0.05]:
        xs = []
        for _ in range(200):
            if gap: time.sleep(gap)
            xs.append(health() * 1000)
        xs.sort(); print(f"gap {gap*1000:5.1f} ms: healthz p50 {xs[100]:.3f} ms p90 {xs[180]:.3f}")
    for _ in range(50): pair()
    for gap in [0, 0.005, 0.05, 0]:
        xs = []
        for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 200):
            if gap: time.sleep(gap)
            xs.append(pair() * 1000)
        xs.sort()
        print(f"gap {gap*1000:5.1f} ms: pair p50 {xs[len(xs)//2]:.3f} ms p90 {xs[int(len(xs)*0.9)]:.3f} mean {statistics.mean(xs):.3f}")
finally:
    broker.terminate(); sim.terminate()
