//! Tables in the CLI's human output: each column as wide as its widest
//! cell, numbers right-aligned, two spaces between columns.

/// Rows under headings. A heading that starts with `>` names a
/// right-aligned column (the `>` is not shown).
pub(super) struct Table {
    headings: Vec<(&'static str, bool)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new<const N: usize>(headings: [&'static str; N]) -> Self {
        Self {
            headings: headings
                .iter()
                .map(|h| match h.strip_prefix('>') {
                    Some(name) => (name, true),
                    None => (*h, false),
                })
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; cells past the headings are dropped, missing ones are empty.
    pub(super) fn row<I, C>(&mut self, cells: I)
    where
        I: IntoIterator<Item = C>,
        C: std::fmt::Display,
    {
        let mut row: Vec<String> = cells.into_iter().map(|c| c.to_string()).collect();
        row.resize(self.headings.len(), String::new());
        self.rows.push(row);
    }

    /// The table as lines, without a trailing newline.
    pub(super) fn render(&self) -> String {
        let widths: Vec<usize> = self
            .headings
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([name.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let heading: Vec<String> = self.headings.iter().map(|(h, _)| h.to_string()).collect();
        std::iter::once(&heading)
            .chain(&self.rows)
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&self.headings)
                    .zip(&widths)
                    .map(|((cell, (_, right)), width)| {
                        let pad = " ".repeat(width - cell.chars().count());
                        if *right {
                            format!("{pad}{cell}")
                        } else {
                            format!("{cell}{pad}")
                        }
                    })
                    .collect();
                cells.join("  ").trim_end().to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn columns_fit_their_widest_cell() {
        let mut table = Table::new(["NAME", ">VERSIONS", "UPDATED"]);
        table.row(["a-rather-long-function-name", "12", "today"]);
        table.row(["é", "3", ""]);
        assert_eq!(
            table.render(),
            "NAME                         VERSIONS  UPDATED\n\
             a-rather-long-function-name        12  today\n\
             é                                   3"
        );
    }

    #[test]
    fn an_empty_table_is_its_headings() {
        assert_eq!(Table::new(["A", ">B"]).render(), "A  B");
    }
}
