//! An error with its causes on one line, for logs and for reasons shown to
//! people: every error's `Display` says only its own sentence (its cause is
//! its `source`), so whoever prints one walks the chain once.

/// An error and every cause under it, `outer: cause: root`, for log fields:
/// error types print only their own sentence, so a log of `%e` alone would
/// lose why (the CLI's `{:#}` does the same walk for the final error).
pub struct Chain<'a, E: ?Sized>(pub &'a E);

impl<E: std::error::Error + ?Sized> std::fmt::Display for Chain<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            // Some libraries' errors repeat their cause in their own text
            // (a Redis error quotes its I/O error): said once is enough.
            let text = e.to_string();
            if !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            cause = e.source();
        }
        Ok(())
    }
}
