//! A Paillier ciphertext: an element of Z*_{n²}, stored on disk as fixed-width little-endian bytes.

use rug::integer::Order;
use rug::Integer;

/// A ciphertext under some public key. Obtained from encryption, from a homomorphic operation, or
/// from bytes through `PublicKey::ciphertext_from_le_bytes`, which validates it.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext(Integer);

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A ciphertext is not secret, but thousands of hex digits help no one.
        let hex = self.0.to_string_radix(16);
        write!(f, "Ciphertext({}…)", &hex[..hex.len().min(16)])
    }
}

impl Ciphertext {
    pub(crate) fn from_raw(c: Integer) -> Self {
        Ciphertext(c)
    }

    /// The ciphertext as an integer in (0, n²).
    pub fn as_integer(&self) -> &Integer {
        &self.0
    }

    /// Consumes the ciphertext, giving its integer.
    pub fn into_integer(self) -> Integer {
        self.0
    }

    pub(crate) fn as_integer_mut(&mut self) -> &mut Integer {
        &mut self.0
    }

    /// Writes the little-endian bytes into `out`, zero-padding the high end. `out` must be at
    /// least as wide as the ciphertext (`PublicKey::ciphertext_width` always is).
    pub fn write_le(&self, out: &mut [u8]) {
        write_le(&self.0, out);
    }

    /// Reads a little-endian unsigned integer (no validation: see `PublicKey`).
    pub(crate) fn integer_from_le_bytes(bytes: &[u8]) -> Integer {
        let mut x = Integer::new();
        read_le_into(&mut x, bytes);
        x
    }
}

/// Writes a non-negative integer's little-endian bytes into `out`, zero-padding the high end (the
/// counterpart of `read_le_into`). `out` must be wide enough.
pub(crate) fn write_le(x: &Integer, out: &mut [u8]) {
    let needed = x.significant_digits::<u8>();
    assert!(
        out.len() >= needed,
        "value needs {needed} bytes, got {}",
        out.len()
    );
    x.write_digits(out, Order::Lsf);
}

/// Reads little-endian bytes into an existing integer, reusing its allocation. When the width is
/// a multiple of 8 the bytes go in as whole 64-bit limbs, which GMP copies straight in.
pub(crate) fn read_le_into(x: &mut Integer, bytes: &[u8]) {
    if bytes.len().is_multiple_of(8) {
        // 128 words: a 4096-bit key's ciphertexts (1024 bytes).
        let mut words = [0u64; 128];
        if bytes.len() <= 8 * words.len() {
            let k = bytes.len() / 8;
            for (w, chunk) in words[..k].iter_mut().zip(bytes.chunks_exact(8)) {
                // chunks_exact(8) yields 8-byte slices, so the conversion cannot fail.
                *w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            }
            x.assign_digits(&words[..k], Order::Lsf);
            return;
        }
    }
    x.assign_digits(bytes, Order::Lsf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_bytes_round_trip_with_padding() {
        let x = Integer::from_str_radix("0102030405060708090a0b0c0d0e0f", 16).unwrap();
        let c = Ciphertext::from_raw(x.clone());
        let mut out = [0xffu8; 24];
        c.write_le(&mut out);
        assert_eq!(out[0], 0x0f);
        assert_eq!(out[14], 0x01);
        assert!(out[15..].iter().all(|&b| b == 0));
        assert_eq!(Ciphertext::integer_from_le_bytes(&out), x);
        assert_eq!(Ciphertext::integer_from_le_bytes(&out[..15]), x);
    }

    #[test]
    fn le_matches_python_int_from_bytes_little() {
        // int.from_bytes(bytes([1, 0, 0, 0, 0, 0, 0, 0, 2]), "little") == 2**64 * 2 + 1
        let x = Ciphertext::integer_from_le_bytes(&[1, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(x, (Integer::from(2) << 64) + 1u32);
    }
}
