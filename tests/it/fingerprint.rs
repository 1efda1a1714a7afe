//! The key id as properties: any change to any public parameter changes it (the encoding is
//! injective: labels, lengths and a fixed order), and the crate computes what docs/FORMAT.md
//! defines (checked against the test's own implementation of the definition, and against the
//! Python function printed in FORMAT.md).

use cipherlake::paillier::hazmat;
use cipherlake::paillier::threshold::ThresholdPublic;
use proptest::prelude::*;
use rug::Integer;
use serde_json::{json, Value};

use crate::util::{b64, fingerprint as documented, Dir};

#[derive(Clone, Debug)]
struct Params {
    n: Integer,
    hs: Option<Integer>,
    threshold: Option<ThresholdPublic>,
}

impl Params {
    fn id(&self) -> String {
        hazmat::fingerprint(&self.n, self.hs.as_ref(), self.threshold.as_ref())
    }

    /// As a public.json would hold them.
    fn json(&self) -> Value {
        let mut v = json!({ "n": b64(&self.n) });
        if let Some(hs) = &self.hs {
            v["hs"] = b64(hs);
        }
        if let Some(t) = &self.threshold {
            v["threshold"] = json!({
                "parties": t.parties,
                "needed": t.needed,
                "v": b64(&t.v),
                "verification_keys": t.verification_keys.iter().map(b64).collect::<Vec<_>>(),
            });
        }
        v
    }
}

fn big() -> impl Strategy<Value = Integer> {
    proptest::collection::vec(any::<u8>(), 1..48)
        .prop_map(|b| Integer::from_digits(&b, rug::integer::Order::Msf) + 1u32)
}

fn params() -> impl Strategy<Value = Params> {
    let threshold = (
        proptest::collection::vec("[a-c]{1,3}", 2..5),
        2usize..5,
        big(),
        proptest::collection::vec(big(), 4),
    )
        .prop_map(|(parties, needed, v, mut vks)| {
            vks.truncate(parties.len());
            ThresholdPublic {
                needed: needed.min(parties.len()),
                parties,
                v,
                verification_keys: vks,
            }
        });
    (
        big(),
        proptest::option::of(big()),
        proptest::option::of(threshold),
    )
        .prop_map(|(n, hs, threshold)| Params { n, hs, threshold })
}

/// One change to one public parameter (returns false when it happens to change nothing).
fn mutate(p: &mut Params, which: usize, by: u32) -> bool {
    let before = format!("{p:?}");
    match which {
        0 => p.n += by,
        1 => p.hs = Some(p.hs.take().map_or(Integer::from(by), |h| h + by)),
        2 => p.hs = None,
        3 => p.threshold = None,
        // The DJN base turned into a verification key's value: position matters.
        12 => {
            if let (Some(t), Some(hs)) = (p.threshold.as_mut(), p.hs.take()) {
                t.verification_keys[0] = hs;
            }
        }
        _ => {
            if let Some(t) = p.threshold.as_mut() {
                match which {
                    4 => t.needed += by as usize,
                    5 => t.parties[0].push('x'),
                    // A byte moved from one party's name to the next: only lengths tell them apart.
                    6 => {
                        if let Some(c) = t.parties[0].pop() {
                            t.parties[1].insert(0, c);
                        }
                    }
                    7 => t.parties.swap(0, 1),
                    8 => t.v += by,
                    9 => t.verification_keys[1] += by,
                    10 => t.verification_keys.swap(0, 1),
                    _ => {
                        t.parties.pop();
                        t.verification_keys.pop();
                    }
                }
            }
        }
    }
    format!("{p:?}") != before
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_change_to_any_public_parameter_changes_the_key_id(
        p in params(), which in 0usize..13, by in 1u32..1000,
    ) {
        let mut q = p.clone();
        if mutate(&mut q, which, by) {
            prop_assert_ne!(p.id(), q.id(), "{:?} → {:?}", p, q);
        } else {
            prop_assert_eq!(p.id(), q.id());
        }
    }

    #[test]
    fn the_crate_computes_the_documented_key_id(p in params()) {
        prop_assert_eq!(p.id(), documented(&p.json()));
    }
}

/// The Python function in docs/FORMAT.md recomputes the key id of real key files.
#[test]
fn the_python_function_in_the_format_doc_recomputes_the_key_id() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md")).unwrap();
    let code = doc
        .split("```python")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains("def key_id("))
        .expect("FORMAT.md has a Python key_id function");
    let dir = Dir::with_keys();
    dir.write("key_id.py", format!(
        "{code}\nimport json, sys\nfor path in sys.argv[1:]:\n    print(key_id(json.load(open(path))))\n"
    ));
    let files = [
        "keys/public.json",
        "single/public.json",
        "other/private.json",
    ];
    let out = std::process::Command::new("python3")
        .arg("key_id.py")
        .args(files)
        .current_dir(dir.root())
        .output()
        .expect("python3 runs (the CI machine has it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = files.iter().map(|f| dir.key_id(f)).collect();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        ids.join("\n") + "\n"
    );
}
