//! The core's `ActorRuntime` conformance suite, run against `RactorRuntime`.

use dstate::test_support::conformance::{check_runtime, TimeDriver};
use dstate_ractor::RactorRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ractor_runtime_conforms_on_a_multi_thread_runtime() {
    let runtime = RactorRuntime::new();
    // Real time passes: ractor actors and tokio timers run on the executor.
    let time = TimeDriver::new(|d| Box::pin(tokio::time::sleep(d)));
    check_runtime(&runtime, &time)
        .await
        .expect("RactorRuntime conforms");
}

#[tokio::test(flavor = "current_thread")]
async fn ractor_runtime_conforms_on_a_current_thread_runtime() {
    let runtime = RactorRuntime::new();
    let time = TimeDriver::new(|d| Box::pin(tokio::time::sleep(d)));
    check_runtime(&runtime, &time)
        .await
        .expect("RactorRuntime conforms");
}
