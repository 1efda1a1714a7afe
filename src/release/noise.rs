//! Discrete Laplace noise drawn in shares, for differential privacy under encryption: each of the
//! t releasing hospitals draws one share, encrypts it and adds it to the cell before decryption,
//! so that the total noise is discrete Laplace and no party knows it.
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
//! (The noise round, the budget in the ledger and their use by `partial-decrypt` come next; this
//! module is the sampler and its laws.)

use rand::Rng;
use rand_distr::{Distribution, Gamma, Poisson};

use crate::error::{Error, Result};

/// The discrete Laplace mechanism for one cell, split between `parties`.
#[derive(Clone, Copy, Debug, PartialEq)]
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
        Ok(k as u64)
    }

    /// One party's share of the noise.
    pub fn share<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<i64> {
        let (x, y) = (self.polya(rng)?, self.polya(rng)?);
        Ok(x as i64 - y as i64)
    }

    /// One share from the operating system's CSPRNG.
    pub fn os_share(&self) -> Result<i64> {
        use rand::TryRngCore;
        self.share(&mut rand::rngs::OsRng.unwrap_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Pearson's χ² of `samples` against the mechanism's total noise, over the bins −15..=15 and
    /// the two tails beyond.
    fn chi_square(m: &Mechanism, samples: &[i64]) -> f64 {
        let n = samples.len() as f64;
        let mut counts = std::collections::BTreeMap::new();
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

    /// χ² critical value for 32 degrees of freedom at p = 0.001.
    const CRITICAL: f64 = 62.49;

    #[test]
    fn shares_of_three_parties_sum_to_a_discrete_laplace() {
        let m = Mechanism::new(0.5, 1, 3).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
        let sums: Vec<i64> = (0..60_000)
            .map(|_| (0..3).map(|_| m.share(&mut rng).unwrap()).sum())
            .collect();
        let chi = chi_square(&m, &sums);
        assert!(chi < CRITICAL, "χ² {chi} ≥ {CRITICAL}");
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
        assert!(chi_square(&m, &single) > CRITICAL);
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
