//! Any SQL the cloud may send is either released as an honest aggregate over at least k distinct
//! lake rows, or refused (issue 13). Queries are generated from honest shapes (a filter, a
//! grouping, SUM / SUM of a public constant times a column / AVG / a count of a flag) and from
//! twists that could single out a patient (a weight from a column or a CASE, a flag in
//! arithmetic, a row repeated by a UNION ALL, a self-join). Each runs the way an attacker would
//! send it: the cloud's tool is bypassed (the result is computed without `--request` and the
//! request is written by hand), two hospitals re-verify it and the requester combines.
//!
//! The oracle is independent of cipherlake: the lake's plaintext rows are known to the test, and
//! each query has an honest reading (the same filter and grouping, every row once with weight 1
//! or the query's constant). A released cell must equal that reading exactly, and come from at
//! least k rows; honest shapes whose groups all have k rows must be released.

use std::collections::BTreeMap;

use cipherlake::release::Request;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::request::{lake, partial, query, reissue_for};
use crate::util::Dir;

const K: u64 = 11;

/// One lake row, as `request::lake` writes it.
struct Row {
    patient: i64,
    north: bool,
    cents: i64,
    diabetic: bool,
}

fn rows() -> Vec<Row> {
    let mut out = Vec::new();
    for i in 0..3i64 {
        for r in 0..30 + 4 * i {
            out.push(Row {
                patient: 1000 * i + r,
                north: r % 2 == 0,
                cents: (100 + r) * 100 + 50,
                diabetic: r % 3 == 0,
            });
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Agg {
    /// `SUM(cost * k)` (`SUM(cost)` for 1).
    Sum(i64),
    /// `SUM(diabetic)`: a count.
    Flag,
    Avg,
    /// Twists; honest reading: `SUM(cost)`.
    SumTimesPatient,
    SumCase(i64),
    /// Twists; honest reading: `SUM(diabetic)`.
    FlagTimesOne,
    FlagPlusZero,
}

impl Agg {
    fn sql(&self) -> String {
        match self {
            Agg::Sum(1) => "SUM(cost)".into(),
            Agg::Sum(k) => format!("SUM(cost * {k})"),
            Agg::Flag => "SUM(diabetic)".into(),
            Agg::Avg => "AVG(cost)".into(),
            Agg::SumTimesPatient => "SUM(cost * patient_id)".into(),
            Agg::SumCase(p) => format!("SUM(cost * CASE WHEN patient_id = {p} THEN 1 ELSE 0 END)"),
            Agg::FlagTimesOne => "SUM(diabetic * 1)".into(),
            Agg::FlagPlusZero => "SUM(diabetic + 0)".into(),
        }
    }

    fn honest(&self) -> bool {
        matches!(self, Agg::Sum(_) | Agg::Flag | Agg::Avg)
    }
}

#[derive(Clone, Debug)]
enum Filter {
    None,
    Lt(i64),
    Eq(i64),
    North,
    Mod(i64, i64),
    Between(i64, i64),
}

impl Filter {
    fn sql(&self) -> String {
        match self {
            Filter::None => String::new(),
            Filter::Lt(p) => format!(" WHERE patient_id < {p}"),
            Filter::Eq(p) => format!(" WHERE patient_id = {p}"),
            Filter::North => " WHERE region = 'north'".into(),
            Filter::Mod(m, r) => format!(" WHERE patient_id % {m} = {r}"),
            Filter::Between(a, b) => format!(" WHERE patient_id BETWEEN {a} AND {b}"),
        }
    }

    fn keeps(&self, r: &Row) -> bool {
        match *self {
            Filter::None => true,
            Filter::Lt(p) => r.patient < p,
            Filter::Eq(p) => r.patient == p,
            Filter::North => r.north,
            Filter::Mod(m, k) => r.patient % m == k,
            Filter::Between(a, b) => (a..=b).contains(&r.patient),
        }
    }
}

#[derive(Clone, Debug)]
enum Group {
    None,
    Region,
    Site,
    Patient,
}

impl Group {
    fn sql(&self) -> Option<&'static str> {
        match self {
            Group::None => None,
            Group::Region => Some("region"),
            Group::Site => Some("patient_id / 1000"),
            Group::Patient => Some("patient_id"),
        }
    }

    fn key(&self, r: &Row) -> String {
        match self {
            Group::None => String::new(),
            Group::Region => if r.north { "north" } else { "south" }.into(),
            Group::Site => (r.patient / 1000).to_string(),
            Group::Patient => r.patient.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
enum Source {
    Adm,
    /// Twist: one patient's row twice.
    DupUnion(i64),
    /// Each row once, through a join on a unique key.
    KeyJoin,
}

impl Source {
    fn sql(&self) -> String {
        match self {
            Source::Adm => "adm".into(),
            Source::DupUnion(p) => format!(
                "(SELECT * FROM adm UNION ALL SELECT * FROM adm WHERE patient_id = {p}) AS t"
            ),
            Source::KeyJoin => "(SELECT adm.* FROM adm JOIN (SELECT DISTINCT patient_id AS pid FROM adm) d ON adm.patient_id = d.pid) AS t".into(),
        }
    }
}

#[derive(Clone, Debug)]
struct Query {
    aggs: Vec<Agg>,
    filter: Filter,
    group: Group,
    source: Source,
}

impl Query {
    fn sql(&self) -> String {
        let aggs: Vec<String> = self
            .aggs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{} AS x{i}", a.sql()))
            .collect();
        let mut s = String::from("SELECT ");
        if let Some(g) = self.group.sql() {
            s.push_str(&format!("{g} AS g, "));
        }
        s.push_str(&format!(
            "{}, COUNT(*) AS n FROM {}{}",
            aggs.join(", "),
            self.source.sql(),
            self.filter.sql()
        ));
        if let Some(g) = self.group.sql() {
            s.push_str(&format!(" GROUP BY {g} ORDER BY g"));
        }
        s
    }

    fn honest(&self) -> bool {
        matches!(self.source, Source::Adm) && self.aggs.iter().all(Agg::honest)
    }

    /// The honest reading: per group (in key order), the rows that match, once each.
    fn groups<'a>(&self, rows: &'a [Row]) -> BTreeMap<String, Vec<&'a Row>> {
        let mut g: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
        for r in rows.iter().filter(|r| self.filter.keeps(r)) {
            g.entry(self.group.key(r)).or_default().push(r);
        }
        g
    }
}

fn patient() -> impl Strategy<Value = i64> {
    prop_oneof![0..34i64, 1000..1034i64, 2000..2038i64]
}

fn agg() -> impl Strategy<Value = Agg> {
    prop_oneof![
        6 => prop_oneof![Just(1i64), Just(2), Just(3), Just(-1)].prop_map(Agg::Sum),
        3 => Just(Agg::Flag),
        3 => Just(Agg::Avg),
        1 => Just(Agg::SumTimesPatient),
        1 => patient().prop_map(Agg::SumCase),
        1 => Just(Agg::FlagTimesOne),
        1 => Just(Agg::FlagPlusZero),
    ]
}

fn queries() -> impl Strategy<Value = Query> {
    let filter = prop_oneof![
        3 => Just(Filter::None),
        2 => (0..2100i64).prop_map(Filter::Lt),
        1 => patient().prop_map(Filter::Eq),
        1 => Just(Filter::North),
        1 => (2..5i64).prop_flat_map(|m| (Just(m), 0..m)).prop_map(|(m, r)| Filter::Mod(m, r)),
        1 => (patient(), 0..40i64).prop_map(|(a, w)| Filter::Between(a, a + w)),
    ];
    let group = prop_oneof![
        2 => Just(Group::None),
        2 => Just(Group::Region),
        2 => Just(Group::Site),
        1 => Just(Group::Patient),
    ];
    let source = prop_oneof![
        6 => Just(Source::Adm),
        1 => patient().prop_map(Source::DupUnion),
        1 => Just(Source::KeyJoin),
    ];
    (
        proptest::collection::vec(agg(), 1..3),
        filter,
        group,
        source,
    )
        .prop_map(|(aggs, filter, group, source)| Query {
            aggs,
            filter,
            group,
            source,
        })
}

/// A decimal of the CSV output as hundredths (it has at most 2 places that are not zero).
fn cents(s: &str) -> Option<i64> {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let (two, rest) = frac.split_at(frac.len().min(2));
    if !rest.bytes().all(|b| b == b'0') {
        return None;
    }
    let v = int.parse::<i64>().ok()? * 100 + format!("{two:0<2}").parse::<i64>().ok()?;
    Some(if neg { -v } else { v })
}

/// Checks one released result (CSV) against the honest reading.
fn check_release(q: &Query, csv: &str, rows: &[Row]) -> Result<(), TestCaseError> {
    let groups = q.groups(rows);
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default();
    let got: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let keyed = q.group.sql().is_some();
    if !keyed && groups.is_empty() {
        // No rows at all: one row of NULL aggregates and a count of 0 is the only honest answer.
        prop_assert_eq!(got.len(), 1, "{}", csv);
        prop_assert!(
            got[0][..q.aggs.len()].iter().all(|v| v.is_empty()),
            "{}",
            csv
        );
        return Ok(());
    }
    prop_assert_eq!(got.len(), groups.len(), "groups of {}:\n{}", header, csv);
    for (cells, (key, members)) in got.iter().zip(&groups) {
        let cells = if keyed {
            prop_assert_eq!(cells[0], key.as_str());
            &cells[1..]
        } else {
            &cells[..]
        };
        let n = members.len() as u64;
        prop_assert!(
            n >= K,
            "a released cell from {} rows (group {:?}):\n{}",
            n,
            key,
            csv
        );
        prop_assert_eq!(cells[q.aggs.len()].to_string(), n.to_string());
        let sum: i64 = members.iter().map(|r| r.cents).sum();
        let flags = members.iter().filter(|r| r.diabetic).count() as u64;
        for (a, v) in q.aggs.iter().zip(cells.iter()) {
            match a {
                Agg::Sum(k) => prop_assert_eq!(cents(v), Some(sum * k), "{:?} in {}", a, csv),
                Agg::SumTimesPatient | Agg::SumCase(_) => {
                    prop_assert_eq!(
                        cents(v),
                        Some(sum),
                        "{:?} released unlike its honest reading",
                        a
                    )
                }
                Agg::Flag | Agg::FlagTimesOne | Agg::FlagPlusZero => {
                    // A count of 1..k-1 is suppressed (empty); any other is exact.
                    if (1..K).contains(&flags) {
                        prop_assert_eq!(*v, "", "count {} not suppressed in {}", flags, csv);
                    } else {
                        prop_assert_eq!(v.to_string(), flags.to_string(), "{:?} in {}", a, csv);
                    }
                }
                Agg::Avg => {
                    let want = sum as f64 / 100.0 / n as f64;
                    let got: f64 = v
                        .parse()
                        .map_err(|_| TestCaseError::fail(format!("AVG `{v}`")))?;
                    prop_assert!(
                        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                        "AVG {} vs {}",
                        got,
                        want
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn any_sql_is_released_as_an_honest_aggregate_over_k_rows_or_refused() {
    let dir = Dir::with_keys();
    let id = lake(&dir);
    let rows = rows();
    // The cloud's honest request, re-issued for each query as an attacker would.
    query(
        &dir,
        "SELECT SUM(cost) AS t FROM adm",
        "r.parquet",
        "request.json",
    )
    .ok();
    let template = Request::load(&dir.path("request.json")).unwrap();
    let cases = std::env::var("CIPHERLAKE_SQL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let released = std::cell::Cell::new(0u32);
    let refused = std::cell::Cell::new(0u32);
    runner
        .run(&queries(), |q| {
            let sql = q.sql();
            // The cloud computes the result (without its own tool's release checks).
            let cloud = dir.query(
                "keys/public.json",
                "adm=lake",
                &sql,
                &["--output", "r.parquet", "-q", "--force"],
            );
            if !cloud.0.status.success() {
                // SQL cipherlake cannot run at all is refused before any hospital sees it.
                prop_assert!(
                    !q.honest(),
                    "honest SQL failed in the cloud: {}\n{}",
                    sql,
                    cloud.stderr()
                );
                refused.set(refused.get() + 1);
                return Ok(());
            }
            let mut r = template.clone();
            r.sql = sql.clone();
            reissue_for(&dir, r, "r.parquet", "q.json");
            let a = partial(&dir, "a", "r.parquet", "q.json", &id);
            let groups = q.groups(&rows);
            let big_enough = groups.values().all(|g| g.len() as u64 >= K);
            if !a.0.status.success() {
                let err = a.stderr();
                prop_assert!(!err.contains("panicked"), "{}", err);
                // Honest shapes over big-enough groups are not refused; other refusals name a
                // cell or a plan node.
                prop_assert!(
                    !(q.honest() && big_enough && !groups.is_empty()),
                    "an honest query was refused: {}\n{}",
                    sql,
                    err
                );
                prop_assert!(err.contains("refused") || err.contains("row "), "{}", err);
                refused.set(refused.get() + 1);
                return Ok(());
            }
            partial(&dir, "c", "r.parquet", "q.json", &id).ok();
            let out = dir
                .combine(
                    "r.parquet",
                    &["a.partial.json", "c.partial.json"],
                    &[
                        "--request",
                        "q.json",
                        "--identity",
                        "requester.key",
                        "--format",
                        "csv",
                    ],
                )
                .ok();
            check_release(&q, &out, &rows)
                .map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
            released.set(released.get() + 1);
            Ok(())
        })
        .unwrap();
    // Both outcomes were exercised.
    let (released, refused) = (released.get(), refused.get());
    assert!(
        released > 0 && refused > 0,
        "released {released}, refused {refused}"
    );
}
