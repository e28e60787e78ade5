//! The few PC/SC calls oathdesk makes, and nothing else.
//!
//! Why not the `pcsc` crate: it links `libpcsclite` at build time, so a Linux
//! binary with PC/SC would not even start on a machine without the library,
//! and no kept crate loads it at run time. So on Linux and the BSDs the
//! library is opened with `libloading` on first use (a machine without it
//! runs every other command, and device commands say what to install); on
//! Windows and macOS, where WinSCard and PCSC.framework are part of the
//! system, `pcsc-sys` links them. Both expose the same [`Api`] with the
//! platform's own types, and [`Api::call`] turns a return code into
//! [`Code`].
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_void};
use std::sync::OnceLock;

#[cfg(any(windows, target_os = "macos"))]
pub use pcsc_sys::{DWORD, LONG, SCARD_IO_REQUEST, SCARDCONTEXT, SCARDHANDLE};

#[cfg(not(any(windows, target_os = "macos")))]
#[allow(clippy::upper_case_acronyms)]
mod types {
    use std::ffi::{c_long, c_ulong};
    // pcsc-lite's ABI on Linux and the BSDs (pcsclite.h, wintypes.h).
    #[allow(clippy::upper_case_acronyms)]
    pub type DWORD = c_ulong;
    #[allow(clippy::upper_case_acronyms)]
    pub type LONG = c_long;
    pub type SCARDCONTEXT = LONG;
    pub type SCARDHANDLE = LONG;
    #[allow(non_camel_case_types, non_snake_case)]
    #[repr(C)]
    pub struct SCARD_IO_REQUEST {
        pub dwProtocol: DWORD,
        pub cbPciLength: DWORD,
    }
}
#[cfg(not(any(windows, target_os = "macos")))]
pub use types::*;

pub const SCOPE_USER: DWORD = 0;
pub const SHARE_SHARED: DWORD = 2;
pub const PROTOCOL_T0: DWORD = 1;
pub const PROTOCOL_T1: DWORD = 2;
/// `SCARD_LEAVE_CARD`: end a transaction or a connection without resetting
/// or powering down the card (another program may be using it).
pub const LEAVE_CARD: DWORD = 0;

/// A PC/SC return code (the same numbers on every platform).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code(pub u32);

impl Code {
    pub const INSUFFICIENT_BUFFER: Code = Code(0x8010_0008);
    pub const UNKNOWN_READER: Code = Code(0x8010_0009);
    pub const TIMEOUT: Code = Code(0x8010_000A);
    pub const SHARING_VIOLATION: Code = Code(0x8010_000B);
    pub const NO_SMARTCARD: Code = Code(0x8010_000C);
    pub const READER_UNAVAILABLE: Code = Code(0x8010_0017);
    pub const NO_SERVICE: Code = Code(0x8010_001D);
    pub const SERVICE_STOPPED: Code = Code(0x8010_001E);
    pub const NO_READERS_AVAILABLE: Code = Code(0x8010_002E);
    pub const UNRESPONSIVE_CARD: Code = Code(0x8010_0066);
    pub const UNPOWERED_CARD: Code = Code(0x8010_0067);
    pub const RESET_CARD: Code = Code(0x8010_0068);
    pub const REMOVED_CARD: Code = Code(0x8010_0069);

    /// The card went away or was reset by someone else.
    pub fn is_lost(self) -> bool {
        [
            Code::REMOVED_CARD,
            Code::RESET_CARD,
            Code::NO_SMARTCARD,
            Code::READER_UNAVAILABLE,
        ]
        .contains(&self)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match *self {
            Code::INSUFFICIENT_BUFFER => "insufficient buffer",
            Code::UNKNOWN_READER => "unknown reader",
            Code::TIMEOUT => "time-out",
            Code::SHARING_VIOLATION => "the card is held by another program",
            Code::NO_SMARTCARD => "no card in the reader",
            Code::READER_UNAVAILABLE => "the reader is unavailable",
            Code::NO_SERVICE | Code::SERVICE_STOPPED => "the PC/SC service is not running",
            Code::NO_READERS_AVAILABLE => "no reader",
            Code::UNRESPONSIVE_CARD => "the card does not answer",
            Code::UNPOWERED_CARD => "the card is not powered",
            Code::RESET_CARD => "the card was reset",
            Code::REMOVED_CARD => "the card was removed",
            _ => "PC/SC error",
        };
        write!(f, "{name} ({:08X})", self.0)
    }
}

fn check(rv: LONG) -> Result<(), Code> {
    match rv as u32 {
        0 => Ok(()),
        code => Err(Code(code)),
    }
}

/// The loaded PC/SC library, or why there is none.
pub fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(Api::load).as_ref().map_err(Clone::clone)
}

// ------------------------------------------------------------ Linux & BSDs

/// Function pointers taken from `libpcsclite`, kept with the library.
#[cfg(not(any(windows, target_os = "macos")))]
#[allow(clippy::type_complexity)]
pub struct Api {
    _library: libloading::Library,
    establish: unsafe extern "C" fn(DWORD, *const c_void, *const c_void, *mut SCARDCONTEXT) -> LONG,
    release: unsafe extern "C" fn(SCARDCONTEXT) -> LONG,
    list_readers:
        unsafe extern "C" fn(SCARDCONTEXT, *const c_char, *mut c_char, *mut DWORD) -> LONG,
    connect: unsafe extern "C" fn(
        SCARDCONTEXT,
        *const c_char,
        DWORD,
        DWORD,
        *mut SCARDHANDLE,
        *mut DWORD,
    ) -> LONG,
    disconnect: unsafe extern "C" fn(SCARDHANDLE, DWORD) -> LONG,
    begin: unsafe extern "C" fn(SCARDHANDLE) -> LONG,
    end: unsafe extern "C" fn(SCARDHANDLE, DWORD) -> LONG,
    status: unsafe extern "C" fn(
        SCARDHANDLE,
        *mut c_char,
        *mut DWORD,
        *mut DWORD,
        *mut DWORD,
        *mut u8,
        *mut DWORD,
    ) -> LONG,
    transmit: unsafe extern "C" fn(
        SCARDHANDLE,
        *const SCARD_IO_REQUEST,
        *const u8,
        DWORD,
        *mut SCARD_IO_REQUEST,
        *mut u8,
        *mut DWORD,
    ) -> LONG,
}

/// Where the library may be: the versioned name first (the unversioned one
/// only exists with the -dev package).
#[cfg(not(any(windows, target_os = "macos")))]
const LIBRARY_NAMES: [&str; 2] = ["libpcsclite.so.1", "libpcsclite.so"];

#[cfg(not(any(windows, target_os = "macos")))]
impl Api {
    fn load() -> Result<Api, String> {
        Api::load_from(&LIBRARY_NAMES)
    }

    fn load_from(names: &[&str]) -> Result<Api, String> {
        let mut errors = Vec::new();
        for &name in names {
            // SAFETY: loading pcsc-lite runs no initialiser with preconditions.
            match unsafe { libloading::Library::new(name) } {
                Ok(library) => return Api::from_library(library).map_err(|e| e.to_string()),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(format!(
            "PC/SC is not installed here ({}): install pcscd and its library (Debian/Ubuntu: sudo apt install pcscd \
             libpcsclite1; Fedora: sudo dnf install pcsc-lite pcsc-lite-libs), or use --transport usb",
            errors.first().map(String::as_str).unwrap_or("not found")
        ))
    }

    fn from_library(library: libloading::Library) -> Result<Api, libloading::Error> {
        // SAFETY: each symbol is read with the signature pcsclite.h declares
        // for it, on the platforms this block is compiled for.
        unsafe {
            Ok(Api {
                establish: *library.get(b"SCardEstablishContext\0")?,
                release: *library.get(b"SCardReleaseContext\0")?,
                list_readers: *library.get(b"SCardListReaders\0")?,
                connect: *library.get(b"SCardConnect\0")?,
                disconnect: *library.get(b"SCardDisconnect\0")?,
                begin: *library.get(b"SCardBeginTransaction\0")?,
                end: *library.get(b"SCardEndTransaction\0")?,
                status: *library.get(b"SCardStatus\0")?,
                transmit: *library.get(b"SCardTransmit\0")?,
                _library: library,
            })
        }
    }
}

// ------------------------------------------------------- Windows & macOS

#[cfg(any(windows, target_os = "macos"))]
pub struct Api {
    establish:
        unsafe extern "system" fn(DWORD, *const c_void, *const c_void, *mut SCARDCONTEXT) -> LONG,
    release: unsafe extern "system" fn(SCARDCONTEXT) -> LONG,
    list_readers:
        unsafe extern "system" fn(SCARDCONTEXT, *const c_char, *mut c_char, *mut DWORD) -> LONG,
    connect: unsafe extern "system" fn(
        SCARDCONTEXT,
        *const c_char,
        DWORD,
        DWORD,
        *mut SCARDHANDLE,
        *mut DWORD,
    ) -> LONG,
    disconnect: unsafe extern "system" fn(SCARDHANDLE, DWORD) -> LONG,
    begin: unsafe extern "system" fn(SCARDHANDLE) -> LONG,
    end: unsafe extern "system" fn(SCARDHANDLE, DWORD) -> LONG,
    status: unsafe extern "system" fn(
        SCARDHANDLE,
        *mut c_char,
        *mut DWORD,
        *mut DWORD,
        *mut DWORD,
        *mut u8,
        *mut DWORD,
    ) -> LONG,
    transmit: unsafe extern "system" fn(
        SCARDHANDLE,
        *const SCARD_IO_REQUEST,
        *const u8,
        DWORD,
        *mut SCARD_IO_REQUEST,
        *mut u8,
        *mut DWORD,
    ) -> LONG,
}

#[cfg(any(windows, target_os = "macos"))]
impl Api {
    fn load() -> Result<Api, String> {
        Ok(Api {
            establish: pcsc_sys::SCardEstablishContext,
            release: pcsc_sys::SCardReleaseContext,
            list_readers: pcsc_sys::SCardListReaders,
            connect: pcsc_sys::SCardConnect,
            disconnect: pcsc_sys::SCardDisconnect,
            begin: pcsc_sys::SCardBeginTransaction,
            end: pcsc_sys::SCardEndTransaction,
            status: pcsc_sys::SCardStatus,
            transmit: pcsc_sys::SCardTransmit,
        })
    }
}

// ------------------------------------------------------------- safe layer

/// A PC/SC context, released on drop.
pub struct Context {
    api: &'static Api,
    handle: SCARDCONTEXT,
}

impl Context {
    pub fn establish(api: &'static Api) -> Result<Context, Code> {
        let mut handle: SCARDCONTEXT = 0;
        // SAFETY: out-pointer to a local; reserved pointers null as required.
        check(unsafe {
            (api.establish)(SCOPE_USER, std::ptr::null(), std::ptr::null(), &mut handle)
        })?;
        Ok(Context { api, handle })
    }

    /// Reader names; an empty list when there are none.
    pub fn readers(&self) -> Result<Vec<String>, Code> {
        for _ in 0..3 {
            let mut len: DWORD = 0;
            // SAFETY: a null buffer asks for the length only.
            match check(unsafe {
                (self.api.list_readers)(
                    self.handle,
                    std::ptr::null(),
                    std::ptr::null_mut(),
                    &mut len,
                )
            }) {
                Err(Code::NO_READERS_AVAILABLE) => return Ok(Vec::new()),
                other => other?,
            }
            let mut buffer = vec![0u8; len as usize];
            // SAFETY: the buffer holds `len` bytes, as the call is told.
            match check(unsafe {
                (self.api.list_readers)(
                    self.handle,
                    std::ptr::null(),
                    buffer.as_mut_ptr().cast(),
                    &mut len,
                )
            }) {
                Err(Code::NO_READERS_AVAILABLE) => return Ok(Vec::new()),
                // A reader came between the two calls: ask again.
                Err(Code::INSUFFICIENT_BUFFER) => continue,
                other => other?,
            }
            buffer.truncate(len as usize);
            return Ok(split_multi_string(&buffer));
        }
        Err(Code::INSUFFICIENT_BUFFER)
    }

    /// Connects in shared mode with T=0 or T=1.
    pub fn connect(&self, reader: &CStr) -> Result<Card, Code> {
        let mut handle: SCARDHANDLE = 0;
        let mut protocol: DWORD = 0;
        // SAFETY: a NUL-terminated name and out-pointers to locals.
        check(unsafe {
            (self.api.connect)(
                self.handle,
                reader.as_ptr(),
                SHARE_SHARED,
                PROTOCOL_T0 | PROTOCOL_T1,
                &mut handle,
                &mut protocol,
            )
        })?;
        Ok(Card {
            api: self.api,
            handle,
            protocol,
            in_transaction: false,
        })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the handle came from SCardEstablishContext.
        unsafe { (self.api.release)(self.handle) };
    }
}

/// `a\0b\0\0` → `["a", "b"]`.
pub fn split_multi_string(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

/// A connection to the card in one reader. Dropping it ends a transaction
/// still open and disconnects, both with `LEAVE_CARD`: the card is neither
/// reset nor powered down under another program.
pub struct Card {
    api: &'static Api,
    handle: SCARDHANDLE,
    protocol: DWORD,
    in_transaction: bool,
}

impl Card {
    /// Takes the card for this program alone until [`Card::end_transaction`]
    /// (other programs' transmissions wait or fail with a sharing violation).
    pub fn begin_transaction(&mut self) -> Result<(), Code> {
        // SAFETY: a connected card handle.
        check(unsafe { (self.api.begin)(self.handle) })?;
        self.in_transaction = true;
        Ok(())
    }

    pub fn end_transaction(&mut self) -> Result<(), Code> {
        if !std::mem::take(&mut self.in_transaction) {
            return Ok(());
        }
        // SAFETY: a connected card handle inside a transaction.
        check(unsafe { (self.api.end)(self.handle, LEAVE_CARD) })
    }

    /// The card's answer to reset.
    pub fn atr(&self) -> Result<Vec<u8>, Code> {
        let mut name = [0u8; 512];
        let mut name_len = name.len() as DWORD;
        let (mut state, mut protocol): (DWORD, DWORD) = (0, 0);
        let mut atr = [0u8; 64];
        let mut atr_len = atr.len() as DWORD;
        // SAFETY: every buffer is as long as the length passed with it.
        check(unsafe {
            (self.api.status)(
                self.handle,
                name.as_mut_ptr().cast(),
                &mut name_len,
                &mut state,
                &mut protocol,
                atr.as_mut_ptr(),
                &mut atr_len,
            )
        })?;
        Ok(atr[..(atr_len as usize).min(atr.len())].to_vec())
    }

    /// One APDU each way.
    pub fn transmit(&self, command: &[u8]) -> Result<Vec<u8>, Code> {
        let send = SCARD_IO_REQUEST {
            dwProtocol: self.protocol,
            cbPciLength: std::mem::size_of::<SCARD_IO_REQUEST>() as DWORD,
        };
        // Short APDUs only (spec §7.3): 256 data bytes and the status word.
        let mut response = vec![0u8; 258 + 2];
        let mut len = response.len() as DWORD;
        // SAFETY: the command and response buffers are as long as the
        // lengths passed with them; the receive PCI may be null.
        check(unsafe {
            (self.api.transmit)(
                self.handle,
                &send,
                command.as_ptr(),
                command.len() as DWORD,
                std::ptr::null_mut(),
                response.as_mut_ptr(),
                &mut len,
            )
        })?;
        response.truncate(len as usize);
        Ok(response)
    }
}

impl Drop for Card {
    fn drop(&mut self) {
        let _ = self.end_transaction();
        // SAFETY: a connected card handle, disconnected once.
        unsafe { (self.api.disconnect)(self.handle, LEAVE_CARD) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_strings() {
        assert_eq!(
            split_multi_string(b"Virtual PCD 00 00\0TOKEN2 Molto2 01 00\0\0"),
            ["Virtual PCD 00 00", "TOKEN2 Molto2 01 00"]
        );
        assert!(split_multi_string(b"\0").is_empty());
        assert!(split_multi_string(b"").is_empty());
    }

    /// A machine without libpcsclite: the device commands say what to
    /// install (the binary itself does not need the library to start).
    #[cfg(not(any(windows, target_os = "macos")))]
    #[test]
    fn a_missing_library_says_what_to_install() {
        let Err(message) = Api::load_from(&["libpcsclite-not-here.so.1"]) else {
            panic!("a library that does not exist was loaded");
        };
        assert!(
            message.starts_with("PC/SC is not installed here"),
            "{message}"
        );
        assert!(
            message.contains("sudo apt install pcscd libpcsclite1"),
            "{message}"
        );
        assert!(message.contains("--transport usb"), "{message}");
    }

    #[test]
    fn codes_read_as_words() {
        assert_eq!(
            Code::SHARING_VIOLATION.to_string(),
            "the card is held by another program (8010000B)"
        );
        assert!(Code::REMOVED_CARD.is_lost());
        assert!(!Code::TIMEOUT.is_lost());
    }
}
