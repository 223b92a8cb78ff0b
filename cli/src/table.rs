//! Plain-text tables: a header, a rule, and columns padded to their widest cell; a column
//! of numbers is right-aligned.

pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let numeric: Vec<bool> = (0..header.len())
        .map(|i| {
            rows.iter().all(|row| {
                row[i].is_empty()
                    || row[i]
                        .trim_start_matches('-')
                        .replace('.', "")
                        .parse::<u64>()
                        .is_ok()
            })
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| match numeric[i] {
                true => format!("{cell:>w$}", w = widths[i]),
                false => format!("{cell:<w$}", w = widths[i]),
            })
            .collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let mut text = line(header.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    text.push_str(&line(rule.iter().map(String::as_str).collect()));
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_align_right_and_text_left() {
        let rows = vec![
            vec!["daily-login".to_owned(), "-5".to_owned()],
            vec!["lead".to_owned(), "1200".to_owned()],
        ];
        assert_eq!(
            super::render(&["rule", "points"], &rows),
            "  rule         points\n  -----------  ------\n  daily-login      -5\n  lead           1200\n"
        );
    }
}
