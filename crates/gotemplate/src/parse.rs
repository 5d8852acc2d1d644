//! The parser: tokens into Go's parse tree (text/template/parse), with its
//! checks: functions must exist, variables must be declared, pipeline
//! stages after the first must be executable.

use std::collections::HashMap;

use crate::lex::{self, Kind, Token};

#[derive(Debug, Clone)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    With(Branch),
    Range(Branch),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub enum Arg {
    /// `.A.B`
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    /// `$x.A` (idents[0] is the variable's name)
    Variable {
        pos: usize,
        idents: Vec<String>,
    },
    /// `(pipe).A`, `"s".A`...
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
    Dot(usize),
    Nil(usize),
    Identifier {
        pos: usize,
        name: String,
    },
    Pipe(usize, Box<Pipe>),
    Bool(usize, bool),
    String {
        pos: usize,
        quoted: String,
        text: String,
    },
    Number {
        pos: usize,
        num: Number,
    },
}

/// A numeric constant: Go keeps what it can be (integer, float) at once.
#[derive(Debug, Clone)]
pub struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// Written with `.`, `e` or `p`: a float64 when used as a value.
    pub is_float_syntax: bool,
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Identifier { pos, .. }
            | Arg::String { pos, .. }
            | Arg::Number { pos, .. } => *pos,
            Arg::Dot(p) | Arg::Nil(p) | Arg::Pipe(p, _) | Arg::Bool(p, _) => *p,
        }
    }
}

impl std::fmt::Display for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arg::Field { idents, .. } => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Variable { idents, .. } => write!(f, "{}", idents.join(".")),
            Arg::Chain { node, fields, .. } => {
                write!(f, "{node}")?;
                for i in fields {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Identifier { name, .. } => f.write_str(name),
            Arg::Pipe(_, p) => write!(f, "({p})"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::String { quoted, .. } => f.write_str(quoted),
            Arg::Number { num, .. } => f.write_str(&num.text),
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.decl.is_empty() {
            write!(
                f,
                "{} {} ",
                self.decl.join(", "),
                if self.is_assign { "=" } else { ":=" }
            )?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// A parse error: the byte offset it was found at and Go's message.
#[derive(Debug, Clone)]
pub struct ParseError {
    pub pos: usize,
    pub msg: String,
}

/// The parsed trees: the main one and those `define`d.
pub type Trees = HashMap<String, Vec<Node>>;

/// Parses `src`; `funcs` says which function names exist.
pub fn parse(src: &str, is_func: &dyn Fn(&str) -> bool) -> Result<(Vec<Node>, Trees), ParseError> {
    let toks = lex::lex(src).map_err(|e| ParseError {
        pos: e.pos,
        msg: e.msg,
    })?;
    let mut p = Parser {
        depth: 0,
        toks,
        i: 0,
        vars: vec!["$".into()],
        is_func,
        defs: HashMap::new(),
        range_depth: 0,
    };
    let main = p.top()?;
    Ok((main, p.defs))
}

/// How deeply parentheses and control actions may nest: deeper would
/// exhaust the stack (Go 1.21 refuses beyond 10000 parentheses).
const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    depth: usize,
    toks: Vec<Token>,
    i: usize,
    vars: Vec<String>,
    is_func: &'a dyn Fn(&str) -> bool,
    defs: Trees,
    range_depth: usize,
}

/// A node, or the end of the list it was in.
enum Item {
    Node(Node),
    End(ListEnd),
}

/// What ended a list: `{{end}}`, `{{else}}` (with what follows), or EOF.
enum ListEnd {
    End(usize),
    Else(usize),
    Eof,
}

type R<T> = Result<T, ParseError>;

impl Parser<'_> {
    fn next(&mut self) -> Token {
        let t = self.toks[self.i.min(self.toks.len() - 1)].clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn next_non_space(&mut self) -> Token {
        loop {
            let t = self.next();
            if t.kind != Kind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Token {
        let save = self.i;
        let t = self.next_non_space();
        self.i = save;
        t
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> R<T> {
        Err(ParseError {
            pos,
            msg: msg.into(),
        })
    }

    fn unexpected<T>(&self, t: &Token, context: &str) -> R<T> {
        // Go's item.String().
        let what = match t.kind {
            Kind::Eof => "EOF".to_string(),
            k if is_keyword(k) => format!("<{}>", t.text),
            _ if t.text.chars().count() > 10 => {
                let head: String = t.text.chars().take(10).collect();
                format!("{}...", crate::fmt::quote(&head))
            }
            _ => crate::fmt::quote(&t.text),
        };
        self.err(t.pos, format!("unexpected {what} in {context}"))
    }

    fn top(&mut self) -> R<Vec<Node>> {
        let mut list = Vec::new();
        loop {
            let t = self.peek().clone();
            match t.kind {
                Kind::Eof => return Ok(list),
                Kind::LeftDelim => {
                    self.next();
                    if self.peek_non_space().kind == Kind::Define {
                        self.next_non_space();
                        self.define()?;
                        continue;
                    }
                    self.backup();
                    match self.text_or_action()? {
                        Item::Node(n) => list.push(n),
                        Item::End(ListEnd::End(p)) => return self.err(p, "unexpected {{end}}"),
                        Item::End(ListEnd::Else(p)) => return self.err(p, "unexpected {{else}}"),
                        Item::End(ListEnd::Eof) => return Ok(list),
                    }
                }
                _ => match self.text_or_action()? {
                    Item::Node(n) => list.push(n),
                    Item::End(_) => return Ok(list),
                },
            }
        }
    }

    fn define(&mut self) -> R<()> {
        let t = self.next_non_space();
        let name = match t.kind {
            Kind::String | Kind::RawString => {
                unquote(&t.text).map_err(|m| ParseError { pos: t.pos, msg: m })?
            }
            _ => return self.unexpected(&t, "define clause"),
        };
        let t = self.next_non_space();
        if t.kind != Kind::RightDelim {
            return self.unexpected(&t, "define clause");
        }
        let list = self.body()?;
        self.add_def(t.pos, name, list)
    }

    /// A named template's body, up to its `{{end}}`, with its own variables.
    fn body(&mut self) -> R<Vec<Node>> {
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end) = self.item_list()?;
        self.vars = saved;
        match end {
            ListEnd::End(_) => Ok(list),
            ListEnd::Else(p) => self.err(p, "unexpected {{else}}"),
            ListEnd::Eof => self.err(self.peek().pos, "unexpected EOF"),
        }
    }

    /// Go's rule: an empty definition gives way, two non-empty ones clash.
    fn add_def(&mut self, pos: usize, name: String, list: Vec<Node>) -> R<()> {
        let empty = |l: &[Node]| {
            l.iter()
                .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
        };
        match self.defs.get(&name) {
            Some(old) if !empty(old) => {
                if !empty(&list) {
                    return self.err(
                        pos,
                        format!("template: multiple definition of template {name:?}"),
                    );
                }
            }
            _ => {
                self.defs.insert(name, list);
            }
        }
        Ok(())
    }

    /// `{{block "name" pipeline}}...{{end}}`: a definition used at once.
    fn block(&mut self) -> R<Node> {
        let t = self.next_non_space();
        let name = match t.kind {
            Kind::String | Kind::RawString => {
                unquote(&t.text).map_err(|m| ParseError { pos: t.pos, msg: m })?
            }
            _ => return self.unexpected(&t, "block clause"),
        };
        let pipe = self.pipeline("block clause", Kind::RightDelim)?;
        let list = self.body()?;
        self.add_def(t.pos, name.clone(), list)?;
        Ok(Node::Template {
            pos: t.pos,
            name,
            pipe: Some(pipe),
        })
    }

    /// Nodes up to `{{end}}` / `{{else}}` / EOF.
    fn item_list(&mut self) -> R<(Vec<Node>, ListEnd)> {
        let mut list = Vec::new();
        loop {
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                Item::End(end) => return Ok((list, end)),
            }
        }
    }

    fn text_or_action(&mut self) -> R<Item> {
        let t = self.next_non_space_outside();
        match t.kind {
            Kind::Text => Ok(Item::Node(Node::Text(t.text))),
            Kind::LeftDelim => self.action(),
            Kind::Eof => Ok(Item::End(ListEnd::Eof)),
            _ => self.unexpected(&t, "input"),
        }
    }

    /// Outside actions there are no space tokens.
    fn next_non_space_outside(&mut self) -> Token {
        self.next()
    }

    fn action(&mut self) -> R<Item> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Block => Ok(Item::Node(self.block()?)),
            Kind::Break | Kind::Continue => {
                let word = if t.kind == Kind::Break {
                    "break"
                } else {
                    "continue"
                };
                let d = self.next_non_space();
                if d.kind != Kind::RightDelim {
                    return self.unexpected(&d, &format!("{{{{{word}}}}}"));
                }
                if self.range_depth == 0 {
                    return self.err(t.pos, format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                Ok(Item::Node(if t.kind == Kind::Break {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            Kind::Else => {
                // `{{else}}` or `{{else if ...}}`: the caller decides.
                let pos = t.pos;
                let n = self.peek_non_space();
                if n.kind == Kind::If {
                    // Leave `if ...}}` to be read as a nested if.
                    while self.peek().kind == Kind::Space {
                        self.next();
                    }
                    return Ok(Item::End(ListEnd::Else(pos)));
                }
                let d = self.next_non_space();
                if d.kind != Kind::RightDelim {
                    return self.unexpected(&d, "else");
                }
                Ok(Item::End(ListEnd::Else(pos)))
            }
            Kind::End => {
                let d = self.next_non_space();
                if d.kind != Kind::RightDelim {
                    return self.unexpected(&d, "end");
                }
                Ok(Item::End(ListEnd::End(t.pos)))
            }
            Kind::If => Ok(Item::Node(Node::If(self.control("if", true)?))),
            Kind::Range => {
                self.range_depth += 1;
                let b = self.control("range", false);
                self.range_depth -= 1;
                Ok(Item::Node(Node::Range(b?)))
            }
            Kind::With => Ok(Item::Node(Node::With(self.control("with", false)?))),
            Kind::Template => Ok(Item::Node(self.template()?)),
            _ => {
                self.backup();
                let pos = self.peek().pos;
                let pipe = self.pipeline("command", Kind::RightDelim)?;
                let _ = pos;
                Ok(Item::Node(Node::Action(pipe)))
            }
        }
    }

    fn template(&mut self) -> R<Node> {
        let t = self.next_non_space();
        let pos = t.pos;
        let name = match t.kind {
            Kind::String | Kind::RawString => {
                unquote(&t.text).map_err(|m| ParseError { pos: t.pos, msg: m })?
            }
            _ => return self.unexpected(&t, "template clause"),
        };
        let n = self.next_non_space();
        let pipe = if n.kind == Kind::RightDelim {
            None
        } else {
            self.backup();
            Some(self.pipeline("template clause", Kind::RightDelim)?)
        };
        Ok(Node::Template { pos, name, pipe })
    }

    fn control(&mut self, context: &str, allow_else_if: bool) -> R<Branch> {
        self.depth += 1;
        let b = self.control_inner(context, allow_else_if);
        self.depth -= 1;
        b
    }

    fn control_inner(&mut self, context: &str, allow_else_if: bool) -> R<Branch> {
        if self.depth > MAX_DEPTH {
            return self.err(self.peek().pos, "max expression depth exceeded");
        }
        let mark = self.vars.len();
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        let (list, end) = self.item_list()?;
        let else_list = match end {
            ListEnd::End(_) => None,
            ListEnd::Eof => return self.err(self.peek().pos, "unexpected EOF"),
            ListEnd::Else(_) => {
                if allow_else_if && self.peek_non_space().kind == Kind::If {
                    // `{{else if x}}` is `{{else}}{{if x}}...{{end}}{{end}}`
                    // sharing the one `{{end}}`.
                    self.next_non_space();
                    let inner = self.control(context, true)?;
                    Some(vec![Node::If(inner)])
                } else {
                    let (elist, end) = self.item_list()?;
                    match end {
                        ListEnd::End(_) => {}
                        ListEnd::Else(p) => return self.err(p, "expected end; found {{else}}"),
                        ListEnd::Eof => return self.err(self.peek().pos, "unexpected EOF"),
                    }
                    Some(elist)
                }
            }
        };
        self.vars.truncate(mark);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> R<Pipe> {
        let first = self.peek_non_space();
        let mut pipe = Pipe {
            pos: first.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // Declarations: `$x :=`, `$x =`, `$i, $e :=` (range).
        'decl: {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break 'decl;
            }
            let save = self.i;
            self.next_non_space();
            let n = self.next_non_space();
            match n.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = n.kind == Kind::Assign;
                    // An assignment to an undeclared variable fails when
                    // run, as in Go.
                    if !pipe.is_assign {
                        self.vars.push(v.text.clone());
                    }
                    pipe.decl.push(v.text);
                }
                Kind::Char if n.text == "," => {
                    if context != "range" || !pipe.decl.is_empty() {
                        return self.err(n.pos, format!("too many declarations in {context}"));
                    }
                    let v2 = self.next_non_space();
                    let a = self.next_non_space();
                    if v2.kind != Kind::Variable || !matches!(a.kind, Kind::Assign | Kind::Declare)
                    {
                        return self.err(n.pos, "too many declarations in range");
                    }
                    pipe.is_assign = a.kind == Kind::Assign;
                    for x in [&v, &v2] {
                        if !pipe.is_assign {
                            self.vars.push(x.text.clone());
                        }
                    }
                    pipe.decl.push(v.text);
                    pipe.decl.push(v2.text);
                }
                _ => self.i = save,
            }
        }
        loop {
            let t = self.next_non_space();
            if t.kind == end {
                if pipe.cmds.is_empty() {
                    return self.err(t.pos, format!("missing value for {context}"));
                }
                for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                    if matches!(
                        c.args[0],
                        Arg::Bool(..)
                            | Arg::Dot(_)
                            | Arg::Nil(_)
                            | Arg::Number { .. }
                            | Arg::String { .. }
                    ) {
                        return self.err(
                            t.pos,
                            format!("non executable command in pipeline stage {}", i + 1),
                        );
                    }
                }
                return Ok(pipe);
            }
            match t.kind {
                Kind::Bool
                | Kind::CharConstant
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return self.unexpected(&t, context),
            }
        }
    }

    fn command(&mut self) -> R<Command> {
        let mut cmd = Command {
            pos: self.peek_non_space().pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(a) = self.operand()? {
                cmd.args.push(a);
            }
            let t = self.next();
            match t.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(&t, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.err(cmd.pos, "empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> R<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            fields.push(self.next().text[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { pos: _, mut idents } => {
                idents.extend(fields);
                Arg::Field {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Variable { pos: _, mut idents } => {
                idents.extend(fields);
                Arg::Variable {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Bool(..) | Arg::String { .. } | Arg::Number { .. } | Arg::Nil(_) | Arg::Dot(_) => {
                return self.err(
                    chain_pos,
                    format!("unexpected . after term {:?}", node.to_string()),
                );
            }
            node => Arg::Chain {
                pos: chain_pos,
                node: Box::new(node),
                fields,
            },
        }))
    }

    fn term(&mut self) -> R<Option<Arg>> {
        let t = self.next_non_space();
        Ok(Some(match t.kind {
            Kind::Identifier => {
                if !(self.is_func)(&t.text) {
                    return self.err(t.pos, format!("function {:?} not defined", t.text));
                }
                Arg::Identifier {
                    pos: t.pos,
                    name: t.text,
                }
            }
            Kind::Dot => Arg::Dot(t.pos),
            Kind::Nil => Arg::Nil(t.pos),
            Kind::Variable => {
                if !self.vars.contains(&t.text) {
                    return self.err(t.pos, format!("undefined variable {:?}", t.text));
                }
                Arg::Variable {
                    pos: t.pos,
                    idents: vec![t.text],
                }
            }
            Kind::Field => Arg::Field {
                pos: t.pos,
                idents: vec![t.text[1..].to_string()],
            },
            Kind::Bool => Arg::Bool(t.pos, t.text == "true"),
            Kind::CharConstant | Kind::Number => {
                let num = number(&t).map_err(|m| ParseError { pos: t.pos, msg: m })?;
                Arg::Number { pos: t.pos, num }
            }
            Kind::LeftParen => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return self.err(t.pos, "max expression depth exceeded");
                }
                let p = self.pipeline("parenthesized pipeline", Kind::RightParen);
                self.depth -= 1;
                Arg::Pipe(t.pos, Box::new(p?))
            }
            Kind::String | Kind::RawString => {
                let text = unquote(&t.text).map_err(|m| ParseError { pos: t.pos, msg: m })?;
                Arg::String {
                    pos: t.pos,
                    quoted: t.text,
                    text,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

fn is_keyword(k: Kind) -> bool {
    matches!(
        k,
        Kind::Block
            | Kind::Break
            | Kind::Continue
            | Kind::Define
            | Kind::Dot
            | Kind::Else
            | Kind::End
            | Kind::If
            | Kind::Nil
            | Kind::Range
            | Kind::Template
            | Kind::With
    )
}

/// Go's strconv.Unquote for "..." and `...` literals.
pub fn unquote(s: &str) -> Result<String, String> {
    let bad = || "invalid syntax".to_string();
    if let Some(raw) = s.strip_prefix('`') {
        return raw.strip_suffix('`').map(str::to_string).ok_or_else(bad);
    }
    let q = s.chars().next().ok_or_else(bad)?;
    let inner = s
        .strip_prefix(q)
        .and_then(|x| x.strip_suffix(q))
        .ok_or_else(bad)?;
    let mut out = String::new();
    let mut it = inner.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next().ok_or_else(bad)?;
        let hex =
            |it: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| -> Result<u32, String> {
                let h: String = (0..n).filter_map(|_| it.next()).collect();
                if h.len() != n {
                    return Err(bad());
                }
                u32::from_str_radix(&h, 16).map_err(|_| bad())
            };
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '\'' if q == '\'' => out.push('\''),
            '"' if q == '"' => out.push('"'),
            'x' => out.push(char::from_u32(hex(&mut it, 2)?).ok_or_else(bad)?),
            'u' => out.push(char::from_u32(hex(&mut it, 4)?).ok_or_else(bad)?),
            'U' => out.push(char::from_u32(hex(&mut it, 8)?).ok_or_else(bad)?),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = it.next().and_then(|c| c.to_digit(8)).ok_or_else(bad)?;
                    v = v * 8 + d;
                }
                out.push(char::from_u32(v).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// A number or character constant as Go's parser reads it.
fn number(t: &Token) -> Result<Number, String> {
    let text = t.text.clone();
    if t.kind == Kind::CharConstant {
        let s = unquote(&text).map_err(|_| format!("malformed character constant: {text}"))?;
        let mut cs = s.chars();
        let (Some(c), None) = (cs.next(), cs.next()) else {
            return Err(format!("malformed character constant: {text}"));
        };
        return Ok(Number {
            text,
            int: Some(i64::from(c as u32)),
            float: Some(f64::from(c as u32)),
            is_float_syntax: false,
        });
    }
    if text.ends_with('i') {
        return Err(format!("complex numbers are not supported: {text}"));
    }
    let clean = text.replace('_', "");
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    }
    .map(|v| if neg { -v } else { v });
    let is_float_syntax = !lower.starts_with("0x") && lower.contains(['.', 'e']);
    let float = if is_float_syntax {
        clean.parse::<f64>().ok()
    } else {
        int.map(|i| i as f64)
    };
    // A float with an integral value is an integer too (Go: `1.0` is both).
    let int = int.or_else(|| {
        float
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    });
    if int.is_none() && float.is_none() {
        return Err(format!("illegal number syntax: {text:?}"));
    }
    Ok(Number {
        text,
        int,
        float,
        is_float_syntax,
    })
}

/// What a template reads of its data: the field names it mentions, and
/// whether it may read all of it (a bare `.` or `$` used as a value, as
/// `{{json .}}` does).
#[derive(Debug, Default)]
pub struct Usage {
    pub names: std::collections::HashSet<String>,
    pub whole: bool,
}

impl Usage {
    pub fn add_list(&mut self, list: &[Node]) {
        for n in list {
            match n {
                Node::Text(_) | Node::Break | Node::Continue => {}
                Node::Action(p) => self.add_pipe(p),
                Node::If(b) | Node::With(b) | Node::Range(b) => {
                    self.add_pipe(&b.pipe);
                    self.add_list(&b.list);
                    if let Some(e) = &b.else_list {
                        self.add_list(e);
                    }
                }
                Node::Template { pipe, .. } => {
                    // The called template reads its dot as a whole.
                    self.whole = true;
                    if let Some(p) = pipe {
                        self.add_pipe(p);
                    }
                }
            }
        }
    }

    fn add_pipe(&mut self, p: &Pipe) {
        for c in &p.cmds {
            for a in &c.args {
                self.add_arg(a);
            }
        }
    }

    fn add_arg(&mut self, a: &Arg) {
        match a {
            Arg::Field { idents, .. } => self.names.extend(idents.iter().cloned()),
            Arg::Variable { idents, .. } => {
                if idents.len() == 1 {
                    // A variable may hold the data itself.
                    self.whole = true;
                }
                self.names.extend(idents.iter().skip(1).cloned());
            }
            Arg::Chain { node, fields, .. } => {
                self.add_arg(node);
                self.names.extend(fields.iter().cloned());
            }
            Arg::Dot(_) => self.whole = true,
            Arg::Pipe(_, p) => self.add_pipe(p),
            Arg::Nil(_)
            | Arg::Identifier { .. }
            | Arg::Bool(..)
            | Arg::String { .. }
            | Arg::Number { .. } => {}
        }
    }
}
