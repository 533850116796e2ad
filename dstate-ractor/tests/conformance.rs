//! The core's `ActorRuntime` conformance suite, run against `RactorRuntime`.
//!
//! One test function: `ractor::pg` groups are process-global, so two suites running at
//! once in the same test binary would see each other's group members.

use dstate::test_support::conformance::{check_runtime, TimeDriver};
use dstate_ractor::RactorRuntime;

async fn conforms() {
    let runtime = RactorRuntime::new();
    // Real time passes: ractor actors and tokio timers run on the executor.
    let time = TimeDriver::new(|d| Box::pin(tokio::time::sleep(d)));
    check_runtime(&runtime, &time)
        .await
        .expect("RactorRuntime conforms");
}

#[test]
fn ractor_runtime_conforms_on_multi_and_current_thread_runtimes() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("multi-thread runtime")
        .block_on(conforms());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current-thread runtime")
        .block_on(conforms());
}
