//! Issue 6 point 6: `x402-facilitator demo` runs the whole flow and exits 0.

use std::time::{Duration, Instant};

#[test]
fn demo_runs_the_whole_paid_request_flow() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, out, err) = crate::support::app::run_bin(dir.path(), &["demo"], &[]);
    let took = started.elapsed();
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for step in [
        "facilitator up at http://127.0.0.1:",
        "402 Payment Required: 1000000 lovelace",
        "in PAYMENT-SIGNATURE",
        "/verify said valid",
        "status \"confirmed\", confirmations 1",
        "200 OK with PAYMENT-RESPONSE",
        "done: paid request served",
    ] {
        assert!(out.contains(step), "missing step {step:?} in:\n{out}");
    }
    // Every step line carries its timing.
    assert!(
        out.lines()
            .filter(|l| l.starts_with('[') && l.contains(" ms] "))
            .count()
            >= 7,
        "{out}"
    );
    assert!(took < Duration::from_secs(10), "the demo took {took:?}");
}
