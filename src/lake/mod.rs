//! The encrypted Parquet lake: the encrypted-column schema and metadata, encrypting a table
//! (streaming, rayon-parallel), decrypting a table or a query result, and atomic outputs.

pub mod atomic;
pub mod decrypt;
pub mod encrypt;
pub mod io;
pub mod output;
pub mod schema;
pub mod signed;
pub(crate) mod values;

pub use decrypt::decrypt_batch;
pub use encrypt::{encrypt_path, EncryptOptions, EncryptSpec, EncryptStats};
pub use schema::EncryptedColumn;
