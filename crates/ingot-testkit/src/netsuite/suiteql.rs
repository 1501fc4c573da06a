//! The small, fixed SuiteQL grammar the NetSuite simulator understands.
//!
//! ```text
//! query  := SELECT sel {, sel} FROM table [WHERE cond {AND cond}] [ORDER BY key {, key}]
//! sel    := column [AS alias] | BUILTIN.DF(column) [AS alias]
//! cond   := column op value | column IN (string {, string})
//! op     := = | >= | <= | > | <
//! value  := 'string' | number | TO_DATE('literal', 'YYYY-MM-DD HH24:MI' | 'YYYY-MM-DD HH24:MI:SS')
//! key    := column [ASC | DESC]
//! ```
//!
//! Keywords and identifiers are case-insensitive; output keys are lower case. Anything
//! else is a `400` with NetSuite's error envelope.

/// A select item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Select {
    pub column: String,
    /// `BUILTIN.DF(column)`: the display value.
    pub display: bool,
    /// Output key (lower case).
    pub key: String,
}

/// A literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    Str(String),
    Num(i64),
    /// `TO_DATE(literal, format)`: a local wall time in the session's time zone.
    Date(chrono::NaiveDateTime),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ge,
    Le,
    Gt,
    Lt,
}

/// A WHERE condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Cmp {
        column: String,
        op: Op,
        value: Literal,
    },
    In {
        column: String,
        values: Vec<String>,
    },
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub select: Vec<Select>,
    /// Lower case.
    pub table: String,
    pub conds: Vec<Cond>,
    /// (column, descending)
    pub order: Vec<(String, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(i64),
    Sym(&'static str),
}

fn tokenize(q: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let s = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            out.push(Tok::Ident(
                chars[s..i].iter().collect::<String>().to_ascii_lowercase(),
            ));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let s = i;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let text: String = chars[s..i].iter().collect();
            out.push(Tok::Num(
                text.parse().map_err(|_| format!("bad number {text}"))?,
            ));
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                ">=" => Some(">="),
                "<=" => Some("<="),
                _ => None,
            };
            if let Some(s) = sym {
                out.push(Tok::Sym(s));
                i += 2;
                continue;
            }
            let sym = match c {
                '(' => "(",
                ')' => ")",
                ',' => ",",
                '=' => "=",
                '<' => "<",
                '>' => ">",
                '*' => "*",
                _ => return Err(format!("unexpected character '{c}'")),
            };
            out.push(Tok::Sym(sym));
            i += 1;
        }
    }
    Ok(out)
}

struct P {
    toks: Vec<Tok>,
    pos: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == kw)
    }
    fn kw(&mut self, kw: &str) -> Result<(), String> {
        if self.is_kw(kw) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!(
                "expected {} near {:?}",
                kw.to_uppercase(),
                self.peek()
            ))
        }
    }
    fn sym(&mut self, s: &str) -> Result<(), String> {
        match self.next() {
            Some(Tok::Sym(x)) if x == s => Ok(()),
            other => Err(format!("expected '{s}', found {other:?}")),
        }
    }
    fn ident(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Ident(s)) if !is_reserved(&s) => Ok(s),
            other => Err(format!("expected an identifier, found {other:?}")),
        }
    }
    fn string(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            other => Err(format!("expected a string literal, found {other:?}")),
        }
    }
}

fn is_reserved(s: &str) -> bool {
    matches!(
        s,
        "select" | "from" | "where" | "and" | "or" | "order" | "by" | "as" | "in" | "asc" | "desc"
    )
}

/// Parses a query of the grammar above.
pub fn parse(q: &str) -> Result<Query, String> {
    let mut p = P {
        toks: tokenize(q)?,
        pos: 0,
    };
    p.kw("select")?;
    let mut select = Vec::new();
    loop {
        let (column, display) = if p.is_kw("builtin.df") {
            p.pos += 1;
            p.sym("(")?;
            let c = p.ident()?;
            p.sym(")")?;
            (c, true)
        } else {
            (p.ident()?, false)
        };
        let key = if p.is_kw("as") {
            p.pos += 1;
            p.ident()?
        } else {
            column.clone()
        };
        select.push(Select {
            column,
            display,
            key,
        });
        if matches!(p.peek(), Some(Tok::Sym(","))) {
            p.pos += 1;
        } else {
            break;
        }
    }
    p.kw("from")?;
    let table = p.ident()?;
    let mut conds = Vec::new();
    if p.is_kw("where") {
        p.pos += 1;
        loop {
            let column = p.ident()?;
            if p.is_kw("in") {
                p.pos += 1;
                p.sym("(")?;
                let mut values = vec![p.string()?];
                while matches!(p.peek(), Some(Tok::Sym(","))) {
                    p.pos += 1;
                    values.push(p.string()?);
                }
                p.sym(")")?;
                conds.push(Cond::In { column, values });
            } else {
                let op = match p.next() {
                    Some(Tok::Sym("=")) => Op::Eq,
                    Some(Tok::Sym(">=")) => Op::Ge,
                    Some(Tok::Sym("<=")) => Op::Le,
                    Some(Tok::Sym(">")) => Op::Gt,
                    Some(Tok::Sym("<")) => Op::Lt,
                    other => return Err(format!("expected a comparison, found {other:?}")),
                };
                let value = match p.next() {
                    Some(Tok::Str(s)) => Literal::Str(s),
                    Some(Tok::Num(n)) => Literal::Num(n),
                    Some(Tok::Ident(f)) if f == "to_date" => {
                        p.sym("(")?;
                        let lit = p.string()?;
                        p.sym(",")?;
                        let fmt = p.string()?;
                        p.sym(")")?;
                        let chrono_fmt = match fmt.to_ascii_uppercase().as_str() {
                            "YYYY-MM-DD HH24:MI" => "%Y-%m-%d %H:%M",
                            "YYYY-MM-DD HH24:MI:SS" => "%Y-%m-%d %H:%M:%S",
                            _ => return Err(format!("unsupported TO_DATE format '{fmt}'")),
                        };
                        let t = chrono::NaiveDateTime::parse_from_str(&lit, chrono_fmt)
                            .map_err(|_| format!("'{lit}' does not match the format '{fmt}'"))?;
                        Literal::Date(t)
                    }
                    other => return Err(format!("expected a value, found {other:?}")),
                };
                conds.push(Cond::Cmp { column, op, value });
            }
            if p.is_kw("and") {
                p.pos += 1;
            } else {
                break;
            }
        }
    }
    let mut order = Vec::new();
    if p.is_kw("order") {
        p.pos += 1;
        p.kw("by")?;
        loop {
            let c = p.ident()?;
            let desc = if p.is_kw("desc") {
                p.pos += 1;
                true
            } else {
                if p.is_kw("asc") {
                    p.pos += 1;
                }
                false
            };
            order.push((c, desc));
            if matches!(p.peek(), Some(Tok::Sym(","))) {
                p.pos += 1;
            } else {
                break;
            }
        }
    }
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {t:?} after the end of the query"));
    }
    Ok(Query {
        select,
        table,
        conds,
        order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_connector_shapes() {
        let q = parse(
            "SELECT id, BUILTIN.DF(currency) AS currency, lastmodifieddate FROM transaction \
             WHERE type = 'SalesOrd' AND lastmodifieddate >= TO_DATE('2024-01-15 07:04', 'YYYY-MM-DD HH24:MI') \
             AND lastmodifieddate <= TO_DATE('2024-01-16 07:04', 'YYYY-MM-DD HH24:MI') ORDER BY lastmodifieddate, id",
        )
        .unwrap();
        assert_eq!(q.table, "transaction");
        assert_eq!(q.select.len(), 3);
        assert!(q.select[1].display);
        assert_eq!(q.conds.len(), 3);
        assert_eq!(
            q.order,
            vec![("lastmodifieddate".into(), false), ("id".into(), false)]
        );
        let d =
            parse("select recordid from DeletedRecord where type in ('customer', 'salesorder')")
                .unwrap();
        assert_eq!(d.table, "deletedrecord");
        assert!(parse("SELECT * FROM transaction").is_err());
        assert!(parse("SELECT id FROM transaction WHERE id = 1 OR id = 2").is_err());
    }
}
