// The SDK futures nest deeply; computing the handler future's layout needs more depth.
#![recursion_limit = "512"]

use aws_lambda_events::sqs::SqsEvent;
use carrot::adapters::dynamo::{CachedPrograms, DynamoStore, PROGRAM_TTL};
use carrot::adapters::notify_store::NotifyStore;
use carrot::adapters::secrets::SecretsTokenSecret;
use carrot::adapters::ses::SesMailer;
use carrot::adapters::sns::SnsSms;
use carrot::adapters::{clock::SystemClock, sdk_config};
use carrot::env::{optional, required};
use carrot::service::notify::Sender;
use lambda_runtime::{LambdaEvent, service_fn};
use notify::Notify;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let table = required("TABLE_NAME")?;
    let from_email = required("SENDER_EMAIL")?;
    let configuration_set = optional("EMAIL_CONFIGURATION_SET");
    let sms_sender_id = optional("SMS_SENDER_ID");
    let api_base_url = required("API_BASE_URL")?;
    let secret_arn = required("UNSUBSCRIBE_SECRET_ARN")?;
    let email_events_queue_arn = required("EMAIL_EVENTS_QUEUE_ARN")?;
    let config = sdk_config().await;
    let notify = Notify {
        sender: Sender {
            store: NotifyStore::from_sdk(&config, table.clone()),
            programs: CachedPrograms::new(DynamoStore::from_sdk(&config, table), PROGRAM_TTL),
            mailer: SesMailer::from_sdk(&config, configuration_set),
            sms: SnsSms::from_sdk(&config, sms_sender_id),
            secret: SecretsTokenSecret::from_sdk(&config, secret_arn),
            clock: SystemClock,
            from_email,
            api_base_url: api_base_url.trim_end_matches('/').to_owned(),
        },
        email_events_queue_arn,
    };
    let notify = &notify;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, lambda_runtime::Error>(notify.handle(event.payload).await)
    }))
    .await
}
