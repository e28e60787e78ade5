//! PSKC, the Portable Symmetric Key Container of RFC 6030: the XML file
//! token vendors ship seeds in.
//!
//! [`read()`] takes a file's bytes and returns one [`Record`] per HOTP or TOTP
//! `KeyPackage`; [`write()`] makes a Version 1.0 file from records. Neither
//! touches files or the network.
//!
//! # Reading
//!
//! - Values may be plain (`PlainValue`) or encrypted (`EncryptedValue`) with
//!   xmlenc `aes128-cbc`, `aes192-cbc`, `aes256-cbc` (the `CipherValue` is
//!   base64 of IV ‖ ciphertext, PKCS#7 padded) or `kw-aes128/192/256`
//!   (RFC 3394 key wrap).
//! - The encryption key is a pre-shared key ([`Keys::key`]) or is derived
//!   from a password ([`Keys::password`]) with PBKDF2 (`xenc11:DerivedKey`
//!   with `pkcs5:PBKDF2-params`; PRF HMAC-SHA-1 by default, or
//!   HMAC-SHA-224/256/384/512). Given only [`Keys::key`] for a
//!   password-based file, the key is taken as the derived key itself.
//! - With a `MACMethod` (HMAC-SHA-1/224/256/384/512), every encrypted value
//!   must carry a `ValueMAC` = HMAC(MACKey, IV ‖ ciphertext) that matches;
//!   a missing or wrong one is an error. `MACKey` is decrypted with the
//!   encryption key; without a `MACKey` the encryption key is the MAC key
//!   (as in the drafts before RFC 6030). A `ValueMAC` in a file without a
//!   `MACMethod` cannot be checked and is refused.
//! - A wrong key is found by the MAC, the key-wrap integrity check or the
//!   CBC padding. A CBC file *without* a MAC has no integrity check: a wrong
//!   key still passes the padding check about once in 256 values, so such
//!   files can yield a wrong secret; write files with a MAC.
//! - Mapping: `DeviceInfo/SerialNo` → serial, `Manufacturer`, `Model`;
//!   `Key/UserId` (or else `DeviceInfo/UserId`) → user; `Issuer` → issuer;
//!   `FriendlyName` → account; `AlgorithmParameters/Suite` → hash (SHA-1
//!   when absent); `ResponseFormat Length` → digits (6 when absent;
//!   `Encoding` must be `DECIMAL`, check digits are refused); `Counter` →
//!   HOTP counter (0 when absent); `TimeInterval` → TOTP period (30 when
//!   absent); `Time` → TOTP start time T0 (0 when absent). `TimeDrift` is
//!   checked like any value and otherwise ignored.
//! - Text is trimmed; empty elements count as absent.
//! - `KeyPackage`s whose key is a PIN (`…pskc:pin`, RFC 6030 figure 5) are
//!   not OTP credentials and are left out; any other algorithm (OCRA,
//!   SecurID, …) is an error naming the `KeyPackage`.
//! - Hostile input: a `DOCTYPE` is refused outright (so no entity can be
//!   declared or expanded), input size, nesting depth, element count and
//!   PBKDF2 iteration count are bounded, and no input panics.
//!
//! # Writing
//!
//! One `KeyPackage` per record, with the `pskc:` prefix on every element
//! (as in RFC 6030 figure 7). `DeviceInfo` holds `Manufacturer`, `SerialNo`
//! and `Model`; the `Key` `Id` is the serial when it is unique in the file,
//! else the record's 1-based position. The account goes to `FriendlyName`,
//! the user to `Key/UserId`. PSKC has no standard place for the profile
//! number of a multi-profile token, so [`Record::slot`] is not written (two
//! profiles of one token become two `KeyPackage`s with the same `SerialNo`);
//! nor is [`Credential::label_issuer`](oathdesk_otp::Credential).
//! Encrypted files encrypt the secret (`Counter`, `Time` and
//! `TimeInterval` stay plain) with a fresh random IV per value, and, when
//! [`WriteOptions::mac`] is set, carry `MACMethod` HMAC-SHA-256 with a
//! random 32-byte `MACKey` and a `ValueMAC` on every encrypted value. With a
//! pre-shared key (16, 24 or 32 bytes: AES-128/192/256-CBC) that is the
//! layout of RFC 6030 figure 6: the `MACKey` is encrypted with the
//! pre-shared key, and each `Secret` holds an `EncryptedValue` and its
//! `ValueMAC` = HMAC(MACKey, IV ‖ ciphertext).
//! Records PSKC cannot carry (an empty secret, a counter over 2^63 - 1, a
//! period or T0 over 2^31 - 1, text with characters XML 1.0 forbids) are
//! returned in [`Written::skipped`].
//!
//! # Note on `Time`
//!
//! RFC 6030 describes `Time` loosely ("the time for time-based OTP
//! algorithms"; python-pskc calls it a time offset). Vendor files write 0,
//! which means the same under every reading; oathdesk reads and writes it as
//! T0 in Unix seconds.

use std::collections::{HashMap, HashSet};
use std::fmt;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use data_encoding::BASE64;
use hmac::{Hmac, Mac};
use oathdesk_otp::{Algorithm, Credential, Digits, Kind, Secret, TimeStep};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use zeroize::{Zeroize, Zeroizing};

use crate::record::{FormatError, Keys, Location, Record, Skipped, Written, check_size};

/// The PSKC namespace.
const NS_PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const NS_XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
const NS_PKCS5: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#";
const URI_PBKDF2: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2";
const URI_HMAC_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256";
const URN_HOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:hotp";
const URN_TOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";

/// The lengths of a pre-shared AES key, in bytes (AES-128, -192, -256).
pub const KEY_LENGTHS: [usize; 3] = [16, 24, 32];

/// PBKDF2 iterations used by [`Encryption::password`].
pub const DEFAULT_ITERATIONS: u32 = 100_000;

/// The most PBKDF2 iterations a file may ask for (reading) or be written
/// with: more would let a hostile file keep the reader busy for minutes.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// Deeper nesting than this is refused (PSKC needs about eight levels).
const MAX_DEPTH: usize = 64;

/// More elements than this are refused (about 100,000 key packages).
const MAX_ELEMENTS: usize = 2_000_000;

/// How [`write()`] protects the secrets.
#[derive(Clone)]
pub enum Encryption {
    /// Secrets in the clear (`PlainValue`).
    None,
    /// A pre-shared AES key of 16, 24 or 32 bytes: AES-128/192/256-CBC.
    PreSharedKey {
        key: Zeroizing<Vec<u8>>,
        /// Written as `ds:KeyName` so the receiver knows which key to use.
        key_name: Option<String>,
    },
    /// A password, stretched with PBKDF2-HMAC-SHA-256 and a random 16-byte
    /// salt into an AES-256-CBC key.
    Password {
        password: Zeroizing<String>,
        /// PBKDF2 iterations; [`DEFAULT_ITERATIONS`] unless told otherwise.
        iterations: u32,
    },
}

impl Encryption {
    /// Password encryption with [`DEFAULT_ITERATIONS`].
    pub fn password(password: impl Into<String>) -> Encryption {
        Encryption::Password {
            password: Zeroizing::new(password.into()),
            iterations: DEFAULT_ITERATIONS,
        }
    }

    /// Pre-shared key encryption without a key name.
    pub fn pre_shared(key: impl Into<Vec<u8>>) -> Encryption {
        Encryption::PreSharedKey {
            key: Zeroizing::new(key.into()),
            key_name: None,
        }
    }

    fn is_none(&self) -> bool {
        matches!(self, Encryption::None)
    }
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encryption::None => f.write_str("None"),
            Encryption::PreSharedKey { key, key_name } => f
                .debug_struct("PreSharedKey")
                .field("key", &format_args!("<{} bytes redacted>", key.len()))
                .field("key_name", key_name)
                .finish(),
            Encryption::Password { iterations, .. } => f
                .debug_struct("Password")
                .field("password", &"<redacted>")
                .field("iterations", iterations)
                .finish(),
        }
    }
}

/// What [`write()`] produces.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub encryption: Encryption,
    /// Add `MACMethod` and a `ValueMAC` to every encrypted value. Only
    /// meaningful with encryption (PSKC MACs cover encrypted values only);
    /// [`WriteOptions::new`] sets it when encrypting.
    pub mac: bool,
}

impl WriteOptions {
    /// The given encryption, with a MAC whenever it encrypts.
    pub fn new(encryption: Encryption) -> WriteOptions {
        let mac = !encryption.is_none();
        WriteOptions { encryption, mac }
    }
}

impl Default for WriteOptions {
    /// A plain file.
    fn default() -> WriteOptions {
        WriteOptions::new(Encryption::None)
    }
}

// ---------------------------------------------------------------------------
// A small element tree.

/// An element, by local name (prefixes vary between files and are ignored).
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    /// The element's own character data, concatenated.
    text: String,
    children: Vec<Element>,
}

impl Drop for Element {
    fn drop(&mut self) {
        // Plain secrets travel as element text.
        self.text.zeroize();
    }
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |el, name| el.child(name))
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The trimmed text, or `None` when empty.
    fn trimmed(&self) -> Option<&str> {
        Some(self.text.trim()).filter(|t| !t.is_empty())
    }

    fn child_text(&self, name: &str) -> Option<String> {
        self.child(name)
            .and_then(Element::trimmed)
            .map(str::to_owned)
    }

    fn contains(&self, name: &str) -> bool {
        self.children
            .iter()
            .any(|c| c.name == name || c.contains(name))
    }

    /// The first `Algorithm` attribute of an element with this name, in
    /// document order.
    fn first_algorithm(&self, name: &str) -> Option<&str> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                c.attribute("Algorithm")
            } else {
                c.first_algorithm(name)
            }
        })
    }
}

fn line_of(text: &str, position: u64) -> u64 {
    let end = usize::try_from(position)
        .unwrap_or(usize::MAX)
        .min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
}

fn xml_error(text: &str, position: u64, message: impl fmt::Display) -> FormatError {
    FormatError::at(
        Location::line(line_of(text, position)),
        format!("not well-formed XML: {message}"),
    )
}

fn start_element(
    text: &str,
    position: u64,
    start: &BytesStart<'_>,
) -> Result<Element, FormatError> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| xml_error(text, position, e))?;
        let key = attribute.key;
        if key.as_ref() == b"xmlns" || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns") {
            continue;
        }
        let value = attribute
            .unescape_value()
            .map_err(|e| xml_error(text, position, e))?;
        attributes.push((
            String::from_utf8_lossy(key.local_name().as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(Element {
        name,
        attributes,
        text: String::new(),
        children: Vec::new(),
    })
}

/// Parses the document into a tree. Refuses DTDs, undeclared entities,
/// non-UTF-8 input and absurd nesting or size.
fn parse_xml(bytes: &[u8]) -> Result<Element, FormatError> {
    check_size(bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(format!(
            "the file is not UTF-8 text (byte {} is invalid); PSKC files are UTF-8 XML",
            e.valid_up_to() + 1
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;

    // The line is computed only for an error: counting newlines from the
    // start for every element made reading quadratic in the file size.
    fn attach(
        stack: &mut [Element],
        root: &mut Option<Element>,
        element: Element,
        line: impl Fn() -> u64,
    ) -> Result<(), FormatError> {
        if let Some(parent) = stack.last_mut() {
            parent.children.push(element);
        } else if root.is_none() {
            *root = Some(element);
        } else {
            return Err(FormatError::at(
                Location::line(line()),
                "not well-formed XML: a second root element",
            ));
        }
        Ok(())
    }

    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| xml_error(text, reader.error_position(), e))?;
        let line = || line_of(text, position);
        let text_outside = |t: &str| {
            if t.trim().is_empty() {
                Ok(())
            } else {
                Err(FormatError::at(
                    Location::line(line()),
                    "not well-formed XML: text outside the root element",
                ))
            }
        };
        match event {
            Event::DocType(_) => {
                return Err(FormatError::at(
                    Location::line(line()),
                    "the file has a DOCTYPE declaration; PSKC files never need one, and it is \
                     refused because it can declare entities (XML bombs, external files)",
                ));
            }
            Event::Start(_) | Event::Empty(_) if root.is_some() && stack.is_empty() => {
                return Err(FormatError::at(
                    Location::line(line()),
                    "not well-formed XML: a second root element",
                ));
            }
            Event::Start(start) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(FormatError::at(
                        Location::line(line()),
                        format!(
                            "the XML is nested deeper than {MAX_DEPTH} levels or has more than \
                             {MAX_ELEMENTS} elements; no PSKC file does"
                        ),
                    ));
                }
                stack.push(start_element(text, position, &start)?);
            }
            Event::Empty(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(FormatError::at(
                        Location::line(line()),
                        format!("the XML has more than {MAX_ELEMENTS} elements; no PSKC file does"),
                    ));
                }
                let element = start_element(text, position, &start)?;
                attach(&mut stack, &mut root, element, line)?;
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| {
                    FormatError::at(
                        Location::line(line()),
                        "not well-formed XML: a closing tag without an opening one",
                    )
                })?;
                attach(&mut stack, &mut root, element, line)?;
            }
            Event::Text(t) => {
                let content = t
                    .xml10_content()
                    .map_err(|e| xml_error(text, position, e))?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&content),
                    None => text_outside(&content)?,
                }
            }
            Event::CData(t) => {
                let content = t.decode().map_err(|e| xml_error(text, position, e))?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&content),
                    None => text_outside(&content)?,
                }
            }
            Event::GeneralRef(r) => {
                let resolved: String = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => {
                            return Err(xml_error(text, position, "a bad character reference"));
                        }
                    }
                } else {
                    let name = r.decode().map_err(|e| xml_error(text, position, e))?;
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => s.to_owned(),
                        None => {
                            return Err(FormatError::at(
                                Location::line(line()),
                                "the XML uses an entity that is not one of XML's five \
                                 predefined ones; PSKC files declare none, and they are refused",
                            ));
                        }
                    }
                };
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&resolved),
                    None => text_outside(&resolved)?,
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(FormatError::new(format!(
            "not well-formed XML: the file ends inside <{}>",
            shown(&open.name)
        )));
    }
    root.ok_or_else(|| FormatError::new("the file has no XML element; it is not a PSKC file"))
}

/// A name from the file, made safe to show: no control characters, at most
/// 64 characters.
fn shown(name: &str) -> String {
    let mut out: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    if name.chars().filter(|c| !c.is_control()).count() > 64 {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------
// Cryptography (all RustCrypto).

/// The part of an algorithm URI after `#` (or the last `:`), lower case.
fn fragment(uri: &str) -> String {
    uri.rsplit(['#', ':'])
        .next()
        .unwrap_or(uri)
        .trim()
        .to_ascii_lowercase()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HashFn {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashFn {
    /// From `hmac-sha256` and the like.
    fn from_hmac_name(name: &str) -> Option<HashFn> {
        Some(match name {
            "hmac-sha1" => HashFn::Sha1,
            "hmac-sha224" => HashFn::Sha224,
            "hmac-sha256" => HashFn::Sha256,
            "hmac-sha384" => HashFn::Sha384,
            "hmac-sha512" => HashFn::Sha512,
            _ => return None,
        })
    }

    fn verify(self, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
        macro_rules! check {
            ($hash:ty) => {{
                match <Hmac<$hash> as Mac>::new_from_slice(key) {
                    Ok(mut mac) => {
                        mac.update(data);
                        mac.verify_slice(tag).is_ok()
                    }
                    Err(_) => false,
                }
            }};
        }
        match self {
            HashFn::Sha1 => check!(sha1::Sha1),
            HashFn::Sha224 => check!(sha2::Sha224),
            HashFn::Sha256 => check!(sha2::Sha256),
            HashFn::Sha384 => check!(sha2::Sha384),
            HashFn::Sha512 => check!(sha2::Sha512),
        }
    }

    fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
        match self {
            HashFn::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, rounds, out),
            HashFn::Sha224 => pbkdf2::pbkdf2_hmac::<sha2::Sha224>(password, salt, rounds, out),
            HashFn::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, rounds, out),
            HashFn::Sha384 => pbkdf2::pbkdf2_hmac::<sha2::Sha384>(password, salt, rounds, out),
            HashFn::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, rounds, out),
        }
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
        .map_err(|_| FormatError::new("could not set up HMAC-SHA-256"))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cipher {
    Cbc(usize),
    KeyWrap(usize),
}

impl Cipher {
    fn from_uri(uri: &str) -> Option<Cipher> {
        Some(match fragment(uri).as_str() {
            "aes128-cbc" => Cipher::Cbc(16),
            "aes192-cbc" => Cipher::Cbc(24),
            "aes256-cbc" => Cipher::Cbc(32),
            "kw-aes128" => Cipher::KeyWrap(16),
            "kw-aes192" => Cipher::KeyWrap(24),
            "kw-aes256" => Cipher::KeyWrap(32),
            _ => return None,
        })
    }

    fn key_len(self) -> usize {
        match self {
            Cipher::Cbc(n) | Cipher::KeyWrap(n) => n,
        }
    }

    fn name(self) -> String {
        match self {
            Cipher::Cbc(n) => format!("aes{}-cbc", n * 8),
            Cipher::KeyWrap(n) => format!("kw-aes{}", n * 8),
        }
    }
}

/// Why a value could not be decrypted (never containing key material).
fn decrypt(cipher: Cipher, key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    if key.len() != cipher.key_len() {
        return Err(format!(
            "the key is {} bytes long but {} needs {} bytes (is it the right key?)",
            key.len(),
            cipher.name(),
            cipher.key_len()
        ));
    }
    let wrong = "could not decrypt: the key or password is wrong, or the file is damaged";
    match cipher {
        Cipher::Cbc(n) => {
            if data.len() < 32 || !data.len().is_multiple_of(16) {
                return Err(format!(
                    "the CipherValue is {} bytes; {} needs a 16-byte IV and whole 16-byte blocks",
                    data.len(),
                    cipher.name()
                ));
            }
            let (iv, ciphertext) = data.split_at(16);
            let mut buffer = Zeroizing::new(ciphertext.to_vec());
            let plain_len = match n {
                16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
                    .map_err(|_| wrong.to_owned())?
                    .decrypt_padded_mut::<Pkcs7>(&mut buffer)
                    .map(|p| p.len()),
                24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
                    .map_err(|_| wrong.to_owned())?
                    .decrypt_padded_mut::<Pkcs7>(&mut buffer)
                    .map(|p| p.len()),
                _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
                    .map_err(|_| wrong.to_owned())?
                    .decrypt_padded_mut::<Pkcs7>(&mut buffer)
                    .map(|p| p.len()),
            }
            .map_err(|_| format!("{wrong} (bad padding)"))?;
            buffer.truncate(plain_len);
            Ok(buffer)
        }
        Cipher::KeyWrap(n) => {
            if data.len() < 24 || !data.len().is_multiple_of(8) {
                return Err(format!(
                    "the CipherValue is {} bytes; {} needs at least 24 bytes in 8-byte blocks",
                    data.len(),
                    cipher.name()
                ));
            }
            let mut out = Zeroizing::new(vec![0u8; data.len() - 8]);
            let result = match n {
                16 => aes_kw::KekAes128::try_from(key).map(|k| k.unwrap(data, &mut out)),
                24 => aes_kw::KekAes192::try_from(key).map(|k| k.unwrap(data, &mut out)),
                _ => aes_kw::KekAes256::try_from(key).map(|k| k.unwrap(data, &mut out)),
            };
            match result {
                Ok(Ok(())) => Ok(out),
                _ => Err(format!("{wrong} (key-wrap integrity check failed)")),
            }
        }
    }
}

fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    getrandom::fill(&mut bytes).map_err(|e| {
        FormatError::new(format!(
            "the operating system's random number generator failed: {e}"
        ))
    })?;
    Ok(bytes)
}

/// AES-CBC with a random IV, PKCS#7 padding: IV ‖ ciphertext.
fn encrypt_cbc(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, FormatError> {
    let iv = random_bytes(16)?;
    let bad = || FormatError::new("the encryption key must be 16, 24 or 32 bytes long");
    let ciphertext = match key.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, &iv)
            .map_err(|_| bad())?
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext),
        24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(key, &iv)
            .map_err(|_| bad())?
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext),
        32 => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, &iv)
            .map_err(|_| bad())?
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext),
        _ => return Err(bad()),
    };
    let mut out = iv.to_vec();
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Base64 with any whitespace inside (files wrap long values), padded or not.
fn base64_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    BASE64
        .decode(compact.as_bytes())
        .or_else(|_| data_encoding::BASE64_NOPAD.decode(compact.as_bytes()))
        .ok()
        .map(Zeroizing::new)
}

// ---------------------------------------------------------------------------
// Reading.

/// A problem with one value: the sub-element at fault (empty for the value
/// itself) and the message.
type FieldError = (&'static str, String);

struct MacCheck {
    hash: HashFn,
    key: Zeroizing<Vec<u8>>,
}

struct Crypto {
    key: Option<Zeroizing<Vec<u8>>>,
    mac: Option<MacCheck>,
}

fn password_needed(derived: &Element) -> FormatError {
    let name = derived
        .child_text("MasterKeyName")
        .map(|n| format!(" ('{}')", shown(&n)))
        .unwrap_or_default();
    FormatError::new(format!(
        "this file is encrypted with a password{name}; give the password with --password-file"
    ))
}

fn key_needed(encryption_key: Option<&Element>, password_given: bool) -> FormatError {
    let name = encryption_key
        .and_then(|e| e.child_text("KeyName"))
        .map(|n| format!(" named '{}'", shown(&n)))
        .unwrap_or_default();
    let note = if password_given {
        " (a password was given, but this file does not use one)"
    } else {
        ""
    };
    FormatError::new(format!(
        "this file is encrypted with a pre-shared key{name}; give the key with --key-file{note}"
    ))
}

fn derive_key(
    derived: &Element,
    password: &str,
    container: &Element,
) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let err = |field: &str, message: String| {
        FormatError::at(Location::element("EncryptionKey"), message).field(field)
    };
    let method = derived.child("KeyDerivationMethod").ok_or_else(|| {
        err(
            "KeyDerivationMethod",
            "the DerivedKey has no KeyDerivationMethod".into(),
        )
    })?;
    let algorithm = method.attribute("Algorithm").unwrap_or_default();
    if fragment(algorithm) != "pbkdf2" {
        return Err(err(
            "KeyDerivationMethod",
            format!(
                "key derivation '{}' is not supported (only PBKDF2)",
                shown(algorithm)
            ),
        ));
    }
    let params = method
        .child("PBKDF2-params")
        .ok_or_else(|| err("PBKDF2-params", "the PBKDF2 parameters are missing".into()))?;
    let salt = params
        .path(&["Salt", "Specified"])
        .and_then(Element::trimmed)
        .ok_or_else(|| {
            err(
                "Salt",
                "the PBKDF2 salt is missing (only Salt/Specified is supported)".into(),
            )
        })?;
    let salt = base64_decode(salt)
        .ok_or_else(|| err("Salt", "the PBKDF2 salt is not valid base64".into()))?;
    let iterations: u32 = params
        .child_text("IterationCount")
        .and_then(|t| t.parse().ok())
        .filter(|n| (1..=MAX_ITERATIONS).contains(n))
        .ok_or_else(|| {
            err(
                "IterationCount",
                format!("the PBKDF2 iteration count must be a number from 1 to {MAX_ITERATIONS}"),
            )
        })?;
    let key_length = match params.child_text("KeyLength") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| {
                err(
                    "KeyLength",
                    "the PBKDF2 key length must be 1 to 64 bytes".into(),
                )
            })?,
        None => container
            .first_algorithm("EncryptionMethod")
            .and_then(Cipher::from_uri)
            .map_or(16, Cipher::key_len),
    };
    let prf = match params.child("PRF") {
        Some(prf) => {
            let uri = prf.attribute("Algorithm").or(prf.trimmed());
            match uri {
                None => HashFn::Sha1,
                Some(uri) => HashFn::from_hmac_name(&fragment(uri)).ok_or_else(|| {
                    err(
                        "PRF",
                        format!("the PBKDF2 PRF '{}' is not supported", shown(uri)),
                    )
                })?,
            }
        }
        None => HashFn::Sha1,
    };
    let mut key = Zeroizing::new(vec![0u8; key_length]);
    prf.pbkdf2(password.as_bytes(), &salt, iterations, &mut key);
    Ok(key)
}

fn encrypted_parts(element: &Element) -> Result<(Cipher, Zeroizing<Vec<u8>>), FieldError> {
    let uri = element
        .child("EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or((
            "EncryptionMethod",
            "the encrypted value has no EncryptionMethod Algorithm".to_owned(),
        ))?;
    let cipher = Cipher::from_uri(uri).ok_or_else(|| {
        (
            "EncryptionMethod",
            format!(
                "encryption algorithm '{}' is not supported (use AES-CBC or AES key wrap)",
                shown(uri)
            ),
        )
    })?;
    let value = element
        .path(&["CipherData", "CipherValue"])
        .and_then(Element::trimmed)
        .ok_or((
            "CipherValue",
            "the encrypted value has no CipherData/CipherValue".to_owned(),
        ))?;
    let data = base64_decode(value).ok_or((
        "CipherValue",
        "the CipherValue is not valid base64".to_owned(),
    ))?;
    Ok((cipher, data))
}

impl Crypto {
    fn setup(container: &Element, keys: &Keys) -> Result<Crypto, FormatError> {
        let encrypted = container.contains("EncryptedValue") || container.contains("MACKey");
        let mac_method = container.child("MACMethod");
        if !encrypted && mac_method.is_none() {
            return Ok(Crypto {
                key: None,
                mac: None,
            });
        }
        let encryption_key = container.child("EncryptionKey");
        let derived = encryption_key.and_then(|e| e.child("DerivedKey"));
        let key = match derived {
            Some(derived) => match (&keys.password, &keys.key) {
                (Some(password), _) => derive_key(derived, password, container)?,
                (None, Some(key)) => key.clone(),
                (None, None) => return Err(password_needed(derived)),
            },
            None => match &keys.key {
                Some(key) => key.clone(),
                None => return Err(key_needed(encryption_key, keys.password.is_some())),
            },
        };
        let mac = match mac_method {
            // The drafts name the MAC algorithm in a MACAlgorithm element,
            // with the encryption key as the MAC key.
            None => match container.child("MACAlgorithm").and_then(Element::trimmed) {
                None => None,
                Some(uri) => {
                    let hash = HashFn::from_hmac_name(&fragment(uri)).ok_or_else(|| {
                        FormatError::at(
                            Location::element("MACAlgorithm"),
                            format!(
                                "MAC algorithm '{}' is not supported (use HMAC-SHA-1, -256 or -512)",
                                shown(uri)
                            ),
                        )
                    })?;
                    Some(MacCheck {
                        hash,
                        key: key.clone(),
                    })
                }
            },
            Some(method) => {
                let place = || Location::element("MACMethod");
                let uri = method.attribute("Algorithm").unwrap_or_default();
                let hash = HashFn::from_hmac_name(&fragment(uri)).ok_or_else(|| {
                    FormatError::at(
                        place(),
                        format!(
                            "MAC algorithm '{}' is not supported (use HMAC-SHA-1, -256 or -512)",
                            shown(uri)
                        ),
                    )
                    .field("Algorithm")
                })?;
                let mac_key = match method.child("MACKey") {
                    None => key.clone(),
                    Some(mac_key) => {
                        let (cipher, data) = encrypted_parts(mac_key)
                            .map_err(|(field, m)| FormatError::at(place(), m).field(field))?;
                        decrypt(cipher, &key, &data)
                            .map_err(|m| FormatError::at(place(), m).field("MACKey"))?
                    }
                };
                if mac_key.is_empty() {
                    return Err(FormatError::at(place(), "the MAC key is empty").field("MACKey"));
                }
                Some(MacCheck { hash, key: mac_key })
            }
        };
        Ok(Crypto {
            key: Some(key),
            mac,
        })
    }

    /// A `Secret`, `Counter`, … element's value: the plain text or the
    /// decrypted bytes, after checking its MAC.
    fn value(&self, element: &Element) -> Result<Value, FieldError> {
        if let Some(plain) = element.child("PlainValue") {
            return Ok(Value::Plain(Zeroizing::new(plain.text.trim().to_owned())));
        }
        let encrypted = element.child("EncryptedValue").ok_or((
            "",
            "there is neither a PlainValue nor an EncryptedValue".to_owned(),
        ))?;
        let (cipher, data) = encrypted_parts(encrypted)?;
        let value_mac = element.child("ValueMAC").and_then(Element::trimmed);
        match (&self.mac, value_mac) {
            (Some(mac), Some(tag)) => {
                let tag = base64_decode(tag)
                    .ok_or(("ValueMAC", "the ValueMAC is not valid base64".to_owned()))?;
                if !mac.hash.verify(&mac.key, &data, &tag) {
                    return Err((
                        "ValueMAC",
                        "the ValueMAC does not match: the file was altered, or the key or \
                         password is wrong"
                            .to_owned(),
                    ));
                }
            }
            (Some(_), None) => {
                return Err((
                    "ValueMAC",
                    "the file has a MACMethod but this encrypted value has no ValueMAC, so it \
                     cannot be checked"
                        .to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    "ValueMAC",
                    "the value has a ValueMAC but the file has no MACMethod, so it cannot be \
                     checked"
                        .to_owned(),
                ));
            }
            (None, None) => {}
        }
        let key = self.key.as_ref().ok_or((
            "EncryptedValue",
            "the value is encrypted but no key is known".to_owned(),
        ))?;
        decrypt(cipher, key, &data)
            .map(Value::Decrypted)
            .map_err(|m| ("EncryptedValue", m))
    }
}

enum Value {
    Plain(Zeroizing<String>),
    Decrypted(Zeroizing<Vec<u8>>),
}

impl Value {
    fn bytes(self) -> Result<Zeroizing<Vec<u8>>, String> {
        match self {
            Value::Plain(text) => {
                base64_decode(&text).ok_or_else(|| "the value is not valid base64".to_owned())
            }
            Value::Decrypted(bytes) => Ok(bytes),
        }
    }

    fn integer(self) -> Result<u64, String> {
        let too_big = || "the value is not a whole number from 0 to 2^64 - 1".to_owned();
        match self {
            Value::Plain(text) => text.parse::<u64>().map_err(|_| too_big()),
            // As python-pskc: ASCII digits, or else a big-endian integer.
            Value::Decrypted(bytes) => {
                if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit) {
                    std::str::from_utf8(&bytes)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(too_big)
                } else {
                    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
                    let significant = &bytes[start..];
                    if significant.len() > 8 {
                        return Err(too_big());
                    }
                    Ok(significant
                        .iter()
                        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyAlgorithm {
    Hotp,
    Totp,
    Pin,
}

fn key_algorithm(uri: &str) -> Option<KeyAlgorithm> {
    let lower = uri.trim().to_ascii_lowercase();
    // RFC 6030's `urn:ietf:params:xml:ns:keyprov:pskc:hotp`, and the drafts'
    // `urn:ietf:params:xml:ns:keyprov:pskc#hotp` and
    // `http://www.ietf.org/keyprov/pskc#hotp`.
    if !lower.contains("pskc") {
        return None;
    }
    match fragment(&lower).as_str() {
        "hotp" => Some(KeyAlgorithm::Hotp),
        "totp" => Some(KeyAlgorithm::Totp),
        "pin" => Some(KeyAlgorithm::Pin),
        _ => None,
    }
}

fn read_key_package(
    package: &Element,
    number: usize,
    crypto: &Crypto,
) -> Result<Option<Record>, FormatError> {
    let location = Location::element(format!("{} {number}", package.name));
    let err = |field: &str, message: String| {
        let error = FormatError::at(location.clone(), message);
        if field.is_empty() {
            error
        } else {
            error.field(field)
        }
    };
    let mut keys = package.children_named("Key");
    let key = keys
        .next()
        .ok_or_else(|| err("Key", "the KeyPackage has no Key".into()))?;
    if keys.next().is_some() {
        return Err(err(
            "Key",
            "the KeyPackage has more than one Key; RFC 6030 allows one".into(),
        ));
    }
    // Drafts before RFC 6030 name it KeyAlgorithm.
    let algorithm_uri = key
        .attribute("Algorithm")
        .or_else(|| key.attribute("KeyAlgorithm"))
        .unwrap_or_default();
    let kind = key_algorithm(algorithm_uri).ok_or_else(|| {
        err(
            "Key Algorithm",
            if algorithm_uri.is_empty() {
                "the Key has no Algorithm; oathdesk reads HOTP and TOTP keys".to_owned()
            } else {
                format!(
                    "algorithm '{}' is not HOTP or TOTP, which are all oathdesk reads",
                    shown(algorithm_uri)
                )
            },
        )
    })?;
    if kind == KeyAlgorithm::Pin {
        return Ok(None);
    }

    let device = package.child("DeviceInfo");
    let device_text = |name: &str| device.and_then(|d| d.child_text(name));

    let mut algorithm = Algorithm::Sha1;
    let mut digits = Digits::SIX;
    // The drafts put ResponseFormat under Usage.
    let params = key.child("AlgorithmParameters").or_else(|| {
        key.child("Usage")
            .filter(|u| u.child("ResponseFormat").is_some())
    });
    if let Some(params) = params {
        if let Some(suite) = params.child_text("Suite") {
            algorithm = suite.parse().map_err(|_| {
                err(
                    "Suite",
                    format!(
                        "hash '{}' is not supported (use HMAC-SHA1, HMAC-SHA256 or HMAC-SHA512)",
                        shown(&suite)
                    ),
                )
            })?;
        }
        if let Some(format) = params.child("ResponseFormat") {
            if let Some(encoding) = format
                .attribute("Encoding")
                .or_else(|| format.attribute("Format"))
                .or_else(|| format.attribute("format"))
                && !encoding.eq_ignore_ascii_case("DECIMAL")
            {
                return Err(err(
                    "ResponseFormat Encoding",
                    format!(
                        "codes in '{}' encoding are not supported; HOTP and TOTP codes are DECIMAL",
                        shown(encoding)
                    ),
                ));
            }
            for name in ["CheckDigits", "CheckDigit"] {
                if format
                    .attribute(name)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
                {
                    return Err(err(
                        "ResponseFormat CheckDigits",
                        "codes with a Luhn check digit are not supported".into(),
                    ));
                }
            }
            if let Some(length) = format
                .attribute("Length")
                .or_else(|| format.attribute("length"))
            {
                digits = length
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| Digits::new(n).ok())
                    .ok_or_else(|| {
                        err(
                            "ResponseFormat Length",
                            format!(
                                "codes have {} to {} digits; this Length is '{}'",
                                Digits::MIN,
                                Digits::MAX,
                                shown(length)
                            ),
                        )
                    })?;
            }
        }
    }

    let data = key.child("Data");
    let field = |name: &'static str| -> Result<Option<Value>, FormatError> {
        match data.and_then(|d| d.child(name)) {
            None => Ok(None),
            Some(element) => crypto.value(element).map(Some).map_err(|(sub, message)| {
                let field = if sub.is_empty() || sub == name {
                    name.to_owned()
                } else {
                    format!("{name} {sub}")
                };
                err(&field, message)
            }),
        }
    };
    let integer = |name: &'static str| -> Result<Option<u64>, FormatError> {
        field(name)?
            .map(|v| v.integer().map_err(|m| err(name, m)))
            .transpose()
    };

    let secret = match field("Secret")? {
        Some(value) => value.bytes().map_err(|m| err("Secret", m))?,
        None => {
            let named_data = key
                .children_named("Data")
                .any(|d| d.attribute("Name").is_some());
            let message = match key.child_text("KeyReference") {
                _ if named_data => "the key is in the 2007 draft form (<Data Name=\"SECRET\">), \
                                    which oathdesk does not read; ask the vendor for an RFC 6030 \
                                    file"
                    .to_owned(),
                Some(reference) => format!(
                    "the key has no Secret: it is derived from the master key '{}', which a \
                     PSKC file does not carry",
                    shown(&reference)
                ),
                None => "the key has no Secret".to_owned(),
            };
            return Err(err("Secret", message));
        }
    };
    if secret.is_empty() {
        return Err(err("Secret", "the secret is empty".into()));
    }
    let counter = integer("Counter")?;
    let time = integer("Time")?;
    let interval = integer("TimeInterval")?;
    // Accepted and checked (MAC, decryption), then ignored.
    let _ = field("TimeDrift")?;

    let kind = match kind {
        KeyAlgorithm::Hotp => Kind::Hotp {
            counter: counter.unwrap_or(0),
        },
        _ => {
            let period = interval.unwrap_or(TimeStep::DEFAULT.period());
            let step = TimeStep::new(period, time.unwrap_or(0))
                .map_err(|e| err("TimeInterval", e.to_string()))?;
            Kind::Totp { step }
        }
    };

    let credential = Credential {
        secret: Secret::from_bytes(secret.to_vec()),
        kind,
        algorithm,
        digits,
        issuer: key.child_text("Issuer"),
        account: key.child_text("FriendlyName").unwrap_or_default(),
        label_issuer: None,
    };
    Ok(Some(Record {
        credential,
        serial: device_text("SerialNo"),
        slot: None,
        manufacturer: device_text("Manufacturer"),
        model: device_text("Model"),
        user: key.child_text("UserId").or_else(|| device_text("UserId")),
        location,
    }))
}

/// Reads every HOTP and TOTP key of a PSKC file.
///
/// `keys` supplies the pre-shared key or the password of an encrypted file;
/// without the one a file needs the error says which, and with a wrong one
/// the error says so (never a wrong secret, when the file has a MAC).
pub fn read(bytes: &[u8], keys: &Keys) -> Result<Vec<Record>, FormatError> {
    let container = parse_xml(bytes)?;
    if container.name != "KeyContainer" {
        return Err(FormatError::new(format!(
            "this is not a PSKC file: its root element is <{}>, not <KeyContainer>",
            shown(&container.name)
        )));
    }
    if let Some(version) = container.attribute("Version")
        && version != "1.0"
        && version != "1"
    {
        return Err(FormatError::at(
            Location::element("KeyContainer"),
            format!(
                "PSKC version '{}' is not supported (only 1.0, RFC 6030)",
                shown(version)
            ),
        )
        .field("Version"));
    }
    let crypto = Crypto::setup(&container, keys)?;
    // RFC 6030's KeyPackage, or the drafts' Device (draft-ietf-keyprov-pskc-02).
    let packages: Vec<&Element> = container
        .children
        .iter()
        .filter(|c| c.name == "KeyPackage" || c.name == "Device")
        .collect();
    let mut records = Vec::new();
    let mut pins = 0usize;
    for (index, package) in packages.iter().enumerate() {
        match read_key_package(package, index + 1, &crypto)? {
            Some(record) => records.push(record),
            None => pins += 1,
        }
    }
    if records.is_empty() {
        // Never an empty success for a file that holds keys.
        if pins > 0 {
            return Err(FormatError::new(format!(
                "the file's {pins} key package(s) hold PINs, not HOTP or TOTP keys: nothing to read"
            )));
        }
        if container.contains("Key") || container.contains("Secret") {
            return Err(FormatError::new(
                "the file holds keys, but not in a KeyPackage (RFC 6030) or Device (draft) \
                 element oathdesk reads: nothing was read",
            ));
        }
    }
    Ok(records)
}

// ---------------------------------------------------------------------------
// Writing.

/// Escapes text for XML content or attribute values, including the
/// characters an XML parser would otherwise normalise away.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// Characters XML 1.0 cannot carry at all, even as references.
fn xml_forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

fn carry_problem(record: &Record) -> Option<String> {
    let credential = &record.credential;
    if credential.secret.is_empty() {
        return Some("the secret is empty".into());
    }
    match credential.kind {
        Kind::Hotp { counter } if counter > i64::MAX as u64 => {
            return Some(format!(
                "the counter {counter} is larger than a PSKC Counter (xs:long) can hold"
            ));
        }
        Kind::Totp { step } if step.period() > i32::MAX as u64 => {
            return Some(format!(
                "the period of {} s is larger than a PSKC TimeInterval (xs:int) can hold",
                step.period()
            ));
        }
        Kind::Totp { step } if step.t0() > i32::MAX as u64 => {
            return Some(format!(
                "the start time T0 = {} is larger than a PSKC Time (xs:int) can hold",
                step.t0()
            ));
        }
        _ => {}
    }
    let texts = [
        ("serial", record.serial.as_deref()),
        ("manufacturer", record.manufacturer.as_deref()),
        ("model", record.model.as_deref()),
        ("user", record.user.as_deref()),
        ("issuer", credential.issuer.as_deref()),
        ("account", Some(credential.account.as_str())),
    ];
    for (name, text) in texts {
        if text.is_some_and(|t| t.chars().any(xml_forbidden)) {
            return Some(format!(
                "the {name} contains a control character that XML cannot carry"
            ));
        }
    }
    None
}

/// The key and header of an encrypted file being written.
struct Sealer {
    key: Zeroizing<Vec<u8>>,
    cipher_uri: &'static str,
    mac_key: Option<Zeroizing<Vec<u8>>>,
}

impl Sealer {
    /// `xenc:EncryptionMethod` and `xenc:CipherData` for one encrypted
    /// value, and the IV ‖ ciphertext the MAC covers.
    fn encrypt(&self, plaintext: &[u8], indent: &str) -> Result<(String, Vec<u8>), FormatError> {
        let data = encrypt_cbc(&self.key, plaintext)?;
        let xml = format!(
            "{indent}<xenc:EncryptionMethod Algorithm=\"{uri}\"/>\n\
             {indent}<xenc:CipherData>\n\
             {indent}  <xenc:CipherValue>{value}</xenc:CipherValue>\n\
             {indent}</xenc:CipherData>\n",
            uri = self.cipher_uri,
            value = BASE64.encode(&data)
        );
        Ok((xml, data))
    }

    /// The XML inside a `Secret` element: `EncryptedValue` and, with a MAC
    /// key, `ValueMAC`.
    fn seal(&self, plaintext: &[u8], indent: &str) -> Result<String, FormatError> {
        let (body, data) = self.encrypt(plaintext, &format!("{indent}  "))?;
        let mut out =
            format!("{indent}<pskc:EncryptedValue>\n{body}{indent}</pskc:EncryptedValue>\n");
        if let Some(mac_key) = &self.mac_key {
            let tag = hmac_sha256(mac_key, &data)?;
            out.push_str(&format!(
                "{indent}<pskc:ValueMAC>{}</pskc:ValueMAC>\n",
                BASE64.encode(&tag)
            ));
        }
        Ok(out)
    }
}

fn cbc_uri(key_len: usize) -> Option<&'static str> {
    match key_len {
        16 => Some("http://www.w3.org/2001/04/xmlenc#aes128-cbc"),
        24 => Some("http://www.w3.org/2001/04/xmlenc#aes192-cbc"),
        32 => Some("http://www.w3.org/2001/04/xmlenc#aes256-cbc"),
        _ => None,
    }
}

/// Sets up encryption; returns the sealer and the `EncryptionKey` XML.
fn sealer(options: &WriteOptions) -> Result<Option<(Sealer, String)>, FormatError> {
    let (key, header) = match &options.encryption {
        Encryption::None => return Ok(None),
        Encryption::PreSharedKey { key, key_name } => {
            if cbc_uri(key.len()).is_none() {
                return Err(FormatError::new(format!(
                    "the pre-shared key is {} bytes long; an AES key is 16, 24 or 32 bytes \
                     (AES-128, -192, -256)",
                    key.len()
                )));
            }
            let header = match key_name.as_deref().filter(|n| !n.is_empty()) {
                Some(name) if name.chars().any(xml_forbidden) => {
                    return Err(FormatError::new(
                        "the key name contains a control character that XML cannot carry",
                    ));
                }
                Some(name) => format!(
                    "  <pskc:EncryptionKey>\n    <ds:KeyName>{}</ds:KeyName>\n  </pskc:EncryptionKey>\n",
                    escape(name)
                ),
                None => String::new(),
            };
            (key.clone(), header)
        }
        Encryption::Password {
            password,
            iterations,
        } => {
            if password.is_empty() {
                return Err(FormatError::new("the password is empty"));
            }
            if !(1..=MAX_ITERATIONS).contains(iterations) {
                return Err(FormatError::new(format!(
                    "PBKDF2 iterations must be from 1 to {MAX_ITERATIONS}"
                )));
            }
            let salt = random_bytes(16)?;
            let mut key = Zeroizing::new(vec![0u8; 32]);
            HashFn::Sha256.pbkdf2(password.as_bytes(), &salt, *iterations, &mut key);
            let header = format!(
                "  <pskc:EncryptionKey>\n\
                 \x20   <xenc11:DerivedKey>\n\
                 \x20     <xenc11:KeyDerivationMethod Algorithm=\"{URI_PBKDF2}\">\n\
                 \x20       <pkcs5:PBKDF2-params>\n\
                 \x20         <Salt>\n\
                 \x20           <Specified>{salt}</Specified>\n\
                 \x20         </Salt>\n\
                 \x20         <IterationCount>{iterations}</IterationCount>\n\
                 \x20         <KeyLength>32</KeyLength>\n\
                 \x20         <PRF Algorithm=\"{URI_HMAC_SHA256}\"/>\n\
                 \x20       </pkcs5:PBKDF2-params>\n\
                 \x20     </xenc11:KeyDerivationMethod>\n\
                 \x20   </xenc11:DerivedKey>\n\
                 \x20 </pskc:EncryptionKey>\n",
                salt = BASE64.encode(&salt),
            );
            (key, header)
        }
    };
    let cipher_uri = cbc_uri(key.len()).unwrap_or("");
    let mut sealer = Sealer {
        key,
        cipher_uri,
        mac_key: None,
    };
    let mut header = header;
    if options.mac {
        let mac_key = random_bytes(32)?;
        let (body, _) = sealer.encrypt(&mac_key, "      ")?;
        header.push_str(&format!(
            "  <pskc:MACMethod Algorithm=\"{URI_HMAC_SHA256}\">\n\
             \x20   <pskc:MACKey>\n{body}\
             \x20   </pskc:MACKey>\n\
             \x20 </pskc:MACMethod>\n"
        ));
        sealer.mac_key = Some(mac_key);
    }
    Ok(Some((sealer, header)))
}

fn text_element(out: &mut String, indent: &str, name: &str, text: Option<&str>) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        out.push_str(&format!(
            "{indent}<pskc:{name}>{}</pskc:{name}>\n",
            escape(text)
        ));
    }
}

fn plain_value(out: &mut String, name: &str, value: u64) {
    out.push_str(&format!(
        "        <pskc:{name}>\n          <pskc:PlainValue>{value}</pskc:PlainValue>\n        </pskc:{name}>\n"
    ));
}

fn write_package(
    out: &mut String,
    record: &Record,
    id: &str,
    sealer: Option<&Sealer>,
) -> Result<(), FormatError> {
    let credential = &record.credential;
    out.push_str("  <pskc:KeyPackage>\n");
    let mut device = String::new();
    text_element(
        &mut device,
        "      ",
        "Manufacturer",
        record.manufacturer.as_deref(),
    );
    text_element(&mut device, "      ", "SerialNo", record.serial.as_deref());
    text_element(&mut device, "      ", "Model", record.model.as_deref());
    if !device.is_empty() {
        out.push_str("    <pskc:DeviceInfo>\n");
        out.push_str(&device);
        out.push_str("    </pskc:DeviceInfo>\n");
    }
    let urn = match credential.kind {
        Kind::Hotp { .. } => URN_HOTP,
        Kind::Totp { .. } => URN_TOTP,
    };
    out.push_str(&format!(
        "    <pskc:Key Id=\"{}\" Algorithm=\"{urn}\">\n",
        escape(id)
    ));
    text_element(out, "      ", "Issuer", credential.issuer.as_deref());
    out.push_str("      <pskc:AlgorithmParameters>\n");
    match credential.algorithm {
        Algorithm::Sha1 => {}
        Algorithm::Sha256 => out.push_str("        <pskc:Suite>HMAC-SHA256</pskc:Suite>\n"),
        Algorithm::Sha512 => out.push_str("        <pskc:Suite>HMAC-SHA512</pskc:Suite>\n"),
    }
    out.push_str(&format!(
        "        <pskc:ResponseFormat Length=\"{}\" Encoding=\"DECIMAL\"/>\n",
        credential.digits
    ));
    out.push_str("      </pskc:AlgorithmParameters>\n");
    text_element(out, "      ", "FriendlyName", Some(&credential.account));
    out.push_str("      <pskc:Data>\n        <pskc:Secret>\n");
    match sealer {
        Some(sealer) => out.push_str(&sealer.seal(credential.secret.as_bytes(), "          ")?),
        None => out.push_str(&format!(
            "          <pskc:PlainValue>{}</pskc:PlainValue>\n",
            BASE64.encode(credential.secret.as_bytes())
        )),
    }
    out.push_str("        </pskc:Secret>\n");
    match credential.kind {
        Kind::Hotp { counter } => plain_value(out, "Counter", counter),
        Kind::Totp { step } => {
            if step.t0() != 0 {
                plain_value(out, "Time", step.t0());
            }
            plain_value(out, "TimeInterval", step.period());
        }
    }
    out.push_str("      </pskc:Data>\n");
    text_element(out, "      ", "UserId", record.user.as_deref());
    out.push_str("    </pskc:Key>\n  </pskc:KeyPackage>\n");
    Ok(())
}

/// Chooses a unique `Key Id` per record: the serial when no other record
/// has it, else the 1-based position.
fn key_ids(records: &[(usize, &Record)]) -> Vec<String> {
    let mut serials: HashMap<&str, usize> = HashMap::new();
    for (_, record) in records {
        if let Some(serial) = record.serial.as_deref().filter(|s| !s.is_empty()) {
            *serials.entry(serial).or_default() += 1;
        }
    }
    let mut used: HashSet<String> = serials
        .iter()
        .filter(|(_, n)| **n == 1)
        .map(|(s, _)| (*s).to_owned())
        .collect();
    records
        .iter()
        .map(|(index, record)| match record.serial.as_deref() {
            Some(serial) if serials.get(serial) == Some(&1) => serial.to_owned(),
            _ => {
                let mut id = (index + 1).to_string();
                let mut n = 0;
                while used.contains(&id) {
                    n += 1;
                    id = format!("{}-{n}", index + 1);
                }
                used.insert(id.clone());
                id
            }
        })
        .collect()
}

/// Writes a PSKC 1.0 file: one `KeyPackage` per record, secrets encrypted
/// as `options` says. Records PSKC cannot carry are left out and listed in
/// [`Written::skipped`].
pub fn write(records: &[Record], options: &WriteOptions) -> Result<Written, FormatError> {
    let sealed = sealer(options)?;
    let mut skipped = Vec::new();
    let mut kept = Vec::new();
    for (index, record) in records.iter().enumerate() {
        match carry_problem(record) {
            Some(reason) => skipped.push(Skipped {
                index,
                reference: record.reference(index),
                reason,
            }),
            None => kept.push((index, record)),
        }
    }
    let ids = key_ids(&kept);

    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<pskc:KeyContainer Version=\"1.0\" xmlns:pskc=\"{NS_PSKC}\""
    ));
    if let Some((_, _)) = &sealed {
        out.push_str(&format!(
            "\n    xmlns:ds=\"{NS_DS}\"\n    xmlns:xenc=\"{NS_XENC}\""
        ));
        if matches!(options.encryption, Encryption::Password { .. }) {
            out.push_str(&format!(
                "\n    xmlns:xenc11=\"{NS_XENC11}\"\n    xmlns:pkcs5=\"{NS_PKCS5}\""
            ));
        }
    }
    out.push_str(">\n");
    if let Some((_, header)) = &sealed {
        out.push_str(header);
    }
    for ((_, record), id) in kept.iter().zip(&ids) {
        write_package(&mut out, record, id, sealed.as_ref().map(|(s, _)| s))?;
    }
    out.push_str("</pskc:KeyContainer>\n");
    Ok(Written {
        bytes: out.into_bytes(),
        skipped,
    })
}
