//! Image builds from a Dockerfile (`POST /build`, `berth build`): the Dockerfile parser
//! (`dockerfile`), word processing with variable expansion (`words`), `.dockerignore`
//! (`ignore`), and the build context with `COPY`/`ADD` source selection (`context`).

pub mod context;
pub mod dockerfile;
pub mod ignore;
pub mod words;
