//! The workflow language's integration tests: every load error, with its
//! file, line and column (`load`); the folder walk against hostile folders
//! (`folder`); bounds on durations, patterns and templates (`limits`);
//! time zones, `time` conditions and `cron` across daylight saving (`time`).

mod folder;
mod limits;
mod load;
mod time;
