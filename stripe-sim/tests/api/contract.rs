//! Stripe's official Python library (`stripe` from PyPI, installed by
//! `scripts/install-stripe-python.sh`) runs `contract/test_stripe_python.py`
//! against a simulator: the simulator behaves as Stripe does for a client
//! nobody here wrote.

use std::path::PathBuf;

use crate::helpers::TestSim;

#[tokio::test]
async fn stripes_python_library_gets_what_stripe_would_answer() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("../.tools/stripe-venv/bin/python");
    assert!(
        python.exists(),
        "run scripts/install-stripe-python.sh (make test does) to install Stripe's Python library"
    );
    let sim = TestSim::spawn().await;
    let output = tokio::process::Command::new(python)
        .args(["-m", "unittest", "-v", "test_stripe_python"])
        .current_dir(root.join("contract"))
        .env("STRIPE_SIM_URL", format!("http://{}", sim.addr))
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("\nOK"), "{report}");
}
