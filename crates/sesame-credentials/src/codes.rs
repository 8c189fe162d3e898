//! One-time verification codes: six digits from the OS CSPRNG, stored only as an
//! HMAC bound to `(purpose, login_type, identifier)`, valid for ten minutes and
//! for five wrong tries at most.

use crate::{Login, LoginType};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sesame_core::{Error, ErrorCode};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How long a code stays valid.
pub const CODE_TTL: Duration = Duration::minutes(10);
/// Wrong tries after which a code is dead.
pub const MAX_ATTEMPTS: i64 = 5;

/// What a code may be used for; a code for one purpose never serves another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodePurpose {
    /// Passwordless sign-up.
    Register,
    /// Passwordless sign-in.
    SignIn,
    /// Adding a login method to a signed-in account.
    Bind,
    /// Marking a bound login method verified.
    Verify,
    /// Resetting a password.
    Reset,
}

impl CodePurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SignIn => "sign_in",
            Self::Bind => "bind",
            Self::Verify => "verify",
            Self::Reset => "reset",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Register,
            Self::SignIn,
            Self::Bind,
            Self::Verify,
            Self::Reset,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// A code as stored: never the digits, only their MAC.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationCode {
    /// Row id.
    pub id: Uuid,
    /// What it is for.
    pub purpose: CodePurpose,
    /// The login type it was sent to.
    pub login_type: LoginType,
    /// The normalised identifier it was sent to.
    pub identifier: String,
    /// Who asked, when it matters (the principal binding the login); else empty.
    pub subject: String,
    /// HMAC-SHA256 of the code, bound to purpose and login.
    pub code_hash: Vec<u8>,
    /// The flow that asked for it: returned to the requester only.
    pub flow_id: String,
    /// Tries that named the flow.
    pub attempts: i64,
    /// Tries that named no flow (the login alone).
    pub anonymous_attempts: i64,
    /// When it was issued (the resend cooldown counts from here).
    pub created_at: OffsetDateTime,
    /// End of validity.
    pub expires_at: OffsetDateTime,
    /// When it was used.
    pub consumed_at: Option<OffsetDateTime>,
}

/// Issues and checks codes under a secret key.
#[derive(Clone)]
pub struct CodeBook {
    key: [u8; 32],
    /// Guesses compared with a stored code, for tests and metrics.
    compared: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for CodeBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeBook")
    }
}

impl CodeBook {
    /// A code book keyed with `key` (derived from the master key).
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            compared: Default::default(),
        }
    }

    /// How many guesses have been compared with a stored code so far.
    pub fn comparisons(&self) -> u64 {
        self.compared.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn mac(
        &self,
        purpose: CodePurpose,
        login: &Login,
        subject: &str,
        code: &str,
    ) -> Result<Vec<u8>, Error> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .map_err(|_| Error::internal("bad code key"))?;
        for part in [
            purpose.as_str(),
            login.login_type.as_str(),
            login.identifier.as_str(),
            subject,
            code,
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        Ok(mac.finalize().into_bytes().to_vec())
    }

    /// The name of the resend cooldown of `purpose`, `login` and `subject` in a
    /// shared store: keyed, so the store never holds the address itself.
    pub fn cooldown_key(
        &self,
        purpose: CodePurpose,
        login: &Login,
        subject: &str,
    ) -> Result<String, Error> {
        let mac = self.mac(purpose, login, subject, "cooldown")?;
        Ok(hex(&mac))
    }

    /// A name for `login` in shared state (rate limits, failure counters):
    /// keyed, so the store never holds the identifier itself.
    pub fn login_key(&self, login: &Login) -> Result<String, Error> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .map_err(|_| Error::internal("bad code key"))?;
        for part in [
            "login",
            login.login_type.as_str(),
            login.identifier.as_str(),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        // 128 bits name a login well enough, and keep keys short.
        Ok(hex(&mac.finalize().into_bytes()[..16]))
    }

    /// A new code for `login` asked for by `subject`: the digits to send, and the
    /// record to store.
    pub fn issue(
        &self,
        purpose: CodePurpose,
        login: &Login,
        subject: &str,
        now: OffsetDateTime,
    ) -> Result<(String, VerificationCode), Error> {
        let code = six_digits()?;
        let record = VerificationCode {
            id: Uuid::now_v7(),
            purpose,
            login_type: login.login_type,
            identifier: login.identifier.clone(),
            subject: subject.to_owned(),
            code_hash: self.mac(purpose, login, subject, &code)?,
            flow_id: new_flow_id()?,
            attempts: 0,
            anonymous_attempts: 0,
            created_at: now,
            expires_at: now + CODE_TTL,
            consumed_at: None,
        };
        Ok((code, record))
    }

    /// Checks `code` against a record whose try has been claimed (so its
    /// counters count this guess) at `now`: `code_expired` past its time,
    /// `invalid_code` when used, past its tries, or wrong.
    pub fn check(
        &self,
        record: &VerificationCode,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        let spent = record.attempts > MAX_ATTEMPTS || record.anonymous_attempts > MAX_ATTEMPTS;
        if record.consumed_at.is_some() || spent {
            return Err(Error::code(ErrorCode::InvalidCode));
        }
        if record.expires_at <= now {
            return Err(Error::code(ErrorCode::CodeExpired));
        }
        let login = Login {
            login_type: record.login_type,
            identifier: record.identifier.clone(),
        };
        let expected = self.mac(record.purpose, &login, &record.subject, code.trim())?;
        self.compared
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if bool::from(expected.ct_eq(&record.code_hash)) {
            Ok(())
        } else {
            Err(Error::code(ErrorCode::InvalidCode))
        }
    }
}

/// A new flow id: 122 random bits in UUID form.
pub fn new_flow_id() -> Result<String, Error> {
    let bytes: [u8; 16] = crate::random_bytes()?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Six uniformly distributed decimal digits.
fn six_digits() -> Result<String, Error> {
    // Rejection sampling: 4,294,000,000 is the largest multiple of 10^6 below 2^32.
    loop {
        let n = u32::from_be_bytes(crate::random_bytes()?);
        if n < 4_294_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        Login {
            login_type: LoginType::Email,
            identifier: "ada@example.com".into(),
        }
    }

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> =
            (0..200).map(|_| six_digits().unwrap()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.chars().all(|d| d.is_ascii_digit()))
        );
        assert!(codes.len() > 190);
    }

    #[test]
    fn a_code_checks_only_for_its_purpose_and_login() {
        let book = CodeBook::new([7; 32]);
        let now = OffsetDateTime::UNIX_EPOCH;
        let (code, record) = book.issue(CodePurpose::SignIn, &login(), "", now).unwrap();
        assert!(!record.code_hash.windows(6).any(|w| w == code.as_bytes()));
        assert!(book.check(&record, &code, now).is_ok());
        assert!(book.check(&record, &format!(" {code} "), now).is_ok());
        let wrong = if code == "000000" { "000001" } else { "000000" };
        assert_eq!(
            book.check(&record, wrong, now).unwrap_err().error_code(),
            ErrorCode::InvalidCode
        );
        let other_purpose = VerificationCode {
            purpose: CodePurpose::Reset,
            ..record.clone()
        };
        assert!(book.check(&other_purpose, &code, now).is_err());
        let other_subject = VerificationCode {
            subject: "someone else".into(),
            ..record.clone()
        };
        assert!(book.check(&other_subject, &code, now).is_err());
        let other_key = CodeBook::new([8; 32]);
        assert!(other_key.check(&record, &code, now).is_err());
    }

    #[test]
    fn expiry_attempts_and_use_end_a_code() {
        let book = CodeBook::new([7; 32]);
        let now = OffsetDateTime::UNIX_EPOCH;
        let (code, record) = book.issue(CodePurpose::Verify, &login(), "", now).unwrap();
        let later = now + CODE_TTL;
        assert_eq!(
            book.check(&record, &code, later).unwrap_err().error_code(),
            ErrorCode::CodeExpired
        );
        let last_try = VerificationCode {
            attempts: MAX_ATTEMPTS,
            ..record.clone()
        };
        assert!(book.check(&last_try, &code, now).is_ok());
        let tired = VerificationCode {
            attempts: MAX_ATTEMPTS + 1,
            ..record.clone()
        };
        assert_eq!(
            book.check(&tired, &code, now).unwrap_err().error_code(),
            ErrorCode::InvalidCode
        );
        let used = VerificationCode {
            consumed_at: Some(now),
            ..record
        };
        assert_eq!(
            book.check(&used, &code, now).unwrap_err().error_code(),
            ErrorCode::InvalidCode
        );
    }
}
