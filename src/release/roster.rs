//! The consortium roster: the Paillier key id and every data owner's signing key. Its id is a
//! fingerprint of all of it (docs/FORMAT.md), printed when it is made and pinned by hospitals
//! (`--roster-id`) as they pin the key id: an edited roster, or one with an owner added, has
//! another id.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::owner::{read_small, to_json, OwnerPublic};
use crate::digest::Labelled;
use crate::error::{Error, Result};
use crate::paillier::parse_key_id;

/// `kind` of a roster file.
pub const KIND: &str = "cipherlake.roster";
const VERSION: u32 = 1;
const DOMAIN: &str = "cipherlake.roster_id.v1";

/// The roster: who may sign lake files, under which Paillier key.
#[derive(Clone, Debug)]
pub struct Roster {
    key_id: String,
    /// By owner id.
    owners: BTreeMap<String, OwnerPublic>,
    id: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RosterFile {
    kind: String,
    version: u32,
    key_id: String,
    owners: Vec<OwnerEntry>,
    roster_id: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnerEntry {
    owner: String,
    public: String,
}

impl Roster {
    /// A roster for the Paillier key `key_id` and these owners (ids and keys all distinct).
    pub fn new(key_id: &str, owners: Vec<OwnerPublic>) -> Result<Self> {
        let key_id = parse_key_id(key_id)?;
        if owners.is_empty() {
            return Err(Error::Invalid("a roster needs at least one owner".into()));
        }
        let mut map = BTreeMap::new();
        for o in owners {
            if let Some(same) = map
                .values()
                .find(|p: &&OwnerPublic| p.key == o.key)
                .map(|p| p.owner.clone())
            {
                return Err(Error::Invalid(format!(
                    "owners `{same}` and `{}` have the same signing key: each owner needs its own",
                    o.owner
                )));
            }
            let name = o.owner.clone();
            if map.insert(name.clone(), o).is_some() {
                return Err(Error::Invalid(format!("owner `{name}` is listed twice")));
            }
        }
        let id = fingerprint(&key_id, &map);
        Ok(Roster {
            key_id,
            owners: map,
            id,
        })
    }

    /// The roster id (64 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The Paillier key id the roster is for.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// An owner's public key, if the owner is on the roster.
    pub fn owner(&self, id: &str) -> Option<&OwnerPublic> {
        self.owners.get(id)
    }

    /// The owners, by id.
    pub fn owners(&self) -> impl Iterator<Item = &OwnerPublic> {
        self.owners.values()
    }

    /// Reads a roster file: every field checked, the stored id recomputed, and (with `pin`) the
    /// id compared with the pinned one.
    pub fn load(path: &Path, pin: Option<&str>) -> Result<Self> {
        let bad = |reason: String| Error::Roster {
            path: path.to_owned(),
            reason,
        };
        let text = read_small(path)?;
        let f: RosterFile =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a roster file: {e}")))?;
        if f.kind != KIND {
            return Err(bad(format!(
                "its kind is `{}`, expected `{KIND}`",
                crate::error::preview(&f.kind)
            )));
        }
        if f.version != VERSION {
            return Err(bad(format!(
                "format version {} is not supported (this build reads {VERSION})",
                f.version
            )));
        }
        let owners = f
            .owners
            .iter()
            .map(|o| {
                OwnerPublic::parse(&o.owner, &o.public).map_err(|why| {
                    bad(format!(
                        "owner `{}`: {why}",
                        crate::error::preview(&o.owner)
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let roster = Roster::new(&f.key_id, owners).map_err(|e| bad(e.to_string()))?;
        if roster.id != f.roster_id {
            return Err(bad(
                "its roster_id is not the fingerprint of its contents: the file was edited".into(),
            ));
        }
        if let Some(pin) = pin {
            let pin = parse_key_id(pin).map_err(|_| {
                bad("--roster-id: give the 64 hex digits printed when the roster was made".into())
            })?;
            if pin != roster.id {
                return Err(bad(format!(
                    "its id {} is not the pinned roster {pin}: an owner or a key differs from the roster the consortium agreed",
                    roster.id
                )));
            }
        }
        Ok(roster)
    }

    /// The roster as its file's JSON.
    pub fn to_json(&self) -> Result<String> {
        to_json(&RosterFile {
            kind: KIND.into(),
            version: VERSION,
            key_id: self.key_id.clone(),
            owners: self
                .owners
                .values()
                .map(|o| OwnerEntry {
                    owner: o.owner.clone(),
                    public: o.key_b64(),
                })
                .collect(),
            roster_id: self.id.clone(),
        })
    }
}

/// The roster id: the labelled SHA-256 (crate::digest) of the key id (its 32 bytes), the number
/// of owners, then each owner's id and 32-byte public key in id order.
fn fingerprint(key_id: &str, owners: &BTreeMap<String, OwnerPublic>) -> String {
    let mut h = Labelled::new(DOMAIN);
    h.item("key_id", &hex::decode(key_id).unwrap_or_default());
    h.u64("owners", owners.len() as u64);
    for o in owners.values() {
        h.item("owner", o.owner.as_bytes());
        h.item("public", o.key.as_bytes());
    }
    h.hex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::OwnerKey;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn any_change_changes_the_id_and_an_edited_file_is_refused() {
        let a = OwnerKey::generate("a").unwrap().public();
        let b = OwnerKey::generate("b").unwrap().public();
        let r = Roster::new(KEY, vec![a.clone(), b.clone()]).unwrap();
        let swapped = Roster::new(KEY, vec![b.clone(), a.clone()]).unwrap();
        assert_eq!(r.id(), swapped.id(), "order of listing does not matter");
        let c = OwnerKey::generate("b").unwrap().public();
        assert_ne!(r.id(), Roster::new(KEY, vec![a.clone(), c]).unwrap().id());
        let other_key = KEY.replace("00", "01");
        assert_ne!(
            r.id(),
            Roster::new(&other_key, vec![a.clone(), b.clone()])
                .unwrap()
                .id()
        );
        assert_ne!(r.id(), Roster::new(KEY, vec![a.clone()]).unwrap().id());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roster.json");
        std::fs::write(&path, r.to_json().unwrap()).unwrap();
        assert_eq!(Roster::load(&path, Some(r.id())).unwrap().id(), r.id());
        let err = Roster::load(&path, Some(&KEY.to_uppercase()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not the pinned roster"), "{err}");
        let edited = r.to_json().unwrap().replace(&b.key_b64(), &a.key_b64());
        std::fs::write(&path, edited).unwrap();
        let err = Roster::load(&path, None).unwrap_err().to_string();
        assert!(err.contains("same signing key"), "{err}");
    }
}
