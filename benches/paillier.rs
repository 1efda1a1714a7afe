//! Paillier primitives at 2048 bits, one core, with a bare GMP `mul + rem mod n²` loop measured in
//! the same run as the reference for homomorphic addition.
//!
//! `cargo bench --bench paillier`; the README lists the figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use cipherlake::paillier::{hazmat, PrivateKey};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rug::Integer;

/// The 2048-bit primes of the python-paillier vectors, with a DJN base.
fn key_2048() -> PrivateKey {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/phe_2048.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let hex = |k: &str| {
        Integer::from_str_radix(v[k].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    let (p, q) = (hex("p"), hex("q"));
    let n = Integer::from(&p * &q);
    let hs = hazmat::djn_base_from_x(&n, &hex("x"));
    hazmat::private_key_from_primes(p, q, Some(hs)).unwrap()
}

fn primitives(c: &mut Criterion) {
    let key = key_2048();
    let pk = key.public_key();
    let plain_key = {
        let (p, q) = hazmat::primes_of(&key);
        hazmat::private_key_from_primes(p.clone(), q.clone(), None).unwrap()
    };
    let m = Integer::from(123_456_789);
    // Warm the fixed-base table outside the measurement.
    let c1 = pk.encrypt(&m).unwrap();
    let c2 = pk.encrypt(&Integer::from(-5)).unwrap();

    let mut g = c.benchmark_group("paillier_2048");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encrypt_djn", |b| {
        b.iter(|| pk.encrypt(black_box(&m)).unwrap())
    });
    g.bench_function("encrypt_r_pow_n", |b| {
        b.iter(|| plain_key.public_key().encrypt(black_box(&m)).unwrap())
    });
    g.bench_function("decrypt_crt", |b| {
        b.iter(|| key.decrypt(black_box(&c1)).unwrap())
    });
    g.bench_function("mul_plain_64bit", |b| {
        let k = Integer::from(0x7fff_ffff_ffff_ffffu64);
        b.iter(|| pk.mul_plain(black_box(&c1), &k))
    });

    // Homomorphic addition against the bare GMP loop: 1,000 additions per iteration each.
    const ADDS: u64 = 1000;
    g.throughput(Throughput::Elements(ADDS));
    g.bench_function("add_1000", |b| {
        b.iter_batched_ref(
            || c1.clone(),
            |acc| {
                for _ in 0..ADDS {
                    pk.add_assign(acc, black_box(&c2));
                }
            },
            BatchSize::SmallInput,
        )
    });
    let n2 = pk.n_squared().clone();
    let x = c2.as_integer().clone();
    g.bench_function("bare_gmp_mul_rem_1000", |b| {
        b.iter_batched_ref(
            || c1.as_integer().clone(),
            |acc| {
                for _ in 0..ADDS {
                    *acc *= black_box(&x);
                    *acc %= &n2;
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The batch paths (the AVX-512 IFMA kernel where the CPU has it, GMP otherwise, as the
/// benchmark's name says) beside GMP's one-by-one paths, in the same run.
fn batches(c: &mut Criterion) {
    let key = key_2048();
    let pk = key.public_key();
    let arith = cipherlake::paillier::arith::kernel();
    println!("batch paths: {arith}");
    let values: Vec<i128> = (0..8).map(|i| i * 1000 - 3).collect();
    let cts = pk.encrypt_many_i128(&values).unwrap();
    let refs: Vec<&cipherlake::paillier::Ciphertext> = cts.iter().collect();
    let m = pk.modulus();
    let bytes: Vec<Vec<u8>> = (0..1024)
        .map(|i| {
            let mut b = vec![0u8; m.width()];
            cts[i % 8].write_le(&mut b);
            b
        })
        .collect();
    let slices: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();

    let mut g = c.benchmark_group("batches_2048");
    g.throughput(Throughput::Elements(8));
    g.bench_function("encrypt_8_batch", |b| {
        b.iter(|| pk.encrypt_many_i128(black_box(&values)).unwrap())
    });
    g.bench_function("encrypt_8_one_by_one", |b| {
        b.iter(|| {
            for v in &values {
                black_box(pk.encrypt_i128(*v).unwrap());
            }
        })
    });
    g.bench_function("decrypt_8_batch", |b| {
        b.iter(|| key.decrypt_raw_many(black_box(&refs)))
    });
    g.bench_function("decrypt_8_one_by_one", |b| {
        b.iter(|| {
            for c in &refs {
                black_box(key.decrypt_raw(c));
            }
        })
    });
    g.throughput(Throughput::Elements(slices.len() as u64));
    g.bench_function("sum_1024_batch", |b| {
        b.iter(|| {
            let mut s = cipherlake::paillier::Sum::new();
            s.add_all_le(m, black_box(&slices)).unwrap();
            s
        })
    });
    g.bench_function("sum_1024_one_by_one", |b| {
        b.iter(|| {
            let mut s = cipherlake::paillier::Sum::new();
            for v in &slices {
                s.add_le(m, black_box(v)).unwrap();
            }
            s
        })
    });
    g.finish();
}

criterion_group!(benches, primitives, batches);
criterion_main!(benches);
