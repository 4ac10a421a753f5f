//! Evidence packets: writing, versioning, determinism, tampering caught by the real `verify`
//! binary, zips, snapshots of the manifest, the report's structure and a chip, and the report
//! rendered by headless Chromium.

use crate::common::{copy_dir, run, scan_config, scratch, stderr, stdout};
use landwatch::evidence::{
    self, example_input, write_packet, PacketInput, PacketOptions, SigningKey, WrittenPacket,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file of a packet.
const PACKET_FILES: [&str; 10] = [
    "after.png",
    "after.tif",
    "before.png",
    "before.tif",
    "change.png",
    "change.tif",
    "finding.geojson",
    "manifest.json",
    "manifest.sig",
    "report.html",
];

/// A fixed key, so that snapshots do not depend on randomness.
fn fixed_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// A key pair written by the real `keygen`; returns (signing key, public key file).
fn keygen(dir: &Path, name: &str) -> (SigningKey, PathBuf) {
    let o = run(["keygen", "--out", dir.to_str().unwrap(), "--name", name]);
    assert!(o.status.success(), "keygen failed: {}", stderr(&o));
    let key = evidence::load_signing_key(&dir.join(format!("{name}.key"))).unwrap();
    let fp = evidence::fingerprint(&key.verifying_key());
    assert!(stdout(&o).contains(&fp), "keygen prints the fingerprint");
    (key, dir.join(format!("{name}.pub")))
}

fn write(dir: &Path, input: &PacketInput, key: &SigningKey, zip: bool) -> WrittenPacket {
    write_packet(dir, input, key, &PacketOptions { zip }).unwrap()
}

fn verify_args(packet: &Path, pubkey: Option<&Path>, json: bool) -> std::process::Output {
    let mut args = vec!["verify".to_string(), packet.to_str().unwrap().to_string()];
    if let Some(k) = pubkey {
        args.push("--pubkey".into());
        args.push(k.to_str().unwrap().into());
    }
    if json {
        args.push("--json".into());
    }
    run(args)
}

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path()).unwrap(),
        );
    }
    out
}

#[test]
fn keygen_writes_a_private_key_only_the_owner_reads_and_never_overwrites() {
    let dir = scratch("evidence-keygen");
    let (key, public) = keygen(&dir, "bureau");
    let pk = evidence::load_verifying_key(&public).unwrap();
    assert_eq!(pk, key.verifying_key());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("bureau.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(["keygen", "--out", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("bureau.key"), "{}", stderr(&again));
}

#[test]
fn an_untouched_packet_verifies_as_a_directory_a_zip_and_unzipped() {
    let dir = scratch("evidence-intact");
    let (key, public) = keygen(&dir, "bureau");
    let packets = dir.join("packets");
    let w = write(&packets, &example_input(), &key, true);
    assert_eq!(w.dir, packets.join("320509-20261128-0042"));
    assert_eq!(w.version, 1);
    let names: Vec<String> = files_of(&w.dir).into_keys().collect();
    let mut expected: Vec<String> = PACKET_FILES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(names, expected);

    let o = verify_args(&w.dir, Some(&public), false);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("INTACT") && stdout(&o).contains("signature VALID"));
    assert!(stdout(&o).contains(&w.content_sha256));

    // Without --pubkey the embedded key is used, and the output says it proves nothing about who signed.
    let o = verify_args(&w.dir, None, false);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("not independently checked"),
        "{}",
        stdout(&o)
    );

    // Straight from the zip.
    let zip = w.zip.clone().unwrap();
    assert_eq!(zip, packets.join("320509-20261128-0042.zip"));
    let o = verify_args(&zip, Some(&public), false);
    assert!(o.status.success(), "{}", stdout(&o));

    // Unzipped by someone else: the archive holds one folder named after the packet.
    let (top, files) = evidence::archive::read_zip(&zip).unwrap();
    assert_eq!(top, "320509-20261128-0042");
    let unzipped = dir.join("unzipped").join(&top);
    std::fs::create_dir_all(&unzipped).unwrap();
    for (name, bytes) in &files {
        std::fs::write(unzipped.join(name), bytes).unwrap();
    }
    let o = verify_args(&unzipped, Some(&public), true);
    assert!(o.status.success(), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["intact"], true);
    assert_eq!(v["signature"], "valid");
    assert_eq!(v["key"]["source"], "file");
    assert_eq!(v["files"].as_array().unwrap().len(), 8);

    // The zip itself is deterministic: writing it again gives the same bytes.
    let before = std::fs::read(&zip).unwrap();
    evidence::write_zip(&w.dir).unwrap();
    assert_eq!(std::fs::read(&zip).unwrap(), before);
}

/// Flips one byte in the middle of a file.
fn flip(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn verify_names_every_changed_missing_or_added_file_and_a_bad_signature() {
    let dir = scratch("evidence-tamper");
    let (key, public) = keygen(&dir, "bureau");
    let w = write(&dir.join("packets"), &example_input(), &key, false);

    for name in [
        "before.png",
        "after.png",
        "change.png",
        "before.tif",
        "after.tif",
        "change.tif",
        "finding.geojson",
        "report.html",
    ] {
        let copy = dir.join(format!("flip-{name}"));
        copy_dir(&w.dir, &copy);
        flip(&copy.join(name));
        let o = verify_args(&copy, Some(&public), false);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stdout(&o));
        let out = stdout(&o);
        assert!(out.contains(&format!("CHANGED {name}")), "{name}: {out}");
        assert!(out.contains("signature VALID"), "{name}: {out}");
        assert!(out.contains("NOT INTACT"), "{name}: {out}");
    }

    // A byte of the manifest: the signature no longer matches (and the JSON may not parse).
    let copy = dir.join("flip-manifest");
    copy_dir(&w.dir, &copy);
    flip(&copy.join("manifest.json"));
    let o = verify_args(&copy, Some(&public), false);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("signature does not match"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("manifest.json"), "{}", stdout(&o));

    // A byte of the signature.
    let copy = dir.join("flip-sig");
    copy_dir(&w.dir, &copy);
    flip(&copy.join("manifest.sig"));
    let o = verify_args(&copy, Some(&public), false);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("signature DOES NOT MATCH"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("manifest.sig"), "{}", stdout(&o));

    // A deleted file.
    let copy = dir.join("deleted");
    copy_dir(&w.dir, &copy);
    std::fs::remove_file(copy.join("change.tif")).unwrap();
    let o = verify_args(&copy, Some(&public), false);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("MISSING change.tif"), "{}", stdout(&o));

    // A deleted signature.
    let copy = dir.join("unsigned");
    copy_dir(&w.dir, &copy);
    std::fs::remove_file(copy.join("manifest.sig")).unwrap();
    let o = verify_args(&copy, Some(&public), false);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("manifest.sig is missing"),
        "{}",
        stdout(&o)
    );

    // An added file.
    let copy = dir.join("added");
    copy_dir(&w.dir, &copy);
    std::fs::write(copy.join("notes.txt"), "added later").unwrap();
    let o = verify_args(&copy, Some(&public), true);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["intact"], false);
    let added: Vec<&serde_json::Value> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "added")
        .collect();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["name"], "notes.txt");

    // The signature swapped for one by another key over the same manifest.
    let other = SigningKey::from_bytes(&[9u8; 32]);
    let copy = dir.join("other-key");
    copy_dir(&w.dir, &copy);
    let manifest = std::fs::read(copy.join("manifest.json")).unwrap();
    std::fs::write(copy.join("manifest.sig"), evidence::sign(&other, &manifest)).unwrap();
    for pubkey in [Some(public.as_path()), None] {
        let o = verify_args(&copy, pubkey, false);
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        assert!(
            stdout(&o).contains("signature does not match"),
            "{}",
            stdout(&o)
        );
    }

    // A forger who also replaces the embedded key: only --pubkey catches it, and without it the
    // output warns that the key was not checked.
    let copy = dir.join("forged");
    copy_dir(&w.dir, &copy);
    let mut m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let vk = other.verifying_key();
    m["signing"]["public_key"] = hex::encode(vk.as_bytes()).into();
    m["signing"]["key_fingerprint_sha256"] = evidence::fingerprint(&vk).into();
    let forged = serde_json::to_vec_pretty(&m).unwrap();
    std::fs::write(copy.join("manifest.json"), &forged).unwrap();
    std::fs::write(copy.join("manifest.sig"), evidence::sign(&other, &forged)).unwrap();
    let o = verify_args(&copy, None, false);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("not independently checked"));
    let o = verify_args(&copy, Some(&public), false);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("signature does not match"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("but the key given is"),
        "{}",
        stdout(&o)
    );

    // A zip with a changed entry.
    let copy = dir.join("zipped");
    copy_dir(&w.dir, &copy);
    flip(&copy.join("after.png"));
    let zip = evidence::write_zip(&copy).unwrap();
    let o = verify_args(&zip, Some(&public), false);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("CHANGED after.png"), "{}", stdout(&o));
}

#[test]
fn a_crash_leaves_no_packet_and_a_changed_finding_gets_a_new_version() {
    let dir = scratch("evidence-versions");
    let key = fixed_key();
    let packets = dir.join("packets");
    let input = example_input();
    let v1 = write(&packets, &input, &key, false);
    let v1_files = files_of(&v1.dir);

    // What a crash mid-write leaves: a hidden partial directory without manifest or signature.
    let partial = packets.join(".320509-20261128-0042.partial-99999-0");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("before.png"), &v1_files["before.png"]).unwrap();
    let o = verify_args(&partial, None, false);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("manifest.json is missing"),
        "{}",
        stdout(&o)
    );
    let versions = evidence::packet::existing_versions(&packets, &input.case_id);
    assert_eq!(versions.len(), 1, "{versions:?}");

    // The same finding again (another run): nothing is written, v1 is returned.
    let mut again = input.clone();
    again.run_id = "run-20261129T020000Z".into();
    again.created_at = "2026-11-29T02:11:00Z".into();
    let same = write(&packets, &again, &key, false);
    assert!(same.unchanged);
    assert_eq!(same.dir, v1.dir);
    assert_eq!(same.manifest_sha256, v1.manifest_sha256);
    assert_eq!(files_of(&v1.dir), v1_files);
    assert!(
        !partial.exists(),
        "the crashed writer's leftovers are cleared"
    );

    // The finding changed: v2 beside v1, v1 untouched, v2 names v1.
    let mut changed = again.clone();
    changed.area_m2 = 640.0;
    changed.area_mu = 640.0 / 666.67;
    let v2 = write(&packets, &changed, &key, false);
    assert!(!v2.unchanged);
    assert_eq!(v2.version, 2);
    assert_eq!(v2.dir, packets.join("320509-20261128-0042.v2"));
    assert_ne!(v2.content_sha256, v1.content_sha256);
    assert_eq!(files_of(&v1.dir), v1_files);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v2.dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["packet"]["version"], 2);
    assert_eq!(
        m["packet"]["supersedes"]["directory"],
        "320509-20261128-0042"
    );
    assert_eq!(
        m["packet"]["supersedes"]["manifest_sha256"],
        v1.manifest_sha256.as_str()
    );
    for w in [&v1, &v2] {
        let o = verify_args(&w.dir, None, false);
        assert!(o.status.success(), "{}", stdout(&o));
    }

    // Back to v2's content: unchanged; v3 only for new content.
    let same2 = write(&packets, &changed, &key, false);
    assert!(same2.unchanged && same2.version == 2);
    changed.confidence = 0.5;
    let v3 = write(&packets, &changed, &key, false);
    assert_eq!(v3.version, 3);
    assert_eq!(files_of(&v1.dir), v1_files);
}

#[test]
fn the_same_finding_gives_byte_identical_files_except_the_run_members() {
    let dir = scratch("evidence-determinism");
    let key = fixed_key();
    let a = write(&dir.join("a"), &example_input(), &key, true);
    let mut input = example_input();
    input.run_id = "another-run".into();
    input.created_at = "2027-01-01T00:00:00Z".into();
    let b = write(&dir.join("b"), &input, &key, true);
    let (fa, fb) = (files_of(&a.dir), files_of(&b.dir));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        if name == "manifest.json" || name == "manifest.sig" {
            continue;
        }
        assert!(bytes == &fb[name], "{name} differs between runs");
    }
    assert_eq!(a.content_sha256, b.content_sha256);
    let strip = |b: &[u8]| {
        let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("run_id");
        o.remove("created_at");
        v
    };
    assert_eq!(strip(&fa["manifest.json"]), strip(&fb["manifest.json"]));
    assert_ne!(fa["manifest.json"], fb["manifest.json"]);
}

#[test]
fn manifest_snapshot() {
    let dir = scratch("evidence-snapshot-manifest");
    let w = write(&dir, &example_input(), &fixed_key(), false);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["schema_version"], "landwatch-evidence/1");
    // Every parameter and the whole rule trace are carried over verbatim.
    assert_eq!(m["finding"]["rule_trace"], example_input().rule_trace);
    assert_eq!(m["parameters"], example_input().parameters);
    insta::assert_json_snapshot!("manifest", m, {
        ".run_id" => "[run_id]",
        ".created_at" => "[created_at]",
        ".software.version" => "[version]",
        // The report (and so the fingerprint over the manifest's content) prints the version.
        ".content_sha256" => "[content_sha256]",
        ".files[\"report.html\"]" => "[report]",
    });
}

/// The text of every element with one of these tags, in document order, tags stripped.
fn texts_of(html: &str, tags: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !tags.contains(&name.as_str()) {
            continue;
        }
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let close = format!("</{name}>");
        let Some(end) = rest.find(&close) else { break };
        let inner = &rest[open_end + 1..end];
        let mut text = String::new();
        let mut in_tag = false;
        for ch in inner.chars() {
            match ch {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        out.push(format!(
            "{name}: {}",
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
        rest = &rest[end..];
    }
    out
}

#[test]
fn report_structure_snapshot() {
    let dir = scratch("evidence-snapshot-report");
    let w = write(&dir, &example_input(), &fixed_key(), false);
    let html = std::fs::read_to_string(w.dir.join("report.html")).unwrap();
    // Self-contained: the chips are data URIs, nothing is fetched.
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 3);
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("http://www.w3.org/2000/svg").count()
    );
    assert!(!html.contains("https://"));
    // Worded as a lead.
    assert!(html.contains("疑似违法用地线索") && html.contains("自然资发〔2023〕258号"));
    assert!(html.contains("field check is required"));
    assert!(!html.to_lowercase().contains("illegal"));
    assert!(html.contains(&w.content_sha256));
    assert!(html.contains(&evidence::fingerprint(&fixed_key().verifying_key())));
    assert!(html.contains("@page") && html.contains("A4"));
    let structure = texts_of(&html, &["h1", "h2", "h3", "th", "figcaption"]);
    insta::assert_snapshot!("report_structure", structure.join("\n"));
}

#[test]
fn chip_snapshot() {
    let dir = scratch("evidence-snapshot-chip");
    let w = write(&dir, &example_input(), &fixed_key(), false);
    let bytes = std::fs::read(w.dir.join("after.png")).unwrap();
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    // 160 × 120 px chips are enlarged 3× to 480 × 360, plus a 30 px header and a 66 px footer.
    assert_eq!(img.dimensions(), (480, 456));
    let red = img.pixels().filter(|p| p.0 == [255, 32, 32]).count();
    let yellow = img.pixels().filter(|p| p.0 == [255, 221, 0]).count();
    let cyan = img.pixels().filter(|p| p.0 == [0, 229, 255]).count();
    assert!(
        red > 500 && yellow > 500 && cyan > 100,
        "{red} {yellow} {cyan}"
    );
    insta::assert_snapshot!("after_png_sha256", evidence::manifest::sha256_hex(&bytes));
    // The GeoTIFF twin is georeferenced like the chip and carries the stretched bytes and alpha.
    let ds = gdal::Dataset::open(w.dir.join("after.tif")).unwrap();
    assert_eq!(ds.raster_count(), 4);
    assert_eq!(
        ds.geo_transform().unwrap(),
        example_input().after_chip.geo_transform
    );
    let alpha = ds
        .rasterband(4)
        .unwrap()
        .read_as::<u8>((0, 0), (2, 1), (2, 1), None)
        .unwrap();
    assert_eq!(alpha.data(), &[0, 0], "the cloud corner is transparent");
}

#[test]
fn headless_chromium_renders_the_report_to_png_and_pdf() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "Debian's chromium is needed for this test: run scripts/setup"
    );
    let dir = scratch("evidence-chromium");
    let w = write(&dir.join("packets"), &example_input(), &fixed_key(), false);
    let report = w.dir.join("report.html");
    let url = format!("file://{}", report.display());
    let png = dir.join("report.png");
    let pdf = dir.join("report.pdf");
    for out in [
        format!("--screenshot={}", png.display()),
        format!("--print-to-pdf={}", pdf.display()),
    ] {
        let profile = tempfile::tempdir().unwrap();
        let o = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-pdf-header-footer",
                "--hide-scrollbars",
                "--window-size=1000,2600",
                &format!("--user-data-dir={}", profile.path().display()),
                &out,
                &url,
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "chromium {out}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let png_bytes = std::fs::read(&png).unwrap();
    let shot = image::load_from_memory(&png_bytes).unwrap().to_rgb8();
    assert_eq!(shot.dimensions(), (1000, 2600));
    // Not a blank page: many distinct colours (text, chips, the locator map).
    let mut colours: Vec<[u8; 3]> = shot.pixels().step_by(7).map(|p| p.0).collect();
    colours.sort();
    colours.dedup();
    assert!(colours.len() > 500, "{} colours", colours.len());
    let pdf_bytes = std::fs::read(&pdf).unwrap();
    assert!(pdf_bytes.starts_with(b"%PDF-"));
    assert!(pdf_bytes.len() > 50_000, "{} bytes", pdf_bytes.len());
    // A4 pages: 210 × 297 mm = 595 × 842 points (Skia writes 594.96 × 841.92).
    let text = String::from_utf8_lossy(&pdf_bytes);
    let a4 = text.matches("/MediaBox [0 0 594.95996 841.91998]").count();
    assert!(a4 >= 2, "expected at least two A4 pages, found {a4}");
}

#[test]
fn the_documented_python_recomputes_every_packet_s_fingerprint() {
    let scene = crate::common::scene(1024, 3);
    let out = scratch("evidence-python-fingerprint");
    let o = scan_config(&scene.join("landwatch.toml"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The recipe of docs/evidence-manifest.md, as an independent checker would run it.
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/evidence-manifest.md"),
    )
    .unwrap();
    let recipe = doc
        .split("```python\n")
        .nth(1)
        .and_then(|r| r.split("```").next())
        .expect("the Python recipe in docs/evidence-manifest.md");
    let mut checked = 0;
    for e in std::fs::read_dir(out.join("packets")).unwrap().flatten() {
        let dir = e.path();
        if !dir.join("manifest.json").is_file() {
            continue;
        }
        let py = std::process::Command::new("python3")
            .current_dir(&dir)
            .args(["-c", recipe])
            .output()
            .expect("python3");
        assert!(
            py.status.success(),
            "{}",
            String::from_utf8_lossy(&py.stderr)
        );
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&py.stdout).trim(),
            m["content_sha256"].as_str().unwrap(),
            "{}",
            dir.display()
        );
        checked += 1;
    }
    assert!(checked >= 5, "{checked} packets");
}

/// A rectangle in metres east/south of the example chip's north-west corner.
fn example_rect(e0: f64, s0: f64, e1: f64, s1: f64) -> geo::MultiPolygon<f64> {
    let (x0, y0) = (561_552.0, 3_449_044.0);
    geo::MultiPolygon::new(vec![geo::Polygon::new(
        geo::LineString::from(vec![
            (x0 + e0, y0 - s0),
            (x0 + e1, y0 - s0),
            (x0 + e1, y0 - s1),
            (x0 + e0, y0 - s1),
            (x0 + e0, y0 - s0),
        ]),
        vec![],
    )])
}

#[test]
fn a_packet_of_another_finding_under_the_case_s_name_is_refused_not_superseded() {
    let dir = scratch("evidence-other-finding");
    let key = fixed_key();
    let packets = dir.join("packets");
    let v1 = write(&packets, &example_input(), &key, false);
    let v1_files = files_of(&v1.dir);

    // A lost store numbers another finding, on another parcel elsewhere, with the same case id.
    let mut other = example_input();
    other.finding_id = "00aa00aa00aa00aa".into();
    other.parcel_id = "WJ-000082".into();
    other.change_polygon = example_rect(60.0, 46.0, 75.0, 58.0);
    other.run_id = "run-20261201T020000Z-0001".into();
    let e = write_packet(&packets, &other, &key, &PacketOptions { zip: false })
        .expect_err("another finding's packet is not superseded")
        .to_string();
    assert!(
        e.contains("packets/320509-20261128-0042 holds the packet of another finding"),
        "{e}"
    );
    assert!(
        e.contains(&example_input().parcel_id) && e.contains("WJ-000082"),
        "{e}"
    );
    assert!(
        e.contains("restore the store or move the packets directory aside"),
        "{e}"
    );
    assert_eq!(
        evidence::packet::existing_versions(&packets, &other.case_id).len(),
        1,
        "no v2"
    );
    assert_eq!(
        files_of(&v1.dir),
        v1_files,
        "the existing packet is left as it is"
    );

    // The same case's finding grown on the same ground (another finding id): a new version.
    let mut grown = example_input();
    grown.finding_id = "11bb11bb11bb11bb".into();
    grown.change_polygon = example_rect(28.0, 16.0, 58.0, 46.0);
    let v2 = write(&packets, &grown, &key, false);
    assert_eq!(v2.version, 2);
    assert_eq!(files_of(&v1.dir), v1_files);
}

#[test]
fn verify_warns_when_a_packet_is_found_under_another_case_s_name() {
    let dir = scratch("evidence-renamed");
    let (key, public) = keygen(&dir, "bureau");
    let w = write(&dir.join("packets"), &example_input(), &key, true);
    let o = verify_args(&w.dir, Some(&public), true);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["warnings"], serde_json::json!([]), "{}", stdout(&o));

    // A signed packet copied under another case's directory name, and its zip renamed so.
    let copy = dir.join("elsewhere").join("320509-20261128-0041");
    copy_dir(&w.dir, &copy);
    let zip = dir.join("elsewhere").join("320509-20261128-0041.zip");
    std::fs::copy(w.zip.as_ref().unwrap(), &zip).unwrap();
    for p in [&copy, &zip] {
        let o = verify_args(p, Some(&public), false);
        assert!(
            o.status.success(),
            "still the same evidence: {}",
            stdout(&o)
        );
        let out = stdout(&o);
        assert!(
            out.contains("WARNING")
                && out.contains("\"320509-20261128-0041\"")
                && out.contains("case 320509-20261128-0042"),
            "{out}"
        );
        let o = verify_args(p, Some(&public), true);
        assert!(o.status.success());
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["intact"], true);
        let warnings = v["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0]
            .as_str()
            .unwrap()
            .contains("320509-20261128-0042"));
    }
}

#[test]
fn without_a_manifest_verify_says_the_signature_was_not_checked_for_want_of_a_manifest() {
    let dir = scratch("evidence-no-manifest");
    let (key, public) = keygen(&dir, "bureau");
    let w = write(&dir.join("packets"), &example_input(), &key, false);
    std::fs::remove_file(w.dir.join("manifest.json")).unwrap();
    let o = verify_args(&w.dir, Some(&public), false);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("manifest.sig: not checked (there is no manifest.json for it to sign)"),
        "{out}"
    );
    assert!(!out.contains("no key to check with"), "{out}");
}
