//! A host name made canonical by the resolver (`getaddrinfo` with `AI_CANONNAME`: files,
//! then DNS, as nsswitch.conf says), as keepalived names its host.

use std::ffi::{CStr, CString};

/// `node`'s canonical name; None when it resolves nowhere.
pub fn canonical_name(node: &str) -> Option<String> {
    let node = CString::new(node).ok()?;
    // SAFETY: addrinfo is plain data; all zeroes is a valid "no hints" value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `node` is NUL-terminated, `hints` and `res` are valid pointers; on success
    // the list is freed below.
    if unsafe { libc::getaddrinfo(node.as_ptr(), std::ptr::null(), &hints, &mut res) } != 0 {
        return None;
    }
    let name = if res.is_null() {
        None
    } else {
        // SAFETY: `res` is the first node of the list getaddrinfo returned; its
        // ai_canonname is null or a NUL-terminated string of the list.
        let first = unsafe { &*res };
        (!first.ai_canonname.is_null())
            // SAFETY: as above.
            .then(|| unsafe { CStr::from_ptr(first.ai_canonname) })
            .map(|c| c.to_string_lossy().into_owned())
    };
    // SAFETY: `res` came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(res) };
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_is_canonical_and_nonsense_resolves_nowhere() {
        assert_eq!(canonical_name("localhost").as_deref(), Some("localhost"));
        assert_eq!(canonical_name("no-such-host.invalid"), None);
        assert_eq!(canonical_name("nul\0inside"), None);
    }
}
