//! Go's text/tabwriter (left-aligned, space padding), which docker runs
//! every table through: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
//!
//! Cells are tab-terminated; the text after a line's last tab is not a
//! cell and does not widen its column. A column is a run of consecutive
//! lines that have a cell at that index, so a short line ends the column
//! for the lines below it.

/// Docker's settings: columns at least 10 wide, 3 spaces of padding.
pub const DOCKER_MIN_WIDTH: usize = 10;
pub const DOCKER_PADDING: usize = 3;

/// Aligns `text` as Go's tabwriter with `minwidth` and `padding`.
pub fn align(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    let w = Writer {
        lines: &lines,
        minwidth,
        padding,
    };
    let end = w.format(&mut out, &mut widths, 0, lines.len());
    debug_assert_eq!(end, lines.len());
    out
}

struct Writer<'a> {
    lines: &'a [Vec<&'a str>],
    minwidth: usize,
    padding: usize,
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

impl Writer<'_> {
    /// Go's `format`: lays out lines `line0..line1` given the widths of the
    /// columns to the left; returns the first line not written.
    fn format(
        &self,
        out: &mut String,
        widths: &mut Vec<usize>,
        mut line0: usize,
        line1: usize,
    ) -> usize {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // A column block starts here: lines before it are written
            // with the widths known so far.
            self.write_lines(out, widths, line0, this);
            line0 = this;
            let mut w = self.minwidth;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                w = w.max(width(line[column]) + self.padding);
                this += 1;
            }
            widths.push(w);
            self.format(out, widths, line0, this);
            widths.pop();
            line0 = this;
        }
        self.write_lines(out, widths, line0, line1);
        line1
    }

    fn write_lines(&self, out: &mut String, widths: &[usize], line0: usize, line1: usize) {
        for i in line0..line1 {
            let line = &self.lines[i];
            for (j, cell) in line.iter().enumerate() {
                out.push_str(cell);
                if j + 1 < line.len() && j < widths.len() {
                    for _ in width(cell)..widths[j] {
                        out.push(' ');
                    }
                }
            }
            if i + 1 < self.lines.len() {
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_as_docker_pads_them() {
        let t = "CONTAINER ID\tNAMES\na1c6433d5e97\tc1\n";
        assert_eq!(align(t, 10, 3), "CONTAINER ID   NAMES\na1c6433d5e97   c1\n");
        // A column narrower than the minimum is still 10 wide.
        assert_eq!(align("A\tB\n", 10, 3), "A         B\n");
        // The last cell of a line is not padded.
        assert_eq!(align("a\tb\tc\n", 10, 3), "a         b         c\n");
    }
}
