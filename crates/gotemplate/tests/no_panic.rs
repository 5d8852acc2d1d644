//! Any text, however broken, gives output or an error: never a panic.
//! Templates are stitched at random from the pieces templates are made of
//! (a fixed seed, so a failure is reproducible).

// An integration test crate is nothing but tests; the lint is for unit tests.
#![allow(clippy::tests_outside_test_module)]

use berth_template::Template;

const PIECES: &[&str] = &[
    "{{",
    "}}",
    "{{-",
    "-}}",
    " ",
    "\n",
    ".",
    ".A",
    ".L",
    ".M",
    ".M.k",
    "$",
    "$x",
    ":=",
    "=",
    "|",
    "(",
    ")",
    ",",
    "\"s\"",
    "`r`",
    "'c'",
    "1",
    "-2",
    "1.5",
    "0x1F",
    "1e3",
    "true",
    "nil",
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
    "\"T\"",
    "/*",
    "*/",
    "len",
    "index",
    "slice",
    "printf",
    "\"%d %s %v %q %x %5.2f %-3T %!\"",
    "print",
    "println",
    "eq",
    "ne",
    "lt",
    "and",
    "or",
    "not",
    "json",
    "split",
    "join",
    "title",
    "upper",
    "lower",
    "pad",
    "truncate",
    "html",
    "js",
    "urlquery",
    "call",
    "é",
    "\u{2028}",
    "\\",
    "%",
];

#[test]
fn random_templates_never_panic() {
    let data = berth_template::Value::from_json(&serde_json::json!({
        "A": "héllo", "L": [1, "two", null, [3], {"k": 4}], "M": {"k": "v", "n": 2.5}, "N": null
    }));
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut parsed = 0;
    for _ in 0..100_000 {
        let n = 1 + next() % 12;
        // Half of them inside one action, where most of the work is.
        let framed = next() % 2 == 0;
        let mut text = String::from(if framed { "{{" } else { "" });
        for _ in 0..n {
            text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            if framed {
                text.push(' ');
            }
        }
        if framed {
            text.push_str("}}");
        }
        if let Ok(t) = Template::parse(&text) {
            parsed += 1;
            let _ = t.execute(&data);
            let _ = t.missing_key_error(true).execute(&data);
        }
    }
    // The pieces must make enough valid templates to run.
    assert!(parsed > 10_000, "only {parsed} parsed");
}
