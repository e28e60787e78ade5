//! Directory users: `GET /users` with `$select`, `$expand=manager(…)`,
//! `$top` and server-driven paging, `GET /users/{id | upn}` and
//! `GET /users/{id | upn}/manager`.
//!
//! As Microsoft documents for List users: the default page is 100 users and
//! `$top` goes up to 999; `$skip` is not supported, and the next page is
//! reached only through `@odata.nextLink`, an absolute URL that repeats the
//! query with an opaque `$skiptoken`. A property that is not set is `null`,
//! `businessPhones` is an array of strings (empty when none). A user without
//! a manager has no `manager` property under `$expand=manager` (*inference*
//! from answers seen; oathdesk's client takes `null` alike).
//!
//! With `$expand`, a page holds at most 100 users whatever `$top` asks
//! (*observed*, Graph's known issue 13635: "`$expand` on directory objects
//! returns a maximum of 100 objects"); clients must follow the links.
//!
//! The skip token is a cursor (the last object id served), so users added
//! while a client pages are neither skipped nor served twice (*inference*:
//! Graph's tokens are opaque and Microsoft promises nothing about changes
//! made while a client pages; a cursor is the simplest behaviour to reason
//! about). A token the simulator did not issue answers `400`.

use std::ops::Bound;

use serde_json::{Map, Value, json};

use crate::Simulator;
use crate::access::Op;
use crate::server::{Handled, Reply};
use crate::state::{Request, State, not_found};

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
    pub mail: Option<String>,
    pub mobile_phone: Option<String>,
    pub business_phones: Vec<String>,
    pub employee_id: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    /// The manager's object id.
    pub manager: Option<String>,
}

/// The data on file for a user, as a test seeds it. `None` is a property
/// Entra has no value for (`null` in Graph).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserProfile {
    /// `None`: the part of the UPN before `@` (as [`Simulator::add_user`]
    /// names users); [`Simulator::set_profile`] leaves the name as it is.
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub mobile_phone: Option<String>,
    pub business_phones: Vec<String>,
    pub employee_id: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
}

impl Simulator {
    /// Adds a directory user; returns the object id.
    pub fn add_user(&self, upn: &str, admin: bool) -> String {
        let mut state = self.state();
        let id = state.insert_user(upn, &UserProfile::default());
        state.users.get_mut(&id).expect("just added").admin = admin;
        id
    }

    /// A directory of `n` users (`user0@contoso.com` …) with phones, mail,
    /// employee ids, departments (IT, Finance, Sales in turn), a location
    /// and a tree of managers, ten reports each: for trying and timing
    /// `entra users sync`. Returns the users' ids in order.
    pub fn seed_directory(&self, n: usize) -> Vec<String> {
        let ids: Vec<String> = (0..n)
            .map(|i| {
                self.add_user_with_profile(
                    &format!("user{i}@contoso.com"),
                    &UserProfile {
                        display_name: Some(format!("User {i}")),
                        mail: Some(format!("user{i}@contoso.com")),
                        mobile_phone: Some(format!("+1 555 {i:06}")),
                        business_phones: vec![format!("+1 425 {i:06}")],
                        employee_id: Some(format!("E{i:06}")),
                        department: Some(["IT", "Finance", "Sales"][i % 3].into()),
                        office_location: Some("HQ".into()),
                    },
                )
            })
            .collect();
        for (i, id) in ids.iter().enumerate().skip(1) {
            self.set_manager(id, Some(&ids[(i - 1) / 10]));
        }
        ids
    }

    /// Adds a directory user with its data on file; returns the object id.
    pub fn add_user_with_profile(&self, upn: &str, profile: &UserProfile) -> String {
        self.state().insert_user(upn, profile)
    }

    /// Replaces a user's data on file (by object id or UPN); false if there
    /// is no such user.
    pub fn set_profile(&self, user: &str, profile: &UserProfile) -> bool {
        let mut state = self.state();
        let Some(id) = state.find_user(user).map(|u| u.id.clone()) else {
            return false;
        };
        let found = state.users.get_mut(&id).expect("found");
        if let Some(name) = &profile.display_name {
            found.display_name = name.clone();
        }
        apply_profile(found, profile);
        true
    }

    /// Sets (or with `None` removes) a user's manager, both by object id or
    /// UPN; false if either is unknown or a user would manage themselves.
    pub fn set_manager(&self, user: &str, manager: Option<&str>) -> bool {
        let mut state = self.state();
        let Some(id) = state.find_user(user).map(|u| u.id.clone()) else {
            return false;
        };
        let manager_id = match manager {
            Some(key) => match state.find_user(key) {
                Some(m) if m.id != id => Some(m.id.clone()),
                _ => return false,
            },
            None => None,
        };
        state.users.get_mut(&id).expect("found").manager = manager_id;
        true
    }

    /// Gives a user admin roles (for device-code sign-in).
    pub fn set_roles(&self, upn: &str, roles: &[&str]) {
        let mut state = self.state();
        if let Some(id) = state.find_user(upn).map(|u| u.id.clone())
            && let Some(user) = state.users.get_mut(&id)
        {
            user.roles = roles.iter().map(|r| r.to_string()).collect();
            user.admin = !roles.is_empty();
        }
    }

    /// The users, in creation order.
    pub fn users(&self) -> Vec<SimUser> {
        self.state().users.values().cloned().collect()
    }

    /// One user by object id or UPN.
    pub fn user(&self, user: &str) -> Option<SimUser> {
        self.state().find_user(user).cloned()
    }
}

fn apply_profile(user: &mut SimUser, profile: &UserProfile) {
    user.mail = profile.mail.clone();
    user.mobile_phone = profile.mobile_phone.clone();
    user.business_phones = profile.business_phones.clone();
    user.employee_id = profile.employee_id.clone();
    user.department = profile.department.clone();
    user.office_location = profile.office_location.clone();
}

/// The properties the simulator keeps, as Graph names them.
const MODELLED: [&str; 9] = [
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "mobilePhone",
    "businessPhones",
    "employeeId",
    "department",
    "officeLocation",
];

/// Properties of Graph's user the simulator does not keep: selected, they
/// are `null` (`accountEnabled` is `true`).
const UNMODELLED: [&str; 10] = [
    "givenName",
    "surname",
    "jobTitle",
    "preferredLanguage",
    "companyName",
    "city",
    "country",
    "usageLocation",
    "employeeType",
    "accountEnabled",
];

/// What Graph returns without `$select` (the documented default set).
const DEFAULT_SELECT: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// The default and largest page of `GET /users` (Microsoft's List users).
pub const USERS_DEFAULT_PAGE: usize = 100;
pub const USERS_MAX_PAGE: usize = 999;
/// The largest page of `GET /users` with `$expand` (see the module).
pub const USERS_EXPANDED_MAX_PAGE: usize = 100;

/// Graph's answer to a property it does not know (*observed* wording of
/// the directory back end).
fn unknown_property(name: &str) -> Reply {
    Reply::error(
        400,
        "Request_BadRequest",
        &format!(
            "Could not find a property named '{name}' on type 'Microsoft.DirectoryServices.User'."
        ),
    )
}

/// Reads `$select`: Graph's property names, matched without regard to case.
fn parse_select(text: &str) -> Result<Vec<&'static str>, Reply> {
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            MODELLED
                .iter()
                .chain(UNMODELLED.iter())
                .find(|known| known.eq_ignore_ascii_case(name))
                .copied()
                .ok_or_else(|| unknown_property(name))
        })
        .collect()
}

/// Reads `$expand`: only `manager`, optionally `manager($select=…)`.
/// Returns the manager's properties (`None`: the default set).
fn parse_expand(text: &str) -> Result<Option<Vec<&'static str>>, Reply> {
    let text = text.trim();
    let (name, options) = match text.split_once('(') {
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(options) => (name.trim(), Some(options)),
            None => {
                return Err(Reply::error(
                    400,
                    "BadRequest",
                    &format!("Invalid $expand: '{text}'."),
                ));
            }
        },
        None => (text, None),
    };
    if !name.eq_ignore_ascii_case("manager") {
        return Err(Reply::error(
            400,
            "BadRequest",
            &format!(
                "Parsing OData Select and Expand failed: Could not find a property named '{name}' on type 'microsoft.graph.user'."
            ),
        ));
    }
    let mut select = None;
    for option in options.unwrap_or_default().split(';').map(str::trim) {
        if option.is_empty() {
            continue;
        }
        match option.split_once('=') {
            Some((key, value)) if key.trim().eq_ignore_ascii_case("$select") => {
                select = Some(parse_select(value)?);
            }
            _ => {
                return Err(Reply::error(
                    400,
                    "Request_UnsupportedQuery",
                    &format!(
                        "The simulator supports only $select inside $expand=manager(…), not '{option}'."
                    ),
                ));
            }
        }
    }
    Ok(select)
}

/// The options of `GET /users` the simulator honours; any other `$` option
/// is refused rather than ignored, so a test never passes by accident.
const LIST_OPTIONS: [&str; 4] = ["$select", "$expand", "$top", "$skiptoken"];

impl State {
    /// Adds a user (UPNs are unique without regard to case: the first keeps
    /// the index, as before).
    pub(crate) fn insert_user(&mut self, upn: &str, profile: &UserProfile) -> String {
        let id = self.new_id();
        let mut user = SimUser {
            id: id.clone(),
            upn: upn.into(),
            display_name: profile
                .display_name
                .clone()
                .unwrap_or_else(|| upn.split('@').next().unwrap_or(upn).into()),
            admin: false,
            software_oath: 0,
            roles: Vec::new(),
            mail: None,
            mobile_phone: None,
            business_phones: Vec::new(),
            employee_id: None,
            department: None,
            office_location: None,
            manager: None,
        };
        apply_profile(&mut user, profile);
        self.upn_index
            .entry(upn.to_ascii_lowercase())
            .or_insert_with(|| id.clone());
        self.users.insert(id.clone(), user);
        id
    }

    /// A user by object id or UPN (without regard to case).
    pub(crate) fn find_user(&self, key: &str) -> Option<&SimUser> {
        self.users.get(key).or_else(|| {
            self.upn_index
                .get(&key.to_ascii_lowercase())
                .and_then(|id| self.users.get(id))
        })
    }

    /// A user as Graph shows it: the selected properties, and the manager
    /// when expanded (absent when the user has none).
    fn user_json(&self, user: &SimUser, select: &[&str], manager: Option<&[&str]>) -> Value {
        let mut object = Map::new();
        for &name in select {
            let value = match name {
                "id" => json!(user.id),
                "userPrincipalName" => json!(user.upn),
                "displayName" => json!(user.display_name),
                "mail" => json!(user.mail),
                "mobilePhone" => json!(user.mobile_phone),
                "businessPhones" => json!(user.business_phones),
                "employeeId" => json!(user.employee_id),
                "department" => json!(user.department),
                "officeLocation" => json!(user.office_location),
                "accountEnabled" => json!(true),
                _ => Value::Null,
            };
            object.insert(name.into(), value);
        }
        if let Some(manager_select) = manager
            && let Some(boss) = user.manager.as_ref().and_then(|id| self.users.get(id))
        {
            let mut value = self.user_json(boss, manager_select, None);
            value["@odata.type"] = json!("#microsoft.graph.user");
            object.insert("manager".into(), value);
        }
        Value::Object(object)
    }

    /// `$select` and `$expand` of a request.
    fn projection(
        request: &Request,
    ) -> Result<(Vec<&'static str>, Option<Vec<&'static str>>), Reply> {
        let select = match request.query.get("$select") {
            Some(text) => parse_select(text)?,
            None => DEFAULT_SELECT.to_vec(),
        };
        let manager = match request.query.get("$expand") {
            Some(text) => Some(parse_expand(text)?.unwrap_or_else(|| DEFAULT_SELECT.to_vec())),
            None => None,
        };
        Ok((select, manager))
    }

    /// `GET /users`: one page, with `@odata.nextLink` when more follow.
    pub(crate) fn list_users(&self, request: &Request) -> Handled {
        self.allowed(&request.principal, Op::ReadUsers, None)?;
        if let Some(option) = request
            .query
            .keys()
            .find(|k| k.starts_with('$') && !LIST_OPTIONS.contains(&k.as_str()))
        {
            return Err(Reply::error(
                400,
                "Request_UnsupportedQuery",
                &format!("The simulator does not support {option} on users."),
            ));
        }
        let (select, manager) = Self::projection(request)?;
        let top = match request.query.get("$top") {
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if (1..=USERS_MAX_PAGE).contains(&n) => n,
                // *Observed* wording for an out-of-range page size.
                _ => {
                    return Err(Reply::error(
                        400,
                        "Request_UnsupportedQuery",
                        &format!(
                            "Invalid page size specified: '{text}'. Must be between 1 and {USERS_MAX_PAGE} inclusive."
                        ),
                    ));
                }
            },
            None => USERS_DEFAULT_PAGE,
        };
        let top = match manager {
            Some(_) => top.min(USERS_EXPANDED_MAX_PAGE),
            None => top,
        };
        let after = match request.query.get("$skiptoken") {
            Some(token) => Some(decode_skiptoken(token).ok_or_else(|| {
                Reply::error(
                    400,
                    "Request_BadRequest",
                    "The specified page token value has expired or is invalid.",
                )
            })?),
            None => None,
        };
        let lower = match &after {
            Some(id) => Bound::Excluded(id.as_str()),
            None => Bound::Unbounded,
        };
        let mut remaining = self
            .users
            .range::<str, _>((lower, Bound::Unbounded))
            .map(|(_, user)| user);
        let page: Vec<&crate::SimUser> = remaining.by_ref().take(top).collect();
        let more = remaining.next().is_some();
        let value: Vec<Value> = page
            .iter()
            .map(|u| self.user_json(u, &select, manager.as_deref()))
            .collect();
        let mut body = json!({
            "@odata.context": format!("{}/beta/$metadata#users", self.url),
            "value": value,
        });
        if more && let Some(last) = page.last() {
            let mut kept: Vec<&str> = request
                .raw_query
                .split('&')
                .filter(|pair| {
                    !pair.is_empty()
                        && form_urlencoded::parse(pair.as_bytes())
                            .next()
                            .is_none_or(|(key, _)| key != "$skiptoken")
                })
                .collect();
            let token = encode_skiptoken(&last.id);
            let pair = format!("$skiptoken={token}");
            kept.push(&pair);
            body["@odata.nextLink"] = json!(format!(
                "{}/beta/users?{}",
                self.link_base(),
                kept.join("&")
            ));
        }
        Ok(Reply::json(200, body))
    }

    /// `GET /users/{id | upn}` with `$select` and `$expand=manager`.
    pub(crate) fn get_user(&self, request: &Request, key: &str) -> Handled {
        self.allowed(&request.principal, Op::ReadUsers, None)?;
        let user = self.find_user(key).ok_or_else(|| not_found(key))?;
        let (select, manager) = Self::projection(request)?;
        Ok(Reply::json(
            200,
            self.user_json(user, &select, manager.as_deref()),
        ))
    }

    /// `GET /users/{id | upn}/manager`: the manager, or `404` when there is
    /// none (as Graph answers).
    pub(crate) fn get_manager(&self, request: &Request, key: &str) -> Handled {
        self.allowed(&request.principal, Op::ReadUsers, None)?;
        let user = self.find_user(key).ok_or_else(|| not_found(key))?;
        let boss = user
            .manager
            .as_ref()
            .and_then(|id| self.users.get(id))
            .ok_or_else(|| not_found("manager"))?;
        let select = match request.query.get("$select") {
            Some(text) => parse_select(text)?,
            None => DEFAULT_SELECT.to_vec(),
        };
        let mut value = self.user_json(boss, &select, None);
        value["@odata.type"] = json!("#microsoft.graph.user");
        Ok(Reply::json(200, value))
    }
}

/// An opaque-looking cursor: the last object id served.
fn encode_skiptoken(last_id: &str) -> String {
    data_encoding::BASE64URL_NOPAD.encode(format!("sim1:{last_id}").as_bytes())
}

fn decode_skiptoken(token: &str) -> Option<String> {
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(token.as_bytes())
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("sim1:")
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_expand_read_graph_syntax() {
        assert_eq!(
            parse_select("id, USERPRINCIPALNAME,businessPhones").unwrap(),
            vec!["id", "userPrincipalName", "businessPhones"]
        );
        let error = parse_select("id,shoeSize").err().unwrap();
        assert_eq!(error.status, 400);
        assert_eq!(parse_expand("manager").unwrap(), None);
        assert_eq!(
            parse_expand("manager($select=id,userPrincipalName)").unwrap(),
            Some(vec!["id", "userPrincipalName"])
        );
        assert!(parse_expand("directReports").is_err());
        assert!(parse_expand("manager($levels=max)").is_err());
        assert!(parse_expand("manager($select=id").is_err());
    }

    #[test]
    fn skip_tokens_round_trip_and_refuse_garbage() {
        let token = encode_skiptoken("00000007-abcd");
        assert_eq!(decode_skiptoken(&token).as_deref(), Some("00000007-abcd"));
        assert_eq!(decode_skiptoken("!!"), None);
        assert_eq!(decode_skiptoken("YWJj"), None, "base64 of 'abc', no prefix");
    }
}
