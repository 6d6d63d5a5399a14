//! A segmentation region (the pixels whose logits a segmentation target sums) and its outline
//! on the photo.

/// A set of pixels of a map, row-major, at the map's resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub width: usize,
    pub height: usize,
    pub inside: Vec<bool>,
}

impl Region {
    /// Whether the map pixel under photo pixel `(x, y)` (nearest, for a photo of `size`) is in.
    fn contains(&self, x: i64, y: i64, (w, h): (u32, u32)) -> bool {
        let (x, y) = (x.clamp(0, w as i64 - 1), y.clamp(0, h as i64 - 1));
        let rx = (x as usize * self.width / w as usize).min(self.width - 1);
        let ry = (y as usize * self.height / h as usize).min(self.height - 1);
        self.inside[ry * self.width + rx]
    }
}

/// A region's boundary as drawn on a photo: its pixels within `thickness` of a pixel outside.
#[derive(Debug, Clone, Copy)]
pub struct RegionOutline<'a> {
    pub region: &'a Region,
    /// The photo's `(width, height)`.
    pub size: (u32, u32),
    pub color: [u8; 3],
    pub thickness: u32,
}

impl RegionOutline<'_> {
    /// Whether the outline paints photo pixel `(x, y)`.
    pub fn covers(&self, x: u32, y: u32) -> bool {
        let (r, t) = (self.region, self.thickness as i64);
        if r.width == 0 || r.height == 0 || self.size.0 == 0 || self.size.1 == 0 {
            return false;
        }
        let (x, y) = (x as i64, y as i64);
        r.contains(x, y, self.size)
            && [(-t, 0), (t, 0), (0, -t), (0, t)]
                .iter()
                .any(|&(dx, dy)| !r.contains(x + dx, y + dy, self.size))
    }

    /// Paints the outline's pixels of row `y` in `row` (the row's RGB bytes).
    pub fn paint_row(&self, y: u32, row: &mut [u8]) {
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            if self.covers(x as u32, y) {
                px.copy_from_slice(&self.color);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outline_is_the_regions_pixels_next_to_outside_ones() {
        // A 2x2 map whose top-left pixel is in, on a 4x4 photo: that pixel covers photo
        // pixels (0..2, 0..2); with thickness 1, those with a neighbour in another map pixel
        // are (1, 0), (0, 1) and (1, 1); (0, 0)'s neighbours off the photo count as itself.
        let region = Region {
            width: 2,
            height: 2,
            inside: vec![true, false, false, false],
        };
        let outline = RegionOutline {
            region: &region,
            size: (4, 4),
            color: [255, 255, 255],
            thickness: 1,
        };
        let painted: Vec<(u32, u32)> = (0..4)
            .flat_map(|y| (0..4).map(move |x| (x, y)))
            .filter(|&(x, y)| outline.covers(x, y))
            .collect();
        assert_eq!(painted, [(1, 0), (0, 1), (1, 1)]);
        let mut row = [0u8; 12];
        outline.paint_row(1, &mut row);
        assert_eq!(row, [255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0]);
    }
}
