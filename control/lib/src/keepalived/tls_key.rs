//! Encrypted PEM private keys opened with the `SSL` block's `password`, as OpenSSL's PEM
//! reader opens them for keepalived: PKCS#8 (`ENCRYPTED PRIVATE KEY`: PBES2 with PBKDF2 or
//! scrypt and AES-CBC, what `openssl pkey -aes256` writes) and OpenSSL's traditional form
//! (`RSA PRIVATE KEY` or `EC PRIVATE KEY` with `Proc-Type: 4,ENCRYPTED` and `DEK-Info:
//! CIPHER,IV`, what `openssl genrsa -aes128` wrote before OpenSSL 3: AES-128/192/256-CBC or
//! DES-EDE3-CBC, the key derived from the password by EVP_BytesToKey with MD5 and one
//! round, the IV's first eight bytes as the salt).

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use md5::{Digest, Md5};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

/// What a wrong password gives.
const WRONG_PASSWORD: &str = "the SSL block's password does not open the encrypted key";

/// One PEM block: its label, its RFC 1421 headers and its base64 text.
struct Block<'a> {
    label: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: String,
}

/// The first block of `text` whose label names a private key.
fn key_block(text: &str) -> Option<Block<'_>> {
    let mut lines = text.lines().map(str::trim_end);
    loop {
        let label = lines.find_map(|l| l.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))?;
        let end = format!("-----END {label}-----");
        let mut block = Block {
            label,
            headers: Vec::new(),
            body: String::new(),
        };
        let mut in_headers = true;
        for line in lines.by_ref() {
            if line == end {
                break;
            }
            if in_headers {
                // (Base64 text has no colon.)
                if let Some((k, v)) = line.split_once(':') {
                    block.headers.push((k.trim(), v.trim()));
                    continue;
                }
                in_headers = false;
            }
            block.body.push_str(line.trim());
        }
        if label.ends_with("PRIVATE KEY") {
            return Some(block);
        }
    }
}

/// The key of `pem` opened with `password` when it is encrypted; None when it is not
/// (the plain reader takes it).
pub fn open(pem: &[u8], password: Option<&str>) -> Result<Option<PrivateKeyDer<'static>>, String> {
    let text = String::from_utf8_lossy(pem);
    let Some(block) = key_block(&text) else {
        return Ok(None);
    };
    let header = |name: &str| {
        block
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let traditional = header("Proc-Type").is_some_and(|v| v.ends_with("ENCRYPTED"));
    if block.label != "ENCRYPTED PRIVATE KEY" && !traditional {
        return Ok(None);
    }
    let password = password.ok_or("an encrypted key needs the SSL block's password")?;
    let der = <base64ct::Base64 as base64ct::Encoding>::decode_vec(&block.body)
        .map_err(|_| "an encrypted key whose text is not base64".to_string())?;
    if !traditional {
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| format!("an encrypted key rvs cannot read ({e})"))?;
        let plain = info.decrypt(password).map_err(|e| match e {
            // A wrong key leaves bad padding (pkcs5 reports it as either), or, one time in
            // about 256, good padding around bytes that are no PKCS#8 key.
            pkcs8::Error::EncryptedPrivateKey(
                pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
            )
            | pkcs8::Error::Asn1(_)
            | pkcs8::Error::KeyMalformed => WRONG_PASSWORD.to_string(),
            e => format!("an encrypted key rvs cannot open ({e})"),
        })?;
        return Ok(Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.as_bytes().to_vec(),
        ))));
    }
    let dek = header("DEK-Info").ok_or("an encrypted key without its DEK-Info header")?;
    let (cipher, iv) = dek.split_once(',').unwrap_or((dek, ""));
    let iv = crate::config::parse_hex(iv.trim())
        .ok_or(format!("an encrypted key whose IV {iv:?} is not hex"))?;
    let plain = decrypt(cipher.trim(), password.as_bytes(), &iv, der)?;
    Ok(Some(match block.label {
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(plain)),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(plain)),
        "PRIVATE KEY" => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain)),
        other => return Err(format!("an encrypted {other}, which rvs does not read")),
    }))
}

/// `key` as unencrypted PEM (what the plain reader reads back).
pub fn pem_of(key: &PrivateKeyDer<'_>) -> Vec<u8> {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    let text = <base64ct::Base64 as base64ct::Encoding>::encode_string(key.secret_der());
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem.into_bytes()
}

/// `data` decrypted by `cipher` (an OpenSSL name) with the key derived from `password`.
fn decrypt(cipher: &str, password: &[u8], iv: &[u8], mut data: Vec<u8>) -> Result<Vec<u8>, String> {
    let (key_len, iv_len) = match cipher {
        "AES-128-CBC" => (16, 16),
        "AES-192-CBC" => (24, 16),
        "AES-256-CBC" => (32, 16),
        "DES-EDE3-CBC" => (24, 8),
        other => {
            return Err(format!(
                "an encrypted key in {other}, which rvs does not read (AES-128/192/256-CBC, DES-EDE3-CBC)"
            ))
        }
    };
    if iv.len() != iv_len {
        return Err(format!(
            "an encrypted key whose {cipher} IV has {} bytes",
            iv.len()
        ));
    }
    let key = bytes_to_key(password, &iv[..8], key_len);
    let wrong = |_| WRONG_PASSWORD.to_string();
    let n = match cipher {
        "AES-128-CBC" => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded_mut::<Pkcs7>(&mut data)
            .map_err(wrong)?
            .len(),
        "AES-192-CBC" => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded_mut::<Pkcs7>(&mut data)
            .map_err(wrong)?
            .len(),
        "AES-256-CBC" => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded_mut::<Pkcs7>(&mut data)
            .map_err(wrong)?
            .len(),
        _ => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, iv)
            .map_err(|e| e.to_string())?
            .decrypt_padded_mut::<Pkcs7>(&mut data)
            .map_err(wrong)?
            .len(),
    };
    data.truncate(n);
    // A wrong key may still leave valid padding: what is left must be one DER SEQUENCE.
    if element(&data, 0x30).map(|(len, _)| len) != Some(data.len()) {
        return Err(WRONG_PASSWORD.to_string());
    }
    Ok(data)
}

/// The SubjectPublicKeyInfo (its whole DER) of X.509 certificate `der`, of any version
/// (rustls's parser takes version 3 only; OpenSSL presents a version 1 certificate too).
pub fn certificate_spki(der: &[u8]) -> Option<&[u8]> {
    let (_, certificate) = element(der, 0x30)?;
    let (_, mut tbs) = element(certificate, 0x30)?;
    // version [0] EXPLICIT (absent in version 1)
    if tbs.first() == Some(&0xa0) {
        tbs = &tbs[element(tbs, 0xa0)?.0..];
    }
    // serialNumber, signature, issuer, validity, subject
    for tag in [0x02, 0x30, 0x30, 0x30, 0x30] {
        tbs = &tbs[element(tbs, tag)?.0..];
    }
    let (len, _) = element(tbs, 0x30)?;
    tbs.get(..len)
}

/// The DER element at the start of `der` if its tag is `tag`: its whole length and its
/// content.
fn element(der: &[u8], tag: u8) -> Option<(usize, &[u8])> {
    if *der.first()? != tag {
        return None;
    }
    let first = *der.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if !(1..=4).contains(&n) {
            return None;
        }
        let bytes = der.get(2..2 + n)?;
        (
            bytes.iter().fold(0usize, |v, &b| v << 8 | usize::from(b)),
            2 + n,
        )
    };
    let end = header.checked_add(len)?;
    Some((end, der.get(header..end)?))
}

/// OpenSSL's EVP_BytesToKey with MD5 and one round: MD5 blocks of the previous block,
/// the password and the salt, until `len` bytes.
fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(len + 16);
    let mut previous: Vec<u8> = Vec::new();
    while key.len() < len {
        let mut h = Md5::new();
        h.update(&previous);
        h.update(password);
        h.update(salt);
        previous = h.finalize().to_vec();
        key.extend_from_slice(&previous);
    }
    key.truncate(len);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_to_key_is_openssl_s() {
        // `openssl enc -aes-256-cbc -md md5 -pass pass:secret -S 0102030405060708 -P`:
        // the key, then the IV, from the same derivation.
        let derived = bytes_to_key(b"secret", &[1, 2, 3, 4, 5, 6, 7, 8], 48);
        let want = crate::config::parse_hex(concat!(
            "C9E5A1BD216DBE1317E230CEF48F38EE7F0E17AD64022144BCCEC4A1AA2879AB",
            "E24B32BBBC4EF02ECBCB6576523AD893"
        ))
        .unwrap();
        assert_eq!(derived, want);
    }

    /// The DER of `pem`'s key block.
    fn der_of(pem: &str) -> Vec<u8> {
        let b = key_block(pem).unwrap();
        <base64ct::Base64 as base64ct::Encoding>::decode_vec(&b.body).unwrap()
    }

    /// One P-256 key (testdata/ec.key) as `openssl ec -aes256` and `-des3` write it
    /// (traditional), and as `openssl pkcs8 -topk8 -v2 aes-256-cbc` and `-scrypt` write it,
    /// all with the password "secret": each opens to the plain key's DER.
    #[test]
    fn openssl_s_encrypted_keys_open_to_the_plain_key() {
        let sec1 = der_of(include_str!("testdata/ec.key"));
        let pkcs8 = der_of(include_str!("testdata/ec-plain8.key"));
        for (name, pem, plain) in [
            ("aes", include_str!("testdata/ec-aes.key"), &sec1),
            ("des3", include_str!("testdata/ec-des3.key"), &sec1),
            ("pkcs8 pbkdf2", include_str!("testdata/ec-p8.key"), &pkcs8),
            ("pkcs8 scrypt", include_str!("testdata/ec-p8s.key"), &pkcs8),
        ] {
            let key = open(pem.as_bytes(), Some("secret")).unwrap().expect(name);
            assert_eq!(key.secret_der(), &plain[..], "{name}");
            // Kept opened as plain PEM, read back as it was.
            use rustls::pki_types::pem::PemObject;
            let again = PrivateKeyDer::from_pem_slice(&pem_of(&key)).unwrap();
            assert_eq!(again, key, "{name}");
            let traditional = !name.starts_with("pkcs8");
            assert_eq!(matches!(key, PrivateKeyDer::Sec1(_)), traditional, "{name}");
            assert_eq!(
                open(pem.as_bytes(), Some("wrong")).unwrap_err(),
                WRONG_PASSWORD,
                "{name}"
            );
        }
    }

    /// A wrong password leaves good padding about one time in 256: those too are told as
    /// a wrong password, not as a malformed key (this set of passwords has such cases).
    #[test]
    fn every_wrong_password_is_told_as_one() {
        let pem = include_str!("testdata/ec-p8.key");
        let der = der_of(pem);
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).unwrap();
        let mut good_padding = 0;
        for n in 0..1000 {
            let password = format!("wrong{n}");
            if matches!(info.decrypt(&password), Err(pkcs8::Error::Asn1(_))) {
                good_padding += 1;
            }
            assert_eq!(
                open(pem.as_bytes(), Some(&password)).unwrap_err(),
                WRONG_PASSWORD,
                "{password}"
            );
        }
        assert!(good_padding > 0, "no wrong password passed the padding");
    }

    #[test]
    fn plain_keys_and_other_blocks_are_left_to_the_plain_reader() {
        let plain = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(open(plain, Some("x")).unwrap().is_none());
        assert!(open(b"no pem here", None).unwrap().is_none());
    }

    #[test]
    fn encrypted_keys_name_what_is_wrong() {
        let traditional = |dek: &str| {
            format!("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: {dek}\n\nAAAAAAAAAAAAAAAAAAAAAA==\n-----END RSA PRIVATE KEY-----\n")
        };
        let e = |pem: String, pw: Option<&str>| open(pem.as_bytes(), pw).unwrap_err();
        assert_eq!(
            e(
                traditional("AES-128-CBC,00112233445566778899AABBCCDDEEFF"),
                None
            ),
            "an encrypted key needs the SSL block's password"
        );
        assert!(e(traditional("BF-CBC,0011223344556677"), Some("x")).contains("BF-CBC"));
        assert!(e(traditional("AES-128-CBC,0011"), Some("x")).contains("IV has 2 bytes"));
        assert!(e(traditional("AES-128-CBC,zz"), Some("x")).contains("not hex"));
        // Sixteen zero bytes under a wrong key: the padding does not check out (or, rarely,
        // does and is not a key: the plain reader then refuses it).
        let r = open(
            traditional("AES-128-CBC,00112233445566778899AABBCCDDEEFF").as_bytes(),
            Some("wrong"),
        );
        assert!(r.is_err() || r.unwrap().is_some());
    }
}
