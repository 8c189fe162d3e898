//! Shared building blocks of Sesame: ids, the clock, the registry of stable error
//! codes, the service error type and the transaction seam every store uses.

pub mod clock;
pub mod error;
pub mod failpoint;
pub mod ids;
pub mod limits;
pub mod tx;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorCode, FieldError, StoreError};
pub use failpoint::FailPoints;
pub use ids::{PrincipalId, SessionId};
pub use limits::{CounterStore, DurableLimits, FallbackLimits, MemoryLimits, Rate, SharedLimits};
pub use tx::{Database, Finish, Grouped, Tx};
