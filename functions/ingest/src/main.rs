use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use carrot::adapters::{
    clock::SystemClock, sdk_config, secrets::SecretsKeyStore, sqs::SqsEventQueue,
};
use carrot::env::required;
use ingest::Ingest;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let queue_url = required("EVENTS_QUEUE_URL")?;
    let key_prefix = required("KEY_SECRET_PREFIX")?;
    let config = sdk_config().await;
    let ingest = Ingest {
        keys: SecretsKeyStore::from_sdk(&config, key_prefix),
        queue: SqsEventQueue::from_sdk(&config, queue_url),
        clock: SystemClock,
    };
    let ingest = &ingest;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, lambda_runtime::Error>(ingest.handle(event.payload).await)
        },
    ))
    .await
}
