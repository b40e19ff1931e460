//! An SMTP sink on loopback: the edge of the world for auth mail. It speaks
//! just enough SMTP for a real client (the server's lettre) to deliver, and
//! keeps what it receives for tests to read links and codes from.

use base64::Engine as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A delivered message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The Subject header.
    pub subject: String,
    /// The body, transfer encoding undone.
    pub body: String,
}

impl Mail {
    /// The value after `marker` up to the end of its token (URL-safe
    /// characters), e.g. `token=` in a link or `code: ` in a text.
    pub fn after(&self, marker: &str) -> String {
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("`{marker}` not in mail:\n{}", self.body))
            + marker.len();
        self.body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '%'))
            .collect()
    }
}

/// The sink.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:PORT` for `aura serve --smtp-url`.
    pub url: String,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMTP sink");
        let url = format!("smtp://{}", listener.local_addr().expect("sink addr"));
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let _ = session(stream, kept).await;
                });
            }
        });
        Self { url, mails }
    }

    /// Takes the oldest message to `to`, waiting up to 10 s for it.
    pub async fn take(&self, to: &str) -> Mail {
        for _ in 0..500 {
            {
                let mut mails = self.mails.lock().unwrap();
                if let Some(i) = mails.iter().position(|m| m.to.iter().any(|t| t == to)) {
                    return mails.remove(i);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no mail to {to} arrived")
    }

    /// Messages to `to` delivered so far and not taken.
    pub fn count(&self, to: &str) -> usize {
        self.mails
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .count()
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    mails: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut to = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("RCPT TO:") {
            let address = line[8..].trim().trim_start_matches('<');
            to.push(address.split('>').next().unwrap_or_default().to_owned());
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = Vec::new();
            while let Some(line) = lines.next_line().await? {
                if line == "." {
                    break;
                }
                // Undo dot-stuffing.
                data.push(match line.strip_prefix("..") {
                    Some(rest) => format!(".{rest}"),
                    None => line,
                });
            }
            mails
                .lock()
                .unwrap()
                .push(parse(std::mem::take(&mut to), &data));
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper.starts_with("RSET") {
            to.clear();
            b"250 OK\r\n"
        } else {
            b"250 OK\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}

fn parse(to: Vec<String>, lines: &[String]) -> Mail {
    let split = lines
        .iter()
        .position(|l| l.is_empty())
        .unwrap_or(lines.len());
    let header = |name: &str| {
        lines[..split]
            .iter()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let raw = lines.get(split + 1..).unwrap_or_default();
    let encoding = header("Content-Transfer-Encoding").to_ascii_lowercase();
    let body = match encoding.as_str() {
        "base64" => String::from_utf8_lossy(
            &base64::engine::general_purpose::STANDARD
                .decode(raw.concat())
                .expect("base64 body"),
        )
        .into_owned(),
        "quoted-printable" => quoted_printable(raw),
        _ => raw.join("\n"),
    };
    Mail {
        to,
        subject: header("Subject"),
        body,
    }
}

fn quoted_printable(lines: &[String]) -> String {
    let mut bytes = Vec::new();
    for line in lines {
        let (line, soft) = match line.strip_suffix('=') {
            Some(rest) => (rest, true),
            None => (line.as_str(), false),
        };
        let mut chars = line.bytes();
        while let Some(b) = chars.next() {
            if b == b'=' {
                let hex: Vec<u8> = chars.by_ref().take(2).collect();
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
            } else {
                bytes.push(b);
            }
        }
        if !soft {
            bytes.push(b'\n');
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
