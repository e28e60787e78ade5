//! The running simulator and the test API common to every concern: the
//! URL, the clock, paging knobs, injected faults and the request log. The
//! API of each concern (users, devices, mail, passes, sign-in) is next to
//! its handlers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::TENANT_ID;
use crate::server::{Shared, handle};
use crate::state::{Fault, FaultKind, Logged, State};

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    shared: Arc<Shared>,
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Simulator {
    /// Starts a simulator on a free loopback port.
    pub fn start() -> Simulator {
        Simulator::start_on(0)
    }

    /// Starts a simulator on `127.0.0.1:port` (0: any free port).
    pub fn start_on(port: u16) -> Simulator {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .expect("the simulator binds a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let address = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(format!("http://{address}"))),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let app = axum::Router::new().fallback(handle).with_state(served);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Simulator {
            shared,
            address,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().expect("simulator state")
    }

    /// `http://127.0.0.1:PORT`: the sign-in authority and the Graph URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The tenant id.
    pub fn tenant(&self) -> &'static str {
        TENANT_ID
    }

    /// Items per page of the token inventory (users page as Graph does:
    /// 100 by default, up to 999 with `$top`).
    pub fn set_page_size(&self, size: usize) {
        self.state().page_size = size.max(1);
    }

    /// Makes `@odata.nextLink` point at another host (a client must not
    /// follow it with its token).
    pub fn set_next_link_base(&self, url: &str) {
        self.state().next_link_base = Some(url.trim_end_matches('/').into());
    }

    /// Moves the simulator's clock (seconds; negative is earlier).
    pub fn set_clock_offset(&self, seconds: i64) {
        self.state().clock_offset = seconds;
    }

    /// The simulator's time.
    pub fn now(&self) -> u64 {
        self.state().now()
    }

    /// The next `times` requests whose method is `method` (any if `None`)
    /// and whose path contains `path_contains` meet `kind`.
    pub fn fault(&self, method: Option<&str>, path_contains: &str, times: u32, kind: FaultKind) {
        self.fault_later(method, path_contains, 0, times, kind);
    }

    /// Like [`Simulator::fault`], after `skip` matching requests pass.
    pub fn fault_later(
        &self,
        method: Option<&str>,
        path_contains: &str,
        skip: u32,
        times: u32,
        kind: FaultKind,
    ) {
        self.state().faults.push(Fault {
            method: method.map(|m| m.parse().expect("an HTTP method")),
            path_contains: path_contains.into(),
            skip,
            remaining: times,
            kind,
        });
    }

    /// Removes every fault not yet met.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.state().log.clear();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
