//! The lexer: template text into text runs and action tokens, as Go's
//! text/template/parse lexes them (trim markers, comments, raw strings,
//! newlines allowed inside actions since Go 1.16).

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    /// `=`
    Assign,
    /// `:=`
    Declare,
    Pipe,
    LeftParen,
    RightParen,
    /// Any other single character (`,` in `range $i, $e :=`).
    Char,
    CharConstant,
    Number,
    Bool,
    Nil,
    Dot,
    Field,
    Variable,
    Identifier,
    String,
    RawString,
    // keywords
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub kind: Kind,
    /// Byte offset in the source.
    pub pos: usize,
    pub text: String,
}

/// A lexing error: where (byte offset) and what.
#[derive(Debug, Clone)]
pub struct LexError {
    pub pos: usize,
    pub msg: String,
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Tokens of `src`, ending with `Eof`, or the first lexing error.
pub fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let mut l = Lexer {
        src,
        pos: 0,
        start: 0,
        toks: Vec::new(),
        paren: 0,
    };
    l.run()?;
    Ok(l.toks)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    start: usize,
    toks: Vec<Token>,
    paren: usize,
}

impl Lexer<'_> {
    fn emit(&mut self, kind: Kind) {
        self.toks.push(Token {
            kind,
            pos: self.start,
            text: self.src[self.start..self.pos].to_string(),
        });
        self.start = self.pos;
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos: self.start,
            msg: msg.into(),
        })
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn run(&mut self) -> Result<(), LexError> {
        loop {
            // Text up to the next left delimiter.
            let Some(off) = self.rest().find(LEFT) else {
                self.pos = self.src.len();
                if self.pos > self.start {
                    self.emit(Kind::Text);
                }
                self.toks.push(Token {
                    kind: Kind::Eof,
                    pos: self.pos,
                    text: String::new(),
                });
                return Ok(());
            };
            self.pos += off;
            let after = &self.src[self.pos + LEFT.len()..];
            let trim_left =
                after.starts_with('-') && after.as_bytes().get(1).is_some_and(|c| is_space(*c));
            if self.pos > self.start {
                let mut text_end = self.pos;
                if trim_left {
                    text_end = self.src[self.start..self.pos]
                        .trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8))
                        .len()
                        + self.start;
                }
                if text_end > self.start {
                    let save = self.pos;
                    self.pos = text_end;
                    self.emit(Kind::Text);
                    self.pos = save;
                }
            }
            self.start = self.pos;
            self.pos += LEFT.len();
            if trim_left {
                self.pos += 2;
            }
            let after = self.rest();
            if after.starts_with("/*") {
                self.comment()?;
            } else {
                self.emit(Kind::LeftDelim);
                // The trim marker is part of the delimiter, its space is not.
                self.paren = 0;
                self.inside()?;
            }
        }
    }

    /// After `{{/*`: the comment must end right before the right delimiter.
    fn comment(&mut self) -> Result<(), LexError> {
        let Some(end) = self.rest().find("*/") else {
            return self.err("unclosed comment");
        };
        self.pos += end + 2;
        let (trim, delim) = self.at_right_delim();
        if !delim {
            return self.err("comment ends before closing delimiter");
        }
        self.pos += RIGHT.len() + if trim { 2 } else { 0 };
        if trim {
            self.skip_leading_space();
        }
        self.start = self.pos;
        Ok(())
    }

    /// Whether a right delimiter (with or without ` -` trim marker) starts here.
    fn at_right_delim(&self) -> (bool, bool) {
        let r = self.rest();
        let trim = r.len() >= 2
            && is_space(r.as_bytes()[0])
            && r[1..].starts_with('-')
            && r[2..].starts_with(RIGHT);
        if trim {
            return (true, true);
        }
        (false, r.starts_with(RIGHT))
    }

    fn skip_leading_space(&mut self) {
        let r = self.rest();
        let n = r.len()
            - r.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8))
                .len();
        self.pos += n;
    }

    fn inside(&mut self) -> Result<(), LexError> {
        loop {
            let (trim, delim) = self.at_right_delim();
            if delim && self.paren == 0 {
                if trim {
                    self.pos += 2;
                    self.start = self.pos;
                }
                self.pos += RIGHT.len();
                self.emit(Kind::RightDelim);
                if trim {
                    self.skip_leading_space();
                    self.start = self.pos;
                }
                return Ok(());
            }
            if delim && self.paren > 0 {
                return self.err("unclosed left paren");
            }
            let Some(c) = self.next() else {
                return self.err("unclosed action");
            };
            match c {
                c if c.is_ascii() && is_space(c as u8) => {
                    while let Some(c) = self.peek() {
                        if !(c.is_ascii() && is_space(c as u8)) || self.at_right_delim().0 {
                            break;
                        }
                        self.pos += 1;
                    }
                    self.emit(Kind::Space);
                }
                '=' => self.emit(Kind::Assign),
                ':' => {
                    if self.next() != Some('=') {
                        return self.err("expected :=");
                    }
                    self.emit(Kind::Declare);
                }
                '|' => self.emit(Kind::Pipe),
                '"' => {
                    loop {
                        match self.next() {
                            Some('\\') => {
                                if matches!(self.next(), None | Some('\n')) {
                                    return self.err("unterminated quoted string");
                                }
                            }
                            None | Some('\n') => return self.err("unterminated quoted string"),
                            Some('"') => break,
                            _ => {}
                        }
                    }
                    self.emit(Kind::String);
                }
                '`' => {
                    let Some(end) = self.rest().find('`') else {
                        return self.err("unterminated raw quoted string");
                    };
                    self.pos += end + 1;
                    self.emit(Kind::RawString);
                }
                '\'' => {
                    loop {
                        match self.next() {
                            Some('\\') => {
                                if matches!(self.next(), None | Some('\n')) {
                                    return self.err("unterminated character constant");
                                }
                            }
                            None | Some('\n') => {
                                return self.err("unterminated character constant")
                            }
                            Some('\'') => break,
                            _ => {}
                        }
                    }
                    self.emit(Kind::CharConstant);
                }
                '$' => {
                    self.word();
                    self.emit(Kind::Variable);
                    self.check_term_end()?;
                }
                '.' => {
                    if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.pos -= 1;
                        self.number()?;
                    } else {
                        self.word();
                        let kind = if self.pos - self.start == 1 {
                            Kind::Dot
                        } else {
                            Kind::Field
                        };
                        self.emit(kind);
                        self.check_term_end()?;
                    }
                }
                '+' | '-' | '0'..='9' => {
                    self.pos -= 1;
                    self.number()?;
                }
                c if is_alnum(c) => {
                    self.word();
                    let kind = match &self.src[self.start..self.pos] {
                        "block" => Kind::Block,
                        "break" => Kind::Break,
                        "continue" => Kind::Continue,
                        "define" => Kind::Define,
                        "else" => Kind::Else,
                        "end" => Kind::End,
                        "if" => Kind::If,
                        "range" => Kind::Range,
                        "template" => Kind::Template,
                        "with" => Kind::With,
                        "true" | "false" => Kind::Bool,
                        "nil" => Kind::Nil,
                        _ => Kind::Identifier,
                    };
                    self.emit(kind);
                    self.check_term_end()?;
                }
                '(' => {
                    self.paren += 1;
                    self.emit(Kind::LeftParen);
                }
                ')' => {
                    // An unbalanced one is the parser's to report ("unexpected
                    // ")" in command"), as Go's lexer emits it first.
                    self.paren = self.paren.saturating_sub(1);
                    self.emit(Kind::RightParen);
                }
                c if c.is_ascii() && !c.is_ascii_control() => self.emit(Kind::Char),
                c => {
                    return self.err(format!(
                        "unrecognized character in action: {}",
                        go_unicode(c)
                    ))
                }
            }
        }
    }

    fn word(&mut self) {
        while let Some(c) = self.peek() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// After a word: only a space, a delimiter or punctuation may follow.
    fn check_term_end(&mut self) -> Result<(), LexError> {
        let Some(c) = self.peek() else { return Ok(()) };
        if self.at_right_delim().1
            || matches!(
                c,
                ' ' | '\t' | '\r' | '\n' | '.' | ',' | '|' | ':' | ')' | '('
            )
        {
            return Ok(());
        }
        self.start = self.pos;
        self.err(format!("bad character {}", go_unicode(c)))
    }

    fn number(&mut self) -> Result<(), LexError> {
        if matches!(self.peek(), Some('+' | '-')) {
            self.pos += 1;
        }
        let mut digits = "0123456789_";
        if self.rest().starts_with('0') {
            let r = self.rest().as_bytes();
            match r.get(1) {
                Some(b'x' | b'X') => {
                    self.pos += 2;
                    digits = "0123456789abcdefABCDEF_";
                }
                Some(b'o' | b'O') => {
                    self.pos += 2;
                    digits = "01234567_";
                }
                Some(b'b' | b'B') => {
                    self.pos += 2;
                    digits = "01_";
                }
                _ => {}
            }
        }
        let take = |l: &mut Self, set: &str| {
            while let Some(c) = l.peek() {
                if !set.contains(c) {
                    break;
                }
                l.pos += 1;
            }
        };
        take(self, digits);
        if self.peek() == Some('.') {
            self.pos += 1;
            take(self, digits);
        }
        let exp = if digits.len() == 11 {
            "eE"
        } else if digits.starts_with("0123456789a") {
            "pP"
        } else {
            ""
        };
        if !exp.is_empty() && self.peek().is_some_and(|c| exp.contains(c)) {
            self.pos += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.pos += 1;
            }
            take(self, "0123456789_");
        }
        if self.peek() == Some('i') {
            self.pos += 1;
        }
        if self.peek().is_some_and(is_alnum) {
            self.next();
            return self.err(format!(
                "bad number syntax: {:?}",
                &self.src[self.start..self.pos]
            ));
        }
        self.emit(Kind::Number);
        Ok(())
    }
}

/// `%#U` of Go's fmt: `U+0021 '!'`.
pub fn go_unicode(c: char) -> String {
    format!("U+{:04X} '{c}'", c as u32)
}
