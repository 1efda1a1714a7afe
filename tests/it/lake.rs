//! `encrypt` / `decrypt` / `inspect` on real files through the real binary.

use std::fs::File;
use std::sync::Arc;

use cipherlake::paillier::wire;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Decimal128Array, FixedSizeBinaryArray, Float64Array, Int32Array,
    Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use rug::integer::Order;
use rug::Integer;

use crate::util::Dir;

/// A folder with a 2048-bit key pair in `k/`.
fn with_key() -> Dir {
    let dir = Dir::new();
    dir.copy_keys("single", "k");
    dir
}

/// CSV rows as trimmed cells, with decimals normalised (`1000.00` and `1000` are the same value).
fn cells(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split(',')
                .map(|c| {
                    let c = c.trim();
                    match c.parse::<f64>() {
                        Ok(_) if c.contains('.') => {
                            c.trim_end_matches('0').trim_end_matches('.').to_owned()
                        }
                        _ => c.to_owned(),
                    }
                })
                .collect()
        })
        .collect()
}

const ADMISSIONS: &str = "\
hospital,year,cost,length_of_stay,diabetic,note
a,2023,12.50,3,true,first
a,2023,-3.25,,false,negative cost
a,2024,1000,12,,no flag
b,2024,,0,true,null cost
b,2024,0.01,-7,false,smallest cent
b,2025,99999999.99,2147483648,true,big
";

#[test]
fn csv_round_trips_exactly_through_encrypt_and_decrypt() {
    let dir = with_key();
    dir.write("in.csv", ADMISSIONS);
    dir.encrypt(
        "k/public.json",
        "in.csv",
        "cost:2,length_of_stay,diabetic",
        "lake/adm.parquet",
    )
    .ok();
    let info = dir
        .run(&["inspect", "lake/adm.parquet", "--format", "json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["rows"], 6);
    let cols = v["columns"].as_array().unwrap();
    let by = |n: &str| cols.iter().find(|c| c["name"] == n).unwrap().clone();
    assert_eq!(by("cost")["type"], "FixedSizeBinary(512)");
    assert_eq!(by("cost")["scale"], 2);
    assert_eq!(by("length_of_stay")["plain_type"], "Int64");
    assert_eq!(by("diabetic")["plain_type"], "Boolean");
    assert_eq!(by("hospital")["encrypted"], false);

    // No plaintext of the encrypted columns is left in the file.
    let raw = std::fs::read(dir.path("lake/adm.parquet")).unwrap();
    assert!(!raw.windows(11).any(|w| w == b"99999999.99"));

    dir.decrypt(
        "k/private.json",
        "lake/adm.parquet",
        &["--output", "out.csv"],
    )
    .ok();
    assert_eq!(cells(&dir.read("out.csv")), cells(ADMISSIONS));
}

#[test]
fn folder_of_files_and_an_empty_file() {
    let dir = with_key();
    dir.write("in/hospital=a/part-0.csv", "id,cost\n1,10\n2,-20\n");
    dir.write("in/hospital=a/part-1.csv", "id,cost\n3,30\n");
    dir.write("in/hospital=b/part-0.csv", "id,cost\n");
    dir.encrypt("k/public.json", "in", "cost", "lake").ok();
    for f in [
        "lake/hospital=a/part-0.parquet",
        "lake/hospital=a/part-1.parquet",
        "lake/hospital=b/part-0.parquet",
    ] {
        assert!(dir.path(f).exists(), "{f}");
    }
    let out = dir
        .decrypt("k/private.json", "lake", &["--format", "csv"])
        .ok();
    assert_eq!(cells(&out), cells("id,cost\n1,10\n2,-20\n3,30\n"));
    let empty = dir
        .decrypt(
            "k/private.json",
            "lake/hospital=b/part-0.parquet",
            &["--format", "csv"],
        )
        .ok();
    assert_eq!(cells(&empty), cells("id,cost\n"));
}

#[test]
fn parquet_input_keeps_types_and_scales() {
    let dir = with_key();
    let schema = Arc::new(Schema::new(vec![
        Field::new("n32", DataType::Int32, true),
        Field::new("dec", DataType::Decimal128(12, 2), true),
        Field::new("f", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("label", DataType::Utf8, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![Some(-5), None, Some(i32::MAX)])),
        Arc::new(
            Decimal128Array::from(vec![Some(12345), Some(-1), None])
                .with_precision_and_scale(12, 2)
                .unwrap(),
        ),
        Arc::new(Float64Array::from(vec![Some(0.1), Some(-2.5), None])),
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        Arc::new(StringArray::from(vec!["x", "y", "z"])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let mut w =
        ArrowWriter::try_new(File::create(dir.path("in.parquet")).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    dir.encrypt(
        "k/public.json",
        "in.parquet",
        "n32,dec,f:3,flag",
        "enc.parquet",
    )
    .ok();
    dir.decrypt(
        "k/private.json",
        "enc.parquet",
        &["--output", "dec.parquet"],
    )
    .ok();
    let got = read_parquet(&dir.path("dec.parquet"));
    assert_eq!(got.column(0).as_ref(), batch.column(0).as_ref());
    assert_eq!(got.column(1).as_ref(), batch.column(1).as_ref());
    assert_eq!(got.column(3).as_ref(), batch.column(3).as_ref());
    assert_eq!(got.column(4).as_ref(), batch.column(4).as_ref());
    // The float column comes back as an exact decimal at the requested scale.
    let f = got
        .column(2)
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap();
    assert_eq!(f.data_type(), &DataType::Decimal128(38, 3));
    assert_eq!((f.value(0), f.value(1), f.is_null(2)), (100, -2500, true));
}

fn read_parquet(path: &std::path::Path) -> RecordBatch {
    let r = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// A file written the way docs/FORMAT.md says, by code that does not use cipherlake's encoder:
/// Enc(m) = (1 + m·n)·r^n mod n², 512-byte little-endian, field metadata by hand.
#[test]
fn a_file_written_from_the_format_doc_alone_decrypts() {
    let dir = with_key();
    let private: serde_json::Value = serde_json::from_str(&dir.read("k/private.json")).unwrap();
    let b64 = |k: &str| wire::b64_decode(private[k].as_str().unwrap()).unwrap();
    let n = b64("n");
    let n2 = Integer::from(n.square_ref());
    let key_id = private["key_id"].as_str().unwrap().to_owned();
    let encrypt = |m: i64| -> Vec<u8> {
        let m = if m < 0 {
            Integer::from(&n + m)
        } else {
            Integer::from(m)
        };
        let r = Integer::from(0x5eed_u32) + m.clone() * 7u32 + 1u32; // any unit works; not secret here
        let rn = r.pow_mod(&n, &n2).unwrap();
        let c = (Integer::from(&m * &n) + 1u32) * rn % &n2;
        let mut bytes = c.to_digits::<u8>(Order::Lsf);
        bytes.resize(512, 0);
        bytes
    };
    let values = [Some(1250i64), None, Some(-99), Some(0)];
    let cost = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
        values.iter().map(|v| v.map(encrypt)),
        512,
    )
    .unwrap();
    let md = std::collections::HashMap::from([
        ("cipherlake.key_id".to_owned(), key_id),
        ("cipherlake.scale".to_owned(), "2".to_owned()),
        (
            "cipherlake.plain_type".to_owned(),
            "Decimal128(12, 2)".to_owned(),
        ),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("cost", DataType::FixedSizeBinary(512), true).with_metadata(md),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(vec![1, 2, 3, 4])), Arc::new(cost)],
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(
        File::create(dir.path("third_party.parquet")).unwrap(),
        schema,
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let out = dir
        .decrypt(
            "k/private.json",
            "third_party.parquet",
            &["--format", "csv"],
        )
        .ok();
    assert_eq!(
        cells(&out),
        cells("id,cost\n1,12.50\n2,\n3,-0.99\n4,0.00\n")
    );
}

/// Runs a failing `encrypt` and checks the message and that no output (nor temporary file) is left.
fn encrypt_fails(dir: &Dir, input: &str, cols: &str, needles: &[&str]) {
    dir.encrypt("k/public.json", input, cols, "out/x.parquet")
        .fails_with(needles);
    let left: Vec<_> = std::fs::read_dir(dir.path("out"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_inputs_get_clear_errors_and_write_nothing() {
    let dir = with_key();
    dir.write("in.csv", ADMISSIONS);
    encrypt_fails(
        &dir,
        "in.csv",
        "cost:2,price",
        &["in.csv", "no column `price`", "hospital"],
    );
    dir.write("text.csv", "id,cost\n1,10\n2,ten\n");
    encrypt_fails(
        &dir,
        "text.csv",
        "cost",
        &["text.csv", "row 2", "`cost`", "`ten` is not a number"],
    );
    encrypt_fails(
        &dir,
        "in.csv",
        "cost",
        &["in.csv", "`cost`", "decimals", "cost:2"],
    );
    encrypt_fails(
        &dir,
        "in.csv",
        "cost:1",
        &[
            "row 2",
            "`cost`",
            "2 digits after the decimal point but the scale is 1",
        ],
    );
    dir.write("big.csv", "id,v\n1,99999999999999999999\n");
    encrypt_fails(
        &dir,
        "big.csv",
        "v",
        &["big.csv", "row 1", "`v`", "out of range for Int64"],
    );
    encrypt_fails(
        &dir,
        "in.csv",
        "note",
        &["row 1", "`note`", "`first` is not a number"],
    );
    encrypt_fails(&dir, "missing.csv", "cost", &["missing.csv"]);
    encrypt_fails(&dir, "in.csv", "cost:2,cost", &["twice"]);
    dir.encrypt_with("nokey.json", "in.csv", "cost:2", "out/x.parquet", &[])
        .fails_with(&["nokey.json"]);
    dir.encrypt_with("k/private.json", "in.csv", "cost:2", "out/x.parquet", &[])
        .fails_with(&["private key", "public.json"]);
    // An existing output is kept unless --force.
    dir.write("out/x.parquet", "precious");
    dir.encrypt_with("k/public.json", "in.csv", "cost:2", "out/x.parquet", &[])
        .fails_with(&["out/x.parquet", "already exists"]);
    assert_eq!(dir.read("out/x.parquet"), "precious");
    dir.encrypt_with(
        "k/public.json",
        "in.csv",
        "cost:2",
        "out/x.parquet",
        &["--force", "-q"],
    )
    .ok();
}

#[test]
fn decrypt_refuses_another_key_naming_both() {
    let dir = with_key();
    dir.copy_keys("other", "other");
    dir.write("in.csv", "id,cost\n1,10\n");
    dir.encrypt("k/public.json", "in.csv", "cost", "e.parquet")
        .ok();
    dir.decrypt("other/private.json", "e.parquet", &["--output", "d.csv"])
        .fails_with(&[
            &dir.key_id("k/public.json"),
            &dir.key_id("other/public.json"),
            "`cost`",
            "e.parquet",
        ]);
    assert!(!dir.path("d.csv").exists());
}
