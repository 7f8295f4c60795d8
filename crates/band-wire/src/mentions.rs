//! The platform's mention markers in message text: `@[[<uuid>]]` names a
//! participant by id; `@handle` is how people write one by hand.

/// The ids of every `@[[<uuid>]]` marker in `text`, in order, without
/// repeats. Brackets around anything but a UUID are not a marker.
pub fn markers(text: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("@[[") {
        let after = &rest[start + 3..];
        match after.find("]]") {
            Some(end) if is_uuid(&after[..end]) => {
                let id = &after[..end];
                if !out.contains(&id) {
                    out.push(id);
                }
                rest = &after[end + 2..];
            }
            _ => rest = after,
        }
    }
    out
}

/// `text` with each `@[[<uuid>]]` marker replaced by `@handle`, the handle
/// `handle_of` gives for its id; a marker whose id it does not know is
/// removed, with the whitespace it leaves squeezed (no double, leading or
/// trailing blanks where it stood). Why: rules match on what a person wrote,
/// and a marker's UUID would otherwise feed patterns its digits and hide the
/// first word from `starts_with`.
pub fn replace_markers<'a>(text: &str, handle_of: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@[[") {
        let after = &rest[start + 3..];
        let end = match after.find("]]") {
            Some(end) if is_uuid(&after[..end]) => end,
            _ => {
                out.push_str(&rest[..start + 3]);
                rest = after;
                continue;
            }
        };
        out.push_str(&rest[..start]);
        rest = &after[end + 2..];
        match handle_of(&after[..end]) {
            Some(handle) if !handle.trim_start_matches('@').is_empty() => {
                out.push('@');
                out.push_str(handle.trim_start_matches('@'));
            }
            _ => {
                // The blanks on both sides of the marker become one, or none
                // at the start or end of a line or before punctuation.
                let spaced = out.ends_with(is_blank) || rest.starts_with(is_blank);
                out.truncate(out.trim_end_matches(is_blank).len());
                rest = rest.trim_start_matches(is_blank);
                let next_is_word = rest.chars().next().is_some_and(|c| {
                    !c.is_whitespace()
                        && !matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | ')' | ']')
                });
                if spaced && next_is_word && !out.is_empty() && !out.ends_with('\n') {
                    out.push(' ');
                }
            }
        }
    }
    out.push_str(rest);
    out
}

/// A space or tab (a line break is kept: it is structure, not spacing).
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The handles (without `@`) of every `@handle` written in `text`, in order,
/// without repeats. An `@` inside a word (`bob@example.com`) is no mention,
/// and punctuation ending a sentence (`@bob.`) is not part of the handle.
pub fn handles(text: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for (at, _) in text.match_indices('@') {
        let starts_word = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !is_handle_char(c));
        if !starts_word {
            continue;
        }
        let after = &text[at + 1..];
        let len = after
            .char_indices()
            .find(|&(_, c)| !is_handle_char(c))
            .map_or(after.len(), |(i, _)| i);
        let handle = after[..len].trim_end_matches(['.', '-', '/']);
        if !handle.is_empty() && !out.contains(&handle) {
            out.push(handle);
        }
    }
    out
}

/// Characters of a handle, agents' `owner/slug` included.
fn is_handle_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// A UUID in its hyphenated form (8-4-4-4-12 hex digits).
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "7d75c1b8-2808-4598-94fa-eda0d983b580";
    const B: &str = "4f1ce37f-1316-4f79-835b-6074dd0cb943";

    #[test]
    fn markers_are_the_ids_in_brackets_once_each() {
        let text = format!("@[[{A}]] ask @[[{B}]], then @[[{A}]] again");
        assert_eq!(markers(&text), [A, B]);
    }

    #[test]
    fn brackets_around_anything_else_are_no_marker() {
        assert!(markers("@[[bob]] and @[[]] and @[[ and ]]").is_empty());
        let text = format!("@[[not-a-uuid]]@[[{A}]]");
        assert_eq!(markers(&text), [A]);
        assert_eq!(markers(&format!("@[[{}]]", &A[..35])), Vec::<&str>::new());
    }

    #[test]
    fn handles_are_words_after_an_at_sign() {
        let text = "ask @alice/billing-agent, or @bob. Not bob@example.com; @bob again, @ alone";
        assert_eq!(handles(text), ["alice/billing-agent", "bob"]);
    }

    fn known(id: &str) -> Option<&'static str> {
        (id == A).then_some("o/agent")
    }

    #[test]
    fn known_markers_become_handles() {
        assert_eq!(
            replace_markers(&format!("@[[{A}]] 42"), known),
            "@o/agent 42"
        );
        assert_eq!(
            replace_markers(&format!("ask @[[{A}]], please"), known),
            "ask @o/agent, please"
        );
        assert_eq!(
            replace_markers(&format!("@[[{A}]]"), |_| Some("@bob")),
            "@bob"
        );
        assert_eq!(
            replace_markers("no markers  here ", known),
            "no markers  here "
        );
    }

    #[test]
    fn unknown_markers_are_removed_and_their_blanks_squeezed() {
        assert_eq!(replace_markers(&format!("@[[{B}]] 42"), known), "42");
        assert_eq!(
            replace_markers(&format!("@[[{B}]] @[[{A}]] 42"), known),
            "@o/agent 42"
        );
        assert_eq!(
            replace_markers(&format!("ask @[[{B}]] now"), known),
            "ask now"
        );
        assert_eq!(replace_markers(&format!("ask @[[{B}]]"), known), "ask");
        assert_eq!(replace_markers(&format!("ask @[[{B}]]."), known), "ask.");
        assert_eq!(replace_markers(&format!("@[[{B}]]"), known), "");
        assert_eq!(
            replace_markers(&format!("hi\n@[[{B}]] there"), known),
            "hi\nthere"
        );
        assert_eq!(replace_markers(&format!("(@[[{B}]])"), known), "()");
    }

    #[test]
    fn brackets_around_anything_else_are_kept() {
        let text = format!("@[[bob]] @[[{A}]] @[[ and");
        assert_eq!(replace_markers(&text, known), "@[[bob]] @o/agent @[[ and");
        assert_eq!(replace_markers(&text, |_| None), "@[[bob]] @[[ and");
    }

    #[test]
    fn a_marker_is_no_handle() {
        assert!(handles(&format!("@[[{A}]] hi")).is_empty());
        assert_eq!(handles("(@carol)"), ["carol"]);
    }
}
