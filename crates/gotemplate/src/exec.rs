//! The executor: walks a parse tree over a `Value` as Go's text/template
//! does (exec.go): field chains, pipelines, variables, control actions.

use crate::funcs;
use crate::parse::{Arg, Branch, Command, Node, Pipe, Trees};
use crate::value::Value;

/// An execution error: the node it happened at and Go's message.
#[derive(Debug, Clone)]
pub struct ExecError {
    pub pos: usize,
    pub node: String,
    pub msg: String,
}

pub(crate) type R<T> = Result<T, ExecError>;

enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct State<'a> {
    pub defs: &'a Trees,
    pub missing_key_error: bool,
    pub header_functions: bool,
    pub out: &'a mut String,
    vars: Vec<(String, Value)>,
    at_pos: usize,
    at_node: String,
    depth: usize,
    /// Whether dot is held as its own type (the data, a `with` value) or
    /// as an `interface{}` (a ranged element); errors name the type.
    dot_concrete: bool,
}

/// How deeply execution may nest (template calls, control actions): Go
/// allows 100000 on its growable stacks; a thread's fixed stack does not.
const MAX_DEPTH: usize = 100;

impl<'a> State<'a> {
    pub fn new(defs: &'a Trees, missing_key_error: bool, out: &'a mut String, dot: &Value) -> Self {
        State {
            defs,
            missing_key_error,
            header_functions: false,
            out,
            vars: vec![("$".into(), dot.clone())],
            at_pos: 0,
            at_node: String::new(),
            depth: 0,
            dot_concrete: true,
        }
    }

    pub fn err_at<T>(&self, at: &(usize, String), msg: impl Into<String>) -> R<T> {
        Err(ExecError {
            pos: at.0,
            node: at.1.clone(),
            msg: msg.into(),
        })
    }

    pub fn err<T>(&self, msg: impl Into<String>) -> R<T> {
        Err(ExecError {
            pos: self.at_pos,
            node: self.at_node.clone(),
            msg: msg.into(),
        })
    }

    /// Where errors are reported (a function's errors name the function,
    /// not its last argument).
    pub(crate) fn at(&self) -> (usize, String) {
        (self.at_pos, self.at_node.clone())
    }

    pub(crate) fn set_at(&mut self, at: (usize, String)) {
        (self.at_pos, self.at_node) = at;
    }

    fn at_arg(&mut self, a: &Arg) {
        self.at_pos = a.pos();
        self.at_node = a.to_string();
    }

    pub fn walk_list(&mut self, dot: &Value, list: &[Node]) -> R<()> {
        match self.walk(dot, list)? {
            Flow::Normal => Ok(()),
            // The parser allows break/continue only inside range.
            Flow::Break | Flow::Continue => Ok(()),
        }
    }

    fn walk(&mut self, dot: &Value, list: &[Node]) -> R<Flow> {
        self.depth += 1;
        let r = if self.depth > MAX_DEPTH {
            self.err(format!("exceeded maximum template depth ({MAX_DEPTH})"))
        } else {
            self.walk_nodes(dot, list)
        };
        self.depth -= 1;
        r
    }

    fn walk_nodes(&mut self, dot: &Value, list: &[Node]) -> R<Flow> {
        for n in list {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.eval_pipeline(dot, p)?;
                    if p.decl.is_empty() {
                        self.print(&v)?;
                    }
                }
                Node::If(b) | Node::With(b) => {
                    let is_with = matches!(n, Node::With(_));
                    let mark = self.vars.len();
                    let v = self.eval_pipeline(dot, &b.pipe)?;
                    let flow = if v.truth() {
                        if is_with {
                            let saved = std::mem::replace(&mut self.dot_concrete, true);
                            let flow = self.walk(&v, &b.list);
                            self.dot_concrete = saved;
                            flow?
                        } else {
                            self.walk(dot, &b.list)?
                        }
                    } else if let Some(e) = &b.else_list {
                        self.walk(dot, e)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(b) => self.range(dot, b)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
                Node::Template { pos, name, pipe } => {
                    self.at_pos = *pos;
                    self.at_node = format!("{{{{template {name:?}}}}}");
                    let Some(tree) = self.defs.get(name) else {
                        return self.err(format!("template {name:?} not defined"));
                    };
                    let new_dot = match pipe {
                        Some(p) => self.eval_pipeline(dot, p)?,
                        None => Value::Missing,
                    };
                    let saved =
                        std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
                    let r = self.walk(&new_dot, tree);
                    self.vars = saved;
                    r?;
                }
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, dot: &Value, b: &Branch) -> R<()> {
        let mark = self.vars.len();
        let v = self.eval_pipeline(dot, &b.pipe)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l, _) => l
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i64::try_from(i).unwrap_or(i64::MAX)), x.clone()))
                .collect(),
            Value::Map(m) => m
                .entries
                .iter()
                .map(|(k, x)| (Value::from(k.as_str()), x.clone()))
                .collect(),
            Value::Missing | Value::Nil | Value::Null => Vec::new(),
            other => {
                self.at_pos = b.pipe.pos;
                self.at_node = b.pipe.to_string();
                return self.err(format!("range can't iterate over {}", other.to_go_string()));
            }
        };
        if items.is_empty() {
            if let Some(e) = &b.else_list {
                self.walk(dot, e)?;
            }
        }
        for (k, elem) in items {
            let inner = self.vars.len();
            let n = b.pipe.decl.len();
            if n > 0 {
                let (first, second) = if n == 1 {
                    (elem.clone(), None)
                } else {
                    (k, Some(elem.clone()))
                };
                self.set_range_vars(&b.pipe, first, second);
            }
            let saved = std::mem::replace(&mut self.dot_concrete, false);
            let flow = self.walk(&elem, &b.list);
            self.dot_concrete = saved;
            let flow = flow?;
            self.vars.truncate(inner);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn set_range_vars(&mut self, pipe: &Pipe, first: Value, second: Option<Value>) {
        let vals = [Some(first), second];
        for (name, v) in pipe.decl.iter().zip(vals) {
            if let Some(v) = v {
                self.set_var(name, v);
            }
        }
    }

    fn set_var(&mut self, name: &str, v: Value) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = v;
        }
    }

    fn var(&self, name: &str) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.err(format!("undefined variable: {name}")),
        }
    }

    fn print(&mut self, v: &Value) -> R<()> {
        if let Value::Func(_) = v {
            return self.err("can't print value of type func");
        }
        let s = v.to_go_string();
        self.out.push_str(&s);
        Ok(())
    }

    pub(crate) fn eval_pipeline(&mut self, dot: &Value, p: &Pipe) -> R<Value> {
        // Go reports at the pipeline until a command narrows it down.
        self.at_pos = p.pos;
        self.at_node = p.to_string();
        let mut value: Option<Value> = None;
        for c in &p.cmds {
            value = Some(self.eval_command(dot, c, value)?);
        }
        let value = value.unwrap_or_default();
        for name in &p.decl {
            if p.is_assign {
                if !self.vars.iter().any(|(n, _)| n == name) {
                    return self.err(format!("undefined variable: {name}"));
                }
                self.set_var(name, value.clone());
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn eval_command(&mut self, dot: &Value, c: &Command, fin: Option<Value>) -> R<Value> {
        let first = &c.args[0];
        match first {
            Arg::Field { idents, .. } => {
                self.at_arg(first);
                return self.eval_field_chain(
                    dot,
                    dot.clone(),
                    self.dot_concrete,
                    idents,
                    &c.args,
                    fin,
                );
            }
            Arg::Chain { node, fields, .. } => {
                if c.args.len() > 1 || fin.is_some() {
                    // A chain's head is evaluated as a lone argument.
                }
                let head = self.eval_arg(dot, node)?;
                self.at_arg(first);
                return self.eval_field_chain(dot, head, true, fields, &c.args, fin);
            }
            Arg::Identifier { name, .. } => {
                self.at_arg(first);
                return funcs::call(self, dot, name, &c.args[1..], fin, (c.pos, c.to_string()));
            }
            Arg::Pipe(_, p) => {
                if c.args.len() > 1 || fin.is_some() {
                    return self.err(format!("can't give argument to non-function {p}"));
                }
                return self.eval_pipeline_scoped(dot, p);
            }
            Arg::Variable { idents, .. } => {
                self.at_arg(first);
                let v = self.var(&idents[0])?;
                if idents.len() == 1 {
                    self.not_a_function(&c.args, fin.as_ref())?;
                    return Ok(v);
                }
                return self.eval_field_chain(dot, v, true, &idents[1..], &c.args, fin);
            }
            _ => {}
        }
        self.at_arg(first);
        self.not_a_function(&c.args, fin.as_ref())?;
        match first {
            Arg::Bool(_, b) => Ok(Value::Bool(*b)),
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => self.err("nil is not a command"),
            Arg::Number { num, .. } => Ok(number_value(num)),
            Arg::String { text, .. } => Ok(Value::from(text.as_str())),
            _ => self.err(format!("can't evaluate command {first}")),
        }
    }

    fn eval_pipeline_scoped(&mut self, dot: &Value, p: &Pipe) -> R<Value> {
        let mark = self.vars.len();
        let v = self.eval_pipeline(dot, p);
        self.vars.truncate(mark);
        v
    }

    fn not_a_function(&self, args: &[Arg], fin: Option<&Value>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return self.err(format!("can't give argument to non-function {}", args[0]));
        }
        Ok(())
    }

    /// Evaluates an argument as Go's evalArg does for an `interface{}`
    /// parameter.
    pub(crate) fn eval_arg(&mut self, dot: &Value, a: &Arg) -> R<Value> {
        self.at_arg(a);
        match a {
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Ok(Value::Missing),
            Arg::Field { idents, .. } => {
                self.eval_field_chain(dot, dot.clone(), self.dot_concrete, idents, &[], None)
            }
            Arg::Variable { idents, .. } => {
                let v = self.var(&idents[0])?;
                if idents.len() == 1 {
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, true, &idents[1..], &[], None)
            }
            Arg::Pipe(_, p) => self.eval_pipeline_scoped(dot, p),
            Arg::Identifier { name, pos } => {
                funcs::call(self, dot, name, &[], None, (*pos, name.clone()))
            }
            Arg::Chain { node, fields, .. } => {
                let head = self.eval_arg(dot, node)?;
                self.at_arg(a);
                self.eval_field_chain(dot, head, true, fields, &[], None)
            }
            Arg::Bool(_, b) => Ok(Value::Bool(*b)),
            Arg::Number { num, .. } => Ok(number_value(num)),
            Arg::String { text, .. } => Ok(Value::from(text.as_str())),
        }
    }

    /// `.A.B.C args...`: all but the last field take no arguments.
    /// `concrete`: whether Go would hold the receiver as its own type
    /// rather than as an `interface{}` (which is what errors name).
    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut receiver: Value,
        mut concrete: bool,
        idents: &[String],
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let n = idents.len();
        for name in &idents[..n - 1] {
            (receiver, concrete) = self.eval_field(dot, name, &[], None, receiver, concrete)?;
        }
        Ok(self
            .eval_field(dot, &idents[n - 1], args, fin, receiver, concrete)?
            .0)
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        args: &[Arg],
        fin: Option<Value>,
        receiver: Value,
        concrete: bool,
    ) -> R<(Value, bool)> {
        let has_args = args.len() > 1 || fin.is_some();
        let type_name = |r: &Value| match r {
            Value::Struct(s) if !s.type_name.is_empty() => s.type_name.clone(),
            r if concrete => r.type_name(),
            _ => "interface {}".to_string(),
        };
        match &receiver {
            Value::Missing => {
                if self.missing_key_error {
                    return self.err(format!("nil data; no entry for key {name:?}"));
                }
                Ok((Value::Missing, false))
            }
            Value::Struct(s) => match s.field(name) {
                Some(Value::Func(f)) => {
                    let f = f.clone();
                    let mut vals = Vec::new();
                    for a in args.iter().skip(1) {
                        vals.push(self.eval_arg(dot, a)?);
                    }
                    if let Some(v) = fin {
                        vals.push(v);
                    }
                    let v = f(&vals).or_else(|e| self.err(format!("error calling {name}: {e}")))?;
                    Ok((v, true))
                }
                Some(v) => {
                    if has_args {
                        return self.err(format!(
                            "{name} has arguments but cannot be invoked as function"
                        ));
                    }
                    Ok((v.clone(), false))
                }
                None => self.err(format!(
                    "can't evaluate field {name} in type {}",
                    type_name(&receiver)
                )),
            },
            Value::Map(m) => {
                if has_args {
                    return self.err(format!("{name} is not a method but has arguments"));
                }
                match m.entries.get(name) {
                    Some(v) => Ok((v.clone(), false)),
                    None if self.missing_key_error => {
                        self.err(format!("map has no entry for key {name:?}"))
                    }
                    None => Ok((Value::Missing, false)),
                }
            }
            Value::Nil => self.err(format!(
                "nil pointer evaluating {}.{name}",
                receiver.type_name()
            )),
            Value::Null => self.err(format!("nil pointer evaluating interface {{}}.{name}")),
            _ => self.err(format!(
                "can't evaluate field {name} in type {}",
                type_name(&receiver)
            )),
        }
    }
}

pub(crate) fn number_value(n: &crate::parse::Number) -> Value {
    if n.is_float_syntax {
        Value::Float(n.float.unwrap_or(0.0))
    } else if let Some(i) = n.int {
        Value::Int(i)
    } else {
        Value::Float(n.float.unwrap_or(0.0))
    }
}
