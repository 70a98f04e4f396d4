//! Image builds from a Dockerfile (`POST /build`, `berth build`): the Dockerfile parser
//! (`dockerfile`, with its flags' values in `flag_values`), word processing with variable expansion (`words`), `.dockerignore`
//! (`ignore`), the build context with `COPY`/`ADD` source selection (`context`), and the tars made from
//! it (`layer_tar`).

pub mod context;
pub mod dockerfile;
mod flag_values;
pub mod ignore;
mod layer_tar;
pub mod words;
