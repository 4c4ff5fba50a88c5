//! A client of the fault proxy's control API ([`super::api`]), for whoever drives a running
//! `fault-proxy` program: the local platform, a Kubernetes platform (the program as a pod), a game
//! day. Every call carries the bearer token; an answer other than success becomes an error that
//! quotes the API's message.

use super::api::{ProxyView, UpstreamBody};
use super::Toxic;
use crate::error::{BrownoutError, Result};
use std::time::Duration;

/// How long one control call may take (the API answers at once; a hung one is a broken proxy).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of the API at `control` (`host:port`).
    pub fn new(control: &str, token: &str) -> Client {
        Client {
            base: format!("http://{control}"),
            token: token.to_string(),
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .no_proxy()
                .build()
                .unwrap_or_default(),
        }
    }

    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response> {
        let fail = |msg: String| {
            BrownoutError::Environment(format!("fault proxy control ({what}): {msg}"))
        };
        let r = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        let msg = body["error"].as_str().unwrap_or("no message").to_string();
        Err(fail(format!("{status}: {msg}")))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every proxy, with its upstreams, toxics and counters.
    pub async fn list(&self) -> Result<Vec<ProxyView>> {
        let r = self
            .call(self.http.get(self.url("/proxies")), "list")
            .await?;
        r.json().await.map_err(|e| {
            BrownoutError::Environment(format!("fault proxy control (list): bad answer: {e}"))
        })
    }

    pub async fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<()> {
        let url = self.url(&format!("/proxies/{proxy}/toxics"));
        let what = format!("add a toxic to {proxy}");
        self.call(self.http.post(url).json(toxic), &what).await?;
        Ok(())
    }

    pub async fn clear_toxics(&self, proxy: &str) -> Result<()> {
        let url = self.url(&format!("/proxies/{proxy}/toxics"));
        let what = format!("remove the toxics of {proxy}");
        self.call(self.http.delete(url), &what).await?;
        Ok(())
    }

    /// Takes the proxy's listener away (`true`) or back.
    pub async fn set_down(&self, proxy: &str, down: bool) -> Result<()> {
        let op = if down { "down" } else { "up" };
        let url = self.url(&format!("/proxies/{proxy}/{op}"));
        self.call(self.http.post(url), &format!("{proxy} {op}"))
            .await?;
        Ok(())
    }

    /// Where the proxy's new connections go, in turn.
    pub async fn set_upstreams(&self, proxy: &str, addrs: &[String]) -> Result<()> {
        let url = self.url(&format!("/proxies/{proxy}/upstream"));
        let body = UpstreamBody {
            addrs: addrs.to_vec(),
        };
        let what = format!("move the upstream of {proxy}");
        self.call(self.http.put(url).json(&body), &what).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault_proxy::FaultProxy;
    use std::sync::Arc;

    async fn serve(token: &str) -> (String, Arc<FaultProxy>) {
        let proxy = Arc::new(
            FaultProxy::start("db", 0, vec!["127.0.0.1:9".into()], 1)
                .await
                .unwrap(),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let app = super::super::api::router(vec![proxy.clone()], token.into());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (addr, proxy)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn calls_change_the_proxy_and_refusals_quote_the_api() {
        let (addr, proxy) = serve("t0ken").await;
        let c = Client::new(&addr, "t0ken");
        let spec: Toxic = serde_json::from_str(r#"{"kind": "reset"}"#).unwrap();
        c.add_toxic("db", &spec).await.unwrap();
        assert_eq!(proxy.toxics().len(), 1);
        assert_eq!(c.list().await.unwrap()[0].toxics, vec![spec]);
        c.clear_toxics("db").await.unwrap();
        assert!(proxy.toxics().is_empty());
        c.set_down("db", true).await.unwrap();
        assert!(proxy.is_down());
        c.set_down("db", false).await.unwrap();
        assert!(!proxy.is_down());
        c.set_upstreams("db", &["127.0.0.1:5432".into()])
            .await
            .unwrap();
        assert_eq!(proxy.upstreams(), vec!["127.0.0.1:5432".to_string()]);

        let err = c.set_down("nope", true).await.unwrap_err().to_string();
        assert!(
            err.contains("404") && err.contains("no proxy 'nope'"),
            "{err}"
        );
        let wrong = Client::new(&addr, "guess");
        let err = wrong.set_down("db", true).await.unwrap_err().to_string();
        assert!(err.contains("401") && err.contains("bearer token"), "{err}");
        assert!(!proxy.is_down(), "a refused call changed nothing");
    }
}
