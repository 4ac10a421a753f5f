//! `report.html`: one self-contained, bilingual (Chinese/English) page printable on A4, worded as
//! a suspected violation (疑似违法用地线索) and a lead for a field check, never a verdict.
//!
//! Pure: the finding, the manifest and the PNG bytes in, HTML text out. Nothing that names the run
//! (run id, created_at, packet version) appears in it, so the same finding gives the same bytes.

use super::input::PacketInput;
use super::manifest::Manifest;
use super::render::{CHANGE_RGB, PARCEL_RGB, PERMIT_RGB};
use base64::Engine;
use geo::{BoundingRect, MultiPolygon};
use serde_json::Value;
use std::fmt::Write;

/// The chips as PNG bytes, embedded as data URIs.
#[derive(Debug, Clone, Copy)]
pub struct Pictures<'a> {
    /// `before.png`.
    pub before: &'a [u8],
    /// `after.png`.
    pub after: &'a [u8],
    /// `change.png`.
    pub change: &'a [u8],
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as short text for a table cell.
fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

/// Every scalar of a JSON value with its path (`measured.piece_area_m2`, `rules[0].reason`).
pub fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::Array(_) => out.push((prefix.to_string(), "[]".into())),
        scalar => out.push((prefix.to_string(), value_text(scalar))),
    }
}

/// What the rule trace says about a permit: (status, reason), when it says anything.
pub fn permit_verdict(trace: &Value, permit_id: &str) -> Option<(String, String)> {
    let list = trace.get("permits")?.as_array()?;
    let p = list
        .iter()
        .find(|p| p.get("permit_id").and_then(Value::as_str) == Some(permit_id))?;
    let text = |k: &str| p.get(k).map(value_text).unwrap_or_default();
    Some((text("status"), text("reason")))
}

fn status_zh(status: &str) -> &'static str {
    match status {
        "explains" => "可解释该变化 explains the change",
        "not_yet_valid" => "尚未生效 not yet valid",
        "expired" => "已过期 expired",
        "use_mismatch" => "用途不符 use does not match",
        _ => "",
    }
}

fn hex_colour(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

fn date_text(a: &super::input::Acquisition) -> String {
    a.acquired_at
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "未知 unknown".into())
}

fn sensor_text(a: &super::input::Acquisition) -> String {
    let mut s = a.sensor_kind.clone().unwrap_or_else(|| "unknown".into());
    if let Some(p) = &a.platform {
        let _ = write!(s, " ({p})");
    }
    s
}

/// 1, 2, 2.5 or 5 × 10ⁿ: a tick spacing giving about `n` ticks over `span`.
fn tick_step(span: f64, n: f64) -> f64 {
    let raw = span / n;
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= raw)
        .unwrap_or(10.0 * p)
}

/// A locator map: the parcel, permits, change and chip extent in the working CRS, with coordinate
/// ticks on the frame.
fn locator_svg(input: &PacketInput) -> String {
    let chip = &input.before_chip;
    let (h, w) = chip.valid.dim();
    let g = chip.geo_transform;
    let corners = [
        (0.0, 0.0),
        (w as f64, 0.0),
        (w as f64, h as f64),
        (0.0, h as f64),
    ];
    let chip_ring: Vec<(f64, f64)> = corners
        .iter()
        .map(|(c, r)| (g[0] + c * g[1] + r * g[2], g[3] + c * g[4] + r * g[5]))
        .collect();
    let mut min = (f64::INFINITY, f64::INFINITY);
    let mut max = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut grow = |x: f64, y: f64| {
        if x.is_finite() && y.is_finite() {
            min = (min.0.min(x), min.1.min(y));
            max = (max.0.max(x), max.1.max(y));
        }
    };
    for (x, y) in &chip_ring {
        grow(*x, *y);
    }
    let polys: Vec<&MultiPolygon<f64>> = std::iter::once(&input.parcel_polygon)
        .chain(std::iter::once(&input.change_polygon))
        .chain(input.permits.iter().map(|p| &p.footprint))
        .collect();
    for m in &polys {
        if let Some(r) = m.bounding_rect() {
            grow(r.min().x, r.min().y);
            grow(r.max().x, r.max().y);
        }
    }
    if !(min.0.is_finite() && max.0 > min.0 && max.1 > min.1) {
        return String::new();
    }
    let pad = 0.06 * (max.0 - min.0).max(max.1 - min.1);
    let (x0, y0, x1, y1) = (min.0 - pad, min.1 - pad, max.0 + pad, max.1 + pad);
    // 600 × (aspect) user units, with a 70-unit margin left and 30 below for tick labels.
    let (mx, my, plot_w) = (78.0, 14.0, 560.0);
    let s = plot_w / (x1 - x0);
    let plot_h = (y1 - y0) * s;
    let (vw, vh) = (mx + plot_w + 14.0, my + plot_h + 34.0);
    let px = |x: f64| mx + (x - x0) * s;
    let py = |y: f64| my + (y1 - y) * s;
    let path = |m: &MultiPolygon<f64>| -> String {
        let mut d = String::new();
        for p in &m.0 {
            for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
                for (i, c) in ring.coords().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.1} {:.1} ",
                        if i == 0 { "M" } else { "L" },
                        px(c.x),
                        py(c.y)
                    );
                }
                d.push('Z');
            }
        }
        d
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"locator\" viewBox=\"0 0 {vw:.0} {vh:.0}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"locator map\">\
<rect x=\"{mx}\" y=\"{my}\" width=\"{plot_w:.1}\" height=\"{plot_h:.1}\" fill=\"#f3f4f6\" stroke=\"#111827\"/>"
    );
    let _ = write!(
        svg,
        "<path d=\"{}\" fill=\"{}\" fill-opacity=\"0.25\" stroke=\"#8a6d00\" stroke-width=\"2\"/>",
        path(&input.parcel_polygon),
        hex_colour(PARCEL_RGB)
    );
    for p in &input.permits {
        let _ = write!(
            svg,
            "<path d=\"{}\" fill=\"none\" stroke=\"#0891b2\" stroke-width=\"2\" stroke-dasharray=\"8 5\"/>",
            path(&p.footprint)
        );
    }
    let _ = write!(
        svg,
        "<path d=\"{}\" fill=\"{}\" fill-opacity=\"0.45\" stroke=\"#b91c1c\" stroke-width=\"2.5\"/>",
        path(&input.change_polygon),
        hex_colour(CHANGE_RGB)
    );
    let chip_path: String = chip_ring
        .iter()
        .enumerate()
        .map(|(i, (x, y))| {
            format!(
                "{}{:.1} {:.1} ",
                if i == 0 { "M" } else { "L" },
                px(*x),
                py(*y)
            )
        })
        .collect();
    let _ = write!(
        svg,
        "<path d=\"{chip_path}Z\" fill=\"none\" stroke=\"#6b7280\" stroke-width=\"1\" stroke-dasharray=\"3 3\"/>"
    );
    let step = tick_step((x1 - x0).max(y1 - y0), 4.0);
    let mut t = (x0 / step).ceil() * step;
    while t <= x1 {
        let x = px(t);
        let yb = my + plot_h;
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{yb:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#111827\"/>\
<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{t:.0}</text>",
            yb + 6.0,
            yb + 19.0
        );
        t += step;
    }
    let mut t = (y0 / step).ceil() * step;
    while t <= y1 {
        let y = py(t);
        let _ = write!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{mx}\" y2=\"{y:.1}\" stroke=\"#111827\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{t:.0}</text>",
            mx - 6.0,
            mx - 8.0,
            y + 4.0
        );
        t += step;
    }
    // North arrow (the working CRS is north-up on the map).
    let (ax, ay) = (mx + plot_w - 22.0, my + 12.0);
    let _ = write!(
        svg,
        "<path d=\"M{ax:.1} {ay:.1} l7 20 l-7 -5 l-7 5 Z\" fill=\"#111827\"/>\
<text x=\"{ax:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" font-weight=\"bold\">N</text>",
        ay + 34.0
    );
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{} (m)</text></svg>",
        mx + plot_w / 2.0,
        vh - 2.0,
        esc(&crs_label(&input.working_crs))
    );
    svg
}

/// `EPSG:4549`, or `working CRS (WKT in manifest.json)` for a WKT.
pub fn crs_label(crs: &str) -> String {
    if crs.len() <= 24 && !crs.contains('[') {
        crs.to_string()
    } else {
        "working CRS (WKT in manifest.json)".into()
    }
}

fn row(html: &mut String, zh: &str, en: &str, value: &str) {
    let _ = write!(
        html,
        "<tr><th>{} <span class=\"en\">{}</span></th><td>{}</td></tr>",
        esc(zh),
        esc(en),
        value
    );
}

fn data_uri(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

const STYLE: &str = r#"
@page { size: A4; margin: 12mm 12mm 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", "DejaVu Sans", sans-serif;
  font-size: 10.5pt; line-height: 1.4; color: #111827; max-width: 186mm; margin: 0 auto; padding: 6mm 0; }
h1 { font-size: 17pt; margin: 0 0 2mm; }
h2 { font-size: 12.5pt; margin: 6mm 0 2mm; padding-bottom: 1mm; border-bottom: 1.5pt solid #1f2937; break-after: avoid; }
h3 { font-size: 11pt; margin: 4mm 0 1.5mm; break-after: avoid; }
.en { color: #4b5563; font-weight: normal; }
.notice { border: 1.5pt solid #b45309; background: #fffbeb; padding: 2.5mm 3mm; margin: 3mm 0; }
.case { font-size: 11pt; margin: 1mm 0; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 2mm; break-inside: auto; }
tr { break-inside: avoid; }
th, td { border: 0.6pt solid #9ca3af; padding: 1mm 1.5mm; text-align: left; vertical-align: top; }
th { background: #f3f4f6; width: 38%; font-weight: 600; }
table.grid th { width: auto; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: "DejaVu Sans Mono", monospace; font-size: 8.5pt; word-break: break-all; }
.pictures { display: flex; gap: 3mm; flex-wrap: wrap; }
figure { margin: 0; flex: 0 1 calc(50% - 1.5mm); break-inside: avoid; }
figure img { width: 100%; height: auto; border: 0.6pt solid #9ca3af; }
figcaption { font-size: 9pt; }
svg.locator { width: 100%; max-height: 82mm; }
.locator-box { break-inside: avoid; }
.key span.sw { display: inline-block; width: 9mm; height: 2.5mm; vertical-align: middle; margin: 0 1.5mm 0 4mm; }
.sign { height: 12mm; }
.small { font-size: 8.5pt; }
@media print { body { padding: 0; } section { break-inside: auto; } .pagebreak { break-before: page; } }
"#;

/// The report's HTML.
pub fn render(input: &PacketInput, m: &Manifest, pics: &Pictures) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let case = esc(&input.case_id);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"generator\" content=\"landwatch {}\">\n\
<title>疑似违法用地线索 Suspected land-use violation lead — {case}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&input.software_version)
    );
    // Header.
    let _ = write!(
        h,
        "<header>\n<h1>疑似违法用地线索 <span class=\"en\">Suspected land-use violation — lead</span></h1>\n\
<p class=\"case\">案件编号 <span class=\"en\">Case</span> <b>{case}</b> · 图斑 <span class=\"en\">Finding</span> <b>{}</b> · 地块 <span class=\"en\">Parcel</span> <b>{}</b></p>\n\
<p class=\"notice\"><b>线索，非定性结论。</b>本材料由卫星/无人机影像变化检测自动生成，仅提供疑似违法用地线索，不得直接作为行政处罚依据；须经实地核查确认（自然资发〔2023〕258号）。<br>\
<span class=\"en\"><b>A lead, not a verdict.</b> Generated automatically from change detection on satellite/drone imagery, this packet records a <i>suspected</i> violation only. \
It may not by itself ground a penalty: a field check is required (Ministry of Natural Resources notice 自然资发〔2023〕258号).</span></p>\n</header>\n",
        esc(&input.finding_id),
        esc(&input.parcel_id)
    );

    // 1 Summary.
    h.push_str(
        "<section id=\"summary\">\n<h2>1 概要 <span class=\"en\">Summary</span></h2>\n<table>",
    );
    row(
        &mut h,
        "疑似类型",
        "Suspected kind",
        &esc(&input.kind_label),
    );
    row(
        &mut h,
        "触发规则",
        "Rule",
        &format!(
            "<code>{}</code> ({})",
            esc(&input.rule_id),
            esc(&input.kind)
        ),
    );
    row(&mut h, "严重程度", "Severity", &esc(&input.severity));
    row(&mut h, "地类变化", "Transition", &esc(&input.transition));
    row(
        &mut h,
        "疑似面积",
        "Suspected area",
        &format!(
            "{:.1} m² = {:.2} 亩 mu = {:.4} ha",
            input.area_m2,
            input.area_mu,
            input.area_m2 / 10_000.0
        ),
    );
    row(
        &mut h,
        "置信度",
        "Confidence",
        &format!("{:.2}", input.confidence),
    );
    row(
        &mut h,
        "批准用途",
        "Approved use",
        &format!(
            "{} <span class=\"en\">{}</span>",
            esc(&input.approved_use_zh),
            esc(&input.approved_use)
        ),
    );
    let controls = if input.control_layers.is_empty() {
        "— none".to_string()
    } else {
        input
            .control_layers
            .iter()
            .map(|c| {
                let zh = match c.as_str() {
                    "basic_farmland" => "永久基本农田 ",
                    "eco_redline" => "生态保护红线 ",
                    _ => "",
                };
                format!("{zh}<span class=\"en\">{}</span>", esc(c))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    row(&mut h, "管控图层", "Control layers", &controls);
    h.push_str("</table>\n</section>\n");

    // 2 Where.
    let c = &m.location.centroid;
    h.push_str("<section id=\"where\">\n<h2>2 位置 <span class=\"en\">Where</span></h2>\n<table>");
    row(
        &mut h,
        "中心点（工作坐标系）",
        "Centre (working CRS)",
        &format!(
            "X (E) {:.2} · Y (N) {:.2} · {}",
            c.x,
            c.y,
            esc(&crs_label(&input.working_crs))
        ),
    );
    row(
        &mut h,
        "中心点（WGS84）",
        "Centre (WGS84)",
        &format!(
            "{:.6}° E, {:.6}° N <span class=\"en\">(lon, lat; decimal degrees)</span>",
            c.lon, c.lat
        ),
    );
    row(&mut h, "地块编号", "Parcel id", &esc(&input.parcel_id));
    h.push_str("</table>\n<div class=\"locator-box\">\n<h3>区位图 <span class=\"en\">Locator map</span></h3>\n");
    let _ = writeln!(
        h,
        "<p class=\"key small\"><span class=\"sw\" style=\"background:{}\"></span>疑似变化 <span class=\"en\">suspected change</span>\
<span class=\"sw\" style=\"background:{}\"></span>地块 <span class=\"en\">parcel</span>\
<span class=\"sw\" style=\"background:repeating-linear-gradient(90deg,{} 0 6px,transparent 6px 10px)\"></span>许可范围 <span class=\"en\">permit footprint</span>\
<span class=\"sw\" style=\"border:1px dashed #6b7280\"></span>影像范围 <span class=\"en\">chip extent</span></p>",
        hex_colour(CHANGE_RGB),
        hex_colour(PARCEL_RGB),
        hex_colour(PERMIT_RGB)
    );
    h.push_str(&locator_svg(input));
    h.push_str("\n</div>");
    h.push_str("\n<h3>界址点坐标备忘 <span class=\"en\">Coordinate memorandum (vertices of the change polygon)</span></h3>\n");
    let _ = write!(
        h,
        "<table class=\"grid\"><thead><tr><th>多边形/环/点 <span class=\"en\">poly/ring/pt</span></th><th class=\"num\">X (E)</th><th class=\"num\">Y (N)</th>\
<th class=\"num\">经度 <span class=\"en\">lon</span></th><th class=\"num\">纬度 <span class=\"en\">lat</span></th></tr></thead><tbody>"
    );
    for v in &m.location.change_polygon_vertices {
        let _ = write!(
            h,
            "<tr><td>{}/{}/{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.7}</td><td class=\"num\">{:.7}</td></tr>",
            v.polygon, v.ring, v.point, v.at.x, v.at.y, v.at.lon, v.at.lat
        );
    }
    h.push_str("</tbody></table>\n</section>\n");

    // 3 What.
    h.push_str("<section id=\"what\" class=\"pagebreak\">\n<h2>3 影像对比 <span class=\"en\">What: before and after</span></h2>\n<div class=\"pictures\">");
    for (zh, en, png, date) in [
        ("前时相", "Before", pics.before, &input.before),
        ("后时相", "After", pics.after, &input.after),
    ] {
        let _ = write!(
            h,
            "<figure><img alt=\"{en}\" src=\"{}\"><figcaption>{zh} <span class=\"en\">{en}</span>: {} · {}</figcaption></figure>",
            data_uri(png),
            esc(&date_text(date)),
            esc(&sensor_text(date))
        );
    }
    let _ = write!(
        h,
        "<figure><img alt=\"Change score\" src=\"{}\"><figcaption>变化强度 <span class=\"en\">Change score (heat map, {:.1}–{:.1})</span></figcaption></figure>",
        data_uri(pics.change),
        m.rendering.score_range[0],
        m.rendering.score_range[1]
    );
    h.push_str("</div>\n<p class=\"small\">两期影像使用同一拉伸（两期有效像元合并的 2–98% 分位数），颜色差异反映地物变化而非显示设置。灰色斜线为无观测（云、无数据）。\
<span class=\"en\">Both dates use one contrast stretch (2–98 % of the valid pixels of both dates together), so colour differences reflect the ground, not display settings. \
Grey hatching marks pixels without an observation (cloud, no data). Red: suspected change; yellow: parcel; cyan dashed: permit footprints.</span></p>\n</section>\n");

    // 4 When.
    h.push_str("<section id=\"when\">\n<h2>4 时间与数据源 <span class=\"en\">When: acquisitions and sources</span></h2>\n<table>");
    row(
        &mut h,
        "前时相",
        "Before",
        &format!(
            "{} · {}",
            esc(&date_text(&input.before)),
            esc(&sensor_text(&input.before))
        ),
    );
    row(
        &mut h,
        "后时相",
        "After",
        &format!(
            "{} · {}",
            esc(&date_text(&input.after)),
            esc(&sensor_text(&input.after))
        ),
    );
    h.push_str("</table>\n<table class=\"grid\"><thead><tr><th>时相 <span class=\"en\">date</span></th><th>源文件 <span class=\"en\">source file</span></th><th>SHA-256</th></tr></thead><tbody>");
    for s in &input.sources {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(&s.date),
            esc(&s.path),
            esc(&s.sha256)
        );
    }
    h.push_str("</tbody></table>\n</section>\n");

    // 5 Why.
    h.push_str("<section id=\"why\">\n<h2>5 判定依据 <span class=\"en\">Why: rule and rule trace</span></h2>\n");
    let trace = &input.rule_trace;
    if let Some(rules) = trace.get("rules").and_then(Value::as_array) {
        h.push_str("<h3>已评估规则 <span class=\"en\">Rules considered</span></h3>\n<table class=\"grid\"><thead><tr><th>规则 <span class=\"en\">rule</span></th><th>触发 <span class=\"en\">fired</span></th><th>原因 <span class=\"en\">reason</span></th></tr></thead><tbody>");
        for r in rules {
            let get = |k: &str| r.get(k).map(value_text).unwrap_or_default();
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&get("rule_id")),
                esc(&get("fired")),
                esc(&get("reason"))
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("<h3>核查许可 <span class=\"en\">Permits consulted</span></h3>\n");
    if input.permits.is_empty() {
        h.push_str("<p>无相关许可 <span class=\"en\">No permit touches the change.</span></p>\n");
    } else {
        h.push_str("<table class=\"grid\"><thead><tr><th>许可编号 <span class=\"en\">permit</span></th><th>类型/用途 <span class=\"en\">kind / use</span></th><th>有效期 <span class=\"en\">valid</span></th><th>结论 <span class=\"en\">status and reason</span></th></tr></thead><tbody>");
        for p in &input.permits {
            let (status, reason) = permit_verdict(trace, &p.permit_id)
                .unwrap_or_else(|| (String::new(), "see the rule trace".into()));
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{} / {}</td><td>{} – {}</td><td>{} <code>{}</code><br>{}</td></tr>",
                esc(&p.permit_id),
                esc(&p.kind),
                esc(&p.permitted_use),
                esc(p.valid_from.as_deref().unwrap_or("—")),
                esc(p.valid_to.as_deref().unwrap_or("—")),
                esc(status_zh(&status)),
                esc(&status),
                esc(&reason)
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("<h3>规则追踪（全文） <span class=\"en\">Full rule trace</span></h3>\n<table class=\"grid small\"><thead><tr><th>字段 <span class=\"en\">field</span></th><th>值 <span class=\"en\">value</span></th></tr></thead><tbody>");
    let mut flat = Vec::new();
    flatten("", trace, &mut flat);
    for (k, v) in &flat {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            esc(k),
            esc(v)
        );
    }
    h.push_str("</tbody></table>\n</section>\n");

    // 6 Integrity.
    h.push_str("<section id=\"integrity\">\n<h2>6 证据完整性 <span class=\"en\">Integrity</span></h2>\n<table>");
    row(
        &mut h,
        "证据包指纹",
        "Packet fingerprint (content SHA-256)",
        &format!("<code>{}</code>", esc(&m.content_sha256)),
    );
    row(
        &mut h,
        "签名公钥指纹",
        "Signing key fingerprint (SHA-256)",
        &format!("<code>{}</code>", esc(&m.signing.key_fingerprint_sha256)),
    );
    row(
        &mut h,
        "软件版本",
        "Software",
        &format!(
            "landwatch {} · commit <code>{}</code>",
            esc(&input.software_version),
            esc(&input.git_commit)
        ),
    );
    let detector = match &input.detector {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    row(
        &mut h,
        "检测方法",
        "Detector",
        &format!("<code>{}</code>", esc(&detector)),
    );
    row(
        &mut h,
        "配置文件哈希",
        "Configuration SHA-256",
        &format!("<code>{}</code>", esc(&input.config_sha256)),
    );
    h.push_str("</table>\n<p class=\"small\">核验：<code>landwatch verify &lt;证据包目录或 zip&gt; --pubkey 局公钥.pub</code> 重新计算全部文件的 SHA-256 并校验 manifest.json 的 Ed25519 签名；上述指纹应与 manifest.json 中的 <code>content_sha256</code> 和 <code>signing.key_fingerprint_sha256</code> 一致。\
<span class=\"en\">To check: <code>landwatch verify &lt;packet directory or zip&gt; --pubkey bureau.pub</code> recomputes the SHA-256 of every file and checks the Ed25519 signature of manifest.json; \
the fingerprints above must equal <code>content_sha256</code> and <code>signing.key_fingerprint_sha256</code> in manifest.json (see docs/evidence-manifest.md).</span></p>\n</section>\n");

    // 7 Field check.
    h.push_str("<section id=\"field-check\">\n<h2>7 实地核查记录 <span class=\"en\">Field check record</span></h2>\n<table>");
    for (zh, en) in [
        ("核查日期", "Date of check"),
        ("核查人员", "Officers"),
        ("现场情况", "Situation found"),
        (
            "结论（属实/不属实/需进一步调查）",
            "Conclusion (confirmed / not confirmed / further investigation)",
        ),
        ("签名", "Signatures"),
    ] {
        row(&mut h, zh, en, "<div class=\"sign\"></div>");
    }
    h.push_str("</table>\n</section>\n</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn flattens_nested_traces() {
        let mut out = Vec::new();
        flatten(
            "",
            &json!({"a": {"b": 1}, "c": [{"d": "x"}], "e": []}),
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                ("a.b".to_string(), "1".to_string()),
                ("c[0].d".to_string(), "x".to_string()),
                ("e".to_string(), "[]".to_string()),
            ]
        );
    }

    #[test]
    fn tick_steps_are_round() {
        assert_eq!(tick_step(170.0, 4.0), 50.0);
        assert_eq!(tick_step(90.0, 4.0), 25.0);
    }
}
