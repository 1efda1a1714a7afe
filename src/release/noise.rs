//! Differential privacy under encryption: discrete Laplace noise drawn in shares by the releasing
//! hospitals, so that no party knows the noise.
//!
//! A share is `X − Y` with `X`, `Y` independent Pólya (negative binomial) draws of shape `1/t` and
//! parameter `α = exp(−ε/Δ)`: `t` such draws sum to a geometric variable with `P(k) = (1 − α) αᵏ`,
//! and the difference of two independent geometric variables is discrete Laplace,
//! `P(z) = (1 − α)/(1 + α) · α^|z|` (Goryczka and Xiong's construction for distributed noise).
//! A Pólya draw is a Poisson draw whose mean is itself a Gamma draw of shape `1/t` and scale
//! `α/(1 − α)`, both from `rand_distr`, fed by the caller's generator (the OS CSPRNG on every
//! user path; a seeded one only in tests).
//!
//! The draws go through floating point: the distribution is discrete Laplace up to the rounding of
//! the Gamma and Poisson samplers, not exactly. docs/SECURITY.md says what that means.
//!
//! The noise round ([`draw`], [`collect`]): before partially decrypting, each releasing hospital
//! writes a noise file: per result cell one encrypted share with a proof that it knows the share's
//! plaintext (bound to the request, the cell and the party: nobody can submit another party's
//! share, or its inverse, as theirs). Each hospital then decrypts `cell · Π shares`, after
//! checking every proof, that every share was drawn for the mechanism its own policy gives the
//! cell, and that its own share (the file it logged) is among them.

use std::collections::{BTreeMap, HashSet};

use rayon::prelude::*;
use rug::Integer;
use serde::{Deserialize, Serialize};

use super::policy::Dp;
use super::verify::CellProvenance;
use crate::paillier::plaintext_proof::{
    encrypt_with_proof, verify_plaintext_proof, PlaintextProof,
};
use crate::paillier::wire::b64_int;
use crate::paillier::{Ciphertext, PublicKey};

use rand::Rng;
use rand_distr::{Distribution, Gamma, Poisson};

use crate::error::{Error, Result};

/// The discrete Laplace mechanism for one cell, split between `parties`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mechanism {
    /// Privacy loss of one release (ε > 0).
    pub epsilon: f64,
    /// How much one patient can change the cell (Δ ≥ 1, in the cell's integer units).
    pub sensitivity: u64,
    /// How many parties each add a share (t ≥ 1).
    pub parties: u32,
}

impl Mechanism {
    /// Checks the parameters.
    pub fn new(epsilon: f64, sensitivity: u64, parties: u32) -> Result<Self> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(Error::Invalid(format!(
                "epsilon {epsilon} must be a positive number"
            )));
        }
        if sensitivity == 0 || parties == 0 {
            return Err(Error::Invalid(
                "the sensitivity and the number of parties must be at least 1".into(),
            ));
        }
        // The draws go through f64 and the shares through i64: a scale Δ/ε beyond 10¹² would
        // leave both.
        if sensitivity as f64 / epsilon > 1e12 {
            return Err(Error::Invalid(format!(
                "a noise scale Δ/ε of {} is beyond 10¹²: raise ε or lower the sensitivity",
                sensitivity as f64 / epsilon
            )));
        }
        Ok(Mechanism {
            epsilon,
            sensitivity,
            parties,
        })
    }

    /// α = exp(−ε/Δ), the parameter of the total noise.
    pub fn alpha(&self) -> f64 {
        (-self.epsilon / self.sensitivity as f64).exp()
    }

    /// P(total noise = z).
    pub fn pmf(&self, z: i64) -> f64 {
        let a = self.alpha();
        (1.0 - a) / (1.0 + a) * a.powi(z.unsigned_abs().min(i32::MAX as u64) as i32)
    }

    /// The variance of the total noise, 2α/(1 − α)².
    pub fn variance(&self) -> f64 {
        let a = self.alpha();
        2.0 * a / ((1.0 - a) * (1.0 - a))
    }

    fn polya<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<u64> {
        let a = self.alpha();
        let gamma = Gamma::new(1.0 / f64::from(self.parties), a / (1.0 - a))
            .map_err(|e| Error::Invalid(format!("noise parameters: {e}")))?;
        let mean: f64 = gamma.sample(rng);
        if mean <= 0.0 {
            return Ok(0);
        }
        let poisson =
            Poisson::new(mean).map_err(|e| Error::Invalid(format!("noise parameters: {e}")))?;
        let k: f64 = poisson.sample(rng);
        if !(0.0..4.0e18).contains(&k) {
            return Err(Error::Invalid(format!(
                "a noise draw of {k} is out of range"
            )));
        }
        Ok(k as u64)
    }

    /// One party's share of the noise.
    pub fn share<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<i64> {
        let (x, y) = (self.polya(rng)?, self.polya(rng)?);
        // Both below 4·10¹⁸ < 2⁶³: the conversions and the difference cannot overflow.
        Ok(x as i64 - y as i64)
    }

    /// One share from the operating system's CSPRNG.
    pub fn os_share(&self) -> Result<i64> {
        use rand::TryRngCore;
        self.share(&mut rand::rngs::OsRng.unwrap_err())
    }
}

impl Mechanism {
    /// The bytes that name the mechanism in proofs: its kind and exact parameters.
    pub fn descriptor(&self) -> Vec<u8> {
        format!(
            "discrete_laplace:{:016x}:{}:{}",
            self.epsilon.to_bits(),
            self.sensitivity,
            self.parties
        )
        .into_bytes()
    }

    /// The mechanism in words, for people: ε, sensitivity Δ (in the column's units, with
    /// `scale` decimal digits) and the Laplace scale Δ/ε it corresponds to.
    pub fn describe(&self, scale: u32) -> String {
        let units = 10f64.powi(scale as i32);
        let delta = self.sensitivity as f64 / units;
        format!(
            "discrete Laplace, ε {} per cell, sensitivity {delta}, scale Δ/ε = {} (standard deviation {:.3}), in {} share(s)",
            self.epsilon,
            delta / self.epsilon,
            self.variance().sqrt() / units,
            self.parties
        )
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ε {}, sensitivity {} (in the cell's units), {} share(s)",
            self.epsilon, self.sensitivity, self.parties
        )
    }
}

/// The mechanism a hospital's `dp` policy gives `cell`, shared between `parties` hospitals (the
/// key's threshold); the reason to refuse it otherwise.
pub fn mechanism_for(
    dp: &Dp,
    cell: &CellProvenance,
    parties: u32,
) -> std::result::Result<Mechanism, String> {
    let at = format!("row {}, column `{}`", cell.row + 1, cell.column);
    if !cell.plain {
        return Err(format!(
            "{at}: under differential privacy only SUM, COUNT and AVG of a lake column itself are released (here the values of `{}` pass through arithmetic first), since sensitivity is declared per column",
            cell.measure
        ));
    }
    let sensitivity = if cell.count {
        1
    } else {
        let Some(&s) = dp.sensitivity.get(&cell.measure) else {
            return Err(format!(
                "{at}: the policy declares no dp.sensitivity for `{}` (the most one patient can add to it)",
                cell.measure
            ));
        };
        let units = (s * 10f64.powi(cell.scale as i32)).ceil();
        if !(1.0..9.0e15).contains(&units) {
            return Err(format!(
                "{at}: dp.sensitivity {s} of `{}` is out of range at {} decimal digit(s)",
                cell.measure, cell.scale
            ));
        }
        units as u64
    };
    Mechanism::new(dp.epsilon, sensitivity, parties).map_err(|e| format!("{at}: {e}"))
}

/// χ² critical value for the 32 degrees of freedom of [`chi_square`] at p = 0.001.
pub const CHI_SQUARE_CRITICAL: f64 = 62.49;

/// Pearson's χ² of `samples` against the total noise of `m`, over the bins −15..=15 and the two
/// tails beyond (32 degrees of freedom): the goodness-of-fit test of the tests and of
/// `cipherlake bench noise`.
pub fn chi_square(m: &Mechanism, samples: &[i64]) -> f64 {
    let n = samples.len() as f64;
    let mut counts = BTreeMap::new();
    for &z in samples {
        *counts.entry(z.clamp(-16, 16)).or_insert(0u64) += 1;
    }
    let tail: f64 = 1.0 - (-15..=15).map(|z| m.pmf(z)).sum::<f64>();
    (-16i64..=16)
        .map(|z| {
            let p = if z.abs() == 16 { tail / 2.0 } else { m.pmf(z) };
            let e = p * n;
            let o = *counts.get(&z).unwrap_or(&0) as f64;
            (o - e) * (o - e) / e
        })
        .sum()
}

/// `kind` of a noise file.
pub const NOISE_KIND: &str = "cipherlake.noise";
/// The noise file format this build writes and reads.
pub const NOISE_VERSION: u32 = 1;

/// One hospital's encrypted noise shares for every encrypted cell of one result.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseFile {
    /// Always [`NOISE_KIND`].
    pub kind: String,
    /// Always [`NOISE_VERSION`].
    pub version: u32,
    /// The threshold key's id.
    pub key_id: String,
    /// The party that drew the shares.
    pub party: String,
    /// Its index (1-based).
    pub index: usize,
    /// The request the shares are for.
    pub request_id: String,
    /// Lowercase hex SHA-256 of the result file.
    pub result_sha256: String,
    /// One share per encrypted cell.
    pub cells: Vec<NoiseCell>,
}

/// One encrypted noise share.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseCell {
    /// Result column.
    pub column: String,
    /// 0-based result row.
    pub row: u64,
    /// What the share was drawn for.
    pub mechanism: Mechanism,
    /// The encrypted share (base64url).
    #[serde(with = "b64_int")]
    pub share: Integer,
    /// That the party knows the share's plaintext.
    pub proof: PlaintextProof,
}

/// The noise a cell is decrypted with: the product of the releasing hospitals' shares, or the
/// noise of an earlier release of the same rows (`pinned`, its ledger entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellNoise {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The encrypted noise (base64url).
    #[serde(with = "b64_int")]
    pub noise: Integer,
    /// The ledger entry whose noise this is, for a cell released before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<u64>,
}

impl CellNoise {
    /// What binds it into a partial decryption's proof.
    pub fn descriptor(&self) -> Vec<u8> {
        let mut b = self.mechanism.descriptor();
        if let Some(seq) = self.pinned {
            b.extend_from_slice(format!(":pinned:{seq}").as_bytes());
        }
        b
    }
}

/// Each cell's noise, by (result column, 0-based row).
pub type NoiseMap = BTreeMap<(String, u64), CellNoise>;

/// What a share's proof is bound to.
fn context(
    request_id: &str,
    result_sha256: &str,
    party: &str,
    index: usize,
    column: &str,
    row: u64,
    m: &Mechanism,
) -> Vec<u8> {
    let mut b = b"cipherlake.noise_share.v1\0".to_vec();
    for part in [request_id, result_sha256, party, column] {
        b.extend_from_slice(&(part.len() as u64).to_be_bytes());
        b.extend_from_slice(part.as_bytes());
    }
    b.extend_from_slice(&(index as u64).to_be_bytes());
    b.extend_from_slice(&row.to_be_bytes());
    b.extend_from_slice(&m.descriptor());
    b
}

/// Party `party` (index `index`) draws, from the OS CSPRNG, one share for each cell under its
/// mechanism, and encrypts it with its proof.
pub fn draw(
    pk: &PublicKey,
    party: &str,
    index: usize,
    request_id: &str,
    result_sha256: &str,
    cells: &[(&CellProvenance, Mechanism)],
) -> Result<NoiseFile> {
    let cells = cells
        .par_iter()
        .map(|(c, m)| {
            let z = Integer::from(m.os_share()?);
            let ctx = context(request_id, result_sha256, party, index, &c.column, c.row, m);
            let (share, proof) = encrypt_with_proof(pk, &z, &ctx)?;
            Ok(NoiseCell {
                column: c.column.clone(),
                row: c.row,
                mechanism: *m,
                share: share.into_integer(),
                proof,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(NoiseFile {
        kind: NOISE_KIND.into(),
        version: NOISE_VERSION,
        key_id: pk.key_id().into(),
        party: party.into(),
        index,
        request_id: request_id.into(),
        result_sha256: result_sha256.into(),
        cells,
    })
}

/// Checks the noise files of one request (each named, with its file's SHA-256) and multiplies
/// their shares per cell. `own` is this party and the SHA-256 of the noise file it drew for
/// this request (from its audit log); `want` is the mechanism of each cell under its policy.
pub fn collect(
    pk: &PublicKey,
    own: (&str, &str),
    request_id: &str,
    result_sha256: &str,
    files: &[(String, String, NoiseFile)],
    want: &BTreeMap<(String, u64), Mechanism>,
) -> Result<BTreeMap<(String, u64), Ciphertext>> {
    let th = crate::paillier::threshold::params(pk)?;
    let bad = |why: String| Error::Data(why);
    let mut parties = HashSet::new();
    let mut seen_shares = HashSet::new();
    let mut product: BTreeMap<(String, u64), Integer> = BTreeMap::new();
    let mut own_found = false;
    for (name, sha, f) in files {
        // The party as the file claims it, quoted safely until it is checked against the key.
        let who = format!(
            "noise file {name} (party {})",
            crate::error::preview(&f.party)
        );
        if f.kind != NOISE_KIND || f.version != NOISE_VERSION {
            return Err(bad(format!(
                "{who}: not a noise file of version {NOISE_VERSION}"
            )));
        }
        if f.key_id != pk.key_id() {
            return Err(Error::KeyMismatch {
                expected: pk.key_id().into(),
                found: f.key_id.clone(),
                context: format!(" ({who} is for another key)"),
            });
        }
        if f.request_id != request_id || f.result_sha256 != result_sha256 {
            return Err(bad(format!(
                "{who} was drawn for another request or result (request {})",
                crate::error::preview(&f.request_id)
            )));
        }
        if th.index_of(&f.party) != Some(f.index) {
            return Err(bad(format!("{who}: not one of this key's parties")));
        }
        if !parties.insert(f.party.clone()) {
            return Err(bad(format!("{who}: party {} gives noise twice", f.party)));
        }
        if f.party == own.0 {
            if sha != own.1 {
                return Err(bad(format!(
                    "{who}: not the noise file this party drew for the request (its audit log records another): its own share must be in what it decrypts"
                )));
            }
            own_found = true;
        }
        let cells: BTreeMap<(&str, u64), &NoiseCell> = f
            .cells
            .iter()
            .map(|c| ((c.column.as_str(), c.row), c))
            .collect();
        if cells.len() != f.cells.len() || cells.len() != want.len() {
            return Err(bad(format!(
                "{who}: {} share(s) for {} encrypted cell(s)",
                f.cells.len(),
                want.len()
            )));
        }
        let checked = want
            .par_iter()
            .map(|((column, row), m)| {
                let at = format!("{who}: row {}, column `{column}`", row + 1);
                let c = cells
                    .get(&(column.as_str(), *row))
                    .ok_or_else(|| bad(format!("{at}: no share")))?;
                if c.mechanism != *m {
                    return Err(bad(format!(
                        "{at}: the share was drawn for {}, this hospital's policy gives the cell {m}",
                        c.mechanism
                    )));
                }
                let share = pk
                    .ciphertext_from_integer(c.share.clone())
                    .map_err(|e| bad(format!("{at}: {e}")))?;
                let ctx = context(request_id, result_sha256, &f.party, f.index, column, *row, m);
                if !verify_plaintext_proof(pk, &share, &c.proof, &ctx) {
                    return Err(bad(format!(
                        "{at}: the proof that party {} knows its share does not verify (a share copied from another party, inverted or edited)",
                        f.party
                    )));
                }
                Ok(((column.clone(), *row), share))
            })
            .collect::<Result<Vec<_>>>()?;
        for (key, share) in checked {
            if !seen_shares.insert(share.as_integer().clone()) {
                return Err(bad(format!(
                    "{who}: row {}, column `{}`: a share given twice",
                    key.1 + 1,
                    key.0
                )));
            }
            let n2 = pk.n_squared();
            let acc = product.entry(key).or_insert_with(|| Integer::from(1));
            *acc *= share.as_integer();
            *acc %= n2;
        }
    }
    if !own_found {
        return Err(bad(format!(
            "no noise file of party {} among the {} given: its own share must be in what it decrypts",
            own.0,
            files.len()
        )));
    }
    if parties.len() < th.needed {
        return Err(bad(format!(
            "noise from {} part{} ({}), fewer than the {} needed to decrypt: the noise would be smaller than the policy's",
            parties.len(),
            if parties.len() == 1 { "y" } else { "ies" },
            parties.iter().cloned().collect::<Vec<_>>().join(", "),
            th.needed
        )));
    }
    product
        .into_iter()
        .map(|(k, v)| Ok((k, pk.ciphertext_from_integer(v)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shares_of_three_parties_sum_to_a_discrete_laplace() {
        let m = Mechanism::new(0.5, 1, 3).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
        let sums: Vec<i64> = (0..60_000)
            .map(|_| (0..3).map(|_| m.share(&mut rng).unwrap()).sum())
            .collect();
        let chi = chi_square(&m, &sums);
        assert!(
            chi < CHI_SQUARE_CRITICAL,
            "χ² {chi} ≥ {CHI_SQUARE_CRITICAL}"
        );
        let mean = sums.iter().sum::<i64>() as f64 / sums.len() as f64;
        let var = sums.iter().map(|&z| (z as f64 - mean).powi(2)).sum::<f64>() / sums.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!(
            (var / m.variance() - 1.0).abs() < 0.05,
            "variance {var} vs {}",
            m.variance()
        );
        // The test has power: one party's share alone is not the total's distribution.
        let single: Vec<i64> = (0..60_000).map(|_| m.share(&mut rng).unwrap()).collect();
        assert!(chi_square(&m, &single) > CHI_SQUARE_CRITICAL);
    }

    #[test]
    fn parameters_are_checked_and_os_shares_differ() {
        assert!(Mechanism::new(0.0, 1, 3).is_err());
        assert!(Mechanism::new(f64::NAN, 1, 3).is_err());
        assert!(Mechanism::new(1.0, 0, 3).is_err());
        assert!(Mechanism::new(1.0, 1, 0).is_err());
        let m = Mechanism::new(0.1, 1, 2).unwrap();
        let draws: Vec<i64> = (0..64).map(|_| m.os_share().unwrap()).collect();
        // With a scale of ~10, 64 draws from the OS all equal would be a broken generator.
        assert!(draws.iter().any(|&d| d != draws[0]), "{draws:?}");
        assert!((m.pmf(0) - (1.0 - m.alpha()) / (1.0 + m.alpha())).abs() < 1e-12);
    }
}
