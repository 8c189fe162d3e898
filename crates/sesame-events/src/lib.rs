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
}
