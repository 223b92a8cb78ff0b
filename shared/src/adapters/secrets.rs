//! Key secrets in AWS Secrets Manager: one secret per key, named `{prefix}{key_id}`, holding
//! `{"program": ..., "scopes": [...], "secrets": [current, previous]}`.

use super::cache::TtlCache;
use super::port_error;
use crate::ports::{KeyRecord, KeyStore, PortError};
use aws_sdk_secretsmanager::Client;
use std::sync::Arc;
use std::time::Duration;

/// A rotation is seen within this long; an unknown key is asked about again after a minute.
const KEY_TTL: Duration = Duration::from_secs(300);

pub struct SecretsKeyStore {
    client: Client,
    prefix: String,
    cache: TtlCache<Option<Arc<KeyRecord>>>,
}

impl SecretsKeyStore {
    pub fn from_sdk(config: &aws_config::SdkConfig, prefix: impl Into<String>) -> Self {
        Self::new(aws_sdk_secretsmanager::Client::new(config), prefix)
    }

    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            cache: TtlCache::new(KEY_TTL, 1024),
        }
    }
}

impl KeyStore for SecretsKeyStore {
    async fn key(&self, key_id: &str) -> Result<Option<Arc<KeyRecord>>, PortError> {
        if let Some(hit) = self.cache.get(key_id) {
            return Ok(hit);
        }
        let name = format!("{}{key_id}", self.prefix);
        let found = match self.client.get_secret_value().secret_id(&name).send().await {
            Ok(output) => {
                let text = output.secret_string().unwrap_or_default();
                let record: KeyRecord = serde_json::from_str(text).map_err(|e| {
                    // Never log the secret text itself.
                    PortError::Permanent(format!("secret {name} is not a key record: {e:#}"))
                })?;
                if record.secrets.is_empty() || record.secrets.len() > 2 {
                    return Err(PortError::Permanent(format!(
                        "secret {name} must hold one or two active secrets"
                    )));
                }
                Some(Arc::new(record))
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                None
            }
            Err(error) => return Err(port_error(error)),
        };
        self.cache.put(key_id, found.clone());
        Ok(found)
    }
}

/// The unsubscribe-link signing secret: one Secrets Manager secret (its whole string).
pub struct SecretsTokenSecret {
    client: Client,
    secret_id: String,
    cache: TtlCache<Arc<Vec<u8>>>,
}

impl SecretsTokenSecret {
    pub fn from_sdk(config: &aws_config::SdkConfig, secret_id: impl Into<String>) -> Self {
        Self::new(Client::new(config), secret_id)
    }

    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            cache: TtlCache::new(KEY_TTL, 1),
        }
    }
}

impl crate::ports::TokenSecret for SecretsTokenSecret {
    async fn secret(&self) -> Result<Arc<Vec<u8>>, PortError> {
        if let Some(hit) = self.cache.get(&self.secret_id) {
            return Ok(hit);
        }
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(port_error)?;
        let secret = output.secret_string().unwrap_or_default();
        if secret.len() < 32 {
            return Err(PortError::Permanent(format!(
                "secret {} must hold at least 32 characters",
                self.secret_id
            )));
        }
        let secret = Arc::new(secret.as_bytes().to_vec());
        self.cache.put(&self.secret_id, secret.clone());
        Ok(secret)
    }
}
