//! End to end through the real binary: three hospitals encrypt their extracts into one
//! hive-partitioned lake, the cloud runs every query in `queries/`, a key holder decrypts, and the
//! result equals the same query computed by DataFusion on the plaintext.

use cipherlake::synth;

use crate::util::Dir;

const HOSPITALS: [&str; 3] = ["a", "b", "c"];

async fn plaintext_csv(dir: &Dir, sql: &str) -> String {
    let ctx = synth::plaintext_session(&dir.path("plain")).await.unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    {
        let mut w = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        if batches.is_empty() {
            return String::new();
        }
        for b in &batches {
            w.write(b).unwrap();
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_in_queries_matches_plaintext() {
    let dir = Dir::new();
    dir.copy_keys("single", "keys");
    for (i, h) in HOSPITALS.iter().enumerate() {
        let plain = dir.path(&format!("plain/hospital={h}/admissions.csv"));
        std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
        synth::write_admissions(&plain, i, 300 + 50 * i, 42).unwrap();
        dir.encrypt(
            "keys/public.json",
            plain.to_str().unwrap(),
            "cost:2,length_of_stay,diabetic",
            &format!("lake/hospital={h}/admissions.parquet"),
        )
        .ok();
    }
    let queries = concat!(env!("CARGO_MANIFEST_DIR"), "/queries");
    let mut files: Vec<_> = std::fs::read_dir(queries)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "sql"));
    files.sort();
    assert!(files.len() >= 4);
    for file in files {
        let name = file.file_stem().unwrap().to_str().unwrap().to_owned();
        let encrypted = format!("{name}.parquet");
        for partitions in ["1", "2"] {
            dir.run(&[
                "query",
                "--key",
                "keys/public.json",
                "--table",
                "admissions=lake",
                "-f",
                file.to_str().unwrap(),
                "--format",
                "parquet",
                "--output",
                &encrypted,
                "--partitions",
                partitions,
                "--force",
            ])
            .ok();
            let decrypted = dir
                .decrypt("keys/private.json", &encrypted, &["--format", "csv"])
                .ok();
            let sql = std::fs::read_to_string(&file).unwrap();
            let expected = plaintext_csv(&dir, &sql).await;
            assert_eq!(decrypted, expected, "{name} with {partitions} partition(s)");
        }
    }
}

#[test]
fn table_output_tags_ciphertexts_and_never_needs_a_private_key() {
    let dir = Dir::new();
    dir.copy_keys("single", "keys");
    dir.write("in/hospital=a/x.csv", "region,cost\nnorth,10.5\nsouth,2\n");
    dir.encrypt("keys/public.json", "in", "cost:2", "lake").ok();
    let out = dir
        .query(
            "keys/public.json",
            "t=lake",
            "SELECT hospital, paillier_sum(cost) AS c FROM t GROUP BY hospital",
            &[],
        )
        .ok();
    assert!(out.contains("enc:") && out.contains("rows=2"), "{out}");
    // JSON carries the whole value: W ciphertext bytes + 8 count bytes, in hex.
    let json = dir
        .query(
            "keys/public.json",
            "t=lake",
            "SELECT paillier_sum(cost) AS c FROM t",
            &["--format", "json"],
        )
        .ok();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["c"].as_str().unwrap().len(), 2 * (512 + 8));
    // A private key is refused on the query path.
    dir.query("keys/private.json", "t=lake", "SELECT 1", &[])
        .fails_with(&["private key", "public.json"]);
    // Without the public key the aggregate says which key it needs.
    let kid = dir.key_id("keys/public.json");
    dir.run(&[
        "query",
        "--table",
        "t=lake",
        "-c",
        "SELECT paillier_sum(cost) FROM t",
    ])
    .fails_with(&[&kid, "--key"]);
}

#[test]
fn mixed_keys_in_one_column_are_refused_at_registration_naming_the_files() {
    let dir = Dir::new();
    dir.copy_keys("single", "k1");
    dir.copy_keys("other", "k2");
    dir.write("a.csv", "cost\n1\n");
    dir.encrypt(
        "k1/public.json",
        "a.csv",
        "cost",
        "lake/hospital=a/a.parquet",
    )
    .ok();
    dir.encrypt(
        "k2/public.json",
        "a.csv",
        "cost",
        "lake/hospital=b/a.parquet",
    )
    .ok();
    dir.query("k1/public.json", "t=lake", "SELECT count(*) FROM t", &[])
        .fails_with(&[
            "`cost`",
            "hospital=a/a.parquet",
            "hospital=b/a.parquet",
            "key id",
        ]);
}

#[test]
fn create_external_table_and_file_urls() {
    let dir = Dir::new();
    dir.copy_keys("single", "k");
    dir.write("in/hospital=a/x.csv", "cost\n5\n7\n");
    dir.write("in/hospital=b/x.csv", "cost\n-2\n");
    dir.encrypt("k/public.json", "in", "cost", "lake").ok();
    let url = format!("file://{}/", dir.path("lake").display());
    let sql = format!(
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{url}'; \
         SELECT hospital, paillier_sum(cost) AS s FROM t GROUP BY hospital ORDER BY hospital"
    );
    dir.run(&[
        "query",
        "--key",
        "k/public.json",
        "-c",
        &sql,
        "--output",
        "r.parquet",
    ])
    .ok();
    let out = dir
        .decrypt("k/private.json", "r.parquet", &["--format", "csv"])
        .ok();
    assert_eq!(out, "hospital,s\na,12\nb,-2\n");
    // --table with a file:// URL and a glob.
    let glob = format!("{}/hospital=a/*.parquet", dir.path("lake").display());
    dir.run(&[
        "query",
        "--key",
        "k/public.json",
        "--table",
        &format!("t={url}"),
        "--table",
        &format!("g={glob}"),
        "-c",
        "SELECT 't' AS src, paillier_sum(cost) AS s FROM t UNION ALL SELECT 'g', paillier_sum(cost) FROM g ORDER BY src",
        "--output",
        "u.parquet",
    ])
    .ok();
    let out = dir
        .decrypt("k/private.json", "u.parquet", &["--format", "csv"])
        .ok();
    assert_eq!(out, "src,s\ng,12\nt,10\n");
}

#[test]
fn a_union_of_columns_under_different_keys_is_refused() {
    let dir = Dir::new();
    dir.copy_keys("single", "k1");
    dir.copy_keys("other", "k2");
    dir.write("a.csv", "c\n5\n7\n");
    dir.encrypt("k1/public.json", "a.csv", "c", "t1.parquet")
        .ok();
    dir.encrypt("k2/public.json", "a.csv", "c", "t2.parquet")
        .ok();
    dir.encrypt("k1/public.json", "a.csv", "c:2", "t3.parquet")
        .ok();
    let query = |sql: &str| {
        dir.run(&[
            "query",
            "--key",
            "k1/public.json",
            "--key",
            "k2/public.json",
            "--table",
            "t1=t1.parquet",
            "--table",
            "t2=t2.parquet",
            "--table",
            "t3=t3.parquet",
            "-c",
            sql,
            "--format",
            "parquet",
            "--output",
            "r.parquet",
        ])
    };
    query("SELECT c FROM t1 UNION ALL SELECT c FROM t2").fails_with(&[
        "UNION column `c`",
        &dir.key_id("k1/public.json"),
        &dir.key_id("k2/public.json"),
    ]);
    query("SELECT paillier_sum(c) FROM (SELECT c FROM t1 UNION ALL SELECT c FROM t2)")
        .fails_with(&["`c` has no cipherlake metadata", "different keys or scales"]);
    query("SELECT c FROM t1 UNION ALL SELECT c FROM t3").fails_with(&["scale 0", "scale 2"]);
    assert!(!dir.path("r.parquet").exists());
    // The same key and scale on both sides is fine.
    query("SELECT paillier_sum(c) AS s FROM (SELECT c FROM t1 UNION ALL SELECT c FROM t1)").ok();
    let out = dir
        .decrypt("k1/private.json", "r.parquet", &["--format", "csv"])
        .ok();
    assert_eq!(out, "s\n24\n");
}

#[test]
fn explain_shows_the_rewritten_plan_and_refusals_exit_nonzero() {
    let dir = Dir::new();
    dir.copy_keys("single", "keys");
    dir.write(
        "in/hospital=a/x.csv",
        "region,cost,stay,flag\nnorth,10.5,3,true\nsouth,2,1,false\nnorth,-4.25,2,true\n",
    );
    dir.encrypt("keys/public.json", "in", "cost:2,stay,flag", "lake")
        .ok();
    let query_to = |sql: &str, format: &str, output: &str| {
        dir.query(
            "keys/public.json",
            "t=lake",
            sql,
            &["--format", format, "--output", output],
        )
    };
    let query = |sql: &str| query_to(sql, "csv", "-");
    let plan = query(
        "EXPLAIN SELECT region, SUM(cost - stay), AVG(-cost), SUM(flag), SUM(stay * 1.5), COUNT(*) FROM t GROUP BY region",
    )
    .ok();
    for needle in [
        "paillier_sum(paillier_add(t.cost, paillier_neg(t.stay)))",
        "paillier_avg(paillier_neg(t.cost))",
        "paillier_count(t.flag)",
        "paillier_sum(paillier_mul(t.stay, Float64(1.5)))",
        "count(Int64(1))",
    ] {
        assert!(plan.contains(needle), "{needle} not in\n{plan}");
    }
    // Plaintext SUM stays DataFusion's own.
    let plan = query("EXPLAIN SELECT SUM(stay), SUM(LENGTH(region)) FROM t").ok();
    assert!(
        plan.contains("paillier_sum(t.stay) AS sum(t.stay)")
            && plan.contains("sum(length(t.region))"),
        "{plan}"
    );

    // The rewritten query decrypts to the right numbers.
    let out = query_to(
        "SELECT region, SUM(cost - stay) AS a, AVG(-cost) AS b, SUM(flag) AS c FROM t GROUP BY region ORDER BY region",
        "parquet",
        "r.parquet",
    )
    .ok();
    assert!(out.is_empty(), "{out}");
    let plain = dir
        .decrypt("keys/private.json", "r.parquet", &["--format", "csv"])
        .ok();
    assert_eq!(
        plain,
        "region,a,b,c\nnorth,1.25,-3.125000,2\nsouth,1.00,-2.000000,0\n"
    );

    // Refusals: exit 1, the column and the reason on stderr, nothing on stdout.
    let e = query("SELECT COUNT(*) FROM t WHERE cost > 100")
        .fails_with(&["`cost` is encrypted", "neither compare nor order"]);
    assert!(!e.is_empty());
    query("SELECT SUM(cost * stay) FROM t").fails_with(&["cannot multiply two ciphertexts"]);
    query("SELECT MIN(cost) FROM t").fails_with(&["min(cost)", "compares values"]);
    query("SELECT abs(cost) FROM t").fails_with(&["abs(cost)", "`cost` is encrypted"]);
}
