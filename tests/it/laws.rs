//! The Paillier laws as properties, on a fixed 512-bit test key (and its r^n twin without hs).

use std::sync::OnceLock;

use cipherlake::paillier::{hazmat, PrivateKey};
use proptest::prelude::*;
use rug::Integer;

fn key() -> &'static PrivateKey {
    hazmat::fixture_key_512()
}

/// The same primes without a DJN base: encryption falls back to r^n.
fn key_without_hs() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let (p, q) = hazmat::primes_of(key());
        hazmat::private_key_from_primes(p.clone(), q.clone(), None).unwrap()
    })
}

fn int(v: i128) -> Integer {
    Integer::from(v)
}

/// Plaintexts over the whole signed range of the key, not just machine integers.
fn big_plaintext() -> impl Strategy<Value = Integer> {
    (any::<bool>(), proptest::collection::vec(any::<u64>(), 1..8)).prop_map(|(neg, limbs)| {
        let mut x = Integer::from_digits(&limbs, rug::integer::Order::Lsf);
        x %= key().public_key().max_int();
        if neg {
            -x
        } else {
            x
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decrypt_inverts_encrypt(m in big_plaintext()) {
        for k in [key(), key_without_hs()] {
            let c = k.public_key().encrypt(&m).unwrap();
            prop_assert_eq!(k.decrypt(&c).unwrap(), m.clone());
        }
    }

    #[test]
    fn product_of_ciphertexts_is_sum(a in any::<i64>(), b in any::<i64>()) {
        let pk = key().public_key();
        let (ca, cb) = (pk.encrypt(&int(a.into())).unwrap(), pk.encrypt(&int(b.into())).unwrap());
        prop_assert_eq!(key().decrypt(&pk.add(&ca, &cb)).unwrap(), int(a as i128 + b as i128));
        let mut acc = ca.clone();
        pk.add_assign(&mut acc, &cb);
        prop_assert_eq!(acc, pk.add(&ca, &cb));
    }

    #[test]
    fn power_is_plaintext_product(m in any::<i64>(), k in any::<i64>()) {
        let pk = key().public_key();
        let c = pk.encrypt(&int(m.into())).unwrap();
        let got = key().decrypt(&pk.mul_plain(&c, &int(k.into())).unwrap()).unwrap();
        prop_assert_eq!(got, int(m as i128 * k as i128));
    }

    #[test]
    fn add_plain_and_neg(m in any::<i64>(), k in any::<i64>()) {
        let pk = key().public_key();
        let c = pk.encrypt(&int(m.into())).unwrap();
        prop_assert_eq!(key().decrypt(&pk.add_plain(&c, &int(k.into())).unwrap()).unwrap(), int(m as i128 + k as i128));
        prop_assert_eq!(key().decrypt(&pk.neg(&c).unwrap()).unwrap(), int(-(m as i128)));
    }

    #[test]
    fn rerandomised_decrypts_the_same_and_differs(m in any::<i64>()) {
        let pk = key().public_key();
        let c = pk.encrypt(&int(m.into())).unwrap();
        let r = pk.rerandomize(&c).unwrap();
        prop_assert_ne!(pk.ciphertext_to_le_bytes(&r), pk.ciphertext_to_le_bytes(&c));
        prop_assert_eq!(key().decrypt(&r).unwrap(), int(m.into()));
    }

    #[test]
    fn bytes_round_trip(m in big_plaintext()) {
        let pk = key().public_key();
        let c = pk.encrypt(&m).unwrap();
        let bytes = pk.ciphertext_to_le_bytes(&c);
        prop_assert_eq!(bytes.len(), pk.ciphertext_width());
        prop_assert_eq!(pk.ciphertext_from_le_bytes(&bytes).unwrap(), c);
    }
}

#[test]
fn max_int_edges_round_trip_and_the_next_value_is_refused() {
    let (k, pk) = (key(), key().public_key());
    let max = pk.max_int().clone();
    for m in [max.clone(), -max.clone()] {
        assert_eq!(k.decrypt(&pk.encrypt(&m).unwrap()).unwrap(), m);
    }
    for m in [Integer::from(&max + 1u32), -Integer::from(&max + 1u32)] {
        let err = pk.encrypt(&m).unwrap_err().to_string();
        assert!(
            err.contains("out of range") && err.contains(pk.key_id()),
            "{err}"
        );
    }
    // A sum that leaves the range lands in the overflow band and is refused on decryption.
    let c = pk.encrypt(&max).unwrap();
    let err = k.decrypt(&pk.add(&c, &c)).unwrap_err().to_string();
    assert!(err.contains("overflow band"), "{err}");
}

#[test]
fn invalid_ciphertexts_are_rejected() {
    let pk = key().public_key();
    let (p, _) = hazmat::primes_of(key());
    let n2 = pk.n_squared().clone();
    let cases = [
        (Integer::new(), "zero"),
        (n2.clone(), "not below n²"),
        (Integer::from(&n2 + 5u32), "not below n²"),
        (Integer::from(p * 7u32), "shares a factor with n"),
        (pk.n().clone(), "shares a factor with n"),
    ];
    for (c, why) in cases {
        let err = pk
            .ciphertext_from_integer(c.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains(why) && err.contains(pk.key_id()), "{err}");
    }
    // The same through bytes, and a wrong width.
    let mut bytes = vec![0u8; pk.ciphertext_width()];
    assert!(pk
        .ciphertext_from_le_bytes(&bytes)
        .unwrap_err()
        .to_string()
        .contains("zero"));
    bytes.push(1);
    let err = pk.ciphertext_from_le_bytes(&bytes).unwrap_err().to_string();
    assert!(
        err.contains(&format!("{} bytes", pk.ciphertext_width() + 1)),
        "{err}"
    );
}

#[test]
fn encryption_is_randomised() {
    let pk = key().public_key();
    let a = pk.encrypt(&int(7)).unwrap();
    let b = pk.encrypt(&int(7)).unwrap();
    assert_ne!(a, b);
}
