//! Every action of the language, one module each. A module holds the whole
//! definition of its action: the argument type (from which the JSON Schema
//! and the loader's key checks come), its [`ActionDef`] (shorthand, journal
//! behaviour, value checks, an example) and its rendered type with the
//! rendering. Its line in [`registry!`] gives its [`Kind`] and builds from it
//! [`ALL`], [`RenderedAction`] and [`RenderedAction::split`] into
//! [`LocalAction`] / [`PlatformAction`].
//!
//! # Adding an action
//!
//! You write two things: a module here (`Args` deriving `JsonSchema`, `DEF`,
//! the rendered type with `render`), and its line in [`registry!`]
//! (`name::Type: Local` or `name::Type: Platform`; the kind is written only
//! there). `Pause` is the kind of `wait_for`, `ask` and `wait`: control flow
//! the engine handles itself (it pauses the list); their arguments that are
//! conditions or action lists are named in [`ActionDef::nested`] and compiled
//! into [`crate::rule::Pause`] by the loader instead of being rendered.
//! The schema, the loader, `find`/`names`, rendering, serialisation and the
//! test-file checks follow from [`ALL`]. The compiler then asks for
//! the rest: a `Local` action does not compile until `Engine::run_local`
//! (switchboard-engine `run.rs`, an exhaustive match on [`LocalAction`])
//! performs it; a `Platform` one until the `Effects` dispatch
//! (switchboard-engine `action.rs`) calls a new `Effects` method for it, which
//! `RestExecutor` (`src/effects/rest.rs`) must then implement, and until
//! `RestExecutor::landed` (can a copy sent before a crash be found?) and the
//! dry run's `synthetic_result` (switchboard-engine `recording.rs`) place it.
//! None of these has a fallback arm. `actions_agree` (switchboard-engine
//! tests) then checks, for every registered action, that the schema and the
//! loader know the same arguments, that `DEF.example` loads, gives every
//! argument, renders and runs, that an unknown key is refused with a
//! suggestion, that what it serialises to uses only known arguments, and that
//! platform actions, and only they, reach the executor. Left to you, and
//! caught by the e2e tests: regenerate `schemas/` (`UPDATE_SCHEMA=1 cargo
//! test --test e2e schemas`) and add the action's row to the table of
//! `docs/workflow-reference.md` (checked in the same test file).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::duration::{parse_duration, seconds};

/// Where an action is performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// By the engine itself (state, log, fail).
    Local,
    /// By the executor, outside the process (REST calls, outbound HTTP).
    Platform,
    /// Control flow: the engine pauses the list there (`wait_for`, `ask`,
    /// `wait`) and hands back a pending conversation; the runtime resumes it.
    Pause,
}

/// How the journal treats an action of a message interrupted by a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journal {
    /// Running it again is harmless (or has the same effect).
    Repeatable,
    /// Must not run twice: a second one shows (a message) or costs (an
    /// outside call), so a "sent" record guards it before it goes out.
    Once,
}

/// What an action's module declares: everything the schema, the loader and
/// the engine know of it except its [`Kind`], which its line in [`registry!`]
/// gives (the macro sorts the actions into [`LocalAction`] and
/// [`PlatformAction`] by it, so it is written once, there).
#[derive(Debug, Clone, Copy)]
pub struct ActionDef {
    /// Name as written in workflows (`reply`, `add_participant`, ...).
    pub name: &'static str,
    /// The argument a plain string stands for (`reply: hi` is `text: hi`).
    pub shorthand: Option<&'static str>,
    /// Its journal behaviour.
    pub journal: Journal,
    /// Arguments whose literal value must be one of a list.
    pub choices: &'static [(&'static str, &'static [&'static str])],
    /// Arguments that are durations (`30s`, `1h`), checked when literal.
    pub durations: &'static [&'static str],
    /// At least one of these arguments must be given (e.g. `handle` or `id`).
    pub one_of: &'static [&'static str],
    /// Checks of arguments whose whole value is literal (no template in it),
    /// run at load (e.g. `llm`'s `schema` must be a JSON Schema).
    pub literal_checks: &'static [(&'static str, LiteralCheck)],
    /// Arguments the loader compiles into the rule itself (conditions, action
    /// lists such as `on_timeout`) instead of rendering them.
    pub nested: &'static [&'static str],
    /// A valid use giving every argument (YAML flow mapping), for tests and docs.
    pub example: &'static str,
    subschema: fn(&mut SchemaGenerator) -> Schema,
    root_schema: fn() -> Schema,
}

/// A check of a literal argument value (see [`ActionDef::literal_checks`]).
pub type LiteralCheck = fn(&Value) -> Result<(), LiteralError>;

/// Why a literal argument value is refused, and where inside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LiteralError {
    /// The path inside the value (keys and list indexes) of what is wrong;
    /// empty for the value as a whole. The loader points at it.
    pub at: Vec<String>,
    /// What is wrong, readable.
    pub message: String,
}

/// A registered action: its module's [`ActionDef`] (reached through `Deref`:
/// `spec.name`, `spec.journal`, ...) and its [`Kind`].
#[derive(Debug, Clone, Copy)]
pub struct ActionSpec {
    /// Who performs it (from its line in [`registry!`]).
    pub kind: Kind,
    def: ActionDef,
}

impl std::ops::Deref for ActionSpec {
    type Target = ActionDef;

    fn deref(&self) -> &ActionDef {
        &self.def
    }
}

impl ActionDef {
    /// A definition whose arguments are described by `A`.
    pub const fn new<A: JsonSchema>(name: &'static str, journal: Journal) -> Self {
        ActionDef {
            name,
            shorthand: None,
            journal,
            choices: &[],
            durations: &[],
            one_of: &[],
            literal_checks: &[],
            nested: &[],
            example: "{}",
            subschema: subschema_of::<A>,
            root_schema: root_schema_of::<A>,
        }
    }

    /// With a shorthand argument.
    pub const fn shorthand(self, arg: &'static str) -> Self {
        ActionDef {
            shorthand: Some(arg),
            ..self
        }
    }

    /// With arguments limited to a list of values.
    pub const fn choices(
        self,
        choices: &'static [(&'static str, &'static [&'static str])],
    ) -> Self {
        ActionDef { choices, ..self }
    }

    /// With duration arguments.
    pub const fn durations(self, durations: &'static [&'static str]) -> Self {
        ActionDef { durations, ..self }
    }

    /// Needing at least one of these arguments.
    pub const fn one_of(self, one_of: &'static [&'static str]) -> Self {
        ActionDef { one_of, ..self }
    }

    /// With checks of literal argument values, run at load.
    pub const fn literal_checks(
        self,
        literal_checks: &'static [(&'static str, LiteralCheck)],
    ) -> Self {
        ActionDef {
            literal_checks,
            ..self
        }
    }

    /// With arguments compiled into the rule (conditions, action lists), not rendered.
    pub const fn nested(self, nested: &'static [&'static str]) -> Self {
        ActionDef { nested, ..self }
    }

    /// With an example giving every argument.
    pub const fn example(self, example: &'static str) -> Self {
        ActionDef { example, ..self }
    }

    /// The argument type's schema, registered in `generator` (a `$ref`).
    pub fn args_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.subschema)(generator)
    }

    /// Argument names, in the argument type's order.
    pub fn arg_keys(&self) -> &'static [String] {
        &self.keys().names
    }

    /// Arguments that must be given (the non-optional fields).
    pub fn required(&self) -> &'static [String] {
        &self.keys().required
    }

    fn keys(&self) -> &'static ArgKeys {
        // Read from the generated schema, so the loader checks what editors see.
        static KEYS: OnceLock<HashMap<&'static str, ArgKeys>> = OnceLock::new();
        static NONE: OnceLock<ArgKeys> = OnceLock::new();
        let all = KEYS.get_or_init(|| {
            ALL.iter()
                .map(|spec| {
                    let schema = (spec.root_schema)();
                    let strings = |v: Option<&Value>| -> Vec<String> {
                        match v {
                            Some(Value::Object(m)) => m.keys().cloned().collect(),
                            Some(Value::Array(a)) => a
                                .iter()
                                .filter_map(|s| s.as_str().map(str::to_owned))
                                .collect(),
                            _ => Vec::new(),
                        }
                    };
                    let names = strings(schema.get("properties"));
                    let required = strings(schema.get("required"));
                    let schemas = match schema.get("properties") {
                        Some(Value::Object(m)) => {
                            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                        }
                        _ => HashMap::new(),
                    };
                    (
                        spec.name,
                        ArgKeys {
                            names,
                            required,
                            schemas,
                        },
                    )
                })
                .collect()
        });
        all.get(self.name).unwrap_or_else(|| {
            NONE.get_or_init(|| ArgKeys {
                names: Vec::new(),
                required: Vec::new(),
                schemas: HashMap::new(),
            })
        })
    }

    /// The JSON Schema of the argument `key` (from the argument type).
    pub fn arg_schema(&self, key: &str) -> Option<&'static Value> {
        self.keys().schemas.get(key)
    }
}

/// An action's argument names, all and required, and each one's schema.
struct ArgKeys {
    names: Vec<String>,
    required: Vec<String>,
    schemas: HashMap<String, Value>,
}

/// The schema of an argument that is a whole number, or text holding one,
/// or a template (which renders to text): what `ArgValues` readers accept.
pub(crate) fn whole_number_or_template(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({
        "anyOf": [
            { "type": "integer" },
            { "type": "string", "pattern": "\\{\\{|\\{%|^\\s*-?[0-9]+\\s*$" },
            { "type": "null" }
        ]
    })
}

/// The schema of an argument that is true or false (also as text), or a template.
pub(crate) fn boolean_or_template(_: &mut SchemaGenerator) -> Schema {
    schemars::json_schema!({
        "anyOf": [
            { "type": "boolean" },
            { "type": "string", "pattern": "\\{\\{|\\{%|^(true|false)$" },
            { "type": "null" }
        ]
    })
}

fn subschema_of<A: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<A>()
}

fn root_schema_of<A: JsonSchema>() -> Schema {
    schemars::schema_for!(A)
}

/// The action named `name`.
pub fn find(name: &str) -> Option<&'static ActionSpec> {
    ALL.iter().copied().find(|s| s.name == name)
}

/// Every action name, in registry order.
pub fn names() -> impl Iterator<Item = &'static str> + Clone {
    ALL.iter().map(|s| s.name)
}

/// Declares the action modules and builds from them the registry, the
/// [`RenderedAction`] enum, its [`LocalAction`] / [`PlatformAction`] split
/// and their dispatch: one line per action, `module::Type: Kind`.
macro_rules! registry {
    ($( $module:ident :: $ty:ident : $kind:ident ),* $(,)?) => {
        $( pub mod $module; )*
        $( pub use $module::$ty; )*

        /// Every action, in the order the schema lists them.
        pub const ALL: &[&ActionSpec] = &[
            $( &ActionSpec { kind: Kind::$kind, def: $module::DEF } ),*
        ];

        /// One action with every template rendered, arguments as the user
        /// wrote them (defaults such as "the event's room" are resolved by
        /// the executor, so a dry run shows exactly what the workflow said).
        ///
        /// Serialises as a one-key map, `{reply: {text: ...}}`, the shape
        /// workflow tests compare against.
        #[derive(Debug, Clone, PartialEq)]
        pub enum RenderedAction {
            $(
                #[doc = concat!("`", stringify!($module), "`")]
                $ty($module::$ty),
            )*
        }

        impl RenderedAction {
            /// The action's definition.
            pub fn spec(&self) -> &'static ActionSpec {
                match self {
                    $( RenderedAction::$ty(_) => &ActionSpec { kind: Kind::$kind, def: $module::DEF }, )*
                }
            }

            /// Types the rendered arguments of the action named `name`.
            pub fn render(name: &str, args: &Map<String, Value>) -> Result<Self, String> {
                let args = ArgValues(args);
                $(
                    if name == $module::DEF.name {
                        return $module::$ty::render(&args).map(RenderedAction::$ty);
                    }
                )*
                Err(format!("unknown action `{name}`"))
            }
        }

        impl Serialize for RenderedAction {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(1))?;
                match self {
                    $( RenderedAction::$ty(a) => map.serialize_entry(self.name(), a)?, )*
                }
                map.end()
            }
        }

        registry!(@split [] [] [] $( $module::$ty: $kind, )*);
    };

    // Sorts the actions by kind, keeping their order.
    (@split [$($l:tt)*] [$($p:tt)*] [$($w:tt)*] $module:ident :: $ty:ident : Local, $($rest:tt)*) => {
        registry!(@split [$($l)* $module::$ty,] [$($p)*] [$($w)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($p:tt)*] [$($w:tt)*] $module:ident :: $ty:ident : Platform, $($rest:tt)*) => {
        registry!(@split [$($l)*] [$($p)* $module::$ty,] [$($w)*] $($rest)*);
    };
    (@split [$($l:tt)*] [$($p:tt)*] [$($w:tt)*] $module:ident :: $ty:ident : Pause, $($rest:tt)*) => {
        registry!(@split [$($l)*] [$($p)*] [$($w)* $module::$ty,] $($rest)*);
    };
    (@split [$($lm:ident :: $lt:ident,)*] [$($pm:ident :: $pt:ident,)*] [$($wm:ident :: $wt:ident,)*]) => {
        /// A [`Kind::Local`] action: performed by the engine itself.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum LocalAction<'a> {
            $(
                #[doc = concat!("`", stringify!($lm), "`")]
                $lt(&'a $lm::$lt),
            )*
        }

        /// A [`Kind::Platform`] action: performed by the executor.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum PlatformAction<'a> {
            $(
                #[doc = concat!("`", stringify!($pm), "`")]
                $pt(&'a $pm::$pt),
            )*
        }

        /// A [`Kind::Pause`] action: where the engine pauses the list.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum PauseAction<'a> {
            $(
                #[doc = concat!("`", stringify!($wm), "`")]
                $wt(&'a $wm::$wt),
            )*
        }

        impl RenderedAction {
            /// The action as the one who performs it sees it: match the
            /// result, not [`RenderedAction`], where only one kind is handled,
            /// so a new action of that kind does not compile until handled.
            pub fn split(&self) -> Split<'_> {
                match self {
                    $( RenderedAction::$lt(a) => Split::Local(LocalAction::$lt(a)), )*
                    $( RenderedAction::$pt(a) => Split::Platform(PlatformAction::$pt(a)), )*
                    $( RenderedAction::$wt(a) => Split::Pause(PauseAction::$wt(a)), )*
                }
            }
        }
    };
}

/// A [`RenderedAction`] by who performs it (see [`RenderedAction::split`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split<'a> {
    /// Performed by the engine (state, log, fail).
    Local(LocalAction<'a>),
    /// Performed by the executor (REST calls, outbound HTTP).
    Platform(PlatformAction<'a>),
    /// Pauses the list (the engine hands back a pending conversation).
    Pause(PauseAction<'a>),
}

registry! {
    reply::Reply: Platform,
    send_message::SendMessage: Platform,
    post_event::PostEvent: Platform,
    create_chat::CreateChat: Platform,
    add_participant::AddParticipant: Platform,
    remove_participant::RemoveParticipant: Platform,
    approve_contact::ApproveContact: Platform,
    reject_contact::RejectContact: Platform,
    add_contact::AddContact: Platform,
    remove_contact::RemoveContact: Platform,
    set::Set: Local,
    unset::Unset: Local,
    incr::Incr: Local,
    http::Http: Platform,
    llm::Llm: Platform,
    log::Log: Local,
    fail::Fail: Local,
    wait_for::WaitFor: Pause,
    ask::Ask: Pause,
    wait::Wait: Pause,
}

impl RenderedAction {
    /// The action's name as written in workflows (`reply`, `add_participant`, ...).
    pub fn name(&self) -> &'static str {
        self.spec().name
    }

    /// True for actions that must not run twice (see [`Journal::Once`]).
    pub fn must_not_repeat(&self) -> bool {
        self.spec().journal == Journal::Once
    }

    /// Who performs it.
    pub fn kind(&self) -> Kind {
        match self.split() {
            Split::Local(_) => Kind::Local,
            Split::Platform(_) => Kind::Platform,
            Split::Pause(_) => Kind::Pause,
        }
    }

    /// True for actions the engine performs itself (state, log, fail).
    pub fn is_local(&self) -> bool {
        self.kind() == Kind::Local
    }

    /// What the journal keeps of this action's `result` when `bound` says
    /// whether a later step reads it (`as:`): `None` keeps it whole. Only
    /// `http` results (outside bodies of any size) are cut down.
    pub fn journaled_result(&self, result: &Value, bound: bool) -> Option<Value> {
        match self {
            RenderedAction::Http(_) => Some(http::journaled(result, bound)),
            _ => None,
        }
    }

    /// True when a `result` read back from the journal lacks what a step
    /// that binds it needs (so the step is performed again).
    pub fn journaled_is_partial(&self, result: &Value) -> bool {
        match self {
            RenderedAction::Http(_) => http::body_left_out(result),
            _ => false,
        }
    }
}

/// An action's arguments after rendering, read as the rendered type needs them.
pub struct ArgValues<'a>(pub &'a Map<String, Value>);

impl ArgValues<'_> {
    /// The raw value (`None` when absent or null).
    pub fn value(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    /// The value as text; absent, null and empty are `None`.
    pub fn text(&self, k: &str) -> Option<String> {
        self.value(k).map(value_text).filter(|s| !s.is_empty())
    }

    /// The value as text, which must not be blank.
    pub fn required(&self, k: &str) -> Result<String, String> {
        self.text(k)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("`{k}` rendered empty"))
    }

    /// A list of strings; a single string counts as a list of one.
    pub fn list(&self, k: &str) -> Result<Option<Vec<String>>, String> {
        match self.value(k) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(
                items
                    .iter()
                    .map(value_text)
                    .filter(|s| !s.trim().is_empty())
                    .collect(),
            )),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(other) => Err(format!("`{k}` must be a list, got {other}")),
        }
    }

    /// A duration: `10m`-style text or a positive number of seconds.
    pub fn duration(&self, k: &str) -> Result<Option<Duration>, String> {
        match self.value(k) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| format!("`{k}` must be a number of seconds, got {n}"))
                .and_then(seconds)
                .map(Some)
                .map_err(|e| format!("`{k}`: {e}")),
            Some(Value::String(s)) => parse_duration(s)
                .map(Some)
                .map_err(|e| format!("`{k}`: {e}")),
            Some(other) => Err(format!("`{k}` must be a duration like `10m`, got {other}")),
        }
    }
}

/// A value as text: strings as they are, other values as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Serialises a duration as whole seconds, `"3600s"`.
pub(crate) mod secs {
    use std::time::Duration;

    use serde::Serializer;

    /// For `#[serde(with)]`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs()))
    }
}

/// Serialises an optional duration as whole seconds, `"3600s"`.
pub(crate) mod opt_secs {
    use std::time::Duration;

    use serde::Serializer;

    /// For `#[serde(with)]`.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format!("{}s", d.as_secs())),
            None => s.serialize_none(),
        }
    }
}
