//! The simulated tenant's state and [`State::dispatch`], the one routing
//! table: every request the simulator answers is matched here, and handed
//! to a handler in the module of its concern.

use std::collections::{BTreeMap, HashMap};

use axum::http::{HeaderMap, Method};

use crate::mail::SentMail;
use crate::oath::SimDevice;
use crate::server::{Handled, Reply, parse_query, random_hex};
use crate::signin::{App, DeviceCodeGrant, Grant, Principal};
use crate::tap::{SimTap, TapPolicy};
use crate::users::SimUser;

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
pub(crate) struct Fault {
    pub(crate) method: Option<Method>,
    pub(crate) path_contains: String,
    /// Matching requests that pass before the fault starts.
    pub(crate) skip: u32,
    pub(crate) remaining: u32,
    pub(crate) kind: FaultKind,
}

/// A request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
}

pub(crate) struct State {
    pub(crate) url: String,
    pub(crate) tenant: String,
    pub(crate) domain: String,
    pub(crate) apps: HashMap<String, App>,
    /// By object id; ids begin with a counter, so this is creation order.
    pub(crate) users: BTreeMap<String, SimUser>,
    /// Lower-case UPN → object id.
    pub(crate) upn_index: HashMap<String, String>,
    pub(crate) devices: Vec<SimDevice>,
    pub(crate) grants: HashMap<String, Grant>,
    pub(crate) refresh_tokens: HashMap<String, String>,
    pub(crate) device_codes: HashMap<String, DeviceCodeGrant>,
    pub(crate) auto_approve: Option<String>,
    /// The hardware OATH method's policy state.
    pub(crate) policy_state: String,
    pub(crate) tap_policy: TapPolicy,
    /// By user object id: a user holds at most one pass.
    pub(crate) taps: HashMap<String, SimTap>,
    pub(crate) sent_mail: Vec<SentMail>,
    /// Items per page of the token inventory.
    pub(crate) page_size: usize,
    pub(crate) next_link_base: Option<String>,
    pub(crate) clock_offset: i64,
    pub(crate) faults: Vec<Fault>,
    pub(crate) log: Vec<Logged>,
    pub(crate) ids: u64,
    pub(crate) oidc: crate::oidc::Oidc,
}

/// A Graph request, once the token is checked.
pub(crate) struct Request<'r> {
    pub(crate) method: &'r Method,
    /// The decoded query options.
    pub(crate) query: HashMap<String, String>,
    /// The query string as sent (for `@odata.nextLink`).
    pub(crate) raw_query: &'r str,
    pub(crate) principal: Principal,
    pub(crate) body: &'r [u8],
}

impl Request<'_> {
    /// The body as JSON.
    pub(crate) fn json(&self) -> Result<serde_json::Value, Reply> {
        serde_json::from_slice(self.body).map_err(Reply::bad_json)
    }
}

impl State {
    pub(crate) fn new(url: String) -> State {
        State {
            url,
            tenant: crate::TENANT_ID.into(),
            domain: "contoso.onmicrosoft.com".into(),
            apps: HashMap::new(),
            users: BTreeMap::new(),
            upn_index: HashMap::new(),
            devices: Vec::new(),
            grants: HashMap::new(),
            refresh_tokens: HashMap::new(),
            device_codes: HashMap::new(),
            auto_approve: None,
            policy_state: "enabled".into(),
            tap_policy: TapPolicy::default(),
            taps: HashMap::new(),
            sent_mail: Vec::new(),
            page_size: 100,
            next_link_base: None,
            clock_offset: 0,
            faults: Vec::new(),
            log: Vec::new(),
            ids: 0,
            oidc: Default::default(),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        real.saturating_add_signed(self.clock_offset)
    }

    pub(crate) fn new_id(&mut self) -> String {
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

    /// Where `@odata.nextLink` points (another host when a test asks).
    pub(crate) fn link_base(&self) -> &str {
        self.next_link_base.as_deref().unwrap_or(&self.url)
    }

    pub(crate) fn take_fault(&mut self, method: &Method, path: &str) -> Option<FaultKind> {
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

    /// The routing table: sign-in first (no token), then Graph (a token).
    pub(crate) fn dispatch(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Reply {
        // Segments are matched decoded, as Graph matches them (a UPN such
        // as o'brien@… arrives as o%27brien@…).
        let decoded: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let rest = match segments.as_slice() {
            [tenant, "oauth2", "v2.0", _] if !self.tenant_matches(tenant) => {
                return Reply::oauth(
                    400,
                    "invalid_request",
                    &format!("AADSTS90002: Tenant '{tenant}' not found."),
                );
            }
            [tenant, "v2.0", ".well-known", "openid-configuration"]
                if self.tenant_matches(tenant) =>
            {
                return self.oidc_discovery();
            }
            [tenant, "discovery", "v2.0", "keys"] if self.tenant_matches(tenant) => {
                return self.oidc_keys();
            }
            [_, "oauth2", "v2.0", "authorize"] if method == Method::GET => {
                return self.oidc_authorize(query);
            }
            [_, "oauth2", "v2.0", "logout"] => return self.oidc_logout(query),
            [tenant, "oauth2", "v2.0", "token"] if method == Method::POST => {
                return self.token(tenant, body);
            }
            [_, "oauth2", "v2.0", "devicecode"] if method == Method::POST => {
                return self.device_code(body);
            }
            ["beta", rest @ ..] => rest,
            _ => return Reply::error(404, "BadRequest", "Resource not found for the segment."),
        };
        let principal = match self.principal(headers) {
            Ok(principal) => principal,
            Err(reply) => return reply,
        };
        let request = Request {
            method,
            query: parse_query(query),
            raw_query: query,
            principal,
            body,
        };
        let m = method.clone();
        let handled: Handled = match (m, rest) {
            // ----- the hardware OATH inventory (oath.rs) -----
            (
                Method::GET,
                [
                    "directory",
                    "authenticationMethodDevices",
                    "hardwareOathDevices",
                ],
            ) => self.list_devices(&request),
            (
                Method::POST,
                [
                    "directory",
                    "authenticationMethodDevices",
                    "hardwareOathDevices",
                ],
            ) => self.create_device(&request),
            (
                Method::PATCH,
                [
                    "directory",
                    "authenticationMethodDevices",
                    "hardwareOathDevices",
                ],
            ) => self.create_devices(&request),
            (
                _,
                [
                    "directory",
                    "authenticationMethodDevices",
                    "hardwareOathDevices",
                ],
            ) => Err(not_allowed()),
            (
                _,
                [
                    "directory",
                    "authenticationMethodDevices",
                    "hardwareOathDevices",
                    id,
                ],
            ) => self.device(&request, id),
            // ----- directory users (users.rs) -----
            (Method::GET, ["users"]) => self.list_users(&request),
            (Method::GET, ["users", user]) => self.get_user(&request, user),
            (Method::GET, ["users", user, "manager"]) => self.get_manager(&request, user),
            // ----- mail (mail.rs) -----
            (Method::POST, ["users", user, "sendMail"]) => self.send_mail(&request, user),
            // ----- a user's methods (oath.rs, tap.rs) -----
            (Method::GET, ["users", user, "authentication", "softwareOathMethods"]) => {
                self.software_oath_methods(&request, user)
            }
            (
                _,
                [
                    "users",
                    user,
                    "authentication",
                    "hardwareOathMethods",
                    tail @ ..,
                ],
            ) => self.hardware_oath_methods(&request, user, tail),
            (
                _,
                [
                    "users",
                    user,
                    "authentication",
                    "temporaryAccessPassMethods",
                    tail @ ..,
                ],
            ) => self.temporary_access_pass_methods(&request, user, tail),
            // ----- authentication method policies (oath.rs, tap.rs) -----
            (
                _,
                [
                    "policies",
                    "authenticationMethodsPolicy",
                    "authenticationMethodConfigurations",
                    "hardwareOath",
                ],
            ) => self.hardware_oath_policy(&request),
            (
                _,
                [
                    "policies",
                    "authenticationMethodsPolicy",
                    "authenticationMethodConfigurations",
                    "temporaryAccessPass",
                ],
            ) => self.tap_policy(&request),
            _ => Err(Reply::error(
                400,
                "BadRequest",
                "Resource not found for the segment.",
            )),
        };
        handled.unwrap_or_else(|reply| reply)
    }
}

/// A path segment with its `%XX` escapes decoded (`+` stays `+`: this is
/// a path, not a form).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `405` for a method a resource does not take.
pub(crate) fn not_allowed() -> Reply {
    Reply::error(405, "BadRequest", "Method not allowed.")
}

/// Graph's `404` for a resource that does not exist.
pub(crate) fn not_found(what: &str) -> Reply {
    Reply::error(
        404,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_decoded_but_plus_stays() {
        assert_eq!(
            percent_decode("o%27brien%40contoso.com"),
            "o'brien@contoso.com"
        );
        assert_eq!(percent_decode("a+b%2"), "a+b%2");
        assert_eq!(percent_decode("%E2%80%94"), "—");
    }
}
