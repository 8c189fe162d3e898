//! Named points inside multi-step writes where a failure can be injected, so that
//! crash safety is tested by really failing half-way through a transaction.

use crate::Error;
use std::fmt;
use std::sync::Arc;

type Hook = dyn Fn(&str) -> bool + Send + Sync;

/// A set of armed fail points; empty (and free) in production.
#[derive(Clone, Default)]
pub struct FailPoints(Option<Arc<Hook>>);

impl FailPoints {
    /// Fail points that fire whenever `hook(name)` returns true.
    pub fn new(hook: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(hook)))
    }

    /// Returns an internal error when the point `name` is armed.
    pub fn check(&self, name: &str) -> Result<(), Error> {
        match &self.0 {
            Some(hook) if hook(name) => Err(Error::internal(format!("fail point {name} fired"))),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for FailPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "FailPoints(armed)"
        } else {
            "FailPoints(none)"
        })
    }
}
