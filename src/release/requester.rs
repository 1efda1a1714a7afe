//! The requester's key: an age X25519 identity. Hospitals seal their partial decryptions to its
//! public half (named in the request), so that the cloud that carries them, and the hospitals
//! themselves, never hold enough to combine; `combine` opens them with the secret half. The
//! files are age's own formats (an identity file a person can also use with the `age` tool).

use std::path::Path;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A requester's secret key.
pub struct RequesterKey(age::x25519::Identity);

impl std::fmt::Debug for RequesterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequesterKey({})", self.recipient())
    }
}

impl RequesterKey {
    /// A fresh key (randomness from the OS, inside age).
    pub fn generate() -> Self {
        RequesterKey(age::x25519::Identity::generate())
    }

    /// Its public half, `age1…`.
    pub fn recipient(&self) -> String {
        self.0.to_public().to_string()
    }

    /// The identity file's text (age's format: comments, then `AGE-SECRET-KEY-1…`).
    pub fn to_file(&self, name: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# cipherlake requester key of `{name}`: keep it secret (it opens the partial decryptions sealed to it)\n# public key: {}\n{}\n",
            self.recipient(),
            self.0.to_string().expose_secret()
        ))
    }

    /// Reads an identity file (one `AGE-SECRET-KEY-1…` line; `#` comments and blank lines
    /// ignored).
    pub fn load(path: &Path) -> Result<Self> {
        let text = super::owner::read_small_limit(path, 64 * 1024)?;
        let mut keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let bad = |why: &str| Error::Invalid(format!("requester key {}: {why}", path.display()));
        let line = keys
            .next()
            .ok_or_else(|| bad("no AGE-SECRET-KEY-1… line"))?;
        if keys.next().is_some() {
            return Err(bad("more than one key line"));
        }
        line.parse::<age::x25519::Identity>()
            .map(RequesterKey)
            .map_err(|_| bad("not an age X25519 secret key (AGE-SECRET-KEY-1…)"))
    }

    /// The age identity.
    pub fn identity(&self) -> &age::x25519::Identity {
        &self.0
    }
}

/// An age X25519 recipient (`age1…`), checked.
pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient> {
    s.parse::<age::x25519::Recipient>()
        .map_err(|e| Error::Invalid(format!("requester key `{}`: {e}", crate::error::preview(s))))
}

/// A recipient given as `age1…` or as a file holding it (a `.pub` file or an identity file's
/// `# public key:` line); checked.
pub fn recipient(arg: &str) -> Result<String> {
    let parse = |s: &str| parse_recipient(s).ok().map(|r| r.to_string());
    if let Some(r) = parse(arg.trim()) {
        return Ok(r);
    }
    let path = Path::new(arg);
    if path.is_file() {
        let text = super::owner::read_small_limit(path, 64 * 1024)?;
        for line in text.lines() {
            let l = line.trim().trim_start_matches("# public key:").trim();
            if let Some(r) = parse(l) {
                return Ok(r);
            }
        }
        return Err(Error::Invalid(format!(
            "{}: no age recipient (age1…) in it",
            path.display()
        )));
    }
    Err(Error::Invalid(format!(
        "requester key `{}`: neither an age recipient (age1…) nor a file",
        crate::error::preview(arg)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_its_file_and_its_debug_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let k = RequesterKey::generate();
        let p = dir.path().join("r.key");
        std::fs::write(&p, k.to_file("analyst").as_bytes()).unwrap();
        let back = RequesterKey::load(&p).unwrap();
        assert_eq!(back.recipient(), k.recipient());
        assert_eq!(recipient(p.to_str().unwrap()).unwrap(), k.recipient());
        assert_eq!(recipient(&k.recipient()).unwrap(), k.recipient());
        assert!(!format!("{k:?}").contains("SECRET"));
        assert!(recipient("age1nope").is_err());
        std::fs::write(&p, "AGE-SECRET-KEY-1XYZ\n").unwrap();
        let e = RequesterKey::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("not an age X25519 secret key") && !e.contains("XYZ"),
            "{e}"
        );
    }
}
