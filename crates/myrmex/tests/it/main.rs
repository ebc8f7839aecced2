//! Integration tests of the runtime, all on the manual clock: no sleeps; runs are
//! awaited through the event channel.

mod ahead;
mod basics;
mod clock;
mod deps;
mod load;
mod persist;
mod pipeline;
mod policies;
mod shutdown;
mod util;
