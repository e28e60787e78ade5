//! Temporary Access Pass: `POST/GET /users/{id}/authentication/temporaryAccessPassMethods`,
//! `GET/DELETE …/{id}`, and the tenant's policy at
//! `/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/temporaryAccessPass`
//! (Microsoft's temporaryAccessPassAuthenticationMethod and
//! temporaryAccessPassAuthenticationMethodConfiguration).
//!
//! What follows the documentation:
//!
//! - create answers `201` with `id, temporaryAccessPass, createdDateTime,
//!   startDateTime, lifetimeInMinutes, isUsableOnce, isUsable,
//!   methodUsabilityReason`; the pass is shown only then (`null` on GET);
//! - a user holds one pass: creating another while one exists deletes the
//!   old one and creates the new one (the documented behaviour today; early
//!   beta documentation said the old pass had to be deleted first);
//! - `lifetimeInMinutes` is optional (the policy's
//!   `defaultLifetimeInMinutes` then applies) and must lie within the
//!   policy's `minimumLifetimeInMinutes`..`maximumLifetimeInMinutes`
//!   (each within 10..43200); out of range, Graph answers `400 badRequest`
//!   "Invalid LifetimeInMinutes specified. The valid range between 60 and
//!   480." (*observed*: microsoftgraph/microsoft-graph-docs pull request
//!   12187, with the tenant's default 60..480 range);
//! - a multi-use pass (`isUsableOnce: false`) can be created only if the
//!   policy allows it (policy `isUsableOnce: true` forces one-time passes);
//! - the policy's `defaultLength` (8..48) is the pass's length.
//!
//! *Inference* (Microsoft documents no error for these): with the method
//! disabled in the policy, create answers `400 badRequest` "Temporary
//! Access Pass is disabled in the authentication methods policy." (the
//! resource's `methodUsabilityReason` names the same state
//! `DisabledByPolicy`); a multi-use pass under a one-time policy answers
//! `400 badRequest` "Invalid IsUsableOnce specified. The policy allows only
//! one-time use passes." (worded like the observed lifetime error).
//! `startDateTime` is not modelled: a request with one is refused, so no
//! test passes on a date the simulator ignored.

use std::fmt;

use serde_json::{Value, json};

use crate::Simulator;
use crate::access::Op;
use crate::server::{Handled, Reply, iso8601};
use crate::state::{Request, State, not_allowed, not_found};

/// The tenant's Temporary Access Pass policy.
///
/// The default is Microsoft's default configuration (one hour by default,
/// one to eight hours allowed, multi-use allowed, 8 characters), except
/// that the method is enabled (a new tenant has it disabled) so tests need
/// no setup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapPolicy {
    /// `state`: `enabled` or `disabled`.
    pub enabled: bool,
    pub minimum_lifetime_in_minutes: u32,
    pub maximum_lifetime_in_minutes: u32,
    pub default_lifetime_in_minutes: u32,
    /// `isUsableOnce`: every pass in the tenant is one-time.
    pub is_usable_once: bool,
    /// `defaultLength`: characters in a pass (8..48).
    pub default_length: u32,
}

impl Default for TapPolicy {
    fn default() -> TapPolicy {
        TapPolicy {
            enabled: true,
            minimum_lifetime_in_minutes: 60,
            maximum_lifetime_in_minutes: 480,
            default_lifetime_in_minutes: 60,
            is_usable_once: false,
            default_length: 8,
        }
    }
}

/// The documented bounds of every lifetime setting (10 minutes to 30 days).
pub const TAP_LIFETIME_BOUNDS: std::ops::RangeInclusive<u32> = 10..=43_200;

/// A user's Temporary Access Pass as the simulator keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct SimTap {
    pub id: String,
    pub user_id: String,
    /// The pass itself (tests read it; Graph shows it only on creation).
    pub pass: String,
    /// Unix seconds.
    pub created_at: u64,
    pub start_at: u64,
    pub lifetime_in_minutes: u32,
    pub is_usable_once: bool,
}

impl fmt::Debug for SimTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimTap")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("pass", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("lifetime_in_minutes", &self.lifetime_in_minutes)
            .field("is_usable_once", &self.is_usable_once)
            .finish()
    }
}

impl Simulator {
    /// Replaces the tenant's Temporary Access Pass policy.
    pub fn set_tap_policy(&self, policy: TapPolicy) {
        self.state().tap_policy = policy;
    }

    /// The tenant's Temporary Access Pass policy.
    pub fn tap_policy(&self) -> TapPolicy {
        self.state().tap_policy.clone()
    }

    /// The pass a user (object id or UPN) holds, if any.
    pub fn temporary_access_pass(&self, user: &str) -> Option<SimTap> {
        let state = self.state();
        let id = state.find_user(user)?.id.clone();
        state.taps.get(&id).cloned()
    }
}

/// Characters of a pass: letters, digits and a few symbols, without the
/// look-alikes `0 O 1 l I` (*inference*: Entra's passes, like `+drkzqAD`,
/// mix letters and symbols).
const PASS_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789+#%@$&*";

fn random_pass(length: usize) -> String {
    let mut pass = String::with_capacity(length);
    while pass.len() < length {
        let mut bytes = [0u8; 64];
        getrandom::fill(&mut bytes).expect("the OS random generator");
        // Rejection sampling: no bias towards the first characters.
        let limit = 256 - 256 % PASS_ALPHABET.len();
        for &b in bytes.iter().filter(|&&b| usize::from(b) < limit) {
            if pass.len() == length {
                break;
            }
            pass.push(char::from(
                PASS_ALPHABET[usize::from(b) % PASS_ALPHABET.len()],
            ));
        }
    }
    pass
}

fn bad(message: &str) -> Reply {
    Reply::error(400, "badRequest", message)
}

impl State {
    fn tap_json(&self, tap: &SimTap, with_pass: bool) -> Value {
        let now = self.now();
        let expires = tap.start_at + u64::from(tap.lifetime_in_minutes) * 60;
        let reason = if !self.tap_policy.enabled {
            "DisabledByPolicy"
        } else if now < tap.start_at {
            "NotYetValid"
        } else if now >= expires {
            "Expired"
        } else {
            "EnabledByPolicy"
        };
        json!({
            "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
            "id": tap.id,
            "temporaryAccessPass": if with_pass { Some(tap.pass.as_str()) } else { None },
            "createdDateTime": iso8601(tap.created_at),
            "startDateTime": iso8601(tap.start_at),
            "lifetimeInMinutes": tap.lifetime_in_minutes,
            "isUsableOnce": tap.is_usable_once,
            "isUsable": reason == "EnabledByPolicy",
            "methodUsabilityReason": reason,
        })
    }

    /// `/users/{id}/authentication/temporaryAccessPassMethods[/{id}]`.
    pub(crate) fn temporary_access_pass_methods(
        &mut self,
        request: &Request,
        user: &str,
        tail: &[&str],
    ) -> Handled {
        use axum::http::Method;
        let user_id = self
            .find_user(user)
            .ok_or_else(|| not_found(user))?
            .id
            .clone();
        match (request.method.clone(), tail) {
            (Method::POST, []) => {
                self.allowed(&request.principal, Op::WriteMethods, Some(&user_id))?;
                self.create_tap(request, user_id)
            }
            (Method::GET, []) => {
                self.allowed(&request.principal, Op::ReadMethods, Some(&user_id))?;
                let value: Vec<Value> = self
                    .taps
                    .get(&user_id)
                    .map(|tap| self.tap_json(tap, false))
                    .into_iter()
                    .collect();
                Ok(Reply::json(200, json!({"value": value})))
            }
            (Method::GET, [id]) => {
                self.allowed(&request.principal, Op::ReadMethods, Some(&user_id))?;
                match self.taps.get(&user_id).filter(|tap| tap.id == *id) {
                    Some(tap) => Ok(Reply::json(200, self.tap_json(tap, false))),
                    None => Err(not_found(id)),
                }
            }
            (Method::DELETE, [id]) => {
                self.allowed(&request.principal, Op::WriteMethods, Some(&user_id))?;
                if self.taps.get(&user_id).is_some_and(|tap| tap.id == *id) {
                    self.taps.remove(&user_id);
                    Ok(Reply::empty(204))
                } else {
                    Err(not_found(id))
                }
            }
            (_, [] | [_]) => Err(not_allowed()),
            _ => Err(Reply::error(400, "BadRequest", "Unsupported request.")),
        }
    }

    fn create_tap(&mut self, request: &Request, user_id: String) -> Handled {
        let body = request.json()?;
        if !body.is_object() {
            return Err(bad(
                "The request body must be a temporaryAccessPassAuthenticationMethod.",
            ));
        }
        let lifetime = match body.get("lifetimeInMinutes") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad("lifetimeInMinutes must be a whole number of minutes."))?,
            ),
        };
        let usable_once = match body.get("isUsableOnce") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(bad("isUsableOnce must be true or false.")),
        };
        if body.get("startDateTime").is_some_and(|v| !v.is_null()) {
            return Err(bad(
                "The simulator does not model startDateTime; leave it out (the pass starts now).",
            ));
        }
        let policy = self.tap_policy.clone();
        if !policy.enabled {
            return Err(bad(
                "Temporary Access Pass is disabled in the authentication methods policy.",
            ));
        }
        let lifetime = lifetime.unwrap_or(policy.default_lifetime_in_minutes);
        if !(policy.minimum_lifetime_in_minutes..=policy.maximum_lifetime_in_minutes)
            .contains(&lifetime)
        {
            return Err(bad(&format!(
                "Invalid LifetimeInMinutes specified. The valid range between {} and {}.",
                policy.minimum_lifetime_in_minutes, policy.maximum_lifetime_in_minutes
            )));
        }
        let usable_once = match (usable_once, policy.is_usable_once) {
            (Some(false), true) => {
                return Err(bad(
                    "Invalid IsUsableOnce specified. The policy allows only one-time use passes.",
                ));
            }
            (Some(asked), _) => asked,
            (None, forced) => forced,
        };
        let now = self.now();
        let tap = SimTap {
            id: self.new_id(),
            user_id: user_id.clone(),
            pass: random_pass(policy.default_length.clamp(8, 48) as usize),
            created_at: now,
            start_at: now,
            lifetime_in_minutes: lifetime,
            is_usable_once: usable_once,
        };
        let value = self.tap_json(&tap, true);
        // One pass per user: a new one replaces the old.
        self.taps.insert(user_id, tap);
        Ok(Reply::json(201, value))
    }

    /// `GET/PATCH …/authenticationMethodConfigurations/temporaryAccessPass`.
    pub(crate) fn tap_policy(&mut self, request: &Request) -> Handled {
        use axum::http::Method;
        match *request.method {
            Method::GET => {
                self.allowed(&request.principal, Op::ReadPolicy, None)?;
                let p = &self.tap_policy;
                Ok(Reply::json(
                    200,
                    json!({
                        "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration",
                        "id": "TemporaryAccessPass",
                        "state": if p.enabled { "enabled" } else { "disabled" },
                        "defaultLifetimeInMinutes": p.default_lifetime_in_minutes,
                        "defaultLength": p.default_length,
                        "minimumLifetimeInMinutes": p.minimum_lifetime_in_minutes,
                        "maximumLifetimeInMinutes": p.maximum_lifetime_in_minutes,
                        "isUsableOnce": p.is_usable_once,
                        "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": false}],
                        "excludeTargets": [],
                    }),
                ))
            }
            Method::PATCH => {
                self.allowed(&request.principal, Op::WritePolicy, None)?;
                let body = request.json()?;
                let mut next = self.tap_policy.clone();
                let number = |name: &str| -> Result<Option<u32>, Reply> {
                    match body.get(name) {
                        None | Some(Value::Null) => Ok(None),
                        Some(v) => v
                            .as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .map(Some)
                            .ok_or_else(|| bad(&format!("{name} must be a whole number."))),
                    }
                };
                if let Some(state) = body.get("state") {
                    next.enabled = match state.as_str() {
                        Some("enabled") => true,
                        Some("disabled") => false,
                        _ => return Err(bad("state must be 'enabled' or 'disabled'.")),
                    };
                }
                if let Some(n) = number("minimumLifetimeInMinutes")? {
                    next.minimum_lifetime_in_minutes = n;
                }
                if let Some(n) = number("maximumLifetimeInMinutes")? {
                    next.maximum_lifetime_in_minutes = n;
                }
                if let Some(n) = number("defaultLifetimeInMinutes")? {
                    next.default_lifetime_in_minutes = n;
                }
                if let Some(n) = number("defaultLength")? {
                    next.default_length = n;
                }
                if let Some(once) = body.get("isUsableOnce") {
                    next.is_usable_once = once
                        .as_bool()
                        .ok_or_else(|| bad("isUsableOnce must be true or false."))?;
                }
                let lifetimes = [
                    next.minimum_lifetime_in_minutes,
                    next.maximum_lifetime_in_minutes,
                    next.default_lifetime_in_minutes,
                ];
                if !lifetimes.iter().all(|n| TAP_LIFETIME_BOUNDS.contains(n))
                    || next.minimum_lifetime_in_minutes > next.default_lifetime_in_minutes
                    || next.default_lifetime_in_minutes > next.maximum_lifetime_in_minutes
                {
                    return Err(bad(
                        "Lifetimes must lie within 10..43200 minutes, with minimum <= default <= maximum.",
                    ));
                }
                if !(8..=48).contains(&next.default_length) {
                    return Err(bad("defaultLength must be between 8 and 48."));
                }
                self.tap_policy = next;
                Ok(Reply::empty(204))
            }
            _ => Err(not_allowed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_have_the_length_asked_and_vary() {
        let a = random_pass(8);
        let b = random_pass(48);
        assert_eq!(a.len(), 8);
        assert_eq!(b.len(), 48);
        assert!(
            a.bytes()
                .chain(b.bytes())
                .all(|c| PASS_ALPHABET.contains(&c))
        );
        let many: std::collections::HashSet<String> = (0..50).map(|_| random_pass(8)).collect();
        assert_eq!(many.len(), 50);
    }

    #[test]
    fn the_alphabet_has_no_look_alikes() {
        for c in b"0O1lI" {
            assert!(!PASS_ALPHABET.contains(c), "{}", char::from(*c));
        }
    }
}
