//! Every store trait written once, as `$n` statements over unqualified table
//! names, stamped onto a backend by [`stamp_stores!`](crate::stamp_stores).
//! Each method opens a debug-level span named after it.
//!
//! The stamped code names the crates it uses by absolute path, so the backend
//! crate depends on `async-trait`, `sqlx`, `time`, `tracing`, `uuid` and the
//! Sesame domain crates, as both backends do anyway.

mod access;
mod codes;
mod credentials;
mod erasure;
mod federation;
mod identity;
mod keys;
mod mfa;
mod outbox;
mod passkeys;
mod sessions;
mod upkeep;

/// Implements every store trait for `$store`, a type implementing
/// [`SqlBackend`](crate::SqlBackend), except `ImportStore` (bulk paths are the
/// backend's own).
#[macro_export]
macro_rules! stamp_stores {
    ($store:ty) => {
        $crate::__access_store!($store);
        $crate::__credential_stores!($store);
        $crate::__erasure_store!($store);
        $crate::__federation_store!($store);
        $crate::__session_store!($store);
        $crate::__code_store!($store);
        $crate::__key_and_audit_stores!($store);
        $crate::__mfa_stores!($store);
        $crate::__outbox_store!($store);
        $crate::__passkey_store!($store);
        $crate::__profile_store!($store);
        $crate::__upkeep_stores!($store);
    };
}
