//! Go's fmt as `print`, `println` and `printf` use it on template values.

use crate::value::{go_float, Value};

fn is_string(v: &Value) -> bool {
    matches!(v, Value::String(_))
}

/// An argument as fmt's `%v` prints it (nil inside a call is `<nil>`).
fn plain(v: &Value) -> String {
    match v {
        Value::Missing | Value::Null => "<nil>".into(),
        v => v.to_go_string(),
    }
}

/// fmt.Sprint: a space between operands when neither is a string.
pub fn sprint(vals: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in vals.iter().enumerate() {
        if i > 0 && !is_string(v) && !is_string(&vals[i - 1]) {
            out.push(' ');
        }
        out.push_str(&plain(v));
    }
    out
}

/// fmt.Sprintln: spaces between all operands, a newline at the end.
pub fn sprintln(vals: &[Value]) -> String {
    let mut out = vals.iter().map(plain).collect::<Vec<_>>().join(" ");
    out.push('\n');
    out
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// fmt.Sprintf over template values.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let b = format.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let start = i;
            while i < b.len() && b[i] != b'%' {
                i += 1;
            }
            out.push_str(&format[start..i]);
            continue;
        }
        i += 1;
        let mut sp = Spec::default();
        while i < b.len() {
            match b[i] {
                b'-' => sp.minus = true,
                b'+' => sp.plus = true,
                b'#' => sp.sharp = true,
                b'0' => sp.zero = true,
                b' ' => sp.space = true,
                _ => break,
            }
            i += 1;
        }
        let num = |i: &mut usize, next: &mut usize| -> Option<usize> {
            if *i < b.len() && b[*i] == b'*' {
                *i += 1;
                let v = match args.get(*next) {
                    Some(Value::Int(n)) => usize::try_from(*n).ok(),
                    _ => None,
                };
                *next += 1;
                return v;
            }
            let s = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            format[s..*i].parse().ok()
        };
        sp.width = num(&mut i, &mut next);
        if i < b.len() && b[i] == b'.' {
            i += 1;
            sp.prec = Some(num(&mut i, &mut next).unwrap_or(0));
        }
        let Some(verb) = format[i..].chars().next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        out.push_str(&one(verb, &sp, arg));
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), plain(a)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn bad(verb: char, v: &Value) -> String {
    match v {
        Value::Missing | Value::Null => format!("%!{verb}(<nil>)"),
        v => format!("%!{verb}({}={})", v.type_name(), plain(v)),
    }
}

fn pad(s: String, sp: &Spec, numeric: bool) -> String {
    let Some(w) = sp.width else { return s };
    let n = s.chars().count();
    if n >= w {
        return s;
    }
    let fill = w - n;
    if sp.minus {
        format!("{s}{}", " ".repeat(fill))
    } else if sp.zero && numeric {
        let (sign, digits) = match s.strip_prefix(['-', '+', ' ']) {
            Some(d) => (&s[..1], d),
            None => ("", s.as_str()),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

fn signed(n: String, neg: bool, sp: &Spec) -> String {
    if neg {
        format!("-{n}")
    } else if sp.plus {
        format!("+{n}")
    } else if sp.space {
        format!(" {n}")
    } else {
        n
    }
}

fn one(verb: char, sp: &Spec, v: &Value) -> String {
    match (verb, v) {
        ('T', v) => pad(v.type_name(), sp, false),
        ('v', Value::Float(f)) => float(*f, 'g', sp),
        ('v', Value::Int(_)) => one('d', sp, v),
        ('v', v) => pad(plain(v), sp, false),
        ('s', Value::String(x)) => pad(truncate(x, sp.prec), sp, false),
        // A slice: the verb applied to each element.
        (v, Value::List(l, _)) if v != 'v' => {
            let items: Vec<String> = l.iter().map(|x| one(v, &Spec::default(), x)).collect();
            pad(format!("[{}]", items.join(" ")), sp, false)
        }
        ('q', Value::String(x)) => pad(quote(x), sp, false),
        ('x' | 'X', Value::String(x)) => {
            let h: String = x.bytes().map(|c| format!("{c:02x}")).collect();
            pad(if verb == 'X' { h.to_uppercase() } else { h }, sp, false)
        }
        ('d' | 'x' | 'X' | 'o' | 'b' | 'c' | 'q' | 'U', Value::Int(n)) => {
            let a = n.unsigned_abs();
            let s = match verb {
                'd' => a.to_string(),
                'x' => format!("{}{a:x}", if sp.sharp { "0x" } else { "" }),
                'X' => format!("{}{a:X}", if sp.sharp { "0X" } else { "" }),
                'o' => format!("{}{a:o}", if sp.sharp { "0" } else { "" }),
                'b' => format!("{a:b}"),
                'c' => {
                    return pad(
                        char::from_u32(*n as u32).unwrap_or('\u{FFFD}').to_string(),
                        sp,
                        false,
                    )
                }
                'q' => {
                    return pad(
                        format!("'{}'", char::from_u32(*n as u32).unwrap_or('\u{FFFD}')),
                        sp,
                        false,
                    )
                }
                _ => return pad(format!("U+{a:04X}"), sp, false),
            };
            let s = match sp.prec {
                Some(p) if s.len() < p => format!("{}{s}", "0".repeat(p - s.len())),
                _ => s,
            };
            pad(signed(s, *n < 0, sp), sp, sp.prec.is_none())
        }
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Float(f)) => float(*f, verb, sp),
        ('t', Value::Bool(b)) => pad(b.to_string(), sp, false),
        (_, v) => bad(verb, v),
    }
}

fn truncate(x: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => x.chars().take(p).collect(),
        None => x.to_string(),
    }
}

/// Go's strconv.Quote: printable characters as they are, the rest escaped.
pub fn quote(x: &str) -> String {
    let mut out = String::from("\"");
    for c in x.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn float(f: f64, verb: char, sp: &Spec) -> String {
    let neg = f.is_sign_negative() && !f.is_nan();
    let a = f.abs();
    let body = if !a.is_finite() {
        if a.is_nan() {
            "NaN".to_string()
        } else {
            "Inf".to_string()
        }
    } else {
        match verb {
            'f' | 'F' => format!("{a:.*}", sp.prec.unwrap_or(6)),
            'e' | 'E' => {
                let s = go_exp(&format!("{a:.*e}", sp.prec.unwrap_or(6)));
                if verb == 'E' {
                    s.to_uppercase()
                } else {
                    s
                }
            }
            _ => match sp.prec {
                None => {
                    let s = go_float(a);
                    if verb == 'G' {
                        s.to_uppercase()
                    } else {
                        s
                    }
                }
                Some(p) => {
                    let p = p.max(1);
                    // %.Ng: N significant digits, exponent form when the
                    // exponent is below -4 or at least N.
                    let e = format!("{a:.*e}", p - 1);
                    let exp: i32 = e
                        .split_once('e')
                        .and_then(|(_, x)| x.parse().ok())
                        .unwrap_or(0);
                    let s = if exp < -4 || exp >= i32::try_from(p).unwrap_or(i32::MAX) {
                        let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
                        let m = if m.contains('.') {
                            m.trim_end_matches('0').trim_end_matches('.')
                        } else {
                            m
                        };
                        go_exp(&format!("{m}e{x}"))
                    } else {
                        let decimals =
                            usize::try_from(i32::try_from(p).unwrap_or(i32::MAX) - 1 - exp)
                                .unwrap_or(0);
                        let s = format!("{a:.decimals$}");
                        if s.contains('.') {
                            s.trim_end_matches('0').trim_end_matches('.').to_string()
                        } else {
                            s
                        }
                    };
                    if verb == 'G' {
                        s.to_uppercase()
                    } else {
                        s
                    }
                }
            },
        }
    };
    let s = if neg {
        format!("-{body}")
    } else if sp.plus {
        format!("+{body}")
    } else if sp.space {
        format!(" {body}")
    } else {
        body
    };
    pad(s, sp, a.is_finite())
}

/// Rust's `1.5e3` as Go writes it: `1.5e+03`.
fn go_exp(s: &str) -> String {
    let Some((m, x)) = s.split_once('e') else {
        return s.to_string();
    };
    let n: i32 = x.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if n < 0 { '-' } else { '+' }, n.abs())
}
