//! The master key secrets are encrypted under, kept outside the database:
//! from `AURA_MASTER_KEY` (with `AURA_MASTER_KEY_PREVIOUS` during a
//! rotation), or from a key file created on first start with mode 0600.
//!
//! A key is 32 bytes, written as base64 (or 64 hex digits in the
//! environment). Its id is the first 16 hex digits of a SHA-256 of it, kept
//! with each secret so the right key is used and a wrong one is named.

use anyhow::Context as _;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::Digest as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Where the master key comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct MasterKeyOptions {
    /// The master key file, created (mode 0600) if missing; ignored when
    /// `AURA_MASTER_KEY` is set [default: DATA/master.key]
    #[arg(long, env = "AURA_MASTER_KEY_FILE", value_name = "PATH")]
    pub master_key_file: Option<PathBuf>,
}

impl MasterKeyOptions {
    /// The options of environment `name`: each environment has its own key
    /// file (`DATA/envs/NAME/master.key`, or `FILE-NAME` beside a
    /// `--master-key-file`), so rotating one environment's key touches no
    /// other. `AURA_MASTER_KEY` is the key of every environment.
    pub fn for_environment(&self, name: &str) -> Self {
        if name == crate::environments::DEFAULT {
            return self.clone();
        }
        Self {
            master_key_file: self.master_key_file.as_ref().map(|path| {
                let mut file = path.as_os_str().to_owned();
                file.push(format!("-{name}"));
                PathBuf::from(file)
            }),
        }
    }
}

/// A master key and its id.
#[derive(Clone)]
pub struct MasterKey {
    /// Its id (16 hex digits).
    pub id: String,
    cipher: XChaCha20Poly1305,
}

impl MasterKey {
    fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(bytes.len() == 32, "a master key is 32 bytes");
        let digest = sha2::Sha256::new()
            .chain_update(b"aura-master-key\n")
            .chain_update(bytes)
            .finalize();
        Ok(Self {
            id: hex::encode(&digest[..8]),
            cipher: XChaCha20Poly1305::new_from_slice(bytes)
                .map_err(|_| anyhow::anyhow!("a master key is 32 bytes"))?,
        })
    }

    fn parse(text: &str, origin: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .with_context(|| {
                    format!("{origin}: a master key is 32 bytes in base64 (or 64 hex digits)")
                })?
        };
        Self::from_bytes(&bytes).with_context(|| format!("{origin}: not a master key"))
    }

    fn generate() -> (Self, String) {
        let bytes: [u8; 32] = rand::random();
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        (Self::from_bytes(&bytes).expect("32 bytes"), text)
    }

    /// Encrypts `value`, bound to `context` (the secret's name and version).
    pub fn seal(&self, context: &str, value: &[u8]) -> (String, String) {
        let nonce: [u8; 24] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: context.as_bytes(),
                },
            )
            .expect("encryption does not fail");
        let b64 = base64::engine::general_purpose::STANDARD;
        (b64.encode(nonce), b64.encode(sealed))
    }

    /// Decrypts what [`MasterKey::seal`] made with the same `context`.
    pub fn open(&self, context: &str, nonce: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce = b64.decode(nonce)?;
        anyhow::ensure!(nonce.len() == 24, "a stored nonce is damaged");
        self.cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &b64.decode(sealed)?,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "the stored value does not decrypt (damaged, or moved from another secret)"
                )
            })
    }
}

/// Where the current key lives.
pub enum Source {
    /// `AURA_MASTER_KEY`: rotation is a restart with new variables.
    Environment,
    /// A key file: rotation writes a new one.
    File(PathBuf),
}

/// The current key, the keys secrets may still be under, and where the
/// current one comes from.
pub struct Keyring {
    /// New secrets are sealed under this key.
    pub current: MasterKey,
    /// Older keys, readable until their secrets are sealed again.
    pub previous: Vec<MasterKey>,
    /// Where `current` comes from.
    pub source: Source,
}

/// The file a rotation writes before it commits.
pub fn next_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".next");
    path.with_file_name(name)
}

/// Syncs the directory holding `path`, so a rename in it lasts.
pub fn sync_dir(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes a new key file (mode 0600, synced); fails if it exists.
pub fn write_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let (key, text) = MasterKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()?;
    Ok(key)
}

fn read_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path)?.permissions());
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the master key file is readable by others: chmod 600 it");
    }
    MasterKey::parse(&text, &path.display().to_string())
}

impl Keyring {
    /// The keyring of `options` for data directory `data_dir`. A key file
    /// left by an interrupted rotation (`master.key.next`) is loaded too;
    /// the caller settles which one the secrets are under.
    pub fn load(options: &MasterKeyOptions, data_dir: &Path) -> anyhow::Result<Self> {
        if let Ok(text) = std::env::var("AURA_MASTER_KEY") {
            let current = MasterKey::parse(&text, "AURA_MASTER_KEY")?;
            let previous = match std::env::var("AURA_MASTER_KEY_PREVIOUS") {
                Ok(text) => vec![MasterKey::parse(&text, "AURA_MASTER_KEY_PREVIOUS")?],
                Err(_) => Vec::new(),
            };
            return Ok(Self {
                current,
                previous,
                source: Source::Environment,
            });
        }
        let path = options
            .master_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("master.key"));
        let current = if path.exists() {
            read_key_file(&path)?
        } else {
            let key = write_key_file(&path)?;
            tracing::info!(path = %path.display(), "created the master key file: back it up apart from the data");
            key
        };
        let next = next_path(&path);
        let previous = match next.exists().then(|| read_key_file(&next)) {
            None => Vec::new(),
            Some(Ok(key)) => vec![key],
            // Written but not synced when a rotation stopped: nothing can
            // be sealed under it.
            Some(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "removing an unfinished master key file");
                std::fs::remove_file(&next)?;
                Vec::new()
            }
        };
        Ok(Self {
            current,
            previous,
            source: Source::File(path),
        })
    }

    /// The key with id `id`.
    pub fn key(&self, id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let (key, _) = MasterKey::generate();
        let (other, _) = MasterKey::generate();
        let (nonce, sealed) = key.seal("A\n1", b"hunter2");
        assert_eq!(key.open("A\n1", &nonce, &sealed).unwrap(), b"hunter2");
        assert!(
            key.open("B\n1", &nonce, &sealed).is_err(),
            "bound to its name"
        );
        assert!(
            key.open("A\n2", &nonce, &sealed).is_err(),
            "bound to its version"
        );
        assert!(other.open("A\n1", &nonce, &sealed).is_err());
        assert!(!sealed.contains("hunter2"));
        assert_ne!(key.id, other.id);
    }

    #[test]
    fn keys_parse_from_base64_or_hex() {
        let hex = "00".repeat(32);
        let b64 = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        assert_eq!(
            MasterKey::parse(&hex, "t").unwrap().id,
            MasterKey::parse(&b64, "t").unwrap().id
        );
        assert!(MasterKey::parse("short", "t").is_err());
    }
}
