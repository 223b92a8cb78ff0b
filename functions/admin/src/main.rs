use admin::Admin;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use carrot::adapters::dynamo::{DynamoStore, PROGRAM_TTL};
use carrot::adapters::notify_store::NotifyStore;
use carrot::adapters::secrets::SecretsTokenSecret;
use carrot::adapters::{
    clock::SystemClock, sdk_config, secrets::SecretsKeyStore, sns::SnsOutbound, sqs::SqsEventQueue,
};
use carrot::env::required;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = required("TABLE_NAME")?;
    let queue_url = required("EVENTS_QUEUE_URL")?;
    let key_prefix = required("KEY_SECRET_PREFIX")?;
    let outbound = required("OUTBOUND_TOPIC_ARN")?;
    let unsubscribe_secret = required("UNSUBSCRIBE_SECRET_ARN")?;
    let config = sdk_config().await;
    let admin = Admin {
        keys: SecretsKeyStore::from_sdk(&config, key_prefix),
        store: DynamoStore::from_sdk(&config, table.clone()),
        queue: SqsEventQueue::from_sdk(&config, queue_url),
        clock: SystemClock,
        outbound: SnsOutbound::from_sdk(&config, outbound),
        config_lead: PROGRAM_TTL,
        messages: NotifyStore::from_sdk(&config, table),
        unsubscribe: SecretsTokenSecret::from_sdk(&config, unsubscribe_secret),
    };
    let admin = &admin;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, lambda_runtime::Error>(admin.handle(event.payload).await)
        },
    ))
    .await
}
