//! The Microsoft Graph (beta) calls for hardware OATH tokens.
//!
//! | what | request |
//! | --- | --- |
//! | inventory | `GET/PATCH/POST /directory/authenticationMethodDevices/hardwareOathDevices`, `GET/PATCH/DELETE …/{id}` |
//! | a user's tokens | `GET/POST /users/{id}/authentication/hardwareOathMethods`, `DELETE …/{methodId}` |
//! | activation | `POST …/{methodId}/activate`, `…/assignAndActivate`, `…/assignAndActivateBySerialNumber` |
//! | policy | `GET/PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/hardwareOath` |
//! | users with their data on file | `GET /users?$select=…&$expand=manager($select=id,userPrincipalName)&$top=…` |
//! | mail | `POST /users/{from}/sendMail` |
//! | Temporary Access Pass | `POST /users/{id}/authentication/temporaryAccessPassMethods`, `GET …/authenticationMethodConfigurations/temporaryAccessPass` |
//!
//! Lists come in pages linked by `@odata.nextLink`; the link is followed
//! only while it stays on the configured Graph host, so the bearer token is
//! never sent anywhere else. A `401` renews the token once and repeats the
//! call (a long push can outlive a token).

use std::fmt;
use std::marker::PhantomData;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use zeroize::{Zeroize, Zeroizing};

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

/// A user's manager, as `$expand=manager($select=id,userPrincipalName)`
/// gives it. The manager may be an organisational contact, which has no
/// UPN.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ManagerRef {
    pub id: String,
    #[serde(rename = "userPrincipalName", default)]
    pub upn: Option<String>,
}

/// A directory user with the data on file a helpdesk checks a caller
/// against (and calls back on). A property Entra has no value for is
/// `None` (an empty list for `business_phones`); so is a missing manager.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryProfile {
    pub id: String,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub mobile_phone: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub business_phones: Vec<String>,
    #[serde(default)]
    pub employee_id: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub office_location: Option<String>,
    #[serde(default)]
    pub manager: Option<ManagerRef>,
}

/// `null` read as an empty list.
fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A Temporary Access Pass just created. The pass is shown by Entra only
/// in this answer; it is wiped from memory when dropped, and `Debug` never
/// prints it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TemporaryAccessPass {
    pub id: String,
    #[serde(rename = "temporaryAccessPass")]
    pub pass: Zeroizing<String>,
    #[serde(default)]
    pub created_date_time: Option<String>,
    #[serde(default)]
    pub start_date_time: Option<String>,
    pub lifetime_in_minutes: u32,
    pub is_usable_once: bool,
    #[serde(default)]
    pub is_usable: Option<bool>,
    /// `EnabledByPolicy`, `DisabledByPolicy`, `Expired`, `NotYetValid`,
    /// `OneTimeUsed` (Entra's casing varies).
    #[serde(default)]
    pub method_usability_reason: Option<String>,
}

impl fmt::Debug for TemporaryAccessPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporaryAccessPass")
            .field("id", &self.id)
            .field("pass", &"<redacted>")
            .field("created_date_time", &self.created_date_time)
            .field("start_date_time", &self.start_date_time)
            .field("lifetime_in_minutes", &self.lifetime_in_minutes)
            .field("is_usable_once", &self.is_usable_once)
            .field("is_usable", &self.is_usable)
            .field("method_usability_reason", &self.method_usability_reason)
            .finish()
    }
}

/// The tenant's Temporary Access Pass policy
/// (`temporaryAccessPassAuthenticationMethodConfiguration`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TemporaryAccessPassPolicy {
    #[serde(default)]
    pub id: Option<String>,
    /// `enabled` or `disabled`.
    pub state: String,
    #[serde(default)]
    pub default_lifetime_in_minutes: Option<u32>,
    #[serde(default)]
    pub minimum_lifetime_in_minutes: Option<u32>,
    #[serde(default)]
    pub maximum_lifetime_in_minutes: Option<u32>,
    /// True: every pass in the tenant is one-time.
    #[serde(default)]
    pub is_usable_once: Option<bool>,
    /// Characters in a pass.
    #[serde(default)]
    pub default_length: Option<u32>,
}

/// A Graph collection read a page at a time, following `@odata.nextLink`
/// only while it stays on the Graph host. Each item is one page; an error
/// is the last item (a page that links to another host is still given,
/// and the refusal to follow the link comes next).
pub struct Pages<'g, 'a, T> {
    graph: &'g Graph<'a>,
    operation: Operation,
    next: Option<String>,
    refused: Option<Error>,
    items: PhantomData<fn() -> T>,
}

impl<T> Pages<'_, '_, T> {
    /// The URL of the next page, `None` at the end: a caller that stops can
    /// keep it to resume (while Graph still honours its skip token).
    pub fn next_link(&self) -> Option<&str> {
        self.next.as_deref()
    }
}

impl<T: serde::de::DeserializeOwned> Iterator for Pages<'_, '_, T> {
    type Item = Result<Vec<T>>;

    fn next(&mut self) -> Option<Result<Vec<T>>> {
        if let Some(error) = self.refused.take() {
            return Some(Err(error));
        }
        let url = self.next.take()?;
        let operation = self.operation;
        let page: Page<T> = match self
            .graph
            .call(operation, Method::Get, &url, Body::Empty, "the collection")
            .and_then(|answer| answer.json(operation))
        {
            Ok(page) => page,
            Err(error) => return Some(Err(error)),
        };
        if let Some(link) = page.next_link {
            if origin_of(&link) == self.graph.origin {
                self.next = Some(link);
            } else {
                self.refused = Some(Error::Protocol {
                    operation,
                    reason: format!(
                        "the next page is on another host ({}); not following it with the token",
                        crate::http::host_of(&link)
                    ),
                });
            }
        }
        Some(Ok(page.value))
    }
}

/// The most users Graph returns in one page (`$top`).
pub const MAX_USERS_PAGE: u32 = 999;

/// The user properties [`Graph::users_with_profile`] reads.
const PROFILE_SELECT: &str = "id,userPrincipalName,displayName,mail,mobilePhone,businessPhones,employeeId,department,officeLocation";

/// The shortest and longest lifetime of a Temporary Access Pass Microsoft
/// documents (10 minutes to 30 days); the tenant's policy narrows it.
pub const TAP_LIFETIME_MINUTES: std::ops::RangeInclusive<u32> = 10..=43_200;

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

/// A user's authenticator app (`softwareOathAuthenticationMethod`). Its
/// `secretKey` (which Graph returns as null anyway) is never read.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SoftwareOathMethod {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<String>,
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

    /// A collection a page at a time, from its first page's URL.
    fn pages<T>(&self, operation: Operation, url: String) -> Pages<'_, 'a, T> {
        Pages {
            graph: self,
            operation,
            next: Some(url),
            refused: None,
            items: PhantomData,
        }
    }

    /// Every item of a collection, following `@odata.nextLink`.
    fn list<T: serde::de::DeserializeOwned>(
        &self,
        operation: Operation,
        url: String,
    ) -> Result<Vec<T>> {
        self.pages(operation, url)
            .try_fold(Vec::new(), |mut items, page| {
                items.extend(page?);
                Ok(items)
            })
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

    /// Every user with their data on file and their manager. It asks for
    /// pages of [`MAX_USERS_PAGE`], but Graph answers at most 100 users a
    /// page when it expands the manager (its known issue 13635), so 10,000
    /// users take 100 requests. For a large directory,
    /// [`Graph::user_profile_pages`] holds one page at a time instead.
    pub fn users_with_profile(&self) -> Result<Vec<DirectoryProfile>> {
        self.user_profile_pages(Some(MAX_USERS_PAGE))?
            .try_fold(Vec::new(), |mut users, page| {
                users.extend(page?);
                Ok(users)
            })
    }

    /// The users with their data on file, a page at a time: up to
    /// `page_size` users per request (1 to 999; `None`: Graph's default of
    /// 100; Graph gives no more than 100 while it expands the manager).
    /// Needs User.Read.All.
    pub fn user_profile_pages(
        &self,
        page_size: Option<u32>,
    ) -> Result<Pages<'_, 'a, DirectoryProfile>> {
        let mut url = format!(
            "{}/users?$select={}&$expand={}",
            self.base,
            utf8_percent_encode(PROFILE_SELECT, ENCODE),
            utf8_percent_encode("manager($select=id,userPrincipalName)", ENCODE),
        );
        if let Some(size) = page_size {
            if !(1..=MAX_USERS_PAGE).contains(&size) {
                return Err(Error::Refused(format!(
                    "Graph pages users 1 to {MAX_USERS_PAGE} at a time, not {size}"
                )));
            }
            url.push_str(&format!("&$top={size}"));
        }
        Ok(self.pages(Operation::ListUsers, url))
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
        Ok(self.software_oath_method_list(user_id)?.len())
    }

    /// A user's authenticator apps (software OATH methods).
    pub fn software_oath_method_list(&self, user_id: &str) -> Result<Vec<SoftwareOathMethod>> {
        let url = format!(
            "{}/users/{}/authentication/softwareOathMethods",
            self.base,
            utf8_percent_encode(user_id, ENCODE)
        );
        self.list(Operation::ListMethods, url)
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

    // ----- mail -------------------------------------------------------------------

    /// Sends a plain-text message from a mailbox (object id, UPN or address)
    /// to one address; Entra answers `202 Accepted` and nothing is kept in
    /// Sent Items. Needs Mail.Send.
    ///
    /// Graph has no idempotency key for sendMail: a `5xx` that comes after
    /// Exchange accepted the message is retried like any other, so the
    /// recipient may (rarely) get it twice.
    pub fn send_mail(
        &self,
        from_mailbox: &str,
        to_address: &str,
        subject: &str,
        text_body: &str,
    ) -> Result<()> {
        let body = json!({
            "message": {
                "subject": subject,
                "body": {"contentType": "Text", "content": text_body},
                "toRecipients": [{"emailAddress": {"address": to_address}}],
            },
            "saveToSentItems": false,
        });
        self.call(
            Operation::SendMail,
            Method::Post,
            &format!(
                "{}/users/{}/sendMail",
                self.base,
                utf8_percent_encode(from_mailbox, ENCODE)
            ),
            Body::Json(&body),
            &format!("mailbox {from_mailbox}"),
        )
        .map(drop)
    }

    // ----- Temporary Access Pass ----------------------------------------------------

    /// Creates a Temporary Access Pass for a user. `lifetime_minutes`
    /// `None` takes the policy's default; Entra refuses a lifetime outside
    /// the policy's range, a multi-use pass where the policy wants one-time
    /// passes, and any pass while the method is disabled: those come back
    /// as [`Error::Rejected`] with Entra's message. A user holds one pass:
    /// a new one replaces the one they had (so a retried create leaves the
    /// pass returned as the only valid one). Needs
    /// UserAuthenticationMethod.ReadWrite.All.
    pub fn create_temporary_access_pass(
        &self,
        user_id: &str,
        lifetime_minutes: Option<u32>,
        usable_once: bool,
    ) -> Result<TemporaryAccessPass> {
        let mut body = json!({"isUsableOnce": usable_once});
        if let Some(minutes) = lifetime_minutes {
            if !TAP_LIFETIME_MINUTES.contains(&minutes) {
                return Err(Error::Refused(format!(
                    "a Temporary Access Pass lasts {} to {} minutes (30 days), not {minutes}",
                    TAP_LIFETIME_MINUTES.start(),
                    TAP_LIFETIME_MINUTES.end()
                )));
            }
            body["lifetimeInMinutes"] = json!(minutes);
        }
        let mut answer = self.call(
            Operation::CreateTap,
            Method::Post,
            &format!(
                "{}/users/{}/authentication/temporaryAccessPassMethods",
                self.base,
                utf8_percent_encode(user_id, ENCODE)
            ),
            Body::Json(&body),
            &format!("user {user_id}"),
        )?;
        let pass = answer.json::<TemporaryAccessPass>(Operation::CreateTap);
        answer.body.zeroize();
        let pass = pass?;
        if pass.pass.is_empty() {
            return Err(Error::Protocol {
                operation: Operation::CreateTap,
                reason: "the answer holds no pass".into(),
            });
        }
        Ok(pass)
    }

    /// The tenant's Temporary Access Pass policy (whether the method is on,
    /// the lifetimes it allows).
    pub fn temporary_access_pass_policy(&self) -> Result<TemporaryAccessPassPolicy> {
        self.call(
            Operation::ReadTapPolicy,
            Method::Get,
            &format!(
                "{}/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/temporaryAccessPass",
                self.base
            ),
            Body::Empty,
            "the Temporary Access Pass policy",
        )?
        .json(Operation::ReadTapPolicy)
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

    #[test]
    fn profiles_read_nulls_and_a_missing_manager_as_none() {
        let page: Page<DirectoryProfile> = serde_json::from_str(
            r##"{"value":[
                {"id":"u1","userPrincipalName":"a@x","displayName":"A","mail":null,
                 "mobilePhone":"+1 555 0100","businessPhones":["+1 555 0101","+1 555 0102"],
                 "employeeId":"E1","department":"IT","officeLocation":"B1",
                 "manager":{"@odata.type":"#microsoft.graph.user","id":"m1","userPrincipalName":"m@x"}},
                {"id":"u2","businessPhones":null,"manager":null},
                {"id":"u3","businessPhones":[]},
                {"id":"u4","manager":{"@odata.type":"#microsoft.graph.orgContact","id":"c1"}}]}"##,
        )
        .unwrap();
        let [a, b, c, d] = &page.value[..] else {
            panic!("four users")
        };
        assert_eq!(
            a.manager,
            Some(ManagerRef {
                id: "m1".into(),
                upn: Some("m@x".into())
            })
        );
        assert_eq!(a.business_phones, ["+1 555 0101", "+1 555 0102"]);
        assert_eq!(a.mail, None);
        assert_eq!(a.mobile_phone.as_deref(), Some("+1 555 0100"));
        assert_eq!((b.manager.as_ref(), b.business_phones.len()), (None, 0));
        assert_eq!((c.manager.as_ref(), c.display_name.as_ref()), (None, None));
        assert_eq!(
            d.manager.as_ref().map(|m| (m.id.as_str(), m.upn.is_none())),
            Some(("c1", true))
        );
    }

    #[test]
    fn a_temporary_access_pass_reads_graphs_example_and_hides_the_pass() {
        // The answer in Microsoft's "Create temporaryAccessPassMethod".
        let tap: TemporaryAccessPass = serde_json::from_str(
            r##"{"@odata.type":"#microsoft.graph.temporaryAccessPassAuthenticationMethod",
                "id":"6f1967b7-15e8-4935-ac26-d50770ed07a7","temporaryAccessPass":"+drkzqAD",
                "createdDateTime":"2022-06-02T16:21:09.765173Z","startDateTime":"2022-06-05T00:00:00Z",
                "lifetimeInMinutes":60,"isUsableOnce":false,"isUsable":false,
                "methodUsabilityReason":"NotYetValid"}"##,
        )
        .unwrap();
        assert_eq!(tap.pass.as_str(), "+drkzqAD");
        assert_eq!((tap.lifetime_in_minutes, tap.is_usable_once), (60, false));
        let shown = format!("{tap:?}");
        assert!(!shown.contains("+drkzqAD"), "{shown}");
        assert!(
            shown.contains("6f1967b7") && shown.contains("NotYetValid"),
            "{shown}"
        );
        // No pass, no pass object.
        assert!(
            serde_json::from_str::<TemporaryAccessPass>(
                r#"{"id":"x","temporaryAccessPass":null,"lifetimeInMinutes":60,"isUsableOnce":true}"#
            )
            .is_err()
        );
    }
}
