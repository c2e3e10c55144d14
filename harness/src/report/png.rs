//! PNG versions of the charts (`h2lab report --png`): the plotters SVG rasterised with
//! resvg, so both formats show exactly the same chart. Text uses the system's fonts
//! (DejaVu Sans on Debian, installed by scripts/setup.sh as fonts-dejavu-core).

use resvg::{tiny_skia, usvg};

/// Rasterises an SVG document onto a white background.
pub fn from_svg(svg: &str) -> Result<Vec<u8>, String> {
    let mut opt = usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    opt.fontdb_mut().set_sans_serif_family("DejaVu Sans");
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| format!("SVG: {e}"))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width().max(1), size.height().max(1))
        .ok_or("the chart has no size")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| format!("PNG: {e}"))
}
