//! Events: CloudEvents envelopes written to the outbox in the same transaction as
//! the change they announce, and the relay that delivers them at least once.

pub mod envelope;
pub mod relay;
pub mod store;

pub use envelope::{Actor, Envelope};
pub use relay::{LogSink, Relay, Sink};
pub use store::{OutboxMessage, OutboxStore};

/// Topics Sesame publishes.
pub mod topics {
    /// A principal signed up.
    pub const USER_SIGNED_UP: &str = "identity.user.signed_up";
    /// A principal signed in.
    pub const USER_SIGNED_IN: &str = "identity.user.signed_in";
    /// A session was revoked.
    pub const SESSION_REVOKED: &str = "identity.session.revoked";
}
