//! A Paillier modulus: n, n², the width of a ciphertext on disk and the signed-plaintext bound.
//! It is all that homomorphic arithmetic needs (`ops`), and it is built from n alone: from a
//! key, or from the modulus a query plan carries in its field metadata, so that an executor
//! holds no key file.

use rug::Integer;

use super::wire::b64_decode;
use crate::error::{Error, Result};

/// The modulus of a key.
#[derive(Clone, PartialEq, Eq)]
pub struct Modulus {
    n: Integer,
    n2: Integer,
    max_int: Integer,
    width: usize,
}

impl std::fmt::Debug for Modulus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Modulus({} bits)", self.bits())
    }
}

impl Modulus {
    /// The modulus n (odd, above 15). Whether n is a sound Paillier modulus is the key's check
    /// (`PublicKey::new`); this only refuses what would break the arithmetic.
    pub fn new(n: Integer) -> Result<Self> {
        if n <= 15 || n.is_even() {
            return Err(Error::KeyParameter {
                parameter: "n",
                reason: "it is not an odd number above 15".into(),
            });
        }
        let n2 = Integer::from(n.square_ref());
        let max_int = Integer::from(&n / 3u32) - 1u32;
        let bytes = n.significant_bits().div_ceil(8) as usize;
        Ok(Modulus {
            width: (2 * bytes).div_ceil(8) * 8,
            n,
            n2,
            max_int,
        })
    }

    /// The modulus written as base64url big-endian (field metadata, key files).
    pub fn from_b64(text: &str) -> Result<Self> {
        let n = b64_decode(text).map_err(|why| Error::KeyParameter {
            parameter: "n",
            reason: format!("the modulus {why}"),
        })?;
        Self::new(n)
    }

    /// n.
    pub fn n(&self) -> &Integer {
        &self.n
    }

    /// n².
    pub fn n_squared(&self) -> &Integer {
        &self.n2
    }

    /// The largest magnitude a signed plaintext may have: ⌊n/3⌋ − 1.
    pub fn max_int(&self) -> &Integer {
        &self.max_int
    }

    /// Bit length of n.
    pub fn bits(&self) -> u32 {
        self.n.significant_bits()
    }

    /// Bytes of one ciphertext on disk: 2·⌈|n|/8⌉ rounded up to a multiple of 8.
    pub fn width(&self) -> usize {
        self.width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_is_twice_the_modulus_rounded_to_words() {
        let n = (Integer::from(1) << 2047u32) + 1u32;
        assert_eq!(Modulus::new(n).unwrap().width(), 512);
        let n = (Integer::from(1) << 3071u32) + 1u32;
        assert_eq!(Modulus::new(n).unwrap().width(), 768);
        assert!(Modulus::new(Integer::from(16)).is_err());
        assert!(Modulus::from_b64("!!").is_err());
    }
}
