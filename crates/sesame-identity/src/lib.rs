//! The identity domain: who a person is and what we show about them. It knows
//! nothing of passwords, login identifiers or tokens, and does not depend on the
//! credentials domain.

pub mod profile;
pub mod store;

pub use profile::{NewProfile, Profile, ProfilePatch};
pub use store::ProfileStore;
