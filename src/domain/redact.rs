//! `Debug` for types that hold a secret (tokens, keys, webhook secrets,
//! pairing-link tokens, QR and pair codes, phone numbers): [`redacted_debug!`]
//! writes an impl that shows only the fields named as harmless and `..` for
//! the rest, so a stray `?value` in a log line or a test failure never prints
//! a secret. A field added later is hidden until someone names it.

/// `redacted_debug!(Type { shown_a, shown_b })`: `Debug` for `Type` showing
/// only `shown_a` and `shown_b` (`Type { shown_a: …, shown_b: …, .. }`).
macro_rules! redacted_debug {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use redacted_debug;

#[cfg(test)]
mod tests {
    struct Credential {
        name: &'static str,
        secret: &'static str,
    }

    redacted_debug!(Credential { name });

    #[test]
    fn only_named_fields_are_shown() {
        let credential = Credential {
            name: "acme",
            secret: "hunter2",
        };
        assert_eq!(
            format!("{credential:?}"),
            r#"Credential { name: "acme", .. }"#
        );
        assert_eq!(credential.secret.len(), 7);
    }
}
