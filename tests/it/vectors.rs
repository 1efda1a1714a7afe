//! Known-answer vectors from python-paillier 1.5 (tests/vectors/make_vectors.py), read into
//! typed structs.

use cipherlake::paillier::{hazmat, PublicKey};
use rug::Integer;
use serde::{Deserialize, Deserializer};

/// An integer written as `0x…` hex.
#[derive(Debug)]
struct Hex(Integer);

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Integer::from_str_radix(s.trim_start_matches("0x"), 16)
            .map(Hex)
            .map_err(serde::de::Error::custom)
    }
}

/// A decimal integer written as a string (signed plaintexts exceed JSON numbers).
#[derive(Debug)]
struct Dec(Integer);

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Dec).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize)]
struct Vectors {
    p: Hex,
    q: Hex,
    n: Hex,
    x: Hex,
    hs: Hex,
    max_int: Hex,
    raw: Vec<RawCase>,
    djn: Vec<DjnCase>,
}

/// `raw_encrypt(m, r_value=r)` and its on-disk bytes.
#[derive(Debug, Deserialize)]
struct RawCase {
    m: Hex,
    r: Hex,
    c: Hex,
    signed: Dec,
    #[serde(deserialize_with = "le_bytes")]
    le_hex: Vec<u8>,
}

/// A DJN ciphertext (1 + m·n)·hs^a that phe decrypted.
#[derive(Debug, Deserialize)]
struct DjnCase {
    m: Hex,
    a: Hex,
    c: Hex,
    signed: Dec,
}

fn le_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = String::deserialize(d)?;
    hex::decode(s.trim_start_matches("0x")).map_err(serde::de::Error::custom)
}

fn load() -> Vectors {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/phe_2048.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn raw_encrypt_matches_python_paillier_bit_for_bit() {
    let v = load();
    let key = hazmat::private_key_from_primes(v.p.0, v.q.0, None).unwrap();
    let pk: &PublicKey = key.public_key();
    assert_eq!(pk.n(), &v.n.0);
    assert_eq!(pk.max_int(), &v.max_int.0);
    assert!(v.raw.len() >= 8);
    for case in &v.raw {
        let ours = hazmat::encrypt_with_r(pk, &case.m.0, &case.r.0);
        assert_eq!(ours.as_integer(), &case.c.0, "m = {:?}", case.m);
        // On-disk bytes: 512-byte little-endian.
        let le = pk.ciphertext_to_le_bytes(&ours);
        assert_eq!(le, case.le_hex);
        assert_eq!(pk.ciphertext_from_le_bytes(&le).unwrap(), ours);
        // Decryption and phe's signed decoding agree with ours.
        assert_eq!(key.decrypt_raw(&ours), case.m.0);
        assert_eq!(key.decrypt(&ours).unwrap(), case.signed.0);
    }
}

#[test]
fn djn_ciphertexts_equal_those_phe_decrypted() {
    let v = load();
    let n = Integer::from(&v.p.0 * &v.q.0);
    let hs = hazmat::djn_base_from_x(&n, &v.x.0);
    assert_eq!(hs, v.hs.0);
    let key = hazmat::private_key_from_primes(v.p.0, v.q.0, Some(hs)).unwrap();
    let pk = key.public_key();
    for case in &v.djn {
        let ours = hazmat::encrypt_djn_with_a(pk, &case.m.0, &case.a.0);
        assert_eq!(ours.as_integer(), &case.c.0, "m = {:?}", case.m);
        assert_eq!(key.decrypt_raw(&ours), case.m.0);
        assert_eq!(key.decrypt(&ours).unwrap(), case.signed.0);
    }
}
