//! The cold-start baseline of `cold_start`: a hello-world `lambda_runtime` function, as
//! `cargo lambda new` makes it (the default tracing subscriber, an echo handler), built with
//! the same release profile in the same `cargo build` as the functions.
//!
//! Run it only under a Lambda Runtime API (Lambda, `cargo lambda watch`, or the bench).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
