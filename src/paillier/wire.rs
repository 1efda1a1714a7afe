//! Big integers as text: base64url without padding, big-endian (the JWK convention
//! python-paillier uses), in key files, partial decryptions and field metadata. Errors say what
//! is wrong and never quote the text: the caller names the field, and the text may be a secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rug::integer::Order;
use rug::Integer;
use zeroize::Zeroizing;

/// Encodes a non-negative integer as base64url (no padding), big-endian.
pub fn b64_encode(x: &Integer) -> String {
    URL_SAFE_NO_PAD.encode(x.to_digits::<u8>(Order::Msf))
}

/// Decodes base64url (trailing `=` padding tolerated), big-endian. The error is a reason to
/// append to the field's name: "is not base64url" or "is empty".
pub fn b64_decode(s: &str) -> Result<Integer, &'static str> {
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| "is not base64url")?,
    );
    if bytes.is_empty() {
        return Err("is empty");
    }
    Ok(Integer::from_digits(&bytes, Order::Msf))
}

/// Serde for an `Integer` field written as base64url: `#[serde(with = "wire::b64_int")]`.
pub mod b64_int {
    use rug::Integer;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    /// Writes the integer as base64url.
    pub fn serialize<S: Serializer>(x: &Integer, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::b64_encode(x))
    }

    /// Reads a base64url integer.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Integer, D::Error> {
        let text = String::deserialize(d)?;
        super::b64_decode(&text).map_err(|why| D::Error::custom(format!("an integer {why}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_big_endian_without_padding() {
        // 65537 = 0x010001 → AQAB, as in every JWK.
        assert_eq!(b64_encode(&Integer::from(65537)), "AQAB");
        assert_eq!(b64_decode("AQAB").unwrap(), 65537);
        assert_eq!(b64_decode("AAAAAQAB").unwrap(), 65537);
        assert_eq!(b64_decode("A*AB"), Err("is not base64url"));
        assert_eq!(b64_decode(""), Err("is empty"));
    }
}
