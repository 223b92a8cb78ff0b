// The SDK futures nest deeply; computing the handler future's layout needs more depth.
#![recursion_limit = "512"]

use carrot::adapters::dynamo::{CachedPrograms, DynamoStore, PROGRAM_TTL};
use carrot::adapters::notify_store::NotifyStore;
use carrot::adapters::sns::SnsOutbound;
use carrot::adapters::sqs::SqsEventQueue;
use carrot::adapters::{clock::SystemClock, sdk_config};
use carrot::env::required;
use carrot::service::engage::EngageJob;
use engage::Engage;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = required("TABLE_NAME")?;
    let events = required("EVENTS_QUEUE_URL")?;
    let notifications = required("NOTIFICATIONS_QUEUE_URL")?;
    let outbound = required("OUTBOUND_TOPIC_ARN")?;
    let config = sdk_config().await;
    let store = DynamoStore::from_sdk(&config, table.clone());
    let engage = Engage {
        job: EngageJob {
            programs: CachedPrograms::new(store.clone(), PROGRAM_TTL),
            store,
            deferrals: NotifyStore::from_sdk(&config, table),
            events: Arc::new(SqsEventQueue::from_sdk(&config, events)),
            notifications: Arc::new(SqsEventQueue::from_sdk(&config, notifications)),
            outbound: SnsOutbound::from_sdk(&config, outbound),
            clock: SystemClock,
        },
    };
    let engage = &engage;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        engage
            .handle(event.payload)
            .await
            .map_err(|e| -> lambda_runtime::Error { Box::new(e) })
    }))
    .await
}
