//! Opaque keyset cursors: the last id of a page and a fingerprint of the
//! filters that made it, so that a cursor cannot continue another walk.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A query parameter, with an empty value read as absent (`?cursor=` is what
/// a client sends for "from the start").
pub(crate) fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A fingerprint of a walk's filters.
pub(crate) fn fingerprint(filters: &[&Option<String>]) -> [u8; 8] {
    let mut hash = Sha256::new();
    for f in filters {
        match f {
            Some(v) => {
                hash.update([1]);
                hash.update((v.len() as u64).to_be_bytes());
                hash.update(v.as_bytes());
            }
            None => hash.update([0]),
        }
    }
    let mut out = [0; 8];
    out.copy_from_slice(&hash.finalize()[..8]);
    out
}

/// The cursor after `last` for the walk `filters`.
pub(crate) fn write(last: Uuid, filters: &[u8; 8]) -> String {
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(last.as_bytes());
    bytes.extend_from_slice(filters);
    B64.encode(bytes)
}

/// Where a cursor continues; the field code when it is not one of ours
/// or belongs to another walk.
pub(crate) fn read(text: &str, filters: &[u8; 8]) -> Result<Uuid, &'static str> {
    let bytes = B64.decode(text).map_err(|_| "invalid")?;
    let (id, walk) = bytes.split_at_checked(16).ok_or("invalid")?;
    if walk.len() != 8 {
        return Err("invalid");
    }
    if walk != filters {
        return Err("filters_changed");
    }
    Uuid::from_slice(id).map_err(|_| "invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_continues_only_its_own_walk() {
        let id = Uuid::now_v7();
        let a = fingerprint(&[&Some("ada".into()), &None]);
        let b = fingerprint(&[&None, &Some("ada".into())]);
        let c = fingerprint(&[&Some("ad".into()), &Some("a".into())]);
        assert_ne!(a, b);
        assert_ne!(fingerprint(&[&Some("ada".into()), &Some("".into())]), a);
        assert_ne!(c, fingerprint(&[&Some("a".into()), &Some("da".into())]));
        let cursor = write(id, &a);
        assert_eq!(read(&cursor, &a), Ok(id));
        assert_eq!(read(&cursor, &b), Err("filters_changed"));
        assert_eq!(read("not a cursor", &a), Err("invalid"));
        assert_eq!(read(&B64.encode([1u8; 10]), &a), Err("invalid"));
    }
}
