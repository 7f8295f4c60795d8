//! Templates: every string a workflow renders is checked at load (compiled
//! and dropped, so errors come with the file's position) and kept as source
//! in one sandboxed minijinja environment, whose only loader serves those
//! sources from memory (templates cannot read files or reach the network).
//! A template is compiled for use on its first render: a compiled template
//! holds ~10 KiB, and with thousands of rules most never render. Our filters
//! are added, and a fuel limit stops a template that loops forever.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, ErrorKind, State, UndefinedBehavior};
use serde_json::Value;

/// Work one render may do before it is stopped.
const FUEL: u64 = 100_000;

/// Most tokens one `{{ … }}` or `{% … %}` tag may have. minijinja parses a
/// chain such as `-…-x`, `a.b.c…`, `f()()…`, `x|f|f…` or `1+1+…` into a tree
/// one level deeper per link and walks it recursively, so a long enough chain
/// overflows the stack and aborts the process (found with `fuzz/`: about
/// 1,000 links on a 2 MiB thread in a debug build). Real tags are far shorter.
const MAX_TAG_TOKENS: usize = 500;

/// A compiled piece of text.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    /// No template syntax: used as is.
    Literal(String),
    /// A template; renders to a string.
    Template(String),
    /// Exactly one `{{ expression }}`: renders to the expression's own value
    /// (a number stays a number, a list a list).
    Expr(String),
}

impl Text {
    /// The literal, when the text has no template syntax.
    pub fn literal(&self) -> Option<&str> {
        match self {
            Text::Literal(s) => Some(s),
            _ => None,
        }
    }
}

/// A problem in a template: what, where in its source (byte offset) when
/// known, and a suggestion.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    /// What is wrong.
    pub message: String,
    /// Byte offset in the template's source.
    pub offset: Option<usize>,
    /// E.g. "did you mean `upper`?".
    pub hint: Option<String>,
}

impl TemplateError {
    fn at(message: String, offset: Option<usize>) -> Self {
        TemplateError {
            message,
            offset,
            hint: None,
        }
    }
}

/// Our filters: registered by `add_own_filters` and named in
/// `OWN_FILTERS` (for suggestions), both from this one list.
macro_rules! own_filters {
    ($($f:ident),* $(,)?) => {
        const OWN_FILTERS: &[&str] = &[$(stringify!($f)),*];
        fn add_own_filters(env: &mut Environment<'static>) {
            $( env.add_filter(stringify!($f), $f); )*
        }
    };
}
own_filters!(mention, strip_mentions, truncate, slug, json);

/// minijinja's built-in filters, for "did you mean" only: whether a name
/// exists is asked of the environment (a test checks this list against it).
const BUILTIN_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
];

/// minijinja's built-in tests, for "did you mean" only (see [`BUILTIN_FILTERS`]).
const BUILTIN_TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "equalto",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "greaterthan",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lessthan",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "safe",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// All templates of a ruleset, in one environment.
pub struct Templates {
    env: Environment<'static>,
    /// Name → source, read by the environment's loader.
    sources: Arc<RwLock<HashMap<String, String>>>,
    /// Name → expression, for texts that are exactly one `{{ expr }}`.
    exprs: HashMap<String, String>,
    count: usize,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Templates({})", self.count)
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// An empty environment with switchboard's filters.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        add_own_filters(&mut env);
        let sources: Arc<RwLock<HashMap<String, String>>> = Arc::default();
        let served = sources.clone();
        env.set_loader(move |name| {
            let sources = served.read().unwrap_or_else(|p| p.into_inner());
            Ok(sources.get(name).cloned())
        });
        Templates {
            env,
            sources,
            exprs: HashMap::new(),
            count: 0,
        }
    }

    /// Compiles `source`; the error is minijinja's description of the syntax problem.
    pub fn compile(&mut self, source: &str) -> Result<Text, String> {
        self.compile_located(source).map_err(|errors| {
            let all: Vec<String> = errors.into_iter().map(|e| e.message).collect();
            all.join("; ")
        })
    }

    /// Compiles `source`, checking that every filter, test and function it
    /// names exists in this environment (otherwise it would fail only when
    /// rendered); each error says where in `source` it is.
    pub fn compile_located(&mut self, source: &str) -> Result<Text, Vec<TemplateError>> {
        if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
            return Ok(Text::Literal(source.to_owned()));
        }
        check_tag_size(source).map_err(|message| vec![TemplateError::at(message, None)])?;
        let name = format!("t{}", self.count + 1);
        let text = match single_expression(source) {
            Some(expr) => {
                // The expression's error offsets count from the expression, not the source.
                let shift = expr.as_ptr() as usize - source.as_ptr() as usize;
                self.env.compile_expression(expr).map_err(|e| {
                    let offset = error_offset(&e, expr).map(|o| o + shift);
                    vec![TemplateError::at(describe(&e), offset)]
                })?;
                Text::Expr(name.clone())
            }
            None => {
                self.env
                    .template_from_str(source)
                    .map_err(|e| vec![TemplateError::at(describe(&e), error_offset(&e, source))])?;
                Text::Template(name.clone())
            }
        };
        let unknown = self.unknown_names(source);
        if !unknown.is_empty() {
            return Err(unknown);
        }
        self.count += 1;
        match &text {
            Text::Expr(_) => {
                let expr = single_expression(source).unwrap_or_default();
                self.exprs.insert(name, expr.to_owned());
            }
            _ => {
                self.sources
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name, source.to_owned());
            }
        }
        Ok(text)
    }

    /// Filters, tests and functions `source` uses that this environment
    /// does not have. Read from minijinja's own tokens: a name after `|` (or
    /// `{% filter`) is a filter, after `is` / `is not` a test, and before `(`
    /// (not after `.`) a function, unless the template defines it itself
    /// (`macro`, `set`, `for`, `import`).
    fn unknown_names(&self, source: &str) -> Vec<TemplateError> {
        use minijinja::machinery::{tokenize, Token};
        let mut tokens = Vec::new();
        for token in tokenize(source, false, Default::default()) {
            match token {
                Ok((Token::TemplateData(_), _)) => {}
                Ok((token, span)) => tokens.push((token, span.start_offset as usize)),
                Err(_) => break,
            }
        }
        let ident = |i: usize| match tokens.get(i) {
            Some((Token::Ident(name), _)) => Some(*name),
            _ => None,
        };
        let mut defined: Vec<&str> = vec!["loop", "caller", "super", "self", "varargs", "kwargs"];
        for i in 0..tokens.len() {
            if matches!(
                ident(i),
                Some("macro" | "set" | "for" | "as" | "import" | "with")
            ) {
                let mut j = i + 1;
                while let Some(name) = ident(j) {
                    if name == "in" {
                        break;
                    }
                    defined.push(name);
                    j += 1;
                    if matches!(tokens.get(j), Some((Token::Comma, _))) {
                        j += 1;
                    }
                }
            }
        }
        let mut state = self.env.empty_state();
        let globals: Vec<String> = self.env.globals().map(|(n, _)| n.to_owned()).collect();
        let mut errors = Vec::new();
        for i in 0..tokens.len() {
            let Some(name) = ident(i) else { continue };
            let prev = i.checked_sub(1).map(|p| &tokens[p].0);
            let prev_ident = i.checked_sub(1).and_then(ident);
            let block_start = |k: Option<usize>| {
                k.is_some_and(|k| matches!(tokens.get(k), Some((Token::BlockStart, _))))
            };
            let is_filter = matches!(prev, Some(Token::Pipe))
                || (prev_ident == Some("filter") && block_start(i.checked_sub(2)));
            let is_test = (prev_ident == Some("is") && name != "not")
                || (prev_ident == Some("not") && i.checked_sub(2).and_then(ident) == Some("is"));
            // Operators and statement words before a parenthesis are not calls.
            const KEYWORDS: &[&str] = &[
                "in",
                "and",
                "or",
                "not",
                "if",
                "elif",
                "else",
                "is",
                "for",
                "recursive",
                "with",
                "without",
                "context",
                "ignore",
                "missing",
                "set",
                "block",
                "import",
                "include",
                "from",
                "as",
            ];
            let called = matches!(tokens.get(i + 1), Some((Token::ParenOpen, _)))
                && !KEYWORDS.contains(&name)
                && !matches!(prev, Some(Token::Dot))
                && !matches!(prev_ident, Some("macro" | "call"));
            let offset = tokens[i].1;
            let (what, known, candidates): (&str, bool, Vec<&str>) = if is_filter {
                let known = !matches!(
                    state.apply_filter(name, &[]),
                    Err(e) if e.kind() == ErrorKind::UnknownFilter
                );
                (
                    "filter",
                    known,
                    BUILTIN_FILTERS.iter().chain(OWN_FILTERS).copied().collect(),
                )
            } else if is_test {
                let known = !matches!(
                    state.perform_test(name, &[]),
                    Err(e) if e.kind() == ErrorKind::UnknownTest
                );
                ("test", known, BUILTIN_TESTS.to_vec())
            } else if called {
                let known = defined.contains(&name) || globals.iter().any(|g| g == name);
                (
                    "function",
                    known,
                    globals.iter().map(String::as_str).collect(),
                )
            } else {
                continue;
            };
            if !known {
                let hint = crate::error::did_you_mean(name, candidates);
                errors.push(TemplateError {
                    message: format!("unknown {what} `{name}`"),
                    offset: Some(offset),
                    hint,
                });
            }
        }
        errors
    }

    /// Renders a compiled text against a context.
    pub fn render(&self, text: &Text, ctx: &JValue) -> Result<Value, String> {
        match text {
            Text::Literal(s) => Ok(Value::String(s.clone())),
            Text::Template(name) => self.render_str(name, ctx).map(Value::String),
            // Evaluated to its value, not printed as JSON and read back: the
            // fuel then counts the expression's work, not the bytes of a
            // large value it passes through (a 500 KB message, JSON-escaped).
            Text::Expr(name) => {
                let expr = self
                    .exprs
                    .get(name)
                    .ok_or_else(|| format!("template `{name}` not found (engine bug)"))?;
                let value = self
                    .env
                    .compile_expression(expr)
                    .and_then(|e| e.eval(ctx))
                    .map_err(|e| describe(&e))?;
                if value.is_undefined() || value.is_none() {
                    return Ok(Value::Null);
                }
                serde_json::to_value(&value).map_err(|e| format!("expression result: {e}"))
            }
        }
    }

    /// Renders to text: strings as they are, other values as JSON.
    pub fn render_text(&self, text: &Text, ctx: &JValue) -> Result<String, String> {
        Ok(match self.render(text, ctx)? {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        })
    }

    fn render_str(&self, name: &str, ctx: &JValue) -> Result<String, String> {
        let tmpl = self.env.get_template(name).map_err(|e| describe(&e))?;
        tmpl.render(ctx).map_err(|e| describe(&e))
    }
}

/// True for values a condition counts as "yes": not null, false, 0, "" or empty.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => {
            let s = s.trim();
            !(s.is_empty() || s.eq_ignore_ascii_case("false") || s == "0" || s == "none")
        }
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `"{{ expr }}"` → `expr`, when the source is exactly one expression.
fn single_expression(source: &str) -> Option<&str> {
    let s = source.trim();
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")
    {
        return None;
    }
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    Some(inner.trim()).filter(|e| !e.is_empty())
}

/// Rejects a template with a tag of more than [`MAX_TAG_TOKENS`] tokens,
/// counted by minijinja's own lexer (which does not recurse), before the
/// parser sees it. A lexing error is left for the compile to report.
fn check_tag_size(source: &str) -> Result<(), String> {
    use minijinja::machinery::{tokenize, Token};
    let mut in_tag = 0usize;
    for token in tokenize(source, false, Default::default()) {
        let Ok((token, _)) = token else {
            break;
        };
        match token {
            Token::VariableStart | Token::BlockStart => in_tag = 0,
            Token::TemplateData(_) | Token::VariableEnd | Token::BlockEnd => {}
            _ => in_tag += 1,
        }
        if in_tag > MAX_TAG_TOKENS {
            return Err(format!(
                "template too complex: a `{{{{ }}}}` or `{{% %}}` tag has more than {MAX_TAG_TOKENS} tokens; split it (e.g. with `{{% set %}}`)"
            ));
        }
    }
    Ok(())
}

/// Where in `source` a compile error is: the end for "unexpected end of
/// input" (minijinja points at the last token), else where minijinja says.
fn error_offset(e: &minijinja::Error, source: &str) -> Option<usize> {
    if e.detail().is_some_and(|d| d.contains("end of input")) {
        return Some(source.len());
    }
    e.range().map(|r| r.start)
}

/// minijinja's error in one readable line.
fn describe(e: &minijinja::Error) -> String {
    let what = match e.kind() {
        ErrorKind::OutOfFuel => "the template did too much work (a loop that never ends?)".into(),
        _ => e
            .detail()
            .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind())),
    };
    match e.line() {
        Some(line) if line > 1 => format!("{what} (template line {line})"),
        _ => what,
    }
}

/// `@[[id]]` for a participant of the room (by id or handle), else `@handle`.
fn mention(state: &State, who: String) -> String {
    let wanted = who.trim().trim_start_matches('@');
    if uuid::Uuid::parse_str(wanted).is_ok() {
        return format!("@[[{wanted}]]");
    }
    let participants = state
        .lookup("chat")
        .and_then(|chat| chat.get_attr("participants").ok());
    if let Some(list) = participants {
        if let Ok(iter) = list.try_iter() {
            for p in iter {
                let handle = p.get_attr("handle").ok().map(|h| h.to_string());
                let matches =
                    handle.is_some_and(|h| h.trim_start_matches('@').eq_ignore_ascii_case(wanted));
                if matches {
                    if let Ok(id) = p.get_attr("id") {
                        if !id.is_undefined() && !id.is_none() {
                            return format!("@[[{id}]]");
                        }
                    }
                }
            }
        }
    }
    format!("@{wanted}")
}

/// Removes the platform's `@[[id]]` mention markers.
fn strip_mentions(text: String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("@[[") {
        out.push_str(&rest[..start]);
        match rest[start..].find("]]") {
            Some(end) => {
                rest = &rest[start + end + 2..];
                rest = rest.strip_prefix(' ').unwrap_or(rest);
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// Shortens to `length` characters (default 80), ending with `end` (default `…`).
fn truncate(
    text: String,
    length: Option<usize>,
    kwargs: Kwargs,
) -> Result<String, minijinja::Error> {
    let length = length.unwrap_or(80);
    let end: Option<String> = kwargs.get("end")?;
    kwargs.assert_all_used()?;
    let end = end.unwrap_or_else(|| "…".into());
    if text.chars().count() <= length {
        return Ok(text);
    }
    let keep = length.saturating_sub(end.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(&end);
    Ok(out)
}

/// `"Refund for Order #12"` → `"refund-for-order-12"`.
fn slug(text: String) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// The value as compact JSON.
fn json(value: JValue) -> Result<String, minijinja::Error> {
    serde_json::to_string(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, ctx: Value) -> Result<Value, String> {
        let mut t = Templates::new();
        let text = t.compile(src)?;
        t.render(&text, &JValue::from(minijinja::value::Serde(&ctx)))
    }

    #[test]
    fn literals_templates_and_typed_expressions() {
        assert_eq!(render("plain", json!({})).unwrap(), json!("plain"));
        assert_eq!(
            render("Hi {{ name }}!", json!({"name": "Ann"})).unwrap(),
            json!("Hi Ann!")
        );
        assert_eq!(render("{{ n + 1 }}", json!({"n": 2})).unwrap(), json!(3));
        assert_eq!(
            render("{{ xs }}", json!({"xs": [1, 2]})).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            render("{{ missing.deeper }}", json!({})).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn the_suggestion_lists_name_only_what_the_environment_has() {
        let t = Templates::new();
        let mut state = t.env.empty_state();
        for f in BUILTIN_FILTERS.iter().chain(OWN_FILTERS) {
            let known = state.apply_filter(f, &[]);
            assert!(
                !matches!(&known, Err(e) if e.kind() == ErrorKind::UnknownFilter),
                "{f}"
            );
        }
        for test in BUILTIN_TESTS {
            let known = state.perform_test(test, &[]);
            assert!(
                !matches!(&known, Err(e) if e.kind() == ErrorKind::UnknownTest),
                "{test}"
            );
        }
    }

    #[test]
    fn syntax_errors_are_compile_errors() {
        let mut t = Templates::new();
        let e = t.compile("Hi {{ name ").unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        assert!(t.compile("{% for x in y %}").is_err());
    }

    #[test]
    fn long_chains_are_rejected_not_a_stack_overflow() {
        // Each of these used to abort the process (found with fuzz/): one
        // parser/codegen frame per link, on the test's 2 MiB thread.
        let n = 20_000;
        for src in [
            format!("{{{{ {}1 }}}}", "-".repeat(n)),
            format!("{{{{ a{} }}}}", "()".repeat(n)),
            format!("{{{{ a{} }}}}", ".b".repeat(n)),
            format!("{{{{ 1{} }}}}", "|abs".repeat(n)),
            format!("{{{{ 1{} }}}}", "+1".repeat(n)),
            format!("{{{{ 1{} }}}}", " if 1 else 1".repeat(n)),
            format!("{{{{ {}1 }}}}", "not ".repeat(n)),
            format!("x {{% if {}1 %}}y{{% endif %}}", "-".repeat(n)),
            format!("{{{{ 'a' ~ {}1", "-".repeat(n)),
        ] {
            let e = Templates::new().compile(&src).unwrap_err();
            assert!(e.contains("too complex"), "{e}");
        }
        // Long text around short tags, and long strings, are fine.
        let text = format!(
            "{} {{{{ name }}}} {}",
            "word ".repeat(5_000),
            "x".repeat(5_000)
        );
        assert!(Templates::new().compile(&text).is_ok());
        let string = format!("{{{{ '{}' ~ name }}}}", "y".repeat(20_000));
        assert!(Templates::new().compile(&string).is_ok());
        let fine = format!("{{{{ 1{} }}}}", "+1".repeat(200));
        assert_eq!(render(&fine, json!({})).unwrap(), json!(201));
        // Just under the limit, the deepest shapes still compile on this thread.
        for src in [
            // A function the environment has: an unknown one is refused by name.
            format!("{{{{ dict{} }}}}", "()".repeat(249)),
            format!("{{{{ {}1 }}}}", "-".repeat(499)),
        ] {
            assert!(Templates::new().compile(&src).is_ok());
        }
    }

    #[test]
    fn endless_loops_run_out_of_fuel() {
        let e = render(
            "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}",
            json!({}),
        )
        .unwrap_err();
        assert!(e.contains("too much work"), "{e}");
    }

    #[test]
    fn templates_cannot_include_files() {
        let e = render("{% include '/etc/passwd' %}", json!({})).unwrap_err();
        assert!(e.contains("not found") || e.contains("template"), "{e}");
    }

    #[test]
    fn filters() {
        let chat = json!({"chat": {"participants": [{"id": "3b4f0c8e-2c1a-4a57-9a55-0d6f4a1f2b3c", "handle": "alice/billing-agent"}]}});
        assert_eq!(
            render("{{ 'alice/billing-agent' | mention }}", chat.clone()).unwrap(),
            json!("@[[3b4f0c8e-2c1a-4a57-9a55-0d6f4a1f2b3c]]")
        );
        assert_eq!(
            render("{{ '@carol' | mention }}", chat).unwrap(),
            json!("@carol")
        );
        assert_eq!(
            render(
                "{{ t | strip_mentions }}",
                json!({"t": "@[[abc]] hello @[[def]] there"})
            )
            .unwrap(),
            json!("hello there")
        );
        assert_eq!(
            render("{{ 'abcdefghij' | truncate(5) }}", json!({})).unwrap(),
            json!("abcd…")
        );
        assert_eq!(
            render("{{ 'Refund for Order #12' | slug }}", json!({})).unwrap(),
            json!("refund-for-order-12")
        );
        assert_eq!(
            render("x={{ v | json }}", json!({"v": {"a": 1}})).unwrap(),
            json!("x={\"a\":1}")
        );
    }

    #[test]
    fn truthiness() {
        assert!(truthy(&json!("yes")));
        assert!(!truthy(&json!("false")));
        assert!(!truthy(&json!("")));
        assert!(!truthy(&json!(0)));
        assert!(truthy(&json!([1])));
        assert!(!truthy(&Value::Null));
    }
}
