//! The hardware OATH API: the token inventory
//! (`/directory/authenticationMethodDevices/hardwareOathDevices`), a user's
//! hardware and software OATH methods, activation with a TOTP code within
//! Entra's window (never a code already used), and the hardware OATH
//! method policy.

use std::collections::HashMap;

use oathdesk_formats::entra::{GraphDevice, GraphIdentity, GraphPayload};
use oathdesk_otp::{Algorithm, Digits, Secret, TimeStep, Totp, Window};
use serde_json::{Value, json};

use crate::access::Op;
use crate::server::{Handled, Reply};
use crate::state::{Request, State, not_allowed, not_found};
use crate::{MAX_OATH_METHODS, Simulator};

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

impl Simulator {
    /// The inventory.
    pub fn devices(&self) -> Vec<SimDevice> {
        self.state().devices.clone()
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

    /// Sets the hardware OATH policy state (`enabled`, `disabled`).
    pub fn set_policy_state(&self, state: &str) {
        self.state().policy_state = state.into();
    }

    /// Gives a user authenticator-app registrations (they count towards the
    /// five OATH methods).
    pub fn set_software_oath(&self, upn: &str, count: usize) {
        let mut state = self.state();
        if let Some(id) = state.find_user(upn).map(|u| u.id.clone())
            && let Some(user) = state.users.get_mut(&id)
        {
            user.software_oath = count;
        }
    }
}

/// Reads a device (or a `#$delta` payload) from a request body.
fn read_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Reply> {
    serde_json::from_value(request.json()?)
        .map_err(|e| Reply::error(400, "BadRequest", &e.to_string()))
}

impl State {
    /// `POST …/hardwareOathDevices`: one device.
    pub(crate) fn create_device(&mut self, request: &Request) -> Handled {
        self.allowed(&request.principal, Op::WriteDevices, None)?;
        let device: GraphDevice = read_body(request)?;
        if device.assign_to.is_some() {
            self.allowed(&request.principal, Op::WriteMethods, None)?;
        }
        let mut created = self.create(&[device])?;
        Ok(Reply::json(201, created.remove(0)))
    }

    /// `PATCH …/hardwareOathDevices` with a `#$delta` payload: many devices,
    /// all or none.
    pub(crate) fn create_devices(&mut self, request: &Request) -> Handled {
        self.allowed(&request.principal, Op::WriteDevices, None)?;
        let payload: GraphPayload = read_body(request)?;
        if payload.value.iter().any(|d| d.assign_to.is_some()) {
            self.allowed(&request.principal, Op::WriteMethods, None)?;
        }
        let created = self.create(&payload.value)?;
        Ok(Reply::json(
            200,
            json!({"@context": "#$delta", "value": created}),
        ))
    }

    /// `GET/PATCH/DELETE …/hardwareOathDevices/{id}`.
    pub(crate) fn device(&mut self, request: &Request, id: &str) -> Handled {
        let Some(index) = self.devices.iter().position(|d| d.id == id) else {
            self.allowed(&request.principal, Op::ReadDevices, None)?;
            return Err(not_found(id));
        };
        match *request.method {
            axum::http::Method::GET => {
                self.allowed(&request.principal, Op::ReadDevices, None)?;
                Ok(Reply::json(200, self.device_json(&self.devices[index])))
            }
            axum::http::Method::PATCH => {
                self.allowed(&request.principal, Op::WriteDevices, None)?;
                let changes = request.json()?;
                Ok(self.update(index, &changes))
            }
            axum::http::Method::DELETE => {
                self.allowed(&request.principal, Op::WriteDevices, None)?;
                if self.devices[index].assigned_to.is_some() {
                    return Err(Reply::error(
                        400,
                        "BadRequest",
                        "The token is assigned to a user: unassign it before deleting it.",
                    ));
                }
                self.devices.remove(index);
                Ok(Reply::empty(204))
            }
            _ => Err(not_allowed()),
        }
    }

    /// `GET /users/{id}/authentication/softwareOathMethods`.
    pub(crate) fn software_oath_methods(&self, request: &Request, user: &str) -> Handled {
        let Some(found) = self.find_user(user) else {
            return Err(Reply::error(
                404,
                "Request_ResourceNotFound",
                &format!("Resource '{user}' does not exist."),
            ));
        };
        self.allowed(&request.principal, Op::ReadMethods, Some(&found.id))?;
        let value: Vec<Value> = (0..found.software_oath)
            .map(|i| json!({"id": format!("{}-app-{i}", found.id), "secretKey": null}))
            .collect();
        Ok(Reply::json(200, json!({"value": value})))
    }

    /// `/users/{id}/authentication/hardwareOathMethods[/…]`: list, assign,
    /// activate, assign-and-activate, unassign.
    pub(crate) fn hardware_oath_methods(
        &mut self,
        request: &Request,
        user: &str,
        tail: &[&str],
    ) -> Handled {
        use axum::http::Method;
        let Some(user_id) = self.find_user(user).map(|u| u.id.clone()) else {
            return Err(Reply::error(
                404,
                "Request_ResourceNotFound",
                &format!("Resource '{user}' does not exist."),
            ));
        };
        let principal = &request.principal;
        match (request.method.clone(), tail) {
            (Method::GET, []) => {
                self.allowed(principal, Op::ReadMethods, Some(&user_id))?;
                Ok(self.list_methods(&user_id, &request.query))
            }
            (Method::POST, []) => {
                self.allowed(principal, Op::WriteMethods, Some(&user_id))?;
                let value = request.json()?;
                let device_id = value["device"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let index = self.assign(&user_id, |d| d.id == device_id)?;
                let d = &self.devices[index];
                Ok(Reply::json(
                    201,
                    json!({"id": d.method_id, "createdDateTime": "2026-01-01T00:00:00Z",
                           "device": {"id": d.id}}),
                ))
            }
            (Method::POST, ["assignAndActivate"]) => {
                self.allowed(principal, Op::WriteMethods, Some(&user_id))?;
                let value = request.json()?;
                let device_id = value["device"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                Ok(self.assign_and_activate(&user_id, &value, |d| d.id == device_id, &device_id))
            }
            (Method::POST, ["assignAndActivateBySerialNumber"]) => {
                self.allowed(principal, Op::WriteMethods, Some(&user_id))?;
                let value = request.json()?;
                let serial = value["serialNumber"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let matching = self.devices.iter().filter(|d| d.serial == serial).count();
                if matching > 1 {
                    return Err(Reply::error(
                        400,
                        "BadRequest",
                        &format!(
                            "More than one hardware OATH token has the serial number '{serial}'."
                        ),
                    ));
                }
                Ok(self.assign_and_activate(&user_id, &value, |d| d.serial == serial, &serial))
            }
            (Method::POST, [method_id, "activate"]) => {
                self.allowed(principal, Op::WriteMethods, Some(&user_id))?;
                let value = request.json()?;
                let Some(index) = self.devices.iter().position(|d| {
                    d.method_id.as_deref() == Some(*method_id)
                        && d.assigned_to.as_deref() == Some(&user_id)
                }) else {
                    return Err(Reply::error(
                        404,
                        "Request_ResourceNotFound",
                        &format!("Resource '{method_id}' does not exist."),
                    ));
                };
                self.activate(index, &value)?;
                Ok(Reply::empty(204))
            }
            (Method::DELETE, [method_id]) => {
                self.allowed(principal, Op::WriteMethods, Some(&user_id))?;
                let Some(device) = self.devices.iter_mut().find(|d| {
                    d.method_id.as_deref() == Some(*method_id)
                        && d.assigned_to.as_deref() == Some(&user_id)
                }) else {
                    return Err(Reply::error(
                        404,
                        "Request_ResourceNotFound",
                        &format!("Resource '{method_id}' does not exist."),
                    ));
                };
                device.assigned_to = None;
                device.method_id = None;
                device.status = "available".into();
                Ok(Reply::empty(204))
            }
            _ => Err(Reply::error(400, "BadRequest", "Unsupported request.")),
        }
    }

    /// `GET/PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/hardwareOath`.
    pub(crate) fn hardware_oath_policy(&mut self, request: &Request) -> Handled {
        use axum::http::Method;
        match *request.method {
            Method::GET => {
                self.allowed(&request.principal, Op::ReadPolicy, None)?;
                Ok(Reply::json(
                    200,
                    json!({
                        "@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration",
                        "id": "HardwareOath", "state": self.policy_state,
                        "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": false}],
                        "excludeTargets": []}),
                ))
            }
            Method::PATCH => {
                self.allowed(&request.principal, Op::WritePolicy, None)?;
                let value = request.json()?;
                match value["state"].as_str() {
                    Some(state @ ("enabled" | "disabled")) => {
                        self.policy_state = state.into();
                        Ok(Reply::empty(204))
                    }
                    _ => Err(Reply::error(
                        400,
                        "BadRequest",
                        "state must be 'enabled' or 'disabled'.",
                    )),
                }
            }
            _ => Err(not_allowed()),
        }
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

    pub(crate) fn list_devices(&self, request: &Request) -> Handled {
        self.allowed(&request.principal, Op::ReadDevices, None)?;
        let query = &request.query;
        let filter = match query.get("$filter") {
            Some(text) => match parse_serial_filter(text) {
                Some(serial) => Some(serial),
                None => {
                    return Err(Reply::error(
                        400,
                        "BadRequest",
                        &format!(
                            "Invalid filter clause: '{text}'; supported: serialNumber eq '…'."
                        ),
                    ));
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
            self.link_base()
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
        Ok(Reply::json(200, body))
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
    fn activation_windows_are_a_day_and_two_days() {
        assert_eq!(activation_window_steps(30) * 30, 86_400);
        assert_eq!(activation_window_steps(60) * 60, 2 * 86_400);
    }
}
