//! `rapidscale announce`: the daemon's announcement endpoints, called
//! over its own API (`api.listen`, with `api.token`).

use crate::announce::AnnounceRequest;

/// What the command asks of the daemon.
#[derive(Debug, Clone)]
pub enum AnnounceCall {
    Announce(AnnounceRequest),
    List,
    Cancel(String),
}

/// The API's base URL for a listen address: a wildcard address is
/// reached on loopback.
pub fn base_url(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, listen.port()))
}

/// Makes the call; Ok is the daemon's JSON answer, pretty-printed.
pub async fn announce(
    base: &str,
    token: Option<&str>,
    call: AnnounceCall,
) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let bearer = |r: reqwest::RequestBuilder| match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let req = match &call {
        AnnounceCall::Announce(body) => {
            bearer(client.post(format!("{base}/api/v1/announce"))).json(body)
        }
        AnnounceCall::List => client.get(format!("{base}/api/v1/announcements")),
        AnnounceCall::Cancel(id) => {
            bearer(client.delete(format!("{base}/api/v1/announcements/{id}")))
        }
    };
    let resp = req.send().await.map_err(|e| format!("{base}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    if status.is_success() {
        Ok(pretty)
    } else {
        Err(format!("{status}: {pretty}"))
    }
}
