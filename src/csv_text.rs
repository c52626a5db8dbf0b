//! CSV text as records, for the knowledge base and the labelled training sets (both are
//! small files an operator edits by hand). Hand-written rather than the `csv` crate: 40
//! lines that keep the line number of an unterminated quote for the error, which the
//! importers print.

/// Where and why CSV text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct CsvError {
    pub line: usize,
    pub msg: &'static str,
}

/// Splits CSV text into records (RFC 4180: quotes, doubled quotes, newlines inside quotes);
/// rows with nothing in them are left out.
pub fn records(text: &str) -> Result<Vec<Vec<String>>, CsvError> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c)
            }
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                line += 1;
                row.push(std::mem::take(&mut field));
                if row.iter().any(|f| !f.is_empty()) {
                    rows.push(std::mem::take(&mut row));
                }
                row.clear();
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(CsvError {
            line,
            msg: "unterminated quote",
        });
    }
    row.push(field);
    if row.iter().any(|f| !f.is_empty()) {
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_doubled_quotes_newlines_and_empty_rows() {
        let r = records("a,b\n\n\"x, \"\"y\"\"\",\"two\nlines\"\r\n").unwrap();
        assert_eq!(r, [vec!["a", "b"], vec!["x, \"y\"", "two\nlines"]]);
        assert_eq!(
            records("a\n\"open").unwrap_err(),
            CsvError {
                line: 2,
                msg: "unterminated quote"
            }
        );
    }
}
