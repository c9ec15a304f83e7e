//! Test and sandbox builds only (`test-server` or `sandbox` feature):
//! whatsapp-rust's HTTP client for a gateway **process** that talks to the
//! fake WhatsApp server, whose media host is announced as
//! `https://127.0.0.1:PORT` but serves plain HTTP.
//!
//! In-process tests inject such a client through
//! [`crate::app::BuildOptions`]; a separate `wagate` process (benchmarks, a
//! black-box test) has no code to inject it, so it opts in with the
//! environment variable [`ENV`]. The requests go through the real
//! [`ReqwestHttpClient`] (the same streaming upload as in production), with
//! only the scheme rewritten, and only for loopback hosts: any other host is
//! refused, so the switch can never send a request in clear over a network.
//! `wagate --sandbox` installs it without the variable ([`client`]). A
//! default build has neither this module nor the variable.

use std::sync::Arc;

use anyhow::Context as _;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};

use super::client::ReqwestHttpClient;

/// `WAGATE_TEST_PLAIN_LOOPBACK_HTTP=1` installs [`PlainLoopbackHttp`].
pub const ENV: &str = "WAGATE_TEST_PLAIN_LOOPBACK_HTTP";

/// The client [`ENV`] asks for, or `None` when it is not set to `1`.
pub fn from_env() -> Option<Arc<dyn HttpClient>> {
    if std::env::var(ENV).ok().as_deref() != Some("1") {
        return None;
    }
    match client() {
        Ok(client) => {
            tracing::warn!(
                "{ENV}=1: WhatsApp media goes over plain HTTP to loopback hosts only (test build)"
            );
            Some(client)
        }
        Err(error) => {
            tracing::error!(%error, "cannot build the plain loopback HTTP client");
            None
        }
    }
}

/// A new [`PlainLoopbackHttp`].
pub fn client() -> anyhow::Result<Arc<dyn HttpClient>> {
    Ok(Arc::new(PlainLoopbackHttp(ReqwestHttpClient::new()?)))
}

/// [`ReqwestHttpClient`] with `https://127.0.0.1:…` / `https://[::1]:…` /
/// `https://localhost:…` requested as `http://…`; other hosts refused.
#[derive(Debug, Clone)]
pub struct PlainLoopbackHttp(ReqwestHttpClient);

/// `url` with its scheme made `http`, if its host is a loopback one.
fn plain_loopback(url: &str) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url).context("not a URL")?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    anyhow::ensure!(
        loopback,
        "only loopback hosts are reachable in this test build"
    );
    parsed
        .set_scheme("http")
        .map_err(|()| anyhow::anyhow!("cannot make the URL plain HTTP"))?;
    Ok(parsed.into())
}

#[async_trait::async_trait]
impl HttpClient for PlainLoopbackHttp {
    async fn execute(&self, mut request: HttpRequest) -> anyhow::Result<HttpResponse> {
        request.url = plain_loopback(&request.url)?;
        self.0.execute(request).await
    }

    fn supports_upload_streaming(&self) -> bool {
        true
    }

    fn execute_upload(
        &self,
        mut request: HttpRequest,
        body: wacore::net::UploadBody,
        content_length: u64,
    ) -> anyhow::Result<HttpResponse> {
        request.url = plain_loopback(&request.url)?;
        self.0.execute_upload(request, body, content_length)
    }
}

#[cfg(test)]
mod tests {
    use super::plain_loopback;

    #[test]
    fn only_loopback_hosts_are_rewritten() {
        assert_eq!(
            plain_loopback("https://127.0.0.1:4000/mms/image/x?auth=1").unwrap(),
            "http://127.0.0.1:4000/mms/image/x?auth=1"
        );
        assert_eq!(
            plain_loopback("https://[::1]:4000/v").unwrap(),
            "http://[::1]:4000/v"
        );
        assert!(plain_loopback("https://localhost:4000/v").is_ok());
        for refused in [
            "https://mmg.whatsapp.net/mms/image/x",
            "https://10.0.0.1:4000/v",
            "https://127.0.0.1.example.com/v",
            "not a url",
        ] {
            assert!(plain_loopback(refused).is_err(), "{refused}");
        }
    }
}
