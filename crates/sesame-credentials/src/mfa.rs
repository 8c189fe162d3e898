//! Second factors: TOTP (RFC 6238) and backup codes.
//!
//! TOTP is fixed at what every authenticator app reads: HMAC-SHA1, 6 digits,
//! 30-second steps, one step of skew either way. A code is accepted by the
//! time step it matched, and the caller stores that step with a
//! compare-and-set so that no step is accepted twice (the crate leaves replay
//! to its caller).
//!
//! Backup codes are 16 characters of Crockford's base32 (80 bits), shown as
//! four groups of four, and stored as an HMAC-SHA256 under a server secret.

use hmac::{Hmac, Mac};
use sesame_core::{Error, PrincipalId};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use totp_rs::{Algorithm, Builder, Totp};

/// Digits of a TOTP code.
pub const TOTP_DIGITS: u8 = 6;
/// Seconds per time step.
pub const TOTP_STEP_SECS: u64 = 30;
/// Steps accepted either side of the current one.
pub const TOTP_SKEW: u16 = 1;
/// Bytes of a TOTP seed (160 bits, as RFC 4226 recommends).
pub const TOTP_SEED_LEN: usize = 20;
/// Backup codes handed out at once.
pub const BACKUP_CODES: usize = 10;
/// Characters of a backup code.
const BACKUP_CODE_LEN: usize = 16;
/// Crockford's base32: no I, L, O or U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A TOTP seed in the clear: kept only as long as a check or an enrolment.
pub struct TotpSeed(zeroize::Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSeed(..)")
    }
}

impl TotpSeed {
    /// A fresh random seed.
    pub fn generate() -> Result<Self, Error> {
        Ok(Self(zeroize::Zeroizing::new(
            crate::random_bytes::<TOTP_SEED_LEN>()?.to_vec(),
        )))
    }

    /// A seed from its bytes (as opened from the store).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(zeroize::Zeroizing::new(bytes))
    }

    /// The bytes, to seal.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, digits: u8, algorithm: Algorithm) -> Result<Totp, Error> {
        Builder::new()
            .with_algorithm(algorithm)
            .with_digits(digits)
            .with_skew(TOTP_SKEW)
            .with_step_duration(TOTP_STEP_SECS)
            .with_secret(self.0.to_vec())
            .build()
            .map_err(|e| Error::internal_from("TOTP", e))
    }

    /// The seed as authenticator apps take it: base32 without padding.
    pub fn base32(&self) -> Result<String, Error> {
        Ok(self
            .totp(TOTP_DIGITS, Algorithm::SHA1)?
            .secret()
            .to_base32())
    }

    /// The `otpauth://totp/…` URI for `account` at `issuer`. Neither may hold a
    /// colon (the label's separator): one that does is replaced by a space.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Result<String, Error> {
        let clean = |s: &str| s.replace(':', " ");
        let account = clean(account);
        let account = if account.trim().is_empty() {
            "account".to_owned()
        } else {
            account
        };
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(TOTP_DIGITS)
            .with_step_duration(TOTP_STEP_SECS)
            .with_secret(self.0.to_vec())
            .with_issuer(Some(clean(issuer)))
            .with_account_name(account)
            .build()
            .and_then(|t| t.to_url())
            .map_err(|e| Error::internal_from("TOTP URI", e))
    }

    /// The time step `code` matches at `unix_time`, within the skew; `None`
    /// for a wrong or malformed code.
    pub fn matching_step(&self, code: &str, unix_time: i64) -> Result<Option<i64>, Error> {
        self.matching_step_with(code, unix_time, TOTP_DIGITS, Algorithm::SHA1)
    }

    fn matching_step_with(
        &self,
        code: &str,
        unix_time: i64,
        digits: u8,
        algorithm: Algorithm,
    ) -> Result<Option<i64>, Error> {
        let code = code.trim();
        if code.len() != usize::from(digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let Ok(time) = u64::try_from(unix_time) else {
            return Ok(None);
        };
        Ok(self
            .totp(digits, algorithm)?
            .check(code, time)
            .and_then(|step| i64::try_from(step).ok()))
    }

    /// The code of the step holding `unix_time`.
    pub fn code_at(&self, unix_time: i64) -> Result<String, Error> {
        let time = u64::try_from(unix_time).map_err(|_| Error::internal("time before 1970"))?;
        Ok(self
            .totp(TOTP_DIGITS, Algorithm::SHA1)?
            .generate(time)
            .to_string())
    }
}

/// The time step holding `unix_time`.
pub fn step_of(unix_time: i64) -> i64 {
    unix_time.div_euclid(TOTP_STEP_SECS as i64)
}

/// Ten fresh backup codes, as shown to the user (`XXXX-XXXX-XXXX-XXXX`).
pub fn new_backup_codes() -> Result<Vec<String>, Error> {
    (0..BACKUP_CODES)
        .map(|_| {
            // 80 bits: ten bytes, five bits per character.
            let bytes = crate::random_bytes::<10>()?;
            let mut bits: u128 = 0;
            for b in bytes {
                bits = (bits << 8) | u128::from(b);
            }
            let chars: Vec<u8> = (0..BACKUP_CODE_LEN)
                .rev()
                .map(|i| ALPHABET[((bits >> (5 * i)) & 31) as usize])
                .collect();
            let groups: Vec<&str> = chars
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect();
            Ok(groups.join("-"))
        })
        .collect()
}

/// A backup code as typed, in its canonical form: case, spaces and hyphens
/// ignored, and the letters people confuse with digits read as Crockford
/// reads them (O as 0, I and L as 1). `None` when it cannot be one.
pub fn normalise_backup_code(input: &str) -> Option<String> {
    let mut out = String::with_capacity(BACKUP_CODE_LEN);
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
            return None;
        }
        out.push(c);
        if out.len() > BACKUP_CODE_LEN {
            return None;
        }
    }
    (out.len() == BACKUP_CODE_LEN).then_some(out)
}

/// Hashes backup codes under a server secret, and counts the guesses it
/// compares (what racing tests measure).
#[derive(Clone)]
pub struct BackupCodeHasher {
    key: zeroize::Zeroizing<[u8; 32]>,
    evaluated: Arc<AtomicU64>,
}

impl std::fmt::Debug for BackupCodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupCodeHasher")
    }
}

impl BackupCodeHasher {
    /// A hasher keyed with the server's backup-code secret.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key: zeroize::Zeroizing::new(key),
            evaluated: Arc::default(),
        }
    }

    /// The keyed hash of a normalised code, bound to its principal.
    pub fn hash(&self, principal: PrincipalId, code: &str) -> Result<Vec<u8>, Error> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_ref())
            .map_err(|_| Error::internal("bad backup-code key"))?;
        mac.update(principal.0.as_bytes());
        mac.update(code.as_bytes());
        Ok(mac.finalize().into_bytes().to_vec())
    }

    /// Notes one second-factor guess evaluated.
    pub fn note_evaluated(&self) {
        self.evaluated.fetch_add(1, Ordering::Relaxed);
    }

    /// Second-factor guesses evaluated so far.
    pub fn evaluated(&self) -> u64 {
        self.evaluated.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: the 20-byte SHA-1 seed, 8 digits.
    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let seed = TotpSeed::from_bytes(b"12345678901234567890".to_vec());
        for (time, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let step = seed
                .matching_step_with(code, time, 8, Algorithm::SHA1)
                .unwrap();
            assert_eq!(step, Some(step_of(time)), "T = {time}");
        }
    }

    /// The SHA-256 and SHA-512 vectors of the same appendix (their seeds are
    /// the ASCII digits repeated to 32 and 64 bytes).
    #[test]
    fn rfc6238_appendix_b_sha256_and_sha512_vectors() {
        let sha256 = TotpSeed::from_bytes(b"12345678901234567890123456789012".to_vec());
        let sha512 = TotpSeed::from_bytes(
            b"1234567890123456789012345678901234567890123456789012345678901234".to_vec(),
        );
        for (time, c256, c512) in [
            (59, "46119246", "90693936"),
            (1_111_111_109, "68084774", "25091201"),
            (1_111_111_111, "67062674", "99943326"),
            (1_234_567_890, "91819424", "93441116"),
            (2_000_000_000, "90698825", "38618901"),
            (20_000_000_000, "77737706", "47863826"),
        ] {
            let step = Some(step_of(time));
            let got = sha256.matching_step_with(c256, time, 8, Algorithm::SHA256);
            assert_eq!(got.unwrap(), step, "SHA-256 at {time}");
            let got = sha512.matching_step_with(c512, time, 8, Algorithm::SHA512);
            assert_eq!(got.unwrap(), step, "SHA-512 at {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_only() {
        let seed = TotpSeed::generate().unwrap();
        let now = 1_700_000_000;
        for (offset, expected) in [(-60, None), (-30, Some(-1)), (0, Some(0)), (30, Some(1))] {
            let code = seed.code_at(now + offset).unwrap();
            let got = seed.matching_step(&code, now).unwrap();
            // A code may by chance equal another step's: only ever a match.
            if let Some(delta) = expected {
                assert_eq!(got, Some(step_of(now) + delta), "offset {offset}");
            } else if let Some(step) = got {
                assert!((step - step_of(now)).abs() <= 1);
            }
        }
        assert_eq!(seed.matching_step("12345", now).unwrap(), None);
        assert_eq!(seed.matching_step("12345a", now).unwrap(), None);
        assert_eq!(seed.matching_step("", now).unwrap(), None);
    }

    #[test]
    fn the_uri_names_issuer_account_and_seed() {
        let seed = TotpSeed::from_bytes(b"12345678901234567890".to_vec());
        let uri = seed.otpauth_uri("Sesame", "ada@example.com").unwrap();
        assert_eq!(
            uri,
            "otpauth://totp/Sesame:ada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Sesame"
        );
        assert_eq!(seed.base32().unwrap(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = seed.otpauth_uri("A:B", "x:y").unwrap();
        assert!(uri.starts_with("otpauth://totp/A%20B:x%20y?"), "{uri}");
    }

    #[test]
    fn backup_codes_are_ten_distinct_80_bit_codes() {
        let codes = new_backup_codes().unwrap();
        assert_eq!(codes.len(), BACKUP_CODES);
        let mut seen = std::collections::HashSet::new();
        for code in &codes {
            assert_eq!(code.len(), 19, "{code}");
            assert_eq!(code.matches('-').count(), 3);
            let canonical = normalise_backup_code(code).unwrap();
            assert_eq!(canonical, code.replace('-', ""));
            assert!(seen.insert(canonical));
        }
    }

    #[test]
    fn backup_codes_read_as_typed() {
        let canonical = "0123456789ABCDEF";
        for typed in [
            "0123-4567-89AB-CDEF",
            "0123 4567 89ab cdef",
            "o123-4567-89ab-cdef",
            " 0123456789abcdef ",
        ] {
            assert_eq!(normalise_backup_code(typed).as_deref(), Some(canonical));
        }
        assert_eq!(
            normalise_backup_code("I1L1-0000-0000-0000").as_deref(),
            Some("1111000000000000")
        );
        for bad in [
            "",
            "0123-4567-89AB-CDE",
            "0123-4567-89AB-CDEF0",
            "0123-4567-89AB-CDEU",
            "ü123-4567-89AB-CDEF",
        ] {
            assert_eq!(normalise_backup_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn backup_code_hashes_bind_key_principal_and_code() {
        let a = BackupCodeHasher::new([1; 32]);
        let b = BackupCodeHasher::new([2; 32]);
        let p = PrincipalId::new();
        let q = PrincipalId::new();
        let code = "0123456789ABCDEF";
        assert_eq!(a.hash(p, code).unwrap(), a.hash(p, code).unwrap());
        assert_ne!(a.hash(p, code).unwrap(), b.hash(p, code).unwrap());
        assert_ne!(a.hash(p, code).unwrap(), a.hash(q, code).unwrap());
        assert_ne!(
            a.hash(p, code).unwrap(),
            a.hash(p, "0123456789ABCDEG").unwrap()
        );
    }
}
