use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use carrot::adapters::dynamo::{CachedPrograms, DynamoStore, PROGRAM_TTL};
use carrot::adapters::{
    clock::SystemClock, sdk_config, secrets::SecretsKeyStore, sns::SnsOutbound, sqs::SqsEventQueue,
};
use carrot::env::required;
use lambda_runtime::{LambdaEvent, service_fn};
use portal::Portal;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = required("TABLE_NAME")?;
    let queue_url = required("EVENTS_QUEUE_URL")?;
    let key_prefix = required("KEY_SECRET_PREFIX")?;
    let outbound = required("OUTBOUND_TOPIC_ARN")?;
    let config = sdk_config().await;
    let store = DynamoStore::from_sdk(&config, table);
    let portal = Portal {
        keys: SecretsKeyStore::from_sdk(&config, key_prefix),
        programs: CachedPrograms::new(store.clone(), PROGRAM_TTL),
        store,
        queue: SqsEventQueue::from_sdk(&config, queue_url),
        outbound: SnsOutbound::from_sdk(&config, outbound),
        clock: SystemClock,
    };
    let portal = &portal;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, lambda_runtime::Error>(portal.handle(event.payload).await)
        },
    ))
    .await
}
