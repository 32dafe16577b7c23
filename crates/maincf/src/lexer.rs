//! Lexer: main.cf / types.cf text into tokens, each with its line and column.
//!
//! The language has three kinds of text token: quoted strings (escapes `\"`
//! and `\\`; any other backslash is kept as written, so Windows paths
//! survive), bare words (anything without whitespace or `(){}=,"@`, ended
//! also by a comment opener), and punctuation. Whether a bare word is an
//! integer is decided by the parser, where the context is known.
//!
//! Invariants: comments (`// ...` and `/* ... */`) never reach the parser;
//! the lexer never panics, whatever the input — malformed text is an error
//! at the position where it starts.

use crate::error::{ConfigError, Pos};

/// One token of the language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare word: a name, a keyword, an integer or unquoted text.
    Word(String),
    /// A quoted string, escapes resolved.
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Eq,
    Comma,
    At,
}

impl Tok {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(s) => format!("string \"{}\"", shorten(s)),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Comma => "`,`".into(),
            Tok::At => "`@`".into(),
        }
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 30;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}...")
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// The tokens of a file, and the position just past its end (where errors
/// about something missing at the end point).
#[derive(Debug)]
pub(crate) struct Tokens {
    pub tokens: Vec<Token>,
    pub end: Pos,
}

/// Characters that end a bare word (besides whitespace and comments).
const PUNCTUATION: &[char] = &['(', ')', '{', '}', '=', ',', '"', '@'];

/// Splits `text` into tokens; `file` names it in errors.
pub(crate) fn tokenize(file: &str, text: &str) -> Result<Tokens, ConfigError> {
    // A byte-order mark some editors add is not part of the text.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Lexer {
        chars: text.chars().collect(),
        at: 0,
        pos: Pos::START,
    }
    .run(file)
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
    pos: Pos,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.at += 1;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    fn at_comment(&self) -> bool {
        self.peek(0) == Some('/') && matches!(self.peek(1), Some('/') | Some('*'))
    }

    fn run(mut self, file: &str) -> Result<Tokens, ConfigError> {
        let mut tokens = Vec::new();
        while let Some(c) = self.peek(0) {
            let pos = self.pos;
            if c.is_whitespace() {
                self.bump();
            } else if self.at_comment() {
                self.skip_comment(file)?;
            } else if c == '"' {
                let s = self.string(file)?;
                tokens.push(Token {
                    tok: Tok::Str(s),
                    pos,
                });
            } else if let Some(tok) = punctuation(c) {
                self.bump();
                tokens.push(Token { tok, pos });
            } else {
                let w = self.word();
                tokens.push(Token {
                    tok: Tok::Word(w),
                    pos,
                });
            }
        }
        Ok(Tokens {
            tokens,
            end: self.pos,
        })
    }

    fn skip_comment(&mut self, file: &str) -> Result<(), ConfigError> {
        let start = self.pos;
        self.bump();
        if self.bump() == Some('/') {
            while let Some(c) = self.bump() {
                if c == '\n' {
                    break;
                }
            }
            return Ok(());
        }
        loop {
            match self.bump() {
                Some('*') if self.peek(0) == Some('/') => {
                    self.bump();
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    return Err(ConfigError::at(
                        file,
                        start,
                        "comment `/*` is never closed; add `*/` where it should end",
                    ))
                }
            }
        }
    }

    fn string(&mut self, file: &str) -> Result<String, ConfigError> {
        let start = self.pos;
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(s),
                Some('\\') => match self.peek(0) {
                    Some(c @ ('"' | '\\')) => {
                        self.bump();
                        s.push(c);
                    }
                    _ => s.push('\\'),
                },
                Some(c) => s.push(c),
                None => {
                    return Err(ConfigError::at(
                        file,
                        start,
                        "string is never closed; add the closing `\"` (write `\\\"` for a quote inside it)",
                    ))
                }
            }
        }
    }

    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_whitespace() || PUNCTUATION.contains(&c) || self.at_comment() {
                break;
            }
            self.bump();
            w.push(c);
        }
        w
    }
}

fn punctuation(c: char) -> Option<Tok> {
    Some(match c {
        '(' => Tok::LParen,
        ')' => Tok::RParen,
        '{' => Tok::LBrace,
        '}' => Tok::RBrace,
        '=' => Tok::Eq,
        ',' => Tok::Comma,
        '@' => Tok::At,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        match tokenize("t.cf", text) {
            Ok(t) => t.tokens.into_iter().map(|t| t.tok).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    fn word(w: &str) -> Tok {
        Tok::Word(w.into())
    }

    #[test]
    fn words_take_paths_addresses_and_dashes() {
        assert_eq!(
            toks("/usr/bin/x 10.0.0.1 a-b.c eth0 -5 PidFiles[]"),
            vec![
                word("/usr/bin/x"),
                word("10.0.0.1"),
                word("a-b.c"),
                word("eth0"),
                word("-5"),
                word("PidFiles[]")
            ]
        );
    }

    #[test]
    fn punctuation_splits_words() {
        assert_eq!(
            toks("A@sysA={x,y}()"),
            vec![
                word("A"),
                Tok::At,
                word("sysA"),
                Tok::Eq,
                Tok::LBrace,
                word("x"),
                Tok::Comma,
                word("y"),
                Tok::RBrace,
                Tok::LParen,
                Tok::RParen
            ]
        );
    }

    #[test]
    fn comments_are_skipped_and_end_words() {
        assert_eq!(
            toks("a // x y\nb /* c\n d */ e// f\ng/*h*/"),
            vec![word("a"), word("b"), word("e"), word("g")]
        );
    }

    #[test]
    fn strings_resolve_quote_and_backslash_escapes_only() {
        assert_eq!(
            toks(r#""a \"b\" \\ C:\temp""#),
            vec![Tok::Str(r#"a "b" \ C:\temp"#.into())]
        );
    }

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let t = match tokenize("t.cf", "a\n\tbé \"x\ny\" c") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let pos: Vec<(usize, usize)> = t
            .tokens
            .iter()
            .map(|t| (t.pos.line, t.pos.column))
            .collect();
        assert_eq!(pos, vec![(1, 1), (2, 2), (2, 5), (3, 4)]);
        assert_eq!(t.end, Pos { line: 3, column: 5 });
    }

    #[test]
    fn byte_order_mark_and_carriage_returns_are_ignored() {
        assert_eq!(
            toks("\u{feff}cluster c\r\nsystem s\r\n"),
            vec![word("cluster"), word("c"), word("system"), word("s")]
        );
    }

    #[test]
    fn unterminated_string_points_at_its_opening_quote() {
        let e = tokenize("t.cf", "a = \"abc").err();
        assert_eq!(e.map(|e| (e.line, e.column)), Some((1, 5)));
    }

    #[test]
    fn unterminated_block_comment_points_at_its_opener() {
        let e = tokenize("t.cf", "a\n  /* abc").err();
        assert_eq!(e.map(|e| (e.line, e.column)), Some((2, 3)));
    }
}
