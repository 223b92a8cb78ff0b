// The SDK futures nest deeply; computing the handler future's layout needs more depth.
#![recursion_limit = "256"]

use award::Award;
use aws_lambda_events::sqs::SqsEvent;
use carrot::adapters::dynamo::{CachedPrograms, DynamoStore, PROGRAM_TTL};
use carrot::adapters::{clock::SystemClock, sdk_config};
use carrot::env::required;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = required("TABLE_NAME")?;
    let config = sdk_config().await;
    let store = DynamoStore::from_sdk(&config, table);
    let award = Award {
        programs: CachedPrograms::new(store.clone(), PROGRAM_TTL),
        store,
        clock: SystemClock,
    };
    let award = &award;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(award.handle(event.payload).await)
    }))
    .await
}
