//! demo-db: minik's stand-in for `mongo:3.3`, run by the course as
//! `mongod --rest --httpinterface`.
//!
//! - the HTTP interface on the native port + 1000 (28017): a status page at `/` and a
//!   REST API in the spirit of mongo's old one (`GET /DB/COLLECTION/`,
//!   `POST /DB/COLLECTION`), see [`http`];
//! - the native port (27017) accepts connections and, like mongod, answers an HTTP
//!   request there with "It looks like you are trying to access MongoDB over HTTP on the
//!   native driver port.", see [`native`]; the wire protocol itself is not spoken;
//! - data in `--dbpath` as append-only, fsync'd JSON lines, see [`store`].

pub mod args;
pub mod http;
pub mod native;
pub mod objectid;
/// The serving loop, shared with demo-api.
pub use demo_http as serve;
pub mod server;
pub mod status;
pub mod store;

/// The mongod version this stands in for, as shown on the status page and by `--version`.
pub const MONGO_VERSION: &str = "3.3.15";

/// The full version line.
pub fn version_line() -> String {
    format!("db version v{MONGO_VERSION} (minik demo-db {}, a stand-in for mongod)", env!("CARGO_PKG_VERSION"))
}
