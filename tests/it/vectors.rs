//! Known-answer vectors from python-paillier 1.5 (tests/vectors/make_vectors.py).

use cipherlake::paillier::{hazmat, PublicKey};
use rug::Integer;
use serde_json::Value;

fn hex(v: &Value) -> Integer {
    let s = v.as_str().expect("hex string");
    Integer::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex")
}

fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/phe_2048.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn raw_encrypt_matches_python_paillier_bit_for_bit() {
    let v = load();
    let (p, q) = (hex(&v["p"]), hex(&v["q"]));
    let key = hazmat::private_key_from_primes(p, q, None).unwrap();
    let pk: &PublicKey = key.public_key();
    assert_eq!(pk.n(), &hex(&v["n"]));
    assert_eq!(pk.max_int(), &hex(&v["max_int"]));
    let cases = v["raw"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let (m, r, c) = (hex(&case["m"]), hex(&case["r"]), hex(&case["c"]));
        let ours = hazmat::encrypt_with_r(pk, &m, &r);
        assert_eq!(ours.as_integer(), &c, "m = {m}");
        // On-disk bytes: 512-byte little-endian.
        let le = pk.ciphertext_to_le_bytes(&ours);
        assert_eq!(le.len(), 512);
        let want: Vec<u8> = (0..512)
            .map(|i| {
                u8::from_str_radix(&case["le_hex"].as_str().unwrap()[2 * i..2 * i + 2], 16).unwrap()
            })
            .collect();
        assert_eq!(le, want);
        assert_eq!(pk.ciphertext_from_le_bytes(&le).unwrap(), ours);
        // Decryption and phe's signed decoding agree with ours.
        assert_eq!(key.decrypt_raw(&ours), m);
        let signed: Integer = case["signed"].as_str().unwrap().parse().unwrap();
        assert_eq!(key.decrypt(&ours).unwrap(), signed);
    }
}

#[test]
fn djn_ciphertexts_equal_those_phe_decrypted() {
    let v = load();
    let (p, q) = (hex(&v["p"]), hex(&v["q"]));
    let n = Integer::from(&p * &q);
    let hs = hazmat::djn_base_from_x(&n, &hex(&v["x"]));
    assert_eq!(hs, hex(&v["hs"]));
    let key = hazmat::private_key_from_primes(p, q, Some(hs)).unwrap();
    let pk = key.public_key();
    for case in v["djn"].as_array().unwrap() {
        let (m, a, c) = (hex(&case["m"]), hex(&case["a"]), hex(&case["c"]));
        let ours = hazmat::encrypt_djn_with_a(pk, &m, &a);
        assert_eq!(ours.as_integer(), &c, "m = {m}");
        assert_eq!(key.decrypt_raw(&ours), m);
        let signed: Integer = case["signed"].as_str().unwrap().parse().unwrap();
        assert_eq!(key.decrypt(&ours).unwrap(), signed);
    }
}
