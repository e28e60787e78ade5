//! A simulator of Microsoft Entra's sign-in service and of the Microsoft
//! Graph hardware OATH API, on loopback, for oathdesk's tests and demos.
//!
//! It follows what Microsoft documents (`../shared/specs/entra.md` §2–§3):
//! the JSON shapes of `hardwareOathDevices` and `hardwareOathMethods`, the
//! status codes (`201` create, `204` activate/unassign/delete, `403` without
//! the permission), paging with `@odata.nextLink`, `$filter` by serial
//! number, the five-OATH-methods-per-user limit, update and delete only of
//! unassigned tokens, and activation that accepts only a correct TOTP of the
//! secret it received, within Entra's activation window (±1 day for 30 s
//! tokens, ±2 days for 60 s tokens), never a code of a step at or before the
//! last one used (replay). Where Microsoft documents nothing, the simulator
//! makes a choice and says so (marked *inference* below):
//!
//! - a serial number already in the inventory is refused on create with
//!   `400 Request_BadRequest` (*inference*: Graph's uniqueness error for
//!   directory objects); a bulk create is all or nothing (*inference*);
//! - the bulk create (`PATCH` with `#$delta`) answers `200` with the created
//!   devices, each with its `@contentId` (*inference*);
//! - a wrong activation code answers `400` and marks the token
//!   `failedActivation` (the status exists; the answer is *inference*);
//! - `assignAndActivateBySerialNumber` refuses a serial two tokens share
//!   (*inference*: the call cannot know which one is meant).
//!
//! Tests add apps, users and admins, inject faults (throttling with
//! `Retry-After`, server errors before or after a change is made), move the
//! clock, and read the state back. The client under test is oathdesk's
//! real one; nothing of it is mocked.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use oathdesk_formats::entra::{GraphDevice, GraphIdentity, GraphPayload};
use oathdesk_otp::{Algorithm, Digits, Secret, TimeStep, Totp, Window};
use serde_json::{Value, json};

/// The permissions of Microsoft Graph the simulator checks.
pub mod permissions {
    pub const POLICY_READ: &str = "Policy.Read.All";
    pub const POLICY_WRITE: &str = "Policy.ReadWrite.AuthenticationMethod";
    pub const METHODS_READ: &str = "UserAuthenticationMethod.Read.All";
    pub const METHODS_WRITE: &str = "UserAuthenticationMethod.ReadWrite.All";
    pub const USERS_READ: &str = "User.Read.All";
    /// Everything oathdesk needs.
    pub const ALL: [&str; 3] = [POLICY_WRITE, METHODS_WRITE, USERS_READ];
}

/// Entra admin roles the simulator checks for delegated sign-in.
pub mod roles {
    pub const GLOBAL_ADMIN: &str = "Global Administrator";
    pub const AUTH_POLICY_ADMIN: &str = "Authentication Policy Administrator";
    pub const AUTH_ADMIN: &str = "Authentication Administrator";
    pub const PRIVILEGED_AUTH_ADMIN: &str = "Privileged Authentication Administrator";
}

/// The most OATH methods (hardware and software together) a user may have.
pub const MAX_OATH_METHODS: usize = 5;

/// One token in the simulated inventory.
#[derive(Clone, Debug)]
pub struct SimDevice {
    pub id: String,
    pub display_name: Option<String>,
    pub serial: String,
    pub manufacturer: String,
    pub model: String,
    pub period: u64,
    pub algorithm: Algorithm,
    /// `available`, `assigned`, `activated` or `failedActivation`.
    pub status: String,
    pub assigned_to: Option<String>,
    pub method_id: Option<String>,
    /// The counter of the last code accepted (replay protection).
    pub last_counter: Option<u64>,
    secret: Secret,
}

/// A directory user.
#[derive(Clone, Debug)]
pub struct SimUser {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    /// Holds an admin role (only privileged admins may manage their tokens).
    pub admin: bool,
    /// Authenticator apps registered (they count towards the OATH limit).
    pub software_oath: usize,
    /// Roles, for delegated sign-in.
    pub roles: Vec<String>,
}

struct App {
    secret: Option<String>,
    /// The certificate's public key (PKCS#1 DER) and SHA-1 `x5t`.
    certificate: Option<(Vec<u8>, String)>,
    permissions: Vec<String>,
}

#[derive(Clone, Debug)]
enum Principal {
    App { permissions: Vec<String> },
    User { user_id: String },
}

struct Grant {
    principal: Principal,
    expires_at: u64,
}

struct DeviceCodeGrant {
    client_id: String,
    user_code: String,
    approved_by: Option<String>,
    expires_at: u64,
}

/// What a fault does to matching requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `429` with `Retry-After: seconds`, nothing done.
    Throttle { retry_after: u64 },
    /// This status, nothing done.
    Fail { status: u16 },
    /// The change is made, then this status is answered (a lost answer).
    FailAfter { status: u16 },
}

#[derive(Clone, Debug)]
struct Fault {
    method: Option<Method>,
    path_contains: String,
    /// Matching requests that pass before the fault starts.
    skip: u32,
    remaining: u32,
    kind: FaultKind,
}

/// A request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
}

struct State {
    url: String,
    tenant: String,
    domain: String,
    apps: HashMap<String, App>,
    users: BTreeMap<String, SimUser>,
    devices: Vec<SimDevice>,
    grants: HashMap<String, Grant>,
    refresh_tokens: HashMap<String, String>,
    device_codes: HashMap<String, DeviceCodeGrant>,
    auto_approve: Option<String>,
    policy_state: String,
    page_size: usize,
    next_link_base: Option<String>,
    clock_offset: i64,
    faults: Vec<Fault>,
    log: Vec<Logged>,
    ids: u64,
}

struct Shared {
    state: Mutex<State>,
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    shared: Arc<Shared>,
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The tenant id every simulator uses.
pub const TENANT_ID: &str = "72f988bf-0000-4000-8000-00000000cafe";

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
            state: Mutex::new(State {
                url: format!("http://{address}"),
                tenant: TENANT_ID.into(),
                domain: "contoso.onmicrosoft.com".into(),
                apps: HashMap::new(),
                users: BTreeMap::new(),
                devices: Vec::new(),
                grants: HashMap::new(),
                refresh_tokens: HashMap::new(),
                device_codes: HashMap::new(),
                auto_approve: None,
                policy_state: "enabled".into(),
                page_size: 100,
                next_link_base: None,
                clock_offset: 0,
                faults: Vec::new(),
                log: Vec::new(),
                ids: 0,
            }),
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

    fn state(&self) -> MutexGuard<'_, State> {
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

    /// Registers an app with a client secret and application permissions.
    pub fn add_app(&self, client_id: &str, secret: &str, permissions: &[&str]) {
        self.state().apps.insert(
            client_id.into(),
            App {
                secret: Some(secret.into()),
                certificate: None,
                permissions: permissions.iter().map(|p| p.to_string()).collect(),
            },
        );
    }

    /// Registers an app that proves itself with a certificate (PEM).
    pub fn add_certificate_app(
        &self,
        client_id: &str,
        certificate_pem: &str,
        permissions: &[&str],
    ) {
        use sha1::Digest;
        use x509_cert::der::{DecodePem, Encode};
        // The PEM may hold the private key too: take the certificate block.
        let begin = certificate_pem
            .find("-----BEGIN CERTIFICATE-----")
            .expect("a certificate block");
        let end = certificate_pem[begin..]
            .find("-----END CERTIFICATE-----")
            .map(|e| begin + e + "-----END CERTIFICATE-----".len())
            .expect("the end of the certificate block");
        let certificate = x509_cert::Certificate::from_pem(&certificate_pem.as_bytes()[begin..end])
            .expect("a PEM certificate");
        let der = certificate.to_der().expect("a certificate re-encodes");
        let x5t = data_encoding::BASE64URL_NOPAD.encode(&sha1::Sha1::digest(&der));
        let public_key = certificate
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        self.state().apps.insert(
            client_id.into(),
            App {
                secret: None,
                certificate: Some((public_key, x5t)),
                permissions: permissions.iter().map(|p| p.to_string()).collect(),
            },
        );
    }

    /// Adds a directory user; returns the object id.
    pub fn add_user(&self, upn: &str, admin: bool) -> String {
        let mut state = self.state();
        let id = state.new_id();
        state.users.insert(
            id.clone(),
            SimUser {
                id: id.clone(),
                upn: upn.into(),
                display_name: upn.split('@').next().unwrap_or(upn).into(),
                admin,
                software_oath: 0,
                roles: Vec::new(),
            },
        );
        id
    }

    /// Gives a user admin roles (for device-code sign-in).
    pub fn set_roles(&self, upn: &str, roles: &[&str]) {
        let mut state = self.state();
        if let Some(user) = state.users.values_mut().find(|u| u.upn == upn) {
            user.roles = roles.iter().map(|r| r.to_string()).collect();
            user.admin = !roles.is_empty();
        }
    }

    /// Gives a user authenticator-app registrations (they count towards the
    /// five OATH methods).
    pub fn set_software_oath(&self, upn: &str, count: usize) {
        let mut state = self.state();
        if let Some(user) = state.users.values_mut().find(|u| u.upn == upn) {
            user.software_oath = count;
        }
    }

    /// Completes the sign-in of a shown device code as this user.
    pub fn approve_device_code(&self, user_code: &str, upn: &str) -> bool {
        let mut state = self.state();
        let Some(user_id) = state
            .users
            .values()
            .find(|u| u.upn == upn)
            .map(|u| u.id.clone())
        else {
            return false;
        };
        match state
            .device_codes
            .values_mut()
            .find(|g| g.user_code == user_code)
        {
            Some(grant) => {
                grant.approved_by = Some(user_id);
                true
            }
            None => false,
        }
    }

    /// Approves every device code as this user, as soon as it is issued.
    pub fn auto_approve(&self, upn: &str) {
        let mut state = self.state();
        state.auto_approve = state
            .users
            .values()
            .find(|u| u.upn == upn)
            .map(|u| u.id.clone());
    }

    /// Items per page of a listing.
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

    /// Sets the hardware OATH policy state (`enabled`, `disabled`).
    pub fn set_policy_state(&self, state: &str) {
        self.state().policy_state = state.into();
    }

    /// Lets every access token lapse (the client must renew).
    pub fn expire_tokens(&self) {
        for grant in self.state().grants.values_mut() {
            grant.expires_at = 0;
        }
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

    /// The inventory.
    pub fn devices(&self) -> Vec<SimDevice> {
        self.state().devices.clone()
    }

    /// The users.
    pub fn users(&self) -> Vec<SimUser> {
        self.state().users.values().cloned().collect()
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state().log.clone()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.state().log.clear();
    }

    /// Adds a device directly (as if another tool had uploaded it).
    pub fn seed_device(&self, serial: &str, secret_base32: &str, period: u64) -> String {
        let mut state = self.state();
        let id = state.new_id();
        state.devices.push(SimDevice {
            id: id.clone(),
            display_name: None,
            serial: serial.into(),
            manufacturer: "Other".into(),
            model: "Other".into(),
            period,
            algorithm: Algorithm::Sha1,
            status: "available".into(),
            assigned_to: None,
            method_id: None,
            last_counter: None,
            secret: Secret::from_base32(secret_base32).expect("a Base32 secret"),
        });
        id
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

// ----- the server -----------------------------------------------------------

/// What a handler answers.
struct Reply {
    status: u16,
    body: Option<Value>,
    retry_after: Option<u64>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            retry_after: None,
        }
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            retry_after: None,
        }
    }

    fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"error": {"code": code, "message": message,
                "innerError": {"date": "2026-01-01T00:00:00", "request-id": "00000000-0000-0000-0000-000000000000"}}}),
        )
    }

    fn oauth(status: u16, error: &str, description: &str) -> Reply {
        Reply::json(
            status,
            json!({"error": error, "error_description": description, "error_codes": []}),
        )
    }
}

async fn handle(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.state.lock().expect("simulator state");
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let fault = state.take_fault(&method, &path);
    let reply = match fault {
        Some(FaultKind::Throttle { retry_after }) => Reply {
            retry_after: Some(retry_after),
            ..Reply::error(
                429,
                "TooManyRequests",
                "Too many requests; retry after the time in Retry-After.",
            )
        },
        Some(FaultKind::Fail { status }) => Reply::error(
            status,
            "serviceUnavailable",
            "The service is temporarily unavailable.",
        ),
        _ => {
            let reply = state.dispatch(&method, &path, &query, &headers, &body);
            match fault {
                Some(FaultKind::FailAfter { status }) if reply.status < 300 => Reply::error(
                    status,
                    "generalException",
                    "An error occurred after the request was processed.",
                ),
                _ => reply,
            }
        }
    };
    state.log.push(Logged {
        method: method.to_string(),
        path: if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        },
        status: reply.status,
    });
    drop(state);
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.body {
        Some(body) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
        None => status.into_response(),
    };
    if let Some(seconds) = reply.retry_after {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            seconds.to_string().parse().expect("a header value"),
        );
    }
    response
}

/// The Graph operations, for permission checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    ReadDevices,
    WriteDevices,
    ReadUsers,
    ReadMethods,
    WriteMethods,
    ReadPolicy,
    WritePolicy,
}

impl Op {
    fn permissions(self) -> &'static [&'static str] {
        use permissions::*;
        match self {
            Op::ReadDevices | Op::ReadPolicy => &[POLICY_READ, POLICY_WRITE],
            Op::WriteDevices | Op::WritePolicy => &[POLICY_WRITE],
            Op::ReadUsers => &[USERS_READ, "User.ReadWrite.All", "Directory.Read.All"],
            Op::ReadMethods => &[METHODS_READ, METHODS_WRITE],
            Op::WriteMethods => &[METHODS_WRITE],
        }
    }

    fn roles(self) -> &'static [&'static str] {
        use roles::*;
        match self {
            Op::ReadDevices | Op::WriteDevices | Op::ReadPolicy | Op::WritePolicy => {
                &[GLOBAL_ADMIN, AUTH_POLICY_ADMIN]
            }
            Op::ReadUsers => &[],
            Op::ReadMethods | Op::WriteMethods => {
                &[GLOBAL_ADMIN, AUTH_ADMIN, PRIVILEGED_AUTH_ADMIN]
            }
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the OS random generator");
    data_encoding::HEXLOWER.encode(&buffer)
}

fn parse_query(query: &str) -> HashMap<String, String> {
    form_pairs(query.as_bytes())
}

fn form_pairs(bytes: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// Reads `serialNumber eq 'X'` (OData quotes doubled).
fn parse_serial_filter(filter: &str) -> Option<String> {
    let rest = filter.trim().strip_prefix("serialNumber")?.trim_start();
    let rest = rest.strip_prefix("eq")?.trim();
    let inner = rest.strip_prefix('\'')?.strip_suffix('\'')?;
    if inner.replace("''", "").contains('\'') {
        return None;
    }
    Some(inner.replace("''", "'"))
}

impl State {
    fn now(&self) -> u64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        real.saturating_add_signed(self.clock_offset)
    }

    fn new_id(&mut self) -> String {
        self.ids += 1;
        let random = random_hex(6);
        format!(
            "{:08x}-{}-4{}-8{}-{}",
            self.ids,
            &random[..4],
            &random[4..7],
            &random[7..10],
            &random[..12]
        )
    }

    fn take_fault(&mut self, method: &Method, path: &str) -> Option<FaultKind> {
        let fault = self.faults.iter_mut().find(|f| {
            f.remaining > 0
                && f.method.as_ref().is_none_or(|m| m == method)
                && path.contains(&f.path_contains)
        })?;
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        fault.remaining -= 1;
        let kind = fault.kind;
        self.faults.retain(|f| f.remaining > 0);
        Some(kind)
    }

    fn dispatch(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Reply {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            [tenant, "oauth2", "v2.0", _] if !self.tenant_matches(tenant) => Reply::oauth(
                400,
                "invalid_request",
                &format!("AADSTS90002: Tenant '{tenant}' not found."),
            ),
            [tenant, "oauth2", "v2.0", "token"] if method == Method::POST => {
                self.token(tenant, body)
            }
            [_, "oauth2", "v2.0", "devicecode"] if method == Method::POST => self.device_code(body),
            ["beta", rest @ ..] => {
                let principal = match self.principal(headers) {
                    Ok(principal) => principal,
                    Err(reply) => return reply,
                };
                let query = parse_query(query);
                self.graph(method, rest, &query, &principal, body)
            }
            _ => Reply::error(404, "BadRequest", "Resource not found for the segment."),
        }
    }

    // ----- sign-in ------------------------------------------------------------

    fn tenant_matches(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant) || tenant.eq_ignore_ascii_case(&self.domain)
    }

    fn token(&mut self, tenant: &str, body: &[u8]) -> Reply {
        let form = form_pairs(body);
        let client_id = form.get("client_id").cloned().unwrap_or_default();
        let grant_type = form.get("grant_type").cloned().unwrap_or_default();
        let now = self.now();
        match grant_type.as_str() {
            "client_credentials" => {
                let Some(app) = self.apps.get(&client_id) else {
                    return Reply::oauth(
                        400,
                        "unauthorized_client",
                        &format!(
                            "AADSTS700016: Application with identifier '{client_id}' was not found in the directory."
                        ),
                    );
                };
                if !form.get("scope").is_some_and(|s| s.ends_with("/.default")) {
                    return Reply::oauth(
                        400,
                        "invalid_scope",
                        "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
                    );
                }
                if let Err(reply) = self.check_client(app, &client_id, tenant, &form, now) {
                    return reply;
                }
                let permissions = app.permissions.clone();
                let token = self.issue(Principal::App { permissions }, now);
                Reply::json(
                    200,
                    json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
                )
            }
            "urn:ietf:params:oauth:grant-type:device_code" => {
                let code = form.get("device_code").cloned().unwrap_or_default();
                let Some(grant) = self.device_codes.get(&code) else {
                    return Reply::oauth(
                        400,
                        "invalid_grant",
                        "AADSTS70000: The provided value for the device code is not valid.",
                    );
                };
                if grant.client_id != client_id {
                    return Reply::oauth(
                        400,
                        "invalid_grant",
                        "AADSTS70000: The device code was issued to another client.",
                    );
                }
                if grant.expires_at <= now {
                    return Reply::oauth(
                        400,
                        "expired_token",
                        "AADSTS70019: Verification code expired.",
                    );
                }
                let Some(user_id) = grant.approved_by.clone() else {
                    return Reply::oauth(
                        400,
                        "authorization_pending",
                        "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending.",
                    );
                };
                self.device_codes.remove(&code);
                self.user_tokens(&user_id, now)
            }
            "refresh_token" => {
                let refresh = form.get("refresh_token").cloned().unwrap_or_default();
                let Some(user_id) = self.refresh_tokens.remove(&refresh) else {
                    return Reply::oauth(
                        400,
                        "invalid_grant",
                        "AADSTS700082: The refresh token has expired or is invalid.",
                    );
                };
                self.user_tokens(&user_id, now)
            }
            other => Reply::oauth(
                400,
                "unsupported_grant_type",
                &format!("AADSTS70003: The app requested an unsupported grant type '{other}'."),
            ),
        }
    }

    fn check_client(
        &self,
        app: &App,
        client_id: &str,
        tenant: &str,
        form: &HashMap<String, String>,
        now: u64,
    ) -> Result<(), Reply> {
        if let Some(given) = form.get("client_secret") {
            return match &app.secret {
                Some(secret) if secret == given => Ok(()),
                _ => Err(Reply::oauth(
                    401,
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                )),
            };
        }
        let Some(assertion) = form.get("client_assertion") else {
            return Err(Reply::oauth(
                401,
                "invalid_client",
                "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        };
        let refused = |why: &str| {
            Reply::oauth(
                401,
                "invalid_client",
                &format!(
                    "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application, or the assertion is invalid: {why}."
                ),
            )
        };
        let Some((public_key, x5t)) = &app.certificate else {
            return Err(refused("no certificate"));
        };
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| refused("unreadable"))?;
        if header.x5t.as_deref() != Some(x5t.as_str()) {
            return Err(refused("unknown x5t"));
        }
        let audience = format!("{}/{tenant}/oauth2/v2.0/token", self.url);
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[client_id]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 0;
        validation.validate_exp = false;
        let key = jsonwebtoken::DecodingKey::from_rsa_der(public_key);
        let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
            .map_err(|e| refused(&e.to_string()))?
            .claims;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if exp <= now || claims.get("sub").and_then(Value::as_str) != Some(client_id) {
            return Err(refused("expired or wrong subject"));
        }
        Ok(())
    }

    fn issue(&mut self, principal: Principal, now: u64) -> String {
        let token = format!("sim.{}", random_hex(24));
        self.grants.insert(
            token.clone(),
            Grant {
                principal,
                expires_at: now + 3599,
            },
        );
        token
    }

    fn user_tokens(&mut self, user_id: &str, now: u64) -> Reply {
        let upn = self
            .users
            .get(user_id)
            .map(|u| u.upn.clone())
            .unwrap_or_default();
        let access = self.issue(
            Principal::User {
                user_id: user_id.into(),
            },
            now,
        );
        let refresh = format!("simrefresh.{}", random_hex(24));
        self.refresh_tokens.insert(refresh.clone(), user_id.into());
        let id_token = format!(
            "{}.{}.",
            data_encoding::BASE64URL_NOPAD.encode(br#"{"alg":"none"}"#),
            data_encoding::BASE64URL_NOPAD.encode(
                json!({"preferred_username": upn, "tid": self.tenant})
                    .to_string()
                    .as_bytes()
            )
        );
        Reply::json(
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "access_token": access,
                   "refresh_token": refresh, "id_token": id_token,
                   "scope": "Policy.ReadWrite.AuthenticationMethod UserAuthenticationMethod.ReadWrite.All User.Read.All"}),
        )
    }

    fn device_code(&mut self, body: &[u8]) -> Reply {
        let form = form_pairs(body);
        let client_id = form.get("client_id").cloned().unwrap_or_default();
        if !self.apps.contains_key(&client_id) {
            return Reply::oauth(
                400,
                "unauthorized_client",
                &format!(
                    "AADSTS700016: Application with identifier '{client_id}' was not found in the directory."
                ),
            );
        }
        let device_code = random_hex(20);
        let letters: String = random_hex(4)
            .bytes()
            .map(|b| (b'A' + b % 26) as char)
            .collect();
        let user_code = format!("SIM{letters}");
        let now = self.now();
        self.device_codes.insert(
            device_code.clone(),
            DeviceCodeGrant {
                client_id,
                user_code: user_code.clone(),
                approved_by: self.auto_approve.clone(),
                expires_at: now + 900,
            },
        );
        let uri = format!("{}/devicelogin", self.url);
        Reply::json(
            200,
            json!({"device_code": device_code, "user_code": user_code, "verification_uri": uri,
                   "expires_in": 900, "interval": 1,
                   "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate.")}),
        )
    }

    fn principal(&self, headers: &HeaderMap) -> Result<Principal, Reply> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if token.is_empty() {
            return Err(Reply::error(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty.",
            ));
        }
        match self.grants.get(token) {
            Some(grant) if grant.expires_at > self.now() => Ok(grant.principal.clone()),
            Some(_) => Err(Reply::error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )),
            None => Err(Reply::error(
                401,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed.",
            )),
        }
    }

    fn allowed(
        &self,
        principal: &Principal,
        op: Op,
        target_user: Option<&str>,
    ) -> Result<(), Reply> {
        let ok = match principal {
            Principal::App { permissions } => op
                .permissions()
                .iter()
                .any(|p| permissions.iter().any(|have| have == p)),
            Principal::User { user_id } => {
                let roles = self
                    .users
                    .get(user_id)
                    .map(|u| u.roles.clone())
                    .unwrap_or_default();
                let needed = op.roles();
                let admin_target = target_user
                    .and_then(|id| self.users.get(id))
                    .is_some_and(|u| u.admin && u.id != *user_id);
                needed.is_empty()
                    || roles.iter().any(|r| {
                        needed.contains(&r.as_str()) && !(admin_target && r == roles::AUTH_ADMIN)
                    })
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Reply::error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ))
        }
    }

    // ----- Graph ----------------------------------------------------------------

    fn graph(
        &mut self,
        method: &Method,
        rest: &[&str],
        query: &HashMap<String, String>,
        principal: &Principal,
        body: &[u8],
    ) -> Reply {
        macro_rules! check {
            ($op:expr, $target:expr) => {
                if let Err(reply) = self.allowed(principal, $op, $target) {
                    return reply;
                }
            };
        }
        let json_body = || -> Result<Value, Reply> {
            serde_json::from_slice(body).map_err(|e| {
                Reply::error(
                    400,
                    "BadRequest",
                    &format!("Unable to read JSON request payload: {e}"),
                )
            })
        };
        match rest {
            [
                "directory",
                "authenticationMethodDevices",
                "hardwareOathDevices",
            ] => match *method {
                Method::GET => {
                    check!(Op::ReadDevices, None);
                    self.list_devices(query)
                }
                Method::POST => {
                    check!(Op::WriteDevices, None);
                    let device: GraphDevice = match json_body().and_then(|v| {
                        serde_json::from_value(v)
                            .map_err(|e| Reply::error(400, "BadRequest", &e.to_string()))
                    }) {
                        Ok(d) => d,
                        Err(reply) => return reply,
                    };
                    if device.assign_to.is_some() {
                        check!(Op::WriteMethods, None);
                    }
                    match self.create(&[device]) {
                        Ok(mut created) => Reply::json(201, created.remove(0)),
                        Err(reply) => reply,
                    }
                }
                Method::PATCH => {
                    check!(Op::WriteDevices, None);
                    let payload: GraphPayload = match json_body().and_then(|v| {
                        serde_json::from_value(v)
                            .map_err(|e| Reply::error(400, "BadRequest", &e.to_string()))
                    }) {
                        Ok(p) => p,
                        Err(reply) => return reply,
                    };
                    if payload.value.iter().any(|d| d.assign_to.is_some()) {
                        check!(Op::WriteMethods, None);
                    }
                    match self.create(&payload.value) {
                        Ok(created) => {
                            Reply::json(200, json!({"@context": "#$delta", "value": created}))
                        }
                        Err(reply) => reply,
                    }
                }
                _ => Reply::error(405, "BadRequest", "Method not allowed."),
            },
            [
                "directory",
                "authenticationMethodDevices",
                "hardwareOathDevices",
                id,
            ] => {
                let Some(index) = self.devices.iter().position(|d| d.id == *id) else {
                    check!(Op::ReadDevices, None);
                    return Reply::error(
                        404,
                        "Request_ResourceNotFound",
                        &format!(
                            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
                        ),
                    );
                };
                match *method {
                    Method::GET => {
                        check!(Op::ReadDevices, None);
                        Reply::json(200, self.device_json(&self.devices[index]))
                    }
                    Method::PATCH => {
                        check!(Op::WriteDevices, None);
                        let changes = match json_body() {
                            Ok(v) => v,
                            Err(reply) => return reply,
                        };
                        self.update(index, &changes)
                    }
                    Method::DELETE => {
                        check!(Op::WriteDevices, None);
                        if self.devices[index].assigned_to.is_some() {
                            return Reply::error(
                                400,
                                "BadRequest",
                                "The token is assigned to a user: unassign it before deleting it.",
                            );
                        }
                        self.devices.remove(index);
                        Reply::empty(204)
                    }
                    _ => Reply::error(405, "BadRequest", "Method not allowed."),
                }
            }
            ["users", user] if *method == Method::GET => {
                check!(Op::ReadUsers, None);
                match self.find_user(user) {
                    Some(u) => Reply::json(
                        200,
                        json!({"id": u.id, "userPrincipalName": u.upn, "displayName": u.display_name}),
                    ),
                    None => Reply::error(
                        404,
                        "Request_ResourceNotFound",
                        &format!(
                            "Resource '{user}' does not exist or one of its queried reference-property objects are not present."
                        ),
                    ),
                }
            }
            ["users", user, "authentication", "softwareOathMethods"] if *method == Method::GET => {
                let Some(found) = self.find_user(user).cloned() else {
                    return Reply::error(
                        404,
                        "Request_ResourceNotFound",
                        &format!("Resource '{user}' does not exist."),
                    );
                };
                check!(Op::ReadMethods, Some(&found.id));
                let value: Vec<Value> = (0..found.software_oath)
                    .map(|i| json!({"id": format!("{}-app-{i}", found.id), "secretKey": null}))
                    .collect();
                Reply::json(200, json!({"value": value}))
            }
            [
                "users",
                user,
                "authentication",
                "hardwareOathMethods",
                tail @ ..,
            ] => {
                let Some(user_id) = self.find_user(user).map(|u| u.id.clone()) else {
                    return Reply::error(
                        404,
                        "Request_ResourceNotFound",
                        &format!("Resource '{user}' does not exist."),
                    );
                };
                match (method.clone(), tail) {
                    (Method::GET, []) => {
                        check!(Op::ReadMethods, Some(&user_id));
                        self.list_methods(&user_id, query)
                    }
                    (Method::POST, []) => {
                        check!(Op::WriteMethods, Some(&user_id));
                        let value = match json_body() {
                            Ok(v) => v,
                            Err(reply) => return reply,
                        };
                        let device_id = value["device"]["id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        match self.assign(&user_id, |d| d.id == device_id) {
                            Ok(index) => {
                                let d = &self.devices[index];
                                Reply::json(
                                    201,
                                    json!({"id": d.method_id, "createdDateTime": "2026-01-01T00:00:00Z",
                                    "device": {"id": d.id}}),
                                )
                            }
                            Err(reply) => reply,
                        }
                    }
                    (Method::POST, ["assignAndActivate"]) => {
                        check!(Op::WriteMethods, Some(&user_id));
                        let value = match json_body() {
                            Ok(v) => v,
                            Err(reply) => return reply,
                        };
                        let device_id = value["device"]["id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        self.assign_and_activate(
                            &user_id,
                            &value,
                            |d| d.id == device_id,
                            &device_id,
                        )
                    }
                    (Method::POST, ["assignAndActivateBySerialNumber"]) => {
                        check!(Op::WriteMethods, Some(&user_id));
                        let value = match json_body() {
                            Ok(v) => v,
                            Err(reply) => return reply,
                        };
                        let serial = value["serialNumber"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        let matching = self.devices.iter().filter(|d| d.serial == serial).count();
                        if matching > 1 {
                            return Reply::error(
                                400,
                                "BadRequest",
                                &format!(
                                    "More than one hardware OATH token has the serial number '{serial}'."
                                ),
                            );
                        }
                        self.assign_and_activate(&user_id, &value, |d| d.serial == serial, &serial)
                    }
                    (Method::POST, [method_id, "activate"]) => {
                        check!(Op::WriteMethods, Some(&user_id));
                        let value = match json_body() {
                            Ok(v) => v,
                            Err(reply) => return reply,
                        };
                        let Some(index) = self.devices.iter().position(|d| {
                            d.method_id.as_deref() == Some(*method_id)
                                && d.assigned_to.as_deref() == Some(&user_id)
                        }) else {
                            return Reply::error(
                                404,
                                "Request_ResourceNotFound",
                                &format!("Resource '{method_id}' does not exist."),
                            );
                        };
                        match self.activate(index, &value) {
                            Ok(()) => Reply::empty(204),
                            Err(reply) => reply,
                        }
                    }
                    (Method::DELETE, [method_id]) => {
                        check!(Op::WriteMethods, Some(&user_id));
                        let Some(device) = self.devices.iter_mut().find(|d| {
                            d.method_id.as_deref() == Some(*method_id)
                                && d.assigned_to.as_deref() == Some(&user_id)
                        }) else {
                            return Reply::error(
                                404,
                                "Request_ResourceNotFound",
                                &format!("Resource '{method_id}' does not exist."),
                            );
                        };
                        device.assigned_to = None;
                        device.method_id = None;
                        device.status = "available".into();
                        Reply::empty(204)
                    }
                    _ => Reply::error(400, "BadRequest", "Unsupported request."),
                }
            }
            [
                "policies",
                "authenticationMethodsPolicy",
                "authenticationMethodConfigurations",
                "hardwareOath",
            ] => match *method {
                Method::GET => {
                    check!(Op::ReadPolicy, None);
                    Reply::json(
                        200,
                        json!({
                            "@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration",
                            "id": "HardwareOath", "state": self.policy_state,
                            "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": false}],
                            "excludeTargets": []}),
                    )
                }
                Method::PATCH => {
                    check!(Op::WritePolicy, None);
                    let value = match json_body() {
                        Ok(v) => v,
                        Err(reply) => return reply,
                    };
                    match value["state"].as_str() {
                        Some(state @ ("enabled" | "disabled")) => {
                            self.policy_state = state.into();
                            Reply::empty(204)
                        }
                        _ => Reply::error(
                            400,
                            "BadRequest",
                            "state must be 'enabled' or 'disabled'.",
                        ),
                    }
                }
                _ => Reply::error(405, "BadRequest", "Method not allowed."),
            },
            _ => Reply::error(400, "BadRequest", "Resource not found for the segment."),
        }
    }

    fn find_user(&self, key: &str) -> Option<&SimUser> {
        self.users.get(key).or_else(|| {
            self.users
                .values()
                .find(|u| u.upn.eq_ignore_ascii_case(key))
        })
    }

    fn device_json(&self, d: &SimDevice) -> Value {
        let device = GraphDevice {
            id: Some(d.id.clone()),
            display_name: d.display_name.clone(),
            serial_number: Some(d.serial.clone()),
            manufacturer: Some(d.manufacturer.clone()),
            model: Some(d.model.clone()),
            secret_key: None,
            time_interval_in_seconds: Some(d.period),
            hash_function: Some(oathdesk_formats::entra::hash_function_name(d.algorithm).into()),
            status: Some(d.status.clone()),
            assigned_to: d.assigned_to.as_ref().map(|id| GraphIdentity {
                id: Some(id.clone()),
                display_name: self.users.get(id).map(|u| u.display_name.clone()),
            }),
            ..GraphDevice::default()
        };
        let mut value = serde_json::to_value(device).expect("a device serialises");
        value["lastUsedDateTime"] = Value::Null;
        value
    }

    fn list_devices(&self, query: &HashMap<String, String>) -> Reply {
        let filter = match query.get("$filter") {
            Some(text) => match parse_serial_filter(text) {
                Some(serial) => Some(serial),
                None => {
                    return Reply::error(
                        400,
                        "BadRequest",
                        &format!(
                            "Invalid filter clause: '{text}'; supported: serialNumber eq '…'."
                        ),
                    );
                }
            },
            None => None,
        };
        let matching: Vec<&SimDevice> = self
            .devices
            .iter()
            .filter(|d| filter.as_ref().is_none_or(|s| &d.serial == s))
            .collect();
        let skip: usize = query
            .get("$skiptoken")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let page: Vec<Value> = matching
            .iter()
            .skip(skip)
            .take(self.page_size)
            .map(|d| self.device_json(d))
            .collect();
        let base = format!(
            "{}/beta/directory/authenticationMethodDevices/hardwareOathDevices",
            self.next_link_base.as_deref().unwrap_or(&self.url)
        );
        let mut body = json!({"@odata.context": format!("{}/beta/$metadata#directory/authenticationMethodDevices/hardwareOathDevices", self.url), "value": page});
        if skip + self.page_size < matching.len() {
            let mut link = format!("{base}?$skiptoken={}", skip + self.page_size);
            if let Some(serial) = &filter {
                link.push_str("&$filter=serialNumber%20eq%20%27");
                link.push_str(
                    &serial
                        .replace('\'', "''")
                        .replace('%', "%25")
                        .replace(' ', "%20")
                        .replace('&', "%26")
                        .replace('#', "%23"),
                );
                link.push_str("%27");
            }
            body["@odata.nextLink"] = json!(link);
        }
        Reply::json(200, body)
    }

    /// Validates and creates devices: all of them, or none.
    fn create(&mut self, devices: &[GraphDevice]) -> Result<Vec<Value>, Reply> {
        let mut prepared = Vec::new();
        let mut serials: Vec<String> = Vec::new();
        for (index, device) in devices.iter().enumerate() {
            let at = device.content_id.as_ref().map_or_else(
                || format!("item {}", index + 1),
                |c| format!("@contentId {c}"),
            );
            let bad =
                |message: String| Reply::error(400, "BadRequest", &format!("{at}: {message}"));
            let required = |value: &Option<String>, name: &str| -> Result<String, Reply> {
                value
                    .clone()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| bad(format!("the property '{name}' is required")))
            };
            let serial = required(&device.serial_number, "serialNumber")?;
            let manufacturer = required(&device.manufacturer, "manufacturer")?;
            let model = required(&device.model, "model")?;
            let secret_text = required(&device.secret_key, "secretKey")?;
            if secret_text.len() > 128
                || !secret_text
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
            {
                return Err(bad(
                    "secretKey must be Base32 (a-z, A-Z, 2-7), at most 128 characters".into(),
                ));
            }
            let secret = Secret::from_base32(&secret_text)
                .map_err(|_| bad("secretKey is not valid Base32".into()))?;
            let period = device
                .time_interval_in_seconds
                .ok_or_else(|| bad("the property 'timeIntervalInSeconds' is required".into()))?;
            if !matches!(period, 30 | 60) {
                return Err(bad("timeIntervalInSeconds must be 30 or 60".into()));
            }
            let algorithm = match device
                .hash_function
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("hmacsha1") => Algorithm::Sha1,
                Some("hmacsha256") => Algorithm::Sha256,
                Some(other) => {
                    return Err(bad(format!(
                        "hashFunction '{other}' is not hmacsha1 or hmacsha256"
                    )));
                }
            };
            if self.devices.iter().any(|d| d.serial == serial) || serials.contains(&serial) {
                return Err(Reply::error(
                    400,
                    "Request_BadRequest",
                    &format!(
                        "{at}: Another object with the same value for property serialNumber already exists ('{serial}')."
                    ),
                ));
            }
            let assign_to = match &device.assign_to {
                Some(target) => Some(
                    self.find_user(&target.id)
                        .map(|u| u.id.clone())
                        .ok_or_else(|| bad(format!("the user '{}' does not exist", target.id)))?,
                ),
                None => None,
            };
            serials.push(serial.clone());
            prepared.push((
                device.content_id.clone(),
                device.display_name.clone(),
                serial,
                manufacturer,
                model,
                secret,
                period,
                algorithm,
                assign_to,
            ));
        }
        let mut created = Vec::new();
        for (
            content_id,
            display_name,
            serial,
            manufacturer,
            model,
            secret,
            period,
            algorithm,
            assign_to,
        ) in prepared
        {
            let id = self.new_id();
            self.devices.push(SimDevice {
                id: id.clone(),
                display_name,
                serial,
                manufacturer,
                model,
                period,
                algorithm,
                status: "available".into(),
                assigned_to: None,
                method_id: None,
                last_counter: None,
                secret,
            });
            if let Some(user_id) = assign_to
                && let Err(reply) = self.assign(&user_id, |d| d.id == id)
            {
                return Err(reply);
            }
            let device = self
                .devices
                .iter()
                .find(|d| d.id == id)
                .expect("just created");
            let mut value = self.device_json(device);
            if let Some(content_id) = content_id {
                value["@contentId"] = json!(content_id);
            }
            created.push(value);
        }
        Ok(created)
    }

    fn update(&mut self, index: usize, changes: &Value) -> Reply {
        if self.devices[index].assigned_to.is_some() {
            return Reply::error(
                400,
                "BadRequest",
                "The token needs to be unassigned before it can be updated.",
            );
        }
        if changes.get("secretKey").is_some_and(|v| !v.is_null())
            || changes.get("serialNumber").is_some_and(|v| !v.is_null())
        {
            return Reply::error(
                400,
                "BadRequest",
                "secretKey and serialNumber cannot be updated.",
            );
        }
        let device = &mut self.devices[index];
        if let Some(name) = changes.get("displayName").and_then(Value::as_str) {
            device.display_name = Some(name.into());
        }
        if let Some(text) = changes.get("manufacturer").and_then(Value::as_str) {
            device.manufacturer = text.into();
        }
        if let Some(text) = changes.get("model").and_then(Value::as_str) {
            device.model = text.into();
        }
        if let Some(period) = changes.get("timeIntervalInSeconds").and_then(Value::as_u64) {
            if !matches!(period, 30 | 60) {
                return Reply::error(400, "BadRequest", "timeIntervalInSeconds must be 30 or 60");
            }
            device.period = period;
        }
        Reply::empty(204)
    }

    fn list_methods(&self, user_id: &str, query: &HashMap<String, String>) -> Reply {
        let expand = query.get("$expand").is_some_and(|e| e == "device");
        let value: Vec<Value> = self
            .devices
            .iter()
            .filter(|d| d.assigned_to.as_deref() == Some(user_id))
            .map(|d| {
                let mut method =
                    json!({"id": d.method_id, "createdDateTime": "2026-01-01T00:00:00Z"});
                if expand {
                    method["device"] = self.device_json(d);
                }
                method
            })
            .collect();
        Reply::json(200, json!({"value": value}))
    }

    /// Assigns the device `pick` selects to a user.
    fn assign(&mut self, user_id: &str, pick: impl Fn(&SimDevice) -> bool) -> Result<usize, Reply> {
        let Some(index) = self.devices.iter().position(pick) else {
            return Err(Reply::error(
                404,
                "Request_ResourceNotFound",
                "The hardware OATH token does not exist.",
            ));
        };
        if self.devices[index].assigned_to.is_some() {
            return Err(Reply::error(
                400,
                "BadRequest",
                "The token is already assigned; a single token can't be assigned to multiple users.",
            ));
        }
        let user = &self.users[user_id];
        let held = self
            .devices
            .iter()
            .filter(|d| d.assigned_to.as_deref() == Some(user_id))
            .count();
        if held + user.software_oath >= MAX_OATH_METHODS {
            return Err(Reply::error(
                400,
                "BadRequest",
                &format!(
                    "The user already has the maximum of {MAX_OATH_METHODS} OATH tokens and authenticator apps."
                ),
            ));
        }
        let method_id = self.new_id();
        let device = &mut self.devices[index];
        device.assigned_to = Some(user_id.into());
        device.method_id = Some(method_id);
        device.status = "assigned".into();
        Ok(index)
    }

    fn assign_and_activate(
        &mut self,
        user_id: &str,
        value: &Value,
        pick: impl Fn(&SimDevice) -> bool,
        what: &str,
    ) -> Reply {
        let Some(index) = self.devices.iter().position(&pick) else {
            return Reply::error(
                404,
                "Request_ResourceNotFound",
                &format!("Resource '{what}' does not exist."),
            );
        };
        // The code is checked before the assignment, so a wrong code leaves
        // the token unassigned.
        if let Err(reply) = self.check_code(index, value) {
            return reply;
        }
        let counter = self.devices[index].last_counter;
        match self.assign(user_id, pick) {
            Ok(index) => {
                let device = &mut self.devices[index];
                device.status = "activated".into();
                device.last_counter = counter;
                if let Some(name) = value["displayName"].as_str() {
                    device.display_name = Some(name.into());
                }
                Reply::empty(204)
            }
            Err(reply) => reply,
        }
    }

    fn activate(&mut self, index: usize, value: &Value) -> Result<(), Reply> {
        self.check_code(index, value)?;
        let device = &mut self.devices[index];
        device.status = "activated".into();
        if let Some(name) = value["displayName"].as_str() {
            device.display_name = Some(name.into());
        }
        Ok(())
    }

    /// Entra's activation check: a 6-digit code of this token's secret
    /// within ±1 day (30 s) or ±2 days (60 s) of now, for a step after the
    /// last one used.
    fn check_code(&mut self, index: usize, value: &Value) -> Result<(), Reply> {
        let now = self.now();
        let device = &mut self.devices[index];
        let code = value["verificationCode"].as_str().unwrap_or_default();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Reply::error(
                400,
                "BadRequest",
                "verificationCode must be the 6-digit code the token shows.",
            ));
        }
        let step = TimeStep::new(device.period, 0).expect("30 or 60");
        let totp = Totp::new(&device.secret, device.algorithm, Digits::SIX, step);
        let window = Window::symmetric(activation_window_steps(device.period));
        match totp.verify_at(code, now, window).ok().flatten() {
            Some(found) => match device.last_counter {
                Some(last) if found.counter == last => Err(Reply::error(
                    400,
                    "BadRequest",
                    "The verification code was already used (FAILED_OATH_CODE_DUPLICATE).",
                )),
                Some(last) if found.counter < last => Err(Reply::error(
                    400,
                    "BadRequest",
                    "The verification code precedes a code already used (FAILED_OATH_CODE_OLD).",
                )),
                _ => {
                    device.last_counter = Some(found.counter);
                    Ok(())
                }
            },
            None => {
                device.status = "failedActivation".into();
                Err(Reply::error(
                    400,
                    "BadRequest",
                    "The verification code is invalid or has expired.",
                ))
            }
        }
    }
}

/// Steps either side that activation accepts: ±1 day for 30 s tokens, ±2
/// days for 60 s tokens (Microsoft's "Time drift correction" table).
pub fn activation_window_steps(period: u64) -> u64 {
    match period {
        60 => 2 * 86_400 / 60,
        _ => 86_400 / 30,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_filters_parse_odata_quotes() {
        assert_eq!(
            parse_serial_filter("serialNumber eq 'A-01'").as_deref(),
            Some("A-01")
        );
        assert_eq!(
            parse_serial_filter("serialNumber eq 'O''Brien'").as_deref(),
            Some("O'Brien")
        );
        assert_eq!(parse_serial_filter("serialNumber eq 'a'b'"), None);
        assert_eq!(parse_serial_filter("model eq 'x'"), None);
    }

    #[test]
    fn forms_decode_plus_and_percent() {
        let form = form_pairs(b"a=b+c&scope=https%3A%2F%2Fg%2F.default&e=%zz");
        assert_eq!(form["a"], "b c");
        assert_eq!(form["scope"], "https://g/.default");
        assert_eq!(form["e"], "%zz");
    }

    #[test]
    fn activation_windows_are_a_day_and_two_days() {
        assert_eq!(activation_window_steps(30) * 30, 86_400);
        assert_eq!(activation_window_steps(60) * 60, 2 * 86_400);
    }
}
