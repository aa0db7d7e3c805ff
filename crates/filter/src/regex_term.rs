//! The regex subset of `%...%` terms (spec §5): the alphabet is checked first, then the body is
//! compiled (byte-oriented, ASCII classes, no flags) with `{,n}` rewritten to `{0,n}`.

/// Operators of the subset.
const OPERATORS: &str = "^$?[]{}|\\*+.";
/// Literal symbols besides letters and digits.
const SYMBOLS: &str = ":_#=@/;,- ";

/// A compiled regex term.
#[derive(Debug, Clone)]
pub struct Regex {
    /// The body as written.
    pub source: String,
    compiled: regex::bytes::Regex,
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Regex {
    /// Whether the regex finds a match in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.compiled.is_match(text.as_bytes())
    }
}

/// Validates and compiles a body; the error names the offending character's offset in it.
pub fn compile(body: &str) -> Result<Regex, (usize, String)> {
    if body.is_empty() {
        return Err((0, "a regex must not be empty".into()));
    }
    let mut translated = String::with_capacity(body.len() + 8);
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&next) = chars.get(i + 1) else {
                return Err((i, "a regex must not end with a backslash".into()));
            };
            match next {
                'd' | 'D' | 'w' | 'W' | 's' | 'S' => translated.extend(['\\', next]),
                'x' => {
                    let hex: String = chars.iter().skip(i + 2).take(2).collect();
                    if hex.len() != 2 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                        return Err((i, "\\x needs two hex digits".into()));
                    }
                    translated.push_str(&format!("\\x{hex}"));
                    i += 4;
                    continue;
                }
                n if OPERATORS.contains(n) || SYMBOLS.contains(n) => {
                    translated.push_str(&regex::escape(&n.to_string()))
                }
                other => return Err((i, format!("unsupported escape \\{other}"))),
            }
            i += 2;
            continue;
        }
        if c == '{' {
            // `{,n}` means `{0,n}`.
            if chars.get(i + 1) == Some(&',') {
                translated.push_str("{0");
                i += 1;
                continue;
            }
        }
        if !(c.is_ascii_alphanumeric() || OPERATORS.contains(c) || SYMBOLS.contains(c)) {
            return Err((i, format!("character {c:?} is not allowed in a regex")));
        }
        translated.push(c);
        i += 1;
    }
    let compiled = regex::bytes::RegexBuilder::new(&translated)
        .unicode(false)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| (0, format!("the regex does not compile: {e}")))?;
    Ok(Regex {
        source: body.to_owned(),
        compiled,
    })
}
