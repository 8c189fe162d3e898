//! The registry of stable error codes and the error type every service returns.

use serde::Serialize;
use std::sync::Arc;

/// What caused an internal failure, kept whole with its own sources so that
/// the log shows the chain; shared, so that errors stay cheap to clone.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A cause that is only a message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

/// What was being done, over the error that stopped it.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct Context {
    what: String,
    #[source]
    source: Cause,
}

/// `err` and every error under it, separated by `: `, for a log line.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:literal, $title:literal),)*) => {
        /// Every stable, machine-readable error code Sesame answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(
                #[doc = $title]
                $variant,
            )*
        }

        impl ErrorCode {
            /// Every code, for registry checks and documentation.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status this code is answered with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// A short human-readable title.
            pub fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)* }
            }
        }
    };
}

error_codes! {
    ValidationFailed => ("validation_failed", 400, "The request is not valid"),
    IdentifierTaken => ("identifier_taken", 409, "The identifier is already in use"),
    InvalidCredentials => ("invalid_credentials", 401, "Invalid credentials"),
    InvalidCurrentPassword => ("invalid_current_password", 403, "The current password is not right"),
    AccountLocked => ("account_locked", 423, "The account is temporarily locked"),
    RateLimited => ("rate_limited", 429, "Too many requests"),
    LastLoginMethod => ("last_login_method", 409, "The last way to sign in cannot be removed"),
    WeakPassword => ("weak_password", 422, "The password is too weak"),
    PasswordReused => ("password_reused", 422, "The password was used recently"),
    InvalidCode => ("invalid_code", 400, "The code is not valid"),
    CodeExpired => ("code_expired", 400, "The code has expired"),
    MfaRequired => ("mfa_required", 403, "A second factor is required"),
    MfaAlreadyEnrolled => ("mfa_already_enrolled", 409, "A second factor of this kind is enrolled already"),
    InvalidToken => ("invalid_token", 401, "The token is not valid"),
    TokenReused => ("token_reused", 401, "The refresh token was already used"),
    Forbidden => ("forbidden", 403, "Forbidden"),
    NotFound => ("not_found", 404, "Not found"),
    MethodNotAllowed => ("method_not_allowed", 405, "Method not allowed"),
    PayloadTooLarge => ("payload_too_large", 413, "The request body is too large"),
    UnsupportedMediaType => ("unsupported_media_type", 415, "The request body must be application/json"),
    Overloaded => ("overloaded", 503, "The server is overloaded"),
    AccountSuspended => ("account_suspended", 403, "The account is suspended"),
    LinkRequired => ("link_required", 409, "The identity must be linked first"),
    InvalidState => ("invalid_state", 400, "The request does not fit the current state"),
    ReauthenticationRequired => ("reauthentication_required", 403, "This change needs a recent proof of identity"),
    Unavailable => ("unavailable", 503, "A dependency is unavailable"),
    Internal => ("internal", 500, "Internal error"),
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `login.identifier`.
    pub field: String,
    /// Stable code of what is wrong, e.g. `invalid_email`.
    pub code: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, code: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
        }
    }
}

/// The error every service returns; the HTTP edge renders it as a problem document.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client-facing failure with a stable code and a human-readable detail.
    #[error("{}: {detail}", code.as_str())]
    Problem {
        /// The stable code.
        code: ErrorCode,
        /// What went wrong, safe to show to the client.
        detail: String,
    },
    /// The request was refused field by field (`validation_failed`, `weak_password`, …).
    #[error("{}: {errors:?}", code.as_str())]
    Invalid {
        /// The stable code.
        code: ErrorCode,
        /// One entry per refused field.
        errors: Vec<FieldError>,
    },
    /// A capacity limit was hit; the client should retry after this many seconds.
    #[error("{}: retry after {retry_after_secs}s", code.as_str())]
    Busy {
        /// `overloaded` or `rate_limited`.
        code: ErrorCode,
        /// Seconds until a retry is worthwhile.
        retry_after_secs: u64,
    },
    /// Something broke on our side; the cause is logged, never sent. Shown
    /// with the cause's whole chain, so that any log line of it has it all.
    #[error("internal error: {}", chain(.0.as_ref()))]
    Internal(Cause),
}

impl Error {
    /// A problem with the code's default title as detail.
    pub fn code(code: ErrorCode) -> Self {
        Self::Problem {
            code,
            detail: code.title().to_owned(),
        }
    }

    /// A problem with a specific detail.
    pub fn problem(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Problem {
            code,
            detail: detail.into(),
        }
    }

    /// A validation failure listing every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::Invalid {
            code: ErrorCode::ValidationFailed,
            errors,
        }
    }

    /// A validation failure of one field.
    pub fn field(field: impl Into<String>, code: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, code)])
    }

    /// An internal failure described by `what`.
    pub fn internal(what: impl Into<String>) -> Self {
        Self::Internal(Arc::new(Message(what.into())))
    }

    /// An internal failure: `what` was being done when `source` stopped it.
    pub fn internal_from(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Internal(Arc::new(Context {
            what: what.into(),
            source: Arc::new(source),
        }))
    }

    /// The store error under an internal failure, if a store caused it.
    pub fn store_cause(&self) -> Option<&StoreError> {
        match self {
            Self::Internal(cause) => cause.downcast_ref::<StoreError>(),
            _ => None,
        }
    }

    /// The stable code of this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::Problem { code, .. } | Self::Busy { code, .. } | Self::Invalid { code, .. } => {
                *code
            }
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// What a storage backend can report, free of driver types (the driver's
/// error is kept as the cause of `Unavailable`, for the log).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A unique or foreign-key constraint refused the write.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The constraint (or index) that refused it.
        constraint: String,
    },
    /// The database cannot be reached or failed; shown with the cause's
    /// whole chain.
    #[error("store unavailable: {}", chain(.0.as_ref()))]
    Unavailable(Cause),
}

impl StoreError {
    /// The store failed as `what` says.
    pub fn unavailable(what: impl Into<String>) -> Self {
        Self::Unavailable(Arc::new(Message(what.into())))
    }

    /// The store failed while doing `what`, because of `source`.
    pub fn unavailable_from(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable(Arc::new(Context {
            what: what.into(),
            source: Arc::new(source),
        }))
    }

    /// The driver reported `source`.
    pub fn driver(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Arc::new(source))
    }
}

/// Every store error a flow passes on with `?` is internal: a flow that means
/// "no such thing" (a 404 for the client) says so itself. The store error
/// stays the cause, for the log and for [`Error::store_cause`].
impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::Internal(Arc::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!((400..600).contains(&code.status()), "{s}");
        }
        assert_eq!(seen.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn error_reports_its_code() {
        assert_eq!(
            Error::field("x", "y").error_code(),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            Error::code(ErrorCode::TokenReused).error_code(),
            ErrorCode::TokenReused
        );
        let busy = Error::Busy {
            code: ErrorCode::Overloaded,
            retry_after_secs: 1,
        };
        assert_eq!(busy.error_code().status(), 503);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Refused;

    #[test]
    fn internal_errors_keep_their_whole_cause() {
        let store = StoreError::unavailable_from("pool timed out", Refused);
        let err = Error::from(store);
        assert_eq!(err.error_code(), ErrorCode::Internal);
        assert_eq!(
            err.to_string(),
            "internal error: store unavailable: pool timed out: connection refused"
        );
        assert!(matches!(
            err.store_cause(),
            Some(StoreError::Unavailable(_))
        ));
        let found = Error::from(StoreError::NotFound);
        assert_eq!(found.error_code(), ErrorCode::Internal);
        assert!(matches!(found.store_cause(), Some(StoreError::NotFound)));
        assert_eq!(Error::internal("x").to_string(), "internal error: x");
        assert!(Error::code(ErrorCode::NotFound).store_cause().is_none());
    }
}
