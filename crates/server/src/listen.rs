//! Accepting connections, with limits a slow or hostile client cannot
//! get past: a time-out for a request's headers (hyper's
//! `header_read_timeout`), a time-out for each part of its body (tower-http's
//! `RequestBodyTimeoutLayer`), a time-out for the TLS handshake, and a cap
//! on the connections one address holds open at once. A connection that
//! sends half its headers, or announces a body and never sends it, is
//! closed after the time-out; a connection over the cap is closed at once.
//!
//! Behind a load balancer every connection comes from the balancer's
//! address: raise the cap (`--max-connections-per-address`) or turn it off
//! (0) there, and let the balancer limit clients.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// How long a client may take, and how many connections one address may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the first byte a request's head is awaited (and for an idle
    /// kept-alive connection, from the last answer) until its headers are
    /// complete; also bounds the TLS handshake.
    pub header_read_timeout: Duration,
    /// The longest wait for the next part of a request's body.
    pub body_read_timeout: Duration,
    /// Connections one client address may hold open at once; 0: no cap.
    pub per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            per_address: 64,
        }
    }
}

/// Open connections per address.
#[derive(Default)]
struct Counts(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place under its address's cap, given back when dropped.
struct Slot {
    counts: Arc<Counts>,
    address: IpAddr,
}

impl Slot {
    fn take(counts: &Arc<Counts>, address: IpAddr, cap: usize) -> Option<Slot> {
        let mut map = counts.0.lock().unwrap_or_else(|p| p.into_inner());
        let open = map.entry(address).or_default();
        if cap > 0 && *open >= cap {
            return None;
        }
        *open += 1;
        Some(Slot {
            counts: counts.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = map.get_mut(&self.address) {
            *open -= 1;
            if *open == 0 {
                map.remove(&self.address);
            }
        }
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) within `limits`
/// until `shutdown` completes; open connections then get five seconds to
/// finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout));
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let counts = Arc::new(Counts::default());
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a moment rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = Slot::take(&counts, peer.ip(), limits.per_address) else {
            tracing::warn!(client = %peer.ip(), cap = limits.per_address, "connection refused: too many from one address");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(stream, peer, app, &http, watcher).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => connection(stream, peer, app, &http, watcher).await,
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(client = %peer.ip(), "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(Duration::from_secs(5)) => {},
    }
    Ok(())
}

/// Serves one connection until it ends (or the time-outs end it).
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    http: &http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let request = request.map(axum::body::Body::new);
            app.oneshot(request).await
        }
    });
    let served = http.serve_connection(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(served).await {
        tracing::debug!(%error, client = %peer.ip(), "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_given_back_when_its_connection_ends() {
        let counts = Arc::new(Counts::default());
        let address: IpAddr = "127.0.0.1".parse().unwrap();
        let first = Slot::take(&counts, address, 2).unwrap();
        let second = Slot::take(&counts, address, 2).unwrap();
        assert!(Slot::take(&counts, address, 2).is_none());
        assert!(Slot::take(&counts, "127.0.0.2".parse().unwrap(), 2).is_some());
        drop(first);
        assert!(Slot::take(&counts, address, 2).is_some());
        drop(second);
        assert!(Slot::take(&counts, address, 0).is_some(), "0: no cap");
    }
}
