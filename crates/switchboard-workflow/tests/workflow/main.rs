//! The workflow language's integration tests: every load error, with its
//! file, line and column (`load`); the folder walk against hostile folders
//! (`folder`); `wait_for`, `ask` and `wait` (`conversations`); bounds on durations,
//! patterns and templates (`limits`); time zones, `time` conditions and `cron`
//! across daylight saving (`time`).

mod conversations;
mod folder;
mod limits;
mod load;
mod time;
