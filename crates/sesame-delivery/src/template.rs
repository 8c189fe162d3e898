//! Message texts, with the product name configurable.

use crate::Message;

/// What a code is for, as the message tells the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// Creating an account.
    Register,
    /// Signing in.
    SignIn,
    /// Adding this address or number to an account.
    Bind,
    /// Confirming this address or number.
    Verify,
    /// Resetting a password.
    Reset,
}

impl CodeKind {
    fn purpose(self) -> &'static str {
        match self {
            Self::Register => "create your account",
            Self::SignIn => "sign in",
            Self::Bind => "add this address to your account",
            Self::Verify => "confirm this address",
            Self::Reset => "reset your password",
        }
    }
}

/// The message templates.
#[derive(Debug, Clone)]
pub struct Templates {
    product: String,
}

impl Templates {
    /// Templates naming `product` (e.g. "Sesame").
    pub fn new(product: impl Into<String>) -> Self {
        Self {
            product: product.into(),
        }
    }

    /// A code message for `to`, valid for `minutes`.
    pub fn code(&self, to: &str, kind: CodeKind, code: &str, minutes: i64) -> Message {
        let p = &self.product;
        Message {
            to: to.to_owned(),
            subject: format!("Your {p} code: {code}"),
            body: format!(
                "Your {p} code is {code}. Use it to {} within {minutes} minutes.\n\
                 If you did not ask for it, ignore this message.\n{}",
                kind.purpose(),
                if matches!(kind, CodeKind::SignIn | CodeKind::Verify) {
                    "The first use of a code for this address proves it is yours: \
                     unless you are signed in, every other session of the account \
                     ends and any password set before is removed.\n"
                } else {
                    ""
                }
            ),
        }
    }

    /// The same code message in the short form fit for a text message.
    pub fn code_sms(&self, to: &str, kind: CodeKind, code: &str, minutes: i64) -> Message {
        let p = &self.product;
        Message {
            to: to.to_owned(),
            subject: String::new(),
            body: format!(
                "{code} is your {p} code to {}. It expires in {minutes} minutes.",
                kind.purpose()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_the_product_the_code_and_the_purpose() {
        let t = Templates::new("Acme ID");
        let m = t.code("a@example.com", CodeKind::Reset, "012345", 10);
        assert_eq!(m.to, "a@example.com");
        assert!(m.subject.contains("Acme ID") && m.subject.contains("012345"));
        assert!(m.body.contains("reset your password") && m.body.contains("10 minutes"));
        let s = t.code_sms("+4930901820", CodeKind::SignIn, "654321", 10);
        assert!(s.body.starts_with("654321 is your Acme ID code to sign in"));
        assert!(
            !format!("{m:?}").contains("012345"),
            "Debug must not show the code"
        );
    }
}
