//! The CloudEvents 1.0 envelope, stored in the outbox exactly as it will be sent.

use serde::{Deserialize, Serialize};
use sesame_core::PrincipalId;
use time::OffsetDateTime;
use uuid::Uuid;

/// Version of the `data` schemas, carried in `dataschema`.
pub const DATA_SCHEMA_VERSION: &str = "v1";

/// Who caused an event, so a consumer can ignore its own changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `principal`, `admin` or `service`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The acting principal's id or the service key's name.
    pub id: String,
}

impl Actor {
    /// The principal acting on itself.
    pub fn principal(id: PrincipalId) -> Self {
        Self {
            kind: "principal".into(),
            id: id.to_string(),
        }
    }
}

/// A CloudEvents 1.0 event with Sesame's extension attributes (scalar, lower
/// case, as the specification requires): `actorkind` and `actorid` name who
/// caused it, `aggseq` its place among its principal's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always `1.0`.
    pub specversion: String,
    /// UUIDv7, unique per event; consumers de-duplicate on it.
    pub id: Uuid,
    /// The emitting Sesame deployment.
    pub source: String,
    /// The topic, e.g. `identity.user.signed_up`.
    #[serde(rename = "type")]
    pub topic: String,
    /// When the change happened.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The principal the event is about.
    pub subject: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// Schema of `data`.
    pub dataschema: String,
    /// Who caused it: `principal`, `admin`, `service` or `system`.
    pub actorkind: String,
    /// The acting principal's id or the service key's name.
    pub actorid: String,
    /// The event's place among its principal's events, from 1 without gaps;
    /// given when the relay first takes the event, so absent before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggseq: Option<i64>,
    /// Event-specific payload; never a secret.
    pub data: serde_json::Value,
}

impl Envelope {
    /// A new envelope about `subject`.
    pub fn new(
        source: &str,
        topic: &str,
        subject: PrincipalId,
        actor: Actor,
        data: serde_json::Value,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            specversion: "1.0".into(),
            id: Uuid::now_v7(),
            source: source.to_owned(),
            topic: topic.to_owned(),
            time: now,
            subject: subject.to_string(),
            datacontenttype: "application/json".into(),
            dataschema: format!("urn:sesame:event:{topic}:{DATA_SCHEMA_VERSION}"),
            actorkind: actor.kind,
            actorid: actor.id,
            aggseq: None,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_cloudevents() {
        let pid = PrincipalId::new();
        let env = Envelope::new(
            "sesame://local",
            "identity.user.signed_up",
            pid,
            Actor::principal(pid),
            serde_json::json!({"login_type": "email"}),
            OffsetDateTime::UNIX_EPOCH,
        );
        let v = serde_json::to_value(&env).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "identity.user.signed_up");
        assert_eq!(v["subject"], pid.to_string());
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        assert_eq!(v["actorkind"], "principal");
        assert_eq!(v["actorid"], pid.to_string());
        assert!(v.get("aggseq").is_none());
        // Extension attributes are scalars named in lower-case a-z0-9, at most 20 characters.
        let standard = [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "subject",
            "datacontenttype",
            "dataschema",
            "data",
        ];
        for (name, value) in v.as_object().unwrap() {
            if !standard.contains(&name.as_str()) {
                assert!(
                    name.len() <= 20
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                    "{name}"
                );
                assert!(!value.is_object() && !value.is_array(), "{name}");
            }
        }
        assert_eq!(env.id.get_version_num(), 7);
        let back: Envelope = serde_json::from_value(v).unwrap();
        assert_eq!(back, env);
    }
}
