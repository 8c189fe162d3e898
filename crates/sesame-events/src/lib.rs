//! Events: CloudEvents envelopes written to the outbox in the same transaction as
//! the change they announce, and the relay that delivers them at least once.

pub mod envelope;
pub mod inbox;
pub mod nats;
pub mod relay;
pub mod store;
pub mod webhook;

pub use envelope::{Actor, Envelope};
pub use nats::{NatsSink, NatsStream};
pub use relay::{LogSink, Outcome, Relay, RelayOptions, Round, Schedule, Sink, Sinks};
pub use store::{
    Delivery, DeliveryRow, DeliveryStatus, Failure, OutboxStore, PreviousSecret, StoredEndpoint,
    WebhookStore,
};

/// Topics Sesame publishes.
pub mod topics {
    /// A principal signed up.
    pub const USER_SIGNED_UP: &str = "identity.user.signed_up";
    /// A principal signed in.
    pub const USER_SIGNED_IN: &str = "identity.user.signed_in";
    /// A session was revoked.
    pub const SESSION_REVOKED: &str = "identity.session.revoked";
    /// A login method was added.
    pub const LOGIN_METHOD_BOUND: &str = "identity.login_method.bound";
    /// A login method was removed.
    pub const LOGIN_METHOD_UNBOUND: &str = "identity.login_method.unbound";
    /// A login method was proven with a code.
    pub const LOGIN_METHOD_VERIFIED: &str = "identity.login_method.verified";
    /// A first password was set.
    pub const PASSWORD_SET: &str = "identity.password.set";
    /// The password was changed.
    pub const PASSWORD_CHANGED: &str = "identity.password.changed";
    /// The password was reset with a code.
    pub const PASSWORD_RESET: &str = "identity.password.reset";
    /// Consecutive failed sign-ins locked the account for a while.
    pub const ACCOUNT_LOCKED: &str = "identity.account.locked";
    /// A login was first proven by someone holding no session of the account:
    /// every earlier session was revoked and any password set before removed.
    pub const ACCOUNT_RECLAIMED: &str = "identity.account.reclaimed";
    /// A second factor was enrolled (confirmed).
    pub const MFA_ENROLLED: &str = "identity.mfa.enrolled";
    /// A second factor was removed.
    pub const MFA_REMOVED: &str = "identity.mfa.removed";
    /// New backup codes replaced the old ones.
    pub const MFA_BACKUP_CODES_REGENERATED: &str = "identity.mfa.backup_codes_regenerated";
    /// A session proved a second factor and was raised to `aal2` in place.
    pub const SESSION_RAISED: &str = "identity.session.raised";
    /// A role was assigned to a principal.
    pub const ROLE_ASSIGNED: &str = "identity.role.assigned";
    /// A role was taken from a principal.
    pub const ROLE_REVOKED: &str = "identity.role.revoked";
    /// A principal was suspended: its sessions were revoked and it cannot sign in.
    pub const USER_SUSPENDED: &str = "identity.user.suspended";
    /// A suspended principal was reactivated.
    pub const USER_REACTIVATED: &str = "identity.user.reactivated";
    /// A principal was erased: other services erase what they hold of it.
    pub const USER_DELETED: &str = "identity.user.deleted";

    /// Every topic; each has a schema of its `data` in `events/schemas/`.
    pub const ALL: &[&str] = &[
        USER_SIGNED_UP,
        USER_SIGNED_IN,
        SESSION_REVOKED,
        LOGIN_METHOD_BOUND,
        LOGIN_METHOD_UNBOUND,
        LOGIN_METHOD_VERIFIED,
        PASSWORD_SET,
        PASSWORD_CHANGED,
        PASSWORD_RESET,
        ACCOUNT_LOCKED,
        ACCOUNT_RECLAIMED,
        MFA_ENROLLED,
        MFA_REMOVED,
        MFA_BACKUP_CODES_REGENERATED,
        SESSION_RAISED,
        ROLE_ASSIGNED,
        ROLE_REVOKED,
        USER_SUSPENDED,
        USER_REACTIVATED,
        USER_DELETED,
    ];
}

#[cfg(test)]
mod tests {
    /// The catalogue and the code name the same topics: one schema per
    /// topic, and no schema of a topic the code does not publish.
    #[test]
    fn every_topic_has_a_schema_in_the_catalogue() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/schemas");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "envelope.json")
            .collect();
        files.sort();
        let mut expected: Vec<String> = super::topics::ALL
            .iter()
            .map(|t| format!("{t}.v1.json"))
            .collect();
        expected.sort();
        assert_eq!(files, expected);
        let catalogue = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/README.md"
        ))
        .unwrap();
        for topic in super::topics::ALL {
            assert!(
                catalogue.contains(&format!("`{topic}`")),
                "{topic} is not in events/README.md"
            );
        }
    }
}
