//! Errors of building a plugin (compile, ABI check, instantiation). Failures while a request runs
//! are not errors of this kind: they are [`crate::Failure`]s, counted and turned into the
//! plugin's `on_error` answer.

/// Why a plugin could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The engine could not be made.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The module could not be read.
    #[error("plugin `{0}`: {1}")]
    Read(String, String),
    /// The bytes do not match the given SHA-256.
    #[error("plugin `{name}`: sha256 is {actual}, config says {expected}")]
    Hash {
        /// Plugin.
        name: String,
        /// From the config.
        expected: String,
        /// Of the bytes.
        actual: String,
    },
    /// The module does not compile.
    #[error("module does not compile: {0}")]
    Compile(String),
    /// The module is not a Proxy-Wasm 0.2.x module.
    #[error("plugin `{0}`: not a Proxy-Wasm module: {1}")]
    Abi(String, String),
    /// The module could not be instantiated or refused to start.
    #[error("plugin `{0}`: {1}")]
    Start(String, String),
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
