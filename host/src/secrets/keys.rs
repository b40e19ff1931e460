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

/// The first bytes of a file sealed by [`MasterKey::seal_file`].
const SEALED_MAGIC: &[u8] = b"AURA-SEALED-1\n";
/// Plaintext bytes per sealed chunk.
const SEALED_CHUNK: usize = 1 << 20;

fn chunk_nonce(prefix: &[u8; 16], index: u64) -> XNonce {
    let mut nonce = [0u8; 24];
    nonce[..16].copy_from_slice(prefix);
    nonce[16..].copy_from_slice(&index.to_be_bytes());
    XNonce::clone_from_slice(&nonce)
}

fn chunk_aad(context: &str, index: u64, last: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(context.len() + 10);
    aad.extend_from_slice(context.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(u8::from(last));
    aad
}

/// Reads until `buf` is full or the input ends; answers the bytes read.
fn read_full(input: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
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

    /// Encrypts file `from` into `to` (backups): 1 MiB chunks, each sealed
    /// under a random nonce prefix and its index, bound to `context` and to
    /// whether it is the last, so chunks cannot be reordered, dropped or
    /// cut short.
    pub fn seal_file(&self, context: &str, from: &Path, to: &Path) -> anyhow::Result<()> {
        let mut input = std::fs::File::open(from)?;
        let mut output = std::io::BufWriter::new(std::fs::File::create(to)?);
        let prefix: [u8; 16] = rand::random();
        output.write_all(SEALED_MAGIC)?;
        output.write_all(&prefix)?;
        let mut chunk = vec![0u8; SEALED_CHUNK];
        let mut next = vec![0u8; SEALED_CHUNK];
        let mut filled = read_full(&mut input, &mut chunk)?;
        for index in 0u64.. {
            let next_filled = read_full(&mut input, &mut next)?;
            let last = next_filled == 0;
            let sealed = self
                .cipher
                .encrypt(
                    &chunk_nonce(&prefix, index),
                    Payload {
                        msg: &chunk[..filled],
                        aad: &chunk_aad(context, index, last),
                    },
                )
                .expect("encryption does not fail");
            output.write_all(&[u8::from(last)])?;
            output.write_all(&(sealed.len() as u32).to_be_bytes())?;
            output.write_all(&sealed)?;
            if last {
                break;
            }
            std::mem::swap(&mut chunk, &mut next);
            filled = next_filled;
        }
        let file = output.into_inner().map_err(|err| err.into_error())?;
        file.sync_all()?;
        Ok(())
    }

    /// Decrypts what [`MasterKey::seal_file`] made with the same `context`.
    pub fn open_file(&self, context: &str, from: &Path, to: &Path) -> anyhow::Result<()> {
        use std::io::Read as _;
        let mut input = std::io::BufReader::new(std::fs::File::open(from)?);
        let mut output = std::io::BufWriter::new(std::fs::File::create(to)?);
        let mut header = [0u8; SEALED_MAGIC.len() + 16];
        input.read_exact(&mut header)?;
        anyhow::ensure!(
            header.starts_with(SEALED_MAGIC),
            "not an encrypted backup file"
        );
        let prefix: [u8; 16] = header[SEALED_MAGIC.len()..].try_into().expect("16 bytes");
        for index in 0u64.. {
            let mut head = [0u8; 5];
            input
                .read_exact(&mut head)
                .context("the encrypted file is cut short")?;
            let last = head[0] == 1;
            let len = u32::from_be_bytes(head[1..].try_into().expect("4 bytes")) as usize;
            anyhow::ensure!(len <= SEALED_CHUNK + 16, "the encrypted file is damaged");
            let mut sealed = vec![0u8; len];
            input
                .read_exact(&mut sealed)
                .context("the encrypted file is cut short")?;
            let plain = self
                .cipher
                .decrypt(
                    &chunk_nonce(&prefix, index),
                    Payload {
                        msg: &sealed,
                        aad: &chunk_aad(context, index, last),
                    },
                )
                .map_err(|_| {
                    anyhow::anyhow!("the encrypted file is damaged or was sealed under another key")
                })?;
            output.write_all(&plain)?;
            if last {
                anyhow::ensure!(
                    input.read(&mut [0u8; 1])? == 0,
                    "the encrypted file has bytes after its end"
                );
                break;
            }
        }
        output.flush()?;
        Ok(())
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

/// The master key to open a backup with: `AURA_MASTER_KEY`, else the key
/// file `file` (never created here).
pub fn key_for_restore(file: Option<&Path>) -> anyhow::Result<Option<MasterKey>> {
    if let Ok(text) = std::env::var("AURA_MASTER_KEY") {
        return MasterKey::parse(&text, "AURA_MASTER_KEY").map(Some);
    }
    file.map(read_key_file).transpose()
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
    fn sealed_files_open_whole_or_not_at_all() {
        let (key, _) = MasterKey::generate();
        let dir = tempfile::tempdir().unwrap();
        let (plain, sealed, opened) = (
            dir.path().join("plain"),
            dir.path().join("sealed"),
            dir.path().join("opened"),
        );
        for size in [0, 10, SEALED_CHUNK, SEALED_CHUNK * 2 + 7] {
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            std::fs::write(&plain, &bytes).unwrap();
            key.seal_file("aura.db", &plain, &sealed).unwrap();
            key.open_file("aura.db", &sealed, &opened).unwrap();
            assert_eq!(std::fs::read(&opened).unwrap(), bytes, "{size} bytes");
        }
        let whole = std::fs::read(&sealed).unwrap();
        assert!(
            key.open_file("other.db", &sealed, &opened).is_err(),
            "bound to its path"
        );
        let (other, _) = MasterKey::generate();
        assert!(other.open_file("aura.db", &sealed, &opened).is_err());
        // Cut after the first chunk: the missing last chunk is noticed.
        let first = SEALED_MAGIC.len() + 16 + 5 + SEALED_CHUNK + 16;
        std::fs::write(&sealed, &whole[..first]).unwrap();
        assert!(
            key.open_file("aura.db", &sealed, &opened).is_err(),
            "truncated"
        );
        // A flipped bit anywhere fails.
        let mut flipped = whole.clone();
        flipped[first + 40] ^= 1;
        std::fs::write(&sealed, &flipped).unwrap();
        assert!(
            key.open_file("aura.db", &sealed, &opened).is_err(),
            "tampered"
        );
        // Marking the first chunk as the last fails too.
        let mut early = whole[..first].to_vec();
        early[SEALED_MAGIC.len() + 16] = 1;
        std::fs::write(&sealed, &early).unwrap();
        assert!(
            key.open_file("aura.db", &sealed, &opened).is_err(),
            "early end"
        );
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
