//! The compiled, immutable form of a workflows folder: rules indexed by event
//! type, with every regex, glob, JSONPath and template compiled.

use std::collections::{BTreeMap, HashMap};

use super::error::LoadErrors;
use super::prefilter::{Field, Prefilter};
use super::rule::{Rule, Schedule, Webhook};
use super::secrets::{SecretDecl, SecretValues};
use super::template::Templates;

/// Every rule of a folder, ready to run. Cheap to share in an `Arc`.
#[derive(Debug)]
pub struct Ruleset {
    rules: Vec<Rule>,
    index: HashMap<String, Vec<usize>>,
    prefilter: Prefilter,
    templates: Templates,
    files: usize,
    webhooks: BTreeMap<String, Webhook>,
    /// Every file's `secrets:` declarations (one per name and source).
    secrets: Vec<SecretDecl>,
}

impl Ruleset {
    /// Builds the index: per event type, rules by priority (higher first),
    /// then in load order.
    pub fn new(rules: Vec<Rule>, templates: Templates, files: usize) -> Self {
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, rule) in rules.iter().enumerate() {
            for on in &rule.on {
                index.entry(on.clone()).or_default().push(i);
            }
        }
        for list in index.values_mut() {
            // Stable sort: ties keep load order.
            list.sort_by_key(|&i| std::cmp::Reverse(rules[i].priority));
        }
        let prefilter = Prefilter::new(&rules, &index);
        Ruleset {
            rules,
            index,
            prefilter,
            templates,
            files,
            webhooks: BTreeMap::new(),
            secrets: Vec::new(),
        }
    }

    /// With the workflows' `secrets:` declarations.
    pub fn with_secrets(mut self, mut secrets: Vec<SecretDecl>) -> Self {
        secrets.dedup_by(|a, b| a.name == b.name && a.source == b.source);
        self.secrets = secrets;
        self
    }

    /// The `secrets:` declarations, in load order.
    pub fn secret_decls(&self) -> &[SecretDecl] {
        &self.secrets
    }

    /// Reads every declared secret; each one that cannot be read is a load
    /// error at its declaration, naming it (never showing a value).
    pub fn read_secrets(&self) -> Result<SecretValues, LoadErrors> {
        let mut values = SecretValues::new();
        let mut errors = Vec::new();
        for decl in &self.secrets {
            if values.get(&decl.name).is_some() {
                continue;
            }
            match decl.source.read() {
                Ok(v) => values.insert(decl.name.clone(), v),
                Err(e) => errors.push(decl.error(format!("secret `{}`: {e}", decl.name))),
            }
        }
        match errors.is_empty() {
            true => Ok(values),
            false => Err(LoadErrors::new(errors)),
        }
    }

    /// The same rules, with these incoming webhooks.
    pub fn with_webhooks(mut self, webhooks: BTreeMap<String, Webhook>) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// The incoming webhooks (`webhooks:` of every file), by name.
    pub fn webhooks(&self) -> &BTreeMap<String, Webhook> {
        &self.webhooks
    }

    /// An empty ruleset.
    pub fn empty() -> Self {
        Self::new(Vec::new(), Templates::new(), 0)
    }

    /// The rules listening for `event_type`, in the order they run.
    pub fn rules_for<'a>(&'a self, event_type: &str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.index
            .get(event_type)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
            .iter()
            .map(|&i| &self.rules[i])
    }

    /// The rules listening for `event_type` that could match, in the order
    /// they run: those whose required literals (see [`Prefilter`]) occur in
    /// the event, and those without any. `field` reads a path of the event.
    pub fn candidates<'a, 'v>(
        &'a self,
        event_type: &str,
        field: impl Fn(&[String]) -> Field<'v>,
    ) -> Vec<&'a Rule> {
        let list = self.index.get(event_type).map_or(&[][..], |v| v.as_slice());
        match self.prefilter.candidates(event_type, field) {
            Some(positions) => positions
                .into_iter()
                .filter_map(|p| list.get(p as usize))
                .map(|&i| &self.rules[i])
                .collect(),
            None => list.iter().map(|&i| &self.rules[i]).collect(),
        }
    }

    /// The literal prefilter.
    pub fn prefilter(&self) -> &Prefilter {
        &self.prefilter
    }

    /// A rule by id (`<file stem>/<name>`).
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// All rules, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Rule ids, in load order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True without rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many workflow files the rules came from.
    pub fn files(&self) -> usize {
        self.files
    }

    /// The compiled templates.
    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    /// Enabled `on: schedule` rules and their timing.
    pub fn schedules(&self) -> Vec<(&str, &Schedule)> {
        self.rules
            .iter()
            .filter(|r| r.enabled)
            .filter_map(|r| r.schedule.as_ref().map(|s| (r.id.as_str(), s)))
            .collect()
    }
}
