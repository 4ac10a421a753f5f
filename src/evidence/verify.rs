//! Checking a packet (a directory or a zip): every file's SHA-256 against the manifest, files
//! missing or added, the content fingerprint, and the Ed25519 signature of `manifest.json`.

use super::archive;
use super::error::EvidenceError;
use super::keys::{self, VerifyingKey};
use super::manifest::{self, Manifest, MANIFEST_FILE, SCHEMA_VERSION, SIGNATURE_FILE};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Its SHA-256 matches the manifest.
    Intact,
    /// Its SHA-256 differs from the manifest's.
    Changed,
    /// The manifest lists it but it is not in the packet.
    Missing,
    /// It is in the packet but the manifest does not list it.
    Added,
}

/// One file's check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileCheck {
    /// File name inside the packet.
    pub name: String,
    /// The outcome.
    pub status: FileStatus,
    /// SHA-256 the manifest records.
    pub expected_sha256: Option<String>,
    /// SHA-256 of the file found.
    pub actual_sha256: Option<String>,
}

/// Which public key checked the signature.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum KeySource {
    /// A public key file given by the user: the signer is identified.
    File {
        /// The key file.
        path: PathBuf,
    },
    /// The key embedded in the manifest: proves integrity since signing, not who signed.
    Embedded,
    /// No usable key.
    None,
}

/// The outcome of the signature check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureStatus {
    /// The signature matches `manifest.json` and the key.
    Valid,
    /// The signature does not match (the manifest or the signature changed, or another key signed).
    Invalid,
    /// `manifest.sig` is missing.
    Missing,
    /// No key to check with (no `--pubkey` and no readable key in the manifest).
    Unchecked,
}

/// Everything `verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// The packet checked (directory or zip).
    pub packet: PathBuf,
    /// The case id the manifest names.
    pub case_id: Option<String>,
    /// The manifest's schema version.
    pub schema_version: Option<String>,
    /// SHA-256 of `manifest.json` as found.
    pub manifest_sha256: Option<String>,
    /// The content fingerprint the manifest records (printed in the report).
    pub content_sha256: Option<String>,
    /// Where the public key came from.
    pub key: KeySource,
    /// Fingerprint of the key used.
    pub key_fingerprint: Option<String>,
    /// Fingerprint of the signing key the manifest names.
    pub manifest_key_fingerprint: Option<String>,
    /// The signature check.
    pub signature: SignatureStatus,
    /// Every file, sorted by name.
    pub files: Vec<FileCheck>,
    /// Every problem in words, each naming its file.
    pub problems: Vec<String>,
    /// Notes that do not make the packet less intact: its directory's (or zip's) name is neither
    /// the packet directory nor the case the manifest names (a renamed copy, or a copy under
    /// another case's name).
    pub warnings: Vec<String>,
    /// True when the signature is valid, every file matches and nothing is missing or added.
    pub intact: bool,
}

/// A public key to check with, and where it came from.
#[derive(Debug, Clone)]
pub struct GivenKey {
    /// The key.
    pub key: VerifyingKey,
    /// Its file.
    pub path: PathBuf,
}

/// Reads a packet's files from a directory or a `.zip`.
pub fn read_packet(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, EvidenceError> {
    let meta = std::fs::metadata(path).map_err(|source| EvidenceError::NotAPacket {
        path: path.to_path_buf(),
        detail: source.to_string(),
    })?;
    if meta.is_dir() {
        archive::read_dir_files(path)
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
    {
        Ok(archive::read_zip(path)?.1)
    } else {
        Err(EvidenceError::NotAPacket {
            path: path.to_path_buf(),
            detail: "expected a packet directory or a .zip".into(),
        })
    }
}

/// Checks a packet. `Err` only when the path cannot be read at all; everything wrong with a
/// readable packet is in the report.
pub fn verify_packet(path: &Path, given: Option<&GivenKey>) -> Result<VerifyReport, EvidenceError> {
    let files = read_packet(path)?;
    Ok(verify_files(path, &files, given))
}

/// The name a packet was found under: its directory's, or its zip's without `.zip`.
fn packet_name(path: &Path) -> Option<String> {
    let name = match path.file_name() {
        Some(n) => n.to_string_lossy().into_owned(),
        // `..` names no directory by itself.
        None => std::fs::canonicalize(path)
            .ok()?
            .file_name()?
            .to_string_lossy()
            .into_owned(),
    };
    let is_zip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    Some(match name.get(..name.len().saturating_sub(4)) {
        Some(stem) if is_zip => stem.to_string(),
        _ => name,
    })
}

/// Checks a packet's files (name → bytes).
pub fn verify_files(
    path: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    given: Option<&GivenKey>,
) -> VerifyReport {
    let mut problems = Vec::new();
    let mut r = VerifyReport {
        packet: path.to_path_buf(),
        case_id: None,
        schema_version: None,
        manifest_sha256: None,
        content_sha256: None,
        key: KeySource::None,
        key_fingerprint: None,
        manifest_key_fingerprint: None,
        signature: SignatureStatus::Unchecked,
        files: Vec::new(),
        problems: Vec::new(),
        warnings: Vec::new(),
        intact: false,
    };
    let manifest_bytes = files.get(MANIFEST_FILE);
    let parsed: Option<Manifest> = match manifest_bytes {
        None => {
            problems.push(format!(
                "{MANIFEST_FILE} is missing: this is not a finished packet"
            ));
            None
        }
        Some(b) => {
            r.manifest_sha256 = Some(manifest::sha256_hex(b));
            match serde_json::from_slice::<Manifest>(b) {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.push(format!(
                        "{MANIFEST_FILE} changed: it is no longer a valid {SCHEMA_VERSION} manifest ({e})"
                    ));
                    None
                }
            }
        }
    };
    if let Some(m) = &parsed {
        r.case_id = Some(m.case_id.clone());
        r.schema_version = Some(m.schema_version.clone());
        r.content_sha256 = Some(m.content_sha256.clone());
        r.manifest_key_fingerprint = Some(m.signing.key_fingerprint_sha256.clone());
        if let Some(name) = packet_name(path) {
            if name != m.packet.directory && name != m.case_id {
                r.warnings.push(format!(
                    "this packet is found under the name {name:?}, but its manifest says it is \
                     packet {:?} of case {}: a renamed copy, whose evidence is that of case {} \
                     whatever its name says",
                    m.packet.directory, m.case_id, m.case_id
                ));
            }
        }
        if m.schema_version != SCHEMA_VERSION {
            problems.push(format!(
                "{MANIFEST_FILE}: schema {:?}, this landwatch reads {SCHEMA_VERSION:?}",
                m.schema_version
            ));
        }
        // The fingerprint of the manifest as written; a packet of a landwatch before 1 December
        // 2026 carries the one it computed then.
        let recomputed = manifest_bytes
            .and_then(|b| manifest::content_sha256_of_json(b))
            .unwrap_or_default();
        if recomputed != m.content_sha256 && manifest::legacy_content_sha256(m) != m.content_sha256
        {
            problems.push(format!(
                "{MANIFEST_FILE}: content_sha256 {} does not match the manifest's content ({recomputed})",
                m.content_sha256
            ));
        }
    }

    // The signature.
    let key: Option<VerifyingKey> = match given {
        Some(g) => {
            r.key = KeySource::File {
                path: g.path.clone(),
            };
            Some(g.key)
        }
        None => {
            let embedded = parsed
                .as_ref()
                .and_then(|m| keys::verifying_key_from_hex(&m.signing.public_key));
            match (&parsed, embedded) {
                (Some(m), Some(k)) => {
                    r.key = KeySource::Embedded;
                    if keys::fingerprint(&k) != m.signing.key_fingerprint_sha256 {
                        problems.push(format!(
                            "{MANIFEST_FILE}: the embedded public key does not have the fingerprint the manifest states"
                        ));
                    }
                    Some(k)
                }
                (Some(_), None) => {
                    problems.push(format!(
                        "{MANIFEST_FILE}: no readable public key in signing.public_key; give --pubkey"
                    ));
                    None
                }
                (None, _) => None,
            }
        }
    };
    r.key_fingerprint = key.as_ref().map(keys::fingerprint);
    if let (Some(k), Some(fp)) = (&r.key_fingerprint, &r.manifest_key_fingerprint) {
        if given.is_some() && k != fp {
            problems.push(format!(
                "{MANIFEST_FILE} names signing key {fp}, but the key given is {k}"
            ));
        }
    }
    r.signature = match (files.get(SIGNATURE_FILE), manifest_bytes, key) {
        (None, _, _) => {
            problems.push(format!(
                "{SIGNATURE_FILE} is missing: the manifest is not signed"
            ));
            SignatureStatus::Missing
        }
        (Some(sig), Some(mb), Some(k)) => {
            if keys::verify(&k, mb, sig) {
                SignatureStatus::Valid
            } else {
                problems.push(format!(
                    "signature does not match: {SIGNATURE_FILE} is not a signature of this {MANIFEST_FILE} by key {} \
(the manifest or the signature was changed, or another key signed it)",
                    keys::fingerprint(&k)
                ));
                SignatureStatus::Invalid
            }
        }
        (Some(_), None, _) => {
            problems.push(format!(
                "{SIGNATURE_FILE}: not checked (there is no {MANIFEST_FILE} for it to sign)"
            ));
            SignatureStatus::Unchecked
        }
        _ => {
            problems.push(format!(
                "{SIGNATURE_FILE}: not checked (no key to check with)"
            ));
            SignatureStatus::Unchecked
        }
    };

    // The files.
    if let Some(m) = &parsed {
        for (name, entry) in &m.files {
            let check = match files.get(name) {
                None => {
                    problems.push(format!("{name} is missing"));
                    FileCheck {
                        name: name.clone(),
                        status: FileStatus::Missing,
                        expected_sha256: Some(entry.sha256.clone()),
                        actual_sha256: None,
                    }
                }
                Some(bytes) => {
                    let actual = manifest::sha256_hex(bytes);
                    let status = if actual == entry.sha256 {
                        FileStatus::Intact
                    } else {
                        problems.push(format!(
                            "{name} changed: SHA-256 {actual}, the manifest records {}",
                            entry.sha256
                        ));
                        FileStatus::Changed
                    };
                    FileCheck {
                        name: name.clone(),
                        status,
                        expected_sha256: Some(entry.sha256.clone()),
                        actual_sha256: Some(actual),
                    }
                }
            };
            r.files.push(check);
        }
    }
    for (name, bytes) in files {
        let listed = parsed.as_ref().is_some_and(|m| m.files.contains_key(name));
        if listed || name == MANIFEST_FILE || name == SIGNATURE_FILE {
            continue;
        }
        if parsed.is_some() {
            problems.push(format!("{name} was added: the manifest does not list it"));
            r.files.push(FileCheck {
                name: name.clone(),
                status: FileStatus::Added,
                expected_sha256: None,
                actual_sha256: Some(manifest::sha256_hex(bytes)),
            });
        }
    }
    r.files.sort_by(|a, b| a.name.cmp(&b.name));
    r.intact = problems.is_empty()
        && r.signature == SignatureStatus::Valid
        && parsed.is_some()
        && r.files.iter().all(|f| f.status == FileStatus::Intact);
    r.problems = problems;
    r
}
