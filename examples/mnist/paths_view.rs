//! The MLP's strongest paths for one test digit (issue #18): layers as columns, the neurons on
//! the 12 strongest paths as dots, every path a line whose width and colour follow its strength,
//! and the input pixels the paths start from marked on the digit (`klrp::paths`).

use crate::experiments::Explainer;
use klrp::paths::{Circuit, Path as KPath};
use klrp::viz::{self, Colormap, RgbImage};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Paths drawn.
pub const PATHS: usize = 12;

/// Draws the `PATHS` strongest paths of `digit` (explained for `target`) into
/// `out/paths.png`; returns the path and the paths.
pub fn write_paths_view(
    ex: &Explainer,
    digit: ndarray::ArrayView1<'_, f32>,
    target: usize,
    out: &Path,
) -> klrp::Result<(PathBuf, Vec<KPath>)> {
    let x = digit.insert_axis(ndarray::Axis(0)).to_owned();
    let paths = ex
        .net
        .strongest_paths(&x, target, PATHS, &klrp::Explainer::viterbi())?;
    let figure = draw(&paths, digit, target)?;
    let path = out.join("paths.png");
    viz::save_png(&path, &figure)?;
    Ok((path, paths))
}

/// The diagram: the digit with the paths' pixels, then one column per tensor whose element a
/// path changes (pass-through nodes, whose element is the previous one, are skipped).
pub fn draw(
    paths: &[KPath],
    digit: ndarray::ArrayView1<'_, f32>,
    target: usize,
) -> klrp::Result<RgbImage> {
    let (w, h) = (1000usize, 470usize);
    let mut img = RgbImage::new(w, h, [255, 255, 255]);
    let (top, bottom) = (70.0, h as f64 - 40.0);
    img.draw_text(
        20,
        16,
        &format!(
            "the {} strongest paths to class {target} (Viterbi: max-abs shares)",
            paths.len()
        ),
        [0, 0, 0],
        2,
    );
    // The digit, 10 px per pixel.
    let scale = 10usize;
    let (dx, dy) = (20i64, top as i64);
    for (i, &v) in digit.iter().enumerate() {
        let g = 255 - (v.clamp(0.0, 1.0) * 255.0) as u8;
        img.fill_rect(
            dx + (i % 28 * scale) as i64,
            dy + (i / 28 * scale) as i64,
            scale,
            scale,
            [g, g, g],
        );
    }
    img.stroke_rect(
        dx - 1,
        dy - 1,
        28 * scale + 2,
        28 * scale + 2,
        [120, 120, 120],
    );
    // Columns: the input, then every node whose element differs from the previous step's.
    let keep = |p: &KPath, s: usize| {
        s == 0 || p.steps[s].index != p.steps[s - 1].index || s == p.steps.len() - 1
    };
    let circuit = Circuit::from_paths(paths);
    let mut columns: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
    for layer in &circuit.layers {
        let used: Vec<usize> = layer.elements.iter().map(|e| e.index).collect();
        let distinct = paths.iter().any(|p| {
            p.steps
                .iter()
                .enumerate()
                .any(|(s, st)| st.node == layer.node && keep(p, s))
        });
        if distinct {
            columns.push((layer.node, used));
        }
    }
    let x0 = 400.0;
    let dxc = (w as f64 - 110.0 - x0) / (columns.len().max(2) - 1) as f64;
    let mut pos: BTreeMap<(Option<usize>, usize), (f64, f64)> = BTreeMap::new();
    for (c, (node, used)) in columns.iter().enumerate() {
        let x = x0 + c as f64 * dxc;
        let n = used.len();
        for (r, &e) in used.iter().enumerate() {
            let y = if n == 1 {
                (top + bottom) / 2.0
            } else {
                top + (bottom - top) * r as f64 / (n - 1) as f64
            };
            pos.insert((*node, e), (x, y));
        }
        let title = match node {
            None => "pixels".to_string(),
            Some(i) if c == columns.len() - 1 => format!("node {i}: class"),
            Some(i) => format!("node {i}"),
        };
        let tw = viz::text_size(&title, 1).0 as i64;
        img.draw_text(x as i64 - tw / 2, top as i64 - 30, &title, [0, 0, 0], 1);
    }
    // Lines, weakest first so the strongest is on top.
    let max = paths
        .first()
        .map_or(1.0, |p| p.strength)
        .max(f64::MIN_POSITIVE);
    let min = paths.last().map_or(0.0, |p| p.strength);
    for (rank, p) in paths.iter().enumerate().rev() {
        let t = if max > min {
            (p.strength - min) / (max - min)
        } else {
            1.0
        };
        let color = Colormap::Viridis.map(0.15 + 0.7 * (1.0 - t));
        let width = 1.0 + 3.0 * t;
        let pts: Vec<(f64, f64)> = p
            .steps
            .iter()
            .enumerate()
            .filter(|&(s, _)| keep(p, s))
            .filter_map(|(_, st)| pos.get(&(st.node, st.index)).copied())
            .collect();
        // From the pixel on the digit to its dot.
        let j = p.steps[0].index;
        let px = (
            dx as f64 + ((j % 28) * scale) as f64 + scale as f64 / 2.0,
            dy as f64 + ((j / 28) * scale) as f64 + scale as f64 / 2.0,
        );
        img.draw_line_aa(px, pts[0], [200, 200, 200], 1.0);
        for seg in pts.windows(2) {
            img.draw_line_aa(seg[0], seg[1], color, width);
        }
        img.stroke_circle(px, scale as f64 * 0.7, 2.0, [220, 30, 30]);
        if rank == 0 {
            img.stroke_circle(px, scale as f64 * 1.1, 2.0, [220, 30, 30]);
        }
    }
    for (&(_, e), &(x, y)) in &pos {
        img.fill_circle((x, y), 6.0, [40, 40, 40]);
        img.draw_text(x as i64 + 9, y as i64 - 3, &e.to_string(), [60, 60, 60], 1);
    }
    img.draw_text(
        20,
        h as i64 - 24,
        &format!(
            "strength {} (thick, dark) to {} (thin, light); red circles: the paths' pixels",
            viz::short_number(max),
            viz::short_number(min)
        ),
        [0, 0, 0],
        1,
    );
    Ok(img)
}
