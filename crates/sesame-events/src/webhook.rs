//! Standard Webhooks 1.0: `whsec_` secrets, `v1` HMAC-SHA256 signatures, and
//! the sink that posts envelopes with them.
//!
//! The HMAC key is the secret's decoded bytes, not the `whsec_…` string. The
//! signed content is `{webhook-id}.{webhook-timestamp}.{body}`, over exactly
//! the bytes sent. Redirects are never followed, and targets on private or
//! loopback addresses are refused unless allowed (checked on the URL and on
//! every address its host resolves to, so DNS cannot point a public name
//! inward).

use crate::relay::{Outcome, Sink};
use crate::store::Delivery;
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sesame_outbound::OutboundClient;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a secret was refused.
pub const SECRET_RULE: &str = "a webhook secret is whsec_ followed by the base64 of 24 to 64 bytes";

/// The HMAC key of a `whsec_` secret: its decoded bytes.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, &'static str> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or(SECRET_RULE)?;
    let key = STANDARD.decode(encoded).map_err(|_| SECRET_RULE)?;
    if !(24..=64).contains(&key.len()) {
        return Err(SECRET_RULE);
    }
    Ok(key)
}

/// A new secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The `webhook-signature` value: one `v1,<base64>` per key, space-separated
/// (several while a secret rotates).
pub fn sign(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: no key is ever skipped.
    keys.iter()
        .filter_map(|key| <Hmac<Sha256> as Mac>::new_from_slice(key).ok())
        .map(|mut mac| {
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Posts envelopes to one endpoint.
pub struct WebhookSink {
    id: String,
    url: String,
    topics: Vec<String>,
    keys: Vec<Vec<u8>>,
    client: OutboundClient,
    clock: Arc<dyn sesame_core::Clock>,
}

impl WebhookSink {
    /// The sink of endpoint `name`, signing with `keys` (the current one first).
    pub fn new(
        name: &str,
        url: String,
        topics: Vec<String>,
        keys: Vec<Vec<u8>>,
        client: OutboundClient,
        clock: Arc<dyn sesame_core::Clock>,
    ) -> Self {
        Self {
            id: sink_id(name),
            url,
            topics,
            keys,
            client,
            clock,
        }
    }
}

/// The sink id of endpoint `name`.
pub fn sink_id(name: &str) -> String {
    format!("webhook:{name}")
}

/// Whether a topic passes an endpoint's filters: none means every topic; a
/// filter is a topic, or a prefix ending in `*` (`identity.user.*`).
pub fn topic_matches(filters: &[String], topic: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| match f.strip_suffix('*') {
            Some(prefix) => topic.starts_with(prefix),
            None => f == topic,
        })
}

/// How long a `Retry-After` header asks to wait (seconds form).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    value
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[async_trait]
impl Sink for WebhookSink {
    fn id(&self) -> &str {
        &self.id
    }

    fn wants(&self, topic: &str) -> bool {
        topic_matches(&self.topics, topic)
    }

    async fn deliver(&self, delivery: &Delivery) -> Outcome {
        let url = match self.client.check_url(&self.url) {
            Ok(url) => url,
            Err(error) => return Outcome::Retry { error, after: None },
        };
        let body = match serde_json::to_vec(&delivery.payload) {
            Ok(body) => body,
            Err(e) => {
                return Outcome::Retry {
                    error: e.to_string(),
                    after: None,
                };
            }
        };
        let id = delivery.event_id.to_string();
        let timestamp = self.clock.now().unix_timestamp();
        let signature = sign(&self.keys, &id, timestamp, &body);
        let sent = self
            .client
            .http()
            .post(url)
            .header("content-type", "application/cloudevents+json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                let error = if e.is_timeout() {
                    "the endpoint did not answer within the attempt timeout".to_owned()
                } else {
                    // The cause (refused, reset, DNS) is in the source chain.
                    let mut text = e.to_string();
                    let mut source = std::error::Error::source(&e);
                    while let Some(cause) = source {
                        text.push_str(": ");
                        text.push_str(&cause.to_string());
                        source = cause.source();
                    }
                    text
                };
                return Outcome::Retry { error, after: None };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Delivered;
        }
        let error = format!("the endpoint answered {status}");
        match status.as_u16() {
            410 => Outcome::Gone { error },
            429 | 502 | 503 | 504 => Outcome::Retry {
                after: retry_after(&response),
                error,
            },
            _ => Outcome::Retry { error, after: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and its reference
    /// libraries (`standard-webhooks/libraries`, every language's tests).
    #[test]
    fn signs_the_specification_example() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_decoded_and_their_length_checked() {
        assert_eq!(secret_key(&new_secret().unwrap()).unwrap().len(), 32);
        assert!(secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(secret_key("whsec_not base64!").is_err());
        assert!(secret_key(&format!("whsec_{}", STANDARD.encode([1u8; 16]))).is_err());
        assert!(secret_key(&format!("whsec_{}", STANDARD.encode([1u8; 65]))).is_err());
    }

    #[test]
    fn rotation_signs_with_every_key() {
        let keys = vec![vec![1u8; 32], vec![2u8; 32]];
        let both = sign(&keys, "id", 1, b"{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&keys[..1], "id", 1, b"{}"));
        assert_eq!(parts[1], sign(&keys[1..], "id", 1, b"{}"));
    }

    #[test]
    fn topic_filters_match_topics_and_prefixes() {
        let filters = vec![
            "identity.user.*".to_owned(),
            "identity.mfa.enrolled".to_owned(),
        ];
        assert!(topic_matches(&filters, "identity.user.signed_up"));
        assert!(topic_matches(&filters, "identity.mfa.enrolled"));
        assert!(!topic_matches(&filters, "identity.mfa.removed"));
        assert!(topic_matches(&[], "anything"));
    }
}
