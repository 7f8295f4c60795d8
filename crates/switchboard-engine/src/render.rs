//! Rendering a compiled action into a [`RenderedAction`]: every template
//! argument rendered against the context, then typed and checked.

use minijinja::value::Value as JValue;
use serde_json::{Map, Value};

use super::action::RenderedAction;
use switchboard_workflow::rule::{Action, Arg};
use switchboard_workflow::template::Templates;

/// Renders one action's arguments and builds the typed action.
pub fn render_action(
    action: &Action,
    templates: &Templates,
    ctx: &JValue,
) -> Result<RenderedAction, String> {
    let mut args = Map::new();
    for (k, a) in &action.args {
        args.insert(
            k.clone(),
            render_arg(a, templates, ctx).map_err(|e| format!("`{k}`: {e}"))?,
        );
    }
    RenderedAction::render(action.name, &args)
}

/// Renders an argument tree to JSON.
pub fn render_arg(arg: &Arg, templates: &Templates, ctx: &JValue) -> Result<Value, String> {
    Ok(match arg {
        Arg::Text(t) => templates.render(t, ctx)?,
        Arg::Value(v) => v.clone(),
        Arg::List(items) => Value::Array(
            items
                .iter()
                .map(|a| render_arg(a, templates, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Arg::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, a)| Ok((k.clone(), render_arg(a, templates, ctx)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

pub use switchboard_workflow::actions::value_text;
