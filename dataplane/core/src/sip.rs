//! IPVS's SIP persistence engine (`ipvsadm --pe sip`): a UDP service's templates follow a
//! SIP dialog's Call-ID as well as the client's (masked) address, as the kernel's
//! `ip_vs_pe_sip` matches them, so the calls of one SIP proxy spread over the servers while
//! each call stays on one.

use crate::conn::Addr16;

/// The longest Call-ID the engine takes (the kernel's `IP_VS_PEDATA_MAXLEN`); a datagram
/// with a longer one persists by its address alone, as the kernel's does.
pub const CALL_ID_MAX: usize = 255;

/// The first byte of a SIP template's client address (the rest: a hash of the masked
/// client address and the Call-ID); no IPv4-mapped address starts with it.
pub const TEMPLATE_MARK: u8 = 0xfe;

/// The Call-ID of a SIP message (`Call-ID:` or its compact form `i:`, any case, at a line
/// start), trimmed; None when the payload is not a SIP message with one, or the Call-ID
/// is longer than [`CALL_ID_MAX`].
pub fn call_id(payload: &[u8]) -> Option<&[u8]> {
    let mut rest = payload;
    // The start line: a request (METHOD uri SIP/2.0) or a response (SIP/2.0 code).
    let first_end = rest.windows(2).position(|w| w == b"\r\n")?;
    let first = &rest[..first_end];
    if !first.windows(7).any(|w| w == b"SIP/2.0") {
        return None;
    }
    rest = &rest[first_end + 2..];
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(rest.len());
        let line = &rest[..end];
        if line.is_empty() {
            return None; // end of headers
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line[..colon].trim_ascii();
            if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
                let value = line[colon + 1..].trim_ascii();
                return (!value.is_empty() && value.len() <= CALL_ID_MAX).then_some(value);
            }
        }
        rest = rest.get(end + 2..).unwrap_or(&[]);
    }
    None
}

/// A SIP template's client address: [`TEMPLATE_MARK`] and 15 bytes of a hash of the
/// client's masked address and the Call-ID (the kernel's template matches both).
pub fn template_addr(call_id: &[u8], client: &Addr16) -> Addr16 {
    let (mut a, mut b): (u64, u64) = (0xcbf2_9ce4_8422_2325, 0x8422_2325_cbf2_9ce4);
    for &c in client.iter().chain(call_id) {
        a = (a ^ u64::from(c)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(c))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29);
    }
    let mut out = [0u8; 16];
    out[0] = TEMPLATE_MARK;
    out[1..8].copy_from_slice(&a.to_be_bytes()[1..]);
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_id_is_read_as_the_kernel_reads_it() {
        assert_eq!(
            call_id(b"SIP/2.0 200 OK\r\nCall-ID:  x1 \r\n\r\n"),
            Some(&b"x1"[..])
        );
        assert_eq!(
            call_id(b"BYE sip:b@h SIP/2.0\r\nVia: x\r\ni: y2\r\n\r\n"),
            Some(&b"y2"[..])
        );
        assert_eq!(call_id(b"GET / HTTP/1.1\r\ni: x\r\n\r\n"), None);
        assert_eq!(
            call_id(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\ni: late\r\n"),
            None
        );
        let long = format!("SIP/2.0 200 OK\r\nCall-ID: {}\r\n\r\n", "c".repeat(256));
        assert_eq!(
            call_id(long.as_bytes()),
            None,
            "longer than the kernel takes"
        );
        let most = format!("SIP/2.0 200 OK\r\nCall-ID: {}\r\n\r\n", "c".repeat(255));
        assert_eq!(call_id(most.as_bytes()).map(<[u8]>::len), Some(255));
    }

    #[test]
    fn a_template_address_is_marked_and_follows_client_and_call() {
        let client = |last: u8| {
            let mut a = [0u8; 16];
            a[10..12].copy_from_slice(&[0xff, 0xff]);
            a[12..].copy_from_slice(&[198, 51, 100, last]);
            a
        };
        let t = template_addr(b"abc@host", &client(1));
        assert_eq!(t[0], TEMPLATE_MARK);
        assert_eq!(t, template_addr(b"abc@host", &client(1)));
        assert_ne!(t, template_addr(b"abc@host", &client(2)));
        assert_ne!(t, template_addr(b"abd@host", &client(1)));
    }
}
