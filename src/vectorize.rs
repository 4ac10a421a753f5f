//! Change regions to polygons in map coordinates: exact pixel-edge outlines (holes kept), merged
//! across cell borders, simplified without changing the area by more than 1%. Pure Rust, no IO.

use crate::detect::RegionStats;
use crate::grid::{Cell, GridDef};
use geo::{
    Area, BooleanOps, Contains, Coord, LineString, MultiPolygon, Point, Polygon, SimplifyVwPreserve,
};
use ndarray::Array2;
use rayon::prelude::*;
use std::collections::HashMap;

/// The labels along the four edges of a cell's core, for joining regions across cell borders.
#[derive(Debug, Clone, Default)]
pub struct EdgeStrips {
    /// Top row, west to east.
    pub north: Vec<u32>,
    /// Bottom row, west to east.
    pub south: Vec<u32>,
    /// Left column, north to south.
    pub west: Vec<u32>,
    /// Right column, north to south.
    pub east: Vec<u32>,
}

impl EdgeStrips {
    /// The edge labels of a core label image.
    pub fn of(labels: &Array2<u32>) -> EdgeStrips {
        let (h, w) = labels.dim();
        if h == 0 || w == 0 {
            return EdgeStrips::default();
        }
        EdgeStrips {
            north: (0..w).map(|x| labels[[0, x]]).collect(),
            south: (0..w).map(|x| labels[[h - 1, x]]).collect(),
            west: (0..h).map(|y| labels[[y, 0]]).collect(),
            east: (0..h).map(|y| labels[[y, w - 1]]).collect(),
        }
    }
}

/// Directed boundary edges leaving each pixel corner.
type EdgeMap = HashMap<(i64, i64), Vec<(i64, i64)>>;

/// Traces every labelled region of a core label image into a polygon in map coordinates.
/// `regions` is the number of labels; `cell` places the core on `grid`.
pub fn trace_regions(
    labels: &Array2<u32>,
    regions: usize,
    grid: &GridDef,
    cell: &Cell,
) -> Vec<MultiPolygon<f64>> {
    let (h, w) = labels.dim();
    // Directed boundary edges per label, between pixel corners (x, y) with y growing south,
    // oriented so the region lies on the right (clockwise on screen).
    let mut edges: Vec<EdgeMap> = vec![HashMap::new(); regions + 1];
    let at = |x: i64, y: i64| -> u32 {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            0
        } else {
            labels[[y as usize, x as usize]]
        }
    };
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let l = at(x, y);
            if l == 0 || l as usize > regions {
                continue;
            }
            let e = &mut edges[l as usize];
            if at(x, y - 1) != l {
                e.entry((x, y)).or_default().push((x + 1, y));
            }
            if at(x + 1, y) != l {
                e.entry((x + 1, y)).or_default().push((x + 1, y + 1));
            }
            if at(x, y + 1) != l {
                e.entry((x + 1, y + 1)).or_default().push((x, y + 1));
            }
            if at(x - 1, y) != l {
                e.entry((x, y + 1)).or_default().push((x, y));
            }
        }
    }
    let (ox, oy) = (cell.core.x, cell.core.y);
    let to_map = |(x, y): (i64, i64)| -> Coord<f64> {
        let (mx, my) = grid.pixel_to_world((ox + x) as f64, (oy + y) as f64);
        Coord { x: mx, y: my }
    };
    edges
        .into_iter()
        .skip(1)
        .map(|mut e| {
            let mut rings: Vec<Vec<(i64, i64)>> = Vec::new();
            let mut starts: Vec<(i64, i64)> = e.keys().copied().collect();
            starts.sort();
            for s in starts {
                while e.get(&s).is_some_and(|v| !v.is_empty()) {
                    rings.push(walk(&mut e, s));
                }
            }
            assemble(
                rings
                    .into_iter()
                    .map(|r| r.into_iter().map(to_map).collect())
                    .collect(),
            )
        })
        .collect()
}

/// Follows edges from `start` until the ring closes; at a corner shared diagonally by two pixels
/// of the region it turns right, keeping the two apart (rings may touch, never cross).
fn walk(e: &mut EdgeMap, start: (i64, i64)) -> Vec<(i64, i64)> {
    let mut ring = vec![start];
    let mut cur = start;
    let mut dir: Option<(i64, i64)> = None;
    while let Some(outs) = e.get_mut(&cur).filter(|o| !o.is_empty()) {
        let k = match (dir, outs.len()) {
            (Some(d), n) if n > 1 => {
                // Right turn in screen coordinates (y down): (dx, dy) -> (-dy, dx).
                let right = (-d.1, d.0);
                outs.iter()
                    .position(|o| (o.0 - cur.0, o.1 - cur.1) == right)
                    .unwrap_or(0)
            }
            _ => 0,
        };
        let next = outs.swap_remove(k);
        dir = Some((next.0 - cur.0, next.1 - cur.1));
        cur = next;
        ring.push(cur);
        if cur == start {
            break;
        }
    }
    ring
}

/// Drops vertices in the middle of straight runs.
fn drop_collinear(ring: Vec<Coord<f64>>) -> Vec<Coord<f64>> {
    if ring.len() < 5 {
        return ring;
    }
    let mut pts: Vec<Coord<f64>> = ring[..ring.len() - 1].to_vec();
    let mut changed = true;
    while changed && pts.len() > 3 {
        changed = false;
        let n = pts.len();
        let mut keep = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b, c) = (pts[(i + n - 1) % n], pts[i], pts[(i + 1) % n]);
            let cross = (b.x - a.x) * (c.y - b.y) - (b.y - a.y) * (c.x - b.x);
            let scale = ((b.x - a.x).abs() + (b.y - a.y).abs()).max(1e-12)
                * ((c.x - b.x).abs() + (c.y - b.y).abs()).max(1e-12);
            if cross.abs() <= 1e-9 * scale {
                changed = true;
            } else {
                keep.push(b);
            }
        }
        if keep.len() < 3 {
            break;
        }
        pts = keep;
    }
    pts.push(pts[0]);
    pts
}

/// Sorts rings into exteriors and the holes inside them; exteriors come out counter-clockwise and
/// holes clockwise (the OGC and RFC 7946 convention).
fn assemble(rings: Vec<Vec<Coord<f64>>>) -> MultiPolygon<f64> {
    let mut exteriors: Vec<Polygon<f64>> = Vec::new();
    let mut holes: Vec<LineString<f64>> = Vec::new();
    for r in rings {
        let r = drop_collinear(r);
        if r.len() < 4 {
            continue;
        }
        // Rings were traced clockwise on screen (y down), which is clockwise in map coordinates
        // (y up) too: exteriors come out with negative signed area, holes with positive.
        let mut ls = LineString::new(r);
        let signed = Polygon::new(ls.clone(), vec![]).signed_area();
        ls.0.reverse();
        if signed < 0.0 {
            exteriors.push(Polygon::new(ls, vec![]));
        } else {
            holes.push(ls);
        }
    }
    for hole in holes {
        let probe = hole.0.first().copied().unwrap_or(Coord { x: 0.0, y: 0.0 });
        // A hole vertex lies on the exterior's boundary at most; test the hole's interior point.
        let inside_pt = interior_probe(&hole).unwrap_or(Point::from(probe));
        if let Some(ext) = exteriors.iter_mut().find(|e| e.contains(&inside_pt)) {
            ext.interiors_push(hole);
        }
    }
    MultiPolygon::new(exteriors)
}

/// A point strictly inside a (hole) ring: the centre of one of its pixels.
fn interior_probe(ring: &LineString<f64>) -> Option<Point<f64>> {
    let poly = Polygon::new(ring.clone(), vec![]);
    let c = ring.0.first()?;
    // Try the four diagonal neighbours of the first vertex at a tiny offset.
    for (dx, dy) in [(1e-6, 1e-6), (-1e-6, 1e-6), (1e-6, -1e-6), (-1e-6, -1e-6)] {
        let p = Point::new(c.x + dx, c.y + dy);
        if poly.contains(&p) {
            return Some(p);
        }
    }
    None
}

/// Simplifies a polygon (Visvalingam–Whyatt, topology-preserving) so that its area changes by at
/// most `max_rel_change`; falls back to the input when no tolerance achieves that.
pub fn simplify_area_bounded(
    m: &MultiPolygon<f64>,
    pixel_area: f64,
    max_rel_change: f64,
) -> MultiPolygon<f64> {
    let area = m.unsigned_area();
    if area <= 0.0 {
        return m.clone();
    }
    let mut eps = 0.5 * pixel_area;
    for _ in 0..6 {
        let s = m.simplify_vw_preserve(eps);
        if ((s.unsigned_area() - area) / area).abs() <= max_rel_change && s.0.len() == m.0.len() {
            return s;
        }
        eps *= 0.4;
    }
    m.clone()
}

/// One piece of a region in one cell, before merging.
#[derive(Debug, Clone)]
pub struct Piece {
    /// The cell's row and column.
    pub cell: (usize, usize),
    /// The cell's id.
    pub cell_id: String,
    /// The region's label in that cell (1-based).
    pub label: u32,
    /// Statistics of the piece.
    pub stats: RegionStats,
    /// The piece's outline (pixel edges, map coordinates).
    pub polygon: MultiPolygon<f64>,
}

/// The pieces of one cell: each labelled region of its core label image, traced (see
/// [`trace_regions`]) and paired with its statistics (`regions[k - 1]` for label `k`).
pub fn cell_pieces(
    labels: &Array2<u32>,
    regions: &[RegionStats],
    grid: &GridDef,
    cell: &Cell,
) -> Vec<Piece> {
    let polys = trace_regions(labels, regions.len(), grid, cell);
    regions
        .iter()
        .zip(polys)
        .enumerate()
        .map(|(i, (stats, polygon))| Piece {
            cell: (cell.row, cell.col),
            cell_id: cell.id.clone(),
            label: i as u32 + 1,
            stats: stats.clone(),
            polygon,
        })
        .collect()
}

/// A region after merging its pieces across cells.
#[derive(Debug, Clone)]
pub struct MergedRegion {
    /// Summed statistics.
    pub stats: RegionStats,
    /// The outline, simplified.
    pub polygon: MultiPolygon<f64>,
    /// Ids of the cells it spans, in grid order.
    pub cells: Vec<String>,
}

fn find(parent: &mut [usize], i: usize) -> usize {
    let mut r = i;
    while parent[r] != r {
        r = parent[r];
    }
    let mut j = i;
    while parent[j] != r {
        let next = parent[j];
        parent[j] = r;
        j = next;
    }
    r
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        // The smaller index wins, so merged ids do not depend on processing order.
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        parent[hi] = lo;
    }
}

/// Merges pieces that touch across cell borders (8-connectivity) into regions, then simplifies.
/// `strips` holds each processed cell's edge labels. The result is ordered by the first cell
/// (row, column) and label of each region, whatever order the cells were processed in.
pub fn merge_pieces(
    mut pieces: Vec<Piece>,
    strips: &HashMap<(usize, usize), EdgeStrips>,
    pixel_area: f64,
) -> Vec<MergedRegion> {
    pieces.sort_by_key(|p| (p.cell, p.label));
    let index: HashMap<((usize, usize), u32), usize> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.cell, p.label), i))
        .collect();
    let mut parent: Vec<usize> = (0..pieces.len()).collect();
    let same_kind = |a: usize, b: usize| {
        pieces[a].stats.transition.is_land_use_change()
            == pieces[b].stats.transition.is_land_use_change()
    };
    let join = |parent: &mut Vec<usize>, a: ((usize, usize), u32), b: ((usize, usize), u32)| {
        if a.1 == 0 || b.1 == 0 {
            return;
        }
        if let (Some(&ia), Some(&ib)) = (index.get(&a), index.get(&b)) {
            if same_kind(ia, ib) {
                union(parent, ia, ib);
            }
        }
    };
    let mut keys: Vec<&(usize, usize)> = strips.keys().collect();
    keys.sort();
    for &(r, c) in keys {
        let s = &strips[&(r, c)];
        // East neighbour.
        if let Some(e) = strips.get(&(r, c + 1)) {
            for (i, l) in s.east.iter().enumerate() {
                for j in i.saturating_sub(1)..(i + 2).min(e.west.len()) {
                    join(&mut parent, ((r, c), *l), ((r, c + 1), e.west[j]));
                }
            }
        }
        // South neighbour.
        if let Some(so) = strips.get(&(r + 1, c)) {
            for (i, l) in s.south.iter().enumerate() {
                for j in i.saturating_sub(1)..(i + 2).min(so.north.len()) {
                    join(&mut parent, ((r, c), *l), ((r + 1, c), so.north[j]));
                }
            }
        }
        // Diagonal neighbours share a corner pixel pair.
        if let (Some(se), Some(l)) = (strips.get(&(r + 1, c + 1)), s.south.last()) {
            if let Some(m) = se.north.first() {
                join(&mut parent, ((r, c), *l), ((r + 1, c + 1), *m));
            }
        }
        if c > 0 {
            if let (Some(sw), Some(l)) = (strips.get(&(r + 1, c - 1)), s.south.first()) {
                if let Some(m) = sw.north.last() {
                    join(&mut parent, ((r, c), *l), ((r + 1, c - 1), *m));
                }
            }
        }
    }
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut slot: HashMap<usize, usize> = HashMap::new();
    for i in 0..pieces.len() {
        let root = find(&mut parent, i);
        match slot.get(&root) {
            Some(&g) => groups[g].1.push(i),
            None => {
                slot.insert(root, groups.len());
                groups.push((root, vec![i]));
            }
        }
    }
    // Each group's union and simplification on its own, in parallel, in the groups' order.
    groups
        .into_par_iter()
        .map(|(_, members)| {
            let mut stats = pieces[members[0]].stats.clone();
            let mut polygon = pieces[members[0]].polygon.clone();
            let mut cells = vec![pieces[members[0]].cell_id.clone()];
            for &m in &members[1..] {
                stats.absorb(&pieces[m].stats);
                polygon = polygon.union(&pieces[m].polygon);
                if !cells.contains(&pieces[m].cell_id) {
                    cells.push(pieces[m].cell_id.clone());
                }
            }
            MergedRegion {
                stats,
                polygon: simplify_area_bounded(&polygon, pixel_area, 0.01),
                cells,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> GridDef {
        GridDef {
            crs: "EPSG:4549".into(),
            origin_x: 1000.0,
            origin_y: 2000.0,
            pixel_width: 0.5,
            pixel_height: 0.5,
            cell_size: 8,
            halo: 0,
            width: 16,
            height: 8,
        }
    }

    #[test]
    fn traces_exact_outlines_with_holes() {
        let g = grid();
        let cell = g.cell(0, 0).unwrap();
        let mut lab = Array2::<u32>::zeros((8, 8));
        for y in 1..7 {
            for x in 1..7 {
                lab[[y, x]] = 1;
            }
        }
        lab[[3, 3]] = 0; // a one-pixel hole
        lab[[0, 7]] = 2;
        let polys = trace_regions(&lab, 2, &g, &cell);
        assert_eq!(polys.len(), 2);
        let a = polys[0].unsigned_area();
        assert!((a - 35.0 * 0.25).abs() < 1e-9, "{a}");
        assert_eq!(polys[0].0.len(), 1);
        assert_eq!(polys[0].0[0].interiors().len(), 1);
        // Map coordinates: the second region is the pixel at column 7, row 0.
        let b = polys[1].0[0].exterior();
        let xs: Vec<f64> = b.coords().map(|c| c.x).collect();
        assert!(xs.iter().all(|x| *x == 1003.5 || *x == 1004.0));
    }

    #[test]
    fn diagonal_neighbours_become_touching_parts() {
        let g = grid();
        let cell = g.cell(0, 0).unwrap();
        let mut lab = Array2::<u32>::zeros((8, 8));
        lab[[2, 2]] = 1;
        lab[[3, 3]] = 1;
        let polys = trace_regions(&lab, 1, &g, &cell);
        assert_eq!(polys[0].0.len(), 2);
        assert!((polys[0].unsigned_area() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn pieces_across_a_cell_border_merge() {
        let g = grid();
        let (c0, c1) = (g.cell(0, 0).unwrap(), g.cell(0, 1).unwrap());
        let mut l0 = Array2::<u32>::zeros((8, 8));
        let mut l1 = Array2::<u32>::zeros((8, 8));
        for y in 2..5 {
            l0[[y, 7]] = 1;
            l1[[y, 0]] = 1;
            l1[[y, 1]] = 1;
        }
        let stats = |n| RegionStats {
            transition: crate::detect::cover::Transition::VegetationToBuilt,
            pixels: n,
            transition_pixels: [n, 0, 0, 0, 0, 0, 0, 0, 0],
            before_cover: [n, 0, 0, 0, 0, 0, 0],
            after_cover: [0, 0, 0, n, 0, 0, 0],
            score_sum: 10.0 * n as f64,
            score_max: 12.0,
            chi2_sum: 0.0,
            ring_pixels: 2 * n,
            ring_observed: 2 * n,
            agree_pixels: None,
        };
        let pieces = vec![
            Piece {
                cell: (0, 1),
                cell_id: c1.id.clone(),
                label: 1,
                stats: stats(6),
                polygon: trace_regions(&l1, 1, &g, &c1).remove(0),
            },
            Piece {
                cell: (0, 0),
                cell_id: c0.id.clone(),
                label: 1,
                stats: stats(3),
                polygon: trace_regions(&l0, 1, &g, &c0).remove(0),
            },
        ];
        let mut strips = HashMap::new();
        strips.insert((0, 0), EdgeStrips::of(&l0));
        strips.insert((0, 1), EdgeStrips::of(&l1));
        let merged = merge_pieces(pieces, &strips, 0.25);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].stats.pixels, 9);
        assert!((merged[0].polygon.unsigned_area() - 9.0 * 0.25).abs() < 1e-9);
        assert_eq!(
            merged[0].polygon.0.len(),
            1,
            "one polygon, not two touching ones"
        );
        assert_eq!(merged[0].cells, vec![c0.id, c1.id]);
    }

    #[test]
    fn simplification_keeps_area_within_one_percent() {
        let g = grid();
        let cell = g.cell(0, 0).unwrap();
        // A staircase (a rasterised diagonal band).
        let mut lab = Array2::<u32>::zeros((8, 8));
        for y in 0..8 {
            for x in 0..8 {
                if (x as i64 - y as i64).abs() <= 2 {
                    lab[[y, x]] = 1;
                }
            }
        }
        let p = trace_regions(&lab, 1, &g, &cell).remove(0);
        let s = simplify_area_bounded(&p, 0.25, 0.01);
        let (a, b) = (p.unsigned_area(), s.unsigned_area());
        assert!(((a - b) / a).abs() <= 0.01, "{a} {b}");
        let n = |m: &MultiPolygon<f64>| m.0.iter().map(|p| p.exterior().0.len()).sum::<usize>();
        assert!(n(&s) <= n(&p));
    }
}
