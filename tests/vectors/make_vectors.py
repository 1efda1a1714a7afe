#!/usr/bin/env python3
"""Known-answer vectors from python-paillier (phe 1.5.0), checked by tests/vectors.rs.

Run once with `pip install phe==1.5.0`; the output, phe_2048.json, is committed so CI needs no
Python. It records:
  - raw: phe's raw_encrypt(m, r_value=r) for fixed (n, m, r): our encrypt_with_r must give the
    same integer, bit for bit (g = n + 1 in both);
  - djn: DJN ciphertexts (1 + m·n)·hs^a mod n² (the nude part from phe's raw_encrypt(m, 1)),
    each decrypted by phe's private key for the same p, q: our DJN encryption with the same a
    must give the same integer, so our DJN ciphertexts decrypt with phe;
  - signed: phe's signed decoding (max_int = n // 3 - 1) of each plaintext;
  - le_hex: the on-disk bytes (512-byte little-endian) of each ciphertext.
"""
import json
import random

import phe
from phe import paillier
from phe.util import getprimeover

rng = random.SystemRandom()

while True:
    p = getprimeover(1024)
    q = getprimeover(1024)
    n = p * q
    if p != q and n.bit_length() == 2048:
        break
pub = paillier.PaillierPublicKey(n)
priv = paillier.PaillierPrivateKey(pub, p, q)
n2 = n * n
width = 512


def unit():
    while True:
        r = rng.randrange(1, n)
        if phe.util.invert(r, n):  # raises if not invertible
            return r


def signed(m_raw):
    enc = paillier.EncryptedNumber(pub, pub.raw_encrypt(m_raw, r_value=1), exponent=0)
    return priv.decrypt(enc)


plaintexts = [0, 1, 42, 2**64 + 5, pub.max_int, n - 1, n - 123456789, n - pub.max_int,
              rng.randrange(0, pub.max_int)]

raw = []
for m in plaintexts:
    r = unit()
    c = pub.raw_encrypt(m, r_value=r)
    assert priv.raw_decrypt(c) == m
    raw.append({"m": hex(m), "r": hex(r), "c": hex(c), "signed": str(signed(m)),
                "le_hex": c.to_bytes(width, "little").hex()})

x = unit()
h = (-x * x) % n
hs = pow(h, n, n2)
djn = []
for m in plaintexts:
    a = rng.getrandbits(1024)
    c = pub.raw_encrypt(m, r_value=1) * pow(hs, a, n2) % n2
    assert priv.raw_decrypt(c) == m, "phe must decrypt the DJN ciphertext"
    djn.append({"m": hex(m), "a": hex(a), "c": hex(c), "signed": str(signed(m))})

out = {
    "generator": "tests/vectors/make_vectors.py, python-paillier (phe) " + phe.__version__,
    "p": hex(p), "q": hex(q), "n": hex(n), "x": hex(x), "hs": hex(hs),
    "max_int": hex(pub.max_int),
    "raw": raw,
    "djn": djn,
}
with open("phe_2048.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("wrote phe_2048.json:", len(raw), "raw and", len(djn), "DJN vectors")
