//! Console sign-in sessions, kept on the server: the browser holds only a
//! random id in an `HttpOnly; SameSite=Strict` cookie (`Secure` when the
//! gateway's public URL is https), and the server maps it to the SHA-256 of
//! the credential that signed in and the session's CSRF token.
//!
//! # Invariants
//!
//! - The credential's plaintext is never kept: only its hash, which is
//!   checked again on every request ([`crate::auth::Authenticator::caller_of_hash`]),
//!   so rotating a key or token, or deleting the company, ends its console
//!   sessions at once.
//! - A session unused for longer than the idle limit is gone; signing out
//!   removes it, so its cookie is refused from then on.
//! - Session ids are looked up by their SHA-256, so the lookup's timing says
//!   nothing about how much of a guessed id was right; CSRF tokens are
//!   compared in constant time.
//! - The table is bounded: when full, the least recently used session goes.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use subtle::ConstantTimeEq as _;
use tokio::time::Instant;

use crate::token::hash_token;

/// Name of the console's cookie.
pub const COOKIE: &str = "wagate_console";
/// A session unused this long is signed out.
pub const IDLE_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Most console sessions at once.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Clone)]
pub struct ConsoleSession {
    /// SHA-256 of the admin key or company token that signed in.
    pub credential: [u8; 32],
    /// The token every state-changing form must carry.
    pub csrf: String,
    last_seen: Instant,
}

/// Every signed-in browser, by the SHA-256 of its session id.
pub struct ConsoleSessions {
    // parking_lot: held for one map operation, never across `.await`.
    sessions: Mutex<HashMap<[u8; 32], ConsoleSession>>,
    idle_limit: Duration,
}

impl Default for ConsoleSessions {
    fn default() -> Self {
        Self::with_idle_limit(IDLE_LIMIT)
    }
}

impl ConsoleSessions {
    /// A table whose sessions end after `idle_limit` without a request.
    pub fn with_idle_limit(idle_limit: Duration) -> Self {
        Self {
            sessions: Mutex::default(),
            idle_limit,
        }
    }

    /// Signs in the holder of the credential hashed as `credential`: returns
    /// the new session's id (for the cookie). `None` if the system's random
    /// source failed.
    pub fn create(&self, credential: [u8; 32]) -> Option<String> {
        let (id, csrf) = (random_token()?, random_token()?);
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, s| now.duration_since(s.last_seen) < self.idle_limit);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            hash_token(&id),
            ConsoleSession {
                credential,
                csrf,
                last_seen: now,
            },
        );
        Some(id)
    }

    /// The live session of `id`, marked as used now; `None` if there is
    /// none or it was idle too long (then it is removed).
    pub fn touch(&self, id: &str) -> Option<ConsoleSession> {
        let key = hash_token(id);
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let session = sessions.get_mut(&key)?;
        if now.duration_since(session.last_seen) >= self.idle_limit {
            sessions.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Whether the session of `id` still lives, without counting this as a
    /// use (an open live stream does not keep a session alive).
    pub fn is_live(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .get(&hash_token(id))
            .is_some_and(|s| s.last_seen.elapsed() < self.idle_limit)
    }

    /// Signs out: the session of `id` ends.
    pub fn remove(&self, id: &str) {
        self.sessions.lock().remove(&hash_token(id));
    }
}

impl ConsoleSession {
    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// 32 random bytes, base64url.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// The `Set-Cookie` value that holds `id`.
pub fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict{secure}")
}

/// The `Set-Cookie` value that clears the cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{secure}")
}

/// The console cookie's value among a request's `Cookie` headers.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sessions_end_after_inactivity_and_on_sign_out() {
        let sessions = ConsoleSessions::with_idle_limit(Duration::from_secs(60));
        let id = sessions.create([7; 32]).expect("random bytes");
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(sessions.touch(&id).is_some(), "used within the limit");
        tokio::time::advance(Duration::from_secs(50)).await;
        assert!(sessions.touch(&id).is_some(), "each use restarts the clock");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(sessions.touch(&id).is_none(), "idle too long");

        let id = sessions.create([7; 32]).expect("random bytes");
        assert!(sessions.is_live(&id));
        sessions.remove(&id);
        assert!(!sessions.is_live(&id));
        assert!(sessions.touch(&id).is_none(), "signed out");
        assert!(sessions.touch("guess").is_none());
    }

    #[test]
    fn csrf_tokens_and_cookies() {
        let sessions = ConsoleSessions::default();
        let id = sessions.create([1; 32]).expect("random bytes");
        let session = sessions.touch(&id).expect("live");
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches(""));
        assert!(
            !session.csrf_matches(&id),
            "the session id is not the CSRF token"
        );

        let cookie = set_cookie(&id, true);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.ends_with("; Secure"));
        assert!(!set_cookie(&id, false).contains("Secure"));

        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            format!("a=b; {COOKIE}={id}; c=d").parse().unwrap(),
        );
        assert_eq!(cookie_of(&headers), Some(id.as_str()));
        headers.insert(axum::http::header::COOKIE, "a=b".parse().unwrap());
        assert_eq!(cookie_of(&headers), None);
    }
}
