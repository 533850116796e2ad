//! The core's `ActorRuntime` conformance suite against `KameoRuntime`.

use dstate::test_support::conformance::{check_runtime, TimeDriver};
use dstate_kameo::KameoRuntime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kameo_runtime_conforms() {
    let runtime = KameoRuntime::new();
    // Real time: the suite waits in short steps for conditions, so this is not a fixed sleep.
    let time = TimeDriver::new(|step| Box::pin(tokio::time::sleep(step)));
    check_runtime(&runtime, &time)
        .await
        .expect("KameoRuntime conforms");
}
