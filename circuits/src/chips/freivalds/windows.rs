//! Sliding windows in a matrix product `Y = W·X`: when the rows of `X` (`K×P`) are overlapping windows of a few
//! shared lines, as in a stride-1 convolution, the Freivalds chip evaluates each line once and each row of `X`
//! from its windows, instead of one Horner step per entry of `X` (which repeats every input `kh·kw` times).
//!
//! The positions are taken as `H` output rows of `W` positions (`p = y·W + x`, `P = H·W`); the *segment* of tap
//! `k` in output row `y` is `X[k][y·W .. y·W + W]`. Taps `k, k+1, …, k+s−1` form a *tap row* when each one's
//! segments are the previous tap's shifted by one (`seg(k+1, y)[x] = seg(k, y)[x + 1]` for every `y` and
//! `x < W − 1`): then the segments of a tap row in output row `y` are the windows at offsets `0 … s−1` of one
//! *line* of `W + s − 1` entries. Lines with the same entries are one line (a convolution's input row is read by
//! every kernel row that overlaps it).
//!
//! With `e_p = γ^(P−1−p)` (the chip's evaluation vector) and `G = γ^W`, for every tap `k`:
//!
//! `Σ_p X[k,p]·e_p = Σ_y G^(H−1−y)·R(line(k,y), d_k)`, with `R(L, d) = Σ_(x<W) L[d+x]·γ^(W−1−x)`
//!
//! and `R(L, d) = F_L(d+W−1) − G·F_L(d−1)`, where `F_L(j) = Σ_(i≤j) L[i]·γ^(j−i)` is the Horner prefix of `L`
//! (`F_L(j) = 0` while `L[0..=j]` is all padding). So the chip needs one Horner run per line, two rows per window
//! whose offset is past the line's leading padding, and a Horner run in `G` of `H` rows per tap: for a 3×3
//! convolution of `C` channels on an `H×W` grid, about `C·H·(W + 2) + 2·C·H + 9·C·H` rows instead of `9·C·H·W`.
//!
//! [`Windows::find`] tries every width `W` dividing `P` and keeps the one with the fewest rows, when it beats the
//! plain evaluation of `X` (`K·P` rows). What it returns is verified entry by entry against `X`, so it is correct
//! whatever `X` is: a product that is not a convolution simply finds no windows.

use std::collections::HashMap;
use std::hash::Hash;

/// Most distinct window widths one circuit may have (each adds a gate and a selector to every column pair).
pub const MAX_WINDOW_WIDTHS: usize = 8;

/// An entry of `X` by its coordinates `(tap, position)`; `None` is zero padding.
pub type Entry = Option<(usize, usize)>;

/// One line: its entries (coordinates in `X` where each value appears) and how many of them lead as padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The entries, `None` for padding.
    pub entries: Vec<Entry>,
    /// Leading padding entries (at least one entry after them is not padding).
    pub lead: usize,
}

/// A window of `W` entries of a line, at an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// The line, by index.
    pub line: usize,
    /// The offset of the window's first entry in the line.
    pub offset: usize,
}

/// How the rows of `X` are windows of shared lines (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Windows {
    /// Positions per output row (`W`).
    pub width: usize,
    /// Output rows (`H = P / W`).
    pub height: usize,
    /// The distinct lines that are not all padding.
    pub lines: Vec<Line>,
    /// For each tap and output row, the window equal to its segment (`None` when the segment is all padding).
    pub windows: Vec<Vec<Option<Window>>>,
    /// The windows that need a subtraction (offset past their line's leading padding), each once, in the order
    /// taps and output rows first use them.
    pub differences: Vec<Window>,
}

impl Windows {
    /// The best windows of `X` (`taps × positions`, read through `entry(tap, position)`, `None` for padding) when
    /// they take fewer rows than evaluating `X` entry by entry; `None` otherwise.
    pub fn find<T: Eq + Hash + Clone>(
        taps: usize,
        positions: usize,
        entry: impl Fn(usize, usize) -> Option<T>,
    ) -> Option<Self> {
        let plain = taps.checked_mul(positions)?;
        (2..=positions)
            .filter(|&w| positions.is_multiple_of(w))
            .filter_map(|width| Self::with_width(taps, positions, width, &entry))
            .filter(|w| w.rows() < plain)
            .min_by_key(|w| (w.rows(), w.width))
    }

    /// The windows of `X` for output rows of `width` positions (`width` must divide `positions`).
    fn with_width<T: Eq + Hash + Clone>(
        taps: usize,
        positions: usize,
        width: usize,
        entry: &impl Fn(usize, usize) -> Option<T>,
    ) -> Option<Self> {
        if width == 0 || !positions.is_multiple_of(width) || taps == 0 {
            return None;
        }
        let height = positions / width;
        // The first tap of each tap row: a tap starts one unless its segments are the previous tap's shifted by one.
        let shifted = |k: usize| {
            (0..height).all(|y| (0..width - 1).all(|x| entry(k, y * width + x) == entry(k - 1, y * width + x + 1)))
        };
        let mut starts = vec![0];
        starts.extend((1..taps).filter(|&k| !shifted(k)));
        let mut lines: Vec<Line> = Vec::new();
        let mut by_content: HashMap<Vec<Option<T>>, usize> = HashMap::new();
        let mut windows = vec![vec![None; height]; taps];
        for (r, &start) in starts.iter().enumerate() {
            let end = starts.get(r + 1).copied().unwrap_or(taps);
            for y in 0..height {
                let base = y * width;
                // The line: the tap row's first segment, then the last entry of each further tap's segment.
                let coordinates: Vec<(usize, usize)> = (0..width)
                    .map(|i| (start, base + i))
                    .chain((start + 1..end).map(|k| (k, base + width - 1)))
                    .collect();
                let content: Vec<Option<T>> = coordinates.iter().map(|&(k, p)| entry(k, p)).collect();
                let Some(lead) = content.iter().position(Option::is_some) else {
                    continue; // all padding: every segment of it is too
                };
                let line = match by_content.get(&content) {
                    Some(&line) => line,
                    None => {
                        let entries = (coordinates.iter().zip(&content))
                            .map(|(&c, value)| value.as_ref().map(|_| c))
                            .collect();
                        lines.push(Line { entries, lead });
                        by_content.insert(content.clone(), lines.len() - 1);
                        lines.len() - 1
                    }
                };
                for (offset, tap) in windows[start..end].iter_mut().enumerate() {
                    let padding = content[offset..offset + width].iter().all(Option::is_none);
                    tap[y] = (!padding).then_some(Window { line, offset });
                }
            }
        }
        let mut differences = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for window in windows.iter().flatten().flatten() {
            if window.offset > lines[window.line].lead && seen.insert(*window) {
                differences.push(*window);
            }
        }
        let found = Self {
            width,
            height,
            lines,
            windows,
            differences,
        };
        found.matches(taps, positions, entry).then_some(found)
    }

    /// Whether every entry of `X` is the entry of its window (a check of the construction, entry by entry).
    fn matches<T: Eq>(&self, taps: usize, positions: usize, entry: &impl Fn(usize, usize) -> Option<T>) -> bool {
        let value = |e: &Entry| e.and_then(|(k, p)| entry(k, p));
        self.windows.len() == taps
            && self.width * self.height == positions
            && (0..taps).all(|k| {
                (0..positions).all(|p| {
                    let (y, x) = (p / self.width, p % self.width);
                    let expected = entry(k, p);
                    match self.windows[k][y] {
                        None => expected.is_none(),
                        Some(w) => self.lines[w.line]
                            .entries
                            .get(w.offset + x)
                            .is_some_and(|e| value(e) == expected),
                    }
                })
            })
    }

    /// Rows the evaluation of `X` takes: every line past its leading padding, two per difference and `H` per tap.
    pub fn rows(&self) -> usize {
        self.line_runs().sum::<usize>() + 2 * self.differences.len() + self.windows.len() * self.height
    }

    /// The length of each line's Horner run (its entries past the leading padding), in line order.
    pub fn line_runs(&self) -> impl Iterator<Item = usize> + '_ {
        self.lines.iter().map(|l| l.entries.len() - l.lead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `X` of a `c`-channel `kh×kw` convolution with padding `pad` on an `h×w` input (stride 1), as input
    /// indices (`None` for padding), taps in `(channel, dy, dx)` order and positions in `(y, x)` order.
    fn conv_x(
        c: usize,
        h: usize,
        w: usize,
        kh: usize,
        kw: usize,
        pad: usize,
    ) -> (usize, usize, Vec<Vec<Option<usize>>>) {
        let (oh, ow) = (h + 2 * pad - kh + 1, w + 2 * pad - kw + 1);
        let mut x = Vec::new();
        for ch in 0..c {
            for dy in 0..kh {
                for dx in 0..kw {
                    let row = (0..oh * ow)
                        .map(|p| {
                            let (iy, ix) = (
                                (p / ow + dy) as isize - pad as isize,
                                (p % ow + dx) as isize - pad as isize,
                            );
                            ((0..h as isize).contains(&iy) && (0..w as isize).contains(&ix))
                                .then(|| ch * h * w + iy as usize * w + ix as usize)
                        })
                        .collect();
                    x.push(row);
                }
            }
        }
        (oh, ow, x)
    }

    fn find(x: &[Vec<Option<usize>>]) -> Option<Windows> {
        let positions = x.first().map_or(0, Vec::len);
        Windows::find(x.len(), positions, |k, p| x[k][p])
    }

    #[test]
    fn a_padded_3x3_convolution_shares_its_input_rows() {
        let (oh, ow, x) = conv_x(2, 6, 5, 3, 3, 1);
        let windows = find(&x).expect("windows");
        assert_eq!((windows.width, windows.height), (ow, oh));
        // One line per input row (the padding rows above and below are no lines), of W + 2 entries with one
        // leading padding entry.
        assert_eq!(windows.lines.len(), 2 * 6);
        assert!(windows.lines.iter().all(|l| l.entries.len() == ow + 2 && l.lead == 1));
        // Offsets 0 and 1 start within the leading padding; offset 2 needs a subtraction, once per line.
        assert_eq!(windows.differences.len(), 2 * 6);
        assert!(windows.differences.iter().all(|d| d.offset == 2));
        assert_eq!(windows.rows(), 12 * (ow + 1) + 2 * 12 + 18 * oh);
        assert!(windows.rows() < 18 * oh * ow);
    }

    #[test]
    fn an_unpadded_5x5_convolution_subtracts_every_offset_past_zero() {
        let (oh, ow, x) = conv_x(3, 9, 8, 5, 5, 0);
        let windows = find(&x).expect("windows");
        assert_eq!((windows.width, windows.height), (ow, oh));
        assert_eq!(windows.lines.len(), 3 * 9);
        assert!(windows.lines.iter().all(|l| l.entries.len() == 8 && l.lead == 0));
        assert_eq!(windows.differences.len(), 3 * 9 * 4);
        assert_eq!(windows.rows(), 27 * 8 + 2 * 108 + 75 * oh);
    }

    #[test]
    fn every_entry_is_its_windows_entry() {
        for (c, h, w, kh, kw, pad) in [
            (1, 4, 4, 3, 3, 1),
            (2, 7, 6, 2, 3, 0),
            (1, 5, 9, 1, 4, 2),
            (3, 3, 3, 3, 3, 1),
        ] {
            let (_, _, x) = conv_x(c, h, w, kh, kw, pad);
            let windows = find(&x).expect("windows");
            for (k, row) in x.iter().enumerate() {
                for (p, &e) in row.iter().enumerate() {
                    let got = windows.windows[k][p / windows.width]
                        .and_then(|win| windows.lines[win.line].entries[win.offset + p % windows.width])
                        .map(|(k2, p2)| x[k2][p2].unwrap());
                    assert_eq!(got, e, "tap {k}, position {p}");
                }
            }
        }
    }

    #[test]
    fn products_that_are_not_convolutions_find_no_windows() {
        // Distinct entries everywhere: no line is shared, so windows cannot beat K·P.
        let x: Vec<Vec<Option<usize>>> = (0..6).map(|k| (0..12).map(|p| Some(k * 12 + p)).collect()).collect();
        assert_eq!(find(&x), None);
        // A 1×1 convolution reads each input once.
        let (_, _, x) = conv_x(4, 6, 6, 1, 1, 0);
        assert_eq!(find(&x), None);
        assert_eq!(Windows::find(0, 5, |_, _| Some(1)), None);
        assert_eq!(Windows::find(3, 0, |_, _| Some(1)), None);
    }

    #[test]
    fn a_strided_convolution_shares_only_rows() {
        // Stride 2: tap dx+1 is not tap dx shifted by one position, so every tap row is one tap; but kernel row
        // dy = 2 in output row y reads the input row that dy = 0 reads in row y + 1, so lines are still shared.
        let (h, w, k) = (16, 16, 3);
        let (oh, ow) = ((h - k) / 2 + 1, (w - k) / 2 + 1);
        let x: Vec<Vec<Option<usize>>> = (0..k * k)
            .map(|t| {
                (0..oh * ow)
                    .map(|p| Some((2 * (p / ow) + t / k) * w + 2 * (p % ow) + t % k))
                    .collect()
            })
            .collect();
        let windows = find(&x).expect("windows");
        assert_eq!(windows.width, ow);
        assert!(windows.differences.is_empty());
        assert!(windows.lines.iter().all(|l| l.entries.len() == ow));
        // Input rows 0 ..= 2·(oh − 1) + 2, one line per row and column offset.
        assert_eq!(windows.lines.len(), (2 * (oh - 1) + 3) * k);
    }
}
