//! Synthetic hospital admissions for demos, tests and benchmarks: realistic shapes (skewed costs
//! and lengths of stay, an age mix, a diagnosis mix, a diabetic flag that depends on both), fully
//! determined by a seed. Not randomness for cryptography: that comes from the OS only.

use std::io::Write;

use std::path::Path;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{CsvReadOptions, SessionContext};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// The CSV header of a synthetic admissions file.
pub const HEADER: &str = "region,year,age_band,diagnosis,cost,length_of_stay,diabetic";

/// The Arrow schema of the plaintext CSV (cost as a scale-2 decimal, as it is encrypted).
pub fn schema() -> Schema {
    let types = [
        DataType::Utf8,
        DataType::Int64,
        DataType::Utf8,
        DataType::Utf8,
        DataType::Decimal128(38, 2),
        DataType::Int64,
        DataType::Boolean,
    ];
    Schema::new(
        HEADER
            .split(',')
            .zip(types)
            .map(|(n, t)| Field::new(n, t, true))
            .collect::<Vec<_>>(),
    )
}

/// A DataFusion session over the plaintext admissions under `dir` (hive-partitioned
/// `hospital=…/*.csv`), for comparisons: the same SQL as on the encrypted lake gives the same
/// answer. `admissions` is a view in which the diabetic flag is a 0/1 BIGINT, because DataFusion's
/// own SUM/AVG do not take booleans, while cipherlake's SUM/AVG of an encrypted flag count it.
pub async fn plaintext_session(dir: &Path) -> datafusion::error::Result<SessionContext> {
    let ctx = SessionContext::new();
    let schema = schema();
    let opts = CsvReadOptions::new()
        .schema(&schema)
        .file_extension(".csv")
        .table_partition_cols(vec![("hospital".into(), DataType::Utf8)]);
    ctx.register_csv("admissions_csv", dir.to_str().unwrap_or_default(), opts)
        .await?;
    ctx.sql(
        "CREATE VIEW admissions AS SELECT region, year, age_band, diagnosis, cost, length_of_stay, \
         CAST(diabetic AS BIGINT) AS diabetic, hospital FROM admissions_csv",
    )
    .await?;
    Ok(ctx)
}

/// Age bands and their weights.
const AGE_BANDS: [(&str, f64); 5] = [
    ("0-17", 0.12),
    ("18-44", 0.25),
    ("45-64", 0.28),
    ("65-74", 0.17),
    ("75+", 0.18),
];

/// ICD-10 chapters of the diagnoses used: (code, weight, median cost, median stay in days).
const DIAGNOSES: [(&str, f64, f64, f64); 8] = [
    ("E11", 0.12, 3_800.0, 4.0),  // type 2 diabetes
    ("I10", 0.15, 2_600.0, 2.0),  // hypertension
    ("I21", 0.07, 14_500.0, 6.0), // myocardial infarction
    ("J45", 0.10, 2_100.0, 2.0),  // asthma
    ("C50", 0.06, 18_000.0, 5.0), // breast cancer
    ("O80", 0.14, 4_200.0, 2.0),  // delivery
    ("S72", 0.08, 11_000.0, 9.0), // hip fracture
    ("N18", 0.28, 5_500.0, 5.0),  // chronic kidney disease
];

/// The regions a hospital's patients come from (two per hospital, overlapping neighbours).
pub fn regions_of(hospital_index: usize) -> [&'static str; 2] {
    const REGIONS: [&str; 6] = ["north", "south", "east", "west", "central", "coast"];
    [
        REGIONS[hospital_index % 6],
        REGIONS[(hospital_index + 1) % 6],
    ]
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T], weight: impl Fn(&T) -> f64) -> &'a T {
    let total: f64 = items.iter().map(&weight).sum();
    let mut x = rng.random::<f64>() * total;
    for it in items {
        x -= weight(it);
        if x <= 0.0 {
            return it;
        }
    }
    &items[items.len() - 1]
}

/// A standard normal variate (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Writes `rows` synthetic admissions of hospital number `hospital_index` to `path` (CSV with
/// [`HEADER`]), from `seed`. About 1% of costs and stays are missing (empty), as in real extracts.
pub fn write_admissions(path: &Path, hospital_index: usize, rows: usize, seed: u64) -> Result<()> {
    let mut rng =
        StdRng::seed_from_u64(seed ^ (hospital_index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    let io = |e| Error::io(path, e);
    writeln!(out, "{HEADER}").map_err(io)?;
    let regions = regions_of(hospital_index);
    for _ in 0..rows {
        let region = regions[usize::from(rng.random::<f64>() < 0.35)];
        let year = 2021 + rng.random_range(0..4);
        let (age, _) = *pick(&mut rng, &AGE_BANDS, |a| a.1);
        let old = matches!(age, "65-74" | "75+");
        let (dx, _, median_cost, median_stay) = *pick(&mut rng, &DIAGNOSES, |d| {
            // Deliveries are for adults under 45; hip fractures mostly for the old.
            match (d.0, age) {
                ("O80", "18-44") => d.1 * 3.0,
                ("O80", _) => 0.0,
                ("S72", "65-74" | "75+") => d.1 * 3.0,
                _ => d.1,
            }
        });
        let age_factor = if old { 1.25 } else { 1.0 };
        let cost = median_cost * age_factor * (0.6 * normal(&mut rng)).exp();
        let stay = (median_stay * age_factor * (0.7 * normal(&mut rng)).exp())
            .round()
            .max(0.0) as i64;
        let p_diabetic = if dx == "E11" {
            1.0
        } else if old {
            0.24
        } else {
            0.08
        };
        let diabetic = rng.random::<f64>() < p_diabetic;
        let cost = if rng.random::<f64>() < 0.01 {
            String::new()
        } else {
            format!("{cost:.2}")
        };
        let stay = if rng.random::<f64>() < 0.01 {
            String::new()
        } else {
            stay.to_string()
        };
        writeln!(out, "{region},{year},{age},{dx},{cost},{stay},{diabetic}").map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_matches_header() {
        assert_eq!(schema().fields().len(), HEADER.split(',').count());
    }

    #[test]
    fn deterministic_and_shaped() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        write_admissions(&a, 0, 500, 7).unwrap();
        write_admissions(&b, 0, 500, 7).unwrap();
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text, std::fs::read_to_string(&b).unwrap());
        assert_eq!(text.lines().count(), 501);
        assert!(text.lines().skip(1).all(|l| l.split(',').count() == 7));
        assert!(text.contains(",E11,") && text.contains(",true"));
    }
}
