//! Phoenix Channels v2 client (see issue 2, item 4).
