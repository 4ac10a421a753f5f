//! Ed25519 keys: generating a bureau's key pair, the two key file formats, fingerprints, signing
//! and checking signatures.
//!
//! A private key file is two lines, `landwatch-ed25519-private-key/1` and the 32-byte seed in
//! lowercase hex; a public key file is `landwatch-ed25519-public-key/1` and the 32-byte public key
//! in hex. Lines starting with `#` are comments. The fingerprint of a public key is the SHA-256 of
//! its 32 bytes, in hex.

use super::error::{io_err, EvidenceError};
use ed25519_dalek::{Signature, Signer, Verifier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// First line of a private key file.
pub const PRIVATE_KEY_HEADER: &str = "landwatch-ed25519-private-key/1";
/// First line of a public key file.
pub const PUBLIC_KEY_HEADER: &str = "landwatch-ed25519-public-key/1";
/// Length of an Ed25519 signature (`manifest.sig` holds exactly these raw bytes).
pub const SIGNATURE_LEN: usize = 64;

/// The files `keygen` wrote.
#[derive(Debug, Clone)]
pub struct KeyPairFiles {
    /// The private key (mode 0600).
    pub private_key: PathBuf,
    /// The public key, to hand to whoever checks packets.
    pub public_key: PathBuf,
    /// SHA-256 of the public key's bytes, hex.
    pub fingerprint: String,
}

/// SHA-256 of the public key's 32 bytes, lowercase hex.
pub fn fingerprint(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Signs bytes (the exact bytes of `manifest.json`).
pub fn sign(key: &SigningKey, bytes: &[u8]) -> [u8; SIGNATURE_LEN] {
    key.sign(bytes).to_bytes()
}

/// Whether `signature` is a valid Ed25519 signature of `bytes` by `key` (strict verification).
pub fn verify(key: &VerifyingKey, bytes: &[u8], signature: &[u8]) -> bool {
    match Signature::from_slice(signature) {
        Ok(sig) => key.verify_strict(bytes, &sig).is_ok() && key.verify(bytes, &sig).is_ok(),
        Err(_) => false,
    }
}

/// A new key from the operating system's random number generator.
pub fn generate() -> Result<SigningKey, EvidenceError> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| EvidenceError::Randomness {
        detail: e.to_string(),
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The text of a private key file.
pub fn private_key_text(key: &SigningKey) -> String {
    format!(
        "{PRIVATE_KEY_HEADER}\n{}\n# public key fingerprint (SHA-256): {}\n",
        hex::encode(key.to_bytes()),
        fingerprint(&key.verifying_key())
    )
}

/// The text of a public key file.
pub fn public_key_text(key: &VerifyingKey, name: &str) -> String {
    format!(
        "{PUBLIC_KEY_HEADER}\n{}\n# name: {name}\n# fingerprint (SHA-256 of the 32 key bytes): {}\n",
        hex::encode(key.as_bytes()),
        fingerprint(key)
    )
}

/// Generates a key pair and writes `DIR/NAME.key` (mode 0600) and `DIR/NAME.pub`; refuses to
/// overwrite either.
pub fn write_key_pair(dir: &Path, name: &str) -> Result<KeyPairFiles, EvidenceError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(EvidenceError::KeyFormat {
            path: dir.join(name),
            detail: "the key name must be a plain file name".into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let private_key = dir.join(format!("{name}.key"));
    let public_key = dir.join(format!("{name}.pub"));
    for p in [&private_key, &public_key] {
        if p.exists() {
            return Err(EvidenceError::KeyExists { path: p.clone() });
        }
    }
    let key = generate()?;
    write_new(&private_key, private_key_text(&key).as_bytes(), 0o600)?;
    write_new(
        &public_key,
        public_key_text(&key.verifying_key(), name).as_bytes(),
        0o644,
    )?;
    Ok(KeyPairFiles {
        private_key,
        public_key,
        fingerprint: fingerprint(&key.verifying_key()),
    })
}

/// Creates a file that must not exist yet, with a mode, and syncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), EvidenceError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            EvidenceError::KeyExists {
                path: path.to_path_buf(),
            }
        } else {
            EvidenceError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// The 32 key bytes of a key file's text, after checking its header.
fn parse_key_text(path: &Path, text: &str, header: &str) -> Result<[u8; 32], EvidenceError> {
    let bad = |detail: String| EvidenceError::KeyFormat {
        path: path.to_path_buf(),
        detail,
    };
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let first = lines
        .next()
        .ok_or_else(|| bad("the file is empty".into()))?;
    if first != header {
        let other = if header == PRIVATE_KEY_HEADER {
            PUBLIC_KEY_HEADER
        } else {
            PRIVATE_KEY_HEADER
        };
        let hint = if first == other {
            format!(" (this is a {} file)", other.trim_end_matches("/1"))
        } else {
            String::new()
        };
        return Err(bad(format!(
            "first line is {first:?}, expected {header:?}{hint}"
        )));
    }
    let hex_line = lines
        .next()
        .ok_or_else(|| bad("no key line after the header".into()))?;
    let bytes = hex::decode(hex_line).map_err(|e| bad(format!("the key line is not hex: {e}")))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| bad(format!("the key has {} bytes, expected 32", bytes.len())))
}

fn read_text(path: &Path) -> Result<String, EvidenceError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    String::from_utf8(bytes).map_err(|_| EvidenceError::KeyFormat {
        path: path.to_path_buf(),
        detail: "not a text file".into(),
    })
}

/// Loads a private (signing) key file.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, EvidenceError> {
    let seed = parse_key_text(path, &read_text(path)?, PRIVATE_KEY_HEADER)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parses a public key file's text (`path` only names it in errors).
pub fn parse_verifying_key(path: &Path, text: &str) -> Result<VerifyingKey, EvidenceError> {
    let bytes = parse_key_text(path, text, PUBLIC_KEY_HEADER)?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| EvidenceError::KeyFormat {
        path: path.to_path_buf(),
        detail: format!("not a valid Ed25519 public key: {e}"),
    })
}

/// Loads a public (verifying) key file.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, EvidenceError> {
    parse_verifying_key(path, &read_text(path)?)
}

/// A public key from its hex (as embedded in a manifest).
pub fn verifying_key_from_hex(text: &str) -> Option<VerifyingKey> {
    let bytes = hex::decode(text.trim()).ok()?;
    let arr = <[u8; 32]>::try_from(bytes.as_slice()).ok()?;
    VerifyingKey::from_bytes(&arr).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_key_pair(dir.path(), "bureau").unwrap();
        let sk = load_signing_key(&files.private_key).unwrap();
        let pk = load_verifying_key(&files.public_key).unwrap();
        assert_eq!(sk.verifying_key(), pk);
        assert_eq!(fingerprint(&pk), files.fingerprint);
        let sig = sign(&sk, b"manifest");
        assert!(verify(&pk, b"manifest", &sig));
        assert!(!verify(&pk, b"manifesT", &sig));
        assert!(!verify(&pk, b"manifest", &sig[..63]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.private_key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = write_key_pair(dir.path(), "bureau").unwrap_err();
        assert!(again.to_string().contains("bureau.key"), "{again}");
    }

    #[test]
    fn wrong_key_file_kinds_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_key_pair(dir.path(), "k").unwrap();
        let e = load_signing_key(&files.public_key).unwrap_err().to_string();
        assert!(e.contains("k.pub") && e.contains("public-key"), "{e}");
        let e = load_verifying_key(&files.private_key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("k.key") && e.contains("private-key"), "{e}");
        let bad = dir.path().join("bad.pub");
        std::fs::write(&bad, format!("{PUBLIC_KEY_HEADER}\nzz\n")).unwrap();
        let e = load_verifying_key(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.pub") && e.contains("hex"), "{e}");
    }
}
