//! Adapters: the ports implemented on AWS (and in memory, for the backtest and the property
//! tests). SDK errors become `PortError`s here, so nothing above this module sees an AWS type.

pub mod cache;
pub mod clock;
pub mod close_store;
pub mod dynamo;
pub mod engage_store;
pub mod memory;
pub mod notify_store;
pub mod portal_store;
pub mod redeem_store;
pub mod secrets;
pub mod ses;
pub mod sns;
pub mod spend;
pub mod sqs;

use crate::ports::PortError;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Maps any SDK error: service errors by code (and any 5xx answer as transient), transport
/// failures and timeouts as transient.
pub(crate) fn port_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    error: SdkError<E>,
) -> PortError {
    match &error {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("Unknown");
            let message = format!("{code}: {}", inner.message().unwrap_or_default());
            match code {
                "ConditionalCheckFailedException" => PortError::ConditionFailed,
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "Throttled"
                | "Throttling" // SNS
                | "KMSThrottling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "TransactionInProgressException"
                | "AWS.SimpleQueueService.RequestThrottled" => PortError::Transient(message),
                _ if service.raw().status().is_server_error() => PortError::Transient(message),
                _ => PortError::Permanent(message),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            PortError::Transient(format!("{error:?}"))
        }
        _ => PortError::Permanent(format!("{error:?}")),
    }
}

/// The SDK configuration from the Lambda environment (region, credentials), loaded once at
/// cold start.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
