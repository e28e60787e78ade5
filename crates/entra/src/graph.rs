//! The Microsoft Graph (beta) calls for hardware OATH tokens.
//!
//! | what | request |
//! | --- | --- |
//! | inventory | `GET/PATCH/POST /directory/authenticationMethodDevices/hardwareOathDevices`, `GET/PATCH/DELETE …/{id}` |
//! | a user's tokens | `GET/POST /users/{id}/authentication/hardwareOathMethods`, `DELETE …/{methodId}` |
//! | activation | `POST …/{methodId}/activate`, `…/assignAndActivate`, `…/assignAndActivateBySerialNumber` |
//! | policy | `GET/PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/hardwareOath` |
//!
//! Lists come in pages linked by `@odata.nextLink`; the link is followed
//! only while it stays on the configured Graph host, so the bearer token is
//! never sent anywhere else. A `401` renews the token once and repeats the
//! call (a long push can outlive a token).

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::auth::Authenticator;
use crate::error::{Error, Operation, Result};
use crate::http::{Answer, Body, Http, Method, origin_of};

pub use oathdesk_formats::entra::{GraphDevice, GraphId, GraphIdentity, GraphPayload};

/// Characters left as they are in a path segment or query value.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// One page of a Graph collection.
#[derive(Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// A directory user.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    pub id: String,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A user's hardware OATH method (`hardwareOathAuthenticationMethod`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HardwareOathMethod {
    pub id: String,
    #[serde(default)]
    pub created_date_time: Option<String>,
    /// Present with `$expand=device`.
    #[serde(default)]
    pub device: Option<GraphDevice>,
}

/// The hardware OATH authentication method policy.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HardwareOathPolicy {
    #[serde(default)]
    pub id: Option<String>,
    /// `enabled` or `disabled`.
    pub state: String,
    #[serde(default)]
    pub include_targets: Vec<serde_json::Value>,
    #[serde(default)]
    pub exclude_targets: Vec<serde_json::Value>,
}

/// A 6-digit code for activation. Shown nowhere; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationCode(Zeroizing<String>);

impl VerificationCode {
    /// Six decimal digits, as Entra takes them.
    pub fn new(code: &str) -> Result<VerificationCode> {
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            Ok(VerificationCode(Zeroizing::new(code.to_owned())))
        } else {
            Err(Error::Refused(
                "Entra's verification code is exactly 6 digits".into(),
            ))
        }
    }

    fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationCode(<redacted>)")
    }
}

/// Quotes a string for an OData `$filter` (single quotes doubled).
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// An activation request: `base` with the code and an optional name.
fn activation_body(
    mut base: serde_json::Value,
    code: &VerificationCode,
    display_name: Option<&str>,
) -> serde_json::Value {
    base["verificationCode"] = json!(code.as_str());
    if let Some(name) = display_name {
        base["displayName"] = json!(name);
    }
    base
}

/// The Graph client for one tenant.
pub struct Graph<'a> {
    http: &'a Http,
    auth: &'a Authenticator<'a>,
    base: String,
    origin: String,
    now: fn() -> u64,
}

/// The current Unix time.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const DEVICES: &str = "/directory/authenticationMethodDevices/hardwareOathDevices";
const POLICY: &str =
    "/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/hardwareOath";

impl<'a> Graph<'a> {
    /// A client of the beta Graph at the authenticator's endpoints.
    pub fn new(http: &'a Http, auth: &'a Authenticator<'a>) -> Graph<'a> {
        let graph = auth.sign_in().endpoints().graph.clone();
        Graph {
            http,
            auth,
            origin: origin_of(&graph).to_owned(),
            base: format!("{graph}/beta"),
            now: unix_now,
        }
    }

    /// The HTTP layer (its request counts).
    pub fn http(&self) -> &Http {
        self.http
    }

    /// Sends one call with a token; renews the token once on 401.
    fn call(
        &self,
        operation: Operation,
        method: Method,
        url: &str,
        body: Body<'_>,
        what: &str,
    ) -> Result<Answer> {
        let token = self.auth.token((self.now)(), false)?;
        let mut answer = self
            .http
            .send(operation, method, url, Some(&token), &body)?;
        if answer.status == 401 {
            let token = self.auth.token((self.now)(), true)?;
            answer = self
                .http
                .send(operation, method, url, Some(&token), &body)?;
        }
        if answer.ok() {
            Ok(answer)
        } else {
            Err(Error::from_status(operation, what, answer.error()))
        }
    }

    /// Every item of a collection, following `@odata.nextLink`.
    fn list<T: serde::de::DeserializeOwned>(
        &self,
        operation: Operation,
        url: String,
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let page: Page<T> = self
                .call(operation, Method::Get, &url, Body::Empty, "the collection")?
                .json(operation)?;
            items.extend(page.value);
            if let Some(link) = page.next_link {
                if origin_of(&link) != self.origin {
                    return Err(Error::Protocol {
                        operation,
                        reason: format!(
                            "the next page is on another host ({}); not following it with the token",
                            crate::http::host_of(&link)
                        ),
                    });
                }
                next = Some(link);
            }
        }
        Ok(items)
    }

    fn user_path(&self, user: &str) -> String {
        format!(
            "{}/users/{}/authentication/hardwareOathMethods",
            self.base,
            utf8_percent_encode(user, ENCODE)
        )
    }

    // ----- the inventory -----------------------------------------------------

    /// Every hardware OATH token in the tenant.
    pub fn devices(&self) -> Result<Vec<GraphDevice>> {
        self.list(Operation::ListDevices, format!("{}{DEVICES}", self.base))
    }

    /// The tokens with this serial number (Entra does not promise there is
    /// only one).
    pub fn devices_by_serial(&self, serial: &str) -> Result<Vec<GraphDevice>> {
        let filter = format!("serialNumber eq {}", odata_string(serial));
        self.list(
            Operation::ListDevices,
            format!(
                "{}{DEVICES}?$filter={}",
                self.base,
                utf8_percent_encode(&filter, ENCODE)
            ),
        )
    }

    /// One token by id.
    pub fn device(&self, id: &str) -> Result<GraphDevice> {
        self.call(
            Operation::ListDevices,
            Method::Get,
            &format!("{}{DEVICES}/{}", self.base, utf8_percent_encode(id, ENCODE)),
            Body::Empty,
            &format!("token {id}"),
        )?
        .json(Operation::ListDevices)
    }

    /// Creates one token (`201` with the new device).
    pub fn create_device(&self, device: &GraphDevice) -> Result<GraphDevice> {
        let body = serde_json::to_value(device).expect("a device serialises");
        self.call(
            Operation::CreateDevices,
            Method::Post,
            &format!("{}{DEVICES}", self.base),
            Body::Json(&body),
            "the inventory",
        )?
        .json(Operation::CreateDevices)
    }

    /// Creates many tokens in one `PATCH` with a `#$delta` payload. Returns
    /// the devices the answer names (with `@contentId` and `id`); an answer
    /// without a body returns none, and the caller looks them up by serial.
    pub fn create_devices(&self, devices: &[GraphDevice]) -> Result<Vec<GraphDevice>> {
        let payload = GraphPayload {
            context: Some("#$delta".into()),
            value: devices
                .iter()
                .enumerate()
                .map(|(i, d)| GraphDevice {
                    content_id: Some((i + 1).to_string()),
                    ..d.clone()
                })
                .collect(),
        };
        let body = serde_json::to_value(&payload).expect("a payload serialises");
        let answer = self.call(
            Operation::CreateDevices,
            Method::Patch,
            &format!("{}{DEVICES}", self.base),
            Body::Json(&body),
            "the inventory",
        )?;
        if answer.body.trim().is_empty() {
            return Ok(Vec::new());
        }
        Ok(answer
            .json::<Page<GraphDevice>>(Operation::CreateDevices)?
            .value)
    }

    /// Changes a token's display name, manufacturer, model, period or hash
    /// (Entra allows it only while the token is unassigned; the secret can
    /// never change).
    pub fn update_device(&self, id: &str, changes: &GraphDevice) -> Result<()> {
        let body = serde_json::to_value(changes).expect("a device serialises");
        self.call(
            Operation::UpdateDevice,
            Method::Patch,
            &format!("{}{DEVICES}/{}", self.base, utf8_percent_encode(id, ENCODE)),
            Body::Json(&body),
            &format!("token {id}"),
        )
        .map(drop)
    }

    /// Deletes a token (it must be unassigned first).
    pub fn delete_device(&self, id: &str) -> Result<()> {
        self.call(
            Operation::DeleteDevice,
            Method::Delete,
            &format!("{}{DEVICES}/{}", self.base, utf8_percent_encode(id, ENCODE)),
            Body::Empty,
            &format!("token {id}"),
        )
        .map(drop)
    }

    // ----- users ------------------------------------------------------------

    /// A user by UPN or object id.
    pub fn user(&self, upn_or_id: &str) -> Result<DirectoryUser> {
        self.call(
            Operation::ReadUser,
            Method::Get,
            &format!(
                "{}/users/{}?$select=id,userPrincipalName,displayName",
                self.base,
                utf8_percent_encode(upn_or_id, ENCODE)
            ),
            Body::Empty,
            &format!("user {upn_or_id}"),
        )?
        .json(Operation::ReadUser)
    }

    /// A user's hardware OATH methods with their devices.
    pub fn methods(&self, user_id: &str) -> Result<Vec<HardwareOathMethod>> {
        self.list(
            Operation::ListMethods,
            format!("{}?$expand=device", self.user_path(user_id)),
        )
    }

    /// How many authenticator apps (software OATH methods) a user has: they
    /// count towards the five OATH methods Entra allows.
    pub fn software_oath_methods(&self, user_id: &str) -> Result<usize> {
        let url = format!(
            "{}/users/{}/authentication/softwareOathMethods",
            self.base,
            utf8_percent_encode(user_id, ENCODE)
        );
        Ok(self
            .list::<serde_json::Value>(Operation::ListMethods, url)?
            .len())
    }

    /// Assigns a token to a user without activating it.
    pub fn assign(&self, user_id: &str, device_id: &str) -> Result<HardwareOathMethod> {
        let body = json!({"device": {"id": device_id}});
        self.call(
            Operation::Assign,
            Method::Post,
            &self.user_path(user_id),
            Body::Json(&body),
            &format!("user {user_id} or token {device_id}"),
        )?
        .json(Operation::Assign)
    }

    /// Activates an assigned token with a code it shows.
    pub fn activate(
        &self,
        user_id: &str,
        method_id: &str,
        code: &VerificationCode,
        display_name: Option<&str>,
    ) -> Result<()> {
        let body = activation_body(json!({}), code, display_name);
        self.call(
            Operation::Activate,
            Method::Post,
            &format!(
                "{}/{}/activate",
                self.user_path(user_id),
                utf8_percent_encode(method_id, ENCODE)
            ),
            Body::Json(&body),
            &format!("method {method_id} of user {user_id}"),
        )
        .map(drop)
    }

    /// Assigns and activates in one call.
    pub fn assign_and_activate(
        &self,
        user_id: &str,
        device_id: &str,
        code: &VerificationCode,
        display_name: Option<&str>,
    ) -> Result<()> {
        let body = activation_body(json!({"device": {"id": device_id}}), code, display_name);
        self.call(
            Operation::Activate,
            Method::Post,
            &format!("{}/assignAndActivate", self.user_path(user_id)),
            Body::Json(&body),
            &format!("user {user_id} or token {device_id}"),
        )
        .map(drop)
    }

    /// Assigns and activates the token with this serial number.
    pub fn assign_and_activate_by_serial(
        &self,
        user_id: &str,
        serial: &str,
        code: &VerificationCode,
        display_name: Option<&str>,
    ) -> Result<()> {
        let body = activation_body(json!({"serialNumber": serial}), code, display_name);
        self.call(
            Operation::Activate,
            Method::Post,
            &format!(
                "{}/assignAndActivateBySerialNumber",
                self.user_path(user_id)
            ),
            Body::Json(&body),
            &format!("user {user_id} or token {serial}"),
        )
        .map(drop)
    }

    /// Unassigns a token from a user; it returns to the inventory.
    pub fn unassign(&self, user_id: &str, method_id: &str) -> Result<()> {
        self.call(
            Operation::Unassign,
            Method::Delete,
            &format!(
                "{}/{}",
                self.user_path(user_id),
                utf8_percent_encode(method_id, ENCODE)
            ),
            Body::Empty,
            &format!("method {method_id} of user {user_id}"),
        )
        .map(drop)
    }

    // ----- policy -------------------------------------------------------------

    /// The hardware OATH authentication method policy.
    pub fn policy(&self) -> Result<HardwareOathPolicy> {
        self.call(
            Operation::ReadPolicy,
            Method::Get,
            &format!("{}{POLICY}", self.base),
            Body::Empty,
            "the hardware OATH policy",
        )?
        .json(Operation::ReadPolicy)
    }

    /// Turns the hardware OATH method on or off for the tenant.
    pub fn set_policy_state(&self, enabled: bool) -> Result<()> {
        let body = json!({
            "@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration",
            "state": if enabled { "enabled" } else { "disabled" },
        });
        self.call(
            Operation::UpdatePolicy,
            Method::Patch,
            &format!("{}{POLICY}", self.base),
            Body::Json(&body),
            "the hardware OATH policy",
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_strings_double_quotes_and_encode() {
        assert_eq!(odata_string("O'Brien-01"), "'O''Brien-01'");
        let filter = format!("serialNumber eq {}", odata_string("A B&C"));
        assert_eq!(
            utf8_percent_encode(&filter, ENCODE).to_string(),
            "serialNumber%20eq%20%27A%20B%26C%27"
        );
    }

    #[test]
    fn verification_codes_are_six_digits_and_hidden() {
        assert!(VerificationCode::new("123456").is_ok());
        assert!(VerificationCode::new("12345678").is_err());
        assert!(VerificationCode::new("12345a").is_err());
        let code = VerificationCode::new("654321").unwrap();
        assert!(!format!("{code:?}").contains("654321"));
    }

    #[test]
    fn pages_and_methods_read_graph_shapes() {
        let page: Page<GraphDevice> = serde_json::from_str(
            r#"{"@odata.context":"x","@odata.nextLink":"https://graph.microsoft.com/beta/next",
                "value":[{"id":"d1","serialNumber":"S-01","manufacturer":"Token2","model":"Molto2",
                "secretKey":null,"timeIntervalInSeconds":30,"hashFunction":"hmacsha1","status":"assigned",
                "assignedTo":{"id":"u1","displayName":"Bob"},"lastUsedDateTime":null}]}"#,
        )
        .unwrap();
        assert_eq!(page.value[0].status.as_deref(), Some("assigned"));
        assert_eq!(
            page.value[0]
                .assigned_to
                .as_ref()
                .and_then(|a| a.id.as_deref()),
            Some("u1")
        );
        assert!(page.next_link.is_some());
        let method: HardwareOathMethod =
            serde_json::from_str(r#"{"id":"m1","device":{"id":"d1","serialNumber":"S-01"}}"#)
                .unwrap();
        assert_eq!(method.device.unwrap().id.as_deref(), Some("d1"));
    }
}
